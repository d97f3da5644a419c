#!/bin/sh
# Buildroot post-build script for every ikecore defconfig: $1 is the target directory.
# Runs after the packages and the rootfs overlay are installed, before the filesystem images.
set -eu
TARGET_DIR=${1:?usage: post-build.sh TARGET_DIR}
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$BOARD_DIR/.." && pwd)

# Which firmware this is: shown by the web UI and in bug reports.
version=$(git -C "$TOP" describe --always --dirty 2>/dev/null || echo unknown)
printf 'NAME=ikecore\nVERSION=%s\nBUILD=buildroot\n' "$version" > "$TARGET_DIR/etc/ikecore-release"

# Init scripts from the overlay must be executable for busybox init's rcS to run them
# (an overlay copied from a checkout without modes, e.g. a zip download, would lose the bits).
for script in "$TARGET_DIR"/etc/init.d/S*; do
	[ -f "$script" ] && chmod 0755 "$script"
done

# State directories: the daemon's runtime dir is on tmpfs (/run); the web UI keeps its password
# hash under /var/lib/webui (its home, created by the package's users table) and the data
# partition is mounted on /data by the init scripts.
install -d -m 0755 "$TARGET_DIR/data"
install -d -m 0700 "$TARGET_DIR/etc/ikecore"

# The daemon and the page import the firmware from site-packages; a leftover PYTHONPATH copy in
# the overlay would shadow it with stale code.
if [ -d "$TARGET_DIR/opt/ikecore/firmware" ]; then
	echo "post-build: warning: $TARGET_DIR/opt/ikecore/firmware shadows the packaged firmware" >&2
fi
