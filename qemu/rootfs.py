"""Root filesystem staging: unpack packages, merge /usr, trim, busybox links, overlay, firmware,
bytecode, library check, manifest."""
import fnmatch
import gzip
import json
import os
import re
import shutil
import subprocess

import debs
import hostpython

# Trimmed after unpacking: documentation, locales, headers, glibc's gconv (19 MB, we only use UTF-8),
# and the parts of CPython the firmware never imports. {py} is the guest's CPython (python3.13).
TRIM = [
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
    "usr/share/bug", "usr/share/bash-completion", "usr/share/zsh", "usr/share/gdb", "usr/share/menu",
    "usr/share/pixmaps", "usr/share/applications", "usr/share/doc-base", "usr/share/python3",
    "usr/share/binfmts", "usr/include", "usr/lib/aarch64-linux-gnu/gconv",
    "usr/lib/aarch64-linux-gnu/pkgconfig", "usr/lib/aarch64-linux-gnu/*.a", "usr/lib/aarch64-linux-gnu/audit",
    "usr/lib/{py}/test", "usr/lib/{py}/idlelib", "usr/lib/{py}/tkinter",
    "usr/lib/{py}/ensurepip", "usr/lib/{py}/pydoc_data",
    "usr/lib/{py}/turtledemo", "usr/lib/{py}/turtle.py", "usr/lib/{py}/venv",
    "usr/lib/{py}/config-*-aarch64-linux-gnu",
    "usr/lib/{py}/lib-dynload/_test*", "usr/lib/{py}/lib-dynload/_ctypes_test*",
    "usr/lib/{py}/lib-dynload/xxlimited*", "usr/lib/{py}/lib-dynload/_xxtestfuzz*",
    "usr/lib/{py}/lib-dynload/_tkinter*", "usr/lib/python3/dist-packages/*/tests",
    # the C/C++/Cython sources some extension packages ship beside their built modules
    "usr/lib/python3/dist-packages/*/*.c", "usr/lib/python3/dist-packages/*/*.cpp",
    "usr/lib/python3/dist-packages/*/*.pyx", "usr/lib/python3/dist-packages/*/*.pxd",
    "usr/lib/python3/dist-packages/*/*.h",
    "usr/bin/pydoc*", "usr/bin/pygettext*", "usr/bin/idle*", "var/*",
    # CPython modules for terminals and old databases (and with them readline, ncurses, Berkeley DB
    # libraries); iproute2's tc plugins and arpd (Berkeley DB); OpenSSL engines
    "usr/lib/{py}/lib-dynload/_dbm.*", "usr/lib/{py}/lib-dynload/readline.*",
    "usr/lib/{py}/lib-dynload/_curses*", "usr/lib/{py}/curses", "usr/lib/{py}/dbm/ndbm.py",
    "usr/lib/aarch64-linux-gnu/tc", "usr/sbin/arpd", "usr/bin/ss", "usr/lib/aarch64-linux-gnu/engines-3",
    # pulled in by RAUC (libcurl, glib): SASL's plugins (curl's LDAP uses none; sasldb needs
    # Berkeley DB), GIO's desktop and schema tools
    "usr/lib/aarch64-linux-gnu/sasl2", "usr/lib/aarch64-linux-gnu/glib-2.0", "usr/bin/dbus-run-session",
    # chrony's and rsyslog's files for other init systems, network managers and logrotate, and
    # their default configurations: S45ntpd and S11syslog write theirs into /run
    "etc/init.d/chrony", "etc/init.d/rsyslog", "etc/default/chrony", "etc/chrony", "etc/dhcp",
    "etc/network", "etc/ppp", "etc/apparmor.d", "etc/logrotate.d", "etc/rsyslog.conf",
    "etc/rsyslog.d", "usr/lib/NetworkManager", "usr/lib/networkd-dispatcher",
    "usr/lib/systemd/system/chrony*", "usr/lib/systemd/system/rsyslog*",
    "usr/lib/systemd/ntp-units.d", "usr/libexec/chrony", "usr/share/chrony", "etc/logcheck",
    "usr/lib/rsyslog",
]
# rsyslog's loadable modules that S11syslog uses (the local socket, the kernel log, the message
# space trimmer, and omfwd's TCP client with its network stream drivers); the other ~40 are trimmed
RSYSLOG_MODULES = "usr/lib/aarch64-linux-gnu/rsyslog"
RSYSLOG_MODULES_USED = {"imuxsock.so", "imklog.so", "mmrm1stspace.so", "lmnet.so", "lmnetstrms.so",
                        "lmnsd_ptcp.so", "lmtcpclt.so"}
