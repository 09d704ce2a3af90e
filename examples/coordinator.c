/* examples/coordinator.c — workers report to one coordinator over a bounded
 * channel, and wait when it falls behind.
 *
 * The pattern: one task owns a piece of state (here, the table of what
 * every worker is doing) and everyone else talks to it by message. Nothing
 * else touches the table, so it needs no lock (the actor pattern). The
 * channel to it is bounded: when the coordinator is slower than the
 * workers, the channel fills up and their sends wait — backpressure — so a
 * burst of reports costs a bounded amount of memory and the workers slow
 * to the coordinator's pace instead of running away from it.
 *
 *   tokio: mpsc::channel(8) and one task that owns the state, `while let Some(r) = rx.recv().await`
 *   Go:    reports := make(chan report, 8); one goroutine `for r := range reports`
 *
 * Use it for status, progress and metrics reporting, for any state that is
 * easier to own than to lock, and whenever a producer must not outrun its
 * consumer.
 *
 * Shutdown is by closing: once every worker is done (a crt_group says when),
 * the main task closes the channel; the coordinator drains what is left,
 * gets -EPIPE and returns its summary. Workers time their sends, so the
 * program can show how long the backpressure held them. Exit status 1 if a
 * report was lost or no send ever had to wait (no backpressure shown).
 *
 * CRT_EXAMPLE_SHORT=1 (as `meson test` runs it): 4 workers x 10 jobs, a
 * coordinator that needs 2 ms a report; otherwise 4 x 20 and 20 ms.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { NWORKERS = 4, CAPACITY = 8 };

typedef enum { REPORT_STARTED, REPORT_DONE } report_kind;

typedef struct report {
    int worker;
    int job;
    report_kind kind;
} report;

/* The coordinator's state: only the coordinator task reads or writes it
 * while it runs, so it has no lock. */
typedef struct coordinator {
    crt_chan *reports;
    crt_time cost;          /* the time it needs per report (a database write, say) */
    int current_job[NWORKERS];
    int jobs_done[NWORKERS];
    int received;
    size_t longest_queue;   /* the most reports ever waiting in the channel */
} coordinator;

typedef struct worker {
    int id;
    int jobs;
    crt_chan *reports;
    atomic_int *sends_that_waited;
    atomic_llong *time_waited;
} worker;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

/* >>the coordinator */

static void apply(coordinator *c, const report *r) {
    if (r->kind == REPORT_STARTED) c->current_job[r->worker] = r->job;
    else {
        c->current_job[r->worker] = -1;
        c->jobs_done[r->worker]++;
    }
    c->received++;
}

static void *coordinator_run(void *arg) {
    coordinator *c = (coordinator *)arg;
    report r;
    int rc;
    for (;;) {
        size_t queued = crt_chan_len(c->reports);
        if (queued > c->longest_queue) c->longest_queue = queued;
        rc = crt_chan_recv(c->reports, &r, CRT_FOREVER);
        if (rc < 0) break; /* -EPIPE: closed and drained, the normal end; -ECANCELED: aborted */
        apply(c, &r);
        rc = crt_sleep(c->cost); /* the coordinator is the slow part */
        if (rc < 0) break;
    }
    return (void *)(intptr_t)(rc == -EPIPE ? 0 : rc);
}

/* >>the workers */

/* Sends a report; waits (up to the deadline) while the channel is full.
 * The CRT_TRY attempt first is only there to count the waits for this
 * demonstration: a plain crt_chan_send with the deadline does the same. */
static int send_report(worker *w, const report *r) {
    int rc = crt_chan_send(w->reports, r, CRT_TRY);
    if (rc != -EAGAIN) return rc;
    crt_time start = crt_now();
    rc = crt_chan_send(w->reports, r, crt_after(CRT_SEC(10))); /* backpressure: wait for room */
    atomic_fetch_add(w->sends_that_waited, 1);
    atomic_fetch_add(w->time_waited, crt_now() - start);
    return rc;
}

