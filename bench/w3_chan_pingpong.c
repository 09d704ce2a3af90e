/* W3 (DESIGN.md §7): ping-pong an int over two capacity-1 channels, one
 * worker; N round trips (argv[1], default 1,000,000), best of 3.
 * Prints: peer=crt workload=W3 metric=ns_per_roundtrip value=... unit=ns */
#define CRT_IMPLEMENTATION
#define CRT_ONLY_CHAN
#include "crt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pingpong {
    crt_chan *ping, *pong;
    long n;
    double best_ns;
    int failed;
} pingpong;

static double mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* B: echoes every value back until ping is closed. */
static void *echo(void *arg) {
    pingpong *p = (pingpong *)arg;
    int v;
    while (crt_chan_recv(p->ping, &v, CRT_FOREVER) == 0)
        if (crt_chan_send(p->pong, &v, CRT_FOREVER) != 0) break;
    return NULL;
}

static void *bench(void *arg) {
    pingpong *p = (pingpong *)arg;
    p->best_ns = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        p->ping = crt_chan_new(sizeof(int), 1);
        p->pong = crt_chan_new(sizeof(int), 1);
        if (!p->ping || !p->pong) {
            p->failed = 1;
            return NULL;
        }
        crt_task *t = crt_spawn(echo, p);
        if (!t) {
            p->failed = 1;
            return NULL;
        }
        double t0 = mono_ns();
        for (long i = 0; i < p->n; i++) {
            int v = (int)i, w = -1;
            if (crt_chan_send(p->ping, &v, CRT_FOREVER) != 0 || crt_chan_recv(p->pong, &w, CRT_FOREVER) != 0 ||
                w != v) {
                p->failed = 1;
                break;
            }
        }
        double dt = mono_ns() - t0;
        crt_chan_close(p->ping);
        crt_join(t, NULL, CRT_FOREVER);
        crt_chan_free(p->ping);
        crt_chan_free(p->pong);
        if (p->failed) return NULL;
        if (dt / (double)p->n < p->best_ns) p->best_ns = dt / (double)p->n;
    }
    return NULL;
}

int main(int argc, char **argv) {
    pingpong p;
    memset(&p, 0, sizeof p);
    p.n = argc > 1 ? atol(argv[1]) : 1000000;
    if (p.n <= 0) p.n = 1;
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 1;
    int rc = crt_run(&cfg, bench, &p, NULL);
    if (rc != 0 || p.failed) {
        fprintf(stderr, "w3_chan_pingpong: failed (%s)\n", rc ? crt_strerror(rc) : "wrong value");
        return 1;
    }
    printf("peer=crt workload=W3 metric=ns_per_roundtrip value=%.1f unit=ns\n", p.best_ns);
    return 0;
}
