/* Uncontended crt_sem: one task takes and returns one permit N times
 * (the one-atomic fast path each way); ns per acquire + release pair,
 * best of 3. One worker. (pthread's sem_wait/sem_post pair goes to stderr
 * for context.)
 *
 *   sem_bench [N]       N defaults to 10,000,000
 */
#define CRT_IMPLEMENTATION
#include "crt.h"
#include "bench.h"
#include <semaphore.h>
#include <string.h>

static long iters;

static void *run(void *arg) {
    double *best = (double *)arg;
    crt_sem s;
    crt_sem_init(&s, 1);
    for (int rep = 0; rep < 3; rep++) {
        double t0 = bench_now_ns();
        for (long i = 0; i < iters; i++) {
            if (crt_sem_acquire(&s, 1, CRT_FOREVER) != 0) BENCH_FAIL("sem_bench: acquire failed");
            crt_sem_release(&s, 1);
        }
        double ns = (bench_now_ns() - t0) / (double)iters;
        if (ns < *best) *best = ns;
    }
    if (crt_sem_available(&s) != 1) BENCH_FAIL("sem_bench: %zu permits left, want 1", crt_sem_available(&s));
    crt_sem_destroy(&s);
    return NULL;
}

int main(int argc, char **argv) {
    iters = bench_count(argc, argv, 10000000);
    if (iters <= 0) return 2;
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 1;
    double best = 1e300;
    if (crt_run(&cfg, run, &best, NULL) != 0) BENCH_FAIL("sem_bench: crt_run failed");
    bench_report("SEM", "ns_per_acquire_release", best, "ns");
    sem_t ps;
    sem_init(&ps, 0, 1);
    double pbest = 1e300;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = bench_now_ns();
        for (long i = 0; i < iters; i++) {
            sem_wait(&ps);
            sem_post(&ps);
        }
        double ns = (bench_now_ns() - t0) / (double)iters;
        if (ns < pbest) pbest = ns;
    }
    sem_destroy(&ps);
    fprintf(stderr, "# for context: sem_wait + sem_post %.3f ns\n", pbest);
    return 0;
}
