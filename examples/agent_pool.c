/* examples/agent_pool.c — a bounded pool: many agents, at most N at work.
 *
 * The pattern: you have more jobs than a resource can take at once (an API
 * that allows N concurrent calls, a database with N connections, N GPUs).
 * Spawn a task per job, and let a semaphore with N permits decide who works:
 * each agent takes a permit before the expensive part and gives it back
 * after. The others wait in line, first come, first served (crt_sem is
 * strictly FIFO), each with a deadline so nobody waits for ever.
 *
 *   tokio: Arc<Semaphore>, `let _permit = sem.acquire().await?;` in each task
 *   Go:    sem := make(chan struct{}, N); sem <- struct{}{}; defer func() { <-sem }()
 *
 * Use it when the tasks themselves are cheap to have around and only the
 * work must be bounded; when you want at most K tasks to exist at all (a
 * long list to process), see bounded_map.c.
 *
 * The agents are spawned into a crt_group, which owns them: the main task
 * collects their results with crt_group_next and, on any way out, the
 * group's destroy cancels and waits for what is left — no agent outlives
 * the pool. Two worker threads run them, so the bound is tested across
 * threads: an atomic counter of agents at work, and the highest value it
 * reached, prove it. Exit status 1 if it ever exceeded N, or an agent failed.
 *
 * CRT_EXAMPLE_SHORT=1 (as `meson test` runs it): 24 agents of 20 ms each
 * instead of 40 of 250 ms.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { PERMITS = 4, MAX_AGENTS = 64 };

typedef struct pool {
    crt_sem permits;        /* PERMITS agents at work, the rest wait in line */
    crt_time work;          /* how long one agent's job takes */
    crt_time queue_timeout; /* an agent gives up if it waits longer than this */
    atomic_int at_work;     /* agents holding a permit right now */
    atomic_int peak;        /* the most there ever were at once */
    atomic_llong longest_wait;
} pool;

typedef struct agent {
    pool *pool;
    int id;
} agent;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

/* Counts an agent in, and remembers the highest count ever seen. */
static void enter(pool *p) {
    int now = atomic_fetch_add(&p->at_work, 1) + 1;
    int peak = atomic_load(&p->peak);
    while (now > peak && !atomic_compare_exchange_weak(&p->peak, &peak, now)) {
    }
}

static void leave(pool *p) { atomic_fetch_sub(&p->at_work, 1); }

static void note_wait(pool *p, crt_time waited) {
    long long longest = atomic_load(&p->longest_wait);
    while (waited > longest && !atomic_compare_exchange_weak(&p->longest_wait, &longest, waited)) {
    }
}

/* One agent: wait for a permit, do the bounded work, give the permit back.
 * Returns 0, or the negative errno that stopped it (as a pointer-sized int). */
static void *agent_run(void *arg) {
    agent *a = (agent *)arg;
    pool *p = a->pool;
    crt_time asked = crt_now();
    int rc = crt_sem_acquire(&p->permits, 1, crt_after(p->queue_timeout));
    if (rc < 0) return (void *)(intptr_t)rc; /* -ETIMEDOUT: waited too long; -ECANCELED: the pool is closing */
    note_wait(p, crt_now() - asked);

    enter(p);
    rc = crt_sleep(p->work); /* the work that only PERMITS agents may do at once */
    leave(p);

    crt_sem_release(&p->permits, 1); /* on every path that acquired: even after -ECANCELED */
    return (void *)(intptr_t)rc;
}

static void *pool_main(void *arg) {
    (void)arg;
    int nagents = short_mode() ? 24 : 40;
    pool p;
    p.work = short_mode() ? CRT_MS(20) : CRT_MS(250);
    p.queue_timeout = CRT_SEC(30);
    atomic_init(&p.at_work, 0);
    atomic_init(&p.peak, 0);
    atomic_init(&p.longest_wait, 0);
    crt_sem_init(&p.permits, PERMITS);

    agent agents[MAX_AGENTS];
    crt_group team;
    crt_group_init(&team);
    printf("%d agents, %d permits, 2 worker threads, %lld ms of work each\n", nagents, PERMITS,
           (long long)(p.work / CRT_MS(1)));

    crt_time start = crt_now();
    int spawned = 0, failed = 0;
    for (int i = 0; i < nagents; i++) {
        agents[i].pool = &p;
        agents[i].id = i;
        if (!crt_group_spawn(&team, agent_run, &agents[i])) {
            fprintf(stderr, "agent_pool: spawn: %s\n", crt_strerror(-errno));
            failed++;
            break;
        }
        spawned++;
    }

    /* Collect every agent's outcome, with a deadline on the whole pool. */
    crt_time deadline = crt_after(CRT_SEC(60));
    int finished = 0, rc;
    void *result;
    while ((rc = crt_group_next(&team, &result, deadline)) == 0) {
        finished++;
        if ((intptr_t)result != 0) {
            fprintf(stderr, "agent_pool: an agent failed: %s\n", crt_strerror((int)(intptr_t)result));
            failed++;
        }
    }
    if (rc != -EPIPE) fprintf(stderr, "agent_pool: collecting: %s\n", crt_strerror(rc)); /* -EPIPE: none left */
    crt_group_destroy(&team); /* cancels and waits for any agent still running (none, normally) */
    crt_sem_destroy(&p.permits);

    double secs = (double)(crt_now() - start) / 1e9;
    int peak = atomic_load(&p.peak);
    printf("all %d agents done in %.2f s; at most %d worked at once (the bound is %d)\n", finished, secs, peak,
           PERMITS);
    printf("the longest wait in line for a permit was %.2f s\n", (double)atomic_load(&p.longest_wait) / 1e9);

    int ok = 1;
    if (peak > PERMITS) {
        fprintf(stderr, "agent_pool: FAILED: %d agents worked at once, more than %d\n", peak, PERMITS);
        ok = 0;
    }
    if (failed || finished != spawned || spawned != nagents) {
        fprintf(stderr, "agent_pool: FAILED: %d of %d agents finished, %d failed\n", finished, nagents, failed);
        ok = 0;
    }
    return (void *)(intptr_t)(ok ? 0 : 1);
}

int main(void) {
    crt_config cfg = {0};
    cfg.workers = 2; /* two threads, so agents really run in parallel */
    void *status = NULL;
    int rc = crt_run(&cfg, pool_main, NULL, &status);
    if (rc < 0) {
        fprintf(stderr, "agent_pool: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
