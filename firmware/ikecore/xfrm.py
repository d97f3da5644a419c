"""XfrmBackend: negotiated SAs and their policies in the kernel's XFRM, over NETLINK_XFRM.

The kernel backend interface is ikecore.kernel.KernelBackend; the messages are declared in
ikecore.xfrm_messages (pyroute2 nlmsg/nla classes). Two netlink sockets:
  - a request socket: one request at a time, answered by an ack (or a dump), errors raised as
    XfrmError naming the operation and carrying the kernel's own text (extended ack);
  - an event socket bound to the ACQUIRE and EXPIRE multicast groups, read from the asyncio loop
    and dispatched to the driver's on_acquire / on_expire callbacks.

What is ours: every SA and policy we install carries a reqid in [REQID_BASE, REQID_BASE +
REQID_SPAN): the daemon's reqid plus REQID_BASE. flush() removes exactly those (and the larval
SAs the kernel made for our policies' acquires), so other users of XFRM on the box keep theirs.
"""
import errno
import os
import socket

from ikecore.protocol import proposals
from ikecore import xfrm_messages as m
from ikecore.kernel import KernelBackend, sa_key

REQID_BASE = 0x1CE00000           # "ike": a range no other tool on the router picks
REQID_SPAN = 0x00100000
POLICY_PRIORITY = 0x3000          # minus the selector's prefix lengths: more specific wins
# Bypass policies (kernel.bypass_policies) win over every tunnel policy (a lower number is
# preferred); this exact value also tells flush() which templateless policies are ours.
BYPASS_PRIORITY = 0x1CE0
REPLAY_WINDOW = 32                # anti-replay window of inbound SAs (packets)
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10              # acks carry only the request's header, not the request
NETLINK_EXT_ACK = 11              # errors carry the kernel's text ("Requested type not found")
RECV_BUFFER = 1 << 16
XFRM_STAT = "/proc/net/xfrm_stat"
# sa_stats(keys): up to this many SAs are asked for one by one, more by one dump of every SA.
STATS_BY_GET_MAX = 256


class XfrmError(OSError):
    """A refused XFRM request: errno, what we asked for, and the kernel's words if it gave any."""

    def __init__(self, err, what, kernel_text=None):
        text = "%s: %s" % (what, os.strerror(err))
        if kernel_text:
            text += " (kernel: %s)" % kernel_text
        super().__init__(err, text)
        self.what = what
        self.kernel_text = kernel_text

    def __str__(self):
        return self.strerror


def kernel_reqid(reqid):
    """The daemon's reqid (1, 2, ...) -> the reqid in the kernel, inside our range."""
    if not isinstance(reqid, int) or not 0 < reqid < REQID_SPAN:
        raise ValueError("reqid %r out of range (1..%d)" % (reqid, REQID_SPAN - 1))
    return REQID_BASE + reqid


def is_ours(kernel_reqid_value):
    return REQID_BASE <= kernel_reqid_value < REQID_BASE + REQID_SPAN


