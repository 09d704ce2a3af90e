/* examples/circuit_breaker.c — stop calling a dependency that is down, and
 * find out cheaply when it is back: closed, open, half-open.
 *
 * The pattern: calls go through a breaker. Closed: they pass, and the
 * breaker counts consecutive failures; at a threshold it opens. Open:
 * calls fail at once with -EBUSY, without touching the dependency — no
 * caller waits out a timeout on a service that is known to be down, and
 * the service gets room to recover. After a cooldown it goes half-open:
 * one trial call passes (the others still fail fast); if it succeeds the
 * breaker closes, if not it opens for another cooldown.
 *
 *   tokio: tower's failure-aware layers, or a small state machine like this one
 *   Go:    sony/gobreaker, or the same state machine behind a sync.Mutex
 *
 * Use it in front of any remote dependency whose failures are slow
 * (timeouts), so that one sick service does not tie up every caller.
 *
 * The breaker's state is shared by every caller task and protected by a
 * crt_mutex that is never held across the call itself. Its bookkeeping
 * after a call is shielded (crt_shield), so a caller aborted mid-call still
 * hands back the half-open trial slot. Results of calls admitted before the
 * breaker opened no longer count when they finish.
 *
 * Scenario: three callers call every 100 ms with a 200 ms deadline, for
 * 10 s; the dependency answers in 5 ms but hangs from 2 s to 7 s. Every
 * state change is printed. Exit status 1 if the transitions are not a valid
 * closed -> open -> half-open -> ... -> closed sequence, no call was
 * rejected fast, or more calls reached the dead dependency than the breaker
 * allows (threshold + calls already in flight + one per trial).
 *
 * Testing time-based code: CRT_EXAMPLE_SHORT=1 (as `meson test` runs it)
 * runs the same 10 s on the paused clock (crt_config.start_paused with
 * workers = 1, as tokio's tests use time::pause): exact, and instant.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { NCALLERS = 3, THRESHOLD = 5, MAX_HISTORY = 64 };

typedef enum { CLOSED, OPEN, HALF_OPEN } breaker_state;
static const char *const state_name[] = {"closed", "open", "half-open"};

typedef enum { CALL_OK, CALL_FAILED, CALL_NEUTRAL } outcome;

typedef struct breaker {
    crt_mutex lock;         /* guards what follows; never held across a call */
    breaker_state state;
    int failures;           /* consecutive, while closed */
    int threshold;
    crt_time cooldown;
    crt_time open_until;
    int trial_out;          /* half-open: the one trial call is in progress */
    crt_time t0;            /* for printing */
    breaker_state history[MAX_HISTORY]; /* every state it entered, for the check */
    int nhistory, trials;
} breaker;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

/* >>the breaker */

/* Called with the lock held. */
static void set_state(breaker *b, breaker_state s, const char *why) {
    printf("t=%5.2f s  %s -> %s (%s)\n", (double)(crt_now() - b->t0) / 1e9, state_name[b->state], state_name[s], why);
    b->state = s;
    if (s == OPEN) b->open_until = crt_after(b->cooldown);
    if (s == CLOSED) b->failures = 0;
    if (b->nhistory < MAX_HISTORY) b->history[b->nhistory++] = s;
}

/* May a call go through? Returns 0 (yes), 1 (yes, as the half-open trial)
 * or -EBUSY (open: fail fast); -ECANCELED if the caller was aborted. */
static int breaker_enter(breaker *b) {
    int rc = crt_mutex_lock(&b->lock, CRT_FOREVER); /* held for a few instructions only */
    if (rc < 0) return rc;
    if (b->state == OPEN && crt_now() >= b->open_until) set_state(b, HALF_OPEN, "cooldown over: one trial call");
    if (b->state == CLOSED) rc = 0;
    else if (b->state == HALF_OPEN && !b->trial_out) {
        b->trial_out = 1;
        b->trials++;
        rc = 1;
    } else rc = -EBUSY;
    crt_mutex_unlock(&b->lock);
    return rc;
}

/* Records how the call went. ticket: what breaker_enter returned. */
static void breaker_leave(breaker *b, int ticket, outcome how) {
    int was = crt_shield(1); /* the bookkeeping must happen even if we were aborted */
    if (crt_mutex_lock(&b->lock, CRT_FOREVER) == 0) {
        if (ticket == 1) { /* the trial call */
            b->trial_out = 0;
            if (how == CALL_OK) set_state(b, CLOSED, "the trial call succeeded");
            else if (how == CALL_FAILED) set_state(b, OPEN, "the trial call failed");
        } else if (b->state == CLOSED && how == CALL_OK) {
            b->failures = 0;
        } else if (b->state == CLOSED && how == CALL_FAILED && ++b->failures >= b->threshold) {
            char why[48];
            snprintf(why, sizeof why, "%d failures in a row", b->failures);
            set_state(b, OPEN, why);
        } /* else: admitted while closed, finished after it opened: no longer counts */
        crt_mutex_unlock(&b->lock);
    }
    crt_shield(was);
}

