/* examples/timeout.c — put a deadline on anything: one call, a sequence of
 * calls, or a piece of code that takes no deadline at all — and cancel the
 * task that overruns it.
 *
 * The pattern, in four steps:
 *   1. every blocking call in crt takes an absolute deadline: pass
 *      crt_after(d), and -ETIMEDOUT says it passed (nothing was taken or
 *      sent: the call simply did not happen);
 *   2. for several steps under one budget, compute the deadline once and
 *      pass the same one to each call: the budget shrinks by itself, with no
 *      arithmetic of time left (libdill's rule);
 *   3. for code that takes no deadline, run it as a task and join it with
 *      the deadline; if that passes, crt_abort it: its blocking calls return
 *      -ECANCELED, it unwinds through its own error paths and frees what it
 *      owns, and you join it again (with_timeout below);
 *   4. a CPU loop that never blocks cannot be interrupted: it must look now
 *      and then (crt_yield returns -ECANCELED once the task is aborted, and
 *      lets other tasks run on its worker meanwhile).
 *
 *   tokio: tokio::time::timeout(d, fut) (dropping the future cancels it), JoinHandle::abort
 *   Go:    context.WithTimeout, select with <-ctx.Done(); the code must check ctx itself
 *
 * Exit status 1 if a deadline was missed by more than a generous margin,
 * an operation finished that should have timed out (or the reverse), or a
 * cancelled task did not clean up.
 *
 * CRT_EXAMPLE_SHORT=1 (as `meson test` runs it): every duration divided
 * by four. It runs on the real clock, on two workers: step 4 needs a real
 * CPU loop, which a paused clock would never let time pass for.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static crt_time unit;           /* 100 ms, or 25 ms in short mode */
static int failures;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

static double secs(crt_time t) { return (double)t / 1e9; }

/* The deadline was kept: not early (1 ms for the clock's rounding), and not
 * late by more than a margin that a loaded machine (or Valgrind) may need. */
static void check_took(const char *what, crt_time took, crt_time budget) {
    if (took >= budget - CRT_MS(1) && took <= budget + CRT_SEC(1)) return;
    fprintf(stderr, "timeout: FAILED: %s took %.3f s for a budget of %.3f s\n", what, secs(took), secs(budget));
    failures++;
}

static void check(int ok, const char *what) {
    if (ok) return;
    fprintf(stderr, "timeout: FAILED: %s\n", what);
    failures++;
}

/* >>1. a deadline on one call */
static void one_call(void) {
    crt_chan *ch = crt_chan_new(sizeof(int), 1);
    if (!ch) {
        check(0, "crt_chan_new");
        return;
    }
    int v;
    crt_time start = crt_now();
    int rc = crt_chan_recv(ch, &v, crt_after(5 * unit)); /* nobody sends */
    crt_time took = crt_now() - start;
    printf("1. a receive with a %.3f s deadline: %s after %.3f s\n", secs(5 * unit), crt_strerror(rc), secs(took));
    check(rc == -ETIMEDOUT, "the receive did not time out");
    check_took("the receive", took, 5 * unit);
    crt_chan_free(ch);
}

/* >>2. one deadline for several steps */
typedef struct ticker {
    crt_chan *ch;
    crt_time every;
} ticker;

static void *slow_sender(void *arg) { /* one message every 4 units */
    ticker *t = (ticker *)arg;
    for (int i = 1;; i++) {
        if (crt_sleep(t->every) < 0) break;
        if (crt_chan_send(t->ch, &i, crt_after(CRT_SEC(10))) < 0) break; /* -EPIPE: the reader is gone */
    }
    return NULL;
}

static void several_steps(void) {
    ticker t = {.ch = crt_chan_new(sizeof(int), 4), .every = 4 * unit};
    crt_task *sender = t.ch ? crt_spawn(slow_sender, &t) : NULL;
    if (!sender) {
        check(0, "setting up step 2");
        crt_chan_free(t.ch);
        return;
    }
    crt_time start = crt_now(), budget = 10 * unit;
    crt_time deadline = crt_after(budget); /* once, for all three steps */
    int got = 0, rc = 0, v;
    while (got < 3 && (rc = crt_chan_recv(t.ch, &v, deadline)) == 0) got++;
    crt_time took = crt_now() - start;
    printf("2. three messages %.3f s apart under one %.3f s deadline: got %d, then %s at %.3f s\n", secs(t.every),
           secs(budget), got, crt_strerror(rc), secs(took));
    check(rc == -ETIMEDOUT && got < 3, "three messages arrived within the budget");
    check_took("the sequence", took, budget);
    crt_chan_close(t.ch); /* the sender's next send fails with -EPIPE; abort it in case it sleeps */
    crt_abort(sender);
    crt_join(sender, NULL, CRT_FOREVER);
    crt_chan_free(t.ch);
}