static void *worker_run(void *arg) {
    worker *w = (worker *)arg;
    for (int job = 0; job < w->jobs; job++) {
        report r = {w->id, job, REPORT_STARTED};
        int rc = send_report(w, &r);
        if (rc == 0) rc = crt_sleep(CRT_MS(1)); /* the job itself: quick */
        r.kind = REPORT_DONE;
        if (rc == 0) rc = send_report(w, &r);
        if (rc < 0) return (void *)(intptr_t)rc; /* -EPIPE: the coordinator is gone; -ETIMEDOUT, -ECANCELED */
    }
    return NULL;
}

/* >>main */

static void *coordinator_main(void *arg) {
    (void)arg;
    int jobs = short_mode() ? 10 : 20;
    coordinator c = {0};
    c.cost = short_mode() ? CRT_MS(2) : CRT_MS(20);
    c.reports = crt_chan_new(sizeof(report), CAPACITY);
    if (!c.reports) {
        fprintf(stderr, "coordinator: crt_chan_new: %s\n", crt_strerror(-errno));
        return (void *)1;
    }
    crt_task *boss = crt_spawn(coordinator_run, &c);
    if (!boss) {
        crt_chan_free(c.reports);
        return (void *)1;
    }

    atomic_int sends_that_waited;
    atomic_llong time_waited;
    atomic_init(&sends_that_waited, 0);
    atomic_init(&time_waited, 0);
    worker w[NWORKERS];
    crt_group workers;
    crt_group_init(&workers);
    int failed = 0;
    for (int i = 0; i < NWORKERS; i++) {
        w[i] = (worker){.id = i, .jobs = jobs, .reports = c.reports, .sends_that_waited = &sends_that_waited,
                        .time_waited = &time_waited};
        if (!crt_group_spawn(&workers, worker_run, &w[i])) failed++;
    }

    /* Wait for the workers, then close: the coordinator drains and stops. */
    void *res;
    int rc;
    while ((rc = crt_group_next(&workers, &res, crt_after(CRT_SEC(60)))) == 0)
        if (res != NULL) failed++;
    if (rc != -EPIPE) failed++;
    crt_group_destroy(&workers);
    crt_chan_close(c.reports);
    void *boss_rc = NULL;
    if (crt_join(boss, &boss_rc, crt_after(CRT_SEC(30))) < 0) { /* it would be stuck: abort, then wait */
        crt_abort(boss);
        crt_join(boss, &boss_rc, CRT_FOREVER);
        failed++;
    }
    if (boss_rc != NULL) failed++;
    crt_chan_free(c.reports);

    int expected = NWORKERS * jobs * 2, waited = atomic_load(&sends_that_waited);
    printf("%d workers sent %d reports through a channel of %d to a coordinator needing %lld ms each\n", NWORKERS,
           expected, CAPACITY, (long long)(c.cost / CRT_MS(1)));
    printf("backpressure: %d sends found the channel full and waited, %.2f s in all; "
           "the queue never held more than %zu\n",
           waited, (double)atomic_load(&time_waited) / 1e9, c.longest_queue);
    printf("the coordinator's table, jobs done per worker:");
    for (int i = 0; i < NWORKERS; i++) printf(" %d", c.jobs_done[i]);
    printf(" (of %d each); none in progress\n", jobs);

    int ok = !failed && c.received == expected && waited > 0 && c.longest_queue <= CAPACITY;
    for (int i = 0; i < NWORKERS; i++) ok = ok && c.jobs_done[i] == jobs && c.current_job[i] == -1;
    if (!ok) fprintf(stderr, "coordinator: FAILED: %d of %d reports arrived, %d sends waited, %d errors\n",
                     c.received, expected, waited, failed);
    return (void *)(intptr_t)(ok ? 0 : 1);
}

int main(void) {
    crt_config cfg = {0};
    cfg.workers = 2;
    void *status = NULL;
    int rc = crt_run(&cfg, coordinator_main, NULL, &status);
    if (rc < 0) {
        fprintf(stderr, "coordinator: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
