"""Failure cause -> the one plain-language line for the VPN log and the IKE SA's last_error.

The seed lists what makes phase 1 fail (unreachable peer, mode, algorithm, ID, key, certificate
mismatch) and phase 2 fail (protocol, algorithm, PFS, local/remote network mismatch). Every
failure the exchanges detect ends here as ONE line that says where, the probable cause, the
technical evidence in parentheses, and what to check:

  phase 1 with 198.51.100.2 failed: probable pre-shared key mismatch (message 5 did not decrypt
  to valid payloads) — check the pre-shared key on both peers

Portable: plain strings only.
"""

# cause -> (probable cause, what to check)
CAUSES = {
    "unreachable": ("the remote peer could not be reached",
                    "check the remote gateway address, the route to it, that UDP port 500 is "
                    "not blocked and that the peer runs IKE"),
    # Aggressive mode message 1 that nobody answers: a peer set to main mode only (Libreswan's
    # default) drops it without a word, so silence does not prove the peer is unreachable.
    "unreachable_or_mode": ("the remote peer could not be reached, or it accepts main mode only",
                            "check that the peer allows aggressive mode (or use main mode on "
                            "both), the remote gateway address, the route to it, that UDP port "
                            "500 is not blocked and that the peer runs IKE"),
    # A DNS-named remote gateway the resolver could not turn into an address (the driver asks
    # again before the next attempt).
    "dns": ("the peer's name does not resolve",
            "check the remote gateway's name, that it is registered (dynamic DNS) and the "
            "router's DNS servers; the daemon tries again"),
    "mode": ("probable mode mismatch",
             "check that both peers use the same IKE phase 1 mode (main or aggressive)"),
    "p1_algorithm": ("probable algorithm mismatch",
                     "check the IKE proposals (encryption, hash, DH group) on both peers: at "
                     "least one combination must be the same"),
    # NO-PROPOSAL-CHOSEN for an offer a common default accepts: Libreswan also answers so when it
    # has no connection or no pre-shared key for our ID and address ("Can't authenticate").
    "p1_algorithm_or_id": ("probable algorithm mismatch, or our ID or key is not configured on "
                           "the peer",
                           "check the IKE proposals on both peers, and that the peer has a "
                           "connection and a pre-shared key (or certificate) for our ID and "
                           "address"),
    "auth_method": ("probable authentication method mismatch",
                    "check that both peers authenticate the same way (pre-shared key or "
                    "certificates)"),
    "id": ("probable ID mismatch",
           "check the local and remote ID (type and value) on both peers"),
    "psk": ("probable pre-shared key mismatch", "check the pre-shared key on both peers"),
    # A peer that decrypted our last phase 1 message (so the key is right) and still refuses it
    # with AUTHENTICATION-FAILED: strongSwan does this both when no configuration accepts our ID
    # and when its configuration uses the other phase 1 mode. The wire cannot tell them apart.
    "id_or_mode": ("probable ID or mode mismatch",
                   "check the local and remote ID (type and value) and the IKE phase 1 mode "
                   "(main or aggressive) on both peers"),
    "cert": ("probable certificate mismatch",
             "check the certificates (dates, revocation, key usage), their CAs and "
             "intermediates, and the remote ID on both peers"),
    "timeout": ("the negotiation stopped",
                "check the VPN log of both peers for the step that failed"),
    "malformed": ("the peer sent a message we could not use",
                  "check that the peer is a standards-compliant IKEv1 implementation and its "
                  "VPN log"),
    "peer_refused": ("the peer refused the negotiation",
                     "check the peer's VPN log for its reason"),
    "dead_peer": ("the peer stopped answering (dead peer detection)",
                  "check that the remote gateway is up and reachable"),
    "protocol": ("probable protocol mismatch",
                 "check that both peers use the same IPsec protocol (AH, ESP or both)"),
    "p2_algorithm": ("probable algorithm mismatch",
                     "check the connection proposals (encryption, integrity) on both peers: "
                     "at least one combination must be the same"),
    "pfs": ("probable PFS mismatch",
            "check that both peers use PFS with the same DH group, or both none"),
    "network": ("probable local/remote network mismatch",
                "check the local and remote networks of the connection on both peers (each "
                "side's local network is the other's remote network)"),
    "p2_refused": ("the peer accepted none of our proposals: probable protocol, algorithm or "
                   "PFS mismatch",
                   "check the protocol (AH/ESP), the proposals and PFS of the connection on "
                   "both peers"),
    "p2_timeout": ("the peer did not complete quick mode",
                   "check the connection settings and the VPN log on the peer"),
}

