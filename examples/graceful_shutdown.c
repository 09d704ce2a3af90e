/* examples/graceful_shutdown.c — stop a service cleanly on SIGINT/SIGTERM
 * or when told to: finish what is in flight, flush, and never wait for ever.
 *
 * The pattern (the orchestrator of tokio's graceful-shutdown guide):
 *   1. find out when to stop: a task per signal waits in crt_signal_wait,
 *      and anyone else may cancel the shutdown token (an admin command, a
 *      parent component, an uptime limit);
 *   2. tell every part to stop: one crt_token; the intake and the workers
 *      crt_select on their work *and* the token, so they notice at once;
 *   3. wait for them, with a deadline: workers finish the job in hand and
 *      flush their batch of results; whoever is still busy when the grace
 *      period ends is aborted (crt_group_destroy) and unwinds through its
 *      own error path, where a shielded flush still saves its results.
 *
 *   tokio: tokio::signal::ctrl_c + CancellationToken + select! + JoinSet with a timeout
 *   Go:    signal.NotifyContext + ctx.Done() in each select + WaitGroup with a deadline
 *
 * Use it for every long-running program: a server, a queue consumer, a
 * daemon. The token says "stop taking work", which is not the same as
 * "abort": work in hand goes on until it is done or the deadline comes.
 *
 * The accounting is checked: every job taken is finished and committed,
 * cut off at the deadline, or still in the queue. Exit status 1 if any is
 * unaccounted for, if a result was not flushed, or if shutting down took
 * longer than the grace period (plus a margin).
 *
 *   graceful_shutdown [seconds]      serve for that long (default 10) or until Ctrl-C
 *
 * CRT_EXAMPLE_SHORT=1 (as `meson test` runs it): two short rounds, with a
 * grace period of 300 ms. In the first another task cancels the token; in
 * the second the program sends itself a real SIGTERM. In every run, job 0
 * takes an hour, so the deadline must cut it short.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { NWORKERS = 4, BATCH = 8, QUEUE = 16 };
#define TRIGGER_TOKEN (-1) /* the token was cancelled directly (not by a signal) */

typedef struct job {
    int id;
    crt_time cost;
} job;

typedef struct service {
    crt_token shutdown;     /* cancelled once, by whoever asks first */
    atomic_int trigger;     /* who asked: SIGINT, SIGTERM or TRIGGER_TOKEN (0: nobody yet) */
    crt_chan *jobs;         /* intake -> workers */
    crt_group workers;
    crt_group helpers;      /* the intake, the signal watchers, the timer */
    crt_mutex sink_lock;    /* the sink where workers commit results, a batch at a time */
    long committed;
    crt_notify long_job_started; /* for the demo: shut down while it runs */
    atomic_int produced, completed, abandoned, busy;
    crt_time job_cost, long_job_cost, arrival_gap, uptime;
    int demo_signal;        /* CRT_EXAMPLE_SHORT: 0 cancel the token, 1 send SIGTERM */
} service;

typedef struct worker {
    service *svc;
    int batch[BATCH];       /* finished jobs not yet committed */
    int nbatch;
} worker;

typedef struct signal_watcher {
    service *svc;
    int signo;
} signal_watcher;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

static const char *trigger_name(int trigger) {
    if (trigger == SIGINT) return "SIGINT";
    if (trigger == SIGTERM) return "SIGTERM";
    return trigger == TRIGGER_TOKEN ? "the shutdown token" : "?";
}

/* >>1. find out when to stop */

/* The first caller's reason is kept; the cancel itself is idempotent. */
static void request_shutdown(service *s, int why) {
    int nobody = 0;
    atomic_compare_exchange_strong(&s->trigger, &nobody, why);
    crt_token_cancel(&s->shutdown);
}

static void *watch_signal(void *arg) {
    signal_watcher *w = (signal_watcher *)arg;
    if (crt_signal_wait(w->signo, CRT_FOREVER) == 0) request_shutdown(w->svc, w->signo);
    return NULL; /* -ECANCELED: the service stopped for another reason */
}

/* Serve for s->uptime at most. crt_token_wait is an interruptible sleep:
 * -ETIMEDOUT when the time is up, 0 if the service stops first. */
static void *uptime_limit(void *arg) {
    service *s = (service *)arg;
    if (crt_token_wait(&s->shutdown, crt_after(s->uptime)) == -ETIMEDOUT) request_shutdown(s, TRIGGER_TOKEN);
    return NULL;
}

/* The demo's driver (CRT_EXAMPLE_SHORT=1): once the hour-long job runs,
 * ask for shutdown — with a real SIGTERM, or by cancelling the token. If
 * something went wrong it still stops the service (and the checks fail). */
