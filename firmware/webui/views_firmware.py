"""/firmware ("Firmware"): the running version, build date and slot; upload a signed RAUC bundle,
which is installed into the other root slot, and the router restarts into it.

The upload is streamed to a file on the data partition (never held in memory) and bounded in size;
the multipart body's first field is the CSRF token, checked here before the file is read (the
login gate leaves streamed uploads to this page, see app.STREAMED_UPLOADS). The bundle's signature
and compatible string are checked (`rauc info` with the keyring) before `rauc install` writes
anything; a refused file is deleted and the running slot is untouched. The new slot is marked good
after its boot by /etc/init.d/S60health once the daemon and this page answer.
"""
import asyncio
import os

from aiohttp import web

from webui import rauc, release
from webui.context import ctx_of, render

UPLOAD_URL = "/firmware/upload"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024     # a root slot's size (qemu/firmware_update.py SLOT_MIB)
CHUNK = 256 * 1024
DISCARD_MAX_BYTES = 4 * MAX_BUNDLE_BYTES  # read and dropped after a refusal, then the connection closes
UPLOAD_NAME = "firmware-upload.raucb"
LOCK_KEY = web.AppKey("firmware_lock", asyncio.Lock) if hasattr(web, "AppKey") else "firmware_lock"


class Refused(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


async def _page(request, status=200, error=None, done=None):
    facts = release.read()
    try:
        slots, slots_error = await rauc.status(), None
    except rauc.RaucError as exc:
        slots, slots_error = None, str(exc)
    return render(request, "firmware.html", status=status, release=facts, slots=slots,
                  slots_error=slots_error, error=error, done=done, upload_url=UPLOAD_URL,
                  max_mib=MAX_BUNDLE_BYTES // (1024 * 1024))


async def firmware_page(request):
    return await _page(request)


async def _check_csrf(request, reader):
    part = await reader.next()
    token = None
    if part is not None and part.name == "csrf_token":
        token = (await part.read(decode=False))[:200].decode(errors="replace")
    session = request.get("session")
    if session is None or not session.csrf_ok(token):
        raise Refused("The request was refused: the form's security token (CSRF) is missing or "
                      "does not belong to your session. Reload the page and try again.", 403)


async def _receive(reader, path):
    """Stream the "bundle" field into path; at most MAX_BUNDLE_BYTES."""
    part = await reader.next()
    if part is None or part.name != "bundle":
        raise Refused("No firmware file was sent: choose a bundle (.raucb) and press Install.")
    size = 0
    with open(path, "wb") as f:
        while True:
            chunk = await part.read_chunk(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BUNDLE_BYTES:
                raise Refused("The file was refused: it is larger than %d MiB, more than a firmware "
                              "slot holds." % (MAX_BUNDLE_BYTES // (1024 * 1024)), 413)
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    if size == 0:
        raise Refused("The file was refused: it is empty.")
    os.chmod(path, 0o644)     # rauc refuses bundles others may write


async def _discard_rest(request):
    """Read what is left of a refused upload's body without keeping it, so the browser gets
    the refusal instead of a reset connection; a body past DISCARD_MAX_BYTES is cut off."""
    left = DISCARD_MAX_BYTES
    while left > 0:
        chunk = await request.content.read(min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
    if request.transport is not None:
        request.transport.close()


async def upload(request):
    lock = request.app[LOCK_KEY]
    if lock.locked():
        return await _page(request, 409, error="Another firmware upload is in progress.")
    async with lock:
        directory = os.path.join(ctx_of(request).options.state_dir, "firmware")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, UPLOAD_NAME)
        try:
            reader = await request.multipart()
            await _check_csrf(request, reader)
            try:
                await _receive(reader, path)
            except OSError as exc:
                raise Refused("The file could not be stored on the data partition: %s." % exc.strerror, 507)
            manifest = await rauc.inspect(path, release.read()["COMPATIBLE"])
            await rauc.install(path)
        except Refused as exc:
            if exc.status == 413:
                await _discard_rest(request)
            response = await _page(request, exc.status, error=str(exc))
            if exc.status == 413:
                response.force_close()
            return response
        except rauc.RaucError as exc:
            return await _page(request, 400, error=str(exc))
        except ValueError as exc:       # not a multipart body
            return await _page(request, 400, error="The upload was not understood: %s" % exc)
        finally:
            if os.path.exists(path):
                os.remove(path)
    return await _page(request, done="Firmware %s (built %s) is installed in the other slot. The "
                       "router restarts into it now; this page answers again in about a minute. "
                       "If the new firmware does not come up, the router returns to this one by "
                       "itself." % (manifest["version"] or "?", manifest["build"] or "?"))


def add_routes(app):
    app[LOCK_KEY] = asyncio.Lock()
    app.router.add_get("/firmware", firmware_page)
    app.router.add_post(UPLOAD_URL, upload)
