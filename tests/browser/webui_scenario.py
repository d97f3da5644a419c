"""One realistic setup shared by the browser tests and the screenshot script: a config file, a
fake daemon with a branch tunnel up, a tunnel negotiating and one failed with its diagnosis,
VPN and firewall log lines, and the real `python3 -m webui` process in front of it."""
import os

from webui_fake_daemon import FakeDaemon, ike_sa, sa_pair
from webui_harness import ProcessWebui
from support.config import webui_router

PSK = "correct horse battery staple"
CONFIG = webui_router(
    branch=dict(phase1_mode="main", act_as="both", psk=PSK,
                proposals=["aes128-sha1-modp2048", "aes256-sha256-modp2048", "3des-md5-modp1024"]),
    hq=dict(psk="another secret key"),
    peers=[("store-12", "192.0.2.44", dict(phase1_mode="aggressive", psk="store secret key"))],
    branch_lan=dict(pfs="modp2048"))

FIREWALL_LOG = """\
Nov 25 14:00:01 router kern.warn kernel: [   12.345678] fw:eth0:in:accept IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=198.51.100.2 DST=203.0.113.1 LEN=152 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=UDP SPT=500 DPT=500 LEN=132 
Nov 25 14:00:02 router kern.warn kernel: [   12.900001] fw:eth0:in:accept IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=198.51.100.2 DST=203.0.113.1 LEN=136 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=ESP SPI=0xc1a2b3d4 
Nov 25 14:00:02 router kern.warn kernel: [   12.900301] fw:eth1:fwd:accept IN=eth1 OUT=eth0 MAC=52:54:00:aa:bb:cc:52:54:00:dd:ee:ff:08:00 SRC=192.168.1.10 DST=10.2.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 
Nov 25 14:00:03 router kern.warn kernel: [   13.100000] fw:eth0:out:accept IN= OUT=eth0 SRC=203.0.113.1 DST=198.51.100.2 LEN=136 TOS=0x00 PREC=0x00 TTL=64 ID=99 DF PROTO=ESP SPI=0xc1a2b3d5 
Nov 25 14:00:09 router kern.warn kernel: [   19.000000] fw:eth0:in:drop IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=192.0.2.44 DST=203.0.113.1 LEN=412 TOS=0x00 PREC=0x00 TTL=52 ID=0 PROTO=UDP SPT=500 DPT=500 LEN=392 
"""

T0 = 1764079200.0
VPN_LOG = [
    {"time": T0 + 1, "level": "info", "peer": "branch", "text": "main mode: sent 1st message to 198.51.100.2"},
    {"time": T0 + 2, "level": "info", "peer": "branch", "text": "IKE SA established (AES-CBC-128/HMAC-SHA1/MODP-2048, PSK)"},
    {"time": T0 + 3, "level": "info", "peer": "branch", "text": "quick mode done: ESP SAs 0xc1a2b3d4 (in) and 0xc1a2b3d5 (out), 192.168.1.0/24 <-> 10.2.0.0/24"},
    {"time": T0 + 9, "level": "info", "peer": "store-12", "text": "aggressive mode: sent 1st message to 192.0.2.44"},
    {"time": T0 + 12, "level": "error", "peer": "store-12", "text": "phase 1 failed: the peer answered NO-PROPOSAL-CHOSEN (algorithm mismatch: none of our 3 proposals is acceptable to the peer)"},
    {"time": T0 + 20, "level": "info", "peer": "hq", "text": "main mode: sent 2nd message to 198.51.100.7"},
]


def status():
    branch = ike_sa(1, peer="branch", gateway="198.51.100.2", elapsed_s=1834, phase2=2)
    hq = ike_sa(2, peer="hq", gateway="198.51.100.7", status="Negotiating", state=5,
                elapsed_s=0, phase2=0)
    hq["algorithm"] = None
    failed = ike_sa(3, peer="store-12", gateway="192.0.2.44", status="Negotiating", state=3,
                    mode="aggressive", elapsed_s=0, phase2=0,
                    last_error="Algorithm mismatch: the peer accepts none of our phase 1 "
                               "proposals (NO-PROPOSAL-CHOSEN). Check the proposals on both "
                               "ends.")
    failed["algorithm"] = None
    natted = ike_sa(4, peer="home", gateway="203.0.113.77", nat_t="far end", elapsed_s=640,
                    phase2=1)
    sas = sa_pair(branch, 0xc1a2b3d4, elapsed_s=1830, bytes_=482304)
    sas += sa_pair(natted, 0xc7f00e10, elapsed_s=633, bytes_=12800)
    return {"ike_sas": [branch, hq, failed, natted], "sas": sas}


class Scenario:
    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.config = os.path.join(self.tmp, "ikecore.toml")
        with open(self.config, "w") as handle:
            handle.write(CONFIG)
        os.chmod(self.config, 0o600)
        self.firewall_log = os.path.join(self.tmp, "messages")
        with open(self.firewall_log, "w") as handle:
            handle.write(FIREWALL_LOG)
        self.state_dir = os.path.join(self.tmp, "state")
        os.mkdir(self.state_dir, 0o700)
        socket_path = os.path.join(self.tmp, "control.sock")
        self.daemon = FakeDaemon(socket_path, status(), list(VPN_LOG)).start()
        self.webui = ProcessWebui(socket_path, self.state_dir, self.config,
                                  self.firewall_log).start()
        self.url = self.webui.url

    def stop(self):
        self.webui.stop()
        self.daemon.stop()
