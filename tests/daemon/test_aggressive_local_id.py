"""Aggressive mode initiator with neither local_id nor local_address (real daemons, real UDP).

  a (10.99.0.1, no local_address, no local_id) --- HDR, SA, KE, Ni, IDii --> b (10.99.0.2)

IDii goes out in the first message, before a has heard anything from b: the driver asks the
kernel which address routes to b (UDP connect + getsockname) and the core puts that address in
the ID. b insists on remote_id = ipv4 10.99.0.1, so an ID of 0.0.0.0 would be refused.
"""
from daemon_harness import ADDRESS, wait_until
from support.config import Config

PSK = "aggressive secret"
NETS = {"a": "192.168.10.0/24", "b": "192.168.20.0/24"}


def config(side, act_as, **peer_extra):
    other = "b" if side == "a" else "a"
    cfg = Config(wan_interface="ik" + side, lan_interface="lo")
    cfg.peer(other, ADDRESS[other], act_as=act_as, psk=PSK, phase1_mode="aggressive",
             proposals=["aes128-sha1-modp2048"], **peer_extra)
    cfg.connection("%s-to-%s" % (side, other), other, NETS[side], NETS[other],
                   proposals=["aes128-sha1"], pfs="none")
    return cfg


def test_aggressive_initiator_identifies_with_its_routed_wan_address(daemons):
    a, b = daemons["a"], daemons["b"]
    b.start(config("b", "responder", local_address=ADDRESS["b"],
                   remote_id=("ipv4", ADDRESS["a"])))
    a.start(config("a", "initiator"))

    def up(daemon):
        status = daemon.status()
        ike = [sa for sa in status["ike_sas"] if sa["status"] == "Activated"]
        return ike if ike and len(status["sas"]) == 2 else None
    for daemon in (a, b):
        (ike,) = wait_until(lambda: up(daemon), "daemon %s to reach Activated" % daemon.side)
        assert (ike["mode"], ike["last_error"]) == ("aggressive", None)
    (ike,) = a.status()["ike_sas"]
    assert ike["local_address"] == ADDRESS["a"]
    log = b.result({"cmd": "log", "limit": 1000})
    assert not [e for e in log if "0.0.0.0" in e["text"]]
