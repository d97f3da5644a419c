# Board + XFRM area.
# tests/unit/test_board.py runs Buildroot's kconfig (make, gcc) on our defconfigs when a Buildroot
# checkout is at hand, and the QEMU post-image script makes an ext4 data disk (e2fsprogs).
# tests/xfrm pings into a trap policy (iputils-ping) and shortens larval SA lifetimes (procps).
APT_PACKAGES += make gcc e2fsprogs iputils-ping procps
