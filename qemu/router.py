"""Boot the firmware image in QEMU and talk to it over its serial console.

    from router import Router, start_pair
    r = Router(images="output/images", data_disk="/tmp/x/data.img")
    r.start()                       # boots; raises BootError with the console tail on failure
    r.run("nft list ruleset")       # -> Result(status, output); check=True raises CommandError
    r.lan_url                       # http://127.0.0.1:<free port>/ (hostfwd to 192.168.1.1:80)
    r.reboot(); r.stop()

    a, b = start_pair(images, workdir)   # two routers joined WAN-to-WAN, see start_pair()

Console protocol: each command is sent base64-encoded (no tty quoting or line-length limits), run
by sh with stderr merged into stdout, and framed by two markers the shell prints:
"IKB_<n>" before the output and "IKE_<n>_<exit status>" after it. The markers are printed with
printf from split arguments, so the tty's echo of the command line never contains them.
"""
import base64
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

QEMU = "qemu-system-aarch64"
BOOT_DONE = b"ikecore: boot complete"
CMDLINE = "console=ttyAMA0 root=/dev/vda rootfstype=squashfs ro quiet panic=-1"


class BootError(Exception):
    pass


class CommandError(Exception):
    def __init__(self, cmd, result):
        super().__init__(f"command failed with status {result.status}: {cmd}\n{result.output}")
        self.result = result


class Result:
    def __init__(self, status, output):
        self.status, self.output = status, output

    def __repr__(self):
        return f"Result(status={self.status}, output={self.output!r})"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_images():
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "output", "images")


def new_data_disk(images, path):
    """A fresh copy of the blank data disk template."""
    shutil.copyfile(os.path.join(images, "data-template.img"), path)
    return path


def new_system_disk(images, path):
    """A fresh copy of the A/B system disk (slot A = this build, slot B empty), sparse."""
    subprocess.run(["cp", "--sparse=always", os.path.join(images, "system.img"), path], check=True)
    return path


