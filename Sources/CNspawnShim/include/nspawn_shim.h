// C that Swift cannot call directly. Each wrapper says why it exists; everything else is called
// from Swift through Glibc. No _GNU_SOURCE here: defining it in a header breaks module imports,
// so it lives in nspawn_shim.c only.
#ifndef NSPAWN_SHIM_H
#define NSPAWN_SHIM_H

#include <stdint.h>
#include <sys/types.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/statfs.h>
#include <sys/reboot.h>
#include <sys/epoll.h>
#include <sys/xattr.h>  /* flistxattr, fgetxattr, fsetxattr: not part of the Glibc module */
#include <malloc.h>     /* malloc_trim: not part of the Glibc module */

// Namespace flags: <sched.h> hides them from Swift without _GNU_SOURCE.
#define NSP_CLONE_NEWNS 0x00020000
#define NSP_CLONE_NEWCGROUP 0x02000000
#define NSP_CLONE_NEWUTS 0x04000000
#define NSP_CLONE_NEWIPC 0x08000000
#define NSP_CLONE_NEWUSER 0x10000000
#define NSP_CLONE_NEWPID 0x20000000
#define NSP_CLONE_NEWNET 0x40000000
#define NSP_CLONE_PIDFD 0x00001000

// open(2) flag hidden without _GNU_SOURCE.
#define NSP_O_PATH 010000000

// ioctl request numbers are function-like macros (_IO, _IOR), which Swift does not import.
extern const unsigned long NSP_TIOCGPTPEER;
extern const unsigned long NSP_TIOCSPTLCK;

/// clone3(2) has no glibc wrapper. Returns like fork(): 0 in the child, the child's pid in the
/// parent, -1 with errno set on failure. With CLONE_PIDFD the pidfd is stored in *pidfd; with
/// cgroup_fd >= 0 the child is born in that cgroup (CLONE_INTO_CGROUP).
pid_t nsp_clone3(uint64_t flags, int exit_signal, int cgroup_fd, int *pidfd);

/// Hidden by the Glibc module (declared only under _GNU_SOURCE).
int nsp_unshare(int flags);
int nsp_setns(int fd, int nstype);
int nsp_pipe2(int fds[2], int flags);
int nsp_memfd_create(const char *name);
int nsp_setresuid(uid_t uid);
int nsp_setresgid(gid_t gid);
int nsp_setfsuid(uid_t uid);
int nsp_setfsgid(gid_t gid);

/// No glibc wrapper in 2.36.
int nsp_pivot_root(const char *new_root, const char *put_old);
int nsp_pidfd_send_signal(int pidfd, int sig);
int nsp_pidfd_open(pid_t pid);
/* The number of a pty master's peer in its devpts (TIOCGPTN: a macro Swift cannot import); -1 on error. */
int nsp_pty_number(int master);
int nsp_close_range(unsigned int first, unsigned int last, unsigned int flags);
int nsp_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

/// personality(2): <sys/personality.h> is not part of the Glibc module.
int nsp_personality(unsigned long persona);
/// prlimit(2) and sched_setaffinity(2) of another process: GNU extensions the Glibc module hides.
int nsp_prlimit(pid_t pid, int resource, uint64_t soft, uint64_t hard);
int nsp_sched_setaffinity(pid_t pid, size_t size, const void *mask);

/// seccomp(2) has no glibc wrapper: loads a classic BPF program (len bytes of struct sock_filter)
/// with SECCOMP_SET_MODE_FILTER and the given flags.
int nsp_seccomp_load(unsigned int flags, const void *program, size_t len);

/// bpf(2) has no glibc wrapper, and union bpf_attr is beyond Swift: loads an eBPF program of type
/// BPF_PROG_TYPE_CGROUP_DEVICE (len bytes of struct bpf_insn) and attaches it to the cgroup
/// (BPF_F_ALLOW_MULTI: programs below can only restrict further). Returns 0 or -1 with errno.
int nsp_attach_device_filter(int cgroup_fd, const void *instructions, size_t len);

/// keyctl(2) has no glibc wrapper: a fresh anonymous session keyring for the caller.
int nsp_join_session_keyring(void);

/// prctl(2) is variadic.
int nsp_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);

/// waitid() fills a siginfo_t whose fields sit in a union Swift cannot reach by name.
/// Returns 0 and sets *code (CLD_EXITED, CLD_KILLED, CLD_DUMPED) and *status, or -1 with errno.
int nsp_waitid_pidfd(int pidfd, int options, int *code, int *status);

/// SCM_RIGHTS: CMSG_* are macros. Sends len bytes of data with nfds descriptors.
ssize_t nsp_send_with_fds(int sock, const void *data, size_t len, const int *fds, int nfds);
/// Receives at most len bytes and at most max_fds descriptors (made close-on-exec).
ssize_t nsp_recv_with_fds(int sock, void *data, size_t len, int *fds, int max_fds, int *nfds);

/// Receives one datagram without blocking, with the sender's PID from SCM_CREDENTIALS (-1 when the
/// sender sent none); *truncated is set when the datagram was longer than len. Descriptors that a
/// sender attached are closed. ucred and the cmsg walk are not reachable from Swift.
ssize_t nsp_recv_datagram(int sock, void *data, size_t len, pid_t *pid, int *truncated);

/// Brings an interface up with SIOCSIFFLAGS: struct ifreq is a union of unions.
int nsp_interface_up(const char *name);

/// For --template's copy: renameat2(RENAME_NOREPLACE), copy_file_range() and the FICLONE ioctl
/// (a reflink) are hidden without _GNU_SOURCE, or macros. Each returns like the call (the copy:
/// bytes copied), -1 with errno on failure.
int nsp_renameat2_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
ssize_t nsp_copy_file_range(int in, int out, size_t len);
int nsp_clone_file(int dest, int source);

/// Loop devices for disk images: LOOP_CTL_GET_FREE on /dev/loop-control (the free device's number,
/// -1 with errno), and LOOP_CONFIGURE (struct loop_config, Linux 5.8) binding `backing` to the
/// device `loop` from `offset` for `size` bytes (0: to the end) with LO_FLAGS_* `flags`.
int nsp_loop_get_free(int control);
int nsp_loop_configure(int loop, int backing, uint64_t offset, uint64_t size, uint32_t flags);

/// WIFEXITED & co. and SIGRTMIN are macros (SIGRTMIN calls a libc function).
int nsp_sigrtmin(void);
int nsp_sigrtmax(void);

/// The caller's environment block: `environ` is not imported under strict concurrency.
char **nsp_environ(void);

/* Gives back to the kernel the pages of this thread's stack more than `keep` bytes below the
 * caller's frame (MADV_DONTNEED: touched again, they come back zeroed). pthread_getattr_np is
 * hidden without _GNU_SOURCE. */
int nsp_release_stack_below(size_t keep);

/* Opens libblkid (blkid_loader.c): 0, or -1 with the reason in nsp_blkid_load_error(). */
int nsp_blkid_load(void);
const char *nsp_blkid_load_error(void);

/* Opens libsystemd (systemd_loader.c): 0, or -1 with the reason in nsp_systemd_load_error(). */
int nsp_systemd_load(void);
const char *nsp_systemd_load_error(void);

#endif
