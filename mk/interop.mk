# Interop area: a real strongSwan charon (IKEv1) in network namespaces for tests/interop and
# tests/bench/bench_ike_setup.py. charon, swanctl, the kernel-libipsec plugin (userspace ESP: the
# host kernel has no esp4/ah4), the openssl plugin (libstrongswan-standard-plugins, only a
# recommendation of libstrongswan: without it charon has no 3DES, and the legacy 3des-md5-modp1024
# cases fail on a --no-install-recommends machine), ping for the tunnel smoke test, util-linux's
# unshare for charon's private /run.
APT_PACKAGES += strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins \
                iputils-ping util-linux procps

.PHONY: interop
interop: deps
	$(PY) -m pytest -q -p no:cacheprovider tests/interop
