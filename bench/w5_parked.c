/* W5 (DESIGN.md §7): N tasks each fill a 128-byte local array, then park
 * on one crt_notify; bytes per task = (VmRSS once all are parked - VmRSS
 * before spawning) / N. Then notify_all, join all and check the checksum
 * (the Go peer's workload: sum over tasks of sum_j (id + j)). 2 workers.
 * Memory is measured once, not best of 3: a second round would reuse it.
 *
 *   w5_parked [N]       N defaults to 100,000
 */
#define CRT_IMPLEMENTATION
#include "crt.h"
#include "bench.h"
#include <string.h>

static crt_notify release_all = CRT_NOTIFY_INIT;
static uint64_t parked;  /* atomic */
static uint64_t total;   /* atomic */
static long ntasks;

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

static void *parker(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    uint64_t buf[16]; /* 128 bytes of stack, live across the park */
    for (int j = 0; j < 16; j++) buf[j] = id + (uint64_t)j;
    __asm__ __volatile__("" : : "r"(buf) : "memory"); /* keep it in memory */
    __atomic_add_fetch(&parked, 1, __ATOMIC_RELEASE);
    if (crt_notify_wait(&release_all, CRT_FOREVER) != 0) BENCH_FAIL("w5_parked: wait failed");
    __asm__ __volatile__("" : : "r"(buf) : "memory");
    uint64_t s = 0;
    for (int j = 0; j < 16; j++) s += buf[j];
    __atomic_add_fetch(&total, s, __ATOMIC_RELAXED);
    return NULL;
}

static void *run(void *arg) {
    double *per_task = (double *)arg;
    crt_task **t = (crt_task **)malloc((size_t)ntasks * sizeof *t);
    if (!t) BENCH_FAIL("w5_parked: out of memory");
    memset(t, 0, (size_t)ntasks * sizeof *t); /* touched before measuring */
    long before = rss_bytes();
    for (long i = 0; i < ntasks; i++)
        if (!(t[i] = crt_spawn(parker, (void *)(uintptr_t)i))) BENCH_FAIL("w5_parked: spawn failed");
    while (__atomic_load_n(&parked, __ATOMIC_ACQUIRE) < (uint64_t)ntasks) crt_sleep(CRT_MS(1));
    crt_sleep(CRT_MS(20)); /* the last ones finish parking */
    long after = rss_bytes();
    crt_notify_all(&release_all);
    for (long i = 0; i < ntasks; i++)
        if (crt_join(t[i], NULL, CRT_FOREVER) != 0) BENCH_FAIL("w5_parked: join failed");
    uint64_t n = (uint64_t)ntasks;
    uint64_t want = 16 * n * (n - 1) / 2 + n * 120;
    if (__atomic_load_n(&total, __ATOMIC_RELAXED) != want)
        BENCH_FAIL("w5_parked: total %llu, want %llu", (unsigned long long)total, (unsigned long long)want);
    free(t);
    *per_task = (double)(after - before) / (double)ntasks;
    return NULL;
}

int main(int argc, char **argv) {
    ntasks = bench_count(argc, argv, 100000);
    if (ntasks <= 0) return 2;
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    double per_task = 0;
    if (crt_run(&cfg, run, &per_task, NULL) != 0) BENCH_FAIL("w5_parked: crt_run failed");
    bench_report("W5", "bytes_per_task", per_task, "bytes");
    return 0;
}
