/* Time: sleep and deadlines on the real clock (generous tolerances), and
 * exact tests on the paused clock: auto-advance to the next deadline,
 * crt_time_advance, start_paused, and the three interval policies; the
 * timing wheel against a model (white box), and timeouts racing the
 * completions they guard on two workers. */
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

/* Timers fire in batches of 64, each waiter fetched a few claims ahead:
 * groups of sleepers due at the same instant, sized around both bounds,
 * all wake, each exactly at its deadline (the paused clock), none twice;
 * and sleepers due at different instants of one group wake at theirs. */
static int batch_woken;
static void *sleeper_counts(void *arg) {
    crt_time start = crt_now();
    CHECK_EQ(crt_sleep((crt_time)(intptr_t)arg), 0);
    CHECK_EQ(crt_now() - start, (crt_time)(intptr_t)arg);
    batch_woken++; /* one worker: no race */
    return NULL;
}

static void *t_paused_batches(void *arg) {
    (void)arg;
    static const int sizes[] = {1, 7, 8, 9, 63, 64, 65, 72, 129, 300};
    crt_task *t[300];
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int n = sizes[s];
        batch_woken = 0;
        crt_time t0 = crt_now(), last = 0;
        for (int i = 0; i < n; i++) {
            /* Half of them share one deadline, the others step by 1 ns. */
            crt_time d = CRT_MS(5) + (i % 2 ? i : 0);
            if (d > last) last = d;
            t[i] = crt_spawn(sleeper_counts, (void *)(intptr_t)d);
            CHECK(t[i] != NULL);
        }
        for (int i = 0; i < n; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
        CHECK_EQ(batch_woken, n);
        CHECK_EQ(crt_now() - t0, last);
    }
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

/* >>the timing wheel against a model (white box) */
#define WHEEL_N 2000
static uint64_t wheel_rng;
static uint64_t wheel_next(void) { return crt__rng_next(&wheel_rng); }

/* A random distance at one of the wheel's scales: within a slot, a few
 * slots, level 0, level 1, days; `far` adds years (levels 6 and 7). */
static crt_time wheel_distance(int far) {
    static const crt_time scale[] = {CRT_NS(50), CRT_US(20), CRT_MS(2), CRT_MS(300), CRT_SEC(100000), CRT_SEC(100000000)};
    crt_time s = scale[wheel_next() % (far ? 6 : 5)];
    return (crt_time)(wheel_next() % (uint64_t)s);
}

static crt__wheel wheel;
static crt__timer wheel_timers[WHEEL_N];
static crt_time wheel_deadline[WHEEL_N], wheel_due_by[WHEEL_N];
static int wheel_armed[WHEEL_N];

/* Drains what is due at now and checks it against the model: nothing
 * early, nothing not armed; exactly: everything due; otherwise everything
 * due for a whole slot. */
static void wheel_drain(crt_time now, int exact) {
    uint32_t cell;
    while ((cell = crt__wheel_pop_due(&wheel, now, exact)) != CRT__WHEEL_NIL) {
        long i = wheel.cells[cell].timer - wheel_timers;
        CHECK(i >= 0 && i < WHEEL_N && wheel_armed[i]);
        CHECK(wheel_deadline[i] <= now);
        /* Taken out to fire: a cancel now must say so and change nothing. */
        CHECK_EQ(crt__wheel_remove(&wheel, &wheel_timers[i]), 0);
        crt__wheel_release(&wheel, cell);
        wheel_armed[i] = 0;
    }
    crt_time next = CRT_FOREVER;
    uint64_t armed = 0;
    for (int i = 0; i < WHEEL_N; i++) {
        if (!wheel_armed[i]) continue;
        armed++;
        if (exact) CHECK(wheel_deadline[i] > now);
        else CHECK(wheel_due_by[i] + CRT__WHEEL_SLOT_NS > now);
        if (wheel_deadline[i] < next) next = wheel_deadline[i];
    }
    CHECK_EQ(wheel.count, armed);
    CHECK_EQ(crt__wheel_next_exact(&wheel), next);
    CHECK(crt__wheel_next_due(&wheel, 0) >= next || crt__wheel_next_due(&wheel, 0) > now);
}

static void test_wheel_model(void) {
    wheel_rng = test_seed() | 1;
    crt_time now = (crt_time)1 << 40;
    crt__wheel_init(&wheel, now);
    crt__wheel_cell *cells = (crt__wheel_cell *)malloc(WHEEL_N * sizeof *cells);
    CHECK(cells != NULL);
    CHECK(crt__wheel_grow(&wheel, cells, WHEEL_N) == NULL);
    long fired = 0, cancelled = 0;
    for (int step = 0; step < 200000; step++) {
        uint64_t op = wheel_next() % 16;
        int i = (int)(wheel_next() % WHEEL_N);
        if (op < 8 && !wheel_armed[i]) {
            /* Mostly ahead, sometimes already past. */
            crt_time d = now + wheel_distance(1) - (op == 0 ? wheel_distance(0) : 0);
            wheel_deadline[i] = d;
            crt__wheel_insert(&wheel, &wheel_timers[i], d, now);
            wheel_due_by[i] = d > wheel.elapsed ? d : wheel.elapsed;
            wheel_armed[i] = 1;
        } else if (op < 10 && wheel_armed[i]) {
            CHECK_EQ(crt__wheel_remove(&wheel, &wheel_timers[i]), 1);
            wheel_armed[i] = 0;
            cancelled++;
        } else if (op >= 10) {
            long before = (long)wheel.count;
            /* Forward, by up to years now and then, but far from overflow. */
            if (op >= 12 && now < (crt_time)1 << 60) now += wheel_distance(wheel_next() % 64 == 0);
            wheel_drain(now, op & 1);
            fired += before - (long)wheel.count;
        }
    }
    wheel_drain(CRT_FOREVER - 1, 1);
    CHECK_EQ(wheel.count, (uint64_t)0);
    CHECK_EQ(crt__wheel_next_due(&wheel, 0), CRT_FOREVER);
    free(wheel.cells);
    TEST_LOG("wheel: %ld fired, %ld cancelled, each on time against the model", fired, cancelled);
}

/* >>timeouts racing completions: a join whose deadline falls about when
 * the task finishes, and the task's own sleep, on two workers: every task
 * is joined exactly once, whichever side wins. */
static void *sleep_briefly(void *arg) {
    crt_sleep((crt_time)(intptr_t)arg);
    return arg;
}

static void *t_join_races(void *arg) {
    (void)arg;
    uint64_t rng = test_seed() | 1;
    long rounds = test_short() ? 2000 : 20000, timeouts = 0;
    for (long i = 0; i < rounds; i++) {
        crt_time nap = (crt_time)(crt__rng_next(&rng) % CRT_US(40));
        crt_task *t = crt_spawn(sleep_briefly, (void *)(intptr_t)nap);
        CHECK(t != NULL);
        void *res = NULL;
        int r = crt_join(t, &res, crt_after((crt_time)(crt__rng_next(&rng) % CRT_US(40))));
        if (r == -ETIMEDOUT) {
            timeouts++;
            r = crt_join(t, &res, CRT_FOREVER);
        }
        CHECK_EQ(r, 0);
        CHECK(res == (void *)(intptr_t)nap);
    }
    TEST_LOG("join races: %ld rounds, %ld joins timed out first", rounds, timeouts);
    return NULL;
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
    test_wheel_model();
    test_plain_thread();
    for (int w = 1; w <= 2; w++) {
        test_run(w, t_sleep, NULL);
        test_run(w, t_many_sleepers, NULL);
        test_run(w, t_advance, (void *)(intptr_t)w);
        TEST_LOG("sleep, sleepers, advance: workers=%d ok", w);
    }
    test_run(2, t_join_races, NULL);
    run_paused(t_paused_auto_advance, NULL);
    run_paused(t_paused_batches, NULL);
    TEST_LOG("start_paused: the clock jumps exactly to each deadline, in batches of every size");
    test_intervals();
    return 0;
}