# Never imported by the firmware (found with modulefinder from every firmware module, and checked
# by importing the daemon in the guest's CPython version): the test, debugger, documentation and
# REPL tooling, multiprocessing and XML-RPC, SQLite (only pyroute2's unused NDB), decimal, zoneinfo,
# sub-interpreters, XML, bz2/lzma (busybox has the tools; backups are gzip) and the CJK codecs (the
# page and the daemon speak UTF-8: an unknown charset is a LookupError naming it). Kept on purpose:
# urllib.request with http.client and email (ikecore.crl_fetch fetches CRLs over HTTP; aiohttp
# needs http and email too), so CRL fetching adds only its own module to the image.
TRIM_UNUSED_STDLIB = [
    "usr/lib/{py}/unittest", "usr/lib/{py}/doctest.py", "usr/lib/{py}/pdb.py", "usr/lib/{py}/bdb.py",
    "usr/lib/{py}/pydoc.py", "usr/lib/{py}/_pyrepl", "usr/lib/{py}/lib-dynload/termios.*",
    "usr/lib/{py}/multiprocessing", "usr/lib/{py}/lib-dynload/_multiprocessing.*",
    "usr/lib/{py}/lib-dynload/_posixshmem.*", "usr/lib/{py}/xmlrpc", "usr/lib/{py}/xml",
    "usr/lib/{py}/lib-dynload/pyexpat.*", "usr/lib/{py}/lib-dynload/_elementtree.*",
    "usr/lib/{py}/plistlib.py", "usr/lib/{py}/wsgiref", "usr/lib/{py}/mailbox.py",
    "usr/lib/{py}/imaplib.py", "usr/lib/{py}/poplib.py", "usr/lib/{py}/smtplib.py",
    "usr/lib/{py}/sqlite3", "usr/lib/{py}/dbm/sqlite3.py", "usr/lib/{py}/lib-dynload/_sqlite3.*",
    "usr/lib/{py}/decimal.py", "usr/lib/{py}/_pydecimal.py", "usr/lib/{py}/lib-dynload/_decimal.*",
    "usr/lib/{py}/fractions.py", "usr/lib/{py}/statistics.py",
    "usr/lib/{py}/zoneinfo", "usr/lib/{py}/lib-dynload/_zoneinfo.*",
    "usr/lib/{py}/lib-dynload/_interp*", "usr/lib/{py}/lib-dynload/xxsubtype.*",
    "usr/lib/{py}/bz2.py", "usr/lib/{py}/lib-dynload/_bz2.*",
    "usr/lib/{py}/lzma.py", "usr/lib/{py}/lib-dynload/_lzma.*",
    "usr/lib/{py}/lib-dynload/_codecs_*", "usr/lib/{py}/lib-dynload/_multibytecodec.*",
    *(f"usr/lib/{{py}}/encodings/{c}.py" for c in (
        "big5", "big5hkscs", "cp932", "cp949", "cp950", "euc_*", "gb*", "hz", "iso2022_*", "johab",
        "shift_jis*")),
    "usr/lib/{py}/antigravity.py", "usr/lib/{py}/this.py",
    "usr/lib/{py}/__phello__", "usr/lib/{py}/__hello__.py",
]
# Of pyroute2 the firmware imports only the netlink message classes (ikecore/xfrm_messages.py skips
# the package's __init__, which loads IPRoute, NDB and SQLite); everything else goes, with its
# command-line tools. Paths under the package kept; the rest of it is deleted.
KEEP_ONLY = {
    "usr/lib/python3/dist-packages/pyroute2": ["__init__.py", "common.py", "config",
                                               "netlink/__init__.py", "netlink/exceptions.py"],
}
# Beside iproute2's `ip` (which the daemon and the init scripts use) its other tools, never run;
# libtic (only ncurses' tic links it: nft needs libtinfo alone)
TRIM_UNUSED_TOOLS = [
    *(f"usr/{d}/{t}" for d in ("bin", "sbin") for t in (
        "bridge", "ctstat", "dcb", "devlink", "genl", "ifstat", "lnstat", "nstat", "rdma", "routel",
        "rtacct", "rtmon", "rtstat", "tc", "tipc", "vdpa", "ss2", "pyroute2-*")),
    "usr/lib/aarch64-linux-gnu/libtic.so*",
]
LIB_DIRS = ["usr/lib/aarch64-linux-gnu", "usr/lib", "usr/local/lib"]
MERGED = ("bin", "sbin", "lib")       # Debian's merged /usr: /bin -> usr/bin ...
SITE = "usr/lib/python3/dist-packages"