/* >>3. a deadline on code that takes none */

/* Runs fn(arg) as a task until the deadline. If it has not finished by
 * then, aborts it and waits for it to unwind.
 * Returns 0 (*result: fn's return value), -ETIMEDOUT (it was cancelled),
 * -ECANCELED (we were aborted; so was it), or a spawn error. */
static int with_timeout(crt_fn fn, void *arg, crt_time deadline, void **result) {
    crt_task *t = crt_spawn(fn, arg);
    if (!t) return -errno;
    int rc = crt_join(t, result, deadline);
    if (rc == 0) return 0;
    crt_abort(t);            /* its blocking calls return -ECANCELED from now on */
    int was = crt_shield(1); /* even if we were aborted ourselves: wait for it to unwind */
    crt_join(t, NULL, CRT_FOREVER);
    crt_shield(was);
    return rc;
}

typedef struct report {
    int steps;       /* how many steps it is */
    int done;
    int cleaned_up;
} report;

/* Builds a report in steps of one unit each, in a buffer it owns. */
static void *build_report(void *arg) {
    report *r = (report *)arg;
    char *buf = malloc(64 * 1024);
    if (!buf) return NULL;
    int rc = 0;
    for (r->done = 0; r->done < r->steps && rc == 0; r->done++) rc = crt_sleep(unit); /* a query each */
    free(buf); /* on every path: finished, or cancelled mid-way */
    r->cleaned_up = 1;
    return rc == 0 ? r : NULL;
}

static void code_without_deadline(void) {
    report quick = {.steps = 2}, slow = {.steps = 20};
    void *res = NULL;
    crt_time start = crt_now();
    int rc = with_timeout(build_report, &quick, crt_after(6 * unit), &res);
    printf("3. a 2-step report with a 6-step timeout: %s after %.3f s\n", rc == 0 ? "finished" : crt_strerror(rc),
           secs(crt_now() - start));
    check(rc == 0 && res == &quick, "the quick report did not finish");

    start = crt_now();
    rc = with_timeout(build_report, &slow, crt_after(6 * unit), &res);
    crt_time took = crt_now() - start;
    printf("   a 20-step report with the same timeout: %s after %.3f s; cancelled in step %d, it freed its "
           "buffer\n", crt_strerror(rc), secs(took), slow.done);
    check(rc == -ETIMEDOUT && slow.cleaned_up && slow.done < slow.steps,
          "the slow report was not cancelled and cleaned up");
    check_took("the slow report", took, 6 * unit);
}

/* >>4. a CPU loop that looks now and then */
static void *crunch(void *arg) {
    uint64_t *iterations = (uint64_t *)arg;
    uint64_t x = 1;
    for (uint64_t i = 1;; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u; /* the work */
        if (i % 4096 == 0 && crt_yield() < 0) {                /* -ECANCELED: stop */
            *iterations = i;
            break;
        }
    }
    return (void *)(uintptr_t)(x | 1);
}

static void cpu_loop(void) {
    uint64_t iterations = 0;
    crt_time start = crt_now();
    int rc = with_timeout(crunch, &iterations, crt_after(4 * unit), NULL);
    crt_time took = crt_now() - start;
    printf("4. an endless CPU loop that calls crt_yield every 4096 rounds: %s after %.3f s (%llu rounds)\n",
           crt_strerror(rc), secs(took), (unsigned long long)iterations);
    check(rc == -ETIMEDOUT && iterations > 0, "the CPU loop was not stopped");
    check_took("the CPU loop", took, 4 * unit);
}

static void *main_task(void *arg) {
    (void)arg;
    one_call();
    several_steps();
    code_without_deadline();
    cpu_loop();
    return (void *)(intptr_t)(failures ? 1 : 0);
}

int main(void) {
    unit = short_mode() ? CRT_MS(25) : CRT_MS(100);
    crt_config cfg = {0};
    cfg.workers = 2;
    void *status = NULL;
    int rc = crt_run(&cfg, main_task, NULL, &status);
    if (rc < 0) {
        fprintf(stderr, "timeout: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
