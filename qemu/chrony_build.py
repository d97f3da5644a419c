"""chronyd and chronyc for the image, built from Debian's own chrony source without NTS and seccomp.

Debian 13's chronyd links GnuTLS and Nettle for NTS (Network Time Security), which S45ntpd does
not configure, and libseccomp, so shipping it would bring back the libraries the rauc rebuild
removed (qemu/packages.exclude). This builds the same source package with chrony's own configure
(source_build.py: Debian's patches, the arm64 sysroot, the cache in $IKECORE_CACHE/chrony)
without NTS, Nettle/GnuTLS (symmetric keys fall back to chrony's built-in MD5) and seccomp, and
chronyc without line editing (S45ntpd runs it non-interactively); libcap stays (chronyd drops root
to _chrony, keeping only CAP_SYS_TIME: libcap2 is in the image anyway).
"""
import os
import subprocess
import time

import source_build
from source_build import TRIPLET

SOURCE = "chrony"
PROGRAMS = ["chronyd", "chronyc"]
# Debian's paths (debian/rules) so the package's other files and S45ntpd's find them
OPTIONS = ["--prefix=/usr", "--sysconfdir=/etc/chrony", "--localstatedir=/var",
           "--with-user=_chrony", "--with-sendmail=/usr/sbin/sendmail",
           "--with-pidfile=/run/chrony/chronyd.pid", "--chronyrundir=/run/chrony",
           "--disable-nts", "--without-nettle", "--without-gnutls", "--without-nss",
           "--without-tomcrypt", "--without-seccomp", "--disable-readline", "--without-editline",
           "--disable-sechash", "--disable-scfilter", "--enable-ntp-signd=no"]
DEV_PACKAGES = ["libc6-dev", "libcap-dev"]


def binaries(cache, version):
    """{guest path: built file} of chronyd and chronyc from SOURCE=version (built once)."""
    tree = source_build.cached(cache, SOURCE, version, OPTIONS + DEV_PACKAGES, PROGRAMS,
                               lambda apt, work, tree: _build(cache, apt, version, work, tree))
    return {f"usr/{'sbin' if p == 'chronyd' else 'bin'}/{p}": os.path.join(tree, p) for p in PROGRAMS}


def _build(cache, apt, version, work, tree):
    t0 = time.monotonic()
    source_build.require(SOURCE, ["make", TRIPLET + "-gcc"])
    print(f">> chrony: fetching {SOURCE} {version} source and the arm64 development packages", flush=True)
    src = source_build.source(apt, SOURCE, version, work)
    root = source_build.sysroot(cache, os.path.join(work, "sysroot"), DEV_PACKAGES)
    env = dict(os.environ, CC=f"{TRIPLET}-gcc --sysroot={root}", CFLAGS="-O2",
               LDFLAGS=" ".join(source_build.link_args(root)))
    log = os.path.join(work, "build.log")
    print(">> chrony: building without NTS, Nettle/GnuTLS and seccomp", flush=True)
    with open(log, "w") as out:
        for cmd in (["./configure", "--host-system=Linux", "--host-machine=aarch64", *OPTIONS],
                    ["make", f"-j{os.cpu_count() or 1}", *PROGRAMS]):
            if subprocess.run(cmd, cwd=src, env=env, stdout=out, stderr=subprocess.STDOUT).returncode:
                raise source_build.SourceBuildError(f"chrony: {cmd[0]} failed; see {log}")
    source_build.install(src, tree, PROGRAMS)
    print(f">> chrony: built in {time.monotonic() - t0:.0f} s", flush=True)
