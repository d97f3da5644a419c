"""RAUC for the image, built from Debian's own rauc source without network, streaming and GPT.

Debian 13's `rauc` binary is built with every feature, so it links libcurl-gnutls (and with it
GnuTLS, Kerberos, LDAP, SSH2, HTTP/2 and /3, brotli, ...) and libfdisk: about 4.7 MiB of the
squashfs for features a router that installs uploaded bundles from its own disk never uses. This
builds the same source package (fetched through debs.py's private apt state, Debian's patches
applied by dpkg-source) with the options Buildroot's rauc package uses by default, cross-compiled
against the arm64 development packages of the same suite; the image keeps Debian's rauc package
for its other files and gets this binary as /usr/bin/rauc. It is still RAUC, at Debian's version.
Cached machine-wide per source version and options ($IKECORE_CACHE/rauc).
"""
import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import time

import debs

SOURCE = "rauc"
# Buildroot's defaults (package/rauc/rauc.mk) with D-Bus and JSON on: the web UI reads
# `rauc status/info --output-format=json` and calls the service; bundles are made on the host
OPTIONS = ["-Dservice=true", "-Djson=enabled", "-Dnetwork=false", "-Dstreaming=false",
           "-Dgpt=disabled", "-Dcreate=false", "-Dtests=false", "-Dfuzzing=false", "-Dhtmldocs=false",
           "-Dsystemdunitdir=/usr/lib/systemd/system", "-Ddbuspolicydir=/usr/share/dbus-1/system.d",
           "-Ddbussystemservicedir=/usr/share/dbus-1/system-services",
           "-Ddbusinterfacesdir=/usr/share/dbus-1/interfaces"]
# arm64 headers and libraries to build against (the image has their run-time libraries)
DEV_PACKAGES = ["libc6-dev", "libglib2.0-dev", "libssl-dev", "libjson-glib-dev", "libdbus-1-dev"]
DEV_EXCLUDES = ["python3*", "perl*", "libperl*"]       # tools of the -dev packages, not needed here
TRIPLET = "aarch64-linux-gnu"


class RaucBuildError(Exception):
    pass


def binary(cache, version):
    """Path of rauc built from SOURCE=version (building it once, about a minute)."""
    apt = debs.AptCache(cache)
    key = hashlib.sha256(" ".join([version] + OPTIONS + DEV_PACKAGES).encode()).hexdigest()[:12]
    tree = os.path.join(os.path.dirname(apt.root), "rauc", f"{version.replace(':', '%3a')}-{key}")
    built = os.path.join(tree, "rauc")
    if os.path.exists(built):
        return built
    os.makedirs(os.path.dirname(tree), exist_ok=True)
    with open(os.path.join(os.path.dirname(tree), ".lock"), "w") as lock:   # parallel clones
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(built):
            _build(cache, apt, version, tree)
    return built


def _sysroot(cache, root):
    """The arm64 development packages unpacked, with merged /usr's /lib (libc.so names it)."""
    for _name, _ver, path in debs.resolve_and_fetch(cache, DEV_PACKAGES, DEV_EXCLUDES):
        debs.unpack(path, root)
    if not os.path.lexists(os.path.join(root, "lib")):
        os.symlink("usr/lib", os.path.join(root, "lib"))


def _cross_file(path, sysroot):
    libdir = os.path.join(sysroot, "usr", "lib", TRIPLET)
    q = lambda *items: "[" + ", ".join(repr(i) for i in items) + "]"     # noqa: E731
    with open(path, "w") as f:
        f.write(f"""[binaries]
c = {q(TRIPLET + '-gcc', '--sysroot=' + sysroot)}
ar = '{TRIPLET}-ar'
strip = '{TRIPLET}-strip'
pkgconfig = 'pkg-config'
gdbus-codegen = {q('python3', os.path.join(sysroot, 'usr', 'bin', 'gdbus-codegen'))}

[built-in options]
# the sysroot's C library first: Debian's cross linker otherwise takes the host's older
# /usr/{TRIPLET} one, which the suite's GLib does not link against
c_link_args = {q('-B' + libdir, '-L' + libdir, '-Wl,-rpath-link=' + libdir)}

[properties]
sys_root = '{sysroot}'
pkg_config_libdir = {q(os.path.join(libdir, 'pkgconfig'), os.path.join(sysroot, 'usr', 'share', 'pkgconfig'))}

[host_machine]
system = 'linux'
cpu_family = 'aarch64'
cpu = 'cortex-a53'
endian = 'little'
""")


def _build(cache, apt, version, tree):
    t0 = time.monotonic()
    for tool in ("meson", "ninja", "pkg-config", TRIPLET + "-gcc"):
        if not shutil.which(tool):
            raise RaucBuildError(f"{tool} is needed to build rauc for the image: make deps")
    work = tree + ".work"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    print(f">> rauc: fetching {SOURCE} {version} source and the arm64 development packages", flush=True)
    apt.run_in(work, "source", f"{SOURCE}={version}")         # .dsc, .orig, .debian; dpkg-source -x
    unpacked = [d for d in glob.glob(os.path.join(work, f"{SOURCE}-*")) if os.path.isdir(d)]
    if len(unpacked) != 1:
        raise RaucBuildError(f"apt-get source left {unpacked} in {work}")
    sysroot = os.path.join(work, "sysroot")
    _sysroot(cache, sysroot)
    cross = os.path.join(work, "cross.ini")
    _cross_file(cross, sysroot)
    build = os.path.join(work, "build")
    log = os.path.join(work, "build.log")
    print(f">> rauc: building without network, streaming and GPT ({' '.join(OPTIONS[:5])})", flush=True)
    with open(log, "w") as out:
        for cmd in (["meson", "setup", build, unpacked[0], "--cross-file", cross, "--wrap-mode=nodownload",
                     "--prefix=/usr", "--buildtype=release", *OPTIONS],
                    ["ninja", "-C", build, f"-j{os.cpu_count() or 1}", "rauc"]):
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise RaucBuildError(f"{' '.join(cmd[:2])} failed; see {log}")
    subprocess.run([TRIPLET + "-strip", os.path.join(build, "rauc")], check=True)
    os.makedirs(tree, exist_ok=True)
    shutil.copy2(os.path.join(build, "rauc"), os.path.join(tree, "rauc.tmp"))
    os.replace(os.path.join(tree, "rauc.tmp"), os.path.join(tree, "rauc"))
    shutil.rmtree(work)
    print(f">> rauc: built in {time.monotonic() - t0:.0f} s", flush=True)
