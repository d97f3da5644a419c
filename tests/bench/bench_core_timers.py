"""Timer bookkeeping of one IkeCore holding many established tunnels (interop finding 7).

One "hub" core with N peers (default 1,000), each tunnel negotiated in-process with its own
"spoke" core (main mode PSK + quick mode, MODP-1024, DPD 30 s / 120 s on both sides). Then, on
the hub, the driver's pattern is timed:
  - get_timer() alone (nothing changed since the last call),
  - handle_timer(now) when nothing is due,
  - one DPD round: handle_timer at the moment all N R-U-THEREs are due, then each of the N
    R-U-THERE-ACKs fed back as its own datagram followed by get_timer() (as driver._pump does).
Prints only (no assertions). Run with PYTHONPATH pointing at the firmware tree to compare.

  PYTHONPATH=firmware .venv/bin/python tests/bench/bench_core_timers.py [--tunnels 1000]
"""
import argparse
import time

import _paths  # noqa: F401  (the tests' sys.path: tests/support/paths.py)
from ikecore.protocol import proposals
from ikecore.protocol.core import IkeCore
from ikecore.crypto_cryptography import CryptographyProvider
from ikecore.protocol.settings import Connection, Peer, Settings

HUB = "10.0.0.1"


def spoke_address(i):
    return "10.1.%d.%d" % (i // 250, i % 250 + 1)


def _peer(name, remote, local):
    return Peer(name, remote, [proposals.parse_ike("aes128-sha1-modp1024")], psk=b"bench",
                local_address=local, dpd_delay_s=30, dpd_timeout_s=120)


def _conn(name, peer, local_net, remote_net):
    return Connection(name, peer, local_net, remote_net, [proposals.parse_child("aes128-sha1", "esp")])


def build(n, crypto, now):
    peers, conns, spokes = {}, {}, {}
    for i in range(n):
        addr = spoke_address(i)
        hub_net, spoke_net = "172.16.%d.0/24" % (i % 250), "172.%d.%d.0/24" % (24 + i // 250, i % 250)
        peers["p%d" % i] = _peer("p%d" % i, addr, HUB)
        conns["c%d" % i] = _conn("c%d" % i, "p%d" % i, hub_net, spoke_net)
        spokes[addr] = IkeCore(Settings(peers={"hub": _peer("hub", HUB, addr)},
                                        connections={"lan": _conn("lan", "hub", spoke_net, hub_net)}),
                               crypto, now)
    return IkeCore(Settings(peers=peers, connections=conns), crypto, now), spokes


def drain(core):
    while core.next_event() is not None:
        pass


def exchange(hub, spokes, now, after_each=None):
    """Move datagrams until everyone is quiet; after_each() follows every datagram the hub
    receives (the driver re-arms its timer there)."""
    moved = True
    while moved:
        moved = False
        for addr, spoke in spokes.items():
            for data, local, remote in spoke.datagrams_to_send():
                moved = True
                hub.receive_datagram(data, (HUB, local[1]), (addr, local[1]), now)
                if after_each is not None:
                    after_each()
            drain(spoke)
        for data, local, remote in hub.datagrams_to_send():
            moved = True
            spokes[remote[0]].receive_datagram(data, (remote[0], remote[1]), (HUB, local[1]), now)
        drain(hub)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tunnels", type=int, default=1000)
    args = parser.parse_args()
    crypto = CryptographyProvider()
    now = 1000.0
    t0 = time.perf_counter()
    hub, spokes = build(args.tunnels, crypto, now)
    for spoke in spokes.values():
        spoke.initiate("lan", now)
    exchange(hub, spokes, now)
    setup_s = time.perf_counter() - t0
    up = sum(1 for s in hub.status(now)["ike_sas"] if s["state"] == 9)
    print("== bench_core_timers: one core, %d tunnels (%d established) set up in-process in %.1f s"
          % (args.tunnels, up, setup_s))

    t0 = time.perf_counter()
    hub.get_timer()                      # the first call after the set-up indexes every tunnel
    print("  first get_timer() after the set-up:    %8.1f ms" % ((time.perf_counter() - t0) * 1e3))
    calls = 1000
    t0 = time.perf_counter()
    for _ in range(calls):
        hub.get_timer()
    per = (time.perf_counter() - t0) / calls
    print("  get_timer(), nothing changed:          %8.1f us/call" % (per * 1e6))

    t0 = time.perf_counter()
    for _ in range(calls):
        hub.handle_timer(now + 1)
    per = (time.perf_counter() - t0) / calls
    print("  handle_timer(), nothing due:           %8.1f us/call" % (per * 1e6))

    due = hub.get_timer()
    t0 = time.perf_counter()
    hub.handle_timer(due + 1)            # every tunnel's R-U-THERE (all set up at one `now`)
    probes = len(hub._datagrams)
    fire_s = time.perf_counter() - t0
    print("  handle_timer(), %4d DPD probes due:    %8.1f ms" % (probes, fire_s * 1e3))

    counter = [0]

    def rearm():
        hub.get_timer()
        counter[0] += 1

    t0 = time.perf_counter()
    exchange(hub, spokes, due + 1, after_each=rearm)
    total_s = time.perf_counter() - t0
    print("  %4d ACK datagrams, each + get_timer(): %8.1f ms (%.1f us per datagram, incl. "
          "decryption and the spokes)" % (counter[0], total_s * 1e3, total_s / max(1, counter[0]) * 1e6))


if __name__ == "__main__":
    main()
