"""The certificate store of the Certificates page: files under <config dir>/certs/, referred to
from ikecore.toml by paths relative to the config file (as any cert/key/ca path may be).

    certs/ca/NAME.pem       a CA certificate (a peer's `ca`)
    certs/local/NAME.pem    our certificate (a peer's `cert`)
    certs/local/NAME.key    its RSA private key, unencrypted PKCS#8 PEM, mode 0600 (`key`)
    certs/local/NAME.csr    a request made on the router, until the signed certificate comes
    certs/crl/NAME.pem      a certificate revocation list (a peer's `crls`); uploading a newer
                            one under the same name replaces it, and the daemon reads it again

Every check (is it a certificate, does the key belong to it, the PKCS#12 password) is
`cryptography`'s public API; any refusal is a CertError naming the problem, and nothing is
written then. The private key is only ever read back to compare it with a certificate.
"""
import datetime
import os
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from ikecore.config import NAME_PATTERN      # certificates are named as peers are

STORE_DIR = "certs"
CA, LOCAL, CRL = "ca", "local", "crl"
EXPIRY_WARNING_DAYS = 30          # the page, the log and /metrics flag certificates this close
KEY_BITS = (2048, 3072, 4096)     # RSA: the daemon signs with RSA only (auth = "rsa")
MAX_UPLOAD = 64 * 1024
PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


class CertError(Exception):
    """An upload or request refused; the message says why, for the page."""


def _utc(item, which):
    """A certificate's or CRL's date as an aware UTC datetime (None for a CRL without a next
    update). The *_utc attributes arrived in cryptography 42; the naive UTC ones before it."""
    if hasattr(item, which + "_utc"):
        return getattr(item, which + "_utc")
    value = getattr(item, which)
    return value and value.replace(tzinfo=datetime.timezone.utc)


def load_certificates(data, what="the file"):
    """PEM (one or more) or DER bytes -> list of x509.Certificate; CertError otherwise."""
    if not data:
        raise CertError("%s is empty" % what)
    try:
        if b"-----BEGIN" in data:
            certs = [x509.load_pem_x509_certificate(block) for block in _pem_blocks(
                data, b"CERTIFICATE")]
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        certs = []
    if not certs:
        raise CertError("%s is not an X.509 certificate (PEM or DER)" % what)
    return certs


def _pem_blocks(data, label):
    pattern = re.compile(rb"-----BEGIN %s-----.+?-----END %s-----" % (label, label), re.S)
    return [m.group(0) for m in pattern.finditer(data)]


def load_one_certificate(data, what="the file"):
    certs = load_certificates(data, what)
    if len(certs) > 1:
        raise CertError("%s holds %d certificates; upload one at a time" % (what, len(certs)))
    return certs[0]


def load_private_key(data, password=None, what="the key file"):
    """PEM or DER private key (encrypted when a password is given) -> an RSA key."""
    if not data:
        raise CertError("%s is empty" % what)
    secret = password.encode("utf-8") if password else None
    loader = (serialization.load_pem_private_key if b"-----BEGIN" in data
              else serialization.load_der_private_key)
    try:
        key = loader(data, password=secret)
    except TypeError:       # encrypted without a password, or a password for a plain key
        raise CertError("%s is %s" % (what, "not encrypted: leave the password empty"
                                      if secret else "encrypted: give its password")) from None
    except ValueError:
        raise CertError("%s is not a private key, or the password is wrong" % what) from None
    return _rsa_only(key, what)


def _rsa_only(key, what):
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertError("%s is not an RSA key; the daemon signs with RSA only" % what)
    return key


def key_matches(cert, key):
    return cert.public_key().public_bytes(DER, SPKI) == key.public_key().public_bytes(DER, SPKI)


def load_pkcs12(data, password):
    """PKCS#12 bytes -> (key, certificate, [other certificates])."""
    if not data:
        raise CertError("the PKCS#12 file is empty")
    try:
        key, cert, others = pkcs12.load_key_and_certificates(
            data, password.encode("utf-8") if password else None)
    except ValueError:
        if data[:1] != b"\x30":       # not even a DER SEQUENCE: the wrong kind of file
            raise CertError("the file is not a PKCS#12 (.p12/.pfx) file") from None
        raise CertError("cannot open the PKCS#12 file: the password is wrong "
                        "(or the file is damaged)") from None
    if cert is None or key is None:
        raise CertError("the PKCS#12 file must hold a certificate and its private key")
    return _rsa_only(key, "the PKCS#12 file's key"), cert, list(others or [])


