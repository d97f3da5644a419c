# ikecore router firmware — the two commands a user needs are `make run` and `make test`.
# Everything they need is installed here (apt-get for system packages, pip from pinned files),
# so a fresh Debian 12 machine needs nothing done by hand.
SHELL := /bin/bash
TOP := $(CURDIR)
VENV := $(TOP)/.venv
PY := $(VENV)/bin/python
# A second venv with the versions a Buildroot board gets (requirements-buildroot.txt, generated
# from the Buildroot snapshot by board/buildroot_versions.py): the host-level tests run there too.
VENV_BOARD := $(TOP)/.venv-buildroot
PY_BOARD := $(VENV_BOARD)/bin/python
HOST_TESTS := tests/unit tests/daemon tests/interop tests/xfrm
CACHE := $(TOP)/.cache
export PYTHONPATH := $(TOP)/firmware

# System packages; each area's mk/*.mk adds what it needs with `APT_PACKAGES += ...`.
APT_PACKAGES := python3 python3-venv iproute2 nftables

.PHONY: all run test image qemu bench deps clean
all: image

include $(wildcard mk/*.mk)

deps: $(CACHE)/apt.stamp $(VENV)/.stamp $(VENV_BOARD)/.stamp

$(CACHE)/apt.stamp: Makefile $(wildcard mk/*.mk)
	@mkdir -p $(CACHE)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo ">> apt-get install $$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@touch $@

# Each venv is made afresh when its pins change, so no package of an older pin stays behind.
$(VENV)/.stamp: requirements.txt requirements-pytest.txt requirements-test.txt
	@echo ">> python venv in .venv (the image's versions: requirements-test.txt)"
	@python3 -m venv --clear $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	@touch $@

$(VENV_BOARD)/.stamp: requirements-buildroot.txt requirements-pytest.txt
	@echo ">> python venv in .venv-buildroot (a board's versions: requirements-buildroot.txt)"
	@python3 -m venv --clear $(VENV_BOARD)
	@$(PY_BOARD) -m pip install -q --disable-pip-version-check -r requirements-buildroot.txt \
	  -r requirements-pytest.txt
	@touch $@

# Every test: unit, interop (strongSwan in network namespaces), qemu (booted image), browser, on
# the image's versions; then the host-level ones again on a board's (Buildroot's) versions.
test: deps $(TEST_PREREQS)
	$(PY) -m pytest -q -p no:cacheprovider tests
	@echo ">> $(HOST_TESTS) on a Buildroot board's Python packages (.venv-buildroot)"
	$(PY_BOARD) -m pytest -q -p no:cacheprovider $(HOST_TESTS)

bench: deps $(BENCH_PREREQS)
	$(PY) tests/bench/run_all.py

clean:
	rm -rf output