static void *demo_driver(void *arg) {
    service *s = (service *)arg;
    int rc = crt_notify_wait(&s->long_job_started, crt_after(CRT_SEC(10)));
    if (rc == 0) rc = crt_sleep(CRT_MS(100));
    if (rc == -ECANCELED) return NULL; /* the service is stopping already */
    if (s->demo_signal && kill(getpid(), SIGTERM) == 0) return NULL;
    request_shutdown(s, TRIGGER_TOKEN);
    return NULL;
}

/* >>2. the intake and the workers: their work, or the token */

static void *intake(void *arg) {
    service *s = (service *)arg;
    for (int id = 0;; id++) {
        job j = {id, id == 0 ? s->long_job_cost : s->job_cost};
        crt_case cs[2];
        cs[0] = CRT_CASE_TOKEN(&s->shutdown);
        cs[1] = CRT_CASE_SEND(s->jobs, &j);
        /* Biased: when both are ready, shutdown wins over taking more work. */
        int i = crt_select(cs, 2, CRT_SELECT_BIASED, CRT_FOREVER);
        if (i != 1 || cs[1].result < 0) break; /* the token, or -ECANCELED */
        atomic_fetch_add(&s->produced, 1);
        if (crt_token_wait(&s->shutdown, crt_after(s->arrival_gap)) != -ETIMEDOUT) break; /* next arrival */
    }
    crt_chan_close(s->jobs); /* no more work will come */
    return NULL;
}

/* Commits the batch of finished jobs to the sink. Shielded, because this is
 * the cleanup of a worker that may have been aborted: the abort waits until
 * the results are safe, then takes effect. */
static int flush(worker *w) {
    if (w->nbatch == 0) return 0;
    service *s = w->svc;
    int was = crt_shield(1);
    int rc = crt_mutex_lock(&s->sink_lock, crt_after(CRT_SEC(5)));
    if (rc == 0) {
        rc = crt_sleep(CRT_MS(1)); /* the write to storage */
        if (rc == 0) {
            s->committed += w->nbatch;
            w->nbatch = 0;
        }
        crt_mutex_unlock(&s->sink_lock);
    }
    crt_shield(was);
    return rc;
}

/* Runs one job. The token does not stop it; only an abort (the end of the
 * grace period) does, and then the job is abandoned. */
static int process(worker *w, const job *j) {
    service *s = w->svc;
    atomic_fetch_add(&s->busy, 1);
    if (j->cost > s->job_cost) crt_notify_one(&s->long_job_started);
    int rc = crt_sleep(j->cost); /* the work */
    atomic_fetch_sub(&s->busy, 1);
    if (rc < 0) {
        atomic_fetch_add(&s->abandoned, 1);
        return rc;
    }
    atomic_fetch_add(&s->completed, 1);
    w->batch[w->nbatch++] = j->id;
    return w->nbatch == BATCH ? flush(w) : 0;
}

static void *worker_run(void *arg) {
    worker *w = (worker *)arg;
    service *s = w->svc;
    for (;;) {
        job j;
        crt_case cs[2];
        cs[0] = CRT_CASE_TOKEN(&s->shutdown);
        cs[1] = CRT_CASE_RECV(s->jobs, &j);
        int i = crt_select(cs, 2, CRT_SELECT_BIASED, CRT_FOREVER);
        if (i != 1 || cs[1].result < 0) break; /* the token, the intake closed (-EPIPE), or -ECANCELED */
        if (process(w, &j) < 0) break;         /* aborted in the middle of the job */
    }
    int rc = flush(w); /* whatever stopped us: what we finished reaches the sink */
    if (rc < 0) fprintf(stderr, "graceful_shutdown: flush: %s\n", crt_strerror(rc));
    return (void *)(intptr_t)rc;
}

/* >>3. run the service, then stop it within the grace period */

static int spawn_helpers(service *s, signal_watcher watchers[2]) {
    watchers[0] = (signal_watcher){.svc = s, .signo = SIGINT};
    watchers[1] = (signal_watcher){.svc = s, .signo = SIGTERM};
    if (!crt_group_spawn(&s->helpers, watch_signal, &watchers[0])) return -errno;
    if (!crt_group_spawn(&s->helpers, watch_signal, &watchers[1])) return -errno;
    if (!crt_group_spawn(&s->helpers, intake, s)) return -errno;
    if (!crt_group_spawn(&s->helpers, short_mode() ? demo_driver : uptime_limit, s)) return -errno;
    return 0;
}

/* Runs the service until asked to stop, then stops it. Returns 1 if the
 * accounting does not add up, else 0. expected: the trigger that should
 * stop it (0: any). */
