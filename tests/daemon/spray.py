"""Send forged IKE first messages to a responder, as a flood would: run inside a namespace.

  python3 spray.py TARGET_IP MODE COUNT_PER_SOURCE SOURCE_IP...

MODE is "main" or "aggressive". Each message is the real first message our own core writes for
that mode (so the responder parses it as well-formed), with a fresh initiator cookie each time;
sources are addresses of this namespace (the responder cannot tell them from spoofed ones).
Prints "SENT n" at the end. Between sources it pauses PAUSE_S ($SPRAY_PAUSE_S, default 0.05):
the point is what the responder keeps, not how many datagrams its socket buffer can lose.
"""
import os
import socket
import sys
import time

from ikecore.protocol import proposals
from ikecore.protocol.core import IkeCore
from ikecore.crypto_cryptography import CryptographyProvider
from ikecore.protocol.settings import Connection, Identity, Peer, Settings

PAUSE_S = float(os.environ.get("SPRAY_PAUSE_S", "0.05"))


def first_message(target, source, mode):
    peer = Peer("t", target, [proposals.parse_ike("aes128-sha1-modp2048")], psk=b"x",
                phase1_mode=mode, local_address=source,
                local_id=Identity("fqdn", "spray.example") if mode == "aggressive" else None)
    conn = Connection("c", "t", "10.250.0.0/24", "10.251.0.0/24",
                      [proposals.parse_child("aes128-sha1", "esp")])
    core = IkeCore(Settings(peers={"t": peer}, connections={"c": conn}),
                   CryptographyProvider(), 0.0)
    core.initiate("c", 0.0)
    return core.datagrams_to_send()[0][0]


def main(argv):
    target, mode, count = argv[0], argv[1], int(argv[2])
    sources = argv[3:]
    template = first_message(target, sources[0], mode)
    sent = 0
    cookie = 1
    for source in sources:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((source, 0))
        for _ in range(count):
            sock.sendto(cookie.to_bytes(8, "big") + template[8:], (target, 500))
            cookie += 1
            sent += 1
        sock.close()
        time.sleep(PAUSE_S)
    print("SENT %d" % sent)


if __name__ == "__main__":
    main(sys.argv[1:])