# A notify the peer sent us during phase 1 -> our probable cause.
PHASE1_NOTIFY_CAUSES = {
    14: "p1_algorithm",      # NO-PROPOSAL-CHOSEN
    7: "mode",               # INVALID-EXCHANGE-TYPE
    29: "mode",              # UNSUPPORTED-EXCHANGE-TYPE
    18: "id",                # INVALID-ID-INFORMATION
    16: "psk",               # PAYLOAD-MALFORMED (what a peer says when it cannot decrypt)
    23: "psk",               # INVALID-HASH-INFORMATION
    24: "id_or_mode",        # AUTHENTICATION-FAILED (the key decrypted fine: see CAUSES)
    25: "cert",              # INVALID-SIGNATURE
    20: "cert",              # INVALID-CERTIFICATE
    22: "cert",              # INVALID-CERT-AUTHORITY
    28: "cert",              # CERTIFICATE-UNAVAILABLE
    19: "cert",              # INVALID-CERT-ENCODING
    21: "cert",              # CERT-TYPE-UNSUPPORTED
}

# A notify the peer sent us about a quick mode -> our probable cause.
PHASE2_NOTIFY_CAUSES = {
    14: "p2_refused",        # NO-PROPOSAL-CHOSEN: protocol, algorithms or PFS
    18: "network",           # INVALID-ID-INFORMATION
    17: "pfs",               # INVALID-KEY-INFORMATION
    10: "protocol",          # INVALID-PROTOCOL-ID
    12: "p2_algorithm",      # INVALID-TRANSFORM-ID
    13: "p2_algorithm",      # ATTRIBUTES-NOT-SUPPORTED
}


def line(cause, remote, detail=None, phase=1, connection=None, peer=None):
    """The diagnosis line. cause: a key of CAUSES; remote: the peer's address; detail: the
    technical evidence (short, no trailing period)."""
    probable, check = CAUSES.get(cause, CAUSES["timeout"])
    if phase == 1:
        where = "phase 1 with %s" % remote
    else:
        where = "phase 2%s with %s" % (" (connection %s)" % connection if connection else "",
                                       remote)
    evidence = " (%s)" % detail if detail else ""
    return "%s failed: %s%s \u2014 %s" % (where, probable, evidence, check)


def cause_of_notify(notify_type, phase):
    table = PHASE1_NOTIFY_CAUSES if phase == 1 else PHASE2_NOTIFY_CAUSES
    return table.get(notify_type, "peer_refused")


# The kernel's words (strerror text) when it refuses an SA -> what they mean for the user.
KERNEL_REASONS = (
    ("Protocol not supported", "the kernel lacks %s support"),
    ("Function not implemented", "the kernel lacks the negotiated %s algorithm"),
    ("Operation not permitted", "the daemon may not change the kernel's IPsec state (it needs "
                                "CAP_NET_ADMIN)"),
    ("File exists", "the kernel already holds an SA with this SPI"),
)


def kernel_install_line(protocol, spi, direction, reason, connection=None, remote=None):
    """The one line for an SA the kernel refused, e.g. "installing ESP SA 0xc1a2b3d4 (incoming)
    in the kernel failed: Protocol not supported \u2014 the kernel lacks ESP support"."""
    name = protocol.upper()
    where = ""
    if connection:
        where = " of connection %s%s" % (connection, " with %s" % remote if remote else "")
    meaning = "check the kernel's IPsec (XFRM, %s) support and the daemon's log" % name
    for words, text in KERNEL_REASONS:
        if reason and reason.startswith(words):
            meaning = text % name if "%s" in text else text
            break
    return "installing %s SA 0x%08x (%s)%s in the kernel failed: %s \u2014 %s" % (
        name, spi, "incoming" if direction == "in" else "outgoing", where, reason, meaning)
