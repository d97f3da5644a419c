"""The release file: which build a root filesystem is (version, build date, the board's RAUC
compatible string). The one definition of its path and format: both builds write it through this
module (qemu/build_image.py imports it; board/post-build.sh runs `python3 -m webui.release`, the
build host's Python), and the Firmware page reads it.

    python3 -m webui.release TARGET_DIR --version V

The compatible string is copied from the target's RAUC system.conf, so the page compares bundles
with what RAUC itself was told. The build date is $SOURCE_DATE_EPOCH when set (reproducible
builds), else now.
"""
import argparse
import os
import re
import sys
import time

PATH = "usr/share/ikecore/release"      # below the root filesystem's top
FILE = "/" + PATH                       # on the running router
SYSTEM_CONF = "etc/rauc/system.conf"
FIELDS = ("VERSION", "BUILD_DATE", "COMPATIBLE")


def read(path=None):
    """{"VERSION", "BUILD_DATE", "COMPATIBLE"}; "unknown" for what the file does not say."""
    facts = dict.fromkeys(FIELDS, "unknown")
    try:
        with open(path or FILE, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep and key in facts:
                    facts[key] = value
    except OSError:
        pass
    return facts


def compatible_of(system_conf):
    """The compatible= of RAUC's [system] section."""
    try:
        with open(system_conf, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ValueError("%s: cannot read RAUC's system.conf (%s)" % (system_conf, exc.strerror))
    m = re.search(r"^compatible=(\S+)\s*$", text, re.M)
    if not m:
        raise ValueError("%s: no compatible= line" % system_conf)
    return m.group(1)


def build_date():
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch) if epoch else None))


def write(root, version):
    """Write root's release file (compatible string from root's system.conf); returns the facts."""
    if not version or any(c.isspace() for c in version):
        raise ValueError("release version %r: must be one word" % version)
    facts = {"VERSION": version, "BUILD_DATE": build_date(),
             "COMPATIBLE": compatible_of(os.path.join(root, SYSTEM_CONF))}
    path = os.path.join(root, PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join("%s=%s\n" % (k, facts[k]) for k in FIELDS))
    return facts


def main(argv=None):
    ap = argparse.ArgumentParser(description="write a root filesystem's ikecore release file")
    ap.add_argument("root", help="the target directory (root filesystem being built)")
    ap.add_argument("--version", required=True)
    args = ap.parse_args(argv)
    try:
        write(args.root, args.version)
    except (ValueError, OSError) as exc:
        print("webui.release: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