class BuildError(Exception):
    pass


def guest_path(member):
    """Path of a packaged file in the merged-/usr tree ('./bin/ip' -> 'usr/bin/ip')."""
    p = member.lstrip("./")
    top = p.split("/", 1)[0]
    return "usr/" + p if top in MERGED else p


def _merge_dir(src, dst):
    for name in os.listdir(src):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if os.path.isdir(s) and not os.path.islink(s) and os.path.isdir(d) and not os.path.islink(d):
            _merge_dir(s, d)
        elif os.path.lexists(d):
            if os.path.islink(s) or os.path.isdir(s):   # usually a compat symlink; the real one wins
                continue
            raise BuildError(f"usr-merge conflict: {s} and {d} both exist")
        else:
            os.rename(s, d)
    shutil.rmtree(src)


def usr_merge(staging):
    for top in MERGED:
        src = os.path.join(staging, top)
        dst = os.path.join(staging, "usr", top)
        os.makedirs(dst, exist_ok=True)
        if os.path.isdir(src) and not os.path.islink(src):
            _merge_dir(src, dst)
        if not os.path.lexists(src):
            os.symlink("usr/" + top, src)


def python_name(packages):
    """The guest's CPython ('python3.13'), from its pythonX.Y-minimal package."""
    names = [m.group(1) for n, _v, _p in packages for m in [re.match(r"^(python3\.\d+)-minimal$", n)] if m]
    if len(names) != 1:
        raise BuildError(f"expected one pythonX.Y-minimal package, got {names}")
    return names[0]


def trim(staging, py):
    modules = os.path.join(staging, RSYSLOG_MODULES)
    unused = [os.path.join(RSYSLOG_MODULES, name) for name in
              (os.listdir(modules) if os.path.isdir(modules) else ()) if name not in RSYSLOG_MODULES_USED]
    for pattern in TRIM + TRIM_UNUSED_STDLIB + TRIM_UNUSED_TOOLS + unused:
        for rel in _glob(staging, pattern.format(py=py)):
            _remove(os.path.join(staging, rel))
    for top, keep in KEEP_ONLY.items():
        keep_only(os.path.join(staging, top), keep)


def _remove(p):
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
    else:
        os.remove(p)


def keep_only(root, keep):
    """Delete everything under root but the paths in keep (files, or directories kept whole)."""
    if not os.path.isdir(root):
        return
    missing = [k for k in keep if not os.path.lexists(os.path.join(root, k))]
    if missing:     # a new upstream layout: fail rather than ship a package without its core
        raise BuildError(f"{root}: expected {', '.join(missing)} to keep")
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        rel = os.path.relpath(dirpath, root)
        if any(rel == k or rel.startswith(k + "/") for k in keep):
            continue
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            if os.path.normpath(os.path.join(rel, name)) not in keep:
                os.remove(os.path.join(dirpath, name))
        if rel != "." and not os.listdir(dirpath):
            os.rmdir(dirpath)


def _glob(root, pattern):
    parts = pattern.split("/")
    found = [""]
    for part in parts:
        nxt = []
        for base in found:
            d = os.path.join(root, base)
            if not os.path.isdir(d):
                continue
            names = os.listdir(d) if any(c in part for c in "*?[") else ([part] if os.path.lexists(os.path.join(d, part)) else [])
            nxt += [os.path.join(base, n) for n in names if fnmatch.fnmatch(n, part)]
        found = nxt
    return found


