"""Boot time: QEMU start -> LAN status page answering, as a ratio to a bare kernel + busybox
initramfs boot to a shell marker, both measured in this run (printed, never asserted).
Target: ratio <= 3. Uses output/images/ from `make image`; if rootfs.cpio.zst is there too
(`qemu/build_image.py --initramfs-too`), the initramfs variant is measured as well."""
import os
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _paths  # noqa: F401  (the tests' sys.path: tests/support/paths.py)
from router import Router, new_data_disk

TARGET_RATIO = 3.0
RUNS = int(os.environ.get("BENCH_BOOT_RUNS", "2"))


def bare_boot(images):
    """Seconds from QEMU start to the bare initramfs' marker line."""
    cmd = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a53", "-m", "512", "-display", "none",
           "-serial", "stdio", "-monitor", "none", "-nodefaults", "-no-reboot",
           "-kernel", os.path.join(images, "Image"), "-initrd", os.path.join(images, "bare-initramfs.cpio.gz"),
           "-append", "console=ttyAMA0 rdinit=/init quiet panic=-1"]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    seen = None
    buf = b""
    while True:
        chunk = p.stdout.read1(4096)
        if not chunk:
            break
        buf += chunk
        if seen is None and b"IKECORE-BARE-READY" in buf:
            seen = time.monotonic() - t0
    p.wait()
    return seen


def page_boot(images, work, rootfs="rootfs.squashfs"):
    """Seconds from QEMU start to the LAN page's first answer."""
    r = Router(images, new_data_disk(images, os.path.join(work, "data.img")), rootfs=rootfs)
    r.launch()
    t0 = r.started_at
    try:
        r.wait_http(timeout=300)
        return time.monotonic() - t0
    finally:
        r.kill()


def main(images=None):
    images = images or os.environ.get("IKECORE_IMAGES", os.path.join(TOP, "output", "images"))
    if not os.path.exists(os.path.join(images, "bare-initramfs.cpio.gz")):
        print(f"bench_boot: no image in {images}: run `make image`")
        return 1
    print("== boot time (QEMU TCG, -M virt -cpu cortex-a53 -m 512)")
    variants = [("squashfs root on virtio-blk", "rootfs.squashfs")]
    for name in ("rootfs.cpio.zst", "rootfs.cpio.gz"):
        if os.path.exists(os.path.join(images, name)):
            variants.append((f"initramfs {name}", name))
    with tempfile.TemporaryDirectory() as work:
        bare = [bare_boot(images) for _ in range(RUNS)]
        if None in bare:
            print("bare initramfs boot never printed its marker")
            return 1
        b = min(bare)
        print(f"bare kernel + busybox initramfs to shell marker: {b:.2f} s (best of {RUNS}: {', '.join(f'{x:.2f}' for x in bare)})")
        # rounds interleave the variants, so a busy moment of the (shared) host hits all of them
        times = {label: [] for label, _ in variants}
        for _ in range(RUNS):
            for label, rootfs in variants:
                times[label].append(page_boot(images, work, rootfs))
        for label, _ in variants:
            t = min(times[label])
            print(f"{label}: QEMU start to LAN status page: {t:.2f} s (best of {RUNS}: "
                  f"{', '.join(f'{x:.2f}' for x in times[label])}); ratio {t / b:.2f}x "
                  f"(target <= {TARGET_RATIO:.0f}x: {'met' if t / b <= TARGET_RATIO else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
