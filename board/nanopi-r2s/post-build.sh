#!/bin/sh
# NanoPi R2S post-build (after board/post-build.sh): the boot menu U-Boot reads from the root
# partition, and the login shell on the board's serial port (UART2) instead of QEMU's ttyAMA0.
set -eu
TARGET_DIR=${1:?usage: post-build.sh TARGET_DIR}
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)

# root on the microSD's first partition, settings on its second (board/nanopi-r2s/genimage.cfg)
install -m 0644 -D "$BOARD_DIR/extlinux.conf" "$TARGET_DIR/boot/extlinux/extlinux.conf"

if [ -f "$TARGET_DIR/etc/inittab" ]; then
	sed -i 's/^ttyAMA0::/ttyS2::/' "$TARGET_DIR/etc/inittab"
fi
