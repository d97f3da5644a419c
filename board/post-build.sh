#!/bin/sh
# Buildroot post-build script for every ikecore defconfig: $1 is the target directory.
# Runs after the packages and the rootfs overlay are installed, before the filesystem images.
# It gives the Buildroot root filesystem the same shape the offline build (qemu/rootfs.py) gives
# its image, so rootfs-overlay's init scripts run unchanged on both.
set -eu
TARGET_DIR=${1:?usage: post-build.sh TARGET_DIR}
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$BOARD_DIR/.." && pwd)

# Which firmware this is (version, build date, RAUC compatible string): shown by the Firmware
# page, which checks bundles against it. firmware/webui/release.py defines the file, for this
# build and the offline one; it reads the target's system.conf, so this script runs after a
# board's own post-build has installed that board's (the defconfigs list them in that order).
version=${IKECORE_VERSION:-$(git -C "$TOP" describe --always --dirty --tags 2>/dev/null || echo unversioned)}
PYTHONPATH="$TOP/firmware" python3 -m webui.release "$TARGET_DIR" --version "$version"

# The overlay's init scripts do the jobs of these Buildroot ones (the system log in S11syslog,
# sysctl and mounts in S01mount, WAN/LAN in S20network, chronyd in S45ntpd): two of each would fight.
for duplicate in S01syslogd S02klogd S01rsyslogd S02sysctl S40network S49chronyd; do
	rm -f "$TARGET_DIR/etc/init.d/$duplicate"
done

# Init scripts must be executable for rcS to run them (a checkout without modes loses the bits).
for script in "$TARGET_DIR"/etc/init.d/S* "$TARGET_DIR"/etc/init.d/rc?; do
	if [ -f "$script" ]; then chmod 0755 "$script"; fi
done

# /etc/ikecore holds the factory defaults in the overlay; on the router it is the data
# partition's copy (S10data fills /data/ikecore from /usr/share/ikecore/factory at boot).
if [ -d "$TARGET_DIR/etc/ikecore" ] && [ ! -L "$TARGET_DIR/etc/ikecore" ]; then
	rm -rf "$TARGET_DIR/usr/share/ikecore/factory"
	mkdir -p "$TARGET_DIR/usr/share/ikecore"
	mv "$TARGET_DIR/etc/ikecore" "$TARGET_DIR/usr/share/ikecore/factory"
fi
mkdir -p "$TARGET_DIR/usr/share/ikecore/factory"
ln -sfn /data/ikecore "$TARGET_DIR/etc/ikecore"
for dir in data run tmp var root mnt; do
	mkdir -p "$TARGET_DIR/$dir"
done

# The init scripts look for the firmware where Debian puts Python packages; Buildroot installs
# them in site-packages. One link makes both layouts answer.
site=$(cd "$TARGET_DIR/usr/lib" && ls -d python3.*/site-packages 2>/dev/null | head -n 1 || true)
if [ -n "$site" ] && [ ! -e "$TARGET_DIR/usr/lib/python3/dist-packages" ]; then
	mkdir -p "$TARGET_DIR/usr/lib/python3"
	ln -s "../$site" "$TARGET_DIR/usr/lib/python3/dist-packages"
fi
