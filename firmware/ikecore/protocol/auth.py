"""Who we are and how we prove it in phase 1, and checking the peer's proof (RFC 2409 5.1).

Identities: our ID payload (configured, else our address or our certificate's subject), a
received ID as text, and the comparison with the configured remote ID. Proofs: HASH_I/HASH_R
for pre-shared keys, CERT + SIG for RSA signatures, certificate requests naming our CA. A failed
check records the diagnosis on the IKE SA and tells the peer. Portable: no I/O, no clock.
"""

from . import codec
from . import consts as C
from . import diagnosis
from . import informational
from . import states
from .addresses import ip_bytes, ip_text
from .crypto import CryptoError
from .events import PeerCertificates
from .ikesa import FAILED_KEEP_S
from .settings import Identity


# -- identities ---------------------------------------------------------------------------------------
def identity_payload(crypto, identity):
    """Our phase 1 ID payload for a settings.Identity."""
    if identity.type == "ipv4":
        return codec.IdPayload(C.ID_IPV4_ADDR, ip_bytes(identity.value))
    if identity.type == "fqdn":
        return codec.IdPayload(C.ID_FQDN, identity.value.encode())
    if identity.type == "user_fqdn":
        return codec.IdPayload(C.ID_USER_FQDN, identity.value.encode())
    if identity.type == "dn":
        return codec.IdPayload(C.ID_DER_ASN1_DN, crypto.dn_der(identity.value))
    raise ValueError("unknown identity type %r" % (identity.type,))


def identity_text(crypto, id_type, data):
    """A received phase 1 ID as (our type name or the RFC name, text) for comparing and logging."""
    try:
        if id_type == C.ID_IPV4_ADDR and len(data) == 4:
            return "ipv4", ip_text(data)
        if id_type == C.ID_FQDN:
            return "fqdn", bytes(data).decode()
        if id_type == C.ID_USER_FQDN:
            return "user_fqdn", bytes(data).decode()
        if id_type == C.ID_DER_ASN1_DN:
            return "dn", crypto.dn_text(data)
    except (UnicodeError, CryptoError, ValueError):
        pass
    return C.name(C.ID_TYPE_NAMES, id_type), bytes(data).hex()


def identity_matches(crypto, expected, id_type, data):
    """Does the received ID equal the configured remote ID? None configured accepts any."""
    if expected is None:
        return True
    kind, text = identity_text(crypto, id_type, data)
    if kind != expected.type:
        return False
    if kind == "dn":
        try:
            return crypto.dn_text(crypto.dn_der(expected.value)) == text
        except CryptoError:
            return False
    if kind in ("fqdn", "user_fqdn"):
        return text.lower() == expected.value.lower()
    return text == expected.value


def local_identity(sa):
    ident = sa.peer.local_id
    if ident is None:
        if sa.auth == "rsa" and sa.peer.cert_der:
            ident = Identity("dn", sa.crypto.cert_subject(sa.peer.cert_der))
        else:
            ident = Identity("ipv4", sa.local[0])
    return ident


# -- our proof: HASH for pre-shared keys, CERT + SIG for RSA ------------------------------------------
def proof_payloads(sa, hash_value):
    """What proves our identity in MM 5/6 and AM 2/3."""
    if sa.auth != "rsa":
        return [codec.HashPayload(hash_value)]
    # Our certificate first, then the configured intermediates (one CERT payload each).
    return [codec.CertPayload(C.CERT_X509_SIGNATURE, der)
            for der in [sa.peer.cert_der] + sa.peer.chain_ders] + [
            codec.SigPayload(sa.crypto.sign("rsa", sa.peer.key_pem, hash_value))]


def cert_requests(sa):
    """CR naming our CA (MM 3/4, AM 1/2), so the peer sends its certificate."""
    if sa.auth != "rsa":
        return []
    cas = list(sa.peer.ca_ders)
    if sa.provisional:
        # Still any of the dynamic peers with certificates: name every CA one of them trusts.
        for peer in sa.host.dynamic_peers():
            if peer.auth == "rsa" and peer.phase1_mode == sa.mode:
                cas += [ca for ca in peer.ca_ders if ca not in cas]
    return [codec.CrPayload(C.CERT_X509_SIGNATURE, sa.crypto.cert_subject_der(ca))
            for ca in cas]


# -- the peer's proof ---------------------------------------------------------------------------------
def auth_failed(sa, detail, now, decrypt=False):
    """Wrong pre-shared key (or certificate) - or a message damaged on the way, which looks the
    same. The diagnosis is shown and logged once, and the peer hears an unencrypted notify (with
    different keys it could not read an encrypted one), but the negotiation stays open: a good
    copy of the message (a retransmission) still completes it, so one forged datagram cannot
    kill it. The initiator's give-up, or the cleanup of the responder's SA, ends it."""
    cause = "psk" if sa.auth == "psk" else "cert"
    sa.hint = (cause, detail)
    line = diagnosis.line(cause, sa.remote[0], detail, phase=1, peer=sa.peer)
    if sa.last_error != line:
        sa.last_error = line
        sa.log("error", line)
        sa.notify_clear(C.PAYLOAD_MALFORMED if decrypt else C.INVALID_HASH_INFORMATION,
                      remember=False)
    if sa.remove_at is None and not sa.initiator:
        sa.remove_at = now + FAILED_KEEP_S


