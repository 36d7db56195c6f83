/* A minimal fork-per-connection echo server: the C reference ipclab's fork
 * model is measured against (scripts/compare-peers.sh). Blocking sockets,
 * one child per connection, read then write until EOF; children are reaped
 * by the kernel (SIGCHLD ignored). Usage: echo_fork PORT (127.0.0.1). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGCHLD, SIG_IGN);
    int lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lst, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lst, (struct sockaddr *)&a, sizeof a) < 0 || listen(lst, 128) < 0) {
        perror("bind/listen");
        return 1;
    }
    for (;;) {
        int c = accept(lst, NULL, NULL);
        if (c < 0) continue;
        if (fork() == 0) {
            close(lst);
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            char buf[4096];
            ssize_t r;
            while ((r = read(c, buf, sizeof buf)) > 0) {
                ssize_t off = 0;
                while (off < r) {
                    ssize_t w = write(c, buf + off, r - off);
                    if (w <= 0) _exit(0);
                    off += w;
                }
            }
            _exit(0);
        }
        close(c);
    }
}
