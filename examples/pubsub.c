/* examples/pubsub.c — publish to many subscribers with a broadcast; a slow
 * subscriber lags, is told how much it lost, and recovers; configuration
 * is reloaded for everyone through a watch.
 *
 * The pattern: a crt_bcast delivers every value to every subscriber, and
 * the publisher never waits for anyone: the broadcast keeps the last N
 * values, and a subscriber that falls further behind loses the oldest.
 * Its next receive returns -EOVERFLOW (and no value); crt_bcast_missed says
 * how many it lost, and the receive after that resumes at the oldest value
 * still kept. One slow consumer cannot slow the publisher or the others.
 * For state rather than events — configuration, a feature flag, the
 * current leader — use a crt_watch: readers see only the latest value and
 * are woken when it changes. Each subscriber here waits on both with
 * crt_select, so a reload reaches it between two events.
 *
 *   tokio: tokio::sync::broadcast (RecvError::Lagged(n)) and tokio::sync::watch
 *   Go:    no built-in broadcast: a slice of channels, one per subscriber, with a
 *          non-blocking send that drops for slow ones; an atomic.Value for the config
 *
 * Use broadcast for event streams (chat rooms, market data, invalidations)
 * where a slow reader should lose old events rather than hold everyone up;
 * use watch for "the current value of X".
 *
 * Scenario: 600 events, one a millisecond, into a broadcast that keeps the
 * last 64; three fast subscribers, and a slow one that needs 3 ms an event.
 * At 0.3 s the configuration is reloaded: the slow subscriber's delay drops
 * to 0 (in a real program the reload would follow a SIGHUP and a re-read of
 * the file). Exit status 1 unless the fast subscribers get every event, the
 * slow one lags, every event it did not get is counted as missed, and it
 * gets every event published after the reload.
 *
 * Testing time-based code: CRT_EXAMPLE_SHORT=1 (as `meson test` runs it)
 * runs the same schedule on the paused clock (crt_config.start_paused with
 * workers = 1, as tokio's tests use time::pause): exact, and instant.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { NEVENTS = 600, KEEP = 64, NFAST = 3, RELOAD_MS = 300 };

typedef struct event {
    uint64_t seq; /* 1, 2, ... */
} event;

typedef struct config {
    int slow_delay_us; /* what the slow subscriber spends per event */
} config;

typedef struct subscriber {
    const char *name;
    crt_bcast_rx *rx;
    crt_watch *cfg;
    int slow;                /* applies the configured delay */
    uint64_t received, missed, last_seq, config_version;
    uint64_t received_late; /* events published after the reload (one a ms: seq > RELOAD_MS) */
    int lags, out_of_order;
} subscriber;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

/* >>subscribers */

static int handle(subscriber *s, const event *ev, const config *cfg) {
    if (ev->seq <= s->last_seq) s->out_of_order++;
    s->last_seq = ev->seq;
    s->received++;
    if (ev->seq > RELOAD_MS) s->received_late++;
    return s->slow && cfg->slow_delay_us > 0 ? crt_sleep(CRT_US(cfg->slow_delay_us)) : 0;
}

static void *subscriber_run(void *arg) {
    subscriber *s = (subscriber *)arg;
    config cfg;
    uint64_t seen = crt_watch_get(s->cfg, &cfg); /* the configuration at start */
    size_t ncases = 2;                           /* 1 once the configuration is closed */
    int rc;
    for (;;) {
        event ev;
        crt_case cs[2];
        cs[0] = CRT_CASE_BCAST(s->rx, &ev);
        cs[1] = CRT_CASE_CHANGED(s->cfg, &seen);
        /* If the publisher goes quiet for 10 s, something is wrong. */
        int i = crt_select(cs, ncases, 0, crt_after(CRT_SEC(10)));
        if (i < 0) { /* -ETIMEDOUT or -ECANCELED */
            rc = i;
            break;
        }
        if (i == 1) { /* a reload */
            if (cs[1].result == -EPIPE) ncases = 1; /* closed: no more reloads */
            else s->config_version = crt_watch_get(s->cfg, &cfg);
            continue;
        }
        rc = cs[0].result;
        if (rc == -EOVERFLOW) { /* lagged: the oldest values are gone */
            s->missed += crt_bcast_missed(s->rx);
            s->lags++;
            continue;
        }
        if (rc < 0) break; /* -EPIPE: closed and caught up, the normal end */
        rc = handle(s, &ev, &cfg);
        if (rc < 0) break;
    }
    crt_bcast_unsubscribe(s->rx);
    return (void *)(intptr_t)(rc == -EPIPE ? 0 : rc);
}

/* >>the publisher and the reload */

typedef struct publisher {
    crt_bcast *events;
    int sent;
} publisher;

static void *publisher_run(void *arg) {
    publisher *p = (publisher *)arg;
    crt_interval every_ms;
    crt_interval_init(&every_ms, CRT_MS(1), CRT_MISSED_BURST);
    int rc = 0;
    for (uint64_t seq = 1; seq <= NEVENTS && rc >= 0; seq++) {
        event ev = {seq};
        rc = crt_interval_tick(&every_ms);
        if (rc == 0) rc = crt_bcast_send(p->events, &ev); /* never waits; returns the subscriber count */
        if (rc >= 0) p->sent++;
    }
    crt_bcast_close(p->events); /* subscribers drain what is kept, then get -EPIPE */
    return (void *)(intptr_t)(rc < 0 ? rc : 0);
}

