"""Bypass policies (kernel.bypass_policies) in the host kernel: with remote_net = 0.0.0.0/0 the
LAN, the router's own traffic to it, and IKE/ESP to the peer's gateway stay out of the tunnel,
while everything else still hits the tunnel policy (the host has no ESP, so "hits the tunnel"
shows as a packet that does not arrive)."""
import socket

from ikecore import xfrm, xfrm_messages
from ikecore.protocol.settings import Connection

from test_xfrm_backend_host import ip_states
from xfrm_lab import LOCAL_GW, LOCAL_NET, REMOTE_GW

ANY = "0.0.0.0/0"


def connection(name, local_net, remote_net, local_nets=None):
    return Connection(name, "hub", local_net, remote_net, [], local_nets=local_nets)


def policies(backend):
    """Our policies in the kernel: [(dir, src, dst, proto, sport, dport, priority, templates)]."""
    found = []
    for record in backend.kernel_policies():
        if xfrm.is_our_policy(record):
            sel = record["selector"]
            found.append((record["dir"], record["src"], record["dst"], sel["proto"], sel["sport"],
                          sel["dport"], record["priority"], len(record["templates"])))
    return sorted(found)


def tunnelled(ns, src, sport, dst, dport, reqid=1):
    """Send one UDP datagram src:sport -> dst:dport (dst not local: loopback is never
    transformed); True when it hit a tunnel policy of ours: the kernel then holds a larval SA
    for it (there is no SA yet, the packet is dropped and an ACQUIRE sent)."""
    with ns.entered():
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tx.bind((src, sport))
        try:
            tx.sendto(b"probe", (dst, dport))
        except OSError:
            pass
    finally:
        tx.close()
    return any(s["reqid"] == str(xfrm.REQID_BASE + reqid) for s in ip_states(ns))


def test_all_traffic_connection_gets_lan_bypass_above_the_tunnel(backend, netns):
    backend.install_policies(connection("all", LOCAL_NET, ANY), LOCAL_GW, REMOTE_GW, 1)
    tunnel_priority = xfrm.POLICY_PRIORITY - 24
    bypass = xfrm.BYPASS_PRIORITY
    assert bypass < tunnel_priority                     # a lower number wins in XFRM
    gw = REMOTE_GW + "/32"
    assert policies(backend) == sorted([
        ("out", LOCAL_NET, ANY, 0, 0, 0, tunnel_priority, 1),
        ("in", ANY, LOCAL_NET, 0, 0, 0, tunnel_priority, 1),
        ("fwd", ANY, LOCAL_NET, 0, 0, 0, tunnel_priority, 1),
        ("out", LOCAL_NET, LOCAL_NET, 0, 0, 0, bypass, 0),
        ("in", LOCAL_NET, LOCAL_NET, 0, 0, 0, bypass, 0),
        ("fwd", LOCAL_NET, LOCAL_NET, 0, 0, 0, bypass, 0),
        ("out", ANY, gw, 17, 500, 0, bypass, 0), ("in", gw, ANY, 17, 0, 500, bypass, 0),
        ("out", ANY, gw, 17, 4500, 0, bypass, 0), ("in", gw, ANY, 17, 0, 4500, bypass, 0),
        ("out", ANY, gw, 50, 0, 0, bypass, 0), ("in", gw, ANY, 50, 0, 0, bypass, 0)])


def test_lan_and_ike_pass_in_clear_and_the_rest_is_tunnelled(backend, netns):
    """The veth segment 192.0.2.0/24 as "LAN" (its other addresses are not local, so packets to
    them really leave), everything else to a gateway 198.51.100.1 routed via it: the router
    talking to a LAN host and IKE/ESP to the gateway pass in clear, the rest hits the tunnel."""
    lan, gateway = "192.0.2.0/24", "198.51.100.1"
    with netns.entered():       # the kernel makes larval SAs only while someone hears ACQUIREs
        listener = xfrm.open_xfrm_socket(1 << (xfrm_messages.XFRMNLGRP_ACQUIRE - 1))
    netns.ip("route", "add", "198.51.100.0/24", "via", "192.0.2.9", "dev", "wan0")
    backend.install_policies(connection("all", lan, ANY), LOCAL_GW, gateway, 1)
    assert not tunnelled(netns, LOCAL_GW, 8080, "192.0.2.10", 40000)      # the LAN page's answer
    assert not tunnelled(netns, LOCAL_GW, 500, gateway, 500)              # IKE
    assert not tunnelled(netns, LOCAL_GW, 4500, gateway, 4500)            # NAT-T
    assert tunnelled(netns, LOCAL_GW, 501, gateway, 500)                  # anything else
    listener.close()


def test_shared_bypass_stays_until_its_last_connection_goes_and_flush_removes_it(backend, netns):
    nets = (LOCAL_NET, "10.5.0.0/24")
    one = connection("lan#1", LOCAL_NET, ANY, nets)
    two = connection("lan#2", "10.5.0.0/24", ANY, nets)
    plain = connection("plain", LOCAL_NET, "10.7.0.0/24")
    for i, conn in enumerate((one, two, plain)):
        backend.install_policies(conn, LOCAL_GW, REMOTE_GW, i + 1)
    lan = [p for p in policies(backend) if p[6] == xfrm.BYPASS_PRIORITY and p[3] == 0]
    # each local network to each, in every direction: 2 x 2 x 3
    assert len(lan) == 12, lan
    backend.remove_policies(one)
    left = [p for p in policies(backend) if p[6] == xfrm.BYPASS_PRIORITY]
    assert ("out", "10.5.0.0/24", LOCAL_NET, 0, 0, 0, xfrm.BYPASS_PRIORITY, 0) in left
    assert ("out", LOCAL_NET, LOCAL_NET, 0, 0, 0, xfrm.BYPASS_PRIORITY, 0) not in left
    assert ("out", "0.0.0.0/0", REMOTE_GW + "/32", 17, 500, 0, xfrm.BYPASS_PRIORITY, 0) in left
    backend.remove_policies(two)
    assert [p for p in policies(backend) if p[6] == xfrm.BYPASS_PRIORITY] == []
    backend.install_policies(one, LOCAL_GW, REMOTE_GW, 1)
    backend.flush()
    assert policies(backend) == []
