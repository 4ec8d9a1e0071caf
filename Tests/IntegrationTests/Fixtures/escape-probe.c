/* escape-probe: tries, from inside a machine, each way out that peers-and-security.md §2 lists, and
 * prints one line per attempt: "NAME blocked|OPEN|absent DETAIL". It never changes host state:
 * sysctls are only opened O_WRONLY (the permission check happens at open), clock, acct, kexec and
 * module calls get arguments the kernel rejects as invalid once the call is allowed, keys go to
 * the probe's own thread keyring, and what it mounts it unmounts. Built static by the tests.
 * Usage: escape-probe [ABSTRACT-SOCKET-NAME] */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void report(const char *name, int blocked, const char *detail) {
    printf("%s %s %s\n", name, blocked ? "blocked" : "OPEN", detail);
}

static void report_errno(const char *name, long result) {
    char detail[128];
    snprintf(detail, sizeof(detail), "%s", result < 0 ? strerror(errno) : "succeeded");
    report(name, result < 0, detail);
}

/* A call made with arguments the kernel rejects with `invalid` once it lets the call through:
 * getting `invalid` back means the call was reachable. */
static void report_reachable(const char *name, long result, int invalid) {
    char detail[128];
    snprintf(detail, sizeof(detail), "%s", result < 0 ? strerror(errno) : "succeeded");
    report(name, result < 0 && errno != invalid, detail);
}

static void open_for_write(const char *name, const char *path) {
    if (access(path, F_OK) != 0 && errno == ENOENT) { printf("%s absent %s\n", name, path); return; }
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    report_errno(name, fd);
    if (fd >= 0) close(fd);
}

static void read_masked(const char *name, const char *path) {
    if (access(path, F_OK) != 0 && errno == ENOENT) { printf("%s absent %s\n", name, path); return; }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { report_errno(name, -1); return; }
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    report(name, n <= 0, n > 0 ? "read data" : "empty");
}

static void fresh_procfs(void) {
    mkdir("/tmp/probe-proc", 0700);
    if (mount("proc", "/tmp/probe-proc", "proc", 0, NULL) < 0) { report_errno("fresh-procfs-core-pattern", -1); return; }
    int fd = open("/tmp/probe-proc/sys/kernel/core_pattern", O_WRONLY | O_CLOEXEC);
    report_errno("fresh-procfs-core-pattern", fd);
    if (fd >= 0) close(fd);
    umount2("/tmp/probe-proc", MNT_DETACH);
}

static void block_device(void) {
    DIR *d = opendir("/sys/dev/block");
    struct dirent *e;
    unsigned major_n = 0, minor_n = 0;
    while (d && (e = readdir(d))) {
        if (sscanf(e->d_name, "%u:%u", &major_n, &minor_n) == 2 && major_n != 7) break;  /* not a loop device */
        major_n = 0;
    }
    if (d) closedir(d);
    if (!major_n) { printf("mknod-host-disk absent no block device in /sys/dev/block\n"); return; }
    unlink("/dev/probe-disk");
    if (mknod("/dev/probe-disk", S_IFBLK | 0600, makedev(major_n, minor_n)) < 0) { report_errno("mknod-host-disk", -1); return; }
    int fd = open("/dev/probe-disk", O_RDONLY | O_CLOEXEC);
    report_errno("mknod-host-disk", fd);
    if (fd >= 0) close(fd);
    mkdir("/tmp/probe-disk", 0700);
    long r = mount("/dev/probe-disk", "/tmp/probe-disk", "ext4", MS_RDONLY, NULL);
    report_errno("mount-host-disk", r);
    if (r == 0) umount2("/tmp/probe-disk", MNT_DETACH);
    unlink("/dev/probe-disk");
}

static void remount_proc_sys(void) {
    long r = mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL);
    int fd = r == 0 ? open("/proc/sys/kernel/core_pattern", O_WRONLY | O_CLOEXEC) : -1;
    report_errno("remount-readonly-rw", r == 0 ? fd : -1);
    if (fd >= 0) close(fd);
}

static void unmount_masks(void) {
    const char *masks[] = { "/proc/kallsyms", "/proc/keys", "/proc/timer_list", "/proc/kcore", "/proc/sched_debug" };
    for (unsigned i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
        char name[64];
        snprintf(name, sizeof(name), "unmount-mask%s", masks[i] + 5);
        if (access(masks[i], F_OK) != 0 && errno == ENOENT) { printf("%s absent %s\n", name, masks[i]); continue; }
        long r = umount2(masks[i], MNT_DETACH);
        int fd = r == 0 ? open(masks[i], O_RDONLY | O_CLOEXEC) : -1;
        char buf[16];
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
        if (fd >= 0) close(fd);
        report(name, r < 0 || n <= 0, r < 0 ? strerror(errno) : "unmounted");
    }
    long r = umount2("/proc/sys", MNT_DETACH);
    report_errno("unmount-readonly-proc-sys", r);
}

static void shocker(void) {
    struct { struct file_handle h; unsigned char bytes[8]; } handle;
    memset(&handle, 0, sizeof(handle));
    handle.h.handle_bytes = 8;
    handle.h.handle_type = 1;  /* FILEID_INO32_GEN: inode 2 is the root of an ext* file system */
    unsigned ino = 2;
    memcpy(handle.h.f_handle, &ino, sizeof(ino));
    int fd = open_by_handle_at(AT_FDCWD, &handle.h, O_RDONLY);
    report_errno("open-by-handle-at", fd);
    if (fd >= 0) close(fd);
}

