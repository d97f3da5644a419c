"""Property-based fuzzing of the ISAKMP codec (hypothesis, derandomized so runs are repeatable).

Two promises are checked: decoding arbitrary bytes either succeeds or raises MalformedMessage
(never IndexError, struct.error, ValueError, ...), and whatever decodes re-encodes to the very same
bytes; valid messages built from objects survive encode -> decode -> encode unchanged.
"""

from hypothesis import HealthCheck, given, settings, strategies as st

from ikecore.protocol import consts as C
from ikecore.protocol.codec import (
    Attribute, CertPayload, CrPayload, DeletePayload, HashPayload, IdPayload, KePayload,
    MalformedMessage, Message, NatDPayload, NatOaPayload, NoncePayload, NotifyPayload, Proposal,
    SaPayload, SigPayload, Transform, VendorPayload, decode_message, decode_payloads, encode_message, payload_spans,
)

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def check_datagram(data):
    """The codec's contract for one datagram."""
    try:
        message = decode_message(data)
    except MalformedMessage as err:
        assert isinstance(err.reason, str) and err.reason
        assert isinstance(err.notify, int) and C.is_error_notify(err.notify)
        return None
    if message.body is None:
        assert encode_message(message) == data
    else:
        assert encode_message(message, body=message.body, first_payload=message.first_payload) == data
    return message


def check_chain(first_type, data, allow_padding):
    try:
        spans, end = payload_spans(first_type, data)
        assert end <= len(data) and all(s < e <= end for _, s, e in spans)
    except MalformedMessage as err:
        assert err.reason
    try:
        payloads = decode_payloads(first_type, data, allow_padding=allow_padding)
    except MalformedMessage as err:
        assert err.reason and C.is_error_notify(err.notify)
        return
    if not allow_padding:
        message = Message(C.EXCHANGE_MAIN, b"\x01" * 8, bytes(8), payloads=payloads)
        encoded = encode_message(message)
        assert encoded[C.HEADER_LENGTH:] == data
        assert payloads == [] or encoded[16] == first_type


# ---------------------------------------------------------------- valid messages from objects

small = st.binary(max_size=24)
u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
attribute = st.builds(Attribute, st.integers(0, 0x7FFF),
                      st.one_of(u16, st.integers(0x10000, 2 ** 64), st.binary(max_size=12)))
transform = st.builds(Transform, u8, u8, st.lists(attribute, max_size=4))
proposal = st.builds(Proposal, u8, u8, st.sampled_from([b"", b"\x01\x02\x03\x04", b"c" * 16]),
                     st.lists(transform, min_size=1, max_size=3))
spi4 = st.binary(min_size=4, max_size=4)
payload = st.one_of(
    st.builds(SaPayload, st.lists(proposal, min_size=1, max_size=3)),
    st.builds(KePayload, st.binary(min_size=1, max_size=64)),
    st.builds(IdPayload, u8, small, u8, u16),
    st.builds(CertPayload, u8, small),
    st.builds(CrPayload, u8, small),
    st.builds(HashPayload, st.binary(min_size=1, max_size=32)),
    st.builds(SigPayload, st.binary(min_size=1, max_size=32)),
    st.builds(NoncePayload, st.binary(min_size=8, max_size=40)),
    st.builds(NotifyPayload, u16, u8, st.sampled_from([b"", b"1234", b"c" * 16]), small,
              st.sampled_from([C.DOI_ISAKMP, C.DOI_IPSEC])),
    st.builds(DeletePayload, u8, st.lists(spi4, min_size=1, max_size=4)),
    st.builds(VendorPayload, small),
    st.builds(NatDPayload, st.binary(min_size=1, max_size=20),
              st.sampled_from([C.PT_NAT_D, C.PT_NAT_D_DRAFT])),
    st.builds(NatOaPayload, u8, small, st.sampled_from([C.PT_NAT_OA, C.PT_NAT_OA_DRAFT])),
)
cookie = st.binary(min_size=8, max_size=8).filter(lambda c: c != bytes(8))
message = st.builds(Message, st.sampled_from(sorted(C.EXCHANGE_NAMES)), cookie,
                    st.binary(min_size=8, max_size=8), st.integers(0, 0xFFFFFFFF),
                    st.sampled_from([0, C.FLAG_COMMIT, C.FLAG_AUTH_ONLY]),
                    st.lists(payload, max_size=6))


@settings(FUZZ, max_examples=120)
@given(message)
def test_valid_messages_round_trip(msg):
    data = encode_message(msg)
    back = decode_message(data)
    assert back == msg
    assert encode_message(back) == data


