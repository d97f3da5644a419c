"""RAUC for the image, built from Debian's own rauc source without network, streaming and GPT.

Debian 13's `rauc` binary is built with every feature, so it links libcurl-gnutls (and with it
GnuTLS, Kerberos, LDAP, SSH2, HTTP/2 and /3, brotli, ...) and libfdisk: about 4.7 MiB of the
squashfs for features a router that installs uploaded bundles from its own disk never uses. This
builds the same source package (source_build.py: Debian's patches, the arm64 sysroot, the cache
in $IKECORE_CACHE/rauc) with the options Buildroot's rauc package uses by default; the image keeps
Debian's rauc package for its other files and gets this binary as /usr/bin/rauc. It is still RAUC,
at Debian's version.
"""
import os
import subprocess
import time

import source_build
from source_build import TRIPLET

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


def binaries(cache, version):
    """{guest path: built file} of rauc from SOURCE=version (building it once, about a minute)."""
    tree = source_build.cached(cache, SOURCE, version, OPTIONS + DEV_PACKAGES, ["rauc"],
                               lambda apt, work, tree: _build(cache, apt, version, work, tree))
    return {"usr/bin/rauc": os.path.join(tree, "rauc")}


def _cross_file(path, sysroot):
    libdir = source_build.libdir(sysroot)
    q = lambda *items: "[" + ", ".join(repr(i) for i in items) + "]"     # noqa: E731
    with open(path, "w") as f:
        f.write(f"""[binaries]
c = {q(TRIPLET + '-gcc', '--sysroot=' + sysroot)}
ar = '{TRIPLET}-ar'
strip = '{TRIPLET}-strip'
pkgconfig = 'pkg-config'
gdbus-codegen = {q('python3', os.path.join(sysroot, 'usr', 'bin', 'gdbus-codegen'))}

[built-in options]
c_link_args = {q(*source_build.link_args(sysroot))}

[properties]
sys_root = '{sysroot}'
pkg_config_libdir = {q(os.path.join(libdir, 'pkgconfig'), os.path.join(sysroot, 'usr', 'share', 'pkgconfig'))}

[host_machine]
system = 'linux'
cpu_family = 'aarch64'
cpu = 'cortex-a53'
endian = 'little'
""")


def _build(cache, apt, version, work, tree):
    t0 = time.monotonic()
    source_build.require(SOURCE, ["meson", "ninja", "pkg-config", TRIPLET + "-gcc"])
    print(f">> rauc: fetching {SOURCE} {version} source and the arm64 development packages", flush=True)
    src = source_build.source(apt, SOURCE, version, work)
    sysroot = source_build.sysroot(cache, os.path.join(work, "sysroot"), DEV_PACKAGES)
    cross = os.path.join(work, "cross.ini")
    _cross_file(cross, sysroot)
    build = os.path.join(work, "build")
    log = os.path.join(work, "build.log")
    print(f">> rauc: building without network, streaming and GPT ({' '.join(OPTIONS[:5])})", flush=True)
    with open(log, "w") as out:
        for cmd in (["meson", "setup", build, src, "--cross-file", cross, "--wrap-mode=nodownload",
                     "--prefix=/usr", "--buildtype=release", *OPTIONS],
                    ["ninja", "-C", build, f"-j{os.cpu_count() or 1}", "rauc"]):
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise source_build.SourceBuildError(f"rauc: {' '.join(cmd[:2])} failed; see {log}")
    source_build.install(build, tree, ["rauc"])
    print(f">> rauc: built in {time.monotonic() - t0:.0f} s", flush=True)