static void kernel_objects(void) {
    report_errno("add-key", syscall(SYS_add_key, "user", "probe", "x", 1, KEY_SPEC_THREAD_KEYRING));
    report_errno("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0));
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
    report_errno("bpf", fd);
    if (fd >= 0) close((int)fd);
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof(pe));
    pe.size = sizeof(pe);
    pe.type = PERF_TYPE_SOFTWARE;
    pe.config = PERF_COUNT_SW_CPU_CLOCK;
    pe.disabled = 1;
    fd = syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0);
    report_errno("perf-event-open", fd);
    if (fd >= 0) close((int)fd);
    fd = syscall(SYS_userfaultfd, O_CLOEXEC);
    report_errno("userfaultfd", fd);
    if (fd >= 0) close((int)fd);
}

static void privileged_calls(void) {
    report_reachable("init-module", syscall(SYS_finit_module, -1, "", 0), EBADF);
    report_reachable("kexec-load", syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL), EINVAL);
    report_reachable("swapon", syscall(SYS_swapon, "/nonexistent/probe-swap", 0), ENOENT);
    struct timespec bad = { .tv_sec = 0, .tv_nsec = 2000000000L };
    report_reachable("clock-settime", syscall(SYS_clock_settime, CLOCK_REALTIME, &bad), EINVAL);
    report_reachable("acct", syscall(SYS_acct, "/nonexistent/probe-acct"), ENOENT);
}

static void terminal_injection(void) {
    char c = '#';
    if (!isatty(0)) { printf("tiocsti absent stdin is not a terminal\n"); return; }
    report_errno("tiocsti", ioctl(0, TIOCSTI, &c));
    report_errno("tiocsti-64bit", syscall(SYS_ioctl, 0, (unsigned long)TIOCSTI | (1UL << 32), &c));
    char sub[2] = { 6, 0 };
    long r = ioctl(0, TIOCLINUX, sub);
    report("tioclinux", r < 0 && errno == EPERM, r < 0 ? strerror(errno) : "succeeded");
}

static void processes_and_fds(void) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    int outside = 0;
    char link[300], target[256];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(link, sizeof(link), "/proc/%s/root", e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) { target[n] = 0; if (strcmp(target, "/") != 0) outside++; }
    }
    if (d) closedir(d);
    report("processes-outside-visible", outside == 0, outside ? "a process with another root" : "all roots are /");
    char cwd[256] = "", root[256] = "";
    ssize_t a = readlink("/proc/1/cwd", cwd, sizeof(cwd) - 1), b = readlink("/proc/1/root", root, sizeof(root) - 1);
    if (a > 0) cwd[a] = 0;
    if (b > 0) root[b] = 0;
    report("pid1-root-and-cwd", b > 0 && strcmp(root, "/") == 0 && a > 0 && cwd[0] == '/', root);

    d = opendir("/proc/self/fd");
    int stray = 0, self = d ? dirfd(d) : -1;
    char list[128] = "";
    while (d && (e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd <= 2 || fd == self) continue;
        stray++;
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%d ", fd);
    }
    if (d) closedir(d);
    report("stray-fds-at-exec", stray == 0, stray ? list : "only 0 1 2");

    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long inh = 1, amb = 1;
    while (f && fgets(line, sizeof(line), f)) {
        sscanf(line, "CapInh: %llx", &inh);
        sscanf(line, "CapAmb: %llx", &amb);
    }
    if (f) fclose(f);
    report("inheritable-ambient-caps", inh == 0 && amb == 0, inh || amb ? "non-zero" : "both zero");
}

static void cgroup_v1(void) {
    mkdir("/tmp/probe-cgroup", 0700);
    long r = mount("cgroup", "/tmp/probe-cgroup", "cgroup", 0, "none,name=swiftnspawnprobe");
    int fd = r == 0 ? open("/tmp/probe-cgroup/release_agent", O_WRONLY | O_CLOEXEC) : -1;
    report_errno("cgroup-v1-release-agent", r == 0 ? fd : -1);
    if (fd >= 0) close(fd);
    if (r == 0) umount2("/tmp/probe-cgroup", MNT_DETACH);
}

static void host_abstract_socket(const char *name) {
    if (!name) { printf("host-abstract-socket absent no name given\n"); return; }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path + 1, name, sizeof(a.sun_path) - 2);
    long r = connect(s, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name)));
    report_errno("host-abstract-socket", r);
    close(s);
}

static void devices(void) {
    const char *nodes[] = { "/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg" };
    for (unsigned i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof(name), "open%s", nodes[i] + 4);
        int fd = open(nodes[i], O_RDONLY | O_CLOEXEC);
        report(name, fd < 0, fd < 0 ? strerror(errno) : "opened");
        if (fd >= 0) close(fd);
    }
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 9 /* NETLINK_AUDIT */);
    report("netlink-audit", s < 0 && errno == EAFNOSUPPORT, s < 0 ? strerror(errno) : "opened");
    if (s >= 0) close(s);
    long r = syscall(1000);
    report("unknown-syscall-enosys", r < 0 && errno == ENOSYS, r < 0 ? strerror(errno) : "succeeded");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    processes_and_fds();
    open_for_write("core-pattern-write", "/proc/sys/kernel/core_pattern");
    open_for_write("sysrq-trigger", "/proc/sysrq-trigger");
    fresh_procfs();
    read_masked("read-kcore", "/proc/kcore");
    read_masked("read-kallsyms", "/proc/kallsyms");
    read_masked("read-keys", "/proc/keys");
    read_masked("read-timer-list", "/proc/timer_list");
    block_device();
    remount_proc_sys();
    unmount_masks();
    shocker();
    kernel_objects();
    privileged_calls();
    terminal_injection();
    cgroup_v1();
    host_abstract_socket(argc > 1 ? argv[1] : NULL);
    devices();
    return 0;
}
