"""Quick mode (phase 2): negotiating the IPsec SAs of one connection under an IKE SA.

RFC 2409 section 5.5, all messages encrypted under the IKE SA, IV from the last phase 1 block:

  HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr]                   -->
                 <--  HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr] [, N(RESPONDER-LIFETIME)]
  HDR*, HASH(3)                                                 -->

ESP, AH, or ESP+AH (two ISAKMP proposals with the same number: one SA bundle). Tunnel mode;
IDci/IDcr are the connection's networks (ID_IPV4_ADDR_SUBNET, or ID_IPV4_ADDR for a /32).
The core (host.Host) picks our inbound SPIs; keys come from keymat.keymat(); the result is one
events.ChildSa per direction and protocol. Portable: no I/O, no clock.
"""

from . import codec
from . import consts as C
from . import informational
from . import keymat
from . import natt
from . import proposals
from . import states
from .crypto import CryptoError
from .events import ChildSa
from .host import ChildrenEstablished, InboundReady, Malformed, QuickModeFailed
from .addresses import ip_text, parse_net, same_net
from .ikesa import RETRANSMIT_DELAYS, Exchange

# How long a finished exchange is remembered to answer a repeated last message.
DONE_KEEP_S = 60

# The states of one quick mode, one row each (states.Row: the handler, the payloads the peer's
# message must carry, checked by receive() before the handler runs, and the next state). A
# message id no exchange has yet is in QR_NEW: the peer's request, which makes the exchange.
# The handlers are QuickMode's methods, or functions of this module (bound at its end).
# DONE and FAILED take no message: repeats of the peer's last one get our last answer again.
QR_NEW = "QR_NEW"
QI_1_SENT = "QI_1_SENT"
QR_2_SENT = "QR_2_SENT"
DONE = "DONE"
FAILED = "FAILED"
_H, _SA, _NONCE, _E = C.PT_HASH, C.PT_SA, C.PT_NONCE, states.ENCRYPTED   # receive() checks _E
_MAY = (C.PT_KE, C.PT_ID, C.PT_NOTIFY)
TABLE = states.Table("quick mode", (
    states.Row(QR_NEW, None, "responder: no exchange has this message id yet", states.VALID,
               QR_2_SENT, "_new_request", "quick mode message 1", (_H, _SA, _NONCE), _H, _MAY,
               _E),
    states.Row(QI_1_SENT, None, "initiator: HASH(1), SA, Ni [, KE], IDci, IDcr sent",
               states.VALID, DONE, "handle_response", "quick mode message 2",
               (_H, _SA, _NONCE), _H, _MAY, _E),
    states.Row(QR_2_SENT, None, "responder: HASH(2), SA, Nr [, KE], IDci, IDcr sent",
               states.VALID, DONE, "handle_final", "quick mode message 3", (_H,), _H, (), _E),
    states.Row(DONE, None, "the SAs are the core's"),
    states.Row(FAILED, None, "diagnosed or abandoned; nothing of it stays"),
))


def bundle(protocol):
    """"esp+ah" -> ("esp", "ah"): the SAs one quick mode creates per direction."""
    return ("esp", "ah") if protocol == "esp+ah" else (protocol,)


