"""CRLs fetched from the certificates' CRL distribution points over WAN (a peer's `fetch_crls`).

Host side only (the portable core never does I/O): the core names the certificates a peer sent
(events.PeerCertificates), the driver hands them and the configured ones to `CrlFetcher.watch`,
which fetches each http:// distribution point in the loop's executor (urllib from the standard
library: never blocking the event loop), one at a time, bounded in time (FETCH_TIMEOUT_S) and
size (MAX_CRL_BYTES). Each CRL is cached under <config dir>/certs/crl/.fetched/ (next to the
uploaded CRLs, on the data partition, so it survives a reboot; the dot keeps it out of backups
and of the page's list of uploaded files) with index.json saying where each came from, when it
was fetched and the last failure, which the Certificates page shows.

When: at once for a new distribution point, and for the cached ones when the daemon starts (the
cached copy serves meanwhile); then again at the CRL's nextUpdate, but not sooner than
REFETCH_MIN_S (a CA whose published CRL is already past its nextUpdate must not be asked in a
loop) nor later than REFETCH_MAX_S; after a failure with doubling backoff from BACKOFF_MIN_S up to BACKOFF_MAX_S. A failure is logged once
(again only when its reason changes) with the URL and the reason, and the cached CRL stays in
use: a stale one refuses as a stale uploaded CRL does.
"""
import asyncio
import datetime
import hashlib
import json
import os
import time
import urllib.error
import urllib.request

FETCH_TIMEOUT_S = 10          # a whole fetch (connect, every read) gives up after this long
MAX_CRL_BYTES = 1024 * 1024   # a larger answer is refused (a router's flash and memory)
REFETCH_MIN_S = 300           # at nextUpdate, but not sooner than this after a fetch
REFETCH_MAX_S = 6 * 3600      # and not later: a CA may publish before its nextUpdate
BACKOFF_MIN_S = 60            # after a failure; doubling on each further failure
BACKOFF_MAX_S = 3600
MAX_URLS = 64                 # distribution points followed at most (certificates are input)
CACHE_DIR = os.path.join("certs", "crl", ".fetched")    # relative to the config file
INDEX = "index.json"


class FetchError(Exception):
    """A fetch that did not give a CRL; the text is the reason the log and the page show."""


def cdp_urls(cert_ders):
    """The http:// CRL distribution points of these certificates (DER), in order, once each;
    other schemes (ldap://, https://) are not fetched."""
    from cryptography import x509
    urls = []
    for der in cert_ders:
        try:
            cert = x509.load_der_x509_certificate(bytes(der))
            points = cert.extensions.get_extension_for_class(
                x509.CRLDistributionPoints).value
        except (ValueError, x509.ExtensionNotFound):
            continue
        for point in points:
            for name in point.full_name or ():
                if isinstance(name, x509.UniformResourceIdentifier) \
                        and name.value.lower().startswith("http://") and name.value not in urls:
                    urls.append(name.value)
    return urls


def crl_info(data):
    """(DER, nextUpdate as Unix seconds or None, issuer text) of a PEM or DER CRL; FetchError
    when it is neither."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    try:
        crl = (x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----BEGIN")
               else x509.load_der_x509_crl(data))
    except ValueError:
        raise FetchError("the answer is not a PEM or DER X.509 CRL") from None
    nxt = getattr(crl, "next_update_utc", None) or crl.next_update
    if nxt is not None and nxt.tzinfo is None:
        nxt = nxt.replace(tzinfo=datetime.timezone.utc)
    return (crl.public_bytes(serialization.Encoding.DER),
            nxt.timestamp() if nxt is not None else None, crl.issuer.rfc4514_string())


def http_get(url, limit=MAX_CRL_BYTES, timeout=FETCH_TIMEOUT_S):
    """The body of an HTTP GET (blocking: run it in an executor), at most `limit` bytes within
    `timeout` seconds in all; FetchError with the reason otherwise."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": "ikecore-crl-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            length = answer.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise FetchError("the CRL is larger than %d bytes (%s)" % (limit, length))
            chunks, size = [], 0
            while True:
                chunk = answer.read(65536)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > limit:
                    raise FetchError("the CRL is larger than %d bytes" % limit)
                if time.monotonic() > deadline:
                    raise FetchError("no complete answer within %d s" % timeout)
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        raise FetchError("HTTP %d %s" % (exc.code, exc.reason)) from None
    except urllib.error.URLError as exc:
        raise FetchError(str(getattr(exc, "reason", exc))) from None
    except TimeoutError:
        raise FetchError("no answer within %d s" % timeout) from None
    except OSError as exc:
        raise FetchError(exc.strerror or str(exc)) from None
    except ValueError as exc:            # http.client: a malformed answer
        raise FetchError("a malformed HTTP answer: %s" % exc) from None