# --- lifetimes -------------------------------------------------------------------------------
def sa_lifetime(lifetime_s, lifetime_kb):
    """lft_* fields: hard limits as negotiated; soft limits earlier, so the kernel's soft EXPIRE
    (a rekey trigger behind the core's own rekey timer, and the only one for volume) comes first.
    0 means no limit (seconds: 0; bytes/packets: XFRM_INF)."""
    fields = {"lft_soft_byte_limit": m.XFRM_INF, "lft_hard_byte_limit": m.XFRM_INF,
              "lft_soft_packet_limit": m.XFRM_INF, "lft_hard_packet_limit": m.XFRM_INF}
    if lifetime_s:
        # the core rekeys by lifetime - margin (initiator) or - margin/2 (responder) at the
        # latest, margin = lifetime/10 capped at 9 min (ikesa.rekey_after); the kernel's soft
        # expiry falls after both and before the hard one
        margin = max(1, min(lifetime_s // 10, 540) // 4)
        fields["lft_hard_add_expires_seconds"] = lifetime_s
        fields["lft_soft_add_expires_seconds"] = max(1, lifetime_s - margin)
    if lifetime_kb:
        hard = lifetime_kb * 1024
        fields["lft_hard_byte_limit"] = hard
        fields["lft_soft_byte_limit"] = hard - hard // 10
    return fields


# --- algorithms ------------------------------------------------------------------------------
def algorithm_attrs(sa):
    """XFRMA_ALG_CRYPT / XFRMA_ALG_AUTH_TRUNC of a ChildSa, keys checked against the algorithm."""
    attrs = []
    if sa.protocol == "esp":
        if sa.encr is None:
            raise ValueError("ESP SA %s has no encryption algorithm" % (sa.id,))
        name, key_bytes = proposals.xfrm_encryption(sa.encr)
        key = sa.encr_key or b""
        if len(key) != key_bytes:
            raise ValueError("ESP SA %s: %s key is %d bytes, %s needs %d"
                             % (sa.id, sa.encr, len(key), name, key_bytes))
        attrs.append(("XFRMA_ALG_CRYPT", {"alg_name": name.encode(), "alg_key": key}))
    if sa.integ is None:
        raise ValueError("%s SA %s has no integrity algorithm" % (sa.protocol.upper(), sa.id))
    name, key_bytes, trunc_bits = proposals.xfrm_integrity(sa.integ)
    key = sa.integ_key or b""
    if len(key) != key_bytes:
        raise ValueError("%s SA %s: %s key is %d bytes, %s needs %d"
                         % (sa.protocol.upper(), sa.id, sa.integ, len(key), name, key_bytes))
    attrs.append(("XFRMA_ALG_AUTH_TRUNC", {"alg_name": name.encode(), "alg_key": key,
                                           "alg_trunc_len": trunc_bits}))
    return attrs


# --- the netlink channel -----------------------------------------------------------------------
def open_xfrm_socket(groups=0):
    """A NETLINK_XFRM socket, subscribed to the multicast groups given as a bit mask."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, m.NETLINK_XFRM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
            try:
                sock.setsockopt(SOL_NETLINK, option, 1)
            except OSError:             # older kernels: plain acks still work
                pass
        sock.bind((0, groups))
    except OSError:
        sock.close()
        raise
    return sock


class XfrmChannel:
    """Request/answer over one NETLINK_XFRM socket (blocking, with a timeout)."""

    def __init__(self, timeout=5.0):
        self.sock = open_xfrm_socket()
        self.sock.settimeout(timeout)
        self.seq = 0

    def close(self):
        self.sock.close()

    def request(self, what, cls, msg_type, values, attrs=(), dump=False, ok_errors=()):
        """Send one request; return the messages answering it (a dump's entries, or []).
        An error answer raises XfrmError(what) unless its errno is in ok_errors."""
        self.seq = (self.seq + 1) & 0xFFFFFFFF or 1
        flags = m.NLM_F_REQUEST | (m.NLM_F_DUMP if dump else m.NLM_F_ACK)
        self.sock.send(m.encode(cls, msg_type, flags, self.seq, values, attrs))
        answers = []
        while True:
            try:
                data = self.sock.recv(RECV_BUFFER)
            except socket.timeout:
                raise XfrmError(errno.ETIMEDOUT, what, "no answer from the kernel")
            for msg in m.decode(data):
                header = msg["header"]
                if header["sequence_number"] != self.seq:
                    continue                    # a late answer to an earlier, timed-out request
                if header["type"] == m.NLMSG_ERROR:
                    err = -msg["error"]
                    if err == 0 or err in ok_errors:
                        return answers
                    raise XfrmError(err, what, msg.get_attr("NLMSGERR_ATTR_MSG"))
                if header["type"] == m.NLMSG_DONE:
                    return answers
                answers.append(msg)


# --- reading what the kernel holds -------------------------------------------------------------
def sa_record(msg):
    """A decoded NEWSA (usersa_info) as plain data."""
    family = msg["family"]
    crypt = msg.get_attr("XFRMA_ALG_CRYPT")
    auth = msg.get_attr("XFRMA_ALG_AUTH_TRUNC") or msg.get_attr("XFRMA_ALG_AUTH")
    encap = msg.get_attr("XFRMA_ENCAP")
    return {
        "protocol": m.PROTOCOL_NAMES.get(msg["id_proto"], str(msg["id_proto"])),
        "spi": msg["id_spi"], "src": m.unpack_address(family, msg["saddr"]),
        "dst": m.unpack_address(family, msg["id_daddr"]), "reqid": msg["reqid"],
        "mode": "tunnel" if msg["mode"] == m.XFRM_MODE_TUNNEL else "transport",
        "encr": crypt["alg_name"].rstrip(b"\0").decode() if crypt else None,
        "integ": auth["alg_name"].rstrip(b"\0").decode() if auth else None,
        "integ_trunc_bits": auth.get("alg_trunc_len") if auth else None,
        "encap": (encap["encap_sport"], encap["encap_dport"]) if encap else None,
        "bytes": msg["curlft_bytes"], "packets": msg["curlft_packets"],
        "add_time": msg["curlft_add_time"],
        "replay_window_errors": msg["stats_replay_window"], "replay_errors": msg["stats_replay"],
        "integrity_failures": msg["stats_integrity_failed"],
        "soft_expires_s": msg["lft_soft_add_expires_seconds"],
        "hard_expires_s": msg["lft_hard_add_expires_seconds"],
        "soft_byte_limit": msg["lft_soft_byte_limit"],
        "hard_byte_limit": msg["lft_hard_byte_limit"],
    }


DIRECTIONS = {m.XFRM_POLICY_IN: "in", m.XFRM_POLICY_OUT: "out", m.XFRM_POLICY_FWD: "fwd"}


def policy_record(msg):
    """A decoded NEWPOLICY (userpolicy_info) as plain data."""
    family = msg["sel_family"]
    tmpl = msg.get_attr("XFRMA_TMPL")
    templates = []
    for t in (tmpl["templates"] if tmpl else []):
        templates.append({
            "protocol": m.PROTOCOL_NAMES.get(t["id_proto"], str(t["id_proto"])),
            "src": m.unpack_address(t["family"], t["saddr"]),
            "dst": m.unpack_address(t["family"], t["id_daddr"]),
            "reqid": t["reqid"],
            "mode": "tunnel" if t["mode"] == m.XFRM_MODE_TUNNEL else "transport"})
    return {
        "dir": DIRECTIONS.get(msg["dir"], str(msg["dir"])),
        "src": "%s/%d" % (m.unpack_address(family, msg["sel_saddr"]), msg["sel_prefixlen_s"]),
        "dst": "%s/%d" % (m.unpack_address(family, msg["sel_daddr"]), msg["sel_prefixlen_d"]),
        "priority": msg["priority"], "index": msg["index"], "templates": templates,
        "selector": m.struct_dict(msg, "sel_"),
    }


def xfrm_stat(path=XFRM_STAT):
    """/proc/net/xfrm_stat as {name: count} (XfrmInError, XfrmInStateProtoError, ...); {} when
    the kernel has no XFRM_STATISTICS."""
    try:
        with open(path) as f:
            return dict((name, int(value)) for name, value in (line.split() for line in f
                                                                if line.strip()))
    except OSError:
        return {}


# --- the backend -------------------------------------------------------------------------------
class XfrmBackend(KernelBackend):
    """ikecore.kernel.KernelBackend on NETLINK_XFRM."""

    name = "xfrm"

    def __init__(self, timeout=5.0):
        super().__init__()
        self.channel = XfrmChannel(timeout)
        self.events = None                 # the multicast socket, opened by start()
        self.loop = None
        self.sas = {}                      # sa_key -> ChildSa we installed
        self.policies = {}                 # connection name -> [(userpolicy_id fields)]
        self.bundles = {}                  # connection name -> its protocol ("esp+ah", ...)

    # --- life cycle
    async def start(self, loop):
        self.listen(loop)

    def listen(self, loop):
        """Subscribe to ACQUIRE and EXPIRE; the loop reads them and calls the callbacks."""
        groups = (1 << (m.XFRMNLGRP_ACQUIRE - 1)) | (1 << (m.XFRMNLGRP_EXPIRE - 1))
        self.events = open_xfrm_socket(groups)
        self.events.setblocking(False)
        self.loop = loop
        loop.add_reader(self.events.fileno(), self.read_events)

    def close(self):
        if self.events is not None:
            if self.loop is not None:
                self.loop.remove_reader(self.events.fileno())
            self.events.close()
            self.events = None
        self.channel.close()

    # --- policies
    def install_policies(self, connection, local_gw, remote_gw, reqid):
        # the bypasses first: the tunnel policy must never swallow the LAN or IKE, even briefly
        wanted, unused = self.claim_bypasses(connection, remote_gw)
        for bypass in wanted:
            self._install_bypass(bypass, connection.name)
        for bypass in unused:
            self._delete_bypass(bypass, connection.name)
        family, remote = m.pack_address(remote_gw)
        local = m.pack_address(local_gw)[1] if local_gw else bytes(16)   # kernel picks it
        protocols = {"esp": ["esp"], "ah": ["ah"], "esp+ah": ["esp", "ah"]}[connection.protocol]
        installed = []
        for direction, src_net, dst_net, tmpl_src, tmpl_dst in (
                (m.XFRM_POLICY_OUT, connection.local_net, connection.remote_net, local, remote),
                (m.XFRM_POLICY_IN, connection.remote_net, connection.local_net, remote, local),
                (m.XFRM_POLICY_FWD, connection.remote_net, connection.local_net, remote, local)):
            sel = m.selector(src_net, dst_net)
            templates = []
            for position, protocol in enumerate(protocols):
                # ESP+AH bundle: the first template (ESP) makes the tunnel, AH then covers the
                # outer packet in transport mode: IP(gw) | AH | ESP | IP(inner) | data
                templates.append({
                    "id_daddr": tmpl_dst, "id_proto": m.PROTOCOLS[protocol], "family": family,
                    "saddr": tmpl_src, "reqid": kernel_reqid(reqid),
                    "mode": m.XFRM_MODE_TUNNEL if position == 0 else m.XFRM_MODE_TRANSPORT,
                    "aalgos": m.ALL_ALGORITHMS, "ealgos": m.ALL_ALGORITHMS,
                    "calgos": m.ALL_ALGORITHMS})
            values = dict(sel)
            values.update(lifetime_unlimited())
            values.update({"priority": POLICY_PRIORITY - sel["sel_prefixlen_s"]
                           - sel["sel_prefixlen_d"], "dir": direction,
                           "action": m.XFRM_POLICY_ALLOW})
            self.channel.request(
                "install %s policy %s -> %s of %s" % (DIRECTIONS[direction], src_net, dst_net,
                                                      connection.name),
                m.userpolicy_info, m.XFRM_MSG_UPDPOLICY, values,
                [("XFRMA_TMPL", {"templates": templates})])
            installed.append(dict(sel, dir=direction))
        self.policies[connection.name] = installed
        self.bundles[connection.name] = connection.protocol

    def remove_policies(self, connection):
        for policy in self.policies.pop(connection.name, None) or self._policy_ids(connection):
            self._delete_policy(policy, "remove policies of %s" % connection.name)
        for bypass in self.release_bypasses(connection.name):
            self._delete_bypass(bypass, connection.name)

    def _install_bypass(self, bypass, owner):
        values = bypass_selector(bypass)
        values.update(lifetime_unlimited())
        values.update({"priority": BYPASS_PRIORITY, "action": m.XFRM_POLICY_ALLOW})
        self.channel.request("install bypass policy %s of %s" % (bypass_text(bypass), owner),
                             m.userpolicy_info, m.XFRM_MSG_UPDPOLICY, values)

    def _delete_bypass(self, bypass, owner):
        self._delete_policy(bypass_selector(bypass), "remove bypass policy %s of %s"
                            % (bypass_text(bypass), owner))

    def _policy_ids(self, connection):
        return [dict(m.selector(src, dst), dir=direction) for direction, src, dst in (
            (m.XFRM_POLICY_OUT, connection.local_net, connection.remote_net),
            (m.XFRM_POLICY_IN, connection.remote_net, connection.local_net),
            (m.XFRM_POLICY_FWD, connection.remote_net, connection.local_net))]

    def _delete_policy(self, policy_id, what):
        self.channel.request("%s: delete %s policy" % (what, DIRECTIONS.get(policy_id["dir"])),
                             m.userpolicy_id, m.XFRM_MSG_DELPOLICY, policy_id,
                             ok_errors=(errno.ENOENT,))

    # --- SAs
    def install_sa(self, sa):
        if sa.protocol not in m.PROTOCOLS:
            raise ValueError("SA %s: protocol %r is not esp or ah" % (sa.id, sa.protocol))
        family, dst = m.pack_address(sa.dst)
        _, src = m.pack_address(sa.src)
        # in an ESP+AH bundle ESP makes the tunnel and AH is applied to the outer packet
        transport = (sa.mode == "transport" or
                     (sa.protocol == "ah" and self.bundles.get(sa.connection) == "esp+ah"))
        values = {"sel_family": family, "id_daddr": dst, "id_spi": sa.spi,
                  "id_proto": m.PROTOCOLS[sa.protocol], "saddr": src, "family": family,
                  "reqid": kernel_reqid(sa.reqid),
                  "mode": m.XFRM_MODE_TRANSPORT if transport else m.XFRM_MODE_TUNNEL,
                  "replay_window": REPLAY_WINDOW if sa.direction == "in" else 0,
                  "flags": (m.XFRM_STATE_ALIGN4 if sa.protocol == "ah" and family == socket.AF_INET
                            else 0)}
        values.update(sa_lifetime(sa.lifetime_s, sa.lifetime_kb))
        attrs = algorithm_attrs(sa)
        if sa.encap:
            if sa.protocol != "esp":
                raise ValueError("SA %s: UDP encapsulation is for ESP only, not %s"
                                 % (sa.id, sa.protocol.upper()))
            sport, dport = sa.encap
            attrs.append(("XFRMA_ENCAP", {"encap_type": m.UDP_ENCAP_ESPINUDP,
                                          "encap_sport": sport, "encap_dport": dport}))
        what = "install %s SA 0x%08x %s -> %s" % (sa.protocol.upper(), sa.spi, sa.src, sa.dst)
        try:
            self.channel.request(what, m.usersa_info, m.XFRM_MSG_NEWSA, values, attrs)
        except XfrmError as exc:
            if exc.errno != errno.EEXIST:
                raise
            # a larval SA of ours holds the SPI (allocate_spi): fill it in
            self.channel.request(what, m.usersa_info, m.XFRM_MSG_UPDSA, values, attrs)
        self.sas[sa_key(sa)] = sa

    def delete_sa(self, sa):
        self.sas.pop(sa_key(sa), None)
        self._delete_sa(sa.protocol, sa.spi, sa.dst, "delete %s SA 0x%08x -> %s"
                        % (sa.protocol.upper(), sa.spi, sa.dst))

    def _delete_sa(self, protocol, spi, dst, what):
        family, daddr = m.pack_address(dst)
        self.channel.request(what, m.usersa_id, m.XFRM_MSG_DELSA,
                             {"daddr": daddr, "spi": spi, "family": family,
                              "proto": m.PROTOCOLS[protocol]},
                             ok_errors=(errno.ESRCH, errno.ENOENT))  # gone already (hard expire)

    def allocate_spi(self, protocol, src, dst, reqid, low=0x100, high=0xFFFFFFFF):
        """A free SPI for an inbound SA src -> dst, reserved by a larval SA (install_sa then
        fills it); the kernel guarantees no collision with SAs it already holds."""
        return self._allocspi(protocol, src, dst, kernel_reqid(reqid), m.XFRM_MODE_TUNNEL, low, high)

    def _allocspi(self, protocol, src, dst, reqid_in_kernel, mode, low=0x100, high=0xFFFFFFFF):
        # The kernel gives the SPI to a larval SA with these addresses, protocol, mode and reqid
        # if there is one (xfrm_find_acq), else to a new one.
        family, daddr = m.pack_address(dst)
        _, saddr = m.pack_address(src)
        values = {"sel_family": family, "id_daddr": daddr, "id_proto": m.PROTOCOLS[protocol],
                  "saddr": saddr, "family": family, "reqid": reqid_in_kernel,
                  "mode": mode, "min": low, "max": high}
        answers = self.channel.request("allocate %s SPI %s -> %s" % (protocol.upper(), src, dst),
                                       m.userspi_info, m.XFRM_MSG_ALLOCSPI, values)
        if not answers:
            raise XfrmError(errno.EPROTO, "allocate SPI", "no SA in the answer")
        return answers[0]["id_spi"]

    # --- reading
    def kernel_sas(self):
        """Every SA in the kernel (all owners) as sa_record dicts."""
        return [sa_record(msg) for msg in self.channel.request(
            "list SAs", m.sa_dump_request, m.XFRM_MSG_GETSA, {}, dump=True)]

    def kernel_policies(self):
        """Every policy in the kernel (all owners) as policy_record dicts."""
        return [policy_record(msg) for msg in self.channel.request(
            "list policies", m.userpolicy_id, m.XFRM_MSG_GETPOLICY, {}, dump=True)]

    def sa_stats(self, keys=None):
        if keys is not None and len(keys) <= STATS_BY_GET_MAX:
            records = [r for r in (self._get_sa(*key) for key in keys) if r is not None]
        else:
            records = self.kernel_sas()        # one dump beats thousands of single requests
        stats = {}
        for record in records:
            if not is_ours(record["reqid"]):
                continue
            stats[(record["protocol"], record["spi"], record["dst"])] = {
                "bytes": record["bytes"], "packets": record["packets"],
                "errored_packets": (record["replay_window_errors"] + record["replay_errors"]
                                    + record["integrity_failures"])}
        return stats

    def _get_sa(self, protocol, spi, dst):
        """One SA by its id (XFRM_MSG_GETSA without DUMP) as an sa_record, None when gone."""
        family, daddr = m.pack_address(dst)
        answers = self.channel.request("get %s SA 0x%08x" % (protocol.upper(), spi), m.usersa_id,
                                       m.XFRM_MSG_GETSA, {"daddr": daddr, "spi": spi,
                                                          "family": family,
                                                          "proto": m.PROTOCOLS[protocol]},
                                       ok_errors=(errno.ESRCH, errno.ENOENT))
        return sa_record(answers[0]) if answers else None

    def flush(self):
        """Delete every SA and policy in our reqid range (ours from this or an earlier run, and
        the larval SAs the kernel made when our policies acquired)."""
        for record in self.kernel_sas():
            if not (is_ours(record["reqid"]) and record["protocol"] in m.PROTOCOLS):
                continue
            spi = record["spi"]
            if spi == 0:
                # A larval SA: an acquire nobody answered (the daemon stopped mid-negotiation).
                # It has no SPI to delete it by, and while it lives (net.core.xfrm_acq_expires,
                # 30 s) the kernel sends no new ACQUIRE for its flow: the next daemon would start
                # that tunnel late. Given an SPI, it can be deleted like any other SA.
                mode = m.XFRM_MODE_TUNNEL if record["mode"] == "tunnel" else m.XFRM_MODE_TRANSPORT
                spi = self._allocspi(record["protocol"], record["src"], record["dst"],
                                     record["reqid"], mode)
            self._delete_sa(record["protocol"], spi, record["dst"],
                            "flush: delete %s SA 0x%08x" % (record["protocol"], spi))
        for record in self.kernel_policies():
            if is_our_policy(record):
                policy_id = dict(("sel_" + k, v) for k, v in record["selector"].items())
                policy_id["dir"] = _direction_number(record["dir"])
                self._delete_policy(policy_id, "flush")
        self.sas.clear()
        self.policies.clear()
        self.forget_bypasses()

    def snapshot(self):
        sas = [r for r in self.kernel_sas() if is_ours(r["reqid"])]
        for record in sas:
            record["reqid"] -= REQID_BASE
            record["spi"] = "0x%08x" % record["spi"]
        policies = [p for p in self.kernel_policies() if is_our_policy(p)]
        for record in policies:
            del record["selector"]
            for t in record["templates"]:
                t["reqid"] -= REQID_BASE
        return {"backend": self.name, "sas": sas, "policies": policies,
                "xfrm_stat": xfrm_stat()}

    # --- kernel events
    def read_events(self):
        """Drain the event socket (called by the loop when it is readable)."""
        while self.events is not None:
            try:
                data = self.events.recv(RECV_BUFFER)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # events were lost; later ones still matter
                    continue
                raise
            for msg in m.decode(data):
                self.dispatch(msg)

    def dispatch(self, msg):
        """One ACQUIRE or EXPIRE -> the driver's callback, for our policies and SAs only."""
        msg_type = msg["header"]["type"]
        if msg_type == m.XFRM_MSG_ACQUIRE:
            tmpl = msg.get_attr("XFRMA_TMPL")
            if not tmpl or not any(is_ours(t["reqid"]) for t in tmpl["templates"]):
                return
            family = msg["sel_family"]
            if self.on_acquire is not None:
                self.on_acquire(m.unpack_address(family, msg["sel_saddr"]),
                                m.unpack_address(family, msg["sel_daddr"]))
        elif msg_type == m.XFRM_MSG_EXPIRE:
            spi = msg["state_id_spi"]
            # SPI 0: the larval SA the kernel made for an acquire timed out (no SA of ours)
            if not is_ours(msg["state_reqid"]) or spi == 0:
                return
            protocol = m.PROTOCOL_NAMES.get(msg["state_id_proto"])
            dst = m.unpack_address(msg["state_family"], msg["state_id_daddr"])
            hard = bool(msg["hard"])
            if hard:
                self.sas.pop((protocol, spi, dst), None)   # the kernel has removed it
            if self.on_expire is not None:
                self.on_expire(protocol, spi, dst, hard)


def lifetime_unlimited():
    """lft_* of a policy: no byte or packet limit, no time limit."""
    return {"lft_soft_byte_limit": m.XFRM_INF, "lft_hard_byte_limit": m.XFRM_INF,
            "lft_soft_packet_limit": m.XFRM_INF, "lft_hard_packet_limit": m.XFRM_INF}


def is_our_policy(record):
    """A policy_record of ours: a template with our reqid, or one of our bypasses."""
    return (any(is_ours(t["reqid"]) for t in record["templates"]) or
            (not record["templates"] and record["priority"] == BYPASS_PRIORITY))


def bypass_selector(bypass):
    """The userpolicy_id fields (selector and dir) of a kernel.Bypass."""
    values = m.selector(bypass.src, bypass.dst)
    values["sel_proto"] = bypass.proto
    if bypass.sport:
        values.update({"sel_sport": bypass.sport, "sel_sport_mask": 0xFFFF})
    if bypass.dport:
        values.update({"sel_dport": bypass.dport, "sel_dport_mask": 0xFFFF})
    values["dir"] = _direction_number(bypass.dir)
    return values


def bypass_text(bypass):
    """"out 0.0.0.0/0 -> 192.0.2.2/32 proto 17 sport 500" for error messages."""
    text = "%s %s -> %s" % (bypass.dir, bypass.src, bypass.dst)
    for label, value in (("proto", bypass.proto), ("sport", bypass.sport),
                         ("dport", bypass.dport)):
        if value:
            text += " %s %d" % (label, value)
    return text


def _direction_number(name):
    return dict((v, k) for k, v in DIRECTIONS.items())[name]