typedef int (*call_fn)(void *ctx, crt_time deadline);

/* Calls fn through the breaker. Returns fn's result, or -EBUSY at once
 * while the breaker is open. */
static int call_through(breaker *b, call_fn fn, void *ctx, crt_time deadline) {
    int ticket = breaker_enter(b);
    if (ticket < 0) return ticket;
    int rc = fn(ctx, deadline);
    breaker_leave(b, ticket, rc == 0 ? CALL_OK : rc == -ECANCELED ? CALL_NEUTRAL : CALL_FAILED);
    return rc;
}

/* >>the dependency: answers in 5 ms, but hangs from 2 s to 7 s */

typedef struct dependency {
    crt_time t0;
    atomic_int reached_while_down;
} dependency;

static int call_dependency(void *ctx, crt_time deadline) {
    dependency *d = (dependency *)ctx;
    crt_time t = crt_now() - d->t0;
    if (t >= CRT_SEC(2) && t < CRT_SEC(7)) {
        atomic_fetch_add(&d->reached_while_down, 1);
        int rc = crt_sleep_until(deadline); /* no answer: the caller's deadline passes */
        return rc < 0 ? rc : -ETIMEDOUT;
    }
    crt_time answer = crt_after(CRT_MS(5));
    int rc = crt_sleep_until(answer < deadline ? answer : deadline);
    if (rc < 0) return rc;
    return answer <= deadline ? 0 : -ETIMEDOUT;
}

/* >>the callers */

typedef struct caller {
    breaker *b;
    dependency *dep;
    crt_time until;
    int ok, failed, rejected;
} caller;

static void *caller_run(void *arg) {
    caller *c = (caller *)arg;
    while (crt_now() < c->until) {
        int rc = call_through(c->b, call_dependency, c->dep, crt_after(CRT_MS(200)));
        if (rc == 0) c->ok++;
        else if (rc == -EBUSY) c->rejected++; /* failed fast: no 200 ms wait */
        else if (rc == -ECANCELED) break;
        else c->failed++;
        if (crt_sleep(CRT_MS(100)) < 0) break;
    }
    return NULL;
}

/* closed -> open, then (open -> half-open -> open)*, open -> half-open -> closed. */
static int valid_history(const breaker *b) {
    if (b->nhistory < 3 || b->history[0] != OPEN || b->history[b->nhistory - 1] != CLOSED) return 0;
    for (int i = 1; i < b->nhistory; i++) {
        breaker_state from = b->history[i - 1], to = b->history[i];
        if (from == OPEN ? to != HALF_OPEN : from == HALF_OPEN ? to == HALF_OPEN : to != OPEN) return 0;
    }
    return 1;
}

static void *main_task(void *arg) {
    (void)arg;
    breaker b = {0};
    crt_mutex_init(&b.lock);
    b.state = CLOSED;
    b.threshold = THRESHOLD;
    b.cooldown = CRT_MS(1500);
    b.t0 = crt_now();
    dependency dep;
    dep.t0 = b.t0;
    atomic_init(&dep.reached_while_down, 0);
    printf("3 callers, one call each per 100 ms with a 200 ms deadline; the dependency hangs from 2 s to 7 s\n");

    caller callers[NCALLERS];
    crt_group g;
    crt_group_init(&g);
    int failed = 0;
    for (int i = 0; i < NCALLERS; i++) {
        callers[i] = (caller){.b = &b, .dep = &dep, .until = b.t0 + CRT_SEC(10)};
        if (!crt_group_spawn(&g, caller_run, &callers[i])) failed++;
    }
    if (crt_group_wait(&g, crt_after(CRT_SEC(30))) < 0) failed++;
    crt_group_destroy(&g);
    crt_mutex_destroy(&b.lock);

    int ok = 0, bad = 0, rejected = 0;
    for (int i = 0; i < NCALLERS; i++) {
        ok += callers[i].ok;
        bad += callers[i].failed;
        rejected += callers[i].rejected;
    }
    int reached = atomic_load(&dep.reached_while_down);
    printf("calls: %d ok; %d failed after waiting 200 ms; %d rejected at once while open\n", ok, bad, rejected);
    printf("calls that reached the dependency while it was down: %d (the breaker allows %d + %d in flight + "
           "%d trials)\n", reached, THRESHOLD, NCALLERS - 1, b.trials);
    int good = !failed && valid_history(&b) && rejected > 0 && reached <= THRESHOLD + NCALLERS - 1 + b.trials;
    if (!good) fprintf(stderr, "circuit_breaker: FAILED: wrong transitions, or the dead dependency was not spared\n");
    return (void *)(intptr_t)(good ? 0 : 1);
}

int main(void) {
    crt_config cfg = {0};
    if (short_mode()) {
        cfg.workers = 1;
        cfg.start_paused = 1; /* 10 s of schedule, exact and instant */
    } else {
        cfg.workers = 2;
    }
    void *status = NULL;
    int rc = crt_run(&cfg, main_task, NULL, &status);
    if (rc < 0) {
        fprintf(stderr, "circuit_breaker: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
