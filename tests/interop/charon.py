"""A real strongSwan charon (5.9.x) in a network namespace, driven through swanctl.

How charon is run here (see DESIGN.md, "Facts measured on these machines"):
- charon's pid file is fixed at /run/charon.pid, so each instance gets its own mount namespace with a
  private tmpfs on /run (`unshare -m`), its own strongswan.conf (STRONGSWAN_CONF) with an explicit
  `load =` plugin list, its own vici socket in its work directory and its own log file.
- data_plane "libipsec": the kernel-libipsec plugin (userspace ESP over a TUN device): whole tunnels
  work, but charon then fakes NAT-D and always floats to UDP 4500 (ESP-in-UDP).
  data_plane "netlink": kernel-netlink only: IKE SAs establish, installing a CHILD_SA fails in this
  host kernel (no esp4/ah4) -- quick mode itself is still negotiated and logged.

`Child` / `Conn` describe one swanctl.conf connection; `swanctl_conf()` renders them. Parsed
`list_sas()` output is a list of dicts exactly as vici reports them (strings, lists, nested dicts).
"""
import os
import re
import subprocess
import time

from support.netns import stop_process

CHARON = "/usr/lib/ipsec/charon"

# Explicit plugin lists: nothing is loaded by accident, and start-up stays fast.
CRYPTO_PLUGINS = "random nonce openssl aes des sha1 sha2 md5 hmac gmp pem pkcs1 x509 pubkey kdf"
CHARON_PLUGINS = {
    # kernel-libipsec must come before kernel-netlink: the first kernel-ipsec interface wins,
    # kernel-netlink still provides addresses and routes (kernel-net).
    "libipsec": CRYPTO_PLUGINS + " socket-default kernel-libipsec kernel-netlink vici",
    "netlink": CRYPTO_PLUGINS + " socket-default kernel-netlink vici",
}
SWANCTL_PLUGINS = "random openssl pem pkcs1 x509 pubkey"


class CharonError(RuntimeError):
    pass


class Child:
    """One CHILD_SA (quick mode) configuration: ESP or AH, proposals in strongSwan names.

    proposals: e.g. ["aes128-sha256-modp2048"] (a DH group in the proposal = PFS) or
    ["3des-md5"] (no PFS). protocol: "esp" or "ah" (AH proposals are integrity only: "sha256").
    """

    def __init__(self, name, local_ts, remote_ts, proposals, protocol="esp", start_action="none",
                 dpd_action=None, mode="tunnel", life_time=None, rekey_time=None):
        self.name = name
        self.local_ts = local_ts
        self.remote_ts = remote_ts
        self.proposals = list(proposals)
        self.protocol = protocol
        self.start_action = start_action
        self.dpd_action = dpd_action
        self.mode = mode
        self.life_time = life_time
        self.rekey_time = rekey_time

    def render(self, indent):
        pad = " " * indent
        lines = ["%s%s {" % (pad, self.name),
                 "%s  local_ts = %s" % (pad, self.local_ts),
                 "%s  remote_ts = %s" % (pad, self.remote_ts),
                 "%s  %s_proposals = %s" % (pad, self.protocol, ",".join(self.proposals)),
                 "%s  mode = %s" % (pad, self.mode),
                 "%s  start_action = %s" % (pad, self.start_action)]
        if self.dpd_action:
            lines.append("%s  dpd_action = %s" % (pad, self.dpd_action))
        if self.life_time:
            lines.append("%s  life_time = %s" % (pad, self.life_time))
        if self.rekey_time:
            # exactly then: no random jitter (rand_time defaults to life_time - rekey_time)
            lines += ["%s  rekey_time = %s" % (pad, self.rekey_time), "%s  rand_time = 0" % pad]
        lines.append("%s}" % pad)
        return lines


