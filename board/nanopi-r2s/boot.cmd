# A/B boot selection for RAUC's uboot backend (compiled to /boot/boot.scr by post-build.sh; both
# slots carry it, U-Boot runs the first one it finds). The first slot in BOOT_ORDER with tries left
# boots and loses one try first; `rauc status mark-good` (S60health) gives it its tries back, a
# freshly installed slot gets one (boot-attempts-primary=1). With no tries left anywhere, both are
# reset rather than leaving the router without a system.
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3
setenv rauc_part
for slot in ${BOOT_ORDER}; do
	if test -n "${rauc_part}"; then
		true
	elif test "${slot}" = "A" && test ${BOOT_A_LEFT} -gt 0; then
		setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
		setenv rauc_part 1
		setenv rauc_slot A
	elif test "${slot}" = "B" && test ${BOOT_B_LEFT} -gt 0; then
		setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
		setenv rauc_part 2
		setenv rauc_slot B
	fi
done
if test -z "${rauc_part}"; then
	echo "ikecore: no slot has boot tries left: resetting both to 3"
	setenv BOOT_A_LEFT 3
	setenv BOOT_B_LEFT 3
	saveenv
	reset
fi
saveenv
setenv bootargs "root=/dev/mmcblk0p${rauc_part} ro rootwait rauc.slot=${rauc_slot} ikecore.data=/dev/mmcblk0p3"
# the device this script was loaded from (standard boot sets devtype/devnum), else the microSD
test -n "${devtype}" || setenv devtype mmc
test -n "${devnum}" || setenv devnum 0
load ${devtype} ${devnum}:${rauc_part} ${kernel_addr_r} /boot/Image
load ${devtype} ${devnum}:${rauc_part} ${fdt_addr_r} /boot/rk3328-nanopi-r2s.dtb
booti ${kernel_addr_r} - ${fdt_addr_r}
