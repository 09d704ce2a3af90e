/* W1: two tasks yield to each other N times each on one thread.
 * ns_per_switch = time / (2N), best of 3. */
#define CRT_IMPLEMENTATION
#include "crt.h"
#include "bench.h"

static long n;

static void *yielder(void *arg) {
    for (long i = 0; i < n; i++) crt_yield();
    return arg;
}

static void *run(void *arg) {
    double *best = (double *)arg;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = bench_now_ns();
        crt_task *a = crt_spawn(yielder, NULL), *b = crt_spawn(yielder, NULL);
        crt_join(a, NULL, CRT_FOREVER);
        crt_join(b, NULL, CRT_FOREVER);
        double ns = (bench_now_ns() - t0) / (2.0 * (double)n);
        if (ns < *best) *best = ns;
    }
    return NULL;
}

int main(int argc, char **argv) {
    n = bench_count(argc, argv, 5000000);
    double best = 1e30;
    crt_config cfg = {0};
    cfg.workers = 1;
    if (crt_run(&cfg, run, &best, NULL) != 0) BENCH_FAIL("W1: crt_run failed");
    bench_report("W1", "ns_per_switch", best, "ns");
    return 0;
}
