/* examples/monitors.c — background tasks on intervals (a health check every
 * second, a metrics report every five) that stop when the program does.
 *
 * The pattern: a task per periodic duty, each looping on crt_interval_tick.
 * An interval keeps its own schedule (start + k * period), so the time the
 * duty itself takes does not make it drift, and its missed-tick policy says
 * what happens when a tick comes late (a busy machine, a long check):
 * CRT_MISSED_SKIP for a health check (one late check is enough; never run
 * a burst of them), CRT_MISSED_DELAY for a report (keep the spacing).
 * They run in a crt_group; shutdown is crt_group_destroy, which aborts
 * them: crt_interval_tick returns -ECANCELED and each monitor returns.
 *
 *   tokio: tokio::time::interval + MissedTickBehavior, tasks in a JoinSet, abort_all
 *   Go:    time.NewTicker in a goroutine, `select { case <-t.C: ...; case <-ctx.Done(): return }`
 *
 * Use it for health checks, metrics, cache expiry, heartbeats, polling.
 *
 * A simulated service serves requests and has a backlog that is high from
 * 3.5 s to 6.5 s; the health check must report "degraded" at 4 s and "ok"
 * again at 7 s. Exit status 1 if the monitors did not tick as scheduled,
 * missed the transitions, or did not stop on shutdown.
 *
 * Testing time-based code: CRT_EXAMPLE_SHORT=1 (as `meson test` runs it)
 * keeps the real 1 s and 5 s periods but starts the runtime with the clock
 * paused (crt_config.start_paused, workers = 1), as tokio's tests do with
 * time::pause: whenever every task is idle the clock jumps to the next
 * deadline, so 11.5 s of schedule run in a few milliseconds, and exactly.
 * Without it, the same program runs on the real clock for 11.5 s.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define HEALTH_PERIOD CRT_SEC(1)
#define METRICS_PERIOD CRT_SEC(5)
#define RUN_FOR CRT_MS(11500)
#define DEGRADED_ABOVE 20

/* The service being watched: the monitors only read it. */
typedef struct service {
    atomic_long served;
    atomic_int backlog;
} service;

typedef struct monitor {
    service *svc;
    crt_time start;
    int ticks;
    int stopped_by;              /* the error that ended the loop: -ECANCELED at shutdown */
    crt_time went_degraded, went_ok; /* health: when the transitions were seen */
} monitor;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

static double seconds_since(crt_time start) { return (double)(crt_now() - start) / 1e9; }

/* >>the service: 25 requests every 100 ms; a backlog from 3.5 s to 6.5 s */
static void *service_run(void *arg) {
    service *s = (service *)arg;
    crt_interval iv;
    crt_interval_init(&iv, CRT_MS(100), CRT_MISSED_BURST);
    int rc;
    for (long k = 0; (rc = crt_interval_tick(&iv)) == 0; k++) {
        atomic_fetch_add(&s->served, 25);
        atomic_store(&s->backlog, k >= 35 && k < 65 ? 40 : 2);
    }
    return (void *)(intptr_t)rc;
}

/* >>health check: every second; prints only when the state changes */
static void *health_check(void *arg) {
    monitor *m = (monitor *)arg;
    crt_interval iv;
    crt_interval_init(&iv, HEALTH_PERIOD, CRT_MISSED_SKIP);
    int healthy = 1;
    while ((m->stopped_by = crt_interval_tick(&iv)) == 0) { /* the first tick is at once */
        m->ticks++;
        int backlog = atomic_load(&m->svc->backlog);
        int now_healthy = backlog <= DEGRADED_ABOVE;
        if (now_healthy == healthy) continue;
        healthy = now_healthy;
        printf("t=%4.1f s  health: %s (backlog %d)\n", seconds_since(m->start), healthy ? "ok" : "degraded", backlog);
        if (healthy) m->went_ok = crt_now() - m->start;
        else m->went_degraded = crt_now() - m->start;
    }
    return NULL;
}

/* >>metrics: every five seconds, the request rate over the last period */
static void *metrics_report(void *arg) {
    monitor *m = (monitor *)arg;
    crt_interval iv;
    crt_interval_init(&iv, METRICS_PERIOD, CRT_MISSED_DELAY);
    m->stopped_by = crt_interval_tick(&iv); /* the first tick is at once: skip it, report after a period */
    long last = atomic_load(&m->svc->served);
    crt_time last_at = crt_now();
    while (m->stopped_by == 0 && (m->stopped_by = crt_interval_tick(&iv)) == 0) {
        m->ticks++;
        long served = atomic_load(&m->svc->served);
        double secs = (double)(crt_now() - last_at) / 1e9;
        printf("t=%4.1f s  metrics: %ld requests in %.1f s (%.0f/s)\n", seconds_since(m->start), served - last, secs,
               secs > 0 ? (double)(served - last) / secs : 0.0);
        last = served;
        last_at = crt_now();
    }
    return NULL;
}

/* Within half a second (the real clock) or exactly (the paused one). */
static int near(crt_time t, crt_time want) {
    crt_time slack = short_mode() ? 0 : CRT_MS(500);
    return t >= want - slack && t <= want + slack;
}

static void *monitors_main(void *arg) {
    (void)arg;
    service svc;
    atomic_init(&svc.served, 0);
    atomic_init(&svc.backlog, 0);
    crt_time start = crt_now();
    monitor health = {.svc = &svc, .start = start}, metrics = {.svc = &svc, .start = start};

    crt_group background;
    crt_group_init(&background);
    int spawned = crt_group_spawn(&background, service_run, &svc) &&
                  crt_group_spawn(&background, health_check, &health) &&
                  crt_group_spawn(&background, metrics_report, &metrics);
    printf("a health check every %lld s, metrics every %lld s, for %.1f s%s\n",
           (long long)(HEALTH_PERIOD / CRT_SEC(1)), (long long)(METRICS_PERIOD / CRT_SEC(1)), (double)RUN_FOR / 1e9,
           short_mode() ? " (on the paused clock: instantly)" : "");

    int rc = spawned ? crt_sleep(RUN_FOR) : -errno; /* the program's real work would go here */
    if (rc < 0) fprintf(stderr, "monitors: %s\n", crt_strerror(rc));
    crt_group_destroy(&background); /* shutdown: every monitor's crt_interval_tick returns -ECANCELED */
    printf("t=%4.1f s  shut down: the health check ticked %d times, the report %d times; both stopped (%s)\n",
           seconds_since(start), health.ticks, metrics.ticks, crt_strerror(health.stopped_by));

    /* Ticks at 0, 1, ..., 11 s and at 5, 10 s; give the real clock one either way. */
    int slack = short_mode() ? 0 : 1;
    int ok = rc == 0 && abs(health.ticks - 12) <= slack && abs(metrics.ticks - 2) <= slack &&
             near(health.went_degraded, CRT_SEC(4)) && near(health.went_ok, CRT_SEC(7)) &&
             health.stopped_by == -ECANCELED && metrics.stopped_by == -ECANCELED;
    if (!ok) fprintf(stderr, "monitors: FAILED: the monitors did not run or stop as scheduled\n");
    return (void *)(intptr_t)(ok ? 0 : 1);
}

int main(void) {
    crt_config cfg = {0};
    if (short_mode()) {
        cfg.workers = 1;      /* "every task idle" is exact on one thread */
        cfg.start_paused = 1; /* virtual time: the clock jumps to the next deadline */
    } else {
        cfg.workers = 2;
    }
    void *status = NULL;
    int rc = crt_run(&cfg, monitors_main, NULL, &status);
    if (rc < 0) {
        fprintf(stderr, "monitors: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
