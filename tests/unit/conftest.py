"""Helpers for the protocol core's unit tests: a hand-stepped clock and two in-process IkeCores
joined by a link that moves datagrams between them (aioquic style). Everything here is
namespaced `ike_*` so other unit tests in this directory are not affected."""
import pytest

from ikecore.protocol import events, proposals
from ikecore.protocol.core import IkeCore
from ikecore.crypto_cryptography import CryptographyProvider
from ikecore.protocol.settings import Connection, Identity, Peer, Settings

GW_A = "192.0.2.1"          # "us" in most tests
GW_B = "198.51.100.2"       # the remote gateway
NET_A = "192.168.1.0/24"
NET_B = "10.2.0.0/24"

# Fast groups: the group does not matter to most tests.
FAST_IKE = ["aes128-sha1-modp1024"]
FAST_CHILD = ["aes128-sha1"]


def ike_settings(local, remote, local_net, remote_net, mode="main", act_as="both", psk=b"secret",
                 ike=None, child=None, protocol="esp", pfs=None, lifetime_s=28800,
                 child_lifetime_s=3600, child_lifetime_kb=0, local_id=None, remote_id=None,
                 dpd=(30, 120), extra_connections=(), auth="psk", cert_der=None, key_pem=None,
                 ca_ders=(), chain_ders=(), crl_ders=(), nat_t=True):
    peer = Peer("peer", remote, [proposals.parse_ike(p) for p in (ike or FAST_IKE)],
                phase1_mode=mode, act_as=act_as, psk=psk, lifetime_s=lifetime_s,
                local_address=local, local_id=local_id, remote_id=remote_id,
                dpd_delay_s=dpd[0], dpd_timeout_s=dpd[1], auth=auth, cert_der=cert_der,
                key_pem=key_pem, ca_ders=ca_ders, chain_ders=chain_ders,
                crl_ders=crl_ders, nat_t=nat_t)
    conn = Connection("lan", "peer", local_net, remote_net,
                      [proposals.parse_child(p, protocol) for p in (child or FAST_CHILD)],
                      protocol=protocol, pfs=pfs, lifetime_s=child_lifetime_s,
                      lifetime_kb=child_lifetime_kb)
    conns = {"lan": conn}
    for extra in extra_connections:
        conns[extra.name] = extra
    return Settings(peers={"peer": peer}, connections=conns)


class IkeClock:
    def __init__(self, start=1000.0):
        self.now = start


class IkeLink:
    """Two cores, A at GW_A and B at GW_B, and the wire between them.

    flush() delivers queued datagrams both ways until both are quiet; `drop` (a function of
    (sender, index, data) -> bool) loses chosen datagrams. Every datagram is recorded in
    self.trace as (sender "A"/"B", data)."""

    def __init__(self, settings_a, settings_b, clock=None, nat_a=None):
        self.clock = clock or IkeClock()
        # nat_a = (public ip, {A's port: public port}): A sits behind a NAT; B sees A there.
        self.nat_a = nat_a
        self.crypto = CryptographyProvider()
        self.a = IkeCore(settings_a, self.crypto, self.clock.now)
        self.b = IkeCore(settings_b, self.crypto, self.clock.now)
        self.trace = []
        self.sent = {"A": 0, "B": 0}
        self.events = {"A": [], "B": []}

    def core(self, name):
        return self.a if name == "A" else self.b

    def flush(self, drop=None, rounds=40):
        for _ in range(rounds):
            moved = False
            for name, core, other, src, dst in (("A", self.a, self.b, GW_A, GW_B),
                                                ("B", self.b, self.a, GW_B, GW_A)):
                for data, local, remote in core.datagrams_to_send():
                    index = self.sent[name]
                    self.sent[name] += 1
                    self.trace.append((name, data))
                    moved = True
                    if drop is not None and drop(name, index, data):
                        continue
                    src_addr, dst_addr = (src, local[1]), (dst, remote[1])
                    if self.nat_a is not None:
                        public, ports = self.nat_a
                        if name == "A":
                            src_addr = (public, ports[local[1]])
                        else:
                            assert remote[0] == public
                            back = dict((v, k) for k, v in ports.items())
                            dst_addr = (GW_A, back[remote[1]])
                    else:
                        assert remote[0] == dst
                    other.receive_datagram(data, dst_addr, src_addr, self.clock.now)
            self._drain()
            if not moved:
                return
        raise AssertionError("the cores kept talking for %d rounds" % rounds)

    def _drain(self):
        for name, core in (("A", self.a), ("B", self.b)):
            while True:
                event = core.next_event()
                if event is None:
                    break
                self.events[name].append(event)

    def step(self, seconds, drop=None):
        """Advance the clock, fire due timers on both cores (as the driver would), flush."""
        target = self.clock.now + seconds
        while True:
            deadlines = [t for t in (self._timer(self.a), self._timer(self.b))
                         if t is not None and t <= target]
            if not deadlines:
                break
            self.clock.now = max(self.clock.now, min(deadlines))
            self.a.handle_timer(self.clock.now)
            self.b.handle_timer(self.clock.now)
            self.flush(drop)
        self.clock.now = target
        self.flush(drop)

    @staticmethod
    def _timer(core):
        """get_timer() from the deadline index, checked against a scan of every SA: an input
        that moves a timer without marking its SA would show here as a lost or phantom timer."""
        timer = core.get_timer()
        assert timer == core.deadline_by_scan(), (timer, core.deadline_by_scan())
        return timer

    def logs(self, name, level=None):
        return [e.text for e in self.events[name]
                if isinstance(e, events.Log) and (level is None or e.level == level)]

    def installed(self, name):
        return [e.sa for e in self.events[name] if isinstance(e, events.InstallChildSa)]

    def deleted(self, name):
        return [e.sa for e in self.events[name] if isinstance(e, events.DeleteChildSa)]

    def ike(self, name):
        return self.core(name).status(self.clock.now)["ike_sas"]

    def sas(self, name):
        return self.core(name).status(self.clock.now)["sas"]


