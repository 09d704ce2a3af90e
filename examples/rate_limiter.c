/* examples/rate_limiter.c — a token bucket, refilled by an interval and
 * shared by many tasks: bursts up to the bucket's size, then a steady rate.
 *
 * The pattern: the bucket is a crt_sem — its permits are the tokens. A
 * task that wants to make a request takes one (crt_sem_acquire, with a
 * deadline: how long it is willing to wait for its turn). One refill task
 * ticks on a crt_interval and puts tokens back, never beyond the bucket's
 * capacity. The semaphore does the hard parts: waiters are served first
 * come, first served (no client starves, none jumps the queue), and a
 * refill wakes exactly as many waiters as it adds tokens.
 *
 *   tokio: a Semaphore refilled by an interval task (or the governor crate)
 *   Go:    golang.org/x/time/rate.Limiter, limiter.Wait(ctx)
 *
 * Use it to respect an API's quota, to smooth bursts toward a database,
 * to cap what one tenant may use.
 *
 * The refill interval uses CRT_MISSED_BURST: if a tick comes late (a busy
 * worker), the missed ticks are delivered at once, so the tokens owed for
 * the elapsed time are not lost — the cap still bounds the burst.
 *
 * Scenario: a bucket of 10 tokens, 20 tokens a second (2 every 100 ms), six
 * clients that each want to make requests as fast as they can, for 3 s.
 * Exit status 1 if more requests went out than the bucket allows (10 +
 * 20/s x elapsed), if they were far fewer (the limiter starved them), or if
 * the clients were not served evenly.
 *
 * Testing time-based code: CRT_EXAMPLE_SHORT=1 (as `meson test` runs it)
 * runs the same 3 s on the paused clock (crt_config.start_paused with
 * workers = 1, as tokio's tests use time::pause): exact, and instant.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { NCLIENTS = 6, SECONDS = 3, BURST = 10, RATE = 20 /* tokens per second */ };

typedef struct bucket {
    crt_sem tokens;     /* the bucket: one permit per token */
    size_t capacity;    /* the largest burst */
    size_t per_tick;    /* tokens added per refill tick */
    crt_time period;    /* refill tick */
    long refilled;      /* tokens added in all (the refill task's count) */
} bucket;

typedef struct client {
    bucket *b;
    crt_time t0, until;
    int requests;
    int per_second[SECONDS + 1];
} client;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

/* >>the limiter */

static void bucket_init(bucket *b, size_t capacity, size_t per_second, crt_time period) {
    crt_sem_init(&b->tokens, capacity); /* starts full: a burst is allowed at once */
    b->capacity = capacity;
    b->per_tick = (size_t)((crt_time)per_second * period / CRT_SEC(1));
    b->period = period;
    b->refilled = 0;
}

/* Waits for a token until the deadline. 0, -ETIMEDOUT, -ECANCELED. */
static int bucket_take(bucket *b, crt_time deadline) { return crt_sem_acquire(&b->tokens, 1, deadline); }

/* The refill task: runs until aborted. Only it adds tokens, so topping up
 * to the capacity from a snapshot of what is available is safe: takers
 * can only make the real count smaller. */
static void *refill(void *arg) {
    bucket *b = (bucket *)arg;
    crt_interval iv;
    crt_interval_init(&iv, b->period, CRT_MISSED_BURST);
    while (crt_interval_tick(&iv) == 0) {
        size_t have = crt_sem_available(&b->tokens);
        size_t add = have >= b->capacity ? 0 : b->capacity - have;
        if (add > b->per_tick) add = b->per_tick;
        if (add) crt_sem_release(&b->tokens, add);
        b->refilled += (long)add;
    }
    return NULL; /* -ECANCELED: the limiter was shut down */
}

/* >>the clients: as many requests as the limiter lets through */

static void *client_run(void *arg) {
    client *c = (client *)arg;
    int rc;
    while ((rc = bucket_take(c->b, c->until)) == 0) { /* -ETIMEDOUT at the end of the run */
        int second = (int)((crt_now() - c->t0) / CRT_SEC(1));
        c->per_second[second <= SECONDS ? second : SECONDS]++;
        c->requests++;
        rc = crt_sleep(CRT_MS(5)); /* the request itself */
        if (rc < 0) break;
    }
    return (void *)(intptr_t)(rc == -ETIMEDOUT ? 0 : rc);
}

static void *main_task(void *arg) {
    (void)arg;
    bucket b;
    bucket_init(&b, BURST, RATE, CRT_MS(100));
    crt_task *refiller = crt_spawn(refill, &b);
    if (!refiller) {
        crt_sem_destroy(&b.tokens);
        return (void *)1;
    }

    crt_time t0 = crt_now();
    /* A little past the last refill tick, so none falls on the deadline itself. */
    crt_time until = t0 + CRT_SEC(SECONDS) + CRT_MS(50);
    client clients[NCLIENTS] = {0};
    crt_group g;
    crt_group_init(&g);
    int failed = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        clients[i].b = &b;
        clients[i].t0 = t0;
        clients[i].until = until;
        if (!crt_group_spawn(&g, client_run, &clients[i])) failed++;
    }
    void *res;
    int rc;
    while ((rc = crt_group_next(&g, &res, crt_after(CRT_SEC(SECONDS + 30)))) == 0)
        if (res != NULL) failed++; /* a client that stopped on an error */
    if (rc != -EPIPE) failed++;    /* -EPIPE: all were collected */
    crt_group_destroy(&g);
    crt_time elapsed = crt_now() - t0;
    crt_abort(refiller); /* its crt_interval_tick returns -ECANCELED */
    crt_join(refiller, NULL, CRT_FOREVER);
    crt_sem_destroy(&b.tokens);

    int total = 0, most = 0, fewest = 1 << 30, per_second[SECONDS + 1] = {0};
    for (int i = 0; i < NCLIENTS; i++) {
        total += clients[i].requests;
        if (clients[i].requests > most) most = clients[i].requests;
        if (clients[i].requests < fewest) fewest = clients[i].requests;
        for (int s = 0; s <= SECONDS; s++) per_second[s] += clients[i].per_second[s];
    }
    long allowed = BURST + RATE * elapsed / CRT_SEC(1);
    printf("a bucket of %d tokens, refilled with %zu every 100 ms (%d/s), shared by %d clients for %.2f s\n", BURST,
           b.per_tick, RATE, NCLIENTS, (double)elapsed / 1e9);
    printf("requests per second:");
    for (int s = 0; s <= SECONDS; s++) printf(" %d", per_second[s]);
    printf(" (the first second has the burst of %d)\n", BURST);
    printf("%d requests in all, at most %ld allowed; per client between %d and %d (served in turn)\n", total, allowed,
           fewest, most);
    /* The real clock may deliver a tick late (then catch up); the paused one is exact. */
    int slack = short_mode() ? 0 : 2;
    int ok = !failed && total <= BURST + b.refilled && total <= allowed + slack && total >= allowed - BURST - slack &&
             most - fewest <= 1 + slack;
    if (!ok) fprintf(stderr, "rate_limiter: FAILED: the rate or the fairness is off\n");
    return (void *)(intptr_t)(ok ? 0 : 1);
}

int main(void) {
    crt_config cfg = {0};
    if (short_mode()) {
        cfg.workers = 1;
        cfg.start_paused = 1; /* 3 s of schedule, exact and instant */
    } else {
        cfg.workers = 2;
    }
    void *status = NULL;
    int rc = crt_run(&cfg, main_task, NULL, &status);
    if (rc < 0) {
        fprintf(stderr, "rate_limiter: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