def busybox_links(staging):
    """Symlink every applet of busybox that no real package provides (iproute2's ip stays)."""
    r = subprocess.run(["busybox", "--list-full"], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError("host busybox (busybox-static) is needed to list the applets: make deps")
    real = set()
    for d in ("usr/bin", "usr/sbin"):
        real.update(os.listdir(os.path.join(staging, d)))
    for applet in r.stdout.split():
        rel = guest_path(applet)
        name = os.path.basename(rel)
        if name == "linuxrc" or name in real:      # a real tool of that name wins wherever it is
            continue
        p = os.path.join(staging, rel)
        if not os.path.lexists(p):
            os.makedirs(os.path.dirname(p), exist_ok=True)
            os.symlink("/bin/busybox", p)


def copy_tree(src, dst, skip=()):
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and os.path.normpath(os.path.join(rel, d)) not in skip]
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for name in filenames:
            if name.endswith(".pyc"):
                continue
            s = os.path.join(dirpath, name)
            d = os.path.normpath(os.path.join(dst, rel, name))
            if os.path.lexists(d):
                os.remove(d)
            if os.path.islink(s):
                os.symlink(os.readlink(s), d)
            else:
                shutil.copy2(s, d)


def install_overlay(staging, top):
    """rootfs-overlay/ over the tree. /etc/ikecore (the daemon's defaults) becomes the factory
    defaults under /usr/share/ikecore/factory and /etc/ikecore links to the data partition,
    where S10data copies missing files from the factory set at boot."""
    copy_tree(os.path.join(top, "rootfs-overlay"), staging)
    etc_ike = os.path.join(staging, "etc", "ikecore")
    factory = os.path.join(staging, "usr", "share", "ikecore", "factory")
    os.makedirs(os.path.dirname(factory), exist_ok=True)
    if os.path.isdir(etc_ike) and not os.path.islink(etc_ike):
        shutil.move(etc_ike, factory)
    else:
        os.makedirs(factory, exist_ok=True)
    os.symlink("/data/ikecore", etc_ike)
    for d in ("proc", "sys", "dev", "run", "tmp", "data", "var", "root", "mnt"):
        os.makedirs(os.path.join(staging, d), exist_ok=True)
    os.chmod(os.path.join(staging, "tmp"), 0o1777)
    # git keeps only the executable bit: modes that matter are set here, not taken from the clone
    shadow = os.path.join(staging, "etc", "shadow")
    if os.path.exists(shadow):
        os.chmod(shadow, 0o600)


def install_firmware(staging, top):
    """Every package under firmware/ (a directory with __init__.py) into dist-packages."""
    installed = []
    fw = os.path.join(top, "firmware")
    for name in sorted(os.listdir(fw)) if os.path.isdir(fw) else []:
        src = os.path.join(fw, name)
        if os.path.isfile(os.path.join(src, "__init__.py")):
            copy_tree(src, os.path.join(staging, SITE, name), skip=("tests",))
            installed.append(name)
    return installed


def byte_compile(staging, firmware_packages, py, host_python):
    """Compile with host_python (the guest's CPython version built for the host: same bytecode).
    Third-party code and the stdlib keep only the bytecode (sourceless .pyc beside where the .py
    was: about 4 MiB less squashfs); our own firmware keeps its sources so its tracebacks show the lines."""
    link = os.path.join(staging, "usr", "bin", "python3")
    if not os.path.lexists(link):
        os.symlink(py, link)
    want = hostpython.guest_magic(os.path.join(staging, "usr/lib", py))
    have = hostpython.host_magic(host_python)
    if want != have:
        raise BuildError(f"{host_python} writes bytecode magic {have!r}; the guest's {py} needs {want!r}")
    ours = [os.path.join(staging, SITE, p) for p in firmware_packages]
    theirs = os.path.join(staging, "usr/lib", py), os.path.join(staging, SITE)
    base = [host_python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
            "-s", staging, "-p", "/"]
    runs = [base + ["-b", "-x", "|".join(re.escape(o) for o in ours) or "^$", *theirs]]
    if ours:
        runs.append(base + ours)
    for cmd in runs:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError("byte-compiling failed:\n" + (r.stdout + r.stderr)[-3000:])
    ours_prefix = tuple(o + os.sep for o in ours)
    for d in theirs:
        for dirpath, _dirs, files in os.walk(d):
            if (dirpath + os.sep).startswith(ours_prefix):
                continue
            for name in files:
                if name.endswith(".py") and name + "c" in files:
                    os.remove(os.path.join(dirpath, name))


