#!/usr/bin/env python3
"""Boot the image interactively: serial console on this terminal (Ctrl-A X quits QEMU), LAN page
forwarded to http://127.0.0.1:8080/, settings kept in a data disk that survives runs, root slots
A/B on a system disk that does too.

    python3 qemu/run.py [--images output/images] [--data output/data.img] [--system output/system.img]
                        [--port 8080]
"""
import argparse
import os
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from router import Router, default_images, new_data_disk, new_system_disk  # noqa: E402


def announce_when_up(url, proc):
    while proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=3):
                print(f"\r\n>> LAN status page: {url}\r\n", flush=True)
                return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(1)


def main():
    ap = argparse.ArgumentParser(description="boot the ikecore image in QEMU")
    ap.add_argument("--images", default=default_images())
    ap.add_argument("--data", default=os.path.join(os.path.dirname(default_images()), "data.img"))
    ap.add_argument("--system", default=os.path.join(os.path.dirname(default_images()), "system.img"),
                    help="A/B system disk (root slots and boot state), copied once from the images")
    ap.add_argument("--port", type=int, default=8080, help="host port of the LAN page")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.images, "Image")):
        sys.exit(f"no image in {args.images}: run `make image` first")
    if not os.path.exists(args.data):
        new_data_disk(args.images, args.data)
    if not os.path.exists(args.system):
        new_system_disk(args.images, args.system)
    r = Router(args.images, args.data, name="router", system_disk=args.system)
    r.lan_port = args.port
    cmd = r.qemu_command()
    cmd[cmd.index("-serial") + 1] = "mon:stdio"
    print(f">> booting {args.images} (data disk {args.data}); Ctrl-A X quits", flush=True)
    proc = subprocess.Popen(cmd)
    threading.Thread(target=announce_when_up, args=(r.lan_url, proc), daemon=True).start()
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
