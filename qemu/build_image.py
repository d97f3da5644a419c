#!/usr/bin/env python3
"""Assemble the offline arm64 firmware image in output/images/.

    python3 qemu/build_image.py [--out output] [--initramfs-too] [--variant strongswan|libreswan]

Parts: the kernel (qemu/build_kernel.sh, cached machine-wide), a root filesystem from Debian 13 (trixie)
arm64 packages (qemu/packages.txt, unpacked, trimmed), rootfs-overlay/ and firmware/ (byte-compiled on
the host), packed as squashfs (zstd) for virtio-blk; a blank data disk template; a bare
busybox initramfs for the boot benchmark; manifest.json + manifest.txt (sizes, package versions).
Every input is hashed: when nothing changed the build stops after a few seconds.
`--variant strongswan` writes only rootfs-strongswan.squashfs: the same firmware plus Debian's
strongSwan charon and swanctl (qemu/packages-strongswan.txt), a test-only image that lets a real
strongSwan be "site B" on the guest kernel's data plane (tests/qemu/test_tunnel_strongswan.py);
`--variant libreswan` likewise rootfs-libreswan.squashfs with Debian's Libreswan pluto
(qemu/packages-libreswan.txt, tests/qemu/test_tunnel_libreswan.py).
Runs with the host's python3; the bytecode is written by a host build of the guest's own CPython
version (qemu/hostpython.py: Debian 12's 3.11 cannot write 3.13 bytecode), cached machine-wide.
"""
import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpio  # noqa: E402
import debs  # noqa: E402
import firmware_update  # noqa: E402
import hostpython  # noqa: E402
import chrony_build  # noqa: E402
import rauc_build  # noqa: E402
import rootfs  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("IKECORE_CACHE", "/var/cache/ikecore")
DATA_DISK_MB = 64
# rootfs variants: the package lists (under qemu/) unpacked into each, and the file written
VARIANTS = {
    "firmware": (["packages.txt"], "rootfs.squashfs"),
    "strongswan": (["packages.txt", "packages-strongswan.txt"], "rootfs-strongswan.squashfs"),
    "libreswan": (["packages.txt", "packages-libreswan.txt"], "rootfs-libreswan.squashfs"),
}


