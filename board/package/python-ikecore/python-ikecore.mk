################################################################################
#
# python-ikecore
#
################################################################################

# The firmware is built from this checkout: firmware/ holds the ikecore and webui packages.
PYTHON_IKECORE_VERSION = 1.0
PYTHON_IKECORE_SITE = $(BR2_EXTERNAL_IKECORE_PATH)/../firmware
PYTHON_IKECORE_SITE_METHOD = local
PYTHON_IKECORE_SETUP_TYPE = setuptools
PYTHON_IKECORE_LICENSE = Proprietary

# firmware/ is shared by the offline image and the host tests and carries no packaging file of
# its own: the build metadata lives next to this .mk and is put into the rsynced copy.
define PYTHON_IKECORE_ADD_PYPROJECT
	$(INSTALL) -m 0644 $(PYTHON_IKECORE_PKGDIR)/pyproject.toml $(@D)/pyproject.toml
endef
PYTHON_IKECORE_POST_RSYNC_HOOKS += PYTHON_IKECORE_ADD_PYPROJECT

# ikectl (/usr/bin/ikectl), the webui user and the init scripts come from rootfs-overlay/, the
# same files the offline image uses.

$(eval $(python-package))