def assemble(staging, packages, top, host_python, rebuilt=None):
    """Build the tree; returns {guest path: package name} for the manifest. rebuilt: {guest path:
    file} of binaries to install over the packages' (qemu/source_build.py)."""
    py = python_name(packages)
    if os.path.exists(staging):
        shutil.rmtree(staging)
    os.makedirs(staging)
    owners = {}
    for name, _ver, path in packages:
        listing = subprocess.run(["dpkg-deb", "-c", path], capture_output=True, text=True, check=True).stdout
        for line in listing.splitlines():
            member = line.split(None, 5)[-1].split(" -> ")[0]
            owners.setdefault(guest_path(member), name)
        debs.unpack(path, staging)
    usr_merge(staging)
    for guest, built in (rebuilt or {}).items():
        shutil.copy2(built, os.path.join(staging, guest))
    trim(staging, py)
    busybox_links(staging)
    # /bin/sh is dash, not busybox: Debian's busybox-static prefers its own applets to PATH
    # (a busybox sh would run busybox `ip` instead of iproute2's, which has xfrm and netns)
    sh = os.path.join(staging, "usr/bin/sh")
    if os.path.lexists(sh):
        os.remove(sh)
    os.symlink("dash", sh)
    install_overlay(staging, top)
    fw = install_firmware(staging, top)
    for p in fw:
        owners[f"{SITE}/{p}"] = "firmware"
    byte_compile(staging, fw, py, host_python)
    return owners


def _readelf():
    return shutil.which("aarch64-linux-gnu-readelf") or shutil.which("readelf")


def check_needed(staging):
    """Every shared library an ELF file names in NEEDED must be in the tree: in the library
    directories, or in one its RUNPATH/RPATH names (strongSwan keeps its libraries in /usr/lib/ipsec)."""
    have = set()
    for d in LIB_DIRS:
        full = os.path.join(staging, d)
        if os.path.isdir(full):
            have.update(os.listdir(full))
    elves = []
    for dirpath, _dirs, files in os.walk(staging):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    elves.append(p)
    readelf = _readelf()
    needed = {}         # file -> ([libraries], [runpath directories])
    for i in range(0, len(elves), 200):
        out = subprocess.run([readelf, "-dW", *elves[i:i + 200]], capture_output=True, text=True).stdout
        current = None
        for line in out.splitlines():
            m = re.match(r"^File: (.*)$", line)
            if m:
                current = needed.setdefault(m.group(1), ([], []))
                continue
            m = re.search(r"\(NEEDED\)\s+Shared library: \[(.+)\]", line)
            if m and current is not None:
                current[0].append(m.group(1))
            m = re.search(r"\((?:RUNPATH|RPATH)\)\s+Library (?:runpath|rpath): \[(.+)\]", line)
            if m and current is not None:
                current[1].extend(m.group(1).split(":"))
    missing = []
    for path, (libs, runpaths) in needed.items():
        local = set()
        for d in runpaths:
            full = os.path.join(staging, d.lstrip("/"))
            if os.path.isdir(full):
                local.update(os.listdir(full))
        missing += [(os.path.relpath(path, staging), lib) for lib in libs if lib not in have | local]
    if missing:
        lines = "\n".join(f"  {f} needs {lib}" for f, lib in missing[:40])
        raise BuildError(f"{len(missing)} missing shared libraries (drop it from qemu/packages.exclude "
                         f"or add its package to qemu/packages.txt):\n{lines}")
    return len(elves)


def _owner(rel, owners):
    """Which package (or 'firmware', 'rootfs-overlay') a file in the tree belongs to; a .pyc
    belongs to the owner of its .py."""
    if "/__pycache__/" in rel:
        d, f = rel.split("/__pycache__/")
        rel = d + "/" + f.split(".")[0] + ".py"
    elif rel.endswith(".pyc"):
        rel = rel[:-1]
    if rel in owners:
        return owners[rel]
    parts = rel.split("/")
    for i in range(len(parts) - 1, 0, -1):
        if owners.get("/".join(parts[:i])) == "firmware":
            return "firmware"
    return "rootfs-overlay"