def check_proof(sa, received, now, number, responder_hash):
    """HASH_I / HASH_R of main mode 5/6 or aggressive mode 2 - or its signature. With pre-shared
    keys this proves both sides hold the same key (it enters SKEYID)."""
    ident = received.one(codec.IdPayload)      # there: the state's row requires it
    proof = received.one(codec.SigPayload if sa.auth == "rsa" else codec.HashPayload)
    if proof is None:
        if sa.auth == "rsa" and received.one(codec.HashPayload) is not None:
            sa.fail("auth_method", "we use certificates, the peer authenticated with a "
                    "pre-shared key hash", now)
            return False
        auth_failed(sa, "message %d did not decrypt to valid payloads" % number, now, decrypt=True)
        return False
    id_b = received.body(received.index_of(codec.IdPayload))
    expected = sa.hash_r(id_b) if responder_hash else sa.hash_i(id_b)
    return verify(sa, received, now, number, expected,
                   "HASH_R" if responder_hash else "HASH_I", received_id=ident)


def verify(sa, received, now, number, expected, what, received_id):
    """PSK: the HASH payload equals what we computed. RSA: the peer's certificate is signed by
    our CA, carries the ID the peer claims, and its key signed the hash."""
    if sa.auth != "rsa":
        proof = received.one(codec.HashPayload)
        if proof is None or bytes(proof.data) != expected:
            auth_failed(sa, "message %d: its %s did not verify" % (number, what), now)
            return False
        return True
    sig = received.one(codec.SigPayload)
    # The first X.509 CERT payload is the peer's own certificate, any further ones the
    # intermediates of its chain (RFC 2408 3.9 leaves the order open; strongSwan and Libreswan
    # send the end entity first).
    sent = [bytes(c.data) for c in received.all(codec.CertPayload)
            if c.encoding == C.CERT_X509_SIGNATURE]
    cert = sent[0] if sent else None
    if sent and sa.peer.fetch_crls:
        sa.host.emit(PeerCertificates(sa.peer.name, sent))
    if sig is None:
        return _cert_failed(sa, "message %d carries no signature" % number, now)
    if cert is None:
        return _cert_failed(sa, "the peer sent no certificate in message %d" % number, now,
                            C.CERTIFICATE_UNAVAILABLE)
    try:
        peer = sa.peer
        problem = sa.crypto.cert_verify(cert, peer.ca_ders, sent[1:] + peer.chain_ders,
                                        peer.crl_ders, sa.host.wall_time(now),
                                        revocation=peer.fetch_crls) \
            if peer.ca_ders else "no CA is configured to check it against"
        if problem is not None:
            return _cert_failed(sa, "the peer's certificate %s: %s" % (
                sa.crypto.cert_subject(cert), problem), now, C.INVALID_CERT_AUTHORITY)
        bound = _id_in_certificate(sa, cert, received_id)
        if bound is not None:
            return _cert_failed(sa, bound, now, C.INVALID_ID_INFORMATION)
        if not sa.crypto.verify(cert, expected, bytes(sig.data)):
            return _cert_failed(sa, "the signature over %s in message %d does not verify with "
                                "the certificate's key" % (what, number), now, C.INVALID_SIGNATURE)
    except CryptoError as exc:
        return _cert_failed(sa, "the peer's certificate cannot be used: %s" % exc, now,
                            C.INVALID_CERTIFICATE)
    sa.peer_cert = cert
    return True


def _id_in_certificate(sa, cert, ident):
    """None when the claimed ID is the certificate's subject or one of its alt names, else why
    not (a certificate only vouches for the names it carries)."""
    kind, text = identity_text(sa.crypto, ident.id_type, ident.data)
    if kind == "dn":
        if text == sa.crypto.cert_subject(cert):
            return None
    else:
        wanted = {"ipv4": "ip", "fqdn": "dns", "user_fqdn": "email"}.get(kind)
        for alt_kind, value in sa.crypto.cert_alt_names(cert):
            if alt_kind == wanted and value.lower() == text.lower():
                return None
    return "the peer's ID %s %s is not in its certificate (%s)" % (
        kind, text, sa.crypto.cert_subject(cert))


def _cert_failed(sa, detail, now, notify_type=C.AUTHENTICATION_FAILED):
    """A certificate problem is not a damaged datagram: it ends the negotiation. The keys agree
    (no pre-shared key involved), so the refusal goes encrypted."""
    sa.fail("cert", detail, now)
    informational.send_notify(sa, notify_type, now)
    if sa.mode == states.MAIN and sa.initiator:
        informational.send_delete_ike(sa, now)     # the responder already counts it as up
    return False


def id_mismatch(sa, ident):
    """None when the peer's ID payload is the configured remote ID (or none is configured),
    else the evidence for the diagnosis."""
    if identity_matches(sa.crypto, sa.peer.remote_id, ident.id_type, ident.data):
        return None
    got = identity_text(sa.crypto, ident.id_type, ident.data)
    return "the peer identified as %s %s, we expect %s %s" % (
        got[0], got[1], sa.peer.remote_id.type, sa.peer.remote_id.value)


def check_id(sa, received, now):
    """The peer's (authenticated) ID against the configured remote ID."""
    mismatch = id_mismatch(sa, received.one(codec.IdPayload))
    if mismatch is None:
        return True
    sa.fail("id", mismatch, now)
    if sa.keys is not None:
        # Keys agree (the hash verified), so the refusal goes encrypted and authenticated.
        informational.send_notify(sa, C.INVALID_ID_INFORMATION, now)
        if sa.mode == states.MAIN and sa.initiator:
            # The responder already considers the SA up: take it down on its side too.
            informational.send_delete_ike(sa, now)
    return False