class Conn:
    """One IKEv1 connection with PSK authentication and its children.

    local_id / remote_id: strongSwan identity strings (an IP address gives ID_IPV4_ADDR,
    "fqdn:host.example" / "@host.example" an FQDN, "user@example" a USER_FQDN); None = the
    address. psk is put in the secrets section by swanctl_conf().
    """

    def __init__(self, name, local_addr, remote_addr, proposals, psk, children, aggressive=False,
                 local_id=None, remote_id=None, dpd_delay=None, rekey_time=None, encap=False,
                 keyingtries=1, unique=None, cert=None, fragmentation=None):
        self.name = name
        self.local_addr = local_addr
        self.remote_addr = remote_addr
        self.proposals = list(proposals)
        self.psk = psk
        self.children = list(children)
        self.aggressive = aggressive
        self.local_id = local_id
        self.remote_id = remote_id
        self.dpd_delay = dpd_delay
        self.rekey_time = rekey_time
        self.encap = encap
        self.keyingtries = keyingtries
        self.unique = unique
        self.cert = cert            # our certificate's file name in x509/: RSA signatures
        self.fragmentation = fragmentation   # None: charon's default (yes)

    @property
    def auth(self):
        return "pubkey" if self.cert else "psk"

    def render(self):
        lines = ["  %s {" % self.name,
                 "    version = 1",
                 "    local_addrs = %s" % self.local_addr,
                 "    remote_addrs = %s" % self.remote_addr,
                 "    proposals = %s" % ",".join(self.proposals),
                 "    aggressive = %s" % ("yes" if self.aggressive else "no"),
                 "    keyingtries = %d" % self.keyingtries,
                 "    encap = %s" % ("yes" if self.encap else "no")]
        if self.dpd_delay:
            lines.append("    dpd_delay = %s" % self.dpd_delay)
        if self.rekey_time is not None:
            lines.append("    rekey_time = %s" % self.rekey_time)
        if self.unique:
            lines.append("    unique = %s" % self.unique)
        if self.fragmentation:
            lines.append("    fragmentation = %s" % self.fragmentation)
        lines += ["    local {", "      auth = %s" % self.auth]
        if self.cert:
            lines.append("      certs = %s" % self.cert)
        lines.append("      id = %s" % (self.local_id or self.local_addr))
        lines += ["    }", "    remote {", "      auth = %s" % self.auth]
        lines.append("      id = %s" % (self.remote_id or self.remote_addr))
        lines += ["    }", "    children {"]
        for child in self.children:
            lines += child.render(6)
        lines += ["    }", "  }"]
        return lines


