# ikecore router firmware — the two commands a user needs are `make run` and `make test`.
# Everything they need is installed here (apt-get for system packages, pip from pinned files),
# so a fresh Debian 12 machine needs nothing done by hand.
SHELL := /bin/bash
TOP := $(CURDIR)
VENV := $(TOP)/.venv
PY := $(VENV)/bin/python
CACHE := $(TOP)/.cache
export PYTHONPATH := $(TOP)/firmware

# System packages; each area's mk/*.mk adds what it needs with `APT_PACKAGES += ...`.
APT_PACKAGES := python3 python3-venv iproute2 nftables

.PHONY: all run test image qemu bench deps clean
all: image

include $(wildcard mk/*.mk)

deps: $(CACHE)/apt.stamp $(VENV)/.stamp

$(CACHE)/apt.stamp: Makefile $(wildcard mk/*.mk)
	@mkdir -p $(CACHE)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo ">> apt-get install $$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@touch $@

$(VENV)/.stamp: requirements.txt requirements-test.txt
	@echo ">> python venv in .venv (pinned requirements)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	@touch $@

# Every test: unit, interop (strongSwan in network namespaces), qemu (booted image), browser.
test: deps $(TEST_PREREQS)
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: deps $(BENCH_PREREQS)
	$(PY) tests/bench/run_all.py

clean:
	rm -rf output
