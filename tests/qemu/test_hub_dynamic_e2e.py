"""A branch router on a changing WAN address and a hub router that knows it only by its ID (issue 12),
through the guests' real kernels.

Site B is the hub: its peer has remote_gateway = "%any" and remote_id fqdn branch.example.net,
aggressive mode. Site A is the branch (local_id branch.example.net). A first connects from its own
WAN address (192.0.2.1); then its WAN traffic leaves through a masquerading NAT (NAT_PUBLIC with
other ports, as after a new lease from a carrier NAT) and it connects again: the hub's one peer
entry follows, its policies and SAs carry the new address, and the LAN hosts ping each other
before and after. A failing test prints both guests' VPN log, xfrm state/policy and status.
"""
import re

import pytest

from e2e import IP, NAT_PUBLIC, Scenario, nat_in_front_of, one, remove_nat, show_after_failure


# Both sides: aggressive mode with a pre-shared key, the daemon's defaults otherwise.
SCENARIO = Scenario(phase1_mode="aggressive", pfs="none", psk="branch e2e key")
BRANCH_ID = ("fqdn", "branch.example.net")


def hub_toml(hub, branch):
    """The hub's one peer for the branch: on any address, known by its FQDN."""
    return SCENARIO.toml(hub, branch, remote_gateway="%any", remote_id=BRANCH_ID, peer="branch",
                         connection="branch-lan")


def branch_toml(branch, hub):
    return SCENARIO.toml(branch, hub, local_id=BRANCH_ID, peer="hub", connection="lan")


@pytest.fixture(autouse=True)
def diagnostics_on_failure(request, sites):
    yield from show_after_failure(request, lambda: "\n".join(s.diagnostics() for s in sites))


def tunnel_to(policy_text, address):
    """Does `ip xfrm policy` show a template towards this gateway address?"""
    return re.search(r"tmpl src \S+ dst %s\s" % re.escape(address), policy_text)


def start(branch, hub):
    for s in (branch, hub):
        s.stop_daemon()
    hub.write_config(hub_toml(hub.site, branch.site))
    branch.write_config(branch_toml(branch.site, hub.site))
    for s in (hub, branch):
        s.start_daemon()
    for s in (hub, branch):
        s.wait_daemon()


def test_branch_on_a_changing_wan_address_reaches_the_hub_before_and_after(sites):
    branch, hub = sites
    start(branch, hub)
    branch.ping_until_up(hub)
    sent, received, _, out = branch.ping(hub.site["lan_host"], count=3, interval=0.5)
    assert sent == received == 3, out
    first = one(hub.status()["ike_sas"], "the hub's IKE SA")
    assert (first["peer"], first["remote_gateway"], first["configured_gateway"]) == (
        "branch", branch.site["wan"], "%any")
    assert tunnel_to(hub.check(f"{IP} xfrm policy"), branch.site["wan"])
    # The branch goes (its Delete reaches the hub, which removes the policies) and its WAN
    # address changes: it now appears as NAT_PUBLIC, from other ports. The hub keeps running.
    branch.stop_daemon()
    hub.check(f"i=0; until ! {IP} xfrm policy | grep -qw 'dst {branch.site['wan']}'; do "
              f"i=$((i+1)); [ $i -gt 60 ] && exit 1; sleep 0.5; done", timeout=60)
    nat_in_front_of(branch, hub)
    try:
        branch.start_daemon()
        branch.wait_daemon()
        branch.ping_until_up(hub)
        sent, received, _, out = branch.ping(hub.site["lan_host"], count=3, interval=0.5)
        assert sent == received == 3, out
        again = one(hub.status()["ike_sas"], "the hub's IKE SA after the move")
        assert (again["peer"], again["remote_gateway"], again["nat_t"]) == (
            "branch", NAT_PUBLIC, "far end")
        policy = hub.check(f"{IP} xfrm policy")
        assert tunnel_to(policy, NAT_PUBLIC) and not tunnel_to(policy, branch.site["wan"])
        assert f"{NAT_PUBLIC}:" in hub.check("ikectl status")
    finally:
        for s in (branch, hub):
            s.stop_daemon()
        remove_nat(branch)