def swanctl_conf(conns, shared_psk=None):
    """swanctl.conf text for these connections; one PSK secret per connection, bound to both IDs,
    or (shared_psk) one secret bound to no ID, which charon uses for every peer (benchmark)."""
    lines = ["connections {"]
    for conn in conns:
        lines += conn.render()
    lines += ["}", "secrets {"]
    if shared_psk is not None:
        lines += ["  ike-any {", '    secret = "%s"' % shared_psk.replace('"', '\\"'), "  }", "}"]
        return "\n".join(lines) + "\n"
    for i, conn in enumerate(conns):
        if conn.cert:
            continue            # its key is a credential file (Charon.add_credentials)
        lines += ["  ike-%d {" % i,
                  "    id-local = %s" % (conn.local_id or conn.local_addr),
                  "    id-remote = %s" % (conn.remote_id or conn.remote_addr),
                  '    secret = "%s"' % conn.psk.replace('"', '\\"'),
                  "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


LOG_DETAILED = "default = 1\n      ike = 2\n      cfg = 2\n      knl = 2\n      net = 2\n      enc = 1"
LOG_QUIET = "default = 0\n      ike = 1"   # the benchmark: a line per SA, not per packet


def strongswan_conf(vici_socket, log_path, data_plane, aggressive_psk=True, retransmit_tries=2,
                    log_levels=LOG_DETAILED, fragment_size=None,
                    half_open=(0, 0)):
    """strongswan.conf for one instance. Retransmissions are short so failure tests end quickly.

    Note: kernel-libipsec routes the remote network into its TUN device with a source address
    taken from local_ts; with no local address inside local_ts it refuses the CHILD_SA ("error
    installing route with policy") and answers NO-PROPOSAL-CHOSEN, so every local_ts used with it
    needs an address in the namespace (the lab puts one on lo).

    fragment_size: the largest IKE fragment datagram charon sends (charon's own default, 1280,
    when None)."""
    if data_plane not in CHARON_PLUGINS:
        raise ValueError("data_plane must be one of %s, not %r" % (sorted(CHARON_PLUGINS), data_plane))
    return """charon {
  load = %(plugins)s
  i_dont_care_about_security_and_use_aggressive_mode_psk = %(aggr)s
  retransmit_tries = %(tries)d
  retransmit_timeout = 1.0
  retransmit_base = 1.4
  install_virtual_ip = no
%(fragment_size)s  # Thousands of tunnels in the benchmark: no half-open / init limit gets in the way, unless
  # half_open = (in total, per address) asks for them (the flood benchmark: ours' bounds).
  init_limit_half_open = %(half_open_total)d
  block_threshold = %(half_open_per_address)d
  ikesa_table_size = 1024
  filelog {
    main {
      path = %(log)s
      time_format = %%H:%%M:%%S
      append = no
      flush_line = yes
      %(levels)s
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
  plugins {
    vici {
      socket = unix://%(vici)s
    }
  }
}
swanctl {
  load = %(swanctl_plugins)s
}
""" % {"plugins": CHARON_PLUGINS[data_plane], "aggr": "yes" if aggressive_psk else "no",
       "tries": retransmit_tries, "log": log_path, "vici": vici_socket,
       "swanctl_plugins": SWANCTL_PLUGINS, "levels": log_levels,
       "fragment_size": "  fragment_size = %d\n" % fragment_size if fragment_size else "",
       "half_open_total": half_open[0], "half_open_per_address": half_open[1]}


class Charon:
    """charon running in namespace `ns` (a netns.Namespace), files under `workdir`."""

    def __init__(self, ns, workdir, data_plane="libipsec", aggressive_psk=True, retransmit_tries=2,
                 log_levels=LOG_DETAILED, fragment_size=None,
                 half_open=(0, 0)):
        self.ns = ns
        self.workdir = workdir
        self.data_plane = data_plane
        self.fragment_size = fragment_size
        os.makedirs(workdir, exist_ok=True)
        self.vici = os.path.join(workdir, "charon.vici")
        self.log_path = os.path.join(workdir, "charon.log")
        self.conf_path = os.path.join(workdir, "strongswan.conf")
        self.swanctl_path = os.path.join(workdir, "swanctl.conf")
        self.uri = "unix://" + self.vici
        with open(self.conf_path, "w") as f:
            f.write(strongswan_conf(self.vici, self.log_path, data_plane, aggressive_psk,
                                    retransmit_tries, log_levels, fragment_size, half_open))
        self.env = dict(os.environ, STRONGSWAN_CONF=self.conf_path)
        self.proc = None

    # -- life cycle ---------------------------------------------------------------------------
    def start(self, timeout_s=15):
        # Own mount namespace: a private /run for /run/charon.pid (and nothing else of the host's).
        script = "mount -t tmpfs none /run && exec %s" % CHARON
        cmd = self.ns.exec_cmd(["unshare", "-m", "--propagation", "private", "sh", "-c", script])
        self.stdout = open(os.path.join(self.workdir, "charon.stdout"), "w")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.stdout, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CharonError("charon exited with %s at start-up\n%s" % (
                    self.proc.returncode, self.log_tail()))
            if os.path.exists(self.vici) and self.swanctl("--stats", check=False).returncode == 0:
                return self
            time.sleep(0.05)
        raise CharonError("charon's vici socket %s did not come up in %ss\n%s" % (
            self.vici, timeout_s, self.log_tail()))

    def stop(self):
        if self.proc is None:
            return
        stop_process(self.proc)
        self.stdout.close()
        self.proc = None

    def charon_pid(self):
        """pid of the charon process itself (the Popen child execs into it via unshare + sh)."""
        pid = self.proc.pid
        for _ in range(3):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == "charon":
                        return pid
                with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                    kids = f.read().split()
            except OSError:
                return None
            if not kids:
                return None
            pid = int(kids[0])
        return None

    def rss_kb(self):
        pid = self.charon_pid()
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    # -- swanctl ------------------------------------------------------------------------------
    def swanctl(self, *args, check=True, timeout=60):
        """Run `swanctl <command> ... --uri <ours>` inside the namespace (command must come first)."""
        cmd = self.ns.exec_cmd(["swanctl"] + list(args) + ["--uri", self.uri])
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise CharonError("swanctl %s failed (%d):\n%s%s\n%s" % (
                " ".join(args), proc.returncode, proc.stdout, proc.stderr, self.log_tail()))
        return proc

    def load(self, conns, shared_psk=None):
        """Write swanctl.conf for `conns` and (re)load it: connections not in it are unloaded."""
        with open(self.swanctl_path, "w") as f:
            f.write(swanctl_conf(conns, shared_psk))
        self.swanctl("--load-all", "--clear", "--noprompt", "--file", self.swanctl_path)

    def add_credentials(self, cert_name, cert_pem, rsa_key_pem, ca_pem, intermediate_pems=()):
        """Our certificate (x509/cert_name), its PKCS#1 RSA key, the CA we trust and the
        intermediate CAs between them (x509ca/ too: charon then sends them after its
        certificate); load() then loads them with the connections (swanctl --file takes x509/,
        rsa/, x509ca/ from the directory of swanctl.conf). Credentials of an earlier call are
        removed first: a test's chain is exactly the one it gives."""
        for sub in ("x509", "rsa", "x509ca"):
            directory = os.path.join(self.workdir, sub)
            os.makedirs(directory, exist_ok=True)
            for old in os.listdir(directory):
                os.unlink(os.path.join(directory, old))
        files = [("x509", cert_name, cert_pem), ("rsa", cert_name, rsa_key_pem),
                 ("x509ca", "ca-" + cert_name, ca_pem)]
        files += [("x509ca", "im%d-%s" % (i, cert_name), pem)
                  for i, pem in enumerate(intermediate_pems)]
        for sub, name, data in files:
            with open(os.path.join(self.workdir, sub, name), "wb") as f:
                f.write(data)

    def initiate(self, child, timeout_s=10, check=False):
        """`swanctl --initiate --child X`; returns the CompletedProcess (rc 0 = CHILD_SA up)."""
        return self.swanctl("--initiate", "--child", child, "--timeout", str(timeout_s),
                            check=check, timeout=timeout_s + 20)

    def initiate_nowait(self, child):
        """Queue the initiation of a child and return at once (vici `initiate` with timeout -1):
        for exchanges meant to fail, where `swanctl --initiate` would sit out the retransmits."""
        import vici
        session = vici.Session(self.vici)
        try:
            session.initiate_async(child)
        finally:
            session.close()

    def terminate_all(self):
        for sa in self.list_sas():
            self.swanctl("--terminate", "--ike-id", sa["uniqueid"], "--timeout", "5", check=False)

    def list_sas(self):
        """Every IKE SA as a dict: vici's keys plus "name"; children under "child-sas"."""
        out = self.swanctl("--list-sas", "--raw", "--noblock").stdout
        sas = []
        for name, sa in parse_vici_raw(out):
            sa = dict(sa)
            sa["name"] = name
            sas.append(sa)
        return sas

    def wait_for(self, predicate, timeout_s=15, what="condition"):
        """Poll list_sas() until predicate(sas) is true; raise with the log tail if it never is."""
        deadline = time.monotonic() + timeout_s
        sas = []
        while time.monotonic() < deadline:
            sas = self.list_sas()
            if predicate(sas):
                return sas
            time.sleep(0.1)
        raise CharonError("charon: %s not reached in %ss; SAs: %r\n%s" % (
            what, timeout_s, sas, self.log_tail()))

    # -- log ----------------------------------------------------------------------------------
    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, lines=60):
        tail = self.log_text().splitlines()[-lines:]
        return "---- charon log tail (%s) ----\n%s" % (self.log_path, "\n".join(tail))

    def log_mark(self):
        """Current length of the log: pass to log_since() to see only what happened after."""
        return len(self.log_text())

    def log_since(self, mark):
        return self.log_text()[mark:]

    def wait_log(self, needles, mark=0, timeout_s=10):
        """Wait until every string of `needles` is in the log after `mark` (charon works on other
        threads: the line for a message we just sent may come a moment later); return that log."""
        deadline = time.monotonic() + timeout_s
        while True:
            log = self.log_since(mark)
            missing = [n for n in needles if n not in log]
            if not missing:
                return log
            if time.monotonic() > deadline:
                raise CharonError("charon never logged %r\n%s" % (missing, self.log_tail()))
            time.sleep(0.1)


