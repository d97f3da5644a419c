"""Minimal writer for the kernel's initramfs format (cpio "newc"), so the build needs no root:
every entry is owned by root and /dev/console is a real character device in the archive."""
import os
import stat

CONSOLE = ("dev/console", stat.S_IFCHR | 0o600, (5, 1))


def _entry(out, ino, name, mode, data=b"", rdev=(0, 0), nlink=1, mtime=0):
    name_b = name.encode() + b"\0"
    hdr = "070701" + "".join(f"{v:08x}" for v in (
        ino, mode, 0, 0, nlink, mtime, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0))
    out.write(hdr.encode() + name_b)
    out.write(b"\0" * (-(110 + len(name_b)) % 4))
    out.write(data)
    out.write(b"\0" * (-len(data) % 4))


def write_newc(out, root, extra_nodes=(CONSOLE,)):
    """Archive the tree under root (paths relative to it) plus extra device nodes."""
    ino = 1
    names = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in ([] if rel_dir == "." else [""]) + sorted(filenames) + \
                [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = dirpath if name == "" else os.path.join(dirpath, name)
            rel = rel_dir if name == "" else os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                data = os.readlink(path).encode()
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    data = f.read()
            else:
                data = b""
            _entry(out, ino, rel, st.st_mode, data, nlink=2 if stat.S_ISDIR(st.st_mode) else 1)
            names.add(rel)
            ino += 1
    for name, mode, rdev in extra_nodes:
        parent = os.path.dirname(name)
        if parent and parent not in names:
            _entry(out, ino, parent, stat.S_IFDIR | 0o755, nlink=2)
            names.add(parent)
            ino += 1
        _entry(out, ino, name, mode, rdev=rdev)
        ino += 1
    _entry(out, 0, "TRAILER!!!", 0)
