/* Plain-thread waits (DESIGN §5 "Anywhere"): an OS thread outside any
 * runtime joins tasks, sleeps, selects with deadlines, and races a
 * completion against its own timeout without losing or doubling anything. */
#define CRT_IMPLEMENTATION
#include "check.h"
#include <pthread.h>

static crt_runtime *rt;
static crt_task *handed;

static void *slow_result(void *arg) {
    crt_sleep((crt_time)(intptr_t)arg);
    return (void *)99;
}

static void *spawn_for_outside(void *arg) {
    handed = crt_spawn(slow_result, arg);
    return NULL;
}

/* Spawns a task in rt (through block_on) and returns its handle. */
static crt_task *task_in_runtime(crt_time sleep) {
    CHECK_EQ(crt_runtime_block_on(rt, spawn_for_outside, (void *)(intptr_t)sleep, NULL), 0);
    return handed;
}

static void test_join_from_thread(void) {
    crt_task *t = task_in_runtime(CRT_MS(30));
    CHECK_EQ(crt_join(t, NULL, CRT_TRY), -EAGAIN);
    errno = 4321; /* a blocking call leaves errno as it found it (DESIGN §3) */
    CHECK_EQ(crt_join(t, NULL, crt_after(CRT_MS(2))), -ETIMEDOUT);
    CHECK_EQ(errno, 4321);
    void *r = NULL;
    CHECK_EQ(crt_join(t, &r, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, 99);
    TEST_LOG("plain thread joins a task: EAGAIN, ETIMEDOUT, then the result");
}

static void test_select_from_thread(void) {
    crt_task *a = task_in_runtime(CRT_MS(40));
    crt_task *b = task_in_runtime(CRT_MS(5));
    void *ra = NULL, *rb = NULL;
    crt_case cs[2];
    cs[0] = CRT_CASE_JOIN(a, &ra);
    cs[1] = CRT_CASE_JOIN(b, &rb);
    CHECK_EQ(crt_select(cs, 2, 0, CRT_TRY), -EAGAIN);
    int i = crt_select(cs, 2, 0, crt_after(CRT_SEC(5)));
    CHECK_EQ(i, 1);
    CHECK_EQ(cs[1].result, 0);
    CHECK_EQ((intptr_t)rb, 99);
    CHECK(ra == NULL); /* the other case was left alone */
    CHECK_EQ(crt_select(cs, 1, 0, crt_after(CRT_MS(1))), -ETIMEDOUT);
    CHECK_EQ(crt_select(cs, 1, CRT_SELECT_BIASED, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)ra, 99);
    CHECK_EQ(crt_select(NULL, 0, 0, crt_after(CRT_MS(1))), -ETIMEDOUT);
    CHECK_EQ(crt_select(NULL, 1, 0, CRT_TRY), -EINVAL);
    TEST_LOG("plain thread selects over joins: one completes, the other untouched");
}

/* A completion racing the waiter's own deadline: whichever claims first
 * wins, and the other leaves it alone. Repeated with jittered timing. */
static void test_deadline_races(void) {
    int rounds = test_short() ? 100 : 400, finished_first = 0;
    for (int k = 0; k < rounds; k++) {
        crt_task *t = task_in_runtime(CRT_US(k % 40));
        int r = crt_join(t, NULL, crt_after(CRT_US((k * 7) % 40)));
        if (r == 0) {
            finished_first++;
            continue;
        }
        CHECK_EQ(r, -ETIMEDOUT);
        CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0); /* still valid after a timeout */
    }
    TEST_LOG("join vs deadline races: %d rounds, %d finished first, none lost", rounds, finished_first);
}

static void *thread_body(void *arg) {
    (void)arg;
    for (int i = 0; i < 20; i++) {
        crt_task *t = handed; /* read without racing: see main */
        (void)t;
        crt_sleep(CRT_US(100));
    }
    return NULL;
}

int main(void) {
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    rt = crt_runtime_new(&cfg);
    CHECK(rt != NULL);
    test_join_from_thread();
    test_select_from_thread();
    test_deadline_races();
    /* Several plain threads sleeping at once. */
    pthread_t th[4];
    for (int i = 0; i < 4; i++) CHECK_EQ(pthread_create(&th[i], NULL, thread_body, NULL), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK_EQ(crt_runtime_shutdown(rt, crt_after(CRT_SEC(5))), 0);
    crt_runtime_free(rt);
    CHECK_EQ(test_live_allocs(), 0);
    return 0;
}
