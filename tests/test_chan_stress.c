/* tests/test_chan_stress.c — many producers and consumers on one channel,
 * tasks on 2 workers and plain threads (blocking-pool jobs) mixed:
 * 8 producers x 1,000,000 tagged values, 3 consumers. Checks that every
 * value arrives exactly once and that each consumer sees each producer's
 * values in order. A second phase does the same through crt_select over
 * two channels (exactly once). CRT_TEST_SHORT=1 scales it down 20x; the
 * capacities come from the seed (printed, CRT_TEST_SEED replays it). */
#define CRT_IMPLEMENTATION
#include "check.h"

#define PRODUCERS 8
#define CONSUMERS 3

typedef struct stress {
    crt_chan *c[2];
    int use_select;
    uint32_t per;          /* values per producer */
    unsigned char *seen;   /* atomic bytes, one per value */
    long received;         /* atomic */
} stress;

typedef struct prod_arg {
    stress *s;
    uint32_t id;
} prod_arg;

static void *producer(void *arg) {
    prod_arg *a = (prod_arg *)arg;
    stress *s = a->s;
    for (uint32_t i = 0; i < s->per; i++) {
        uint64_t v = ((uint64_t)a->id << 32) | i;
        if (!s->use_select) {
            CHECK_EQ(crt_chan_send(s->c[0], &v, CRT_FOREVER), 0);
            continue;
        }
        crt_case cs[2];
        cs[0] = CRT_CASE_SEND(s->c[0], &v);
        cs[1] = CRT_CASE_SEND(s->c[1], &v);
        int r = crt_select(cs, 2, 0, CRT_FOREVER);
        CHECK(r == 0 || r == 1);
        CHECK_EQ(cs[r].result, 0);
    }
    return NULL;
}

static void take(stress *s, uint64_t v, int64_t *last) {
    uint32_t p = (uint32_t)(v >> 32), i = (uint32_t)v;
    CHECK(p < PRODUCERS && i < s->per);
    if (last) {
        CHECK((int64_t)i > last[p]); /* this consumer sees producer p in order */
        last[p] = i;
    }
    CHECK_EQ(__atomic_exchange_n(&s->seen[(size_t)p * s->per + i], 1, __ATOMIC_RELAXED), 0);
    __atomic_add_fetch(&s->received, 1, __ATOMIC_RELAXED);
}

static void *consumer(void *arg) {
    stress *s = (stress *)arg;
    int64_t last[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) last[p] = -1;
    uint64_t v;
    if (!s->use_select) {
        int r;
        while ((r = crt_chan_recv(s->c[0], &v, CRT_FOREVER)) == 0) take(s, v, last);
        CHECK_EQ(r, -EPIPE);
        return NULL;
    }
    int open[2] = {1, 1};
    uint64_t vals[2];
    while (open[0] || open[1]) {
        crt_case cs[2];
        int idx[2], n = 0;
        for (int k = 0; k < 2; k++) {
            if (!open[k]) continue;
            cs[n] = CRT_CASE_RECV(s->c[k], &vals[k]);
            idx[n++] = k;
        }
        int r = crt_select(cs, (size_t)n, 0, CRT_FOREVER);
        CHECK(r >= 0 && r < n);
        if (cs[r].result == -EPIPE) {
            open[idx[r]] = 0;
            continue;
        }
        CHECK_EQ(cs[r].result, 0);
        take(s, vals[idx[r]], NULL); /* two channels: no order across them */
    }
    return NULL;
}

static void *run_phase(void *arg) {
    stress *s = (stress *)arg;
    prod_arg pa[PRODUCERS];
    crt_task *prod[PRODUCERS], *cons[CONSUMERS];
    /* The last producer and the last consumer are plain threads. */
    for (int i = 0; i < CONSUMERS; i++)
        cons[i] = i == CONSUMERS - 1 ? crt_spawn_blocking(consumer, s) : crt_spawn(consumer, s);
    for (int i = 0; i < PRODUCERS; i++) {
        pa[i].s = s;
        pa[i].id = (uint32_t)i;
        prod[i] = i == PRODUCERS - 1 ? crt_spawn_blocking(producer, &pa[i]) : crt_spawn(producer, &pa[i]);
    }
    for (int i = 0; i < CONSUMERS; i++) CHECK(cons[i] != NULL);
    for (int i = 0; i < PRODUCERS; i++) CHECK(prod[i] != NULL);
    for (int i = 0; i < PRODUCERS; i++) CHECK_EQ(crt_join(prod[i], NULL, CRT_FOREVER), 0);
    crt_chan_close(s->c[0]);
    crt_chan_close(s->c[1]);
    for (int i = 0; i < CONSUMERS; i++) CHECK_EQ(crt_join(cons[i], NULL, CRT_FOREVER), 0);
    return NULL;
}

static void phase(int use_select, uint32_t per, size_t cap) {
    stress s;
    memset(&s, 0, sizeof s);
    s.use_select = use_select;
    s.per = per;
    s.c[0] = crt_chan_new(sizeof(uint64_t), cap);
    s.c[1] = crt_chan_new(sizeof(uint64_t), cap);
    s.seen = (unsigned char *)calloc((size_t)PRODUCERS * per, 1);
    CHECK(s.c[0] && s.c[1] && s.seen);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    test_run(2, run_phase, &s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK_EQ(s.received, (long)PRODUCERS * per);
    for (size_t i = 0; i < (size_t)PRODUCERS * per; i++) CHECK_EQ(s.seen[i], 1);
    TEST_LOG("%s: %d x %u values, capacity %zu: %.2f s", use_select ? "select" : "send/recv", PRODUCERS, per, cap,
             (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(s.seen);
    crt_chan_free(s.c[0]);
    crt_chan_free(s.c[1]);
}

int main(void) {
    static const size_t big_caps[] = {3, 7, 64, 1024}, caps[] = {1, 7, 64, 1024};
    uint64_t seed = test_seed();
    uint32_t per = test_short() ? 50000 : 1000000;
    phase(0, per, big_caps[seed % 4]);
    /* Capacity 1 makes nearly every value a hand-off to a parked receiver
     * (and costs ~10x more): a tenth of the values, every run. */
    phase(0, per / 10, 1);
    phase(1, per / 10, caps[(seed / 4) % 4]);
    fprintf(stderr, "test_chan_stress: ok\n");
    return 0;
}
