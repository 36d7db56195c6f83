/* The C reference for `ipclab bench ipc --mechanisms pipe,unix`
 * (scripts/compare-peers.sh): two processes (fork), one byte string of SIZE
 * bytes sent and echoed back, measured as ipclab measures it: a warm-up,
 * then batches of 100 round trips timed with CLOCK_MONOTONIC, the median
 * over the batches. `pipe` is two pipes; `socketpair` is an AF_UNIX
 * SOCK_STREAM pair (ipclab's `unix`). At most TRIPS round trips and about
 * 2 s of batches. Prints the median µs per round trip.
 * Usage: pingpong pipe|socketpair SIZE TRIPS */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH 100

static void full(int fd, char *b, size_t n, int wr) {
    size_t off = 0;
    while (off < n) {
        ssize_t r = wr ? write(fd, b + off, n - off) : read(fd, b + off, n - off);
        if (r <= 0) {
            if (!wr && r == 0 && off == 0) _exit(0); /* the parent closed: done */
            perror(wr ? "write" : "read");
            exit(1);
        }
        off += (size_t)r;
    }
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[1], "pipe") && strcmp(argv[1], "socketpair"))) {
        fprintf(stderr, "usage: %s pipe|socketpair SIZE TRIPS\n", argv[0]);
        return 2;
    }
    size_t size = strtoul(argv[2], NULL, 10);
    long trips = strtol(argv[3], NULL, 10);
    if (size < 1 || size > 65536 || trips < BATCH) {
        fprintf(stderr, "SIZE 1..65536, TRIPS >= %d\n", BATCH);
        return 2;
    }
    int pw, pr, cw, cr; /* parent writes pw, reads pr; child reads cr, writes cw */
    if (!strcmp(argv[1], "pipe")) {
        int down[2], up[2];
        if (pipe2(down, O_CLOEXEC) || pipe2(up, O_CLOEXEC)) return perror("pipe2"), 1;
        pw = down[1], cr = down[0], cw = up[1], pr = up[0];
    } else {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return perror("socketpair"), 1;
        pw = pr = sv[0], cw = cr = sv[1];
    }
    char *buf = malloc(size), *back = malloc(size);
    memset(buf, 'x', size);
    pid_t pid = fork();
    if (pid < 0) return perror("fork"), 1;
    if (pid == 0) {
        close(pw);
        if (pr != pw) close(pr);
        for (;;) {
            full(cr, back, size, 0);
            full(cw, back, size, 1);
        }
    }
    close(cr);
    if (cw != cr) close(cw);
    for (int i = 0; i < 2000; i++) { /* warm-up */
        full(pw, buf, size, 1);
        full(pr, back, size, 0);
    }
    long nb = trips / BATCH, k = 0;
    double *us = malloc(nb * sizeof *us), end = now() + 2.0;
    for (; k < nb && now() < end; k++) {
        double t = now();
        for (int i = 0; i < BATCH; i++) {
            full(pw, buf, size, 1);
            full(pr, back, size, 0);
        }
        us[k] = (now() - t) * 1e6 / BATCH;
    }
    close(pw);
    if (pr != pw) close(pr);
    waitpid(pid, NULL, 0);
    qsort(us, k, sizeof *us, cmp);
    printf("%.3f\n", k % 2 ? us[k / 2] : (us[k / 2 - 1] + us[k / 2]) / 2);
    return 0;
}
