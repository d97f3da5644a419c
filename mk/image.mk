# The offline arm64 firmware image (qemu/) and its QEMU launchers.
#   make image   build output/images/ (kernel cached machine-wide in $(IKECORE_CACHE); seconds when unchanged)
#   make qemu    boot the built image from its A/B system disk (output/system.img, made once; firmware
#                upgrades through the page land there); LAN status page on http://127.0.0.1:8080/
#   make run     image + qemu
APT_PACKAGES += qemu-system-arm linux-source-6.1 gcc-aarch64-linux-gnu flex bison bc libssl-dev libelf-dev \
                cpio squashfs-tools zstd busybox-static e2fsprogs xz-utils debian-archive-keyring \
                dpkg-dev gcc make \
                rauc fdisk openssl libc6-dev-arm64-cross
# the image's rauc and chrony are cross-built from Debian's source with fewer features (qemu/source_build.py)
APT_PACKAGES += meson ninja-build pkg-config
#   make image-strongswan  output/images/rootfs-strongswan.squashfs: the firmware plus strongSwan, a
#                          test-only peer image (tests/qemu/test_tunnel_strongswan.py); never flashed
#   make image-libreswan   output/images/rootfs-libreswan.squashfs: the firmware plus Libreswan's pluto,
#                          the same for tests/qemu/test_tunnel_libreswan.py; never flashed
TEST_PREREQS += image image-strongswan image-libreswan
BENCH_PREREQS += image

IKECORE_CACHE ?= /var/cache/ikecore
export IKECORE_CACHE

.PHONY: image image-strongswan image-libreswan qemu run
image: $(CACHE)/apt.stamp
	@python3 qemu/build_image.py --out $(TOP)/output

image-strongswan: image
	@python3 qemu/build_image.py --out $(TOP)/output --variant strongswan

image-libreswan: image
	@python3 qemu/build_image.py --out $(TOP)/output --variant libreswan

qemu:
	@python3 qemu/run.py --images $(TOP)/output/images --data $(TOP)/output/data.img --system $(TOP)/output/system.img

run: image qemu
