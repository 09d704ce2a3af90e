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

int main(void) {
    long million = test_short() ? 100000 : 1000000;
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
