/* bench/bench.h — what the benchmark programs share: a clock, the
 * DESIGN §7 output line, and argv[1] as the count. */
#ifndef CRT_BENCH_H
#define CRT_BENCH_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline void bench_report(const char *workload, const char *metric, double value, const char *unit) {
    printf("peer=crt workload=%s metric=%s value=%.3f unit=%s\n", workload, metric, value, unit);
    fflush(stdout);
}

static inline long bench_count(int argc, char **argv, long fallback) {
    return argc > 1 ? strtol(argv[1], NULL, 10) : fallback;
}

#define BENCH_FAIL(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), exit(1))
#endif