def firmware_version():
    """$IKECORE_VERSION, else `git describe` of the clone (a dirty tree says so)."""
    if os.environ.get("IKECORE_VERSION"):
        return os.environ["IKECORE_VERSION"]
    r = subprocess.run(["git", "-C", TOP, "describe", "--always", "--dirty", "--tags"],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else "unversioned"


def install_release(staging, version, keys):
    """The release file the firmware page shows (webui/release.py) and the keyring RAUC checks
    bundles against (/etc/rauc/keyring.pem): not in git, made by the build."""
    facts = firmware_update.release.write(staging, version)
    shutil.copyfile(keys.keyring, os.path.join(staging, "etc", "rauc", "keyring.pem"))
    return facts["BUILD_DATE"]


def log(msg):
    print(f">> {msg}", flush=True)


def tree_digest(h, path):
    """Feed names, modes and contents of every file under path into the hash."""
    if not os.path.exists(path):
        h.update(b"<absent>" + path.encode())
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", ".pytest_cache"))
        for name in sorted(filenames):
            if name.endswith(".pyc"):
                continue
            p = os.path.join(dirpath, name)
            h.update(os.path.relpath(p, TOP).encode())
            if os.path.islink(p):
                h.update(b"->" + os.readlink(p).encode())
            else:
                h.update(oct(os.stat(p).st_mode).encode())
                with open(p, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())


def build_kernel(images):
    out = os.path.join(images, "Image")
    subprocess.run([os.path.join(TOP, "qemu", "build_kernel.sh"), out], check=True)
    return out


def host_python(packages):
    """The host interpreter that byte-compiles for the guest (same CPython source as its package)."""
    name, ver, path = next(p for p in packages if re.match(r"^python3\.\d+-minimal$", p[0]))
    return hostpython.interpreter(debs.AptCache(CACHE), hostpython.source_version(path, ver))


# Packages whose binaries are rebuilt from their own source with fewer features (source_build.py)
REBUILT = {"rauc": rauc_build.binaries, "chrony": chrony_build.binaries}


def rebuilt_binaries(packages):
    """{guest path: built file} for each REBUILT package in the image, at its source version."""
    out = {}
    for name, ver, path in packages:
        if name in REBUILT:
            out.update(REBUILT[name](CACHE, hostpython.source_version(path, ver)))
    return out


def mksquashfs(staging, out):
    tmp = out + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    subprocess.run(["mksquashfs", staging, tmp, "-comp", "zstd", "-Xcompression-level", "15",
                    "-b", "256K", "-noappend", "-all-root", "-no-xattrs", "-quiet",
                    "-processors", str(os.cpu_count() or 1)], check=True, stdout=subprocess.DEVNULL)
    os.replace(tmp, out)


def make_initramfs(staging, out, compressor):
    buf = io.BytesIO()
    cpio.write_newc(buf, staging)
    cmd = {"zstd": ["zstd", "-12", "-T0", "-q", "-c"], "gzip": ["gzip", "-9", "-n", "-c"]}[compressor]
    data = subprocess.run(cmd, input=buf.getvalue(), capture_output=True, check=True).stdout
    with open(out, "wb") as f:
        f.write(data)


def make_bare_initramfs(busybox_deb, out, workdir):
    """kernel + busybox only: /init prints a marker and powers off (baseline of bench_boot)."""
    root = os.path.join(workdir, "bare")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    unpacked = os.path.join(workdir, "bare-deb")
    shutil.rmtree(unpacked, ignore_errors=True)
    debs.unpack(busybox_deb, unpacked)
    # trixie ships /usr/bin/busybox (merged /usr), bookworm /bin/busybox
    src = next(p for p in (os.path.join(unpacked, d, "busybox") for d in ("usr/bin", "bin")) if os.path.exists(p))
    keep = os.path.join(root, "bin", "busybox")
    os.makedirs(os.path.dirname(keep))
    shutil.move(src, keep)
    shutil.rmtree(unpacked)
    with open(os.path.join(root, "init"), "w") as f:
        f.write("#!/bin/busybox sh\n/bin/busybox echo IKECORE-BARE-READY\n/bin/busybox poweroff -f\n")
    os.chmod(os.path.join(root, "init"), 0o755)
    assert os.path.exists(keep)
    make_initramfs(root, out, "gzip")


def make_data_template(out):
    """A blank ext4 disk: `make run` copies it once to output/data.img (kept across runs)."""
    tmp = out + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "ikecore-data", "-E", "root_owner=0:0", "-O", "^has_journal",
                    tmp, f"{DATA_DISK_MB}M"], check=True)
    subprocess.run(["tune2fs", "-O", "has_journal", "-J", "size=4", tmp], check=True, stdout=subprocess.DEVNULL)
    os.replace(tmp, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(TOP, "output"))
    ap.add_argument("--initramfs-too", action="store_true",
                    help="also write rootfs.cpio.zst/.gz (to measure initramfs against squashfs)")
    ap.add_argument("--force", action="store_true", help="rebuild the root filesystem even if unchanged")
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="firmware",
                    help="strongswan/libreswan: only the test-only root filesystem with that peer")
    args = ap.parse_args()
    t0 = time.monotonic()
    images = os.path.join(args.out, "images")
    work = os.path.join(args.out, "build")
    os.makedirs(images, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    firmware = args.variant == "firmware"
    lists, rootfs_name = VARIANTS[args.variant]
    suffix = "" if firmware else "-" + args.variant

    log("kernel")
    kernel = build_kernel(images)

    log(f"packages: resolving Debian {debs.SUITE} arm64 dependencies ({' + '.join(lists)})")
    wanted = [p for name in lists for p in debs.read_list(os.path.join(TOP, "qemu", name))]
    excludes = debs.read_list(os.path.join(TOP, "qemu", "packages.exclude"))
    packages = debs.resolve_and_fetch(CACHE, wanted, excludes)
    log(f"packages: {len(packages)} to unpack")
    python = host_python(packages)
    rebuilt = rebuilt_binaries(packages)

    version = firmware_version()
    keys = firmware_update.signing_keys(args.out)
    h = hashlib.sha256()
    h.update(json.dumps([(n, v) for n, v, _ in packages]).encode())
    h.update(version.encode())
    with open(keys.keyring, "rb") as f:
        h.update(f.read())
    for part in ("qemu", "rootfs-overlay", "firmware"):
        tree_digest(h, os.path.join(TOP, part))
    h.update(python.encode())       # its path names the CPython source version
    h.update(json.dumps(rebuilt, sort_keys=True).encode())  # paths name source versions and options
    key = h.hexdigest()[:16]
    rootfs_img = os.path.join(images, rootfs_name)
    stamp = os.path.join(work, f"rootfs{suffix}.key")
    outputs = [rootfs_img]
    if firmware:
        outputs += [os.path.join(images, n) for n in ("manifest.json", "bare-initramfs.cpio.gz",
                    "data-template.img", "boot-initramfs.cpio.gz", "system.img", "firmware.raucb")]
    if (not args.force and not args.initramfs_too and os.path.exists(stamp)
            and open(stamp).read() == key and all(map(os.path.exists, outputs))):
        if firmware:
            rootfs.update_manifest_kernel(images, kernel)
        log(f"root filesystem {rootfs_name} unchanged ({key}); ready in {time.monotonic() - t0:.1f} s")
        return 0

    staging = os.path.join(work, f"rootfs{suffix}")
    log("root filesystem: unpacking, trimming, overlay, firmware, bytecode")
    owners = rootfs.assemble(staging, packages, TOP, python, rebuilt)
    log("root filesystem: checking every ELF's NEEDED libraries are present")
    rootfs.check_needed(staging)
    build_date = install_release(staging, version, keys)

    log(f"root filesystem: mksquashfs (zstd) -> {rootfs_name}")
    mksquashfs(staging, rootfs_img)
    if not firmware:
        with open(stamp, "w") as f:
            f.write(key)
        log(f"{rootfs_name} ({os.path.getsize(rootfs_img) / 2**20:.1f} MiB) ready in "
            f"{time.monotonic() - t0:.0f} s")
        return 0
    for comp, ext in (("zstd", "zst"), ("gzip", "gz")):
        variant = os.path.join(images, f"rootfs.cpio.{ext}")
        if args.initramfs_too:
            log(f"root filesystem: initramfs ({comp}) for comparison")
            make_initramfs(staging, variant, comp)
        elif os.path.exists(variant):
            os.remove(variant)      # never leave a stale variant for bench_boot to measure
    log("bare busybox initramfs (boot benchmark baseline)")
    bb = next(p for n, _, p in packages if n == "busybox-static")
    make_bare_initramfs(bb, os.path.join(images, "bare-initramfs.cpio.gz"), work)
    log("data disk template")
    make_data_template(os.path.join(images, "data-template.img"))

    log("A/B: boot selector initramfs, system disk (slot A = this root filesystem), signed bundle")
    firmware_update.make_boot_initramfs(os.path.join(images, "boot-initramfs.cpio.gz"), work)
    firmware_update.make_system_disk(rootfs_img, os.path.join(images, "system.img"))
    firmware_update.make_bundle(rootfs_img, os.path.join(images, "firmware.raucb"), version, build_date, keys)
    if keys.development:
        log(f"bundle signed with the development key in {os.path.dirname(keys.key)} (docs/upgrade.md)")

    log("manifest")
    rootfs.write_manifest(images, staging, kernel, rootfs_img, packages, owners,
                          os.path.join(images, "boot-initramfs.cpio.gz"))
    with open(stamp, "w") as f:
        f.write(key)
    log(f"image ready in {time.monotonic() - t0:.0f} s: {images}")
    print(open(os.path.join(images, "manifest.txt")).read().split("\n\n")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
