/* lmbench-style RPC latency (scripts/compare-peers.sh): NULL calls
 * (procedure 0, xdr_void both ways) to nullrpc_server on 127.0.0.1, the
 * port found through rpcbind by clnt_create; a warm-up, then batches of 100
 * calls, at most CALLS calls and about 2 s. Prints the median µs per call
 * over the batches. Usage: nullrpc_client udp|tcp CALLS */
#include <rpc/rpc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "nullrpc.h"

#define BATCH 100

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
    if (argc != 3 || (strcmp(argv[1], "udp") && strcmp(argv[1], "tcp"))) {
        fprintf(stderr, "usage: %s udp|tcp CALLS\n", argv[0]);
        return 2;
    }
    long calls = strtol(argv[2], NULL, 10);
    if (calls < BATCH) return fprintf(stderr, "CALLS >= %d\n", BATCH), 2;
    CLIENT *cl = clnt_create("127.0.0.1", NULLRPC_PROG, NULLRPC_VERS, argv[1]);
    if (!cl) {
        clnt_pcreateerror("nullrpc_client");
        return 1;
    }
    struct timeval tv = {5, 0};
    for (int i = 0; i < 1000; i++) /* warm-up */
        if (clnt_call(cl, NULLPROC, (xdrproc_t)xdr_void, NULL, (xdrproc_t)xdr_void, NULL, tv) != RPC_SUCCESS)
            return clnt_perror(cl, "nullrpc_client"), 1;
    long nb = calls / BATCH, k = 0;
    double *us = malloc(nb * sizeof *us), end = now() + 2.0;
    for (; k < nb && now() < end; k++) {
        double t = now();
        for (int i = 0; i < BATCH; i++)
            if (clnt_call(cl, NULLPROC, (xdrproc_t)xdr_void, NULL, (xdrproc_t)xdr_void, NULL, tv) != RPC_SUCCESS)
                return clnt_perror(cl, "nullrpc_client"), 1;
        us[k] = (now() - t) * 1e6 / BATCH;
    }
    clnt_destroy(cl);
    qsort(us, k, sizeof *us, cmp);
    printf("%.3f\n", k % 2 ? us[k / 2] : (us[k / 2 - 1] + us[k / 2]) / 2);
    return 0;
}
