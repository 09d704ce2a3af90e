/* W4 (DESIGN.md §7): 4 producer tasks send M ints in all (M/4 each; M is
 * argv[1], default 2,000,000) into one channel of capacity 1024; one
 * consumer task sums them and checks the sum; 2 workers; best of 3.
 * Prints: peer=crt workload=W4 metric=msgs_per_sec value=... unit=msgs_per_s */
#define CRT_IMPLEMENTATION
#define CRT_ONLY_CHAN
#include "crt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PRODUCERS 4

typedef struct mpsc {
    crt_chan *c;
    long per_producer;
    long long sum;
    double best_rate;
    int failed;
} mpsc;

static double mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *producer(void *arg) {
    mpsc *m = (mpsc *)arg;
    for (long i = 1; i <= m->per_producer; i++) {
        int v = (int)i;
        if (crt_chan_send(m->c, &v, CRT_FOREVER) != 0) return (void *)1;
    }
    return NULL;
}

static void *consumer(void *arg) {
    mpsc *m = (mpsc *)arg;
    long long sum = 0;
    long total = PRODUCERS * m->per_producer;
    for (long i = 0; i < total; i++) {
        int v;
        if (crt_chan_recv(m->c, &v, CRT_FOREVER) != 0) return (void *)1;
        sum += v;
    }
    m->sum = sum;
    return NULL;
}

static void *bench(void *arg) {
    mpsc *m = (mpsc *)arg;
    long long expect = (long long)PRODUCERS * m->per_producer * (m->per_producer + 1) / 2;
    for (int rep = 0; rep < 3; rep++) {
        m->c = crt_chan_new(sizeof(int), 1024);
        if (!m->c) {
            m->failed = 1;
            return NULL;
        }
        double t0 = mono_ns();
        crt_task *tasks[PRODUCERS + 1];
        tasks[0] = crt_spawn(consumer, m);
        for (int i = 0; i < PRODUCERS; i++) tasks[i + 1] = crt_spawn(producer, m);
        for (int i = 0; i <= PRODUCERS; i++) {
            void *res = (void *)1;
            if (!tasks[i] || crt_join(tasks[i], &res, CRT_FOREVER) != 0 || res != NULL) m->failed = 1;
        }
        double dt = mono_ns() - t0;
        crt_chan_free(m->c);
        if (m->failed || m->sum != expect) {
            m->failed = 1;
            return NULL;
        }
        double rate = (double)(PRODUCERS * m->per_producer) / (dt / 1e9);
        if (rate > m->best_rate) m->best_rate = rate;
    }
    return NULL;
}

int main(int argc, char **argv) {
    mpsc m;
    memset(&m, 0, sizeof m);
    long total = argc > 1 ? atol(argv[1]) : 2000000;
    m.per_producer = total / PRODUCERS > 0 ? total / PRODUCERS : 1;
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    int rc = crt_run(&cfg, bench, &m, NULL);
    if (rc != 0 || m.failed) {
        fprintf(stderr, "w4_mpsc: failed (%s)\n", rc ? crt_strerror(rc) : "wrong sum");
        return 1;
    }
    printf("peer=crt workload=W4 metric=msgs_per_sec value=%.0f unit=msgs_per_s\n", m.best_rate);
    return 0;
}
