#!/bin/sh
# Buildroot post-image script for ikecore_qemu_aarch64_virt_defconfig: writes an empty data disk
# (settings that survive reboots) and start-qemu.sh, the launch line of readme.txt.
set -eu
: "${BINARIES_DIR:?run by Buildroot}" "${HOST_DIR:?run by Buildroot}"

if [ ! -f "$BINARIES_DIR/data.ext4" ]; then
	truncate -s 64M "$BINARIES_DIR/data.ext4"
	"$HOST_DIR/sbin/mkfs.ext4" -q -L ikecore-data "$BINARIES_DIR/data.ext4"
fi

cat > "$BINARIES_DIR/start-qemu.sh" <<'SCRIPT'
#!/bin/sh
# WAN = eth0 (user network), LAN = eth1 (user network 192.168.1.0/24, the status page forwarded
# to http://127.0.0.1:8080/), serial console on stdio. Extra arguments go to QEMU.
cd "$(dirname "$0")"
exec qemu-system-aarch64 -M virt -cpu cortex-a53 -m 512 -smp 1 -nographic \
	-kernel Image -append "rootwait root=/dev/vda console=ttyAMA0" \
	-drive file=rootfs.ext4,if=none,format=raw,id=root -device virtio-blk-pci,drive=root \
	-drive file=data.ext4,if=none,format=raw,id=data -device virtio-blk-pci,drive=data \
	-netdev user,id=wan -device virtio-net-pci,netdev=wan \
	-netdev user,id=lan,net=192.168.1.0/24,host=192.168.1.2,hostfwd=tcp:127.0.0.1:8080-192.168.1.1:80 \
	-device virtio-net-pci,netdev=lan \
	"$@"
SCRIPT
chmod +x "$BINARIES_DIR/start-qemu.sh"