def describe(cert, now=None):
    """What the page, the log and /metrics show of a certificate."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    not_after = _utc(cert, "not_valid_after")
    not_before = _utc(cert, "not_valid_before")
    days = (not_after - now).total_seconds() / 86400
    if now < not_before:
        state = "not yet valid"
    elif days < 0:
        state = "expired"
    elif days < EXPIRY_WARNING_DAYS:
        state = "expires soon"
    else:
        state = "valid"
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "not_before": not_before, "not_after": not_after, "days_left": int(days // 1),
            "state": state, "warn": state != "valid",
            "fingerprint": cert.fingerprint(hashes.SHA256()).hex(":")}


def load_crl(data, what="the CRL file"):
    """PEM or DER bytes -> x509.CertificateRevocationList; CertError otherwise."""
    if not data:
        raise CertError("%s is empty" % what)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise CertError("%s is not an X.509 CRL (PEM or DER)" % what) from None


def describe_crl(crl, now=None):
    """What the page and the log show of a CRL; warn once its next update has passed (the CA
    has published a newer one: revocations since then are not known here)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    this_update, next_update = _utc(crl, "last_update"), _utc(crl, "next_update")
    if next_update is None:
        state = "no next update given"
    elif next_update < now:
        state = "next update passed"
    else:
        state = "current"
    return {"issuer": crl.issuer.rfc4514_string(), "this_update": this_update,
            "next_update": next_update, "revoked": len(crl), "state": state,
            "warn": state == "next update passed"}


def _check_name(name):
    if not NAME_PATTERN.match(name or ""):
        raise CertError("%r is not a valid name: 1-32 letters, digits, '.', '_', '-', "
                        "starting with a letter or digit" % (name or ""))
    return name


