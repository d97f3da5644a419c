"""The rules between keys that a table row cannot say (schema.py names them; check.RULES).

A rule run after a row, rule(checker, path, entry, values), sees the entry's raw table and the
values checked so far; the peer rules take the built settings.Peer, whose properties (dynamic)
they ask. Each raises through checker.error with the key it is about, so the settings page marks
that field.
"""
import ipaddress

from ikecore.config.errors import format_path


def aggressive_psk(checker, path, entry, values):
    if values["phase1_mode"] == "aggressive" and values["auth"] == "psk":
        checker.warn(path + ("phase1_mode",), "aggressive mode with a pre-shared key sends a "
                     "hash of the key that can be guessed offline; prefer main mode")


def dpd_timeout(checker, path, entry, values):
    delay, timeout = values["dpd"]["delay_s"], values["dpd"]["timeout_s"]
    if delay and timeout <= delay:
        checker.error(path + ("dpd", "timeout_s"), "must be longer than delay_s (%d), got %d"
                      % (delay, timeout))


def network_overlaps(checker, path, entry, values):
    """A remote network may cover a local one (0.0.0.0/0: everything goes to the peer; the
    kernel backend keeps the local networks' own traffic out of the tunnel with bypass
    policies), and local 0.0.0.0/0 (the hub's half of that) may cover a remote one. A remote
    network equal to or inside a local one could never be reached through the tunnel."""
    for local, local_path in values["local_net"]:
        local_net = ipaddress.IPv4Network(local)
        for remote, remote_path in values["remote_net"]:
            remote_net = ipaddress.IPv4Network(remote)
            if remote_net == local_net:
                checker.error(remote_path, "%s overlaps local_net %s (%s): the same network "
                              "cannot be on both sides" % (remote, local,
                                                           format_path(local_path)))
            if remote_net.subnet_of(local_net) and local_net.prefixlen != 0:
                checker.error(remote_path, "%s overlaps local_net %s (%s): it lies inside it, "
                              "so traffic to it stays on the LAN" % (remote, local,
                                                                     format_path(local_path)))


def dynamic_peer(checker, path, peer):
    """The combinations a peer from any address (or a catch-all) cannot have."""
    if peer.catch_all and not peer.dynamic:
        checker.error(path + ("catch_all",), "is only for a peer with remote_gateway = "
                      "\"%any\"")
    if not peer.dynamic:
        return
    if peer.act_as == "initiator":
        checker.error(path + ("act_as",), "a peer with remote_gateway = \"%any\" has no "
                      "address to initiate to: it can only respond (\"responder\" or "
                      "\"both\")")
    if peer.catch_all:
        if peer.phase1_mode != "main" or peer.auth != "psk":
            checker.error(path + ("catch_all",), "is only for main mode with a pre-shared "
                          "key (aggressive mode and certificates choose the peer by its ID)")
        if peer.remote_id is not None:
            checker.error(path + ("remote_id",), "a catch-all peer accepts any ID: remove "
                          "remote_id or catch_all")
        checker.warn(path + ("catch_all",), "peer %s accepts anyone who knows its pre-shared "
                     "key, from any address and with any ID (main mode must use the key "
                     "before the peer's ID arrives); prefer certificates or aggressive mode "
                     "with a remote_id per branch" % peer.name)
        return
    if peer.phase1_mode == "main" and peer.auth == "psk":
        checker.error(path + ("remote_gateway",), "main mode with a pre-shared key cannot "
                      "choose a peer from any address by its ID (the key is needed before "
                      "the ID arrives, RFC 2409 5.4): use auth = \"rsa\", phase1_mode = "
                      "\"aggressive\", or make it the one catch-all peer (catch_all = true)")
    if peer.remote_id is None:
        checker.error(path + ("remote_id",), "a peer with remote_gateway = \"%any\" is "
                      "chosen by its ID: set remote_id (like { type = \"fqdn\", value = "
                      "\"branch1.example.net\" })")


def distinct_peer(checker, path, peer, seen):
    """The core must be able to tell every two peers apart when they talk to us first: by
    their address, or (dynamic peers) by the ID they send. seen: what earlier peers are told
    apart by -> that peer (a dict, not a scan of the others: 10,000 peers took 12 s)."""
    if not peer.dynamic:
        other = seen.setdefault(("gateway", peer.remote_gateway), peer)
        if other is not peer:
            checker.error(path + ("remote_gateway",), "peer %r already uses gateway %s"
                          % (other.name, peer.remote_gateway))
        return
    if peer.catch_all:
        other = seen.setdefault(("catch-all",), peer)
        if other is not peer:
            checker.error(path + ("catch_all",), "peer %r is already the catch-all peer; "
                          "there can be only one (main mode with a pre-shared key cannot tell "
                          "two apart before the key is used)" % other.name)
    if peer.remote_id is not None:
        other = seen.setdefault(("id", peer.phase1_mode, peer.remote_id.type,
                                 peer.remote_id.value), peer)
        if other is not peer:
            checker.error(path + ("remote_id",), "peer %r already accepts %s %s from any "
                          "address" % (other.name, peer.remote_id.type, peer.remote_id.value))