static int run_service(service *s, crt_time grace, int expected) {
    crt_token_init(&s->shutdown, NULL);
    crt_group_init(&s->workers);
    crt_group_init(&s->helpers);
    crt_mutex_init(&s->sink_lock);
    crt_notify_init(&s->long_job_started);
    s->jobs = crt_chan_new(sizeof(job), QUEUE);
    if (!s->jobs) return 1;

    signal_watcher watchers[2];
    worker workers[NWORKERS] = {0};
    int failed = spawn_helpers(s, watchers) < 0;
    for (int i = 0; i < NWORKERS && !failed; i++) {
        workers[i].svc = s;
        failed = crt_group_spawn(&s->workers, worker_run, &workers[i]) == NULL;
    }
    if (failed) {
        fprintf(stderr, "graceful_shutdown: spawn: %s\n", crt_strerror(-errno));
        request_shutdown(s, TRIGGER_TOKEN);
    }

    /* Serve until someone asks us to stop. */
    int rc = crt_token_wait(&s->shutdown, CRT_FOREVER);
    if (rc < 0) request_shutdown(s, TRIGGER_TOKEN); /* -ECANCELED: we were aborted ourselves */
    crt_time asked = crt_now();
    int trigger = atomic_load(&s->trigger);
    printf("  shutdown requested by %s: the intake stops; %lld ms of grace for the %d job(s) in progress\n",
           trigger_name(trigger), (long long)(grace / CRT_MS(1)), atomic_load(&s->busy));

    rc = crt_group_wait(&s->workers, crt_after(grace));
    if (rc == -ETIMEDOUT)
        printf("  grace period over with %d job(s) still running: aborting them\n", atomic_load(&s->busy));
    crt_group_destroy(&s->workers); /* aborts the stragglers and waits for them */
    crt_group_destroy(&s->helpers); /* the watchers and the timer; the intake has gone already */
    crt_time took = crt_now() - asked;

    job j;
    int left = 0;
    while (crt_chan_recv(s->jobs, &j, CRT_TRY) == 0) left++; /* never started: a real service hands them back */
    crt_chan_free(s->jobs);
    crt_notify_destroy(&s->long_job_started);
    crt_mutex_destroy(&s->sink_lock);
    crt_token_destroy(&s->shutdown);

    int produced = atomic_load(&s->produced), completed = atomic_load(&s->completed);
    int abandoned = atomic_load(&s->abandoned);
    printf("  stopped in %.2f s: %d jobs taken = %d finished (%ld committed) + %d abandoned + %d left queued\n",
           (double)took / 1e9, produced, completed, s->committed, abandoned, left);

    int ok = !failed && produced == completed + abandoned + left && s->committed == completed && abandoned == 1 &&
             took <= grace + CRT_SEC(2) && (expected == 0 || trigger == expected);
    if (!ok) fprintf(stderr, "graceful_shutdown: FAILED: the accounting does not add up (or took too long)\n");
    return ok ? 0 : 1;
}

static void service_defaults(service *s, crt_time uptime) {
    *s = (service){0};
    s->job_cost = short_mode() ? CRT_MS(20) : CRT_MS(200);
    s->arrival_gap = short_mode() ? CRT_MS(10) : CRT_MS(100);
    s->long_job_cost = CRT_SEC(3600); /* an hour-long report: the grace period must cut it */
    s->uptime = uptime;
}

static void *main_task(void *arg) {
    crt_time uptime = *(crt_time *)arg;
    service s;
    int failed = 0;
    if (!short_mode()) {
        printf("serving for %lld s, or until SIGINT (Ctrl-C) or SIGTERM\n", (long long)(uptime / CRT_SEC(1)));
        service_defaults(&s, uptime);
        failed |= run_service(&s, CRT_SEC(3), 0);
    } else {
        printf("round 1: another task cancels the shutdown token\n");
        service_defaults(&s, uptime);
        failed |= run_service(&s, CRT_MS(300), TRIGGER_TOKEN);
        printf("round 2: the process sends itself SIGTERM\n");
        service_defaults(&s, uptime);
        s.demo_signal = 1;
        failed |= run_service(&s, CRT_MS(300), SIGTERM);
    }
    return (void *)(intptr_t)failed;
}

int main(int argc, char **argv) {
    crt_time uptime = CRT_SEC(argc > 1 ? atoi(argv[1]) : 10);
    if (uptime <= 0) {
        fprintf(stderr, "usage: graceful_shutdown [seconds]\n");
        return 2;
    }
    /* Install crt's handlers before anything can send a signal: from here on
     * SIGINT and SIGTERM are counted for crt_signal_wait, not fatal. */
    int rc = crt_signal_wait(SIGINT, CRT_TRY);
    if (rc == -EAGAIN) rc = crt_signal_wait(SIGTERM, CRT_TRY);
    if (rc != -EAGAIN) {
        fprintf(stderr, "graceful_shutdown: installing the signal handlers: %s\n", crt_strerror(rc));
        return 1;
    }
    crt_config cfg = {0};
    cfg.workers = 2;
    void *status = NULL;
    rc = crt_run(&cfg, main_task, &uptime, &status);
    if (rc < 0) {
        fprintf(stderr, "graceful_shutdown: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