class Router:
    """One router VM. wan: "user" (QEMU user-mode network, guest gets 10.0.2.15 by DHCP, port 80
    of the WAN address forwarded from wan_port) or ("udp", local_port, remote_port) for a WAN
    segment shared with another router. cmdline: extra kernel options (ikecore.wan=...).
    smp: 2 vCPUs by default, one per core of the 2-core build machines (the NanoPi R2S has 4):
    with one, the daemon's and the web UI's start-up imports queue behind each other and the
    page answered ~1 s later (5.4-5.9 s against 6.6-6.8 s, QEMU start to page, same run).
    system_disk: an A/B system disk (new_system_disk()) to boot through the boot selector's
    initramfs, which picks root slot A or B from the disk's boot state (firmware upgrades);
    without it the root filesystem file `rootfs` is the root disk, read-only, as before.
    wan_restrict=False: the "user" WAN may also reach the host's loopback through 10.0.2.2 (a
    server the test runs there: NTP, syslog); restricted (the default), only the forwards work.
    rtc: the guest's RTC at boot, e.g. "1970-01-01" (a board without a battery); default: now."""

    def __init__(self, images=None, data_disk=None, name="router", wan="user", cmdline="",
                 memory=512, mac_index=1, log_path=None, rootfs="rootfs.squashfs", smp=2, system_disk=None,
                 wan_restrict=True, rtc=None):
        self.images = images or default_images()
        self.data_disk = data_disk
        self.name = name
        self.wan = wan
        self.cmdline = cmdline
        self.memory = memory
        self.mac_index = mac_index
        self.log_path = log_path
        self.rootfs = rootfs
        self.smp = smp
        self.system_disk = system_disk
        self.wan_restrict = wan_restrict
        self.rtc = rtc
        self.lan_port = free_port()
        self.wan_port = free_port() if wan == "user" else None
        self.proc = None
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._seq = 0
        self._log = None
        self._eof = False

    @property
    def lan_url(self):
        return f"http://127.0.0.1:{self.lan_port}/"

    @property
    def wan_url(self):
        return f"http://127.0.0.1:{self.wan_port}/" if self.wan_port else None

    def qemu_command(self):
        img = self.images
        mac = f"52:54:00:12:{self.mac_index:02x}"
        cmd = [QEMU, "-M", "virt", "-cpu", "cortex-a53", "-m", str(self.memory), "-smp", str(self.smp),
               "-display", "none", "-serial", "stdio", "-monitor", "none", "-nodefaults", "-no-reboot",
               "-kernel", os.path.join(img, "Image"), "-append", f"{CMDLINE} {self.cmdline}".strip()]
        if self.wan == "user":
            restrict = "on" if self.wan_restrict else "off"
            wan = f"user,id=wan,restrict={restrict},hostfwd=tcp:127.0.0.1:{self.wan_port}-:80"
        else:
            _kind, local, remote = self.wan
            wan = f"socket,id=wan,udp=127.0.0.1:{remote},localaddr=127.0.0.1:{local}"
        # romfile= : no PXE option ROM (the kernel boots directly; Debian ships the ROMs in
        # ipxe-qemu, a recommendation that a --no-install-recommends machine does not have)
        cmd += ["-netdev", wan, "-device", f"virtio-net-pci,netdev=wan,mac={mac}:01,addr=0x2,romfile=",
                "-netdev", "user,id=lan,net=192.168.1.0/24,host=192.168.1.2,restrict=on,"
                           f"hostfwd=tcp:127.0.0.1:{self.lan_port}-192.168.1.1:80",
                "-device", f"virtio-net-pci,netdev=lan,mac={mac}:02,addr=0x3,romfile="]
        if self.system_disk:    # A/B: the boot selector (qemu/bootsel.c) mounts slot A or B
            cmd += ["-initrd", os.path.join(img, "boot-initramfs.cpio.gz"),
                    "-drive", f"if=none,id=root,format=raw,file={self.system_disk}",
                    "-device", "virtio-blk-pci,drive=root,addr=0x4"]
            append = cmd.index("-append") + 1
            cmd[append] = " ".join(cmd[append].replace("root=/dev/vda rootfstype=squashfs ro", "").split())
        elif self.rootfs.endswith(".squashfs"):
            cmd += ["-drive", f"if=none,id=root,format=raw,readonly=on,file={os.path.join(img, self.rootfs)}",
                    "-device", "virtio-blk-pci,drive=root,addr=0x4"]
        else:   # initramfs variant (measurements): no root disk, /init from the archive
            cmd += ["-initrd", os.path.join(img, self.rootfs)]
            cmd[cmd.index("-append") + 1] = cmd[cmd.index("-append") + 1].replace(
                "root=/dev/vda rootfstype=squashfs ro", "rdinit=/sbin/init")
        if self.data_disk:
            cmd += ["-drive", f"if=none,id=data,format=raw,file={self.data_disk}",
                    "-device", "virtio-blk-pci,drive=data,addr=0x5"]
        cmd += ["-device", "virtio-rng-pci,addr=0x6"]
        if self.rtc:
            cmd += ["-rtc", f"base={self.rtc}"]
        return cmd

    # -- lifecycle --------------------------------------------------------------------------
    def launch(self):
        """Start QEMU without waiting (start() waits for the boot)."""
        with self._cond:
            self._buf.clear()
            self._eof = False
            self._log = open(self.log_path, "ab") if self.log_path else None
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(self.qemu_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, bufsize=0)
        threading.Thread(target=self._reader, args=(self.proc,), daemon=True).start()

    def start(self, timeout=180):
        self.launch()
        self.wait_booted(timeout)
        return self

    def wait_booted(self, timeout=180):
        try:
            self._wait_for(lambda b: BOOT_DONE in b, timeout, "the end of the boot scripts")
            deadline = time.monotonic() + 60
            while True:     # the console shell starts right after rcS; probe until it answers
                try:
                    self.run("stty -echo", timeout=3)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        except (TimeoutError, BootError) as e:
            tail = self.console_tail()
            self.kill()
            raise BootError(f"{self.name}: boot failed ({e}); console tail:\n{tail}") from None

    def _reader(self, proc):
        while True:
            data = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
            if not data:
                break
            with self._cond:
                if proc is not self.proc:       # a previous boot's QEMU (reboot): ignore
                    return
                if self._log:
                    self._log.write(data)
                    self._log.flush()
                self._buf += data
                self._cond.notify_all()
        with self._cond:
            if proc is self.proc:
                self._eof = True
            self._cond.notify_all()

    def _wait_for(self, predicate, timeout, what, start=0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(bytes(self._buf[start:])):
                if self._eof:
                    raise BootError(f"QEMU exited (status {self.proc.returncode}) while waiting for {what}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
                self._cond.wait(min(left, 0.5))

    def console_tail(self, n=60):
        with self._cond:
            text = bytes(self._buf).decode(errors="replace").replace("\r", "")
        return "\n".join(text.splitlines()[-n:])

    def console_text(self):
        with self._cond:
            return bytes(self._buf).decode(errors="replace").replace("\r", "")

    # -- commands ---------------------------------------------------------------------------
    def run(self, cmd, timeout=60, check=False):
        """Run a shell command in the guest; returns Result(status, output)."""
        if self.proc is None or self.proc.poll() is not None:
            raise BootError(f"{self.name}: QEMU is not running")
        self._seq += 1
        n = self._seq
        b64 = base64.b64encode(cmd.encode()).decode()
        chunks = [b64[i:i + 512] for i in range(0, len(b64), 512)] or [""]
        lines = [f"rm -f /tmp/.c{n}"] + [f"echo {c} >>/tmp/.c{n}" for c in chunks]
        lines.append(f"base64 -d /tmp/.c{n} >/tmp/.s{n}; printf '%s_%s\\n' IKB {n}; "
                     f"sh /tmp/.s{n} </dev/null 2>&1; printf '%s_%s_%s\\n' IKE {n} $?; rm -f /tmp/.c{n} /tmp/.s{n}")
        with self._cond:
            start = len(self._buf)
        self.proc.stdin.write(("\n".join(lines) + "\n").encode())
        self.proc.stdin.flush()
        end_re = re.compile(rb"IKE_%d_(\d+)\r?\n" % n)
        try:
            self._wait_for(lambda b: end_re.search(b), timeout, f"command {cmd!r}", start)
        except BootError:
            raise BootError(f"{self.name}: QEMU exited during {cmd!r}; console tail:\n{self.console_tail()}")
        with self._cond:
            out = bytes(self._buf[start:])
        m_end = end_re.search(out)
        m_begin = re.search(rb"IKB_%d\r?\n" % n, out)
        body = out[m_begin.end():m_end.start()] if m_begin and m_begin.end() <= m_end.start() else b""
        result = Result(int(m_end.group(1)), body.decode(errors="replace").replace("\r", ""))
        if check and result.status != 0:
            raise CommandError(cmd, result)
        return result

    def check(self, cmd, timeout=60):
        """run() that raises CommandError on a non-zero exit status; returns the output."""
        return self.run(cmd, timeout=timeout, check=True).output

    def wait_http(self, url=None, timeout=120):
        """Wait until url (default: the LAN page) answers; returns (status, body)."""
        url = url or self.lan_url
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                # short attempts: while the guest's network is not up yet, QEMU accepts the
                # connection and it hangs until this timeout (a 5 s one made bench_boot's
                # page times jump in steps of ~5 s)
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return resp.status, resp.read().decode(errors="replace")
            except Exception as e:  # noqa: BLE001 - connection refused/reset while booting
                last = e
                time.sleep(0.5)
        raise TimeoutError(f"{url} did not answer within {timeout} s (last error: {last})")

    def reboot(self, timeout=180):
        """Clean reboot (init runs the stop scripts); QEMU exits (-no-reboot) and starts again."""
        self.proc.stdin.write(b"reboot\n")
        self.proc.stdin.flush()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()
        self.start(timeout)

    def restart_after_guest_reboot(self, timeout=600, boot_timeout=300):
        """The guest rebooted by itself (e.g. after a firmware install, or the health check giving
        up): QEMU exits (-no-reboot); wait for that, then boot the same disks again."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.name}: the guest did not reboot within {timeout} s; console tail:\n"
                               f"{self.console_tail()}") from None
        self.start(boot_timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"poweroff\n")
                self.proc.stdin.flush()
                self.proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._log:
            self._log.close()
            self._log = None


# Addresses of the two-router setup (TEST-NET-1 WAN segment, one LAN per site)
SITES = {
    "a": {"wan": "192.0.2.1", "lan_net": "10.1.0.0/24", "lan_router": "10.1.0.1", "lan_host": "10.1.0.10"},
    "b": {"wan": "192.0.2.2", "lan_net": "10.2.0.0/24", "lan_router": "10.2.0.1", "lan_host": "10.2.0.10"},
}


def start_pair(images=None, workdir="/tmp", timeout=240, rootfs=None, system_disks=None):
    """Boot "site A" and "site B" joined WAN-to-WAN (a QEMU UDP socket pair: a private Ethernet
    segment 192.0.2.0/24, A = .1, B = .2). Each site has a LAN host in network namespace
    "lanhost" inside its guest (A: 10.1.0.10 behind 10.1.0.1 on lan0; B: 10.2.0.10 behind
    10.2.0.1), e.g. a.run("ip netns exec lanhost ping -c1 10.2.0.10"). Each keeps its own
    LAN page forward (router.lan_url) and data disk in workdir. rootfs: {"a"|"b": file name in
    images} for a site that boots another root filesystem. system_disks: {"a"|"b": path of an A/B
    system disk (new_system_disk())} for a site that boots its slots instead (firmware upgrades).
    Returns (a, b), both booted."""
    images = images or default_images()
    pa, pb = free_port(), free_port()
    routers = []
    for key, (local, remote), idx in (("a", (pa, pb), 1), ("b", (pb, pa), 2)):
        s = SITES[key]
        cmdline = (f"ikecore.hostname=site-{key} ikecore.wan={s['wan']}/24 "
                   f"ikecore.lanhost={s['lan_router']}/24,{s['lan_host']}")
        r = Router(images, new_data_disk(images, os.path.join(workdir, f"data-{key}.img")),
                   name=f"site-{key}", wan=("udp", local, remote), cmdline=cmdline, mac_index=idx,
                   log_path=os.path.join(workdir, f"console-{key}.log"),
                   rootfs=(rootfs or {}).get(key, "rootfs.squashfs"),
                   system_disk=(system_disks or {}).get(key))
        r.site = s
        routers.append(r)
    for r in routers:
        r.launch()
    try:
        for r in routers:
            r.wait_booted(timeout)
    except BootError:
        for r in routers:
            r.kill()
        raise
    return tuple(routers)
