/* notify-probe: sends sd_notify datagrams to $NOTIFY_SOCKET, for the tests of the notify relay.
 * Usage: notify-probe [--flood N] [--big BYTES] [--sleep MS] MESSAGE
 *   --flood N    send MESSAGE N times
 *   --big BYTES  send one datagram of BYTES bytes instead
 *   --sleep MS   wait before exiting, so the receiver reads before this process ends */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long flood = 1, big = 0, sleep_ms = 0;
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (!strcmp(argv[i], "--flood")) flood = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--big")) big = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--sleep")) sleep_ms = atol(argv[i + 1]);
    }
    const char *message = i < argc ? argv[i] : "READY=1";
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path) { fprintf(stderr, "no NOTIFY_SOCKET\n"); return 2; }
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strncpy(a.sun_path, path, sizeof(a.sun_path) - 1);
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (big > 0) {
        char *buffer = malloc((size_t)big);
        memset(buffer, 'x', (size_t)big);
        memcpy(buffer, "STATUS=", 7);
        sendto(s, buffer, (size_t)big, MSG_DONTWAIT, (struct sockaddr *)&a, sizeof(a));
        free(buffer);
    } else {
        /* A flood must not wait for the reader; a single message does, as sd_notify(3) does. */
        int flags = flood > 1 ? MSG_DONTWAIT : 0;
        for (long n = 0; n < flood; n++) sendto(s, message, strlen(message), flags, (struct sockaddr *)&a, sizeof(a));
    }
    close(s);
    if (sleep_ms) usleep((useconds_t)sleep_ms * 1000);
    return 0;
}
