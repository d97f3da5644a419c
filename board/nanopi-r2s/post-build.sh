#!/bin/sh
# NanoPi R2S post-build (after board/post-build.sh): U-Boot's A/B boot script in each root slot,
# RAUC's system.conf for this board, the environment location for fw_setenv, the keyring bundles
# are checked against, and the login shell on the board's serial port (UART2) instead of ttyAMA0.
set -eu
TARGET_DIR=${1:?usage: post-build.sh TARGET_DIR}
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)

# slots on partitions 1 and 2, settings on 3 (genimage.cfg); boot.cmd chooses the slot
mkimage=${HOST_DIR:+$HOST_DIR/bin/}mkimage
install -m 0644 -D "$BOARD_DIR/boot.cmd" "$TARGET_DIR/boot/boot.cmd"
"$mkimage" -A arm64 -T script -C none -n "ikecore A/B" -d "$BOARD_DIR/boot.cmd" "$TARGET_DIR/boot/boot.scr" >/dev/null
install -m 0644 -D "$BOARD_DIR/rauc-system.conf" "$TARGET_DIR/etc/rauc/system.conf"
install -m 0644 -D "$BOARD_DIR/fw_env.config" "$TARGET_DIR/etc/fw_env.config"

# the keyring: the vendor's ($IKECORE_RAUC_KEYRING, docs/upgrade.md), else a development
# certificate made once next to the build output (never in git)
keyring=${IKECORE_RAUC_KEYRING:-}
if [ -z "$keyring" ]; then
	keys=${BASE_DIR:-$TARGET_DIR/..}/keys
	keyring=$keys/development.cert.pem
	if [ ! -f "$keyring" ]; then
		mkdir -p "$keys"
		openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/O=ikecore development/CN=ikecore development firmware signer" \
			-addext keyUsage=critical,digitalSignature -addext basicConstraints=critical,CA:true \
			-keyout "$keys/development.key.pem" -out "$keyring" 2>/dev/null
	fi
fi
install -m 0644 -D "$keyring" "$TARGET_DIR/etc/rauc/keyring.pem"

if [ -f "$TARGET_DIR/etc/inittab" ]; then
	sed -i 's/^ttyAMA0::/ttyS2::/' "$TARGET_DIR/etc/inittab"
fi
