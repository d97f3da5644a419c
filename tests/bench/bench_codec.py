"""ISAKMP codec throughput: decode + re-encode of typical IKEv1 messages, messages per second.

Messages: main mode message 1 (SA with one proposal of three transforms, NAT-T and DPD vendor
IDs: what an initiator sends first), main mode message 3 (MODP-2048 KE, nonce, two NAT-D), and a
decrypted quick mode message 1 chain (HASH, SA with two proposals, nonce, KE, two IDs).
Each is decoded from bytes and encoded back, in a loop that runs for about --seconds.

Prints only (no assertions). Run: PYTHONPATH=firmware python tests/bench/bench_codec.py
`main(argv)` is what tests/bench/run_all.py calls.
"""
import argparse
import sys
import time


import _paths  # noqa: F401  (the tests' sys.path: tests/support/paths.py)
from ikecore.protocol import consts as C
from ikecore.protocol import natt, vendor
from ikecore.protocol.codec import (
    HashPayload, IdPayload, KePayload, Message, NatDPayload, NoncePayload, Proposal, SaPayload,
    Transform, VendorPayload, decode_message, decode_payloads, encode_message, encode_payloads,
)

ICKY, RCKY = bytes(range(1, 9)), bytes(range(9, 17))


def sample_messages():
    """name -> (decode+encode function, its input bytes)."""
    mm1 = encode_message(Message(C.EXCHANGE_MAIN, ICKY, bytes(8), payloads=[
        SaPayload([Proposal(1, C.PROTO_ISAKMP, b"", [
            Transform(1, C.KEY_IKE, [(1, 7), (14, 128), (2, 2), (3, 1), (4, 14), (11, 1), (12, 28800)]),
            Transform(2, C.KEY_IKE, [(1, 7), (14, 256), (2, 4), (3, 1), (4, 14), (11, 1), (12, 28800)]),
            Transform(3, C.KEY_IKE, [(1, 5), (2, 1), (3, 1), (4, 2), (11, 1), (12, 86400)])])]),
    ] + [VendorPayload(v) for v in [vendor.VID_DPD] + natt.vendor_ids()]))
    mm3 = encode_message(Message(C.EXCHANGE_MAIN, ICKY, RCKY, payloads=[
        KePayload(b"\x5a" * 256), NoncePayload(b"n" * 32), NatDPayload(b"d" * 20),
        NatDPayload(b"e" * 20)]))
    _, qm1 = encode_payloads([
        HashPayload(b"h" * 20),
        SaPayload([Proposal(1, C.PROTO_IPSEC_ESP, b"\xc1\xa2\xb3\xd4", [
            Transform(1, 12, [(1, 1), (2, 3600), (4, 1), (5, 2), (6, 128), (3, 14)])]),
            Proposal(2, C.PROTO_IPSEC_ESP, b"\xc1\xa2\xb3\xd4", [
                Transform(1, 3, [(1, 1), (2, 3600), (4, 1), (5, 1), (3, 14)])])]),
        NoncePayload(b"n" * 32), KePayload(b"\x5a" * 256),
        IdPayload(C.ID_IPV4_ADDR_SUBNET, b"\xc0\xa8\x01\x00\xff\xff\xff\x00"),
        IdPayload(C.ID_IPV4_ADDR_SUBNET, b"\x0a\x02\x00\x00\xff\xff\xff\x00")])

    def message_round_trip(data):
        encode_message(decode_message(data))

    def chain_round_trip(data):
        encode_payloads(decode_payloads(C.PT_HASH, data))

    return [("main mode message 1 (SA 1x3 transforms, 5 VIDs)", message_round_trip, mm1),
            ("main mode message 3 (KE 256, nonce, 2 NAT-D)", message_round_trip, mm3),
            ("quick mode message 1 chain, decrypted (HASH SA NONCE KE ID ID)", chain_round_trip, qm1)]


def measure(function, data, seconds):
    """Messages per second of function(data) in CPU time of this process (the machine is shared:
    wall-clock time would measure the neighbours), in batches until `seconds` have passed."""
    count = 0
    batch = 100
    start = time.process_time()
    while True:
        for _ in range(batch):
            function(data)
        count += batch
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return count / elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per message (default 1)")
    args = parser.parse_args(argv)
    print("ISAKMP codec: decode + encode, CPU time of one process, %s" % sys.implementation.name)
    for name, function, data in sample_messages():
        rate = measure(function, data, args.seconds)
        print("  %-66s %5d bytes  %8.0f messages/s  (%6.1f us each)"
              % (name, len(data), rate, 1e6 / rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
