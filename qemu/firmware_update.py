"""The A/B parts of the QEMU image: signing keys, the RAUC bundle, the boot selector's initramfs and
the system disk (root slots A and B plus the boot state sector).

    keys = signing_keys(out_dir)                 # vendor's from $IKECORE_RAUC_KEY/_CERT/_KEYRING, else
                                                 # a development pair made once in out_dir/keys
    make_bundle(rootfs, out, version, build, keys)     # signed "verity" bundle of one root filesystem
    make_boot_initramfs(out, workdir)            # qemu/bootsel.c, static, as /init
    make_system_disk(rootfs, out)                # MBR: vda1 = A (the rootfs), vda2 = B (empty), vda3 = state

The bundle is made by the host's `rauc bundle` (Debian 12's rauc 1.8); the guest runs Debian 13's
rauc 1.13 with rootfs-overlay/etc/rauc/system.conf, whose compatible string the bundle carries.
"""
import io
import os
import shutil
import subprocess
import sys
import tempfile

import cpio

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "firmware"))
from webui import release  # noqa: E402     the release file's one definition (path, format)

SYSTEM_CONF = os.path.join(TOP, "rootfs-overlay", "etc", "rauc", "system.conf")
MIB = 1024 * 1024
SLOT_MIB = 64           # each root slot; the squashfs is ~21-27 MiB
STATE_OFFSET = 1 + 2 * SLOT_MIB      # MiB: the boot state partition follows the slots
DISK_MIB = STATE_OFFSET + 1
INITIAL_STATE = b"IKECORE_BOOT=1\nORDER=A B\nA_LEFT=3\nB_LEFT=0\n"   # format: qemu/bootsel.c


class Keys:
    def __init__(self, key, cert, keyring, development):
        self.key, self.cert, self.keyring, self.development = key, cert, keyring, development


def compatible():
    """The compatible string of the QEMU image (its system.conf): bundles must carry the same."""
    return release.compatible_of(SYSTEM_CONF)


def make_key_pair(directory, name, subject):
    """A self-signed RSA-3072 certificate and its key (openssl on the host): the development signer
    and, in tests, "another vendor's" key."""
    os.makedirs(directory, exist_ok=True)
    key, cert = os.path.join(directory, f"{name}.key.pem"), os.path.join(directory, f"{name}.cert.pem")
    if not (os.path.exists(key) and os.path.exists(cert)):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:3072", "-nodes", "-days", "3650",
                        "-subj", subject, "-keyout", key + ".tmp", "-out", cert + ".tmp",
                        "-addext", "keyUsage=critical,digitalSignature",
                        "-addext", "basicConstraints=critical,CA:true"],
                       check=True, capture_output=True)
        os.chmod(key + ".tmp", 0o600)
        os.replace(key + ".tmp", key)
        os.replace(cert + ".tmp", cert)
    return key, cert


def signing_keys(out_dir):
    """The vendor's key, certificate and keyring when $IKECORE_RAUC_KEY, $IKECORE_RAUC_CERT and
    $IKECORE_RAUC_KEYRING name them (docs/upgrade.md); otherwise a development pair made once under
    out_dir/keys (output/ is not in git), which is its own keyring."""
    env = [os.environ.get(v) for v in ("IKECORE_RAUC_KEY", "IKECORE_RAUC_CERT", "IKECORE_RAUC_KEYRING")]
    if any(env):
        if not all(env):
            raise SystemExit("IKECORE_RAUC_KEY, IKECORE_RAUC_CERT and IKECORE_RAUC_KEYRING go together")
        for path in env:
            if not os.path.isfile(path):
                raise SystemExit(f"signing: {path} does not exist")
        return Keys(*env, development=False)
    key, cert = make_key_pair(os.path.join(out_dir, "keys"), "development",
                              "/O=ikecore development/CN=ikecore development firmware signer")
    return Keys(key, cert, cert, development=True)


def make_bundle(rootfs, out, version, build, keys, compatible_string=None):
    """A signed RAUC bundle (verity format) installing rootfs into the other root slot."""
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(out))) as d:
        content = os.path.join(d, "content")
        os.makedirs(content)
        try:
            os.link(rootfs, os.path.join(content, "rootfs.squashfs"))
        except OSError:         # another filesystem
            shutil.copyfile(rootfs, os.path.join(content, "rootfs.squashfs"))
        with open(os.path.join(content, "manifest.raucm"), "w") as f:
            f.write(f"[update]\ncompatible={compatible_string or compatible()}\nversion={version}\n"
                    f"build={build}\ndescription=ikecore router firmware\n\n"
                    "[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=rootfs.squashfs\n")
        tmp = out + ".tmp"
        if os.path.exists(tmp):
            os.remove(tmp)
        # zstd: the guest kernel's squashfs has no zlib (mksquashfs's default); data and fragments
        # stored as they are: the root filesystem image in it is compressed already
        r = subprocess.run(["rauc", "bundle", f"--cert={keys.cert}", f"--key={keys.key}",
                            f"--keyring={keys.keyring}", "--mksquashfs-args=-comp zstd -noD -noF",
                            content, tmp], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"rauc bundle failed:\n{r.stdout}{r.stderr}")
        os.replace(tmp, out)
    return out


def make_boot_initramfs(out, workdir):
    """The initramfs whose /init is the boot selector (qemu/bootsel.c, static: ~0.3 MiB gzip)."""
    root = os.path.join(workdir, "bootsel")
    shutil.rmtree(root, ignore_errors=True)
    for d in ("dev", "proc", "newroot"):
        os.makedirs(os.path.join(root, d))
    subprocess.run(["aarch64-linux-gnu-gcc", "-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror",
                    "-o", os.path.join(root, "init"), os.path.join(TOP, "qemu", "bootsel.c")], check=True)
    buf = io.BytesIO()
    cpio.write_newc(buf, root)
    data = subprocess.run(["gzip", "-9", "-n", "-c"], input=buf.getvalue(), capture_output=True,
                          check=True).stdout
    with open(out + ".tmp", "wb") as f:
        f.write(data)
    os.replace(out + ".tmp", out)


def make_system_disk(rootfs, out):
    """The A/B system disk: MBR with slot A (rootfs written in), slot B (empty) and the boot state
    sector; sparse. `make qemu` and the upgrade tests boot a copy of it (qemu/router.py)."""
    if os.path.getsize(rootfs) > SLOT_MIB * MIB:
        raise SystemExit(f"{rootfs} is larger than a root slot ({SLOT_MIB} MiB)")
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.truncate(DISK_MIB * MIB)
    layout = (f"label: dos\nstart=1MiB, size={SLOT_MIB}MiB, type=83\n"
              f"size={SLOT_MIB}MiB, type=83\nsize=1MiB, type=da\n")
    subprocess.run(["sfdisk", "-q", tmp], input=layout, text=True, check=True, capture_output=True)
    with open(tmp, "r+b") as f, open(rootfs, "rb") as src:
        f.seek(1 * MIB)
        shutil.copyfileobj(src, f, 4 * MIB)
        f.seek(STATE_OFFSET * MIB)
        f.write(INITIAL_STATE.ljust(512, b"\0"))
    os.replace(tmp, out)
    return out
