"""Debian 13 (trixie) arm64 packages for the image: resolve, download, unpack.

apt does the dependency resolution with a private state directory (its own sources list, package
lists, dpkg status and archive cache under the machine-wide cache), so the host's apt setup is
never touched. Packages are only unpacked (`dpkg-deb -x`); no maintainer script and no foreign
binary ever runs.
"""
import fnmatch
import hashlib
import json
import os
import re
import subprocess
import time

SUITE = "trixie"
SUITES = (SUITE, f"{SUITE}-updates")
MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LISTS_MAX_AGE_S = 7 * 24 * 3600


class DebError(Exception):
    pass


def read_list(path):
    """Non-empty, non-comment lines of a package list file."""
    with open(path) as f:
        return [l.split("#")[0].strip() for l in f if l.split("#")[0].strip()]


class AptCache:
    def __init__(self, cache_dir):
        self.root = os.path.join(cache_dir, "apt")
        self.lists = os.path.join(self.root, "lists")
        self.archives = os.path.join(self.root, "archives")
        self.state = os.path.join(self.root, "state")
        self.etc = os.path.join(self.root, "etc")
        for d in (os.path.join(self.lists, "partial"), os.path.join(self.archives, "partial"),
                  self.state, os.path.join(self.etc, "parts"), os.path.join(self.etc, "prefs")):
            os.makedirs(d, exist_ok=True)
        self.status = os.path.join(self.state, "status")   # empty: nothing "installed"
        if not os.path.exists(self.status):
            open(self.status, "w").close()
        self.sources = os.path.join(self.etc, "sources.list")
        opts = f"arch=arm64 signed-by={KEYRING}"
        text = "".join(f"deb [{opts}] {MIRROR} {s} main\n" for s in SUITES)
        text += f"deb [{opts}] {SECURITY} {SUITE}-security main\n"
        # sources too: the host interpreter that byte-compiles for the guest is built from the
        # guest's own CPython source (qemu/build_hostpython.sh)
        text += "".join(f"deb-src [signed-by={KEYRING}] {MIRROR} {s} main\n" for s in SUITES)
        text += f"deb-src [signed-by={KEYRING}] {SECURITY} {SUITE}-security main\n"
        if not os.path.exists(self.sources) or open(self.sources).read() != text:
            with open(self.sources, "w") as f:
                f.write(text)
            stamp = os.path.join(self.root, "lists.updated")
            if os.path.exists(stamp):       # other suites now (a release upgrade): lists are stale
                os.remove(stamp)

    def _apt(self, *args, cwd=None):
        opts = {
            "APT::Architecture": "arm64", "APT::Architectures": "arm64",
            "Dir::State": self.state, "Dir::State::Lists": self.lists,
            "Dir::State::status": self.status, "Dir::Cache": self.root,
            "Dir::Cache::archives": self.archives, "Dir::Etc::SourceList": self.sources,
            "Dir::Etc::SourceParts": os.path.join(self.etc, "parts"),
            "Dir::Etc::Parts": os.path.join(self.etc, "parts"),
            "Dir::Etc::PreferencesParts": os.path.join(self.etc, "prefs"),
            "Debug::NoLocking": "1", "APT::Install-Recommends": "0",
            "APT::Install-Suggests": "0",
        }
        cmd = ["apt-get", "-q"] + [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]
        cmd += list(args)
        r = subprocess.run(cmd, text=True, capture_output=True, cwd=cwd)
        if r.returncode != 0:
            raise DebError(f"apt-get {' '.join(args[:2])} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        return r.stdout

    def run_in(self, cwd, *args):
        """apt-get ARGS in directory cwd (`source` downloads and unpacks there)."""
        return self._apt(*args, cwd=cwd)

    def update(self, force=False):
        stamp = os.path.join(self.root, "lists.updated")   # apt deletes strangers in lists/
        fresh = os.path.exists(stamp) and time.time() - os.path.getmtime(stamp) < LISTS_MAX_AGE_S
        if fresh and not force:
            return False
        print(">> debs: apt-get update (arm64 lists, private state)", flush=True)
        self._apt("update")
        open(stamp, "w").close()
        return True

    def resolve(self, packages):
        """[(name, version, filename)] for packages and all their Depends/Pre-Depends
        (apt's simulated install against an empty dpkg status)."""
        out = self._apt("install", "-s", "-y", *packages)
        result = []
        for line in out.splitlines():
            m = re.match(r"^Inst (\S+) \((\S+) .*\[(\S+)\]\)", line)
            if m:
                name, ver, arch = m.groups()
                result.append((name, ver, f"{name}_{ver.replace(':', '%3a')}_{arch}.deb"))
        if not result:
            raise DebError("apt resolved no packages (are the arm64 lists empty?)")
        return sorted(result)

    def download(self, packages, resolved):
        missing = [f for _, _, f in resolved if not os.path.exists(os.path.join(self.archives, f))]
        if missing:
            print(f">> debs: downloading {len(missing)} packages", flush=True)
            self._apt("install", "--download-only", "-y", *packages)
        return [os.path.join(self.archives, f) for _, _, f in resolved]


def resolve_and_fetch(cache_dir, packages, excludes):
    """Resolve, download; returns [(name, version, path)] without the excluded packages.
    The resolution is remembered per (package list, package lists' age): apt needs seconds."""
    apt = AptCache(cache_dir)
    updated = apt.update()
    memo = os.path.join(apt.root, "resolved-" + hashlib.sha256(
        (json.dumps(packages) + str(os.path.getmtime(os.path.join(apt.root, "lists.updated")))).encode()
    ).hexdigest()[:16] + ".json")
    if os.path.exists(memo):
        cached = [tuple(x) for x in json.load(open(memo))]
        if all(os.path.exists(os.path.join(apt.archives, f)) for _, _, f in cached):
            return _without_excluded(cached, apt, packages, excludes)
    try:
        resolved = apt.resolve(packages)
        apt.download(packages, resolved)
    except DebError:
        if updated:
            raise
        apt.update(force=True)          # lists older than the mirror: versions were superseded
        resolved = apt.resolve(packages)
        apt.download(packages, resolved)
    with open(memo, "w") as f:
        json.dump(resolved, f)
    return _without_excluded(resolved, apt, packages, excludes)


def _without_excluded(resolved, apt, packages, excludes):
    wanted = set(packages)
    keep = []
    for name, ver, fname in resolved:
        if name not in wanted and any(fnmatch.fnmatch(name, pat) for pat in excludes):
            continue
        keep.append((name, ver, os.path.join(apt.archives, fname)))
    return keep


def unpack(deb_path, dest):
    subprocess.run(["dpkg-deb", "-x", deb_path, dest], check=True)


def installed_size_listing(deb_path):
    """Paths a package ships (for the per-package size breakdown)."""
    out = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb_path], capture_output=True, check=True).stdout
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(out)) as t:
        return [m.name.lstrip(".") for m in t.getmembers() if m.isfile()]
