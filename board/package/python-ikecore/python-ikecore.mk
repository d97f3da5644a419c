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

# ikectl is "python3 -m ikecore.ctl" (DESIGN.md); a two-line wrapper keeps it that way.
define PYTHON_IKECORE_INSTALL_IKECTL
	$(INSTALL) -m 0755 -D $(PYTHON_IKECORE_PKGDIR)/ikectl $(TARGET_DIR)/usr/bin/ikectl
endef
PYTHON_IKECORE_POST_INSTALL_TARGET_HOOKS += PYTHON_IKECORE_INSTALL_IKECTL

# The web UI runs unprivileged (it only talks to the daemon's control socket).
define PYTHON_IKECORE_USERS
	webui -1 webui -1 * /var/lib/webui - - ikecore web UI
endef

$(eval $(python-package))
