"""ikecore LAN web UI: the seed's status page, the VPN and firewall logs, the settings pages.

Runs as its own unprivileged process (user `webui` in the image) and talks only to the daemon's
control socket (JSON lines, see docs/architecture.md) and the configuration file (through
ikecore.config, the only validator). aiohttp serves, Jinja2 renders with autoescaping on.
"""
