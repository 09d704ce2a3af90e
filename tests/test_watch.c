/* tests/test_watch.c — crt_watch: versions, changed(), close reporting a
 * last change once, deadlines, cancel, plain threads, and readers that
 * must never see a torn value while writers replace a large one. */
#define CRT_IMPLEMENTATION
#include "check.h"

#include <pthread.h>

/* White box: changed() calls waiting on w. */
static int waiters(crt_watch *w) {
    crt__lock_acquire(&w->lock);
    int n = 0;
    for (crt__wait_node *x = w->q.head; x; x = x->next) n++;
    crt__lock_release(&w->lock);
    return n;
}

static void wait_waiters(crt_watch *w, int n) {
    while (waiters(w) < n) crt_yield();
}

static void *t_bad_input(void *arg) {
    (void)arg;
    int v = 1;
    errno = 0;
    CHECK(crt_watch_new(0, &v) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(crt_watch_new(sizeof v, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    crt_watch *w = crt_watch_new(sizeof v, &v);
    uint64_t seen = 0;
    CHECK_EQ(crt_watch_send(NULL, &v), -EINVAL);
    CHECK_EQ(crt_watch_send(w, NULL), -EINVAL);
    CHECK_EQ(crt_watch_changed(NULL, &seen, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_watch_changed(w, NULL, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_watch_get(NULL, &v), 0);
    CHECK_EQ(crt_watch_get(w, NULL), 0); /* the version alone; nothing was sent */
    crt_watch_close(NULL);
    crt_watch_free(NULL);
    crt_watch_free(w);
    return NULL;
}

static void *t_versions(void *arg) {
    (void)arg;
    int v = 10, got = 0;
    crt_watch *w = crt_watch_new(sizeof v, &v);
    CHECK_EQ(crt_watch_get(w, &got), 0);
    CHECK_EQ(got, 10);
    uint64_t seen = 0;
    CHECK_EQ(crt_watch_changed(w, &seen, CRT_TRY), -EAGAIN);
    CHECK_EQ(seen, 0);
    for (int i = 1; i <= 3; i++) {
        v = 10 + i;
        CHECK_EQ(crt_watch_send(w, &v), 0);
    }
    CHECK_EQ(crt_watch_get(w, &got), 3);
    CHECK_EQ(got, 13);
    CHECK_EQ(crt_watch_changed(w, &seen, CRT_FOREVER), 0); /* skips to the latest */
    CHECK_EQ(seen, 3);
    CHECK_EQ(crt_watch_changed(w, &seen, CRT_TRY), -EAGAIN);
    /* A *seen ahead of the watch waits until it is passed. */
    seen = 5;
    v = 20;
    CHECK_EQ(crt_watch_send(w, &v), 0); /* version 4 */
    CHECK_EQ(crt_watch_changed(w, &seen, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_watch_send(w, &v), 0); /* 5 */
    CHECK_EQ(crt_watch_send(w, &v), 0); /* 6 */
    CHECK_EQ(crt_watch_changed(w, &seen, CRT_TRY), 0);
    CHECK_EQ(seen, 6);
    crt_watch_free(w);
    return NULL;
}

typedef struct waiter_arg {
    crt_watch *w;
    uint64_t seen;
    crt_time deadline;
    int result;
} waiter_arg;

static void *changed_waiter(void *arg) {
    waiter_arg *a = (waiter_arg *)arg;
    a->result = crt_watch_changed(a->w, &a->seen, a->deadline);
    return NULL;
}

static void *t_wake_close(void *arg) {
    (void)arg;
    int v = 0;
    crt_watch *w = crt_watch_new(sizeof v, &v);
    waiter_arg a[3];
    crt_task *t[3];
    for (int i = 0; i < 3; i++) {
        a[i].w = w;
        a[i].seen = 0;
        a[i].deadline = CRT_FOREVER;
        a[i].result = 1;
        t[i] = crt_spawn(changed_waiter, &a[i]);
    }
    wait_waiters(w, 3);
    v = 1;
    CHECK_EQ(crt_watch_send(w, &v), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
        CHECK_EQ(a[i].result, 0);
        CHECK_EQ(a[i].seen, 1);
    }
    /* Close wakes waiters with -EPIPE, *seen untouched. */
    for (int i = 0; i < 2; i++) {
        a[i].result = 1;
        t[i] = crt_spawn(changed_waiter, &a[i]);
    }
    wait_waiters(w, 2);
    crt_watch_close(w);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
        CHECK_EQ(a[i].result, -EPIPE);
        CHECK_EQ(a[i].seen, 1);
    }
    CHECK_EQ(crt_watch_send(w, &v), -EPIPE);
    CHECK_EQ(crt_watch_get(w, &v), 1); /* the last value stays */
    CHECK_EQ(v, 1);
    crt_watch_close(w); /* twice: harmless */
    crt_watch_free(w);

    /* A change made before the close is reported once, then -EPIPE. */
    v = 0;
    w = crt_watch_new(sizeof v, &v);
    uint64_t seen = 0;
    v = 5;
    CHECK_EQ(crt_watch_send(w, &v), 0);
    crt_watch_close(w);
    CHECK_EQ(crt_watch_changed(w, &seen, CRT_FOREVER), 0);
    CHECK_EQ(seen, 1);
    CHECK_EQ(crt_watch_changed(w, &seen, CRT_FOREVER), -EPIPE);
    CHECK_EQ(crt_watch_changed(w, &seen, CRT_TRY), -EPIPE);
    CHECK_EQ(seen, 1);
    crt_watch_free(w);
    return NULL;
}

static void *t_deadline_cancel(void *arg) {
    (void)arg;
    int v = 0;
    crt_watch *w = crt_watch_new(sizeof v, &v);
    uint64_t seen = 0;
    crt_time t0 = crt_now();
    CHECK_EQ(crt_watch_changed(w, &seen, crt_after(CRT_MS(20))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(20));
    CHECK_EQ(seen, 0);
    CHECK_EQ(waiters(w), 0);
    waiter_arg a = {w, 0, CRT_FOREVER, 1};
    crt_task *t = crt_spawn(changed_waiter, &a);
    wait_waiters(w, 1);
    crt_abort(t);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    CHECK_EQ(a.result, -ECANCELED);
    CHECK_EQ(a.seen, 0);
    CHECK_EQ(waiters(w), 0);
    crt_watch_free(w);
    return NULL;
}

/* >>torn reads: each value is `size` bytes all equal to (version & 0xff),
 * with the version itself in the first 8 bytes; a reader checks that the
 * copy is one whole value and that its version matches the one returned. */
typedef struct torn {
    crt_watch *w;
    size_t size;
    int sends;
    int done;        /* atomic */
    long reads;      /* atomic */
} torn;

static void fill(unsigned char *buf, size_t size, uint64_t version) {
    memset(buf, (int)(version & 0xff), size);
    if (size >= 8) memcpy(buf, &version, 8);
}

static void check_value(const unsigned char *buf, size_t size, uint64_t version) {
    if (size >= 8) {
        uint64_t inside;
        memcpy(&inside, buf, 8);
        CHECK_EQ(inside, version);
    }
    for (size_t i = size >= 8 ? 8 : 0; i < size; i++) CHECK_EQ(buf[i], (unsigned char)(version & 0xff));
}

static void *torn_reader(void *arg) {
    torn *t = (torn *)arg;
    unsigned char *buf = (unsigned char *)malloc(t->size);
    CHECK(buf != NULL);
    uint64_t last = 0;
    long n = 0;
    /* At least one read, even by a reader that starts after the writer
     * is done (a slow thread start, Valgrind's one-thread-at-a-time). */
    do {
        uint64_t v = crt_watch_get(t->w, buf);
        check_value(buf, t->size, v);
        CHECK(v >= last); /* versions never go back */
        last = v;
        n++;
        if (crt_current() && (n & 63) == 0) crt_yield();
    } while (!__atomic_load_n(&t->done, __ATOMIC_ACQUIRE));
    __atomic_add_fetch(&t->reads, n, __ATOMIC_RELAXED);
    free(buf);
    return NULL;
}

static void *torn_writer(void *arg) {
    torn *t = (torn *)arg;
    unsigned char *buf = (unsigned char *)malloc(t->size);
    CHECK(buf != NULL);
    for (int i = 1; i <= t->sends; i++) {
        fill(buf, t->size, (uint64_t)i);
        CHECK_EQ(crt_watch_send(t->w, buf), 0);
        if ((i & 15) == 0) crt_yield();
    }
    free(buf);
    return NULL;
}

static void *t_torn(void *arg) {
    (void)arg;
    static const size_t sizes[] = {4096, 1001, 3};
    for (size_t k = 0; k < 3; k++) {
        torn t;
        memset(&t, 0, sizeof t);
        t.size = sizes[k];
        t.sends = test_short() ? 2000 : 20000;
        unsigned char *init = (unsigned char *)calloc(1, t.size);
        t.w = crt_watch_new(t.size, init);
        free(init);
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, torn_reader, &t), 0); /* a plain thread too */
        crt_task *r[2], *w = crt_spawn(torn_writer, &t);
        for (int i = 0; i < 2; i++) r[i] = crt_spawn(torn_reader, &t);
        CHECK_EQ(crt_join(w, NULL, CRT_FOREVER), 0);
        __atomic_store_n(&t.done, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < 2; i++) CHECK_EQ(crt_join(r[i], NULL, CRT_FOREVER), 0);
        /* The thread needs nothing from the runtime to finish: joining it
         * here holds this worker only for the thread's last read. */
        CHECK_EQ(pthread_join(th, NULL), 0);
        CHECK(__atomic_load_n(&t.reads, __ATOMIC_RELAXED) >= 3);
        unsigned char *buf = (unsigned char *)malloc(t.size);
        CHECK_EQ(crt_watch_get(t.w, buf), (uint64_t)t.sends);
        check_value(buf, t.size, (uint64_t)t.sends);
        free(buf);
        crt_watch_free(t.w);
    }
    return NULL;
}

/* >>plain threads: a thread waits for changes a task makes */
typedef struct thr {
    crt_watch *w;
    int n;
    int result; /* atomic */
} thr;

static void *thread_follower(void *arg) {
    thr *t = (thr *)arg;
    uint64_t seen = 0;
    int r;
    while ((r = crt_watch_changed(t->w, &seen, crt_after(CRT_SEC(30)))) == 0) {
        int v;
        uint64_t ver = crt_watch_get(t->w, &v);
        CHECK(ver >= seen);
        CHECK_EQ(v, (int)ver);
    }
    if (seen != (uint64_t)t->n) r = -1000; /* the last change was reported */
    __atomic_store_n(&t->result, r, __ATOMIC_RELEASE);
    return NULL;
}

static void *t_threads(void *arg) {
    (void)arg;
    int v = 0;
    thr t = {crt_watch_new(sizeof v, &v), 2000, 1};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_follower, &t), 0);
    for (v = 1; v <= t.n; v++) {
        CHECK_EQ(crt_watch_send(t.w, &v), 0);
        if (v % 100 == 0) crt_sleep(CRT_US(100));
    }
    crt_watch_close(t.w);
    test_join_thread(th, &t.result, 1);
    CHECK_EQ(t.result, -EPIPE);
    crt_watch_free(t.w);
    return NULL;
}

static void test_threads_only(void) {
    long before = test_live_allocs();
    int v = 0;
    thr t = {crt_watch_new(sizeof v, &v), 3000, 1};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_follower, &t), 0);
    for (v = 1; v <= t.n; v++) CHECK_EQ(crt_watch_send(t.w, &v), 0);
    crt_watch_close(t.w);
    pthread_join(th, NULL);
    CHECK_EQ(t.result, -EPIPE);
    uint64_t seen = 0;
    CHECK_EQ(crt_watch_changed(t.w, &seen, crt_after(CRT_MS(10))), 0);
    CHECK_EQ(seen, (uint64_t)t.n);
    CHECK_EQ(crt_watch_changed(t.w, &seen, crt_after(CRT_MS(10))), -EPIPE);
    crt_watch_free(t.w);
    CHECK_EQ(test_live_allocs(), before);
}

int main(void) {
    test_seed();
    test_threads_only();
    static const int workers[] = {1, 2};
    for (int k = 0; k < 2; k++) {
        test_run(workers[k], t_bad_input, NULL);
        test_run(workers[k], t_versions, NULL);
        test_run(workers[k], t_wake_close, NULL);
        test_run(workers[k], t_deadline_cancel, NULL);
        test_run(workers[k], t_torn, NULL);
        test_run(workers[k], t_threads, NULL);
    }
    fprintf(stderr, "test_watch: ok\n");
    return 0;
}
