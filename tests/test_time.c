/* Time: sleep and deadlines on the real clock (generous tolerances), and
 * exact tests on the paused clock: auto-advance to the next deadline,
 * crt_time_advance, start_paused, and the three interval policies. */
#define CRT_IMPLEMENTATION
#include "check.h"

/* >>real clock */
static void *t_sleep(void *arg) {
    (void)arg;
    crt_time t0 = crt_now();
    CHECK_EQ(crt_sleep(CRT_MS(20)), 0);
    crt_time took = crt_now() - t0;
    CHECK(took >= CRT_MS(20));
    CHECK(took < CRT_SEC(2));
    t0 = crt_now();
    CHECK_EQ(crt_sleep(0), 0);
    CHECK_EQ(crt_sleep(-5), 0);
    CHECK_EQ(crt_sleep_until(1), 0); /* long past */
    CHECK(crt_now() - t0 < CRT_MS(500));
    return NULL;
}

/* Many sleepers with different deadlines wake in deadline order. */
static int wake_order[64];
static int wake_count;
static void *sleep_and_record(void *arg) {
    int i = (int)(intptr_t)arg;
    crt_sleep(CRT_MS(2) * (i % 8) + CRT_MS(1));
    wake_order[__atomic_fetch_add(&wake_count, 1, __ATOMIC_RELAXED)] = i % 8;
    return NULL;
}

