/* examples/retry_backoff.c — retry a flaky operation with exponential
 * backoff, full jitter, a cap, and one deadline for the whole affair.
 *
 * The pattern: after the n-th failure, sleep a random time in
 * [0, min(cap, base * 2^n)] ("full jitter", from the AWS architecture blog's
 * "Exponential Backoff and Jitter": clients that failed together do not
 * retry together, so a recovering server is not knocked over again). Give
 * up when the next attempt could not start before the overall deadline,
 * and pass that deadline down to each attempt, so the whole thing never
 * runs past it. Retry only errors that can go away (refused, timed out,
 * reset); return at once on the others, and never retry -ECANCELED: that
 * is someone telling you to stop.
 *
 *   tokio: the backoff / tokio-retry crates, or a loop with tokio::time::sleep
 *   Go:    a loop with time.Sleep(rand.Int63n(min(cap, base<<n))), bounded by a context deadline
 *
 * Three runs against a simulated server: one that comes up after 2.5 s
 * (the retries succeed), one that never does (they give up at the 5 s
 * deadline), one that rejects the request for good (no retry at all).
 * Exit status 1 unless each ends that way and no run passes its deadline.
 *
 * Testing time-based code: CRT_EXAMPLE_SHORT=1 (as `meson test` runs it)
 * runs the same schedule on the paused clock (crt_config.start_paused with
 * workers = 1, as tokio's tests use time::pause) with a fixed seed: every
 * sleep returns at once, the clock jumps exactly, the output is the same
 * each run. Without it, the real clock: about 8 s.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct backoff {
    crt_time base;      /* the first ceiling */
    crt_time cap;       /* the largest ceiling */
    crt_time deadline;  /* absolute: no attempt starts after it, none runs past it */
    uint64_t rng;       /* per caller: no shared random state between tasks */
} backoff;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* min(cap, base * 2^attempt), without overflow. */
static crt_time ceiling(const backoff *b, int attempt) {
    crt_time c = b->base;
    for (int i = 0; i < attempt && c < b->cap; i++) c *= 2;
    return c < b->cap ? c : b->cap;
}

/* Full jitter: uniform in [0, ceiling]. */
static crt_time jittered_delay(backoff *b, int attempt) {
    return (crt_time)(splitmix64(&b->rng) % (uint64_t)(ceiling(b, attempt) + 1));
}

/* Errors worth another try. */
static int transient(int err) { return err == -ECONNREFUSED || err == -ETIMEDOUT || err == -ECONNRESET; }

/* An attempt: gets a deadline it must respect; returns 0 or a negative errno. */
typedef int (*attempt_fn)(void *ctx, crt_time deadline);

/* Calls op until it succeeds, fails for good, or time runs out.
 * Returns op's 0, its permanent error, -ETIMEDOUT (no time left for
 * another attempt), or -ECANCELED (we were aborted: never retried). */
static int retry(attempt_fn op, void *ctx, backoff *b, int verbose) {
    crt_time t0 = crt_now();
    for (int attempt = 0;; attempt++) {
        int rc = op(ctx, b->deadline);
        if (rc == 0 || rc == -ECANCELED || !transient(rc)) return rc;
        crt_time delay = jittered_delay(b, attempt);
        if (verbose)
            printf("  attempt %d failed at %5.2f s: %s; sleeping %.3f s (ceiling %.3f s)\n", attempt + 1,
                   (double)(crt_now() - t0) / 1e9, crt_strerror(rc), (double)delay / 1e9,
                   (double)ceiling(b, attempt) / 1e9);
        if (crt_after(delay) >= b->deadline) return -ETIMEDOUT; /* the next attempt could not start in time */
        rc = crt_sleep(delay);
        if (rc < 0) return rc; /* -ECANCELED */
    }
}

/* >>the flaky server */

typedef struct server {
    crt_time up_after; /* it accepts this long after the first attempt (CRT_FOREVER: never) */
    int permanent;     /* it rejects every request for good */
    int attempts;
    crt_time up_at;
} server;

/* A connection attempt: refused while the server is down. A real one would
 * be crt_tcp_connect(addr, deadline). */
static int connect_to(void *ctx, crt_time deadline) {
    server *s = (server *)ctx;
    s->attempts++;
    crt_time rtt = CRT_MS(10);
    if (crt_after(rtt) > deadline) return -ETIMEDOUT; /* would not answer before the deadline */
    int rc = crt_sleep(rtt);
    if (rc < 0) return rc;
    if (s->permanent) return -EINVAL; /* "malformed request": retrying cannot help */
    return crt_now() >= s->up_at ? 0 : -ECONNREFUSED;
}

/* >>three runs */

static int run(const char *title, server *s, crt_time budget, uint64_t seed, int expect_rc, int verbose) {
    backoff b = {.base = CRT_MS(100), .cap = CRT_SEC(1), .deadline = crt_after(budget), .rng = seed};
    crt_time start = crt_now();
    s->up_at = s->up_after == CRT_FOREVER ? CRT_FOREVER : crt_after(s->up_after);
    printf("%s\n", title);
    int rc = retry(connect_to, s, &b, verbose);
    crt_time took = crt_now() - start;
    printf("  -> %s after %d attempt(s), %.2f s (budget %.0f s)\n", rc == 0 ? "connected" : crt_strerror(rc),
           s->attempts, (double)took / 1e9, (double)budget / 1e9);
    crt_time late = short_mode() ? 0 : CRT_MS(100); /* the real clock's timers may fire a little late */
    int ok = rc == expect_rc && took <= budget + late;
    if (!ok) fprintf(stderr, "retry_backoff: FAILED: %s\n", title);
    return ok;
}

static void *main_task(void *arg) {
    uint64_t seed = *(uint64_t *)arg;
    server comes_up = {.up_after = CRT_MS(2500)}, never = {.up_after = CRT_FOREVER}, refuses = {.permanent = 1};
    int ok = run("a server that comes up after 2.5 s:", &comes_up, CRT_SEC(10), seed, 0, 1);
    ok &= comes_up.attempts > 1;
    ok &= run("a server that never comes up:", &never, CRT_SEC(5), seed + 1, -ETIMEDOUT, 0);
    ok &= run("a server that rejects the request for good:", &refuses, CRT_SEC(5), seed + 2, -EINVAL, 0);
    ok &= refuses.attempts == 1;
    return (void *)(intptr_t)(ok ? 0 : 1);
}

int main(void) {
    crt_config cfg = {0};
    uint64_t seed;
    if (short_mode()) {
        cfg.workers = 1;
        cfg.start_paused = 1; /* sleeps return at once; the clock jumps exactly */
        seed = 42;            /* and the jitter is the same every run */
    } else {
        cfg.workers = 2;
        seed = (uint64_t)time(NULL);
    }
    void *status = NULL;
    int rc = crt_run(&cfg, main_task, &seed, &status);
    if (rc < 0) {
        fprintf(stderr, "retry_backoff: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
