"""The firmware updater, RAUC, through its command line: the build's release facts, the slot status,
checking a bundle and installing it. `rauc status` and `rauc install` talk to the RAUC service
(root) on the system D-Bus, which lets group ikecore call it; `rauc info` checks the bundle's
signature here, with the router's keyring, before anything is written.
"""
import asyncio
import json
import re

RAUC = "rauc"
KEYRING = "/etc/rauc/keyring.pem"
STATUS_TIMEOUT_S = 60
INFO_TIMEOUT_S = 300        # a signature check reads the manifest; slow under emulation
INSTALL_TIMEOUT_S = 1200


class RaucError(Exception):
    """A refusal or failure, with a message for the page."""


async def _run(args, timeout):
    try:
        proc = await asyncio.create_subprocess_exec(
            RAUC, *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise RaucError("the firmware updater (rauc) cannot be started: %s" % exc.strerror)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise RaucError("the firmware updater (rauc %s) did not finish within %d s" % (args[0], timeout))
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _reason(stderr):
    """rauc's own last error line, without its log prefixes."""
    lines = [l.strip() for l in stderr.splitlines() if l.strip()]
    picked = [l for l in lines if re.search(r"(?i)error|fail|invalid|refus|denied|mismatch", l)] or lines
    text = picked[-1] if picked else "no reason given"
    return re.sub(r"^(rauc-)?(\w+-)?(Message|WARNING|CRITICAL|ERROR|error)\S*:\s*(\S+:\s*)?", "", text)


async def status():
    """{"booted": bootname, "slots": [{"name", "bootname", "device", "state", "boot_status",
    "version", "installed"}]} of the root slots."""
    code, out, err = await _run(["status", "--detailed", "--output-format=json"], STATUS_TIMEOUT_S)
    if code != 0:
        raise RaucError("the slot status is not available: %s" % _reason(err))
    try:
        data = json.loads(out)
        slots = []
        for entry in data.get("slots", []):
            for name, slot in entry.items():
                bundle = (slot.get("slot_status") or {}).get("bundle") or {}
                installed = (slot.get("slot_status") or {}).get("installed") or {}
                slots.append({"name": name, "bootname": slot.get("bootname") or "",
                              "device": slot.get("device") or "", "state": slot.get("state") or "",
                              "boot_status": slot.get("boot_status") or "",
                              "version": bundle.get("version") or "",
                              "installed": installed.get("timestamp") or ""})
        return {"booted": data.get("booted") or "", "slots": sorted(slots, key=lambda s: s["bootname"])}
    except (ValueError, AttributeError) as exc:
        raise RaucError("rauc status gave output that is not its JSON (%s)" % exc)


def _refusal(stderr):
    reason = _reason(stderr)
    low = stderr.lower()
    if re.search(r"certificate|issuer|signer|verif", low) and not re.search(r"signature size|too small", low):
        what = "it is not signed by a key this router trusts"
    else:
        what = "it is not a complete, signed firmware bundle (damaged, truncated or unsigned)"
    return "The file was refused: %s. rauc says: %s" % (what, reason)


async def inspect(path, compatible):
    """The bundle's manifest {"compatible", "version", "build"} once its signature checks out
    against the keyring and it is meant for this board; RaucError with the reason otherwise."""
    code, out, err = await _run(["info", "--keyring=" + KEYRING, "--output-format=json", path],
                                INFO_TIMEOUT_S)
    if code != 0:
        raise RaucError(_refusal(err))
    try:
        info = json.loads(out)
    except ValueError:
        raise RaucError("rauc info gave output that is not its JSON")
    manifest = {"compatible": info.get("compatible") or "", "version": info.get("version") or "",
                "build": info.get("build") or ""}
    if manifest["compatible"] != compatible:
        raise RaucError("The file was refused: it is firmware for another board (compatible "
                        "\"%s\"; this router is \"%s\")." % (manifest["compatible"], compatible))
    return manifest


async def install(path):
    """Write the bundle into the other slot and make it the next boot's (the RAUC service does
    it; its post-install handler then reboots the router)."""
    code, out, err = await _run(["install", path], INSTALL_TIMEOUT_S)
    if code != 0:       # the service's reason is in the progress lines on stdout
        raise RaucError("The installation failed: %s." % _reason(out + err))