def _corpus():
    """A few valid datagrams the mutation tests start from."""
    mm1 = Message(C.EXCHANGE_MAIN, bytes(range(1, 9)), bytes(8), payloads=[
        SaPayload([Proposal(1, C.PROTO_ISAKMP, b"", [
            Transform(1, C.KEY_IKE, [(1, 7), (14, 128), (2, 2), (3, 1), (4, 14), (11, 1), (12, 86400)]),
            Transform(2, C.KEY_IKE, [(1, 5), (2, 1), (3, 1), (4, 2), (11, 1), (12, 28800)])])]),
        VendorPayload(bytes.fromhex("4a131c81070358455c5728f20e95452f")),
        VendorPayload(bytes.fromhex("afcad71368a1f1c96b8696fc77570100"))])
    mm3 = Message(C.EXCHANGE_MAIN, b"\x01" * 8, b"\x02" * 8, payloads=[
        KePayload(b"k" * 128), NoncePayload(b"n" * 16), NatDPayload(b"d" * 20), NatDPayload(b"e" * 20)])
    qm = Message(C.EXCHANGE_QUICK, b"\x01" * 8, b"\x02" * 8, message_id=5, payloads=[
        HashPayload(b"h" * 20),
        SaPayload([Proposal(1, C.PROTO_IPSEC_ESP, b"\xc1\xa2\xb3\xd4", [Transform(1, 12, [(4, 1), (6, 128)])]),
                   Proposal(1, C.PROTO_IPSEC_AH, b"\xc1\xa2\xb3\xd5", [Transform(1, 3, [(5, 2)])])]),
        NoncePayload(b"n" * 16), IdPayload(4, b"\xc0\xa8\x01\x00\xff\xff\xff\x00"),
        IdPayload(4, b"\x0a\x02\x00\x00\xff\xff\xff\x00")])
    info = Message(C.EXCHANGE_INFORMATIONAL, b"\x01" * 8, b"\x02" * 8, message_id=9, payloads=[
        HashPayload(b"h" * 20), NotifyPayload(C.R_U_THERE, spi=b"\x01" * 8 + b"\x02" * 8, data=b"\0\0\0\1"),
        DeletePayload(C.PROTO_IPSEC_ESP, [b"\xc1\xa2\xb3\xd4", b"\xc1\xa2\xb3\xd5"])])
    enc = encode_message(Message(C.EXCHANGE_MAIN, b"\x01" * 8, b"\x02" * 8), body=b"\x99" * 48,
                         first_payload=C.PT_ID)
    return [encode_message(m) for m in (mm1, mm3, qm, info)] + [enc]


CORPUS = _corpus()
seed = st.sampled_from(CORPUS)


def test_corpus_is_valid():
    for data in CORPUS:
        assert check_datagram(data) is not None


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(data):
    check_datagram(data)


@FUZZ
@given(seed, st.binary(max_size=300), st.sampled_from(sorted(C.PAYLOAD_NAMES) + [14, 99]),
       st.sampled_from([0, C.FLAG_ENCRYPTION]))
def test_random_body_behind_a_valid_header(base, body, first, flags):
    # A correct header in front of random payload bytes gets the fuzzer past the header checks.
    data = bytearray(base[:C.HEADER_LENGTH] + body)
    data[16] = first
    data[19] = flags
    data[24:28] = len(data).to_bytes(4, "big")
    check_datagram(bytes(data))


# One mutation of a datagram: (kind, position, argument). Positions are taken modulo the length.
mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 8 * 600), st.just(None)),
    st.tuples(st.just("truncate"), st.integers(0, 600), st.just(None)),
    st.tuples(st.just("insert"), st.integers(0, 600), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 600), st.integers(1, 16)),
    # any 16-bit word of the body may be a length field: overwrite one with any value
    st.tuples(st.just("word"), st.integers(0, 600), st.integers(0, 0xFFFF)),
)


def mutate(data, kind, where, arg):
    data = bytearray(data)
    if kind == "flip" and data:
        where %= 8 * len(data)
        data[where // 8] ^= 1 << (where % 8)
    elif kind == "truncate":
        del data[where % (len(data) + 1):]
    elif kind == "insert":
        where %= len(data) + 1
        data[where:where] = arg
    elif kind == "delete" and data:
        where %= len(data)
        del data[where:where + arg]
    elif kind == "word" and len(data) > C.HEADER_LENGTH + 2:
        where = C.HEADER_LENGTH + where % (len(data) - C.HEADER_LENGTH - 1)
        data[where:where + 2] = arg.to_bytes(2, "big")
    return data


@settings(FUZZ, max_examples=600)
@given(seed, st.lists(mutation, min_size=1, max_size=3), st.booleans())
def test_mutations_of_valid_messages(base, mutations, fix_length):
    # Bit flips, truncations, insertions, deletions and overwritten length fields; with
    # fix_length the header length is made to agree, so the payload checks are the ones tested.
    data = base
    for kind, where, arg in mutations:
        data = mutate(data, kind, where, arg)
    if fix_length and len(data) >= C.HEADER_LENGTH:
        data[24:28] = len(data).to_bytes(4, "big")
    check_datagram(bytes(data))


@FUZZ
@given(st.sampled_from(sorted(C.PAYLOAD_NAMES) + [14, 99]), st.binary(max_size=200), st.booleans())
def test_decrypted_chains(first, data, allow_padding):
    check_chain(first, data, allow_padding)
