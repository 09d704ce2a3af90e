/* Tasks: spawn, join, detach, abort, shield, yield, errno per task, the
 * rules of DESIGN §5 "Decisions on the edges", bad input, and shutdown —
 * each under workers = 1 and workers = 2. */
#define CRT_IMPLEMENTATION
#include "check.h"
#include <pthread.h>

static int nworkers;

/* >>spawn and join */
static void *echo(void *arg) { return arg; }

static void *t_spawn_join(void *arg) {
    (void)arg;
    crt_task *t[64];
    for (intptr_t i = 0; i < 64; i++) t[i] = crt_spawn(echo, (void *)i);
    for (intptr_t i = 0; i < 64; i++) {
        void *r = NULL;
        CHECK_EQ(crt_join(t[i], &r, CRT_FOREVER), 0);
        CHECK_EQ((intptr_t)r, i);
    }
    /* result may be NULL */
    CHECK_EQ(crt_join(crt_spawn(echo, NULL), NULL, CRT_FOREVER), 0);
    CHECK(crt_current() != NULL);
    return NULL;
}

/* >>join deadlines leave the handle valid */
static void *sleepy(void *arg) {
    crt_sleep((crt_time)(intptr_t)arg);
    return (void *)7;
}

static void *t_join_deadline(void *arg) {
    (void)arg;
    crt_task *t = crt_spawn(sleepy, (void *)(intptr_t)CRT_MS(50));
    CHECK_EQ(crt_join(t, NULL, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_join(t, NULL, crt_after(CRT_MS(5))), -ETIMEDOUT);
    void *r = NULL;
    CHECK_EQ(crt_join(t, &r, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, 7);
    return NULL;
}

/* >>abort */
static void *report_cancel_at_start(void *arg) {
    int *seen = (int *)arg;
    *seen = crt_cancelled();
    /* Aborted before it started (always so with one worker: the spawner
     * keeps running) or while it waits here (another worker may start it
     * first): either way the wait ends with -ECANCELED... */
    CHECK_EQ(crt_sleep_until(CRT_FOREVER), -ECANCELED);
    /* ...and from then on every blocking call does, even one that would
     * not wait. */
    CHECK_EQ(crt_sleep(0), -ECANCELED);
    CHECK_EQ(crt_yield(), -ECANCELED);
    return arg;
}

static void *wait_forever(void *arg) {
    (void)arg;
    return (void *)(intptr_t)crt_sleep_until(CRT_FOREVER);
}

static void *shielded_cleanup(void *arg) {
    int *log = (int *)arg;
    int prev = crt_shield(1);
    CHECK_EQ(prev, 0);
    log[0] = crt_sleep(CRT_MS(20));    /* held back: sleeps fully */
    log[1] = crt_cancelled();          /* 0 while shielded */
    crt_shield(prev);
    log[2] = crt_cancelled();          /* the abort takes effect now */
    log[3] = crt_sleep(CRT_MS(1));
    return NULL;
}

static void *t_abort(void *arg) {
    (void)arg;
    /* Aborted before it started: it still runs, with the abort pending. */
    int seen = 0;
    crt_task *t = crt_spawn(report_cancel_at_start, &seen);
    crt_abort(t);
    void *r = NULL;
    CHECK_EQ(crt_join(t, &r, CRT_FOREVER), 0);
    CHECK(r == &seen); /* its arg was handed over */
    if (nworkers == 1) CHECK_EQ(seen, -ECANCELED);

    /* Aborted while blocked. */
    t = crt_spawn(wait_forever, NULL);
    crt_sleep(CRT_MS(2));
    crt_abort(t);
    crt_abort(t); /* twice is fine */
    CHECK_EQ(crt_join(t, &r, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, -ECANCELED);

    /* Shielded: the abort waits for crt_shield(0). */
    int log[4] = {1, 1, 1, 1};
    t = crt_spawn(shielded_cleanup, log);
    crt_sleep(CRT_MS(5));
    crt_abort(t);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    CHECK_EQ(log[0], 0);
    CHECK_EQ(log[1], 0);
    CHECK_EQ(log[2], -ECANCELED);
    CHECK_EQ(log[3], -ECANCELED);

    /* Aborting a finished task does nothing; join still works. */
    t = crt_spawn(echo, (void *)3);
    crt_sleep(CRT_MS(2));
    crt_abort(t);
    CHECK_EQ(crt_join(t, &r, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, 3);
    crt_abort(NULL);
    return NULL;
}

/* The joiner itself is aborted: -ECANCELED and the handle stays valid. */
static void *join_then_report(void *arg) {
    crt_task *target = (crt_task *)arg;
    return (void *)(intptr_t)crt_join(target, NULL, CRT_FOREVER);
}

static void *t_abort_joiner(void *arg) {
    (void)arg;
    crt_task *target = crt_spawn(sleepy, (void *)(intptr_t)CRT_MS(30));
    crt_task *joiner = crt_spawn(join_then_report, target);
    crt_sleep(CRT_MS(3));
    crt_abort(joiner);
    void *r = NULL;
    CHECK_EQ(crt_join(joiner, &r, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, -ECANCELED);
    CHECK_EQ(crt_join(target, &r, CRT_FOREVER), 0); /* still valid */
    CHECK_EQ((intptr_t)r, 7);
    return NULL;
}

/* >>detach */
static long detached_done;
static void *detached(void *arg) {
    crt_sleep((crt_time)(intptr_t)arg);
    __atomic_add_fetch(&detached_done, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void *t_detach(void *arg) {
    (void)arg;
    detached_done = 0;
    for (int i = 0; i < 100; i++) crt_detach(crt_spawn(detached, (void *)(intptr_t)(i % 2 ? CRT_MS(1) : 0)));
    /* detach after it finished, too */
    crt_task *t = crt_spawn(detached, NULL);
    crt_sleep(CRT_MS(2));
    crt_detach(t);
    crt_detach(NULL);
    while (__atomic_load_n(&detached_done, __ATOMIC_RELAXED) < 101) crt_sleep(CRT_MS(1));
    return NULL;
}

/* >>errno is per task */
static void *errno_keeper(void *arg) {
    int mine = (int)(intptr_t)arg;
    errno = mine;
    for (int i = 0; i < 100; i++) {
        crt_yield();
        CHECK_EQ(errno, mine);
    }
    return NULL;
}

/* A task that returns with errno set, and one that reports the errno it
 * starts with: started right after the first on the same worker, the
 * second may start on its stack without a switch, and must still see 0. */
static void *errno_leaver(void *arg) {
    errno = (int)(intptr_t)arg;
    return NULL;
}

static void *errno_reader(void *arg) {
    (void)arg;
    return (void *)(intptr_t)errno;
}

static void *t_errno(void *arg) {
    (void)arg;
    crt_task *t[8];
    for (int i = 0; i < 8; i++) t[i] = crt_spawn(errno_keeper, (void *)(intptr_t)(1000 + i));
    for (int i = 0; i < 8; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    for (int i = 0; i < 100; i++) {
        crt_task *leaver = crt_spawn(errno_leaver, (void *)(intptr_t)(2000 + i));
        crt_task *reader = crt_spawn(errno_reader, NULL);
        CHECK(leaver != NULL && reader != NULL);
        void *seen = (void *)(intptr_t)-1;
        CHECK_EQ(crt_join(leaver, NULL, CRT_FOREVER), 0);
        CHECK_EQ(crt_join(reader, &seen, CRT_FOREVER), 0);
        CHECK_EQ((int)(intptr_t)seen, 0);
    }
    return NULL;
}

/* >>bad input */
static void *t_bad_input(void *arg) {
    (void)arg;
    errno = 0;
    CHECK(crt_spawn(NULL, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(crt_spawn_blocking(NULL, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(crt_join(NULL, NULL, CRT_FOREVER), -EINVAL);
    CHECK_EQ(crt_shield(0), 0);
    return NULL;
}

static void test_outside(void) {
    errno = 0;
    CHECK(crt_spawn(echo, NULL) == NULL);
    CHECK_EQ(errno, EPERM);
    CHECK(crt_current() == NULL);
    CHECK_EQ(crt_cancelled(), 0);
    CHECK_EQ(crt_yield(), 0);
    CHECK_EQ(crt_run(NULL, NULL, NULL, NULL), -EINVAL);
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = -1;
    CHECK_EQ(crt_run(&cfg, echo, NULL, NULL), -EINVAL);
    errno = 0;
    CHECK(crt_runtime_new(&cfg) == NULL);
    CHECK_EQ(errno, EINVAL);
    cfg.workers = 1;
    cfg.max_blocking_threads = -3;
    CHECK_EQ(crt_run(&cfg, echo, NULL, NULL), -EINVAL);
    cfg.max_blocking_threads = 0;
    cfg.shutdown_timeout = -1;
    CHECK_EQ(crt_run(&cfg, echo, NULL, NULL), -EINVAL);
    CHECK_EQ(crt_runtime_block_on(NULL, echo, NULL, NULL), -EINVAL);
    CHECK_EQ(crt_runtime_shutdown(NULL, CRT_FOREVER), -EINVAL);
    crt_runtime_free(NULL);
    /* result and cfg may be NULL */
    void *r = NULL;
    CHECK_EQ(crt_run(NULL, echo, (void *)5, &r), 0);
    CHECK_EQ((intptr_t)r, 5);
    TEST_LOG("outside a runtime: EPERM, NULLs, bad configs refused");
}

/* >>shutdown */
static long cleaned_up;
static void *cooperative(void *arg) {
    (void)arg;
    int r = crt_sleep_until(CRT_FOREVER);
    CHECK_EQ(r, -ECANCELED);
    __atomic_add_fetch(&cleaned_up, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void *leave_tasks_behind(void *arg) {
    (void)arg;
    for (int i = 0; i < 50; i++) crt_detach(crt_spawn(cooperative, NULL));
    crt_sleep(CRT_MS(2));
    return NULL;
}

static void *stubborn(void *arg) {
    (void)arg;
    crt_shield(1);
    crt_sleep(CRT_MS(300)); /* ignores the abort for a while */
    return NULL;
}

static void *leave_a_stubborn_task(void *arg) {
    (void)arg;
    crt_detach(crt_spawn(stubborn, NULL));
    crt_yield();
    return NULL;
}

static void test_shutdown(int workers) {
    cleaned_up = 0;
    test_run(workers, leave_tasks_behind, NULL); /* checks no leak */
    CHECK_EQ(cleaned_up, 50);

    /* A task that does not cooperate in time: -ETIMEDOUT, and main's
     * result is still stored. */
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = workers;
    cfg.shutdown_timeout = CRT_MS(20);
    CHECK_EQ(crt_run(&cfg, leave_a_stubborn_task, NULL, NULL), -ETIMEDOUT);

    /* A runtime used in several steps. */
    crt_runtime *rt = crt_runtime_new(&cfg);
    CHECK(rt != NULL);
    void *r = NULL;
    CHECK_EQ(crt_runtime_block_on(rt, echo, (void *)1, &r), 0);
    CHECK_EQ((intptr_t)r, 1);
    CHECK_EQ(crt_runtime_block_on(rt, echo, (void *)2, &r), 0);
    CHECK_EQ((intptr_t)r, 2);
    CHECK_EQ(crt_runtime_shutdown(rt, crt_after(CRT_SEC(5))), 0);
    CHECK_EQ(crt_runtime_block_on(rt, echo, NULL, NULL), -EPIPE);
    crt_runtime_free(rt);
}

/* >>several runtimes at once */
static void *nested_other(void *arg) {
    (void)arg;
    crt_task *t = crt_spawn(echo, (void *)9);
    void *r = NULL;
    CHECK_EQ(crt_join(t, &r, CRT_FOREVER), 0);
    return r;
}

static void *run_other_runtime(void *arg) {
    (void)arg;
    void *r = NULL;
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    CHECK_EQ(crt_run(&cfg, nested_other, NULL, &r), 0);
    return r;
}

static void test_two_runtimes(void) {
    pthread_t th[3];
    for (int i = 0; i < 3; i++) CHECK_EQ(pthread_create(&th[i], NULL, run_other_runtime, NULL), 0);
    for (int i = 0; i < 3; i++) {
        void *r = NULL;
        pthread_join(th[i], &r);
        CHECK_EQ((intptr_t)r, 9);
    }
    TEST_LOG("three runtimes at once on three threads: ok");
}

/* An abort races the task going to sleep, at random moments: before its
 * wait, while it parks (on the other worker, with two), after. None may be
 * lost: each task must end well within its 10 s sleep. */
static void *sleep_until_aborted(void *arg) {
    (void)arg;
    int r;
    while ((r = crt_sleep(CRT_SEC(10))) == 0) {
    }
    return (void *)(intptr_t)r;
}

static void *t_abort_races(void *arg) {
    (void)arg;
    uint64_t rng = test_seed() | 1;
    long rounds = test_short() ? 1000 : 10000;
    for (long i = 0; i < rounds; i++) {
        crt_task *t = crt_spawn(sleep_until_aborted, NULL);
        CHECK(t != NULL);
        uint64_t x = crt__rng_next(&rng);
        for (uint64_t k = x % 4; k > 0; k--) crt_yield();
        for (volatile uint64_t spin = (x >> 8) % 2000; spin > 0; spin--) {
        }
        crt_abort(t);
        void *r = NULL;
        CHECK_EQ(crt_join(t, &r, crt_after(CRT_SEC(5))), 0);
        CHECK_EQ((intptr_t)r, -ECANCELED);
    }
    return NULL;
}

/* Aborts poke a shielded task over and over while it waits to be woken,
 * from a task and from a plain thread: every poke makes it look at itself
 * and wait on, and races the wakes (a claim may land while it is poked,
 * parking or parked), some of them a timer's. No wake may be lost or
 * doubled: it takes every permit released, one at a time. (A poke that
 * overwrote a claim, tried by hand, wedges this within a second.) */
typedef struct poke_storm {
    crt_sem sem;
    crt_task *target;
    long permits;      /* per releaser */
    int stop;          /* atomic: the target is done */
    int pause;         /* atomic: the releasers hold off */
    long taken;        /* the target's */
    int cancelled;     /* the target's crt_cancelled() once unshielded */
} poke_storm;

static void *storm_target(void *p) {
    poke_storm *ps = (poke_storm *)p;
    int prev = crt_shield(1);
    uint64_t rng = test_seed() | 1;
    while (ps->taken < 2 * ps->permits) {
        uint64_t x = crt__rng_next(&rng);
        /* Mostly no deadline; now and then one of a few microseconds, so
         * timers claim too (while the releasers pause). */
        int forever = (x & 3) != 0;
        crt_time d = forever ? CRT_FOREVER : crt_after(CRT_NS((long)(x >> 8) % 3000));
        int r = crt_sem_acquire(&ps->sem, 1, d);
        if (r == 0) ps->taken++;
        else CHECK_EQ(r, forever ? 0 : -ETIMEDOUT); /* a lost wake would end a forever wait here */
    }
    __atomic_store_n(&ps->stop, 1, __ATOMIC_RELEASE);
    crt_shield(prev);
    ps->cancelled = crt_cancelled();
    return NULL;
}

/* The task's releaser pauses both now and then, long enough for the
 * target's short deadlines to pass. */
static void storm_release(poke_storm *ps, uint64_t rng, int leads) {
    rng |= 1;
    for (long i = 0; i < ps->permits; i++) {
        uint64_t x = crt__rng_next(&rng);
        for (volatile uint64_t spin = x % 500; spin > 0; spin--) {
        }
        crt_sem_release(&ps->sem, 1);
        if (x & 1) crt_yield();
        if (leads && (i & 127) == 127) {
            __atomic_store_n(&ps->pause, 1, __ATOMIC_RELEASE);
            CHECK_EQ(crt_sleep(CRT_MS(2)), 0);
            __atomic_store_n(&ps->pause, 0, __ATOMIC_RELEASE);
        }
        while (!leads && __atomic_load_n(&ps->pause, __ATOMIC_ACQUIRE)) usleep(100);
    }
}

static void *storm_release_task(void *p) {
    storm_release((poke_storm *)p, test_seed() ^ 0x5eedu, 1);
    return NULL;
}

static void *storm_release_thread(void *p) {
    storm_release((poke_storm *)p, test_seed() ^ 0x7a11u, 0);
    return NULL;
}

static void *storm_poke_task(void *p) {
    poke_storm *ps = (poke_storm *)p;
    for (unsigned k = 0; !__atomic_load_n(&ps->stop, __ATOMIC_ACQUIRE); k++) {
        crt_abort(ps->target);
        /* Now and then a sleep: it lets an idle worker block, which under
         * Valgrind is what lets the plain threads in at all. */
        if (k & 7) crt_yield();
        else CHECK_EQ(crt_sleep(CRT_US(20)), 0);
    }
    return NULL;
}

static void *storm_poke_thread(void *p) {
    poke_storm *ps = (poke_storm *)p;
    while (!__atomic_load_n(&ps->stop, __ATOMIC_ACQUIRE)) {
        crt_abort(ps->target);
        /* A sleep, not sched_yield: under Valgrind's unfair thread lock a
         * yielding loop can starve the releasing thread for minutes. */
        usleep(20);
    }
    return NULL;
}

static void *t_poke_storm(void *arg) {
    (void)arg;
    poke_storm ps;
    memset(&ps, 0, sizeof ps);
    crt_sem_init(&ps.sem, 0);
    ps.permits = test_short() ? 300 : 20000;
    ps.target = crt_spawn(storm_target, &ps);
    CHECK(ps.target != NULL);
    pthread_t poker, releaser;
    CHECK_EQ(pthread_create(&poker, NULL, storm_poke_thread, &ps), 0);
    crt_task *pt = crt_spawn(storm_poke_task, &ps);
    CHECK(pt != NULL);
    CHECK_EQ(pthread_create(&releaser, NULL, storm_release_thread, &ps), 0);
    crt_task *rt = crt_spawn(storm_release_task, &ps);
    CHECK(rt != NULL);
    CHECK_EQ(crt_join(rt, NULL, crt_after(CRT_SEC(60))), 0);
    CHECK_EQ(crt_join(ps.target, NULL, crt_after(CRT_SEC(60))), 0);
    CHECK_EQ(crt_join(pt, NULL, crt_after(CRT_SEC(60))), 0);
    pthread_join(releaser, NULL);
    pthread_join(poker, NULL);
    CHECK_EQ(ps.taken, 2 * ps.permits);
    CHECK_EQ(crt_sem_available(&ps.sem), 0u);
    CHECK_EQ(ps.cancelled, -ECANCELED);
    crt_sem_destroy(&ps.sem);
    return NULL;
}

/* An abort that lands while its target is arming a wait must still be
 * seen: either the wait sees the flag (after the park CAS, in
 * crt__after_switch), or the abort sees the wait and pokes it — the Dekker
 * pair of the abort's flag and the park word. The target waits forever on
 * a semaphore nobody releases, so an abort both sides missed leaves it
 * asleep, and its join times out. The aborts come from a plain thread, at
 * a varying delay after the target starts, so they fall before, during
 * and after the arming; then from a task, several targets at once (a
 * group cancel). */
typedef struct arming_race {
    crt_sem never;           /* no permit is ever released */
    crt_task *target;        /* atomic */
    int started;             /* atomic: the target is about to wait */
    long rounds;
} arming_race;

static void *arming_target(void *p) {
    arming_race *ar = (arming_race *)p;
    __atomic_store_n(&ar->started, 1, __ATOMIC_RELEASE);
    CHECK_EQ(crt_sem_acquire(&ar->never, 1, CRT_FOREVER), -ECANCELED);
    return NULL;
}

static void *arming_aborter(void *p) {
    arming_race *ar = (arming_race *)p;
    uint64_t rng = test_seed() | 1;
    for (long i = 0; i < ar->rounds; i++) {
        crt_task *t;
        while (!(t = __atomic_load_n(&ar->target, __ATOMIC_ACQUIRE))) sched_yield();
        while (!__atomic_load_n(&ar->started, __ATOMIC_ACQUIRE)) crt__cpu_relax();
        for (volatile uint64_t spin = crt__rng_next(&rng) % 96; spin > 0; spin--) {
        }
        crt_abort(t);
        __atomic_store_n(&ar->target, (crt_task *)NULL, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void *t_abort_while_arming(void *arg) {
    (void)arg;
    arming_race ar;
    memset(&ar, 0, sizeof ar);
    crt_sem_init(&ar.never, 0);
    ar.rounds = test_short() ? 300 : 3000;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, arming_aborter, &ar), 0);
    for (long i = 0; i < ar.rounds; i++) {
        __atomic_store_n(&ar.started, 0, __ATOMIC_RELAXED);
        crt_task *t = crt_spawn(arming_target, &ar);
        CHECK(t != NULL);
        __atomic_store_n(&ar.target, t, __ATOMIC_RELEASE);
        CHECK_EQ(crt_join(t, NULL, crt_after(CRT_SEC(30))), 0);
        while (__atomic_load_n(&ar.target, __ATOMIC_ACQUIRE)) crt_yield(); /* the aborter is done with t */
    }
    pthread_join(th, NULL);
    /* From a task: a batch of targets aborted at once by one group cancel,
     * some still arming. */
    for (int round = 0; round < (test_short() ? 20 : 200); round++) {
        crt_group g;
        crt_group_init(&g);
        for (int k = 0; k < 8; k++) CHECK(crt_group_spawn(&g, arming_target, &ar) != NULL);
        if (round & 1) crt_yield();
        crt_group_cancel(&g);
        CHECK_EQ(crt_group_destroy(&g), 0);
    }
    crt_sem_destroy(&ar.never);
    return NULL;
}

static void run_all(int workers) {
    nworkers = workers;
    test_run(workers, t_spawn_join, NULL);
    test_run(workers, t_join_deadline, NULL);
    test_run(workers, t_abort, NULL);
    test_run(workers, t_abort_joiner, NULL);
    test_run(workers, t_abort_races, NULL);
    test_run(workers, t_poke_storm, NULL);
    test_run(workers, t_abort_while_arming, NULL);
    test_run(workers, t_detach, NULL);
    test_run(workers, t_errno, NULL);
    test_run(workers, t_bad_input, NULL);
    test_shutdown(workers);
    TEST_LOG("tasks, workers=%d: ok", workers);
}

int main(void) {
    test_outside();
    run_all(1);
    run_all(2);
    test_two_runtimes();
    return 0;
}
