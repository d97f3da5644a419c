"""The two commands: `python3 -m webui passwd --state-dir DIR` and the server itself."""
import os
import subprocess
import sys

from webui import auth

FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "firmware")
from webui_fake_daemon import FakeDaemon
from webui_harness import Client, ProcessWebui


def run(args, stdin=""):
    return subprocess.run([sys.executable, "-m", "webui"] + args, input=stdin, text=True,
                          capture_output=True, env=dict(os.environ, PYTHONPATH=FIRMWARE),
                          timeout=60)


def test_passwd_sets_the_hash_from_stdin(tmp_path):
    done = run(["passwd", "--state-dir", str(tmp_path)], "my router password\n")
    assert done.returncode == 0, done.stderr
    store = auth.PasswordStore(str(tmp_path))
    assert store.check("my router password") == (True, False)
    assert store.check("admin") == (False, False)
    short = run(["passwd", "--state-dir", str(tmp_path)], "short\n")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr


def test_bad_listen_address_is_named():
    done = run(["--listen", "nonsense", "--state-dir", "/tmp"])
    assert done.returncode == 2 and "'nonsense' is not ADDR:PORT" in done.stderr


def test_server_process_serves_the_login_page(tmp_path):
    fake = FakeDaemon(str(tmp_path / "control.sock")).start()
    server = ProcessWebui(str(tmp_path / "control.sock"), str(tmp_path),
                          str(tmp_path / "ikecore.toml")).start()
    try:
        client = Client(server.port)
        assert client.get("/login").status == 200
        assert client.login("admin").header("location") == "/password"
    finally:
        server.stop()
        fake.stop()
