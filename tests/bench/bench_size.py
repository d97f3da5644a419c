"""Image size: compressed kernel + A/B boot selector + root filesystem, with a per-part breakdown (printed, never
asserted). Target: <= 24 MiB. Reads output/images/manifest.json written by `make image`."""
import json
import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET_MIB = 24
MIB = 1024 * 1024


def main(images=None):
    images = images or os.environ.get("IKECORE_IMAGES", os.path.join(TOP, "output", "images"))
    path = os.path.join(images, "manifest.json")
    if not os.path.exists(path):
        print(f"bench_size: no {path}: run `make image`")
        return 1
    m = json.load(open(path))
    k, r = m["kernel"], m["rootfs"]
    total = m["total_compressed_bytes"]
    print("== image size (compressed kernel + boot selector + root filesystem)")
    print(f"kernel  {k['file']}: {k['bytes'] / MIB:.2f} MiB raw, {k['gzip_bytes'] / MIB:.2f} MiB gzip (Linux {k['version']})")
    print(f"rootfs  {r['file']}: {r['bytes'] / MIB:.2f} MiB ({r['unpacked_bytes'] / MIB:.1f} MiB unpacked), {r['format']}")
    if m.get("boot"):
        print(f"boot    {m['boot']['file']}: {m['boot']['bytes'] / MIB:.2f} MiB (A/B boot selector)")
    print(f"total   {total / MIB:.2f} MiB  (target <= {TARGET_MIB} MiB: {'met' if total <= TARGET_MIB * MIB else 'NOT met'})")
    print(f"\n{'part':<30} {'version':<26} {'unpacked KiB':>12} {'compressed KiB':>15}")
    for p in m["parts"]:
        print(f"{p['name']:<30} {p['version']:<26} {p['unpacked_bytes'] / 1024:12.0f} {p['compressed_bytes'] / 1024:15.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