class Schedule:
    """When each distribution point is fetched next (`now`: the loop's monotonic seconds; wall
    times: Unix seconds). Pure logic, so it is tested without a network or a clock."""

    def __init__(self):
        self.due_at = {}       # url -> monotonic time of the next fetch
        self.failures = {}     # url -> failures in a row
        self.errors = {}       # url -> the last failure's reason (None after a success)

    def want(self, url, now):
        """Follow url, fetched now (True when it is new); beyond MAX_URLS new ones are ignored
        (False)."""
        if url in self.due_at or len(self.due_at) >= MAX_URLS:
            return False
        self.due_at[url] = now
        return True

    def due(self, now):
        return sorted(url for url, at in self.due_at.items() if at <= now)

    def next_due(self):
        return min(self.due_at.values()) if self.due_at else None

    def succeeded(self, url, now, next_update, wall_now):
        """After a fetch: again at nextUpdate, bounded to [REFETCH_MIN_S, REFETCH_MAX_S]
        (unknown wall clock or no nextUpdate: REFETCH_MAX_S)."""
        self.failures[url] = 0
        self.errors[url] = None
        if next_update is None or wall_now is None:
            delay = REFETCH_MAX_S
        else:
            delay = min(max(next_update - wall_now, REFETCH_MIN_S), REFETCH_MAX_S)
        self.due_at[url] = now + delay
        return delay

    def failed(self, url, now, reason):
        """After a failure: again after the backoff. True when this reason is news (to log)."""
        count = self.failures.get(url, 0) + 1
        self.failures[url] = count
        self.due_at[url] = now + min(BACKOFF_MIN_S * 2 ** (count - 1), BACKOFF_MAX_S)
        news = self.errors.get(url) != reason
        self.errors[url] = reason
        return news


class Cache:
    """The fetched CRLs on disk: one DER file per URL and index.json describing them."""

    def __init__(self, directory):
        self.directory = directory
        self.index = {}
        try:
            with open(os.path.join(directory, INDEX), encoding="utf-8") as handle:
                loaded = json.load(handle)
            if isinstance(loaded, dict):
                self.index = {u: e for u, e in loaded.items() if isinstance(e, dict)}
        except (OSError, ValueError):
            pass                        # nothing cached yet, or a broken index: start afresh

    def ders(self):
        """{url: DER} of every cached CRL that can still be read."""
        out = {}
        for url, entry in self.index.items():
            name = entry.get("file")
            if not isinstance(name, str) or "/" in name:
                continue
            try:
                with open(os.path.join(self.directory, name), "rb") as handle:
                    out[url] = handle.read()
            except OSError:
                continue
        return out

    def store(self, url, der, entry):
        name = hashlib.sha256(url.encode("utf-8")).hexdigest()[:24] + ".crl"
        self._write(name, der)
        self.index[url] = dict(entry, file=name)
        self._save()

    def note_failure(self, url, reason, wall_now):
        entry = self.index.setdefault(url, {})
        entry.update(error=reason, failed_at=wall_now)
        self._save()

    def _save(self):
        self._write(INDEX, json.dumps(self.index, indent=1, sort_keys=True).encode("utf-8"))

    def _make_directory(self):
        """The cache directory; certs/ and certs/crl/ above it when missing, group-writable as
        the web UI's store makes them (it uploads there later; the daemon runs as root)."""
        if os.path.isdir(self.directory):
            return
        missing = []
        parent = os.path.dirname(self.directory)
        while parent and not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for path in reversed(missing):
            os.mkdir(path)
            os.chmod(path, 0o770 | (os.stat(os.path.dirname(path)).st_mode & 0o2000))
        os.mkdir(self.directory)
        os.chmod(self.directory, 0o755)

    def _write(self, name, data):
        self._make_directory()
        path = os.path.join(self.directory, name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)            # the web UI (unprivileged) reads them for the page
        os.replace(tmp, path)


