/* examples/fan_out_fan_in.c — scatter work over N tasks, gather the results
 * as they complete, and stop waiting at a deadline.
 *
 * The pattern: split a query over N shards (or a job over N workers, a
 * request over N replicas), spawn a task per part into a crt_group, and
 * take the results with crt_group_next, which hands them out in the order
 * they finish — so the fast answers are used while the slow ones are still
 * on their way. One deadline bounds the whole gather; crt_group_destroy then
 * cancels whatever has not answered, and you go on with a partial result
 * (or fail, if your application needs all of it).
 *
 *   tokio: a JoinSet, `while let Some(r) = set.join_next().await`, inside tokio::time::timeout
 *   Go:    errgroup / a WaitGroup and a results channel, with a context deadline
 *
 * Use it for scatter-gather queries, parallel downloads, hedged requests,
 * and any "do these N things at once and combine the answers".
 *
 * Here 8 shards each count, in their slice of a data set, the values
 * divisible by 7, then take a shard-specific time to "answer" (network
 * latency); shard 4 is a straggler that would take 5 s, beyond the 1 s
 * deadline. Exit status 1 unless the answers arrive in order of latency,
 * the straggler is cancelled, and the partial count is right.
 *
 * CRT_EXAMPLE_SHORT=1 (as `meson test` runs it): the same latencies on the
 * paused clock (crt_config.start_paused, workers = 1), so the order is
 * exact and the run instant — tokio's tests do the same with time::pause.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { NSHARDS = 8, PER_SHARD = 10000, STRAGGLER = 4 };

/* Milliseconds each shard takes to answer. */
static const int latency_ms[NSHARDS] = {120, 20, 450, 60, 5000, 300, 650, 200};

typedef struct shard {
    int id;
    const int *data;  /* its slice */
    size_t len;
    long matches;     /* the answer */
    int cancelled;    /* it was cut off by the deadline */
} shard;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

static long count_matches(const int *data, size_t len) {
    long n = 0;
    for (size_t i = 0; i < len; i++) n += data[i] % 7 == 0;
    return n;
}

/* One shard: the work, then its latency. Returns itself (its answer). */
static void *query_shard(void *arg) {
    shard *s = (shard *)arg;
    s->matches = count_matches(s->data, s->len);
    if (crt_sleep(CRT_MS(latency_ms[s->id])) == -ECANCELED) {
        s->cancelled = 1; /* too late: the gatherer has moved on */
        return NULL;
    }
    return s;
}

static void *main_task(void *arg) {
    (void)arg;
    static int data[NSHARDS * PER_SHARD];
    uint32_t x = 12345;
    for (size_t i = 0; i < NSHARDS * PER_SHARD; i++) { /* a reproducible data set */
        x = x * 1103515245u + 12345u;
        data[i] = (int)(x >> 8);
    }
    shard shards[NSHARDS];
    crt_group g;
    crt_group_init(&g);
    int failed = 0;

    /* Fan out. */
    for (int i = 0; i < NSHARDS; i++) {
        shards[i] = (shard){.id = i, .data = data + (size_t)i * PER_SHARD, .len = PER_SHARD};
        if (!crt_group_spawn(&g, query_shard, &shards[i])) failed++;
    }

    /* Fan in, in completion order, until the deadline. */
    crt_time start = crt_now(), deadline = crt_after(CRT_SEC(1));
    int order[NSHARDS], answered = 0, rc;
    long total = 0;
    void *res;
    printf("8 shards queried; answers in order of arrival:");
    while ((rc = crt_group_next(&g, &res, deadline)) == 0) {
        shard *s = (shard *)res;
        if (!s) continue; /* a shard that failed (none here) */
        order[answered++] = s->id;
        total += s->matches;
        printf(" %d (%d ms)", s->id, latency_ms[s->id]);
    }
    printf("\n");
    double waited = (double)(crt_now() - start) / 1e9;
    if (rc == -ETIMEDOUT)
        printf("deadline after %.2f s: %d shard(s) still out, cancelled; partial result from %d of %d shards\n",
               waited, NSHARDS - answered, answered, NSHARDS);
    else if (rc != -EPIPE) /* -EPIPE: every member was handed out */
        failed++;
    crt_group_destroy(&g); /* cancels the stragglers and waits for them to unwind */

    /* Check: the answers came in order of latency; the count is that of the shards that answered. */
    long expected = 0;
    for (int i = 0; i < NSHARDS; i++)
        if (i != STRAGGLER) expected += count_matches(shards[i].data, shards[i].len);
    printf("values divisible by 7 in the shards that answered: %ld (expected %ld)\n", total, expected);
    int ok = !failed && answered == NSHARDS - 1 && shards[STRAGGLER].cancelled && total == expected;
    for (int i = 1; ok && i < answered; i++) ok = latency_ms[order[i - 1]] < latency_ms[order[i]];
    if (!ok) fprintf(stderr, "fan_out_fan_in: FAILED: wrong order, count or cancellation\n");
    return (void *)(intptr_t)(ok ? 0 : 1);
}

int main(void) {
    crt_config cfg = {0};
    if (short_mode()) {
        cfg.workers = 1;
        cfg.start_paused = 1; /* exact, instant latencies */
    } else {
        cfg.workers = 2;
    }
    void *status = NULL;
    int rc = crt_run(&cfg, main_task, NULL, &status);
    if (rc < 0) {
        fprintf(stderr, "fan_out_fan_in: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