static void *t_many_sleepers(void *arg) {
    (void)arg;
    wake_count = 0;
    crt_task *t[64];
    for (int i = 0; i < 64; i++) t[i] = crt_spawn(sleep_and_record, (void *)(intptr_t)i);
    for (int i = 0; i < 64; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    CHECK_EQ(wake_count, 64);
    return NULL;
}

/* >>paused clock: exact */
static void *sleeper_reports_time(void *arg) {
    crt_time start = crt_now();
    crt_sleep((crt_time)(intptr_t)arg);
    return (void *)(intptr_t)(crt_now() - start);
}

static void *t_paused_auto_advance(void *arg) {
    (void)arg;
    crt_time real0 = crt__mono_now();
    crt_time t0 = crt_now();
    /* The clock stands still while we run... */
    CHECK_EQ(crt_now(), t0);
    /* ...and jumps exactly to each deadline once every task is idle. */
    crt_task *a = crt_spawn(sleeper_reports_time, (void *)(intptr_t)CRT_SEC(30));
    crt_task *b = crt_spawn(sleeper_reports_time, (void *)(intptr_t)CRT_SEC(3600));
    void *r = NULL;
    CHECK_EQ(crt_join(a, &r, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, CRT_SEC(30));
    CHECK_EQ(crt_now() - t0, CRT_SEC(30));
    CHECK_EQ(crt_join(b, &r, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, CRT_SEC(3600));
    CHECK_EQ(crt_now() - t0, CRT_SEC(3600));
    /* A deadline on a blocking call times out exactly, too. */
    crt_task *c = crt_spawn(sleeper_reports_time, (void *)(intptr_t)CRT_SEC(100));
    crt_time before = crt_now();
    CHECK_EQ(crt_join(c, NULL, crt_after(CRT_SEC(10))), -ETIMEDOUT);
    CHECK_EQ(crt_now() - before, CRT_SEC(10));
    CHECK_EQ(crt_join(c, NULL, CRT_FOREVER), 0);
    CHECK_EQ(crt_now() - before, CRT_SEC(100));
    /* An hour of sleeping took (almost) no real time. */
    CHECK(crt__mono_now() - real0 < CRT_SEC(5));
    return NULL;
}

static void *t_advance(void *arg) {
    int workers = (int)(intptr_t)arg;
    crt_time_pause();
    crt_time t0 = crt_now();
    crt_task *s = crt_spawn(sleeper_reports_time, (void *)(intptr_t)CRT_MS(10));
    crt_yield(); /* let it start sleeping */
    crt_time_advance(CRT_MS(4));
    CHECK_EQ(crt_now() - t0, CRT_MS(4));
    CHECK_EQ(crt_join(s, NULL, CRT_TRY), -EAGAIN); /* 6 ms to go */
    crt_time_advance(CRT_MS(6));
    void *r = NULL;
    /* With one worker, advance's yield let it run already; with more it
     * may be running on another worker. Either way it slept exactly 10 ms. */
    CHECK_EQ(crt_join(s, &r, workers == 1 ? CRT_TRY : CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, CRT_MS(10));
    crt_time_resume();
    crt_time t1 = crt_now();
    crt_sleep(CRT_MS(2));
    CHECK(crt_now() - t1 >= CRT_MS(2)); /* running again */
    crt_time_pause();
    crt_time_pause(); /* twice: nothing more */
    crt_time_resume();
    crt_time_resume();
    return NULL;
}

/* >>intervals: tick times on the paused clock */
struct iv_case {
    int missed;
    crt_time expect[6]; /* offsets from start at which ticks complete */
};

static void *t_interval(void *arg) {
    struct iv_case *c = (struct iv_case *)arg;
    crt_time start = crt_now();
    crt_interval iv;
    crt_interval_init(&iv, CRT_MS(10), c->missed);
    for (int k = 0; k < 6; k++) {
        CHECK_EQ(crt_interval_tick(&iv), 0);
        CHECK_EQ(crt_now() - start, c->expect[k]);
        if (k == 1) crt_sleep(CRT_MS(35)); /* miss three ticks: due at 20, 30, 40 */
    }
    return NULL;
}

static void run_paused(crt_fn fn, void *arg) {
    long before = test_live_allocs();
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 1;
    cfg.start_paused = 1;
    CHECK_EQ(crt_run(&cfg, fn, arg, NULL), 0);
    CHECK_EQ(test_live_allocs(), before);
}

static void test_intervals(void) {
    /* ticks at 0, 10; then we are busy until 45 */
    struct iv_case burst = {CRT_MISSED_BURST, {0, CRT_MS(10), CRT_MS(45), CRT_MS(45), CRT_MS(45), CRT_MS(50)}};
    struct iv_case delay = {CRT_MISSED_DELAY, {0, CRT_MS(10), CRT_MS(45), CRT_MS(55), CRT_MS(65), CRT_MS(75)}};
    struct iv_case skip = {CRT_MISSED_SKIP, {0, CRT_MS(10), CRT_MS(45), CRT_MS(50), CRT_MS(60), CRT_MS(70)}};
    run_paused(t_interval, &burst);
    run_paused(t_interval, &delay);
    run_paused(t_interval, &skip);
    crt_interval iv;
    crt_interval_init(&iv, 0, CRT_MISSED_BURST);
    CHECK_EQ(crt_interval_tick(&iv), -EINVAL);
    crt_interval_init(&iv, CRT_MS(1), 99);
    CHECK_EQ(crt_interval_tick(&iv), -EINVAL);
    CHECK_EQ(crt_interval_tick(NULL), -EINVAL);
    TEST_LOG("intervals: burst, delay and skip tick exactly on the paused clock");
}

/* >>on a plain thread */
static void test_plain_thread(void) {
    crt_time t0 = crt_now();
    CHECK_EQ(crt_sleep(CRT_MS(10)), 0);
    CHECK(crt_now() - t0 >= CRT_MS(10));
    crt_interval iv;
    crt_interval_init(&iv, CRT_MS(5), CRT_MISSED_SKIP);
    for (int i = 0; i < 3; i++) CHECK_EQ(crt_interval_tick(&iv), 0);
    CHECK(crt_now() - t0 >= CRT_MS(20));
    CHECK_EQ(crt_after(CRT_FOREVER), CRT_FOREVER);
    CHECK(crt_after(-CRT_FOREVER) >= 1);
    CHECK_EQ(CRT_SEC(1), CRT_MS(1000));
    CHECK_EQ(CRT_MS(1), CRT_US(1000));
    CHECK_EQ(CRT_US(1), CRT_NS(1000));
    TEST_LOG("plain thread: sleep and interval on CLOCK_MONOTONIC");
}

int main(void) {
    test_plain_thread();
    for (int w = 1; w <= 2; w++) {
        test_run(w, t_sleep, NULL);
        test_run(w, t_many_sleepers, NULL);
        test_run(w, t_advance, (void *)(intptr_t)w);
        TEST_LOG("sleep, sleepers, advance: workers=%d ok", w);
    }
    run_paused(t_paused_auto_advance, NULL);
    TEST_LOG("start_paused: the clock jumps exactly to each deadline");
    test_intervals();
    return 0;
}
