/* The scheduler: a million spawns across two workers with exact counts;
 * 10,000 tasks × 100 yields that end up spread over both workers; pinned
 * tasks stay put; CRT_DEBUG_MIGRATE=1 moves tasks at every switch; a task
 * that keeps yielding does not starve the others; workers = 1 runs
 * everything on the caller's thread. */
#define CRT_IMPLEMENTATION
#include "check.h"
#include <pthread.h>

/* glibc declares pthread_self() const, so a compiler may reuse its value
 * across a crt_yield — after which the task may be on another thread.
 * Read it through a call the compiler cannot see into. */
static __attribute__((noinline)) pthread_t current_thread(void) {
    pthread_t t = pthread_self();
    __asm__ __volatile__("" ::: "memory");
    return t;
}

static int migrate_mode(void) {
    const char *m = getenv("CRT_DEBUG_MIGRATE");
    return m && m[0] == '1';
}

/* >>a million spawns */
static long bumps;
static void *bump(void *arg) {
    __atomic_add_fetch(&bumps, 1, __ATOMIC_RELAXED);
    return arg;
}

static void *t_million(void *arg) {
    long n = (long)(intptr_t)arg;
    bumps = 0;
    crt_task **ts = (crt_task **)malloc((size_t)n * sizeof *ts);
    CHECK(ts != NULL);
    for (long i = 0; i < n; i++) {
        ts[i] = crt_spawn(bump, (void *)(intptr_t)i);
        CHECK(ts[i] != NULL);
    }
    long sum = 0;
    for (long i = 0; i < n; i++) {
        void *r = NULL;
        CHECK_EQ(crt_join(ts[i], &r, CRT_FOREVER), 0);
        sum += (long)(intptr_t)r;
    }
    CHECK_EQ(__atomic_load_n(&bumps, __ATOMIC_RELAXED), n);
    CHECK_EQ(sum, n * (n - 1) / 2);
    free(ts);
    return NULL;
}

/* >>yields spread over the workers */
#define MAX_THREADS 8
static pthread_t seen_threads[MAX_THREADS];
static int nseen;
static uint32_t seen_lock;
static long yields_done;

static void note_thread(void) {
    pthread_t me = current_thread();
    crt__lock_acquire(&seen_lock);
    int known = 0;
    for (int i = 0; i < nseen; i++) known |= pthread_equal(seen_threads[i], me);
    if (!known && nseen < MAX_THREADS) seen_threads[nseen++] = me;
    crt__lock_release(&seen_lock);
}

static void *yielder(void *arg) {
    int n = (int)(intptr_t)arg;
    for (int i = 0; i < n; i++) {
        /* a little work between yields */
        volatile int x = 0;
        for (int k = 0; k < 50; k++) x = x + k;
        (void)x;
        CHECK_EQ(crt_yield(), 0);
        if (i % 10 == 0) note_thread();
    }
    __atomic_add_fetch(&yields_done, n, __ATOMIC_RELAXED);
    return NULL;
}

static void *t_spread(void *arg) {
    int workers = (int)(intptr_t)arg;
    long tasks = test_short() ? 2000 : 10000;
    nseen = 0;
    yields_done = 0;
    crt_task **ts = (crt_task **)malloc((size_t)tasks * sizeof *ts);
    CHECK(ts != NULL);
    for (long i = 0; i < tasks; i++) ts[i] = crt_spawn(yielder, (void *)(intptr_t)100);
    for (long i = 0; i < tasks; i++) CHECK_EQ(crt_join(ts[i], NULL, CRT_FOREVER), 0);
    free(ts);
    CHECK_EQ(yields_done, tasks * 100);
    CHECK_EQ(nseen, workers); /* every worker ran some of the work */
    return NULL;
}

/* >>pinned tasks stay on the worker that first ran them; others migrate
 * at every switch under CRT_DEBUG_MIGRATE=1 */
static void *thread_changes(void *arg) {
    int n = (int)(intptr_t)arg;
    pthread_t last = current_thread();
    long changes = 0;
    for (int i = 0; i < n; i++) {
        crt_yield();
        pthread_t now = current_thread();
        if (!pthread_equal(last, now)) changes++;
        last = now;
    }
    return (void *)(intptr_t)changes;
}

static void *busy_yielder(void *arg) {
    int *stop = (int *)arg;
    while (!__atomic_load_n(stop, __ATOMIC_RELAXED)) crt_yield();
    return NULL;
}

static void *t_pinned(void *arg) {
    int workers = (int)(intptr_t)arg;
    int stop = 0;
    crt_task *busy[4];
    for (int i = 0; i < 4; i++) busy[i] = crt_spawn(busy_yielder, &stop); /* keep both workers stealing */
    crt_spawn_opts o;
    memset(&o, 0, sizeof o);
    o.pinned = 1;
    o.name = "pinned";
    crt_task *p = crt_spawn_with(&o, thread_changes, (void *)(intptr_t)200);
    void *r = NULL;
    CHECK_EQ(crt_join(p, &r, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)r, 0);
    if (migrate_mode() && workers > 1) {
        crt_task *m = crt_spawn(thread_changes, (void *)(intptr_t)200);
        CHECK_EQ(crt_join(m, &r, CRT_FOREVER), 0);
        CHECK_EQ((intptr_t)r, 200); /* moved at every single switch */
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 4; i++) CHECK_EQ(crt_join(busy[i], NULL, CRT_FOREVER), 0);
    return NULL;
}