# -- swanctl --raw parsing ------------------------------------------------------------------------


def parse_vici_raw(text):
    """Parse `swanctl --list-sas --raw` output into [(ike_name, dict)].

    Each line is one vici message: `list-sa event {name {key=value sub {..} list=[a b]}}`.
    Values are printed without quoting; only a DN (local-id, remote-id) contains spaces (see
    _scalar); list items are separated by spaces.
    """
    result = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("list-sa event {"):
            continue
        body = line[len("list-sa event "):]
        parsed, _ = _parse_section(body, 1)
        result.extend(parsed.items())
    return result


_TOKEN = re.compile(r"\s+([^\s}]+)")
_OPENS = re.compile(r"\s*[\{\[]")


def _scalar(text, pos):
    """A value from pos: one token, and further space-separated tokens while they cannot be the
    next key (a DN's "O=ikecore test, CN=x": after a comma, or a token without "=" that opens
    nothing). -> (value, pos after it)."""
    end = re.compile(r"[^\s}]*").match(text, pos).end()
    while True:
        m = _TOKEN.match(text, end)
        if m is None:
            return text[pos:end], end
        token = m.group(1)
        if not text[pos:end].endswith(",") and ("=" in token or _OPENS.match(text, m.end())):
            return text[pos:end], end
        end = m.end()


def _parse_section(text, pos):
    """Parse a vici section starting after its '{' at pos; return (dict, pos after its '}')."""
    out = {}
    while True:
        while pos < len(text) and text[pos] == " ":
            pos += 1
        if pos >= len(text):
            raise ValueError("unterminated section in vici output: %r" % text)
        if text[pos] == "}":
            return out, pos + 1
        m = re.compile(r"([^\s={}\[\]]+)(=|\s*\{|\s*\[)").match(text, pos)
        if not m:
            raise ValueError("unexpected vici output at %d: %r" % (pos, text[pos:pos + 40]))
        key, kind = m.group(1), m.group(2).strip()
        pos = m.end()
        if kind == "=" and text.startswith("[", pos):
            kind, pos = "[", pos + 1            # swanctl prints lists as key=[a b]
        if kind == "{":
            out[key], pos = _parse_section(text, pos)
        elif kind == "[":
            end = text.index("]", pos)
            out[key] = text[pos:end].split()
            pos = end + 1
        else:
            out[key], pos = _scalar(text, pos)
