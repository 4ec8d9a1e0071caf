#define _GNU_SOURCE
#include "nspawn_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/fs.h>
#include <stdio.h>
#include <linux/keyctl.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/loop.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

const unsigned long NSP_TIOCGPTPEER = TIOCGPTPEER;
const unsigned long NSP_TIOCSPTLCK = TIOCSPTLCK;

pid_t nsp_clone3(uint64_t flags, int exit_signal, int cgroup_fd, int *pidfd) {
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = flags;
    args.exit_signal = (uint64_t)exit_signal;
    if (flags & CLONE_PIDFD) args.pidfd = (uint64_t)(uintptr_t)pidfd;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
    }
    return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

int nsp_unshare(int flags) { return unshare(flags); }
int nsp_setns(int fd, int nstype) { return setns(fd, nstype); }
int nsp_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int nsp_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC); }
int nsp_setresuid(uid_t uid) { return setresuid(uid, uid, uid); }
int nsp_setresgid(gid_t gid) { return setresgid(gid, gid, gid); }
int nsp_setfsuid(uid_t uid) { return setfsuid(uid); }
int nsp_setfsgid(gid_t gid) { return setfsgid(gid); }

int nsp_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}
int nsp_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}
int nsp_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}
int nsp_close_range(unsigned int first, unsigned int last, unsigned int flags) {
    return (int)syscall(SYS_close_range, first, last, flags);
}
int nsp_personality(unsigned long persona) {
    return personality(persona);
}
int nsp_prlimit(pid_t pid, int resource, uint64_t soft, uint64_t hard) {
    struct { uint64_t cur, max; } limit = { soft, hard };  /* struct rlimit64 */
    return (int)syscall(SYS_prlimit64, pid, resource, &limit, NULL);
}
int nsp_sched_setaffinity(pid_t pid, size_t size, const void *mask) {
    return (int)syscall(SYS_sched_setaffinity, pid, size, mask);
}
int nsp_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how = { .flags = flags, .mode = mode, .resolve = resolve };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int nsp_seccomp_load(unsigned int flags, const void *program, size_t len) {
    struct sock_fprog prog = { .len = (unsigned short)(len / sizeof(struct sock_filter)), .filter = (struct sock_filter *)program };
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

int nsp_attach_device_filter(int cgroup_fd, const void *instructions, size_t len) {
    union bpf_attr load;
    memset(&load, 0, sizeof(load));
    load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    load.insns = (uint64_t)(uintptr_t)instructions;
    load.insn_cnt = (uint32_t)(len / sizeof(struct bpf_insn));
    load.license = (uint64_t)(uintptr_t)"GPL";
    int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof(load));
    if (prog < 0) return -1;
    union bpf_attr attach;
    memset(&attach, 0, sizeof(attach));
    attach.target_fd = (uint32_t)cgroup_fd;
    attach.attach_bpf_fd = (uint32_t)prog;
    attach.attach_type = BPF_CGROUP_DEVICE;
    attach.attach_flags = BPF_F_ALLOW_MULTI;
    int r = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof(attach));
    int saved = errno;
    close(prog);
    errno = saved;
    return r;
}

int nsp_join_session_keyring(void) { return (int)syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL); }

int nsp_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5) {
    return prctl(option, arg2, arg3, arg4, arg5);
}

int nsp_waitid_pidfd(int pidfd, int options, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid(P_PIDFD, (id_t)pidfd, &info, options) < 0) return -1;
    *code = info.si_code;
    *status = info.si_status;
    return 0;
}

ssize_t nsp_send_with_fds(int sock, const void *data, size_t len, const int *fds, int nfds) {
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    char control[CMSG_SPACE(sizeof(int) * 8)];
    if (nfds > 8) { errno = EINVAL; return -1; }
    if (nfds > 0) {
        memset(control, 0, sizeof(control));
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n;
    do n = sendmsg(sock, &msg, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
    return n;
}

ssize_t nsp_recv_with_fds(int sock, void *data, size_t len, int *fds, int max_fds, int *nfds) {
    struct iovec iov = { .iov_base = data, .iov_len = len };
    char control[CMSG_SPACE(sizeof(int) * 8)];
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control) };
    *nfds = 0;
    ssize_t n;
    do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *received = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (*nfds < max_fds) fds[(*nfds)++] = received[i];
            else close(received[i]);
        }
    }
    return n;
}

ssize_t nsp_recv_datagram(int sock, void *data, size_t len, pid_t *pid, int *truncated) {
    struct iovec iov = { .iov_base = data, .iov_len = len };
    char control[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 16)];
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control) };
    *pid = -1;
    *truncated = 0;
    ssize_t n;
    do n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof(cred));
            *pid = cred.pid;
        } else if (c->cmsg_type == SCM_RIGHTS) {
            int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int fds[16];
            if (count > 16) count = 16;
            memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)count);
            for (int i = 0; i < count; i++) close(fds[i]);
        }
    }
    if ((size_t)n > len || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) *truncated = 1;
    return n;
}

int nsp_interface_up(const char *name) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (r == 0 && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return r;
}

int nsp_sigrtmin(void) { return SIGRTMIN; }
int nsp_sigrtmax(void) { return SIGRTMAX; }

extern char **environ;
char **nsp_environ(void) { return environ; }


int nsp_renameat2_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, RENAME_NOREPLACE);
}

ssize_t nsp_copy_file_range(int in, int out, size_t len) {
    return copy_file_range(in, NULL, out, NULL, len, 0);
}

int nsp_clone_file(int dest, int source) {
    return ioctl(dest, FICLONE, source);
}

int nsp_loop_get_free(int control) {
    return ioctl(control, LOOP_CTL_GET_FREE);
}

int nsp_loop_configure(int loop, int backing, uint64_t offset, uint64_t size, uint32_t flags) {
    struct loop_config config;
    memset(&config, 0, sizeof config);
    config.fd = (uint32_t)backing;
    config.info.lo_offset = offset;
    config.info.lo_sizelimit = size;
    config.info.lo_flags = flags;
    return ioctl(loop, LOOP_CONFIGURE, &config);
}

#include <pthread.h>

int nsp_release_stack_below(size_t keep) {
    pthread_attr_t attributes;
    void *lowest;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attributes) != 0) return -1;
    int r = pthread_attr_getstack(&attributes, &lowest, &size);
    pthread_attr_destroy(&attributes);
    if (r != 0) return -1;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t here = (uintptr_t)__builtin_frame_address(0) & ~(uintptr_t)(page - 1);
    if (here < (uintptr_t)lowest + keep) return 0;
    uintptr_t end = here - keep;
    /* Only the mapped part of the range (the stack grows down on demand) is advised; the
     * unmapped rest below it makes madvise answer ENOMEM, which is expected. */
    if (madvise(lowest, end - (uintptr_t)lowest, MADV_DONTNEED) != 0 && errno != ENOMEM) return -1;
    return 0;
}

int nsp_pty_number(int master) {
    unsigned int number;
    return ioctl(master, TIOCGPTN, &number) < 0 ? -1 : (int)number;
}
