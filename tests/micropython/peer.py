# Runs INSIDE MicroPython under `node run.mjs --serve peer.py input.json`: ONE IkeCore (the
# portable core, MicroPython crypto provider) whose datagrams travel through node's stdin/stdout
# to a core running in CPython (tests/unit/test_micropython.py). Each request line is JSON:
#   {"datagrams": [[hex, [ip, port] local, [ip, port] remote], ...], "now": t}  -> fed in order
#   {"initiate": connection name, "now": t}
#   {"status": true, "now": t}
# and the reply line is {"datagrams": [[hex, local, remote], ...], "events": [text, ...],
# "status": status() or null}.
import json

from ikecore.protocol import proposals
from ikecore.protocol.core import IkeCore
from ikecore.protocol.crypto_micropython import MicroPythonProvider
from ikecore.protocol.events import IkeSaChanged, InstallChildSa, Log
from ikecore.protocol.settings import Connection, Identity, Peer, Settings

IN = json.loads(open("/input.json").read())
me, other = IN["me"], IN["other"]
peer = Peer(name="to-" + other, remote_gateway=other, local_address=me, act_as=IN["act_as"],
            proposals=[proposals.parse_ike(n) for n in IN["ike"]], auth="psk",
            phase1_mode=IN["mode"], psk=IN["psk"].encode(), local_id=Identity("ipv4", me),
            remote_id=Identity("ipv4", other), nat_t=False, dpd_delay_s=0)
conn = Connection(name="net-" + other, peer=peer.name, local_net=IN["local_net"],
                  remote_net=IN["remote_net"],
                  proposals=[proposals.parse_child(n, "esp") for n in IN["esp"]], protocol="esp",
                  pfs=IN["pfs"])
core = IkeCore(Settings(peers={peer.name: peer}, connections={conn.name: conn}),
               MicroPythonProvider(standin_for=("aes128",)), 0.0)


def describe(event):
    if isinstance(event, InstallChildSa):
        sa = event.sa
        return "install %s %s spi=%s encr_key=%s integ_key=%s" % (
            sa.protocol, sa.direction, sa.spi.hex() if isinstance(sa.spi, bytes) else sa.spi,
            sa.encr_key.hex(), sa.integ_key.hex())
    if isinstance(event, IkeSaChanged):
        return "ike %s %s %d" % (event.ike_sa, event.status, event.state)
    if isinstance(event, Log):
        return "log %s %s" % (event.level, event.text)
    return type(event).__name__


def step(line):
    request = json.loads(line)
    now = request["now"]
    for data, local, remote in request.get("datagrams", ()):
        core.receive_datagram(bytes.fromhex(data), tuple(local), tuple(remote), now)
    if "initiate" in request:
        core.initiate(request["initiate"], now)
    events = []
    event = core.next_event()
    while event is not None:
        events.append(describe(event))
        event = core.next_event()
    return json.dumps({
        "datagrams": [[d.hex(), list(l), list(r)] for d, l, r in core.datagrams_to_send()],
        "events": events,
        "status": core.status(now) if request.get("status") else None,
    })
