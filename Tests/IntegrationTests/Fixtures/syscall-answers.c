/* syscall-answers: makes each system call named on the command line with every argument 0 and
 * prints "ABI:NUMBER ERRNO" (0 when it succeeded). ABI is 64 (x86-64), x32 (the number with bit
 * 30, from x86-64 code) or 32 (int 0x80, which the kernel reports as AUDIT_ARCH_I386). With
 * --filter FILE it first loads that classic BPF program as its own seccomp filter (no_new_privs
 * set). The tests pass only numbers the filter in force must refuse, so none of them ever runs.
 * Usage: syscall-answers [--filter FILE] ABI:NUMBER... */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static long call_i386(unsigned long number) {
    long result;
    __asm__ volatile("int $0x80" : "=a"(result) : "a"(number), "b"(0), "c"(0), "d"(0), "S"(0), "D"(0) : "memory");
    return result;
}

static int load_filter(const char *path) {
    static struct sock_filter program[BPF_MAXINSNS];
    FILE *file = fopen(path, "rb");
    if (!file) { perror(path); return -1; }
    size_t count = fread(program, sizeof(program[0]), BPF_MAXINSNS, file);
    fclose(file);
    struct sock_fprog filter = {.len = (unsigned short)count, .filter = program};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter) != 0) {
        perror("seccomp");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--filter") == 0) {
        if (load_filter(argv[2]) != 0) return 2;
        first = 3;
    }
    for (int i = first; i < argc; i++) {
        char *colon = strchr(argv[i], ':');
        if (!colon) return 2;
        unsigned long number = strtoul(colon + 1, NULL, 0);
        long error;
        if (strncmp(argv[i], "32:", 3) == 0) {
            long result = call_i386(number);
            error = result < 0 && result > -4096 ? -result : 0;
        } else {
            if (strncmp(argv[i], "x32:", 4) == 0) number |= 0x40000000UL;
            error = syscall((long)number, 0, 0, 0, 0, 0, 0) < 0 ? errno : 0;
        }
        printf("%s %ld\n", argv[i], error);
    }
    return 0;
}