typedef struct reloader {
    crt_watch *cfg;
    crt_time after;
    crt_time t0;
} reloader;

static void *reload_config(void *arg) {
    reloader *r = (reloader *)arg;
    int rc = crt_sleep(r->after); /* stands in for crt_signal_wait(SIGHUP, ...) and re-reading a file */
    config newer = {0};
    if (rc == 0) rc = crt_watch_send(r->cfg, &newer);
    if (rc == 0)
        printf("t=%.2f s  configuration reloaded (version 1): the slow subscriber's delay is now 0\n",
               (double)(crt_now() - r->t0) / 1e9);
    return (void *)(intptr_t)rc;
}

/* >>main */

static void *main_task(void *arg) {
    (void)arg;
    config initial = {3000}; /* 3 ms an event: three times slower than the publisher */
    publisher pub = {crt_bcast_new(sizeof(event), KEEP), 0};
    crt_watch *cfg = crt_watch_new(sizeof(config), &initial);
    if (!pub.events || !cfg) {
        crt_bcast_free(pub.events);
        crt_watch_free(cfg);
        return (void *)1;
    }
    static const char *const names[NFAST + 1] = {"fast-1", "fast-2", "fast-3", "slow"};
    subscriber subs[NFAST + 1] = {0};
    crt_group g;
    crt_group_init(&g);
    int failed = 0;
    for (int i = 0; i <= NFAST; i++) {
        subs[i].name = names[i];
        subs[i].cfg = cfg;
        subs[i].slow = i == NFAST;
        subs[i].rx = crt_bcast_subscribe(pub.events); /* before the first send: they see every event */
        if (!subs[i].rx || !crt_group_spawn(&g, subscriber_run, &subs[i])) {
            crt_bcast_unsubscribe(subs[i].rx);
            subs[i].rx = NULL;
            failed++;
        }
    }
    printf("publishing %d events, one per ms, into a broadcast that keeps the last %d; %d subscribers\n", NEVENTS,
           KEEP, NFAST + 1);
    reloader rl = {.cfg = cfg, .after = CRT_MS(RELOAD_MS), .t0 = crt_now()};
    crt_task *pub_task = crt_spawn(publisher_run, &pub);
    crt_task *reload_task = crt_spawn(reload_config, &rl);
    void *rc = NULL;
    if (!pub_task || crt_join(pub_task, &rc, crt_after(CRT_SEC(30))) < 0 || rc) failed++;
    if (!reload_task || crt_join(reload_task, &rc, crt_after(CRT_SEC(30))) < 0 || rc) failed++;
    if (!pub_task) crt_bcast_close(pub.events);
    crt_bcast_free(pub.events); /* the sender's handle; each subscriber keeps its own until it unsubscribes */

    int r;
    while ((r = crt_group_next(&g, &rc, crt_after(CRT_SEC(30)))) == 0)
        if (rc) failed++;
    if (r != -EPIPE) failed++;
    crt_group_destroy(&g);
    crt_watch_close(cfg);
    crt_watch_free(cfg);

    int ok = !failed && pub.sent == NEVENTS;
    for (int i = 0; i < NFAST; i++) {
        subscriber *s = &subs[i];
        ok = ok && s->received == NEVENTS && s->missed == 0 && s->out_of_order == 0 && s->config_version == 1;
    }
    printf("%s, %s, %s: %llu, %llu, %llu of %d events, in order, none missed; each saw config version %llu\n",
           names[0], names[1], names[2], (unsigned long long)subs[0].received, (unsigned long long)subs[1].received,
           (unsigned long long)subs[2].received, NEVENTS, (unsigned long long)subs[0].config_version);
    subscriber *slow = &subs[NFAST];
    printf("slow: lagged %d times (-EOVERFLOW): %llu events received + %llu missed = %d\n", slow->lags,
           (unsigned long long)slow->received, (unsigned long long)slow->missed, NEVENTS);
    printf("slow: after the reload it caught up: it got all %llu of the %d events published after it\n",
           (unsigned long long)slow->received_late, NEVENTS - RELOAD_MS);
    ok = ok && slow->lags > 0 && slow->received + slow->missed == NEVENTS && slow->last_seq == NEVENTS &&
         slow->received_late == NEVENTS - RELOAD_MS && slow->out_of_order == 0 && slow->config_version == 1;
    if (!ok) fprintf(stderr, "pubsub: FAILED: lost events, no lag, or no recovery\n");
    return (void *)(intptr_t)(ok ? 0 : 1);
}

int main(void) {
    crt_config cfg = {0};
    if (short_mode()) {
        cfg.workers = 1;
        cfg.start_paused = 1; /* the 1 ms and 3 ms steps, exact and instant */
    } else {
        cfg.workers = 2;
    }
    void *status = NULL;
    int rc = crt_run(&cfg, main_task, NULL, &status);
    if (rc < 0) {
        fprintf(stderr, "pubsub: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
