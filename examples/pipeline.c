/* examples/pipeline.c — stages connected by bounded channels: the slowest
 * stage sets the pace, and nothing in between grows without limit.
 *
 * The pattern: source -> parse (2 tasks) -> sink, each stage a task, each
 * link a crt_chan with a small capacity. When the sink is slow (it writes
 * to a database, say), its input channel fills, the parsers' sends wait,
 * their input fills, and the source's sends wait: backpressure travels up
 * the pipeline and the source produces no faster than the sink consumes.
 * At most (both capacities + one record in each stage's hands) are in
 * flight, however many records pass through — the program checks it at
 * every send.
 *
 *   tokio: stages as tasks joined by mpsc::channel(8); `while let Some(x) = rx.recv().await`
 *   Go:    goroutines joined by make(chan T, 8); `for x := range in { out <- f(x) }; close(out)`
 *
 * Use it for ETL, log processing, media transcoding, any stream with steps
 * that run at different speeds. Never give a stage an unbounded queue: it
 * only moves the overload into memory.
 *
 * Closing runs down the pipeline: the source closes its channel when it is
 * done; the parsers drain it (recv returns -EPIPE once closed and empty),
 * and when both have finished the main task closes the next channel; the
 * sink drains it and ends. A stage that fails closes its input too, so
 * upstream senders get -EPIPE instead of waiting for ever. Exit status 1 if
 * a record was lost, the bound was exceeded, or the source never waited.
 *
 * CRT_EXAMPLE_SHORT=1 (as `meson test` runs it): 300 records, a sink that
 * needs 1 ms each; otherwise 2,000 records at 2 ms.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { CAPACITY = 8, NPARSERS = 2 };
/* Records in flight at most: in the two channels, in each parser's hands,
 * and in the sink's. */
#define IN_FLIGHT_BOUND (CAPACITY + NPARSERS + CAPACITY + 1)

typedef struct record {
    int seq;
    long value;
} record;

typedef struct pipeline {
    crt_chan *raw;          /* source -> parsers */
    crt_chan *parsed;       /* parsers -> sink */
    int nrecords;
    crt_time sink_cost;
    atomic_int sunk;        /* records the sink has finished */
    int sent, sends_waited, max_in_flight; /* the source's view */
    long sum;               /* the sink's result */
} pipeline;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

/* >>source: produces records as fast as the pipeline lets it */
static void *source(void *arg) {
    pipeline *p = (pipeline *)arg;
    int rc = 0;
    for (int i = 0; i < p->nrecords && rc == 0; i++) {
        record r = {i, 0};
        rc = crt_chan_send(p->raw, &r, CRT_TRY); /* only to count the waits: */
        if (rc == -EAGAIN) {                     /* full: the stages ahead are behind */
            p->sends_waited++;
            rc = crt_chan_send(p->raw, &r, crt_after(CRT_SEC(10)));
        }
        if (rc == 0) p->sent++;
        int in_flight = p->sent - atomic_load(&p->sunk);
        if (in_flight > p->max_in_flight) p->max_in_flight = in_flight;
    }
    crt_chan_close(p->raw); /* done (or failed): the parsers drain and stop */
    return (void *)(intptr_t)rc;
}

/* >>parse: a CPU step, two tasks sharing the input */
static void *parser(void *arg) {
    pipeline *p = (pipeline *)arg;
    record r;
    int rc;
    while ((rc = crt_chan_recv(p->raw, &r, CRT_FOREVER)) == 0) {
        r.value = (long)r.seq * r.seq; /* the transformation */
        rc = crt_chan_send(p->parsed, &r, crt_after(CRT_SEC(10)));
        if (rc < 0) {
            crt_chan_close(p->raw); /* the sink is gone: make the source stop too */
            break;
        }
    }
    return (void *)(intptr_t)(rc == -EPIPE ? 0 : rc); /* -EPIPE on recv: drained, the normal end */
}

/* >>sink: the slow stage */
static void *sink(void *arg) {
    pipeline *p = (pipeline *)arg;
    record r;
    int rc;
    while ((rc = crt_chan_recv(p->parsed, &r, CRT_FOREVER)) == 0) {
        rc = crt_sleep(p->sink_cost); /* the write */
        if (rc < 0) {
            crt_chan_close(p->parsed); /* upstream sends now fail with -EPIPE */
            break;
        }
        p->sum += r.value;
        atomic_fetch_add(&p->sunk, 1);
    }
    return (void *)(intptr_t)(rc == -EPIPE ? 0 : rc);
}

static void *main_task(void *arg) {
    (void)arg;
    pipeline p = {0};
    p.nrecords = short_mode() ? 300 : 2000;
    p.sink_cost = short_mode() ? CRT_MS(1) : CRT_MS(2);
    atomic_init(&p.sunk, 0);
    p.raw = crt_chan_new(sizeof(record), CAPACITY);
    p.parsed = crt_chan_new(sizeof(record), CAPACITY);
    crt_task *src = NULL, *snk = NULL;
    crt_group parsers;
    crt_group_init(&parsers);
    int failed = !p.raw || !p.parsed;
    if (!failed) failed = !(snk = crt_spawn(sink, &p));
    for (int i = 0; i < NPARSERS && !failed; i++) failed = !crt_group_spawn(&parsers, parser, &p);
    if (!failed) failed = !(src = crt_spawn(source, &p));
    if (failed) fprintf(stderr, "pipeline: setting up: %s\n", crt_strerror(-errno));
    crt_time start = crt_now();

    /* Run it down in order: the source ends, then the parsers, then the sink. */
    void *rc = NULL;
    crt_time deadline = crt_after(CRT_SEC(60));
    if (src && (crt_join(src, &rc, deadline) < 0 || rc)) failed = 1;
    crt_chan_close(p.raw); /* already closed by the source; here for the paths where it never ran */
    if (crt_group_wait(&parsers, deadline) < 0) failed = 1;
    crt_group_destroy(&parsers);
    crt_chan_close(p.parsed); /* every sender of `parsed` has finished */
    if (snk && (crt_join(snk, &rc, deadline) < 0 || rc)) failed = 1;
    double secs = (double)(crt_now() - start) / 1e9;
    crt_chan_free(p.raw);
    crt_chan_free(p.parsed);

    long want = 0;
    for (long i = 0; i < p.nrecords; i++) want += i * i;
    int sunk = atomic_load(&p.sunk);
    printf("source -> 2 parsers -> slow sink (%lld ms a record), channels of %d\n",
           (long long)(p.sink_cost / CRT_MS(1)), CAPACITY);
    printf("%d records through in %.2f s; %d of the source's sends waited for room (backpressure)\n", sunk, secs,
           p.sends_waited);
    printf("at most %d records were in flight at once (bound: %d + %d + %d + 1 = %d)\n", p.max_in_flight, CAPACITY,
           NPARSERS, CAPACITY, IN_FLIGHT_BOUND);
    int ok = !failed && sunk == p.nrecords && p.sum == want && p.sends_waited > 0 &&
             p.max_in_flight <= IN_FLIGHT_BOUND;
    if (!ok) fprintf(stderr, "pipeline: FAILED: records lost, bound exceeded, or no backpressure\n");
    return (void *)(intptr_t)(ok ? 0 : 1);
}

int main(void) {
    crt_config cfg = {0};
    cfg.workers = 2;
    void *status = NULL;
    int rc = crt_run(&cfg, main_task, NULL, &status);
    if (rc < 0) {
        fprintf(stderr, "pipeline: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
