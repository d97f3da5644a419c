"""Several networks per connection and all traffic through the tunnel, against charon (IKEv1,
kernel-libipsec): charon's `local_ts`/`remote_ts` lists answer one quick mode per pair of
networks we propose; `remote_ts`/`local_ts` = 0.0.0.0/0 is the hub of a branch sending
everything. Checked: the selectors both sides negotiated and the policies our recording kernel
got (the bypass ones included)."""
from support.netns import NET_A, NET_A2, NET_B, NET_B2, WAN_B
from scenarios import charon_conn, our_config, scenario, wait_settled

ANY = "0.0.0.0/0"


def _charon_pairs(sas):
    """charon's installed CHILD_SAs as {(local-ts, remote-ts)}."""
    return {(",".join(c["local-ts"]), ",".join(c["remote-ts"]))
            for sa in sas for c in sa.get("child-sas", {}).values() if c["state"] == "INSTALLED"}


def _up(ours, charon, our_nets, their_nets):
    our, their = scenario("main", "modern", pfs=True,
                          ours={"local_net": our_nets[0], "remote_net": our_nets[1]},
                          theirs={"local_net": their_nets[0], "remote_net": their_nets[1]})
    charon.load([charon_conn(their)])
    peers, connections = our_config(our, act_as="initiator")
    ours.start(peers, connections)


def _our_pairs(status):
    found = {}
    for sa in status["sas"]:
        found.setdefault((sa["local_net"], sa["remote_net"]), set()).add(sa["direction"])
    return found


def test_network_lists_are_one_quick_mode_per_pair(ours, charon_libipsec):
    _up(ours, charon_libipsec, ([NET_A, NET_A2], [NET_B, NET_B2]),
        (",".join([NET_B, NET_B2]), ",".join([NET_A, NET_A2])))
    wait_settled(ours, lambda sa: sa.get("state") == 9, 20, "our IKE SA Activated")
    status = ours.wait_for(lambda st: len(st["sas"]) >= 8, 30, "8 SAs (4 pairs)")
    pairs = {(l, r) for l in (NET_A, NET_A2) for r in (NET_B, NET_B2)}
    assert _our_pairs(status) == dict((p, {"incoming", "outgoing"}) for p in pairs)
    assert [sa["phase2_negotiations"] for sa in status["ike_sas"] if sa["state"] == 9] == [4]
    sas = charon_libipsec.wait_for(lambda sas: len(_charon_pairs(sas)) == 4, 20,
                                   "charon: 4 CHILD_SAs")
    assert len(sas) == 1, "one IKE_SA carries all pairs: %r" % sas
    assert _charon_pairs(sas) == {(r, l) for l, r in pairs}
    kernel = ours.kernel()
    assert sorted((p["local_net"], p["remote_net"]) for p in kernel["policies"]) == sorted(pairs)
    assert kernel["bypass"] == []                       # plain LAN-to-LAN: nothing to bypass


def test_all_traffic_to_charon_as_the_hub(ours, charon_libipsec):
    _up(ours, charon_libipsec, (NET_A, ANY), (ANY, NET_A))
    wait_settled(ours, lambda sa: sa.get("state") == 9, 20, "our IKE SA Activated")
    status = ours.wait_for(lambda st: len(st["sas"]) >= 2, 20, "the SA pair")
    assert _our_pairs(status) == {(NET_A, ANY): {"incoming", "outgoing"}}
    sas = charon_libipsec.wait_for(lambda sas: _charon_pairs(sas), 20, "charon's CHILD_SA")
    assert _charon_pairs(sas) == {(ANY, NET_A)}
    kernel = ours.kernel()
    assert [(p["local_net"], p["remote_net"]) for p in kernel["policies"]] == [(NET_A, ANY)]
    bypass = {(b["dir"], b["src"], b["dst"], b["proto"], b["sport"], b["dport"])
              for b in kernel["bypass"]}
    gw = WAN_B + "/32"
    assert bypass == {("out", NET_A, NET_A, 0, 0, 0), ("in", NET_A, NET_A, 0, 0, 0),
                      ("fwd", NET_A, NET_A, 0, 0, 0),
                      ("out", ANY, gw, 17, 500, 0), ("in", gw, ANY, 17, 0, 500),
                      ("out", ANY, gw, 17, 4500, 0), ("in", gw, ANY, 17, 0, 4500),
                      ("out", ANY, gw, 50, 0, 0), ("in", gw, ANY, 50, 0, 0)}