class CrlFetcher:
    """Fetches the distribution points it is told about, keeps them cached and current, and
    calls on_change() when the set of fetched CRLs changed (the driver hands them to peers)."""

    def __init__(self, loop, log, directory, wall_time, on_change, get=http_get):
        self.loop = loop
        self.log = log
        self.cache = Cache(directory)
        self.schedule = Schedule()
        self.wall_time = wall_time      # () -> Unix seconds, or None while not synchronized
        self.on_change = on_change
        self.get = get
        self.crls = {}                  # url -> DER
        self.task = None
        self.wake = asyncio.Event()
        # The cached CRLs serve at once (after a reboot the WAN may take a while) and are
        # fetched again right away in the background: how long the daemon was down is unknown.
        for url, der in self.cache.ders().items():
            try:
                crl_info(der)
            except FetchError:
                continue
            self.crls[url] = der
            self.schedule.want(url, loop.time())

    def ders(self):
        return list(self.crls.values())

    def watch(self, cert_ders):
        """Follow the http distribution points of these certificates (new ones: fetched now)."""
        now = self.loop.time()
        if any([self.schedule.want(url, now) for url in cdp_urls(cert_ders)]):
            self.wake.set()

    def start(self):
        if self.task is None:
            self.task = self.loop.create_task(self._run())

    def stop(self):
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self):
        while True:
            for url in self.schedule.due(self.loop.time()):
                try:
                    await self._fetch(url)
                except Exception as exc:     # a bug here must not end fetching for good
                    self.schedule.failed(url, self.loop.time(), str(exc))
                    self.log.error("CRL fetch from %s: %s: %s" % (url, type(exc).__name__, exc))
            next_due = self.schedule.next_due()
            self.wake.clear()
            timeout = None if next_due is None else max(0.0, next_due - self.loop.time())
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def _get_crl(self, url):
        # in the executor: the network, and parsing a CRL of up to MAX_CRL_BYTES
        return crl_info(self.get(url))

    async def _in_executor(self, function, *args):
        return await self.loop.run_in_executor(None, function, *args)

    async def _fetch(self, url):
        """One fetch; the disk writes (fsync) happen in the executor too. One at a time, so the
        cache is never written from two threads."""
        try:
            try:
                der, next_update, issuer = await asyncio.wait_for(
                    self._in_executor(self._get_crl, url), FETCH_TIMEOUT_S + 5)
            except asyncio.TimeoutError:
                raise FetchError("no answer within %d s" % FETCH_TIMEOUT_S) from None
        except FetchError as exc:
            reason = str(exc)
            if self.schedule.failed(url, self.loop.time(), reason):
                kept = " (the cached CRL stays in use)" if url in self.crls else ""
                self.log.error("CRL fetch from %s failed: %s%s" % (url, reason, kept))
            try:
                await self._in_executor(self.cache.note_failure, url, reason, self.wall_time())
            except OSError as exc:
                self.log.error("CRL cache %s: %s" % (self.cache.directory, exc))
            return
        wall = self.wall_time()
        delay = self.schedule.succeeded(url, self.loop.time(), next_update, wall)
        try:
            await self._in_executor(self.cache.store, url, der, {
                "issuer": issuer, "fetched_at": wall or time.time(), "next_update": next_update,
                "error": None, "size": len(der)})
        except OSError as exc:
            self.log.error("CRL from %s not cached: %s" % (url, exc))
        changed = self.crls.get(url) != der
        self.crls[url] = der
        self.log.info("CRL of %s fetched from %s (%d bytes), next fetch in %d s"
                      % (issuer, url, len(der), delay))
        if changed:
            self.on_change()
