"""A host (x86-64) CPython of the guest's exact version, to byte-compile the image.

The guest's stdlib and dist-packages are shipped as bytecode only, and bytecode is only loaded
by the CPython minor version that wrote it. The host (Debian 12) has CPython 3.11 while the guest
(Debian 13) has 3.13, so the image build compiles the guest's own CPython source package (fetched
through the private apt state of debs.py, hash-checked by apt, Debian's patches applied by
dpkg-source) for the host and runs it from its build tree. Nothing foreign runs: it is built
here from source, like the kernel. Cached machine-wide per source version ($IKECORE_CACHE/hostpython).
"""
import fcntl
import glob
import os
import re
import shutil
import subprocess
import time

SOURCE = "python3.13"      # the guest interpreter's source package (and binary package name)


class HostPythonError(Exception):
    pass


def guest_magic(stdlib):
    """Bytecode magic of the guest's CPython, read from its importlib source."""
    with open(os.path.join(stdlib, "importlib", "_bootstrap_external.py")) as f:
        m = re.search(r"^MAGIC_NUMBER = \((\d+)\)\.to_bytes\(2, 'little'\) \+ b'\\r\\n'", f.read(), re.M)
    if not m:
        raise HostPythonError(f"no MAGIC_NUMBER in {stdlib}/importlib/_bootstrap_external.py")
    return int(m.group(1)).to_bytes(2, "little") + b"\r\n"


def source_version(deb_path, binary_version):
    """Version of the source package a .deb was built from (differs after a binNMU: +bN)."""
    field = subprocess.run(["dpkg-deb", "-f", deb_path, "Source"], capture_output=True, text=True,
                           check=True).stdout.strip()
    m = re.match(r"^\S+ \((\S+)\)$", field)
    return m.group(1) if m else binary_version


def host_magic(python):
    out = subprocess.run([python, "-c", "import importlib.util, sys; "
                          "sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"],
                         capture_output=True, text=True, check=True).stdout
    return bytes.fromhex(out)


def interpreter(apt, version):
    """Path of a host python built from SOURCE=version (building it once, ~5 min on 2 cores)."""
    root = os.path.join(os.path.dirname(apt.root), "hostpython")
    tree = os.path.join(root, version.replace(":", "%3a"))
    python = os.path.join(tree, "python")
    done = os.path.join(tree, ".built")
    if os.path.exists(done):
        return python
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".lock"), "w") as lock:     # parallel clones share the cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(done):
            return python
        _build(apt, version, root, tree)
    return python


def _build(apt, version, root, tree):
    t0 = time.monotonic()
    print(f">> hostpython: fetching and unpacking {SOURCE} {version} source", flush=True)
    work = os.path.join(root, "src")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    apt.run_in(work, "source", f"{SOURCE}={version}")         # .dsc, .orig, .debian; dpkg-source -x
    unpacked = [d for d in glob.glob(os.path.join(work, f"{SOURCE}-*")) if os.path.isdir(d)]
    if len(unpacked) != 1:
        raise HostPythonError(f"apt-get source left {unpacked} in {work}")
    shutil.rmtree(tree, ignore_errors=True)
    os.rename(unpacked[0], tree)
    shutil.rmtree(work)
    jobs = str(os.cpu_count() or 1)
    log = os.path.join(tree, "hostpython-build.log")
    print(f">> hostpython: building the interpreter with -j{jobs} (only to run compileall)", flush=True)
    with open(log, "w") as out:
        for cmd in (["./configure", "--without-ensurepip", "--disable-test-modules"],
                    ["make", f"-j{jobs}"]):
            if subprocess.run(cmd, cwd=tree, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise HostPythonError(f"{' '.join(cmd)} failed; see {log}")
    r = subprocess.run([os.path.join(tree, "python"), "-c", "import concurrent.futures, compileall"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise HostPythonError(f"built interpreter does not run compileall:\n{r.stderr[-2000:]}")
    open(os.path.join(tree, ".built"), "w").close()
    print(f">> hostpython: built in {time.monotonic() - t0:.0f} s", flush=True)
