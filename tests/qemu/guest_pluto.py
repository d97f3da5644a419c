"""Libreswan's pluto as "site B", inside a guest booted from the Libreswan test image
(output/images/rootfs-libreswan.squashfs, `make image-libreswan`: Debian 13's libreswan 5.2).

pluto installs its inbound SA in the kernel before it sends the quick mode reply, so it needs a
kernel with ESP: the guest's, not the host's. Everything pluto writes lives under WORK (the root
filesystem is read-only): its configuration, secrets, NSS database, control socket and log. It is
driven with whack and addconn directly (the `ipsec` wrapper wants an init system).
"""

LIBEXEC = "/usr/libexec/ipsec"
ROOTFS = "rootfs-libreswan.squashfs"
WORK = "/tmp/pluto"
CTL = f"{WORK}/run/pluto.ctl"
LOG = f"{WORK}/pluto.log"


class Conn:
    """One ipsec.conf connection of B toward A (B is "left"). options: more ipsec.conf keys."""

    def __init__(self, name, left, leftsubnet, right, rightsubnet, **options):
        self.name = name
        self.keys = dict(left=left, leftsubnet=leftsubnet, right=right, rightsubnet=rightsubnet,
                         keyexchange="ikev1", authby="secret", ike="aes128-sha1;modp2048",
                         esp="aes128-sha1;modp2048", auto="add")
        self.keys.update(options)

    def text(self):
        return f"conn {self.name}\n" + "".join(f"    {k}={v}\n" for k, v in self.keys.items())


def ipsec_conf(conns):
    # ikev1-policy: Libreswan 5 refuses IKEv1 unless told to accept it
    return ("config setup\n    logfile=" + LOG + "\n    logappend=yes\n    ikev1-policy=accept\n"
            "    plutodebug=none\n\n" + "\n".join(c.text() for c in conns))


class GuestPluto:
    """pluto on a booted e2e Site (tests/qemu/e2e.py) whose own ikecore daemon is stopped."""

    def __init__(self, site):
        self.site = site

    def whack(self, args, check=True, timeout=60):
        cmd = f"{LIBEXEC}/whack --ctlsocket {CTL} {args}"
        return (self.site.check if check else self.site.run)(cmd, timeout=timeout)

    def start(self, conns, secrets):
        """(Re)start pluto with these connections and `ipsec.secrets` text; returns when whack
        answers and the connections are loaded."""
        self.stop()
        self.site.check(f"rm -rf {WORK} && mkdir -p {WORK}/nss {WORK}/run && "
                        f"certutil -N -d sql:{WORK}/nss --empty-password")
        self.site.check(f"cat > {WORK}/ipsec.conf <<'PLUTO_EOF'\n{ipsec_conf(conns)}PLUTO_EOF\n")
        self.site.check(f"cat > {WORK}/ipsec.secrets <<'PLUTO_EOF'\n{secrets}\nPLUTO_EOF\n"
                        f"chmod 600 {WORK}/ipsec.secrets")
        self.site.check(f"{LIBEXEC}/pluto --nofork --config {WORK}/ipsec.conf --rundir {WORK}/run "
                        f"--nssdir {WORK}/nss --secretsfile {WORK}/ipsec.secrets "
                        f"--ipsecdir {WORK} >{WORK}/pluto.out 2>&1 & echo $! >{WORK}/pluto.pid")
        self.site.check(f"i=0; until {LIBEXEC}/whack --ctlsocket {CTL} --status >/dev/null 2>&1; do "
                        f"i=$((i+1)); [ $i -gt 100 ] && {{ cat {WORK}/pluto.out {LOG}; exit 1; }}; "
                        "sleep 0.3; done", timeout=60)
        self.whack("--listen")
        for c in conns:
            self.site.check(f"{LIBEXEC}/addconn --config {WORK}/ipsec.conf --ctlsocket {CTL} {c.name}")

    def stop(self):
        """Stop pluto (it removes its SAs and policies from the kernel as it goes)."""
        self.site.run(f"[ -f {WORK}/pluto.pid ] || exit 0; p=$(cat {WORK}/pluto.pid); kill $p; "
                      f"i=0; while kill -0 $p 2>/dev/null; do i=$((i+1)); [ $i -gt 50 ] && kill -9 $p; "
                      f"sleep 0.2; done; rm -f {WORK}/pluto.pid", timeout=40)

    def states(self):
        """`whack --showstates`: one line per state ("#1: "site":500 STATE_MAIN_R3 ...")."""
        return self.whack("--showstates").splitlines()

    def log_tail(self, lines=60):
        return self.site.run(f"tail -n {lines} {LOG} {WORK}/pluto.out").output

    def version(self):
        return self.site.check(f"{LIBEXEC}/pluto --version").strip()
