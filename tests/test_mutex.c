/* crt_mutex: mutual exclusion with a non-atomic counter (tasks on 2
 * workers and plain threads together), FIFO hand-off (no barging, not even
 * by CRT_TRY), deadlines and aborts that lose nothing, CRT_MUTEX_INIT, the
 * misuse asserts, and the wait queue beneath (a model check). */
#ifndef CRT_IMPLEMENTATION
#define CRT_IMPLEMENTATION
#endif
#include "check.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>


static void misuse_unlock_unlocked(void) {
    crt_mutex m = CRT_MUTEX_INIT;
    crt_mutex_unlock(&m);
}

static void misuse_destroy_locked(void) {
    crt_mutex m;
    crt_mutex_init(&m);
    CHECK_EQ(crt_mutex_lock(&m, CRT_TRY), 0);
    crt_mutex_destroy(&m);
}

static crt_mutex global = CRT_MUTEX_INIT;

static void *lock_forever(void *arg) {
    (void)crt_mutex_lock((crt_mutex *)arg, CRT_FOREVER);
    return NULL;
}

static void misuse_destroy_waiting(void) {
    CHECK_EQ(crt_mutex_lock(&global, CRT_TRY), 0);
    pthread_t th;
    pthread_create(&th, NULL, lock_forever, &global);
    while (!(crt__load(&global.word, CRT__ACQUIRE) & 4u)) usleep(1000); /* WAITERS */
    crt_mutex_unlock(&global); /* hands it over: now held, with no waiter... */
    pthread_create(&th, NULL, lock_forever, &global);
    while (!(crt__load(&global.word, CRT__ACQUIRE) & 4u)) usleep(1000);
    crt_mutex_destroy(&global);
}

