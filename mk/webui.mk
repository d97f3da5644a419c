# Web UI area: tests/browser drives Debian's headless chromium through Debian's chromedriver with
# selenium (pinned in requirements-test.txt); no browser or driver is ever downloaded.
APT_PACKAGES += chromium chromium-driver

.PHONY: webui-run webui-screenshots
# The web UI on the host against the daemon's control socket (make webui-run SOCKET=...).
SOCKET ?= /run/ikecore/control.sock
WEBUI_STATE ?= $(CACHE)/webui-state
webui-run: deps
	@mkdir -p $(WEBUI_STATE)
	$(PY) -m webui --socket $(SOCKET) --listen 127.0.0.1:8080 --state-dir $(WEBUI_STATE) \
		--config $(or $(CONFIG),/etc/ikecore/ikecore.toml)

# Regenerate docs/screenshots/*.png (status, logs, settings; desktop and phone widths).
webui-screenshots: deps
	$(PY) tests/browser/screenshots.py docs/screenshots
