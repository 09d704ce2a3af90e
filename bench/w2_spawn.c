/* W2: spawn N tasks that each bump an atomic, then join them all; on 1 and
 * on 2 workers. ns_per_task, best of 3 repetitions in one runtime. */
#define CRT_IMPLEMENTATION
#include "crt.h"
#include "bench.h"

static long n;
static long counter;
static crt_task **handles;

static void *bump(void *arg) {
    __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    return arg;
}

static void *one_rep(void *arg) {
    double *ns = (double *)arg;
    counter = 0;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) handles[i] = crt_spawn(bump, NULL);
    for (long i = 0; i < n; i++) crt_join(handles[i], NULL, CRT_FOREVER);
    *ns = (bench_now_ns() - t0) / (double)n;
    if (counter != n) BENCH_FAIL("W2: counter %ld, expected %ld", counter, n);
    return NULL;
}

static void measure(int workers, const char *metric) {
    crt_config cfg = {0};
    cfg.workers = workers;
    crt_runtime *rt = crt_runtime_new(&cfg);
    if (!rt) BENCH_FAIL("W2: crt_runtime_new failed");
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double ns = 0;
        if (crt_runtime_block_on(rt, one_rep, &ns, NULL) != 0) BENCH_FAIL("W2: block_on failed");
        if (ns < best) best = ns;
    }
    crt_runtime_shutdown(rt, CRT_FOREVER);
    crt_runtime_free(rt);
    bench_report("W2", metric, best, "ns_per_task");
}

int main(int argc, char **argv) {
    n = bench_count(argc, argv, 1000000);
    handles = (crt_task **)malloc((size_t)n * sizeof *handles);
    if (!handles) BENCH_FAIL("W2: no memory");
    measure(1, "spawn_join_1t");
    measure(2, "spawn_join_2t");
    free(handles);
    return 0;
}
