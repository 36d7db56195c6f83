/* The ONC RPC server for lmbench-style NULL calls (scripts/compare-peers.sh):
 * rpcgen's dispatcher (rpcgen -m nullrpc.x) on one UDP and one TCP socket
 * bound to 127.0.0.1 only, registered with the system rpcbind; SIGTERM or
 * SIGINT unregisters and ends it. Usage: nullrpc_server */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <rpc/pmap_clnt.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include "nullrpc.h"

void nullrpc_prog_1(struct svc_req *, SVCXPRT *);

int *ping_1_svc(void *arg, struct svc_req *req) {
    static int one = 1;
    (void)arg, (void)req;
    return &one;
}

int nullrpc_prog_1_freeresult(SVCXPRT *t, xdrproc_t x, caddr_t r) {
    (void)t, (void)x, (void)r;
    return 1;
}

static void bye(int sig) {
    (void)sig;
    pmap_unset(NULLRPC_PROG, NULLRPC_VERS);
    _exit(0);
}

static int bound(int type) {
    int s = socket(AF_INET, type, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* libtirpc listens only on sockets it binds itself: listen here */
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        (type == SOCK_STREAM && listen(s, 64) < 0)) {
        perror("socket/bind/listen");
        _exit(1);
    }
    return s;
}

int main(void) {
    SVCXPRT *u = svcudp_create(bound(SOCK_DGRAM));
    SVCXPRT *t = svctcp_create(bound(SOCK_STREAM), 0, 0);
    if (!u || !t) {
        fprintf(stderr, "nullrpc_server: cannot create transports\n");
        return 1;
    }
    pmap_unset(NULLRPC_PROG, NULLRPC_VERS);
    signal(SIGTERM, bye);
    signal(SIGINT, bye);
    if (!svc_register(u, NULLRPC_PROG, NULLRPC_VERS, nullrpc_prog_1, IPPROTO_UDP) ||
        !svc_register(t, NULLRPC_PROG, NULLRPC_VERS, nullrpc_prog_1, IPPROTO_TCP)) {
        fprintf(stderr, "nullrpc_server: cannot register with rpcbind\n");
        pmap_unset(NULLRPC_PROG, NULLRPC_VERS);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    svc_run();
    pmap_unset(NULLRPC_PROG, NULLRPC_VERS);
    return 1;
}
