/* W0: the raw context switch between two coroutines, no scheduler.
 * Prints ns_per_switch (or ns_per_switch_fp when built with
 * CRT_FP_CONTROL: bench/switch_fp.c), best of 3 repetitions. */
#ifndef CRT_IMPLEMENTATION
#define CRT_IMPLEMENTATION
#endif
#define CRT_ONLY_SELECT
#include "crt.h"
#include "bench.h"

static crt__ctx main_ctx, co_ctx;
static volatile long co_count;

static void co_entry(void *arg) {
    (void)arg;
    crt__ctx_entered();
    for (;;) {
        co_count++;
        crt__ctx_switch(&co_ctx, &main_ctx, 0);
    }
}

int main(int argc, char **argv) {
    long n = bench_count(argc, argv, 20000000);
    crt__stack_pool pool;
    crt__stack_cache cache = {NULL, 0, NULL};
    crt__stack_pool_init(&pool, crt__stack_slot_size(0));
    crt__stack *st = crt__stack_alloc(&pool, &cache);
    if (!st) BENCH_FAIL("no stack");
    crt__ctx_init_thread(&main_ctx, NULL, 0);
    crt__ctx_init(&co_ctx, st->lo, st->size);
    crt__ctx_make(&co_ctx, st->lo, st->size, co_entry, NULL);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        co_count = 0;
        double t0 = bench_now_ns();
        for (long i = 0; i < n; i++) crt__ctx_switch(&main_ctx, &co_ctx, 0);
        double ns = (bench_now_ns() - t0) / (2.0 * (double)n);
        if (co_count != n) BENCH_FAIL("W0: %ld round trips, expected %ld", co_count, n);
        if (ns < best) best = ns;
    }
#ifdef CRT_FP_CONTROL
    bench_report("W0", "ns_per_switch_fp", best, "ns");
#else
    bench_report("W0", "ns_per_switch", best, "ns");
#endif
    return 0;
}
