/* The blocking pool: jobs run on their own threads, as plain threads
 * (crt_current() is NULL there), never more at once than
 * max_blocking_threads; a task joining a job parks, and the worker keeps
 * running other tasks meanwhile; jobs can spawn tasks into their runtime. */
#define CRT_IMPLEMENTATION
#include "check.h"
#include <pthread.h>
#include <unistd.h>

static long running, peak, done_jobs;

static void *blocking_job(void *arg) {
    CHECK(crt_current() == NULL);
    long now = __atomic_add_fetch(&running, 1, __ATOMIC_RELAXED);
    long p = __atomic_load_n(&peak, __ATOMIC_RELAXED);
    while (now > p && !__atomic_compare_exchange_n(&peak, &p, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    usleep(20000); /* really blocks its thread */
    __atomic_sub_fetch(&running, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&done_jobs, 1, __ATOMIC_RELAXED);
    return arg;
}

static long ticks;
static void *ticker(void *arg) {
    int *stop = (int *)arg;
    while (!__atomic_load_n(stop, __ATOMIC_RELAXED)) {
        __atomic_add_fetch(&ticks, 1, __ATOMIC_RELAXED);
        crt_sleep(CRT_MS(1));
    }
    return NULL;
}

static void *t_pool(void *arg) {
    int max = (int)(intptr_t)arg;
    running = peak = done_jobs = ticks = 0;
    int stop = 0;
    crt_task *tick = crt_spawn(ticker, &stop);
    crt_task *jobs[12];
    for (intptr_t i = 0; i < 12; i++) {
        jobs[i] = crt_spawn_blocking(blocking_job, (void *)i);
        CHECK(jobs[i] != NULL);
    }
    for (intptr_t i = 0; i < 12; i++) {
        void *r = NULL;
        CHECK_EQ(crt_join(jobs[i], &r, CRT_FOREVER), 0);
        CHECK_EQ((intptr_t)r, i);
    }
    CHECK_EQ(done_jobs, 12);
    CHECK(peak <= max);
    CHECK(peak >= 2);      /* they did run in parallel */
    CHECK(__atomic_load_n(&ticks, __ATOMIC_RELAXED) >= 10); /* the worker kept serving while we were joined */
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    CHECK_EQ(crt_join(tick, NULL, CRT_FOREVER), 0);
    return NULL;
}

/* A job's blocking calls block its thread; it can spawn tasks. */
static void *child_of_job(void *arg) { return arg; }
static void *job_that_spawns(void *arg) {
    (void)arg;
    crt_time t0 = crt_now();
    CHECK_EQ(crt_sleep(CRT_MS(5)), 0);
    CHECK(crt_now() - t0 >= CRT_MS(5));
    crt_task *t = crt_spawn(child_of_job, (void *)42);
    CHECK(t != NULL);
    void *r = NULL;
    CHECK_EQ(crt_join(t, &r, CRT_FOREVER), 0);
    return r;
}

static void *t_job_spawns(void *arg) {
    (void)arg;
    crt_task *j = crt_spawn_blocking(job_that_spawns, NULL);
    void *r = NULL;
    CHECK_EQ(crt_join(j, &r, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, 42);
    /* a deadline while joining a job leaves it valid */
    j = crt_spawn_blocking(blocking_job, (void *)7);
    CHECK_EQ(crt_join(j, NULL, crt_after(CRT_MS(1))), -ETIMEDOUT);
    CHECK_EQ(crt_join(j, &r, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, 7);
    return NULL;
}

/* Jobs spawned after the pool has an idle thread still get threads of
 * their own: four jobs each wait (up to 5 s) until all four run at once. */
static long together;
static void *wait_for_all_four(void *arg) {
    (void)arg;
    __atomic_add_fetch(&together, 1, __ATOMIC_RELAXED);
    crt_time give_up = crt_after(CRT_SEC(5));
    while (__atomic_load_n(&together, __ATOMIC_RELAXED) < 4 && crt_now() < give_up) usleep(1000);
    return (void *)(intptr_t)(__atomic_load_n(&together, __ATOMIC_RELAXED) >= 4);
}

static void *t_pool_grows(void *arg) {
    (void)arg;
    together = 0;
    CHECK_EQ(crt_join(crt_spawn_blocking(blocking_job, NULL), NULL, CRT_FOREVER), 0); /* now one idle thread */
    crt_task *j[4];
    for (int i = 0; i < 4; i++) j[i] = crt_spawn_blocking(wait_for_all_four, NULL);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        CHECK_EQ(crt_join(j[i], &r, CRT_FOREVER), 0);
        CHECK_EQ((intptr_t)r, 1);
    }
    return NULL;
}

/* The last job ending wakes a one-worker shutdown: crt_run does not sit
 * out its shutdown timeout. */
static void *join_one_job(void *arg) {
    (void)arg;
    CHECK_EQ(crt_join(crt_spawn_blocking(blocking_job, NULL), NULL, CRT_FOREVER), 0);
    return NULL;
}

static void test_quick_shutdown(void) {
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 1;
    cfg.shutdown_timeout = CRT_SEC(20);
    for (int i = 0; i < 10; i++) {
        crt_time t0 = crt_now();
        CHECK_EQ(crt_run(&cfg, join_one_job, NULL, NULL), 0);
        CHECK(crt_now() - t0 < CRT_SEC(10));
    }
    TEST_LOG("one worker: crt_run returns when the last blocking job ends");
}

static void run_pool(int workers, int max) {
    long before = test_live_allocs();
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = workers;
    cfg.max_blocking_threads = max;
    CHECK_EQ(crt_run(&cfg, t_pool, (void *)(intptr_t)max, NULL), 0);
    CHECK_EQ(test_live_allocs(), before);
}

int main(void) {
    for (int w = 1; w <= 2; w++) {
        run_pool(w, 4);
        run_pool(w, 64);
        test_run(w, t_job_spawns, NULL);
        test_run(w, t_pool_grows, NULL);
        TEST_LOG("blocking pool, workers=%d: bounded, parallel, the worker kept serving", w);
    }
    test_quick_shutdown();
    errno = 0;
    CHECK(crt_spawn_blocking(blocking_job, NULL) == NULL);
    CHECK_EQ(errno, EPERM);
    return 0;
}
