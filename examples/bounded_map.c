/* examples/bounded_map.c — process a list with at most K operations in
 * flight, and collect the results as they come (buffer_unordered).
 *
 * The pattern: you have a long list (URLs to fetch, files to hash, rows to
 * enrich) and an operation that mostly waits. One task per item at once
 * would flood the other side and hold memory for every item; one at a time
 * would take for ever. So keep exactly K in flight: spawn K into a
 * crt_group, and each time crt_group_next hands back a finished one, spawn
 * the next item. Results arrive in completion order; each carries its
 * index, so they can be put back in input order if needed.
 *
 *   tokio: futures::stream::iter(items).map(op).buffer_unordered(K).collect()
 *   Go:    errgroup.Group with SetLimit(K), results written by index
 *
 * Unlike agent_pool.c (all tasks exist, a semaphore lets K work), here at
 * most K tasks exist at any time, so a list of a million items costs K
 * stacks, not a million.
 *
 * One item fails (as real calls do): its error travels with its result and
 * the others go on. The whole map has a deadline; if it passes,
 * crt_group_destroy cancels what is still in flight. An atomic counter
 * inside the operation proves that no more than K ran at once. Exit status
 * 1 if it exceeded K, a result was wrong or missing, or the failure was not
 * reported.
 *
 * CRT_EXAMPLE_SHORT=1 (as `meson test` runs it): 40 items of 5-20 ms each;
 * otherwise 100 items of 50-200 ms.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { K = 4, MAX_ITEMS = 100, FAILING_ITEM = 13 };

typedef struct item {
    int index;
    int input;
    long output;
    int err;        /* 0, or the operation's negative errno */
} item;

static atomic_int running, peak;
static crt_time unit; /* latency scale: 1 ms in short mode, 10 ms otherwise */

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

/* >>the operation: a remote call, mostly waiting */
static void *fetch(void *arg) {
    item *it = (item *)arg;
    int now = atomic_fetch_add(&running, 1) + 1, p = atomic_load(&peak);
    while (now > p && !atomic_compare_exchange_weak(&peak, &p, now)) {
    }
    int rc = crt_sleep(unit * (5 + (it->input * 7919) % 16)); /* 5..20 units, varying */
    if (rc == 0 && it->index == FAILING_ITEM) rc = -ECONNRESET; /* the flaky one */
    if (rc == 0) it->output = (long)it->input * it->input;
    it->err = rc;
    atomic_fetch_sub(&running, 1);
    return it;
}

/* >>the combinator: fn over items[0..n), at most k at once.
 * Calls on_result for each finished item, in completion order.
 * Returns 0, -ETIMEDOUT (the deadline passed: what was in flight is
 * cancelled), -ECANCELED, or a spawn error. */
static int map_bounded(item *items, int n, int k, crt_fn fn, void (*on_result)(item *), crt_time deadline) {
    crt_group g;
    crt_group_init(&g);
    int next = 0, done = 0, rc = 0;
    while (done < n) {
        for (; next < n && next - done < k; next++) { /* top up to k in flight */
            if (!crt_group_spawn(&g, fn, &items[next])) {
                rc = -errno;
                goto out;
            }
        }
        void *res;
        rc = crt_group_next(&g, &res, deadline);
        if (rc < 0) goto out;
        done++;
        on_result((item *)res);
    }
out:
    crt_group_destroy(&g); /* on error: cancels and waits for those in flight */
    return rc;
}

/* >>using it */
static int arrived, out_of_order, first_out_of_order = -1, last_index = -1;

static void on_result(item *it) {
    arrived++;
    if (it->index < last_index && first_out_of_order < 0) first_out_of_order = it->index;
    if (it->index < last_index) out_of_order++;
    last_index = it->index;
    if (it->err < 0) printf("item %d failed: %s (the others go on)\n", it->index, crt_strerror(it->err));
}

static void *main_task(void *arg) {
    (void)arg;
    int n = short_mode() ? 40 : MAX_ITEMS;
    unit = short_mode() ? CRT_MS(1) : CRT_MS(10);
    item items[MAX_ITEMS];
    for (int i = 0; i < n; i++) items[i] = (item){.index = i, .input = i + 1};

    crt_time start = crt_now();
    int rc = map_bounded(items, n, K, fetch, on_result, crt_after(CRT_SEC(60)));
    double secs = (double)(crt_now() - start) / 1e9;
    if (rc < 0) fprintf(stderr, "bounded_map: %s\n", crt_strerror(rc));

    int good = 0, wrong = 0;
    for (int i = 0; i < n; i++) { /* collected in input order, by index */
        if (items[i].err == 0 && items[i].output == (long)items[i].input * items[i].input) good++;
        else if (i != FAILING_ITEM) wrong++;
    }
    printf("%d items, at most %d in flight: done in %.2f s; at most %d ran at once\n", n, K, secs,
           atomic_load(&peak));
    printf("results arrived out of input order %d times (item %d first); put back in order by index: %d ok, "
           "1 failed\n", out_of_order, first_out_of_order, good);
    int ok = rc == 0 && arrived == n && wrong == 0 && good == n - 1 && items[FAILING_ITEM].err == -ECONNRESET &&
             atomic_load(&peak) <= K;
    if (!ok) fprintf(stderr, "bounded_map: FAILED: bound exceeded, or results wrong or missing\n");
    return (void *)(intptr_t)(ok ? 0 : 1);
}

int main(void) {
    crt_config cfg = {0};
    cfg.workers = 2;
    void *status = NULL;
    int rc = crt_run(&cfg, main_task, NULL, &status);
    if (rc < 0) {
        fprintf(stderr, "bounded_map: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
