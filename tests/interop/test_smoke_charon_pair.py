"""Harness self-test: charon <-> charon, main mode PSK, kernel-libipsec, a ping through the tunnel.

If this fails, the namespaces / charon set-up is broken and no our-daemon result means anything.
"""
import os

from charon import Charon, Child, Conn
from support.netns import LAN_A, LAN_B, NET_A, NET_B, WAN_A, WAN_B

PROPOSAL = ["aes128-sha256-modp2048"]


def test_charon_pair_main_mode_psk_tunnel_carries_ping(lab, charon_libipsec, interop_workdir, request):
    left = Charon(lab.a, os.path.join(interop_workdir, "charon-a-smoke"), "libipsec").start()
    request.node.interop_logs = getattr(request.node, "interop_logs", []) + [left]
    try:
        left.load([Conn("smoke", WAN_A, WAN_B, PROPOSAL, "smoke secret",
                        [Child("lan", NET_A, NET_B, PROPOSAL)])])
        charon_libipsec.load([Conn("smoke", WAN_B, WAN_A, PROPOSAL, "smoke secret",
                                   [Child("lan", NET_B, NET_A, PROPOSAL)])])
        proc = left.initiate("lan")
        assert proc.returncode == 0, "initiate failed:\n" + proc.stdout + proc.stderr

        (sa,) = left.list_sas()
        assert sa["state"] == "ESTABLISHED" and sa["version"] == "1"
        (child,) = sa["child-sas"].values()
        assert child["state"] == "INSTALLED" and child["protocol"] == "ESP"
        assert child["encap"] == "yes"          # kernel-libipsec always floats to ESP-in-UDP

        assert lab.a.ping(LAN_B, src=LAN_A, count=2), "no ping through the tunnel"

        (peer_sa,) = charon_libipsec.list_sas()
        (peer_child,) = peer_sa["child-sas"].values()
        assert int(peer_child["packets-in"]) >= 2, peer_child
    finally:
        left.terminate_all()
        left.stop()
