/* ikecore boot selector: /init of the QEMU image's initramfs (qemu/build_image.py builds it static).
 *
 * The system disk has root slot A (/dev/vda1), root slot B (/dev/vda2) and a boot state sector
 * (/dev/vda3, or the kernel option ikecore.bootstate=DEV). The state is the one RAUC's custom
 * bootloader backend (rootfs-overlay/usr/libexec/ikecore/boot-state) reads and writes:
 *
 *     IKECORE_BOOT=1
 *     ORDER=B A
 *     A_LEFT=3
 *     B_LEFT=1
 *
 * It works like U-Boot's RAUC boot script: the first slot in ORDER with tries left is booted and
 * loses one try before its root filesystem is mounted; `rauc status mark-good` gives the slot its
 * tries back once the firmware is up. A slot that never gets there is out of tries at the next
 * boot and the other slot boots by itself. A state that is missing or unreadable boots A (the
 * factory slot); a slot whose root filesystem does not mount is skipped.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_SIZE 512
#define MAGIC "IKECORE_BOOT=1\n"
#define NSLOTS 2

struct slot {
    char name;
    const char *dev;
    int left;
};

static struct slot slots[NSLOTS] = {{'A', "/dev/vda1", 3}, {'B', "/dev/vda2", 0}};
static char order[NSLOTS] = {'A', 'B'};

static void say(const char *fmt, ...)
{
    char line[200] = "<5>ikecore-boot: ";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + strlen(line), sizeof line - strlen(line), fmt, ap);
    va_end(ap);
    int fd = open("/dev/kmsg", O_WRONLY);
    if (fd >= 0) {
        (void)!write(fd, line, strlen(line));
        close(fd);
    }
}

static struct slot *slot_named(char name)
{
    for (int i = 0; i < NSLOTS; i++)
        if (slots[i].name == name)
            return &slots[i];
    return NULL;
}

/* Parse the state; on any error the defaults above stay (boot A). */
static int read_state(const char *dev)
{
    char buf[STATE_SIZE + 1] = {0};
    int fd = open(dev, O_RDONLY);
    if (fd < 0 || read(fd, buf, STATE_SIZE) != STATE_SIZE) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    if (strncmp(buf, MAGIC, strlen(MAGIC)) != 0)
        return -1;
    int lefts[NSLOTS];
    char ord[NSLOTS];
    const char *p = strstr(buf, "\nORDER=");
    if (!p || sscanf(p, "\nORDER=%c %c", &ord[0], &ord[1]) != 2 || !slot_named(ord[0]) ||
        !slot_named(ord[1]) || ord[0] == ord[1])
        return -1;
    for (int i = 0; i < NSLOTS; i++) {
        char key[16];
        snprintf(key, sizeof key, "\n%c_LEFT=", slots[i].name);
        p = strstr(buf, key);
        if (!p || sscanf(p + strlen(key), "%d", &lefts[i]) != 1 || lefts[i] < 0)
            return -1;
    }
    memcpy(order, ord, sizeof order);
    for (int i = 0; i < NSLOTS; i++)
        slots[i].left = lefts[i];
    return 0;
}

static int write_state(const char *dev)
{
    char buf[STATE_SIZE] = {0};
    snprintf(buf, sizeof buf, MAGIC "ORDER=%c %c\n%c_LEFT=%d\n%c_LEFT=%d\n", order[0], order[1],
             slots[0].name, slots[0].left, slots[1].name, slots[1].left);
    int fd = open(dev, O_WRONLY | O_SYNC);
    if (fd < 0)
        return -1;
    int ok = write(fd, buf, STATE_SIZE) == STATE_SIZE && fsync(fd) == 0;
    close(fd);
    return ok ? 0 : -1;
}

static void state_device(char *out, size_t len)
{
    char cmdline[4096] = {0};
    snprintf(out, len, "/dev/vda3");
    int fd = open("/proc/cmdline", O_RDONLY);
    if (fd < 0)
        return;
    (void)!read(fd, cmdline, sizeof cmdline - 1);
    close(fd);
    const char *p = strstr(cmdline, "ikecore.bootstate=");
    if (p)
        sscanf(p + strlen("ikecore.bootstate="), "%63s", out);
}

/* Mount the slot's squashfs on /newroot, move /dev along and make it the root; returns only on failure. */
static void boot(struct slot *s)
{
    if (mount(s->dev, "/newroot", "squashfs", MS_RDONLY, NULL) != 0) {
        say("slot %c (%s): its root filesystem does not mount\n", s->name, s->dev);
        return;
    }
    say("booting slot %c (%s), %d tries left after this boot\n", s->name, s->dev, s->left);
    mount("/dev", "/newroot/dev", NULL, MS_MOVE, NULL);
    if (chdir("/newroot") == 0 && mount(".", "/", NULL, MS_MOVE, NULL) == 0 && chroot(".") == 0 &&
        chdir("/") == 0)
        execl("/sbin/init", "init", (char *)NULL);
    say("slot %c: cannot start its /sbin/init\n", s->name);
}

int main(void)
{
    char dev[64];
    mkdir("/dev", 0755);
    mkdir("/proc", 0555);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mount("proc", "/proc", "proc", 0, NULL);
    state_device(dev, sizeof dev);
    for (int i = 0; i < 50 && access(dev, F_OK) != 0; i++)
        usleep(100000);         /* the disk may still be probing */
    if (read_state(dev) != 0)
        say("boot state on %s missing or unreadable: booting slot A\n", dev);
    umount("/proc");
    mkdir("/newroot", 0755);

    struct slot *chosen = NULL;
    for (int i = 0; i < NSLOTS && !chosen; i++) {
        struct slot *s = slot_named(order[i]);
        if (s->left > 0)
            chosen = s;
    }
    if (chosen) {
        chosen->left--;         /* before it boots: a slot that hangs or fails loses this try */
        if (write_state(dev) != 0)
            say("cannot write the boot state to %s\n", dev);
        boot(chosen);
    }
    /* no slot with tries left, or the chosen one did not mount: any other that mounts */
    for (int i = 0; i < NSLOTS; i++)
        if (slot_named(order[i]) != chosen)
            boot(slot_named(order[i]));
    say("no root slot could be booted\n");
    sleep(5);
    return 1;
}
