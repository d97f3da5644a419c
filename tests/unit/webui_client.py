"""The web UI under aiohttp's test client, logged in, against the fake control socket.

    def test_x(tmp_path):
            run_webui(tmp_path, CONFIG, scenario)     # scenario(web) is a coroutine function
    run_webui_with(socket_path, cfg, state_dir, scenario)     # in front of a real daemon
web.client is aiohttp.test_utils.TestClient (cookies kept), web.post() adds the CSRF token,
web.cfg the config file, web.fake the FakeDaemon (None with a real daemon).
"""
import asyncio
import os
import re

from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer

from webui_fake_daemon import FakeDaemon

from webui import auth
from webui.app import make_app
from webui.context import Options

PASSWORD = "correct-password"


class Web:
    def __init__(self, client, cfg, fake):
        self.client, self.cfg, self.fake = client, cfg, fake
        self.csrf = ""

    async def page(self, path):
        response = await self.client.get(path, allow_redirects=False)
        text = await response.text()
        match = re.search(r'name="csrf-token" content="([^"]*)"', text)
        if match and match.group(1):
            self.csrf = match.group(1)
        return response, text

    async def post(self, path, fields=None, files=None, follow=False):
        """A form POST (multipart when files = {field: (filename, bytes)}) -> (response, text).
        fields: a dict, or (name, value) pairs where a name may come several times (a multiple
        choice)."""
        form = FormData()
        form.add_field("csrf_token", self.csrf)
        for key, value in fields.items() if isinstance(fields, dict) else fields or ():
            form.add_field(key, value)
        for key, (filename, data) in (files or {}).items():
            form.add_field(key, data, filename=filename, content_type="application/octet-stream")
        response = await self.client.post(path, data=form, allow_redirects=follow)
        return response, await response.read()

    async def flash(self, path):
        _response, text = await self.page(path)
        match = re.search(r'<p class="flash" role="status">(.*?)</p>', text, re.S)
        return match and match.group(1)


def run_webui(tmp_path, config_text, scenario, **options):
    """scenario(web) against a fake daemon, with the config file tmp_path/etc/ikecore.toml."""
    cfg = tmp_path / "etc" / "ikecore.toml"
    cfg.parent.mkdir(exist_ok=True)
    if config_text is not None:
        cfg.write_text(config_text)
        os.chmod(str(cfg), 0o660)
    fake = FakeDaemon(str(tmp_path / "control.sock")).start()
    try:
        return run_webui_with(fake.socket_path, cfg, tmp_path / "state", scenario, fake=fake,
                              **options)
    finally:
        fake.stop()


def run_webui_with(socket_path, cfg, state, scenario, fake=None, **options):
    """scenario(web) with the web UI in front of the daemon at socket_path (a real one too)."""
    os.makedirs(str(state), exist_ok=True)
    auth.PasswordStore(str(state)).set(PASSWORD)

    async def main():
        app = make_app(Options(socket_path, str(state), str(cfg), **options))
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            web = Web(client, cfg, fake)
            await web.page("/login")
            await web.post("/login", {"password": PASSWORD, "next": "/"})
            await web.page("/")
            return await scenario(web)
        finally:
            await client.close()
    return asyncio.run(main())