def write_manifest(images, staging, kernel, rootfs_img, packages, owners, boot_initramfs=None):
    sizes = {}
    blobs = {}
    for dirpath, _dirs, files in os.walk(staging):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                continue
            rel = os.path.relpath(p, staging)
            o = _owner(rel, owners)
            sizes[o] = sizes.get(o, 0) + os.path.getsize(p)
            blobs.setdefault(o, []).append(p)
    # each part's share of the squashfs: its content compressed alone (zstd -12), scaled to the real size
    est = {}
    for o, files in blobs.items():
        data = b"".join(open(f, "rb").read() for f in sorted(files))
        est[o] = len(subprocess.run(["zstd", "-12", "-q", "-c"], input=data, capture_output=True, check=True).stdout)
    rootfs_bytes = os.path.getsize(rootfs_img)
    scale = rootfs_bytes / max(1, sum(est.values()))
    versions = {n: v for n, v, _ in packages}
    parts = []
    for o in sorted(sizes, key=lambda k: -est[k]):
        parts.append({"name": o, "version": versions.get(o, ""), "unpacked_bytes": sizes[o],
                      "compressed_bytes": int(est[o] * scale)})
    manifest = {
        "kernel": _kernel_entry(kernel),
        "rootfs": {"file": os.path.basename(rootfs_img), "format": "squashfs (zstd -15, 256 KiB blocks) on virtio-blk",
                   "bytes": rootfs_bytes, "unpacked_bytes": sum(sizes.values())},
        "packages": [{"name": n, "version": v} for n, v, _ in packages],
        # the A/B boot selector (qemu/bootsel.c) the kernel starts before the root filesystem
        "boot": ({"file": os.path.basename(boot_initramfs), "bytes": os.path.getsize(boot_initramfs)}
                 if boot_initramfs else None),
        "parts": parts,
    }
    _write(images, manifest)


def _kernel_entry(kernel):
    data = open(kernel, "rb").read()
    config = open(kernel + ".config").read() if os.path.exists(kernel + ".config") else ""
    m = re.search(r"Linux/arm64 (\S+) Kernel Configuration", config)
    return {"file": os.path.basename(kernel), "bytes": len(data),
            "gzip_bytes": len(gzip.compress(data, 9, mtime=0)), "version": m.group(1) if m else ""}


def update_manifest_kernel(images, kernel):
    path = os.path.join(images, "manifest.json")
    manifest = json.load(open(path))
    manifest["kernel"] = _kernel_entry(kernel)
    _write(images, manifest)


def _write(images, manifest):
    k, r, b = manifest["kernel"], manifest["rootfs"], manifest.get("boot")
    manifest["total_compressed_bytes"] = k["gzip_bytes"] + r["bytes"] + (b["bytes"] if b else 0)
    with open(os.path.join(images, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    mib = 1024 * 1024
    lines = [f"kernel   {k['file']:<18} {k['bytes'] / mib:7.2f} MiB ({k['gzip_bytes'] / mib:.2f} MiB gzip)  Linux {k['version']}",
             f"rootfs   {r['file']:<18} {r['bytes'] / mib:7.2f} MiB  ({r['unpacked_bytes'] / mib:.1f} MiB unpacked; {r['format']})",
             *([f"boot     {b['file']:<18} {b['bytes'] / mib:7.2f} MiB  (A/B boot selector, gzip)"] if b else []),
             f"total    compressed kernel + {'boot selector + ' if b else ''}root filesystem: "
             f"{manifest['total_compressed_bytes'] / mib:.2f} MiB",
             "", f"{'part':<32} {'version':<28} {'unpacked':>10} {'compressed':>11}"]
    for p in manifest["parts"]:
        lines.append(f"{p['name']:<32} {p['version']:<28} {p['unpacked_bytes'] / 1024:8.0f} K {p['compressed_bytes'] / 1024:9.0f} K")
    with open(os.path.join(images, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
