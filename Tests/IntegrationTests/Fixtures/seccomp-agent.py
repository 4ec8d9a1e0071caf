#!/usr/bin/python3
"""A seccomp agent for the tests (runtime-spec config-linux.md, "seccomp"): it listens at SOCKET,
takes from each connection the container process state and the listener that comes with it, and
answers every call it is asked about with errno ERRNO. It writes one JSON line per event to LOG:
{"state": ..., "fds": N} per connection, {"notified": NR, "pid": PID} per call. It ends after
SECONDS, or at SIGTERM."""
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import time

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif), 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp), 24 bytes


def main():
    # The test runner's threads block most signals, and the mask is inherited: SIGTERM must end us.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    path, log_path, errno, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    log = open(log_path, "a", buffering=1)
    poller = select.poll()
    poller.register(server.fileno(), select.POLLIN)
    listeners = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for fd, events in poller.poll(100):
            if fd == server.fileno():
                connection, _ = server.accept()
                message, fds, _, _ = socket.recv_fds(connection, 65536, 4)
                connection.close()
                log.write(json.dumps({"state": json.loads(message), "fds": len(fds)}) + "\n")
                for listener in fds:
                    listeners[listener] = True
                    poller.register(listener, select.POLLIN)
            elif events & select.POLLIN:
                notification = bytearray(80)
                try:
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, notification)
                except OSError:
                    continue  # the caller went away meanwhile
                ident, pid, _, nr = struct.unpack_from("<QIIi", notification)
                log.write(json.dumps({"notified": nr, "pid": pid}) + "\n")
                try:
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, bytearray(struct.pack("<QqiI", ident, 0, -errno, 0)))
                except OSError:
                    pass
            else:
                # Every process the filter held is gone.
                poller.unregister(fd)
                os.close(fd)
                del listeners[fd]
    os.unlink(path)


if __name__ == "__main__":
    main()
