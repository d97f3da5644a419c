"""Firmware bundles for the upgrade tests, made on the host from the built image: another version
of this build (optionally with an IKE daemon that exits at start), and the ones the router must
refuse (unsigned, another vendor's key, truncated, another board's)."""
import os
import subprocess

import firmware_update

DAEMON_MAIN = "usr/lib/python3/dist-packages/ikecore/__main__.py"


def rootfs_variant(images, work, version, broken_daemon=False):
    """The image's root filesystem with another VERSION in its release file; broken_daemon: the
    IKE daemon exits at start (its __main__ replaced, bytecode removed)."""
    tree = os.path.join(work, f"tree-{version}")
    subprocess.run(["unsquashfs", "-q", "-n", "-d", tree, os.path.join(images, "rootfs.squashfs")],
                   check=True, stdout=subprocess.DEVNULL)
    release = os.path.join(tree, firmware_update.release.PATH)
    lines = [l for l in open(release).read().splitlines() if not l.startswith("VERSION=")]
    with open(release, "w") as f:
        f.write("\n".join([f"VERSION={version}"] + lines) + "\n")
    if broken_daemon:
        with open(os.path.join(tree, DAEMON_MAIN), "w") as f:
            f.write("raise SystemExit('test build: the IKE daemon exits at start')\n")
        cache = os.path.join(os.path.dirname(os.path.join(tree, DAEMON_MAIN)), "__pycache__")
        for name in os.listdir(cache):
            if name.startswith("__main__."):
                os.remove(os.path.join(cache, name))
    out = os.path.join(work, f"rootfs-{version}.squashfs")
    # a quick compression level: the slot (64 MiB) holds it, and the test does not wait minutes
    subprocess.run(["mksquashfs", tree, out, "-comp", "zstd", "-Xcompression-level", "3", "-b", "256K",
                    "-noappend", "-all-root", "-no-xattrs", "-quiet"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["rm", "-rf", tree], check=True)
    return out


def signed(rootfs, work, name, version, keys, compatible=None):
    return firmware_update.make_bundle(rootfs, os.path.join(work, f"{name}.raucb"), version,
                                       "2026-12-07T00:00:00Z", keys, compatible)


def refused_bundles(images, work, keys):
    """{what: path} of bundles the router must refuse, all of this build's root filesystem."""
    rootfs = os.path.join(images, "rootfs.squashfs")
    good = signed(rootfs, work, "good", "refusal-test", keys)
    other_key, other_cert = firmware_update.make_key_pair(os.path.join(work, "other-vendor"), "other",
                                                          "/O=Another vendor/CN=another firmware signer")
    wrong_key = signed(rootfs, work, "wrong-key", "refusal-test",
                       firmware_update.Keys(other_key, other_cert, other_cert, True))
    other_board = signed(rootfs, work, "other-board", "refusal-test", keys, compatible="ikecore-nanopi-r2s")
    data = open(good, "rb").read()
    sig_size = int.from_bytes(data[-8:], "big")
    unsigned = os.path.join(work, "unsigned.raucb")
    with open(unsigned, "wb") as f:      # the bundle without its CMS signature and size field
        f.write(data[:-8 - sig_size])
    truncated = os.path.join(work, "truncated.raucb")
    with open(truncated, "wb") as f:
        f.write(data[:len(data) // 2])
    os.remove(good)
    return {"unsigned": unsigned, "wrong key": wrong_key, "truncated": truncated, "other board": other_board}