/* >>basics (task or plain thread) */
static void *basics(void *arg) {
    (void)arg;
    crt_mutex m;
    crt_mutex_init(&m);
    CHECK_EQ(crt_mutex_lock(NULL, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_mutex_lock(&m, CRT_TRY), 0);
    CHECK_EQ(crt_mutex_lock(&m, CRT_TRY), -EAGAIN);
    crt_time t0 = crt_now();
    CHECK_EQ(crt_mutex_lock(&m, crt_after(CRT_MS(15))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(15));
    crt_mutex_unlock(&m);
    CHECK_EQ(crt_mutex_lock(&m, CRT_FOREVER), 0);
    crt_mutex_unlock(&m);
    crt_mutex_destroy(&m);
    CHECK_EQ(crt_mutex_lock(&global, CRT_FOREVER), 0); /* static initialiser */
    crt_mutex_unlock(&global);
    return NULL;
}

/* >>FIFO hand-off on one worker: the order of events is the order of code */
typedef struct fifo_arg {
    crt_mutex *m;
    int id;
    int *order, *norder;
    crt_time deadline;
    int rc;
} fifo_arg;

static void *fifo_locker(void *p) {
    fifo_arg *a = (fifo_arg *)p;
    __atomic_store_n(&a->rc, crt_mutex_lock(a->m, a->deadline), __ATOMIC_RELEASE); /* polled by fifo() */
    if (a->rc == 0) {
        a->order[(*a->norder)++] = a->id;
        crt_yield(); /* hold it across a switch */
        crt_mutex_unlock(a->m);
    }
    return NULL;
}

static void *fifo(void *arg) {
    (void)arg;
    crt_mutex m = CRT_MUTEX_INIT;
    int order[10], norder = 0;
    fifo_arg a[10];
    crt_task *t[10];
    CHECK_EQ(crt_mutex_lock(&m, CRT_FOREVER), 0);
    for (int i = 0; i < 10; i++) {
        a[i].m = &m;
        a[i].id = i;
        a[i].order = order;
        a[i].norder = &norder;
        a[i].deadline = (i == 3 || i == 7) ? crt_after(CRT_MS(20)) : CRT_FOREVER;
        a[i].rc = 1;
        t[i] = crt_spawn(fifo_locker, &a[i]);
        settle(); /* queued in spawn order */
    }
    crt_abort(t[5]);
    settle();
    CHECK_EQ(a[5].rc, -ECANCELED);
    /* 3 and 7 time out in the queue (wait for them to have run: a loaded
     * machine may take a while to get to them after their deadline). */
    crt_time give_up = crt_after(CRT_SEC(10));
    while ((__atomic_load_n(&a[3].rc, __ATOMIC_ACQUIRE) == 1 || __atomic_load_n(&a[7].rc, __ATOMIC_ACQUIRE) == 1) &&
           crt_now() < give_up)
        crt_sleep(CRT_MS(5));
    CHECK_EQ(__atomic_load_n(&a[3].rc, __ATOMIC_ACQUIRE), -ETIMEDOUT);
    CHECK_EQ(__atomic_load_n(&a[7].rc, __ATOMIC_ACQUIRE), -ETIMEDOUT);
    crt_mutex_unlock(&m);
    /* Handed to 0 at once: a newcomer cannot barge in. */
    CHECK_EQ(crt_mutex_lock(&m, CRT_TRY), -EAGAIN);
    for (int i = 0; i < 10; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    int want[] = {0, 1, 2, 4, 6, 8, 9};
    CHECK_EQ(norder, 7);
    for (int i = 0; i < 7; i++) CHECK_EQ(order[i], want[i]);
    CHECK_EQ(crt_mutex_lock(&m, CRT_TRY), 0);
    crt_mutex_unlock(&m);
    crt_mutex_destroy(&m);
    return NULL;
}

/* >>a lost claim (claim_as_timeout: tests/check.h) */
static void *lost_claim(void *arg) {
    (void)arg;
    crt_mutex m = CRT_MUTEX_INIT;
    int order[4], norder = 0;
    fifo_arg a = {&m, 1, order, &norder, CRT_FOREVER, 9};
    fifo_arg b = {&m, 2, order, &norder, CRT_FOREVER, 9};
    CHECK_EQ(crt_mutex_lock(&m, CRT_FOREVER), 0);
    crt_task *ta = crt_spawn(fifo_locker, &a);
    settle();
    crt_task *tb = crt_spawn(fifo_locker, &b);
    settle();
    crt__waiter *w = claim_as_timeout(m.q.head); /* a's deadline */
    crt_mutex_unlock(&m);                        /* skips a, hands to b */
    crt__waiter_wake_to(w, 0);
    CHECK_EQ(crt_join(ta, NULL, CRT_FOREVER), 0);
    CHECK_EQ(crt_join(tb, NULL, CRT_FOREVER), 0);
    CHECK_EQ(a.rc, -ETIMEDOUT);
    CHECK_EQ(b.rc, 0);
    CHECK_EQ(norder, 1);
    /* The same with nobody behind: the mutex ends up free, not lost. */
    a.rc = 9;
    CHECK_EQ(crt_mutex_lock(&m, CRT_FOREVER), 0);
    ta = crt_spawn(fifo_locker, &a);
    settle();
    w = claim_as_timeout(m.q.head);
    crt_mutex_unlock(&m);
    crt__waiter_wake_to(w, 0);
    CHECK_EQ(crt_join(ta, NULL, CRT_FOREVER), 0);
    CHECK_EQ(a.rc, -ETIMEDOUT);
    CHECK_EQ(crt_mutex_lock(&m, CRT_TRY), 0);
    crt_mutex_unlock(&m);
    crt_mutex_destroy(&m);
    return NULL;
}

/* >>mutual exclusion: a plain counter, tasks on all workers plus threads */
typedef struct excl {
    crt_mutex m;
    long counter;   /* not atomic: the mutex protects it */
    int inside;     /* atomic: must be 1 inside */
    int iters;
    long timeouts;  /* atomic */
} excl;

static void excl_body(excl *e, uint64_t seed) {
    uint64_t x = seed | 1;
    for (int i = 0; i < e->iters; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        crt_time dl = (x & 15) == 0 ? crt_after(CRT_US((long)(x >> 8) % 50)) : CRT_FOREVER;
        int r = crt_mutex_lock(&e->m, dl);
        if (r != 0) {
            CHECK_EQ(r, -ETIMEDOUT);
            __atomic_add_fetch(&e->timeouts, 1, __ATOMIC_RELAXED);
            continue;
        }
        CHECK_EQ(__atomic_add_fetch(&e->inside, 1, __ATOMIC_SEQ_CST), 1);
        long c = e->counter;
        if ((x & 7) == 1) crt_yield(); /* a holder that parks: others queue */
        e->counter = c + 1;
        __atomic_sub_fetch(&e->inside, 1, __ATOMIC_SEQ_CST);
        crt_mutex_unlock(&e->m);
    }
}

static void *excl_task(void *p) {
    excl_body((excl *)p, test_seed() ^ (uint64_t)(uintptr_t)&p);
    return NULL;
}

static void *excl_main(void *p) {
    crt_task *t[50];
    for (int i = 0; i < 50; i++) CHECK((t[i] = crt_spawn(excl_task, p)) != NULL);
    for (int i = 0; i < 50; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    return NULL;
}

static void exclusion(int workers, int threads) {
    excl e;
    memset(&e, 0, sizeof e);
    crt_mutex_init(&e.m);
    e.iters = test_short() ? 300 : 2000;
    pthread_t th[4];
    for (int i = 0; i < threads; i++) CHECK(pthread_create(&th[i], NULL, excl_task, &e) == 0);
    test_run(workers, excl_main, &e);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    CHECK_EQ(e.counter + e.timeouts, (long)(50 + threads) * e.iters);
    CHECK_EQ(crt_mutex_lock(&e.m, CRT_TRY), 0); /* not lost to a timed-out waiter */
    crt_mutex_unlock(&e.m);
    crt_mutex_destroy(&e.m);
}

/* >>the W6 shape, small: 200 tasks hammering without yields */
static crt_mutex hammer_m = CRT_MUTEX_INIT;
static long hammer_count;

static void *hammer_task(void *p) {
    long n = (long)(intptr_t)p;
    for (long i = 0; i < n; i++) {
        CHECK_EQ(crt_mutex_lock(&hammer_m, CRT_FOREVER), 0);
        hammer_count++;
        crt_mutex_unlock(&hammer_m);
    }
    return NULL;
}

static void *hammer(void *arg) {
    (void)arg;
    long n = test_short() ? 200 : 2000;
    crt_task *t[200];
    hammer_count = 0;
    for (int i = 0; i < 200; i++) CHECK((t[i] = crt_spawn(hammer_task, (void *)(intptr_t)n)) != NULL);
    for (int i = 0; i < 200; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    CHECK_EQ(hammer_count, 200 * n);
    return NULL;
}

/* >>the wait queue under it, white box: the head's prev is left stale when
 * the head is taken (a hand-off does not touch the node behind it), so
 * check against a model that every mix of pushes, head pops and removals
 * from anywhere (timeouts, aborts) keeps the order, the tail and the prev
 * of every node but the head exact. */
static void waitq_model(void) {
    enum { N = 48 };
    crt__wait_node nodes[N];
    int order[N], len = 0;
    crt__waitq q = {NULL, NULL};
    memset(nodes, 0, sizeof nodes);
    uint64_t rng = test_seed() | 1;
    for (int step = 0; step < 200000; step++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int k = (int)(rng % N), op = (int)((rng >> 32) % 3);
        if (op == 0 && !nodes[k].linked) {
            crt__waitq_push(&q, &nodes[k]);
            order[len++] = k;
        } else if (op == 1 && len) {
            crt__wait_node *head = q.head;
            CHECK(head == &nodes[order[0]]);
            crt__waitq_remove(&q, head);
            CHECK(!head->linked && !head->next && !head->prev);
            memmove(order, order + 1, (size_t)--len * sizeof *order);
        } else if (op == 2) {
            int at = -1;
            for (int i = 0; i < len; i++)
                if (order[i] == k) at = i;
            crt__waitq_remove(&q, &nodes[k]); /* unlinked: a no-op */
            CHECK(!nodes[k].linked && !nodes[k].next && !nodes[k].prev);
            if (at >= 0) memmove(order + at, order + at + 1, (size_t)(--len - at) * sizeof *order);
        }
        crt__wait_node *n = q.head;
        for (int i = 0; i < len; i++, n = n->next) {
            CHECK(n == &nodes[order[i]]);
            CHECK(n->linked);
            if (i > 0) CHECK(n->prev == &nodes[order[i - 1]]);
        }
        CHECK(n == NULL);
        CHECK(q.tail == (len ? &nodes[order[len - 1]] : NULL));
        CHECK_EQ(crt__waitq_empty(&q), len == 0);
    }
}

int main(void) {
    (void)test_seed(); /* printed once, before any thread reads it */
    waitq_model();
    expect_assert(misuse_unlock_unlocked, "crt_mutex_unlock: the mutex is not locked");
    expect_assert(misuse_destroy_locked, "crt_mutex_destroy: the mutex is locked");
    expect_assert(misuse_destroy_waiting, "crt_mutex_destroy: tasks or threads are still waiting");
    for (int workers = 1; workers <= 2; workers++) {
        test_run(workers, basics, NULL);
        test_run(workers, hammer, NULL);
        exclusion(workers, 0);
        exclusion(workers, 2);
    }
    test_run(1, fifo, NULL);
    test_run(1, lost_claim, NULL);
    basics(NULL); /* from a plain thread */
    fprintf(stderr, "test_mutex: ok\n");
    return 0;
}