# -- traffic selectors as ID payloads ------------------------------------------------------------
def net_id(text):
    """A connection network as the quick mode ID payload (protocol and port 0: all traffic)."""
    addr, prefix = parse_net(text)
    if prefix == 32:
        return codec.IdPayload(C.ID_IPV4_ADDR, addr)
    mask = ((0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF).to_bytes(4, "big")
    return codec.IdPayload(C.ID_IPV4_ADDR_SUBNET, addr + mask)


def id_net(payload):
    """A received quick mode ID payload as "a.b.c.d/n" text, or None for types we do not use."""
    data = bytes(payload.data)
    if payload.id_type == C.ID_IPV4_ADDR and len(data) == 4:
        return ip_text(data) + "/32"
    if payload.id_type == C.ID_IPV4_ADDR_SUBNET and len(data) == 8:
        mask = int.from_bytes(data[4:], "big")
        prefix = 0
        while prefix < 32 and mask & (0x80000000 >> prefix):
            prefix += 1
        return "%s/%d" % (ip_text(data[:4]), prefix)
    return None


class QuickMode(Exchange):
    """One quick mode exchange (one message id) and, when it succeeds, the SAs it made."""

    def __init__(self, sa, connection, initiator, message_id, now, replaces=None):
        self.sa = sa
        self.connection = connection
        self.initiator = initiator
        self.mid = message_id
        self.created = now
        self.replaces = replaces or []      # ids of child SAs this one renews
        self.ni = self.nr = None
        self.dh_private = None              # our PFS private value, until g^xy(qm) is known
        self.ke_i = self.ke_r = None
        self.children = None                # responder: the SAs, derived when message 2 goes out
        self.early = []                     # responder: ids of those installed before HASH(3)
        self.my_spis = {}                   # protocol -> our inbound SPI (4 bytes)
        self.peer_spis = {}                 # protocol -> the peer's inbound SPI
        self.chosen = None                  # protocol -> proposals.ChildTransform
        self.proposal = None                # the ChildProposal agreed
        # the lifetime we offer and, once agreed, the one in force (see _accept_lifetime)
        self.lifetime_s, self.lifetime_note = sa.host.lifetime_in_force(
            "connection", connection.name, connection.lifetime_s)
        self.lifetime_kb = connection.lifetime_kb
        self.init_exchange()                # its messages: retransmission, repeats
        self.state = QI_1_SENT if initiator else QR_2_SENT
        self.forget_at = None
        self.id_ci = self.id_cr = None      # the ID payloads as exchanged

    @property
    def done(self):
        return self.state == DONE

    @property
    def failed(self):
        return self.state == FAILED

    def deadline(self):
        if self.pending is not None:
            return self.pending.deadline
        return self.forget_at

    def log(self, level, text):
        self.sa.log(level, text)

    def counters(self):
        return self.sa.host.counters

    def fail(self, cause, detail, now):
        """The exchange failed for one of the seed's causes: the diagnosis, then abandon()."""
        self.sa.fail(cause, detail, now, phase=2, connection=self.connection.name)
        self.abandon(now)

    def abandon(self, now):
        """Stop here: no more retransmissions, a late message is ignored, no SA of it stays."""
        self.state = FAILED
        self.pending = None
        self._forget_secrets()
        self.forget_at = now + DONE_KEEP_S
        self.sa.host.report(QuickModeFailed(self, now))

    def send(self, payloads_after_hash, hash_value, now, wants_answer):
        data = self.sa.message(C.EXCHANGE_QUICK, [codec.HashPayload(hash_value)] + payloads_after_hash,
                               message_id=self.mid, encrypt=True)
        self.send_and_keep(data, now, wants_answer)

    def transmit(self, data):
        self.sa.host.send(data, self.sa.local, self.sa.remote)

    # -- initiator -----------------------------------------------------------------------------
    def start(self, now):
        """HDR*, HASH(1), SA, Ni [, KE], IDci, IDcr -->"""
        conn = self.connection
        for proto in bundle(conn.protocol):
            self.my_spis[proto] = self.sa.host.allocate_spi(proto)
        sa_payload = codec.SaPayload(self._offer(), doi=C.DOI_IPSEC, situation=C.SIT_IDENTITY_ONLY)
        self.ni = self.sa.crypto.random(32)
        after = [sa_payload, codec.NoncePayload(self.ni)]
        if conn.pfs:
            self.dh_private, self.ke_i = self.sa.crypto.dh_new(conn.pfs)
            after.append(codec.KePayload(self.ke_i))
        self.id_ci, self.id_cr = net_id(conn.local_net), net_id(conn.remote_net)
        after += [self.id_ci, self.id_cr]
        _, raw = codec.encode_payloads(after)
        h = keymat.qm_hash1(self.sa.crypto, self.sa.prf, self.sa.keys.skeyid_a, self.mid, raw)
        self.send(after, h, now, wants_answer=True)
        self.log("info", "quick mode %s: proposing %s %s (PFS %s) for %s <-> %s" % (
            conn.name, conn.protocol, ", ".join(p.name for p in conn.proposals),
            conn.pfs or "none", conn.local_net, conn.remote_net))

    def _offer(self):
        """One ISAKMP proposal per (ChildProposal, protocol); the protocols of one ChildProposal
        share its proposal number (an AND bundle, RFC 2408 section 4.2)."""
        conn = self.connection
        result = []
        for number, p in enumerate(conn.proposals[:proposals.MAX_PROPOSALS]):
            for proto in bundle(conn.protocol):
                tid, attrs = proposals.child_transform(p, proto, self.lifetime_s, conn.lifetime_kb,
                                                       conn.pfs, udp=_udp_encapsulation(self.sa))
                result.append(codec.Proposal(number + 1, proposals.PROTOCOL_IDS[proto], self.my_spis[proto],
                                             [codec.Transform(1, tid, attrs)]))
        return result

    def handle_response(self, received, now, next_iv):
        """<-- HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr] [, N(RESPONDER-LIFETIME)]
        then HDR*, HASH(3) --> and the SAs are installed."""
        conn = self.connection
        sa_payload = received.one(codec.SaPayload)       # HASH first, SA and Nr: the row's
        nonce = received.one(codec.NoncePayload)
        expected = keymat.qm_hash2(self.sa.crypto, self.sa.prf, self.sa.keys.skeyid_a, self.mid,
                                   self.ni, received.raw_after(0))
        if bytes(received.payloads[0].data) != expected:
            self.log("warning", "quick mode %s: HASH(2) did not verify, message dropped" % conn.name)
            return False
        self.nr = bytes(nonce.data)
        answer = {}
        for prop in sa_payload.proposals:
            proto = proposals.PROTOCOL_NAMES.get(prop.protocol)
            if proto is None or proto in answer or len(prop.transforms) != 1 or len(prop.spi) != 4:
                answer = None
                break
            t = prop.transforms[0]
            answer[proto] = (t.transform_id, t.attribute_pairs())
            self.peer_spis[proto] = bytes(prop.spi)
        chosen = None
        if answer:
            chosen = proposals.confirm_child(conn.proposals, conn.protocol, conn.pfs, answer)
        if chosen is None:
            self._reject(next_iv, now)
            self.fail("p2_algorithm", "the peer chose a proposal we did not offer", now)
            return True
        ke = received.one(codec.KePayload)
        if (ke is None) != (conn.pfs is None):
            self._reject(next_iv, now)
            self.fail("pfs", "we use PFS %s, the peer answered %s a key exchange" % (
                conn.pfs or "none", "without" if ke is None else "with"), now)
            return True
        g_qm = None
        if ke is not None:
            self.ke_r = bytes(ke.data)
            try:
                g_qm = self.sa.crypto.dh_shared(conn.pfs, self.dh_private, self.ke_r)
            except CryptoError as exc:
                self.fail("malformed", "the peer's PFS key exchange value is invalid: %s" % exc, now)
                return True
            self.dh_private = None          # forget y as soon as g^xy(qm) is known
        self.chosen = chosen
        self.proposal = _proposal_of(conn, chosen)
        first = chosen[bundle(conn.protocol)[0]]
        if first.lifetime_s and first.lifetime_s < self.lifetime_s:
            self.lifetime_note = "the peer's; we proposed %d" % self.lifetime_s
            self.lifetime_s = first.lifetime_s
        for note in received.all(codec.NotifyPayload):
            if note.notify_type == C.RESPONDER_LIFETIME:
                self._responder_lifetime(note)
        self.last_received = received.data
        self.sa.set_iv(self.mid, next_iv)     # HASH(3) chains on message 2's last block
        h = keymat.qm_hash3(self.sa.crypto, self.sa.prf, self.sa.keys.skeyid_a, self.mid,
                            self.ni, self.nr)
        self.send([], h, now, wants_answer=False)
        children = self._derive_children(g_qm, now)
        g_qm = None
        self._forget_secrets()           # KEYMAT is derived: the PFS secret has served
        self._complete(children, now)
        return True

    def _reject(self, next_iv, now):
        """Tell the responder its answer is unacceptable, so it stops waiting for HASH(3)."""
        informational.send_notify(self.sa, C.NO_PROPOSAL_CHOSEN, now)

    def _responder_lifetime(self, note):
        """RFC 2407 section 4.6.3.1: the responder shortened the lifetime; we adopt it."""
        seconds, kilobytes = proposals.lifetime_from_notify(
            bytes(note.data), proposals.P2_LIFE_TYPE, proposals.P2_LIFE_DURATION)
        if seconds and seconds < self.lifetime_s:
            self.log("info", "quick mode %s: the peer's RESPONDER-LIFETIME is %d s, shorter than "
                     "our %d s: using %d s" % (self.connection.name, seconds, self.lifetime_s,
                                               seconds))
            self.lifetime_note = "the peer's (RESPONDER-LIFETIME); we proposed %d" % self.lifetime_s
            self.lifetime_s = seconds
        if kilobytes:
            self.lifetime_kb = min(self.lifetime_kb, kilobytes) if self.lifetime_kb else kilobytes

    # -- responder -------------------------------------------------------------------------------
    def handle_request(self, received, now):
        """<-- HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr]
        then HDR*, HASH(2), SA, Nr [, KE], IDci, IDcr [, N(RESPONDER-LIFETIME)] -->"""
        sa = self.sa
        conn = self.connection
        sa_payload = received.one(codec.SaPayload)
        nonce = received.one(codec.NoncePayload)
        ke = received.one(codec.KePayload)
        self.ni = bytes(nonce.data)
        self.last_received = received.data
        # Group the offered ISAKMP proposals by number: each group is one SA bundle.
        numbers, offered, spis = [], [], []
        for prop in sa_payload.proposals:
            proto = proposals.PROTOCOL_NAMES.get(prop.protocol)
            if proto is None:
                continue
            if prop.number not in numbers:
                numbers.append(prop.number)
                offered.append({})
                spis.append({})
            i = numbers.index(prop.number)
            offered[i][proto] = [(t.transform_id, t.attribute_pairs())
                                 for t in prop.transforms]
            spis[i][proto] = (bytes(prop.spi), prop.transforms)
        match = None
        for ours in conn.proposals:       # our preference decides among what was offered
            match = proposals.match_child([ours], conn.protocol, conn.pfs, offered)
            if match is not None:
                break
        if match is None:
            kind, detail = proposals.explain_child(conn.proposals, conn.protocol, conn.pfs, offered)
            self._refuse({"protocol": "protocol", "pfs": "pfs"}.get(kind, "p2_algorithm"), detail,
                         C.NO_PROPOSAL_CHOSEN, now)
            return
        index, chosen = match
        if (ke is None) != (conn.pfs is None):
            self._refuse("pfs", "the peer sent %s key exchange, we use PFS %s" % (
                "no" if ke is None else "a", conn.pfs or "none"), C.NO_PROPOSAL_CHOSEN, now)
            return
        g_qm = None
        if ke is not None:
            self.ke_i = bytes(ke.data)
            # Our private value is needed for this one computation only: never kept.
            private, self.ke_r = sa.crypto.dh_new(conn.pfs)
            try:
                g_qm = sa.crypto.dh_shared(conn.pfs, private, self.ke_i)
            except CryptoError as exc:
                self._refuse("malformed", "the peer's PFS key exchange value is invalid: %s" % exc,
                             C.INVALID_KEY_INFORMATION, now)
                return
            private = None
        self.chosen = dict((p, t) for p, (_, t) in chosen.items())
        self.proposal = _proposal_of(conn, self.chosen)
        answer = []
        shorten = False
        for proto in bundle(conn.protocol):
            t_index, transform = chosen[proto]
            peer_spi, transforms = spis[index][proto]
            if len(peer_spi) != 4:
                self._refuse("malformed", "the peer's %s SPI is %d bytes, not 4" % (
                    proto, len(peer_spi)), C.INVALID_SPI, now)
                return
            self.peer_spis[proto] = peer_spi
            self.my_spis[proto] = sa.host.allocate_spi(proto)
            answer.append(codec.Proposal(numbers[index], proposals.PROTOCOL_IDS[proto], self.my_spis[proto],
                                         [transforms[t_index]]))
            if transform.lifetime_s and transform.lifetime_s > self.lifetime_s:
                shorten = True
                self.lifetime_note = "ours; the peer proposed %d" % transform.lifetime_s
            elif transform.lifetime_s and transform.lifetime_s < self.lifetime_s:
                self.lifetime_note = "the peer's; ours is %d" % self.lifetime_s
                self.lifetime_s = transform.lifetime_s
            if transform.lifetime_kb and conn.lifetime_kb and transform.lifetime_kb > conn.lifetime_kb:
                shorten = True
            elif transform.lifetime_kb:
                self.lifetime_kb = transform.lifetime_kb
        self.nr = sa.crypto.random(32)
        after = [codec.SaPayload(answer, doi=C.DOI_IPSEC, situation=C.SIT_IDENTITY_ONLY),
                 codec.NoncePayload(self.nr)]
        if self.ke_r is not None:
            after.append(codec.KePayload(self.ke_r))
        after += [self.id_ci, self.id_cr]
        if shorten:
            # RFC 2407 section 4.6.3.1: tell the initiator the lifetime we will use.
            self.log("info", "quick mode %s: the peer proposed a longer lifetime than our %d s: "
                     "using ours and telling the peer (RESPONDER-LIFETIME)" % (
                         conn.name, self.lifetime_s))
            proto = bundle(conn.protocol)[0]
            after.append(codec.NotifyPayload(C.RESPONDER_LIFETIME, protocol=proposals.PROTOCOL_IDS[proto],
                                             spi=self.peer_spis[proto],
                                             data=_lifetime_attributes(self)))
        _, raw = codec.encode_payloads(after)
        h = keymat.qm_hash2(sa.crypto, sa.prf, sa.keys.skeyid_a, self.mid, self.ni, raw)
        # We retransmit until HASH(3) comes: it is the last message of the exchange.
        self.send(after, h, now, wants_answer=True)
        # Every key is known now. Our inbound SAs go to the kernel at once: an initiator may move
        # its traffic to the new SAs as soon as it has this answer (strongSwan does, before it
        # even sends HASH(3)). The outbound ones wait for HASH(3), which proves the initiator
        # has its inbound SAs (RFC 2409 section 5.5).
        self.children = self._derive_children(g_qm, now)
        g_qm = None
        self._forget_secrets()
        sa.host.report(InboundReady(self, [c for c in self.children if c.direction == "in"]))

    def handle_final(self, received, now, next_iv):
        """<-- HDR*, HASH(3) (first: the row's): the SAs go into the kernel."""
        expected = keymat.qm_hash3(self.sa.crypto, self.sa.prf, self.sa.keys.skeyid_a, self.mid,
                                   self.ni, self.nr)
        if bytes(received.payloads[0].data) != expected:
            self.log("warning", "quick mode %s: HASH(3) did not verify, message dropped"
                     % self.connection.name)
            return
        self.last_received = received.data
        self.sa.set_iv(self.mid, next_iv)
        self.pending = None
        self._complete(self.children, now)

    def _refuse(self, cause, detail, notify_type, now):
        informational.send_notify(self.sa, notify_type, now)
        self.fail(cause, detail, now)

    # -- both ------------------------------------------------------------------------------------
    def _derive_children(self, g_qm, now):
        """KEYMAT for each SA of the bundle, in and out: the ChildSas for the kernel."""
        sa = self.sa
        conn = self.connection
        children = []
        for proto in bundle(conn.protocol):
            t = self.chosen[proto]
            encr_len, integ_len = proposals.child_key_lengths(proto, _ChildKeyView(t))
            for direction, spi in (("in", self.my_spis[proto]), ("out", self.peer_spis[proto])):
                # KEYMAT of each SA uses that SA's SPI: the one its receiver chose.
                material = keymat.keymat(sa.crypto, sa.prf, sa.keys.skeyid_d, proposals.PROTOCOL_IDS[proto],
                                         spi, self.ni, self.nr, encr_len + integ_len, g_qm)
                encr_key, integ_key = keymat.split_keymat(material, encr_len, integ_len)
                local_gw, remote_gw = sa.local[0], sa.remote[0]
                children.append(ChildSa(
                    id=sa.host.new_child_id(), ike_sa=sa.id, peer=sa.peer.name,
                    connection=conn.name, protocol=proto, direction=direction,
                    spi=int.from_bytes(spi, "big"),
                    src=remote_gw if direction == "in" else local_gw,
                    dst=local_gw if direction == "in" else remote_gw,
                    local_net=conn.local_net, remote_net=conn.remote_net, mode="tunnel",
                    encr=t.encr if proto == "esp" else None, encr_key=encr_key if encr_len else None,
                    integ=t.integ, integ_key=integ_key, lifetime_s=self.lifetime_s,
                    lifetime_kb=self.lifetime_kb,
                    encap=(sa.natt.encap_ports(sa.remote, sa.local) if direction == "in"
                           else sa.natt.encap_ports(sa.local, sa.remote)),
                    reqid=sa.host.reqid(conn.name),
                    created=now))
        return children

    def _complete(self, children, now):
        """The exchange succeeded: hand the ChildSas to the core (which emits the events)."""
        sa = self.sa
        conn = self.connection
        self.state = DONE
        self.forget_at = now + DONE_KEEP_S
        sa.phase2_negotiations += 1
        sa.log("info", "quick mode %s with %s established: %s %s, SPIs in %s out %s, lifetime %d s" % (
            conn.name, sa.remote[0], conn.protocol.upper(), self.proposal.describe(),
            "/".join("0x%s" % self.my_spis[p].hex() for p in bundle(conn.protocol)),
            "/".join("0x%s" % self.peer_spis[p].hex() for p in bundle(conn.protocol)),
            self.lifetime_s))
        sa.host.report(ChildrenEstablished(self, children, now))
        self.children = None             # the core has them now; the exchange keeps no keys

    def _forget_secrets(self):
        """The exchange is over (done or failed): no DH value of it is needed any more. Repeats
        of the peer's last message are answered with our last message's bytes."""
        self.dh_private = None
        self.ke_i = self.ke_r = None

    def on_timer(self, now):
        outcome = self.retransmit_due(now)
        if outcome == "gave up":
            self.fail("p2_timeout", "no answer to quick mode message %d after %d transmissions"
                      % (1 if self.initiator else 2, len(RETRANSMIT_DELAYS)), now)
        if outcome is not None:
            return
        if self.forget_at is not None and self.forget_at <= now:
            self.sa.quick_modes.pop(self.mid, None)


def _udp_encapsulation(sa):
    """Encapsulation Mode numbering for child_transform: None without a NAT, else the RFC's
    or the drafts' UDP-encapsulated values, as the NAT-T variant agreed in phase 1 says."""
    if not sa.natt.float_ports:
        return None
    return "rfc" if sa.natt.variant is natt.RFC3947 else "draft"


class _ChildKeyView:
    """proposals.child_key_lengths wants .encr/.integ; a ChildTransform has them."""
    __slots__ = ("encr", "integ")

    def __init__(self, transform):
        self.encr = transform.encr
        self.integ = transform.integ


def _proposal_of(conn, chosen):
    first = chosen[bundle(conn.protocol)[0]]
    encr = chosen["esp"].encr if "esp" in chosen else None
    return proposals.ChildProposal(encr, first.integ, protocol=conn.protocol)


def _lifetime_attributes(qm):
    """The SA attributes of a RESPONDER-LIFETIME notify: life type + duration pairs."""
    return proposals.lifetime_notify_data(proposals.P2_LIFE_TYPE, proposals.P2_LIFE_DURATION,
                                          qm.lifetime_s, qm.lifetime_kb)


def find_connection(host, peer, received):
    """Responder: the connection of this peer whose networks mirror the offered IDci/IDcr
    (IDci is the peer's side = our remote_net). -> (connection, None) or (None, detail)."""
    ids = received.all(codec.IdPayload)
    conns = host.connections_of(peer.name)
    if len(ids) != 2:
        if not ids and len(conns) == 1:
            return None, "the peer sent no traffic selectors (transport mode), we use tunnel mode"
        return None, "the peer sent %d ID payloads, quick mode needs none or two" % len(ids)
    theirs, ours = id_net(ids[0]), id_net(ids[1])
    for conn in conns:
        if theirs and ours and same_net(theirs, conn.remote_net) and same_net(ours, conn.local_net):
            return conn, None
    configured = "; ".join("%s: local %s remote %s" % (c.name, c.local_net, c.remote_net)
                           for c in conns) or "no connection for this peer"
    return None, "the peer proposes local %s remote %s (seen from us: remote %s, local %s); we have %s" % (
        theirs, ours, theirs, ours, configured)


def receive(sa, header, data, now):
    """A quick mode message for this IKE SA: a new request from the peer, or the next message of
    one of our exchanges (matched by message id). Duplicates get our last message again."""
    mid = header.message_id
    if not sa.established:
        sa.log("warning", "quick mode message before the IKE SA is established, ignored")
        return
    if mid == 0 or not header.flags & C.FLAG_ENCRYPTION:
        sa.host.report(Malformed(sa, codec.MalformedMessage(
            "quick mode message %s" % ("with message id 0" if mid == 0 else "in clear"),
            C.INVALID_MESSAGE_ID if mid == 0 else C.PAYLOAD_MALFORMED)))
        return
    qm = sa.quick_modes.get(mid)
    if qm is not None and qm.answer_repeat(data):
        return
    if qm is not None and (qm.failed or (qm.done and not qm.initiator)):
        return
    try:
        received, next_iv = sa.open(header, data)
    except (codec.MalformedMessage, CryptoError) as exc:
        sa.host.report(Malformed(sa, exc if isinstance(exc, codec.MalformedMessage)
                                 else codec.MalformedMessage(str(exc))))
        return
    if sa.dpd is not None:
        sa.dpd.activity(now)
    if qm is not None:
        qm.current_input = data
    row = TABLE.rows[QR_NEW if qm is None else qm.state]
    if row.handler is None:
        return
    lacking = row.lacking(received)
    if lacking is not None:
        sa.host.report(Malformed(sa, codec.MalformedMessage(lacking)))
        return
    _HANDLERS[row.state](sa if qm is None else qm, received, now, next_iv)


def _new_request(sa, received, now, next_iv):
    """The peer starts a quick mode: check HASH(1), find the connection its IDs name."""
    mid = received.header.message_id
    expected = keymat.qm_hash1(sa.crypto, sa.prf, sa.keys.skeyid_a, mid, received.raw_after(0))
    if bytes(received.payloads[0].data) != expected:
        sa.log("warning", "quick mode request from %s: HASH(1) did not verify, ignored"
               % sa.remote[0])
        return
    sa.set_iv(mid, next_iv)
    sa.used_mids.add(mid)
    conn, detail = find_connection(sa.host, sa.peer, received)
    if conn is None:
        # Remember the refusal under this message id so retransmissions are not re-diagnosed.
        placeholder = QuickMode(sa, _NoConnection(), False, mid, now)
        placeholder.last_received = received.data
        placeholder.state = FAILED
        placeholder.forget_at = now + DONE_KEEP_S
        sa.quick_modes[mid] = placeholder
        informational.send_notify(sa, C.INVALID_ID_INFORMATION, now)
        sa.fail("network", detail, now, phase=2)
        return
    qm = QuickMode(sa, conn, False, mid, now)
    qm.current_input = received.data
    ids = received.all(codec.IdPayload)
    qm.id_ci, qm.id_cr = ids[0], ids[1]
    sa.quick_modes[mid] = qm
    qm.handle_request(received, now)


class _NoConnection:
    """Stands in for the connection of a refused quick mode (nothing matched its IDs)."""
    name = None
    lifetime_s = 0
    lifetime_kb = 0
    protocol = "esp"
    proposals = []
    pfs = None


def _handler_named(name):
    """A row's handler: a method of QuickMode (the exchange's next message), or a function of
    this module (the request that makes the exchange)."""
    return getattr(QuickMode, name, None) or globals().get(name)


_HANDLERS = TABLE.bind(_handler_named, "quickmode.py")
