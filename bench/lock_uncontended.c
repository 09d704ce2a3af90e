/* Uncontended crt_mutex: one task locks and unlocks N times (one
 * compare-and-swap each way, no system call); ns per lock + unlock pair,
 * best of 3. One worker. (pthread_mutex's pair goes to stderr for
 * context.)
 *
 *   lock_uncontended [N]    N defaults to 10,000,000
 */
#define CRT_IMPLEMENTATION
#include "crt.h"
#include "bench.h"
#include <pthread.h>
#include <string.h>

static long iters;
static crt_mutex mu = CRT_MUTEX_INIT;
static long count;

static void *run(void *arg) {
    double *best = (double *)arg;
    for (int rep = 0; rep < 3; rep++) {
        count = 0;
        double t0 = bench_now_ns();
        for (long i = 0; i < iters; i++) {
            if (crt_mutex_lock(&mu, CRT_FOREVER) != 0) BENCH_FAIL("lock_uncontended: lock failed");
            count++;
            crt_mutex_unlock(&mu);
        }
        double ns = (bench_now_ns() - t0) / (double)iters;
        if (count != iters) BENCH_FAIL("lock_uncontended: count %ld, want %ld", count, iters);
        if (ns < *best) *best = ns;
    }
    return NULL;
}

int main(int argc, char **argv) {
    iters = bench_count(argc, argv, 10000000);
    if (iters <= 0) return 2;
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 1;
    double best = 1e300;
    if (crt_run(&cfg, run, &best, NULL) != 0) BENCH_FAIL("lock_uncontended: crt_run failed");
    bench_report("LOCK", "ns_per_lock_unlock", best, "ns");
    pthread_mutex_t pm = PTHREAD_MUTEX_INITIALIZER;
    double pbest = 1e300;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = bench_now_ns();
        for (long i = 0; i < iters; i++) {
            pthread_mutex_lock(&pm);
            count++;
            pthread_mutex_unlock(&pm);
        }
        double ns = (bench_now_ns() - t0) / (double)iters;
        if (ns < pbest) pbest = ns;
    }
    fprintf(stderr, "# for context: pthread_mutex lock + unlock %.3f ns\n", pbest);
    return 0;
}