/* >>no starvation: a task that yields forever does not keep a sleeper or
 * a newly spawned task from running */
static void *sleeper_then_flag(void *arg) {
    crt_sleep(CRT_MS(5));
    __atomic_store_n((int *)arg, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void *t_fair(void *arg) {
    (void)arg;
    int stop = 0, flag = 0;
    crt_task *hog = crt_spawn(busy_yielder, &stop);
    crt_task *s = crt_spawn(sleeper_then_flag, &flag);
    CHECK_EQ(crt_join(s, NULL, crt_after(CRT_SEC(10))), 0);
    CHECK_EQ(flag, 1);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    CHECK_EQ(crt_join(hog, NULL, CRT_FOREVER), 0);
    return NULL;
}

/* >>workers = 1 stays on the caller's thread */
static pthread_t caller;
static void *same_thread(void *arg) {
    (void)arg;
    CHECK(pthread_equal(current_thread(), caller));
    crt_yield();
    CHECK(pthread_equal(current_thread(), caller));
    return NULL;
}

static void *t_current_thread(void *arg) {
    (void)arg;
    crt_task *t[16];
    for (int i = 0; i < 16; i++) t[i] = crt_spawn(same_thread, NULL);
    for (int i = 0; i < 16; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    return same_thread(NULL);
}

/* >>stealing into a queue that is not empty: white-box (the TU has the
 * implementation). The thief holds 250 tasks and the victim 200; the steal
 * may take only what fits, and every task must end up exactly once. */
static void steal_into_full_queue(void) {
    crt__worker *thief = (crt__worker *)calloc(1, sizeof *thief);
    crt__worker *victim = (crt__worker *)calloc(1, sizeof *victim);
    CHECK(thief && victim);
    enum { MINE = 250, THEIRS = 200 };
    /* Fake records: the queue only moves pointers, it never reads them. */
    static char ids[MINE + THEIRS];
    thief->runq.head = thief->runq.tail = 1000; /* not at slot 0: wrap-around too */
    for (int i = 0; i < MINE; i++) crt__runq_push(thief, (crt_task *)(void *)&ids[i]);
    for (int i = 0; i < THEIRS; i++) crt__runq_push(victim, (crt_task *)(void *)&ids[MINE + i]);
    crt_task *run = crt__runq_steal(thief, victim);
    CHECK(run != NULL);
    CHECK(thief->runq.tail - thief->runq.head <= CRT__RUNQ_SIZE);
    static int seen[MINE + THEIRS];
    memset(seen, 0, sizeof seen);
    seen[(char *)(void *)run - ids]++;
    crt_task *t;
    while ((t = crt__runq_pop(thief)) != NULL) seen[(char *)(void *)t - ids]++;
    while ((t = crt__runq_pop(victim)) != NULL) seen[(char *)(void *)t - ids]++;
    for (int i = 0; i < MINE + THEIRS; i++) CHECK_EQ(seen[i], 1);
    free(thief);
    free(victim);
}

/* >>a burst of sleepers, again and again (bench W7's shape): tasks that
 * park on timers while both run queues overflow and workers steal. */
static void *sleeper(void *arg) {
    crt_sleep(CRT_MS(2));
    return arg;
}

static void *t_sleepers(void *arg) {
    long n = (long)(intptr_t)arg;
    crt_task **h = (crt_task **)malloc((size_t)n * sizeof *h);
    CHECK(h != NULL);
    for (int rep = 0; rep < 4; rep++) {
        for (long i = 0; i < n; i++) CHECK((h[i] = crt_spawn(sleeper, (void *)(intptr_t)(i + 1))) != NULL);
        for (long i = 0; i < n; i++) {
            void *res = NULL;
            CHECK_EQ(crt_join(h[i], &res, CRT_FOREVER), 0);
            CHECK_EQ((long)(intptr_t)res, i + 1);
        }
    }
    free(h);
    return NULL;
}

int main(void) {
    long million = test_short() ? 100000 : 1000000;
    steal_into_full_queue();
    test_run(2, t_sleepers, (void *)(intptr_t)(test_short() ? 2000 : 50000));
    TEST_LOG("steals into a busy queue, bursts of sleepers: ok");
    caller = pthread_self();
    test_run(1, t_current_thread, NULL);
    for (int w = 1; w <= 2; w++) {
        test_run(w, t_million, (void *)(intptr_t)million);
        TEST_LOG("%ld spawns, workers=%d: exact", million, w);
        test_run(w, t_spread, (void *)(intptr_t)w);
        TEST_LOG("yields spread over %d worker(s)", w);
        test_run(w, t_pinned, (void *)(intptr_t)w);
        test_run(w, t_fair, NULL);
    }
    TEST_LOG("pinned, fairness, current-thread: ok%s", migrate_mode() ? " (with CRT_DEBUG_MIGRATE=1)" : "");
    return 0;
}
