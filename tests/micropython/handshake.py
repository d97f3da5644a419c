# Runs INSIDE MicroPython (node run.mjs handshake.py input.json): for each scenario of the input
# (phase 1 mode, each side's PSK), two IkeCore instances -- the unchanged portable core with the
# MicroPython crypto provider -- negotiate phase 1 + quick mode with each other; datagrams are
# moved between them by hand. Prints "RESULT <json>": per scenario, the states each side went
# through, the SAs it installed and its status(), for tests/unit/test_micropython.py to check.
# Algorithms: what MicroPython can compute -- HMAC-SHA256, MODP-2048 (pow) and, for "aes128",
# the TEST-ONLY-XOR-CBC stand-in (this build has no cipher module).
import json
import time

from ikecore.protocol import proposals
from ikecore.protocol.core import IkeCore
from ikecore.protocol.crypto_micropython import MicroPythonProvider
from ikecore.protocol.events import IkeSaChanged, InstallChildSa, Log
from ikecore.protocol.settings import Identity, Peer, Settings, pair_connections

IN = json.loads(open("/input.json").read())
A_ADDR, B_ADDR = "192.0.2.1", "192.0.2.2"


def side(name, me, other, my_net, other_net, act_as, psk, mode):
    peer = Peer(name="to-" + other, remote_gateway=other, local_address=me, act_as=act_as,
                proposals=[proposals.parse_ike(IN["ike"])], auth="psk", phase1_mode=mode,
                psk=psk.encode(), local_id=Identity("ipv4", me),
                remote_id=Identity("ipv4", other), nat_t=False, dpd_delay_s=0)
    # my_net / other_net: a list of networks each (one pair connection per local x remote)
    conns = pair_connections("net-" + other, peer.name, my_net, other_net,
                             [proposals.parse_child(IN["esp"], "esp")], protocol="esp",
                             pfs=IN["pfs"])
    settings = Settings(peers={peer.name: peer}, connections=dict((c.name, c) for c in conns))
    return IkeCore(settings, MicroPythonProvider(standin_for=("aes128",)), 0.0)


def run(mode, psk_a, psk_b, nets_a, nets_b):
    """One negotiation; returns (a, b, events by side, messages moved, milliseconds)."""
    a = side("a", A_ADDR, B_ADDR, nets_a, nets_b, "both", psk_a, mode)
    b = side("b", B_ADDR, A_ADDR, nets_b, nets_a, "responder", psk_b, mode)
    now = 1.0
    start = time.ticks_ms()
    for name in a.settings.connections:
        a.initiate(name, now)
    messages = 0
    events = {"a": [], "b": []}
    for _ in range(40):                      # main mode 6 + quick mode 3 messages per pair
        moved = False
        for sender, receiver in ((a, b), (b, a)):
            for data, local, remote in sender.datagrams_to_send():
                receiver.receive_datagram(data, remote, local, now)
                messages += 1
                moved = True
        for label, core in (("a", a), ("b", b)):
            event = core.next_event()
            while event is not None:
                events[label].append(event)
                event = core.next_event()
        if not moved:
            break
    return a, b, events, messages, time.ticks_diff(time.ticks_ms(), start), now


def installed(events):
    out = []
    for e in events:
        if isinstance(e, InstallChildSa):
            sa = e.sa
            out.append({"direction": sa.direction, "spi": sa.spi.hex() if isinstance(sa.spi, bytes)
                        else "%08x" % sa.spi, "encr": sa.encr, "integ": sa.integ,
                        "encr_key": sa.encr_key.hex(), "integ_key": sa.integ_key.hex(),
                        "src": sa.src, "dst": sa.dst})
    return out


def summary(mode, psk_a, psk_b, nets_a, nets_b):
    a, b, events, messages, elapsed_ms, now = run(mode, psk_a, psk_b, nets_a, nets_b)

    def states(label):
        return [e.state for e in events[label] if isinstance(e, IkeSaChanged)]
    return {
        "messages": messages,
        "elapsed_ms": elapsed_ms,
        "a_states": states("a"),
        "b_states": states("b"),
        "a_installed": installed(events["a"]),
        "b_installed": installed(events["b"]),
        "a_status": a.status(now),
        "b_status": b.status(now),
        "b_log": [e.text for e in events["b"] if isinstance(e, Log)],
    }


print("RESULT " + json.dumps(dict(
    (s["name"], summary(s["mode"], s["psk_a"], s["psk_b"], s.get("nets_a", ["10.1.0.0/24"]),
                        s.get("nets_b", ["10.2.0.0/24"]))) for s in IN["scenarios"])))