class CertStore:
    """The store under config_dir/certs. Paths handed out are relative to config_dir."""

    def __init__(self, config_dir):
        self.config_dir = config_dir

    def path(self, kind, name, ext):
        return "/".join((STORE_DIR, kind, "%s.%s" % (name, ext)))

    def _full(self, relative):
        return os.path.join(self.config_dir, relative)

    def _exists(self, kind, name, ext):
        return os.path.exists(self._full(self.path(kind, name, ext)))

    def _write(self, relative, data, mode):
        """Write + fsync + rename, so a crash never leaves half a file where a peer looks."""
        full = self._full(relative)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        tmp = os.path.join(os.path.dirname(full), ".%s.tmp" % os.path.basename(full))
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, full)

    def _remove(self, relative):
        try:
            os.unlink(self._full(relative))
        except FileNotFoundError:
            pass

    def _new_name(self, kind, name):
        _check_name(name)
        if any(self._exists(kind, name, ext) for ext in ("pem", "key", "csr")):
            raise CertError("a %s named %r already exists; choose another name or delete it "
                            "first" % ("CA certificate" if kind == CA else "certificate", name))
        return name

    # --- adding
    def add_ca(self, name, data):
        self._new_name(CA, name)
        cert = load_one_certificate(data, "the CA certificate file")
        constraints = _extension(cert, x509.BasicConstraints)
        if constraints is not None and not constraints.ca:
            raise CertError("%s is not a CA certificate (its basic constraints say CA:FALSE); "
                            "upload it as our certificate instead" % cert.subject.rfc4514_string())
        self._write(self.path(CA, name, "pem"), cert.public_bytes(PEM), 0o644)
        return self.path(CA, name, "pem")

    def add_crl(self, name, data):
        """Store a CRL; under the name of a stored one it replaces it when it comes from the same
        issuer and is not older (a CA's CRLs are republished, and peers keep naming the file).
        When a stored CA certificate is its issuer, the CRL's signature must verify with it.
        Returns (path, replaced)."""
        _check_name(name)
        crl = load_crl(data)
        relative = self.path(CRL, name, "pem")
        replaced = self._exists(CRL, name, "pem")
        if replaced:
            with open(self._full(relative), "rb") as handle:
                old = load_crl(handle.read(), relative)
            if old.issuer != crl.issuer:
                raise CertError("the CRL %s is from %s, this one from %s: upload it under another "
                                "name" % (name, old.issuer.rfc4514_string(),
                                          crl.issuer.rfc4514_string()))
            if _utc(crl, "last_update") < _utc(old, "last_update"):
                raise CertError("this CRL (issued %s) is older than the stored %s (issued %s)"
                                % (_utc(crl, "last_update").strftime("%Y-%m-%d %H:%M UTC"), name,
                                   _utc(old, "last_update").strftime("%Y-%m-%d %H:%M UTC")))
        issuers = [ca for ca in self._stored_cas() if ca.subject == crl.issuer]
        if issuers and not any(_crl_signed_by(crl, ca) for ca in issuers):
            raise CertError("the CRL's signature does not verify with the stored CA certificate "
                            "%s" % crl.issuer.rfc4514_string())
        self._write(relative, crl.public_bytes(PEM), 0o644)
        return relative, replaced

    def _stored_cas(self):
        """The stored CA certificates that parse (to find a CRL's issuer among them)."""
        found = []
        for stem in self._stems(CA, ("pem",)):
            try:
                with open(self._full(self.path(CA, stem, "pem")), "rb") as handle:
                    found.append(load_one_certificate(handle.read()))
            except (OSError, CertError):
                continue           # listed with its error on the page; it signs nothing
        return found

    def add_local(self, name, cert_data, key_data, key_password=None):
        self._new_name(LOCAL, name)
        cert = load_one_certificate(cert_data, "the certificate file")
        key = load_private_key(key_data, key_password)
        return self._store_local(name, cert, key)

    def add_pkcs12(self, name, data, password):
        """Our certificate and key from a .p12; CA certificates in it are stored as NAME-ca1.."""
        self._new_name(LOCAL, name)
        key, cert, others = load_pkcs12(data, password)
        stored = self._store_local(name, cert, key)
        for number, other in enumerate(others, 1):
            ca_name = "%s-ca%d" % (name, number)
            if not self._exists(CA, ca_name, "pem"):
                self._write(self.path(CA, ca_name, "pem"), other.public_bytes(PEM), 0o644)
        return stored

    def _store_local(self, name, cert, key):
        if not key_matches(cert, key):
            raise CertError("the private key does not belong to the certificate %s"
                            % cert.subject.rfc4514_string())
        # the key first: a certificate is only listed as usable once its key is in place
        self._write(self.path(LOCAL, name, "key"), _key_pem(key), 0o600)
        self._write(self.path(LOCAL, name, "pem"), cert.public_bytes(PEM), 0o644)
        return self.path(LOCAL, name, "pem")

    def generate(self, name, common_name, organization="", country="", alt_names="",
                 bits=2048):
        """A new RSA key kept on the router and a CSR for it (returned as PEM bytes)."""
        self._new_name(LOCAL, name)
        if not (common_name or "").strip():
            raise CertError("the common name (CN) must not be empty")
        if int(bits) not in KEY_BITS:
            raise CertError("key size must be one of %s bits" % ", ".join(map(str, KEY_BITS)))
        country = (country or "").strip().upper()
        if country and not re.match(r"^[A-Z]{2}$", country):
            raise CertError("country %r is not a two-letter code like SE" % country)
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name.strip())]
        if (organization or "").strip():
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization.strip()))
        if country:
            attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
        try:
            subject = x509.Name(attributes)
        except ValueError as exc:
            raise CertError("bad subject: %s" % exc) from None
        builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
        alts = parse_alt_names(alt_names)
        if alts:
            builder = builder.add_extension(x509.SubjectAlternativeName(alts), critical=False)
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(bits))
        csr = builder.sign(key, hashes.SHA256()).public_bytes(PEM)
        self._write(self.path(LOCAL, name, "key"), _key_pem(key), 0o600)
        self._write(self.path(LOCAL, name, "csr"), csr, 0o644)
        return csr

    def csr(self, name):
        _check_name(name)
        try:
            with open(self._full(self.path(LOCAL, name, "csr")), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise CertError("no certificate request named %r" % name) from None

    def add_signed(self, name, data):
        """The CA's answer to our CSR: it must carry the public key of the key we kept."""
        self.csr(name)
        cert = load_one_certificate(data, "the signed certificate file")
        with open(self._full(self.path(LOCAL, name, "key")), "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
        if not key_matches(cert, key):
            raise CertError("the certificate %s does not match the key of request %r: it was "
                            "signed for another request" % (cert.subject.rfc4514_string(), name))
        self._write(self.path(LOCAL, name, "pem"), cert.public_bytes(PEM), 0o644)
        self._remove(self.path(LOCAL, name, "csr"))
        return self.path(LOCAL, name, "pem")

    def delete(self, kind, name):
        _check_name(name)
        for ext in ("pem", "key", "csr"):
            self._remove(self.path(kind, name, ext))

    # --- listing
    def entries(self, now=None):
        """[{kind, name, path, key_path, csr, info}] sorted by kind then name; info is None for
        a pending request (no certificate yet) or a file that no longer parses (then error)."""
        found = []
        for kind in (CA, LOCAL):
            for stem in self._stems(kind, ("pem", "csr")):
                entry = {"kind": kind, "name": stem, "path": self.path(kind, stem, "pem"),
                         "key_path": None, "csr": False, "info": None, "error": None}
                if kind == LOCAL:
                    if self._exists(LOCAL, stem, "key"):
                        entry["key_path"] = self.path(LOCAL, stem, "key")
                    entry["csr"] = self._exists(LOCAL, stem, "csr")
                if self._exists(kind, stem, "pem"):
                    entry["info"], entry["error"] = _read(
                        self._full(entry["path"]), entry["path"], load_one_certificate,
                        describe, now)
                found.append(entry)
        return found

    def crl_entries(self, now=None):
        """[{kind "crl", name, path, info, error}] sorted by name; info from describe_crl."""
        found = []
        for stem in self._stems(CRL, ("pem",)):
            entry = {"kind": CRL, "name": stem, "path": self.path(CRL, stem, "pem")}
            entry["info"], entry["error"] = _read(self._full(entry["path"]), entry["path"],
                                                  load_crl, describe_crl, now)
            found.append(entry)
        return found

    def _stems(self, kind, extensions):
        try:
            names = os.listdir(self._full("/".join((STORE_DIR, kind))))
        except FileNotFoundError:
            return []
        return sorted({n.rsplit(".", 1)[0] for n in names
                       if not n.startswith(".") and n.rsplit(".", 1)[-1] in extensions})


def _read(full, shown, load, describe_it, now):
    """(info, None) for a file that loads, else (None, why not) for the page."""
    try:
        with open(full, "rb") as handle:
            return describe_it(load(handle.read(), shown), now), None
    except OSError as exc:
        return None, "cannot read %s: %s" % (shown, exc.strerror)
    except CertError as exc:
        return None, str(exc)


def parse_alt_names(text):
    """"vpn.example.com, 203.0.113.1, admin@example.com" -> GeneralName list."""
    import ipaddress
    names = []
    for item in re.split(r"[,\s]+", (text or "").strip()):
        if not item:
            continue
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(item)))
            continue
        except ValueError:
            pass
        if "@" in item:
            names.append(x509.RFC822Name(item))
        elif re.match(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$", item):
            names.append(x509.DNSName(item))
        else:
            raise CertError("alternative name %r is not a domain name, an IP address or an "
                            "e-mail address" % item)
    return names


def _crl_signed_by(crl, ca):
    try:
        return crl.is_signature_valid(ca.public_key())
    except TypeError:            # a key type cryptography cannot check CRLs with
        return False


def _key_pem(key):
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _extension(cert, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


# The peer keys that name files of the store, and what each file is.
CERT_KEYS = ("cert", "ca", "intermediates")       # certificates
FILE_KEYS = ("cert", "key", "ca", "intermediates", "crls")


def referenced(config_dir, doc):
    """{path as the store names it: {"peers": [names], "as": {"cert", "key", "ca", ...}}} for
    every file a peer of the configuration names (a plain dict of the TOML); ca may be one path
    or a list, intermediates and crls are lists."""
    used = {}
    for peer in doc.get("peer", []):
        for key in FILE_KEYS:
            value = peer.get(key)
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, str) or not item:
                    continue
                slot = used.setdefault(normalize(config_dir, item), {"peers": [], "as": set()})
                if peer.get("name") not in slot["peers"]:
                    slot["peers"].append(peer.get("name"))
                slot["as"].add(key)
    return used


def normalize(config_dir, value):
    """A path from the config as the store names it (relative to config_dir when inside)."""
    full = os.path.normpath(value if os.path.isabs(value) else os.path.join(config_dir, value))
    relative = os.path.relpath(full, os.path.normpath(config_dir))
    return value if relative.startswith("..") else relative.replace(os.sep, "/")


def inventory(config_dir, doc, now=None):
    """The store's certificates plus the certificate files peers name outside it (kind "file",
    the paths typed before the store existed), each with "used_by": the peers that use it."""
    return _with_files(config_dir, doc, CertStore(config_dir).entries(now), CERT_KEYS,
                       lambda data, path: load_certificates(data, path)[0], describe, now)


def crl_inventory(config_dir, doc, now=None):
    """The same for CRLs: the store's and those peers name outside it."""
    return _with_files(config_dir, doc, CertStore(config_dir).crl_entries(now), ("crls",),
                       load_crl, describe_crl, now)


def _with_files(config_dir, doc, entries, keys, load, describe_it, now):
    used = referenced(config_dir, doc)
    known = set()
    for entry in entries:
        paths = [entry["path"]] + ([entry["key_path"]] if entry.get("key_path") else [])
        known.update(paths)
        entry["used_by"] = sorted({p for path in paths for p in used.get(path, {}).get(
            "peers", [])})
    for path, slot in sorted(used.items()):
        if path in known or not slot["as"] & set(keys):
            continue
        full = path if os.path.isabs(path) else os.path.join(config_dir, path)
        info, error = _read(full, path, load, describe_it, now)
        entries.append({"kind": "file", "name": path, "path": path, "key_path": None,
                        "csr": False, "info": info, "error": error,
                        "used_by": sorted(slot["peers"])})
    return entries


def fetched_crls(config_dir, now=None):
    """The CRLs the daemon fetched from distribution points (a peer's fetch_crls), from its
    cache's index (ikecore.crl_fetch): [{url, info, error, fetched_at, failed_at}] by URL.
    info: describe_crl of the cached copy (None when there is none yet); error: the last
    fetch's failure, None when the last fetch worked."""
    import json
    from ikecore import crl_fetch
    directory = os.path.join(config_dir, crl_fetch.CACHE_DIR)
    try:
        with open(os.path.join(directory, crl_fetch.INDEX), encoding="utf-8") as handle:
            index = json.load(handle)
    except (OSError, ValueError):
        return []

    def when(value):
        return (datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
                if isinstance(value, (int, float)) else None)
    found = []
    for url, entry in sorted(index.items() if isinstance(index, dict) else []):
        if not isinstance(entry, dict):
            continue
        info = None
        name = entry.get("file")
        if isinstance(name, str) and "/" not in name:
            info, _ = _read(os.path.join(directory, name), url, load_crl, describe_crl, now)
        found.append({"url": url, "info": info, "error": entry.get("error"),
                      "fetched_at": when(entry.get("fetched_at")),
                      "failed_at": when(entry.get("failed_at"))})
    return found


def fetched_crl_entries(config_dir, now=None):
    """The fetched CRLs that are cached, shaped as crl_inventory's entries (kind "fetched",
    name and path: the URL), for /metrics and the expiry log: a stale one refuses as an uploaded
    stale CRL does, so it is flagged as one is."""
    return [{"kind": "fetched", "name": f["url"], "path": f["url"], "info": f["info"],
             "error": f["error"], "used_by": []}
            for f in fetched_crls(config_dir, now) if f["info"]]
