"""Programs of the image rebuilt from Debian's own source packages with fewer features.

Debian builds its packages with every feature, and some features link large library chains a
router never uses (rauc's network updates: libcurl-gnutls; chrony's NTS: GnuTLS and Nettle). The
builders (rauc_build.py, chrony_build.py) fetch the same source package through debs.py's private
apt state (Debian's patches applied by dpkg-source), cross-compile it for arm64 against the
suite's -dev packages unpacked into a sysroot, and keep the result machine-wide per source
version and options ($IKECORE_CACHE/<name>/<version>-<key>). The image keeps Debian's package for
its other files and gets the rebuilt binaries over the package's.
"""
import fcntl
import glob
import hashlib
import os
import shutil
import subprocess

import debs

TRIPLET = "aarch64-linux-gnu"
DEV_EXCLUDES = ["python3*", "perl*", "libperl*"]       # tools of the -dev packages, not needed here


class SourceBuildError(Exception):
    pass


def cached(cache, name, version, key_parts, files, build):
    """Directory holding files, built once per version and key_parts by build(apt, work, tree)."""
    apt = debs.AptCache(cache)
    key = hashlib.sha256(" ".join([version] + list(key_parts)).encode()).hexdigest()[:12]
    tree = os.path.join(os.path.dirname(apt.root), name, f"{version.replace(':', '%3a')}-{key}")
    done = lambda: all(os.path.exists(os.path.join(tree, f)) for f in files)   # noqa: E731
    if done():
        return tree
    os.makedirs(os.path.dirname(tree), exist_ok=True)
    with open(os.path.join(os.path.dirname(tree), ".lock"), "w") as lock:   # parallel clones
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done():
            work = tree + ".work"
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work)
            build(apt, work, tree)
            shutil.rmtree(work)
    return tree


def require(name, tools):
    for tool in tools:
        if not shutil.which(tool):
            raise SourceBuildError(f"{tool} is needed to build {name} for the image: make deps")


def source(apt, name, version, work):
    """Unpack Debian's source package name=version in work; returns its directory."""
    apt.run_in(work, "source", f"{name}={version}")          # .dsc, .orig, .debian; dpkg-source -x
    unpacked = [d for d in glob.glob(os.path.join(work, f"{name}-*")) if os.path.isdir(d)]
    if len(unpacked) != 1:
        raise SourceBuildError(f"apt-get source left {unpacked} in {work}")
    return unpacked[0]


def sysroot(cache, root, packages):
    """The arm64 development packages unpacked, with merged /usr's /lib (libc.so names it)."""
    for _name, _ver, path in debs.resolve_and_fetch(cache, packages, DEV_EXCLUDES):
        debs.unpack(path, root)
    if not os.path.lexists(os.path.join(root, "lib")):
        os.symlink("usr/lib", os.path.join(root, "lib"))
    return root


def libdir(root):
    return os.path.join(root, "usr", "lib", TRIPLET)


def link_args(root):
    """The sysroot's C library first: Debian's cross linker otherwise takes the host's older
    /usr/<triplet> one, which the suite's libraries do not link against."""
    lib = libdir(root)
    return ["-B" + lib, "-L" + lib, "-Wl,-rpath-link=" + lib]


def install(built, tree, names):
    """Strip the built programs and move them into the cache tree, each atomically."""
    os.makedirs(tree, exist_ok=True)
    for name in names:
        tmp = os.path.join(tree, name + ".tmp")
        shutil.copy2(os.path.join(built, name), tmp)
        subprocess.run([TRIPLET + "-strip", tmp], check=True)
        os.replace(tmp, os.path.join(tree, name))
