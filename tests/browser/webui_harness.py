"""Run the web UI for tests: in a thread of this process (fast, for the view tests) or as the
real `python3 -m webui` process (browser tests), plus a small cookie-keeping HTTP client."""
import asyncio
import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlencode

FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "firmware")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadedWebui:
    """webui.app.make_app served on 127.0.0.1 from a background thread."""

    def __init__(self, options, clock=None):
        from webui.app import make_app
        self.app = make_app(options, clock)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the web UI did not start")
        return self

    def _run(self):
        from aiohttp import web
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def stop(self):
        future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port


class ProcessWebui:
    """The real command: python3 -m webui --socket ... --listen ... --state-dir ..."""

    def __init__(self, socket_path, state_dir, config_path, firewall_log=None):
        self.port = free_port()
        self.args = [sys.executable, "-m", "webui", "--socket", socket_path,
                     "--listen", "127.0.0.1:%d" % self.port, "--state-dir", state_dir,
                     "--config", config_path]
        if firewall_log:
            self.args += ["--firewall-log", firewall_log]
        self.log_path = os.path.join(state_dir, "webui.out")

    def start(self):
        env = dict(os.environ, PYTHONPATH=FIRMWARE)
        self._out = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("webui exited: %s" % open(self.log_path).read())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("webui did not listen within 30 s")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self.text = body.decode("utf-8", "replace")

    def header(self, name):
        return self.headers.get(name.lower())


class Client:
    """HTTP/1.1 to the web UI keeping the session cookie; never follows redirects."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}
        self.set_cookie_headers = []

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join("%s=%s" % kv for kv in self.cookies.items())
        conn.request(method, path, body=body, headers=headers)
        raw = conn.getresponse()
        data = raw.read()
        result = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
        for name, value in raw.getheaders():
            if name.lower() == "set-cookie":
                self.set_cookie_headers.append(value)
                key, _, rest = value.partition("=")
                val = rest.split(";")[0]
                if val in ("", '""') or "max-age=0" in value.lower():
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = val
        conn.close()
        return result

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, fields, csrf=True, headers=None):
        fields = dict(fields)
        if csrf is True:
            fields["csrf_token"] = self.csrf_token()
        elif csrf:
            fields["csrf_token"] = csrf
        headers = dict(headers or {}, **{"Content-Type": "application/x-www-form-urlencoded"})
        return self.request("POST", path, body=urlencode(fields, doseq=True), headers=headers)

    def upload(self, path, field, file_path, csrf=True):
        """multipart/form-data POST as a browser sends a file form: the CSRF token field first,
        then the file, streamed from disk (never read into memory here)."""
        token = self.csrf_token() if csrf is True else (csrf or "")
        boundary = "ikecoretestboundary%d" % os.getpid()
        head = ('--%s\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n%s\r\n'
                '--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
                'Content-Type: application/octet-stream\r\n\r\n'
                % (boundary, token, boundary, field, os.path.basename(file_path))).encode()
        tail = ("\r\n--%s--\r\n" % boundary).encode()

        def body():
            yield head
            with open(file_path, "rb") as f:
                while True:
                    chunk = f.read(256 * 1024)
                    if not chunk:
                        break
                    yield chunk
            yield tail
        length = len(head) + os.path.getsize(file_path) + len(tail)
        return self.request("POST", path, body=body(), timeout=1800, headers={
            "Content-Type": "multipart/form-data; boundary=" + boundary, "Content-Length": str(length)})

    def csrf_token(self, path="/login"):
        """The token of this client's session, read from a page as the browser would."""
        page = self.get("/" if "ikecore_session" in self.cookies else path)
        if page.status in (301, 302, 303):
            page = self.get(page.header("location"))
        match = re.search(r'name="csrf-token" content="([^"]*)"', page.text)
        return match.group(1) if match else ""

    def login(self, password):
        self.get("/login")
        return self.post("/login", {"password": password, "next": "/"})
