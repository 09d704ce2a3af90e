/* crt/time.h — sleeping, intervals, and a clock tests can stop.
 *
 *   crt_interval iv;
 *   crt_interval_init(&iv, CRT_MS(100), CRT_MISSED_SKIP);
 *   while (crt_interval_tick(&iv) == 0) poll_something();   // ends with -ECANCELED
 *
 * Durations vs deadlines: crt_sleep and crt_interval_init take durations;
 * everything that waits takes an absolute deadline (crt_after(d) makes one).
 *
 * The paused clock (tokio's time::pause): inside a runtime, crt_now() is the
 * runtime's clock. crt_time_pause() stops it; while it stands still and
 * every task is idle it jumps exactly to the next deadline, so a test of
 * "retry after 30 s" runs instantly and exactly. crt_config.start_paused
 * starts a runtime that way. Blocking-pool jobs and plain threads always
 * see CLOCK_MONOTONIC. Best used with workers = 1, where "every task is
 * idle" is exact.
 *
 * Errors: -ECANCELED (aborted), -EINVAL (a period <= 0).
 */
#ifndef CRT_TIME_H
#define CRT_TIME_H
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What an interval does with ticks it could not deliver on time. */
#define CRT_MISSED_BURST 0  /* deliver them at once, one per call, until caught up (tokio's default) */
#define CRT_MISSED_DELAY 1  /* the late tick shifts the schedule: the next is a period after it */
#define CRT_MISSED_SKIP 2   /* drop them: the next tick is the next multiple of the period */

typedef struct crt_interval {
    crt_time period;
    crt_time next;          /* deadline of the next tick */
    int missed;             /* CRT_MISSED_* */
    int reserved;
} crt_interval;

/* Sleeps for a duration (<= 0: returns at once).
 * Returns 0, or -ECANCELED (aborted: it woke early). Task or plain thread. */
CRT_API int crt_sleep(crt_time duration);

/* Sleeps until the deadline (CRT_FOREVER: until aborted).
 * Returns 0, or -ECANCELED (aborted: it woke early). Task or plain thread. */
CRT_API int crt_sleep_until(crt_time deadline);

/* Starts an interval: the first tick completes at once, later ones at
 * start + k * period (see CRT_MISSED_* for late ones). No allocation;
 * nothing to destroy. Task or plain thread (the clock of the caller). */
CRT_API void crt_interval_init(crt_interval *iv, crt_time period, int missed);

/* Waits for the next tick.
 * Returns 0, -ECANCELED (aborted: the tick is not consumed), -EINVAL (iv
 * NULL, period <= 0 or an unknown policy). Task or plain thread. */
CRT_API int crt_interval_tick(crt_interval *iv);

/* Stops the calling task's runtime clock (no-op if stopped). Task only. */
CRT_API void crt_time_pause(void);

/* Restarts it from where it stands (no-op if running). Task only. */
CRT_API void crt_time_resume(void);

/* Moves the clock forward by d (<= 0: nothing), fires every timer now due,
 * then yields once so the tasks they woke run before the caller goes on.
 * Works paused or not (running, the clock keeps the jump). Task only. */
CRT_API void crt_time_advance(crt_time d);

#ifdef __cplusplus
}
#endif

#endif /* CRT_TIME_H */

#if defined(CRT_IMPLEMENTATION) && !defined(CRT__TIME_IMPL)
#define CRT__TIME_IMPL

/* `now`: the caller's clock reading, or CRT__NOW_UNREAD. */
CRT__INTERN int crt__sleep_until(crt_time deadline, crt_time now) {
    int r = crt__check_cancel();
    if (r < 0) return r;
    crt__waiter w;
    crt__waiter_init(&w);
    /* Nothing but the deadline (or an abort) can claim this waiter. */
    r = crt__waiter_wait_since(&w, deadline < 1 ? 1 : deadline, now);
    return r == -ETIMEDOUT ? 0 : r;
}

CRT_API int crt_sleep_until(crt_time deadline) { return crt__sleep_until(deadline, CRT__NOW_UNREAD); }

CRT_API int crt_sleep(crt_time duration) {
    crt_time now = crt_now();
    return crt__sleep_until(crt__add_saturating(now, duration), now);
}

CRT_API void crt_interval_init(crt_interval *iv, crt_time period, int missed) {
    if (!iv) return;
    iv->period = period;
    iv->missed = missed;
    iv->reserved = 0;
    iv->next = crt_now();
}

CRT_API int crt_interval_tick(crt_interval *iv) {
    if (!iv || iv->period <= 0 || iv->missed < CRT_MISSED_BURST || iv->missed > CRT_MISSED_SKIP) return -EINVAL;
    int r = crt_sleep_until(iv->next);
    if (r < 0) return r;
    crt_time due = iv->next;
    crt_time next = crt__add_saturating(due, iv->period);
    if (iv->missed != CRT_MISSED_BURST) {
        crt_time now = crt_now();
        if (next <= now) {
            if (iv->missed == CRT_MISSED_DELAY) next = crt__add_saturating(now, iv->period);
            else next = due + ((now - due) / iv->period + 1) * iv->period;
        }
    }
    iv->next = next;
    return 0;
}

CRT__INTERN crt_runtime *crt__clock_owner(const char *what) {
    crt__worker *w = crt__worker_tls();
    CRT_ASSERT(w != NULL && w->current != NULL, what);
    (void)what;
    return w ? w->rt : NULL;
}

CRT_API void crt_time_pause(void) {
    crt_runtime *rt = crt__clock_owner("crt_time_pause: not inside a task");
    if (!rt) return;
    crt__lock_acquire(&rt->clock_lock);
    if (!crt__load(&rt->paused, CRT__RELAXED)) {
        crt__store(&rt->frozen, crt__mono_now() + crt__load(&rt->offset, CRT__RELAXED), CRT__RELAXED);
        /* Release: frozen is written before readers see the flag. */
        crt__store(&rt->paused, 1u, CRT__RELEASE);
    }
    crt__lock_release(&rt->clock_lock);
}

CRT_API void crt_time_resume(void) {
    crt_runtime *rt = crt__clock_owner("crt_time_resume: not inside a task");
    if (!rt) return;
    crt__lock_acquire(&rt->clock_lock);
    if (crt__load(&rt->paused, CRT__RELAXED)) {
        crt__store(&rt->offset, crt__load(&rt->frozen, CRT__RELAXED) - crt__mono_now(), CRT__RELAXED);
        /* Release: offset is written before readers see the clock running. */
        crt__store(&rt->paused, 0u, CRT__RELEASE);
    }
    crt__lock_release(&rt->clock_lock);
    /* Workers asleep without a timeout must now wake for their deadlines. */
    for (unsigned i = 0; i < rt->nworkers; i++) crt__worker_unpark(&rt->workers[i]);
}

CRT_API void crt_time_advance(crt_time d) {
    crt_runtime *rt = crt__clock_owner("crt_time_advance: not inside a task");
    if (!rt || d <= 0) return;
    crt__lock_acquire(&rt->clock_lock);
    if (crt__load(&rt->paused, CRT__RELAXED))
        crt__store(&rt->frozen, crt__add_saturating(crt__load(&rt->frozen, CRT__RELAXED), d), CRT__RELEASE);
    else
        crt__store(&rt->offset, crt__load(&rt->offset, CRT__RELAXED) + d, CRT__RELEASE);
    crt__lock_release(&rt->clock_lock);
    crt__timers_fire_all(rt, 1, NULL, 0);
    (void)crt_yield();
}

#endif /* CRT_IMPLEMENTATION */
