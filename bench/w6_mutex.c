/* W6 (DESIGN.md §7): 1,000 tasks each do N lock/increment/unlock on one
 * crt_mutex, 2 workers; ns per lock = wall time / (1,000 N), best of 3.
 *
 *   w6_mutex [N]        N defaults to 1,000
 */
#define CRT_IMPLEMENTATION
#include "crt.h"
#include "bench.h"
#include <string.h>

#define TASKS 1000

static crt_mutex mu = CRT_MUTEX_INIT;
static long count;
static long iters;

static void *worker(void *arg) {
    (void)arg;
    for (long i = 0; i < iters; i++) {
        if (crt_mutex_lock(&mu, CRT_FOREVER) != 0) BENCH_FAIL("w6_mutex: lock failed");
        count++;
        crt_mutex_unlock(&mu);
    }
    return NULL;
}

static void *run(void *arg) {
    double *best = (double *)arg;
    static crt_task *tasks[TASKS];
    for (int rep = 0; rep < 3; rep++) {
        count = 0;
        double t0 = bench_now_ns();
        for (int i = 0; i < TASKS; i++) {
            tasks[i] = crt_spawn(worker, NULL);
            if (!tasks[i]) BENCH_FAIL("w6_mutex: spawn failed");
        }
        for (int i = 0; i < TASKS; i++)
            if (crt_join(tasks[i], NULL, CRT_FOREVER) != 0) BENCH_FAIL("w6_mutex: join failed");
        double el = bench_now_ns() - t0;
        if (count != TASKS * iters) BENCH_FAIL("w6_mutex: count %ld, want %ld", count, TASKS * iters);
        if (el < *best) *best = el;
    }
    return NULL;
}

int main(int argc, char **argv) {
    iters = bench_count(argc, argv, 1000);
    if (iters <= 0) return 2;
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    double best = 1e300;
    if (crt_run(&cfg, run, &best, NULL) != 0) BENCH_FAIL("w6_mutex: crt_run failed");
    bench_report("W6", "ns_per_lock", best / ((double)TASKS * (double)iters), "ns");
    return 0;
}
