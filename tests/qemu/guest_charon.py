"""strongSwan's charon as "site B", inside a guest booted from the strongSwan test image
(output/images/rootfs-strongswan.squashfs, `make image-strongswan`).

There, unlike on the host, charon uses kernel-netlink: its SAs and policies go into the guest
kernel's XFRM and the kernel does ESP/AH, as on a real strongSwan gateway. The configuration files
come from the host interop harness's renderers (tests/interop/charon.py: strongswan_conf,
swanctl_conf, Conn, Child) and `swanctl --list-sas --raw` is read with its parser, so the host and
guest suites describe charon the same way.
"""
from charon import Child, Conn, parse_vici_raw, strongswan_conf, swanctl_conf  # noqa: F401

ROOTFS = "rootfs-strongswan.squashfs"
WORK = "/tmp/charon"
VICI = "/run/charon.vici"
CHARON = "/usr/lib/ipsec/charon"
# TCG is slow: more and longer retransmissions than the host harness's failure-test defaults
RETRANSMIT_TRIES = 5


class GuestCharon:
    """charon on a booted e2e Site (tests/qemu/e2e.py) whose own ikecore daemon is stopped."""

    def __init__(self, site):
        self.site = site
        self.env = f"STRONGSWAN_CONF={WORK}/strongswan.conf"

    def swanctl(self, args, check=True, timeout=60):
        cmd = f"{self.env} swanctl {args} --uri unix://{VICI}"
        return (self.site.check if check else self.site.run)(cmd, timeout=timeout)

    def start(self):
        """(Re)start charon with an empty configuration; returns when vici answers."""
        self.stop()
        conf = strongswan_conf(VICI, f"{WORK}/charon.log", "netlink",
                               retransmit_tries=RETRANSMIT_TRIES)
        self.site.check(f"mkdir -p {WORK} && cat > {WORK}/strongswan.conf <<'SWAN_EOF'\n{conf}SWAN_EOF\n")
        self.site.check(f"{self.env} {CHARON} >{WORK}/charon.out 2>&1 & echo $! >{WORK}/charon.pid")
        self.site.check(f"i=0; until {self.env} swanctl --stats --uri unix://{VICI} >/dev/null 2>&1; do "
                        f"i=$((i+1)); [ $i -gt 100 ] && {{ cat {WORK}/charon.out; exit 1; }}; sleep 0.3; done",
                        timeout=60)

    def stop(self):
        """Stop charon (it removes its SAs and policies from the kernel as it goes)."""
        self.site.run(f"[ -f {WORK}/charon.pid ] || exit 0; p=$(cat {WORK}/charon.pid); kill $p; "
                      f"i=0; while kill -0 $p 2>/dev/null; do i=$((i+1)); [ $i -gt 50 ] && kill -9 $p; "
                      f"sleep 0.2; done; rm -f {WORK}/charon.pid", timeout=40)

    def load(self, conns):
        text = swanctl_conf(conns)
        self.site.check(f"cat > {WORK}/swanctl.conf <<'SWAN_EOF'\n{text}SWAN_EOF\n")
        self.swanctl(f"--load-all --clear --noprompt --file {WORK}/swanctl.conf")

    def list_sas(self):
        """Every IKE SA as vici reports it (dicts of strings), children under "child-sas"."""
        return [dict(sa, name=name) for name, sa in
                parse_vici_raw(self.swanctl("--list-sas --raw --noblock"))]

    def children(self):
        return [c for sa in self.list_sas() for c in sa.get("child-sas", {}).values()]

    def log_tail(self, lines=40):
        return self.site.run(f"tail -n {lines} {WORK}/charon.log").output