def ike_pair(a_kwargs=None, b_kwargs=None, both=None):
    """An IkeLink of mirrored settings; both applies to A and B, a_/b_kwargs to one side."""
    common = dict(both or {})
    ka = dict(common)
    ka.update(a_kwargs or {})
    kb = dict(common)
    kb.update(b_kwargs or {})
    return IkeLink(ike_settings(GW_A, GW_B, NET_A, NET_B, **ka),
                   ike_settings(GW_B, GW_A, NET_B, NET_A, **kb))


@pytest.fixture
def ike_link_factory():
    return ike_pair


@pytest.fixture
def ike_identity():
    return Identity


class _IkeKit:
    """The helpers above for tests that build links by hand (a test module cannot import this
    conftest reliably: several directories have one)."""
    IkeLink = IkeLink
    ike_settings = staticmethod(ike_settings)
    GW_A, GW_B, NET_A, NET_B = GW_A, GW_B, NET_A, NET_B


@pytest.fixture
def ike_kit():
    return _IkeKit


class _IkePki:
    """A test CA, certificates for both gateways and a certificate from a foreign CA."""

    def __init__(self):
        import datetime
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        import ipaddress

        def name(cn):
            return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CH"),
                              x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ikecore test"),
                              x509.NameAttribute(NameOID.COMMON_NAME, cn)])

        start = datetime.datetime(2024, 1, 1)
        end = datetime.datetime(2034, 1, 1)

        def key():
            return rsa.generate_private_key(public_exponent=65537, key_size=1024)   # speed only

        def build(subject, issuer, pub, signer, ca=False, sans=(), until=end):
            b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                 .public_key(pub).serial_number(x509.random_serial_number())
                 .not_valid_before(start).not_valid_after(until))
            if ca:
                b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            if sans:
                b = b.add_extension(x509.SubjectAlternativeName(list(sans)), False)
            return b.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

        def pem(k):
            return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())

        ca_key, other_key = key(), key()
        self.ca = build(name("Test CA"), name("Test CA"), ca_key.public_key(), ca_key, ca=True)
        self.other_ca = build(name("Other CA"), name("Other CA"), other_key.public_key(),
                              other_key, ca=True)
        self.keys = {}
        self.certs = {}
        # C: a third gateway (a second branch of a hub), certified like A and B.
        for label, ip, dns in (("A", GW_A, "a.example"), ("B", GW_B, "b.example"),
                               ("C", "198.51.100.3", "c.example")):
            k = key()
            self.keys[label] = pem(k)
            self.certs[label] = build(name("gw-" + label.lower()), name("Test CA"), k.public_key(),
                                      ca_key, sans=[x509.DNSName(dns),
                                                    x509.IPAddress(ipaddress.ip_address(ip))])
        # gw-a again, issued by an intermediate CA (chain), and once more expired in 2025
        inter_key = key()
        self.intermediate = build(name("Intermediate CA"), name("Test CA"),
                                  inter_key.public_key(), ca_key, ca=True)
        sans_a = [x509.DNSName("a.example"), x509.IPAddress(ipaddress.ip_address(GW_A))]
        self.keys["via_intermediate"] = self.keys["expired"] = self.keys["A"]
        a_public = serialization.load_pem_private_key(self.keys["A"], None).public_key()
        self.certs["via_intermediate"] = build(name("gw-a"), name("Intermediate CA"), a_public,
                                               inter_key, sans=sans_a)
        self.certs["expired"] = build(name("gw-a"), name("Test CA"), a_public, ca_key,
                                      sans=sans_a, until=datetime.datetime(2025, 1, 1))
        k = key()
        self.keys["foreign"] = pem(k)
        self.certs["foreign"] = build(name("gw-a"), name("Other CA"), k.public_key(), other_key)

    def side(self, label, ca=None):
        """Settings kwargs for one side authenticating with its certificate."""
        return {"auth": "rsa", "cert_der": self.certs[label], "key_pem": self.keys[label],
                "ca_ders": [ca or self.ca]}


_PKI = []


@pytest.fixture(scope="session")
def ike_pki():
    if not _PKI:
        _PKI.append(_IkePki())
    return _PKI[0]
