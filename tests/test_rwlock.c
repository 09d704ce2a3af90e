/* crt_rwlock: readers share, writers are alone, a queued writer blocks
 * later readers (FIFO), a writer gets in within 1 s under a continuous
 * stream of readers, timeouts and aborts at the head let the others in,
 * consistency under churn from tasks and plain threads, and the misuse
 * asserts. */
#ifndef CRT_IMPLEMENTATION
#define CRT_IMPLEMENTATION
#endif
#include "check.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>


static void misuse_rdunlock(void) {
    crt_rwlock l = CRT_RWLOCK_INIT;
    crt_rwlock_rdunlock(&l);
}

static void misuse_rdunlock_writer(void) {
    crt_rwlock l = CRT_RWLOCK_INIT;
    CHECK_EQ(crt_rwlock_wrlock(&l, CRT_TRY), 0);
    crt_rwlock_rdunlock(&l);
}

static void misuse_wrunlock(void) {
    crt_rwlock l;
    crt_rwlock_init(&l);
    CHECK_EQ(crt_rwlock_rdlock(&l, CRT_TRY), 0);
    crt_rwlock_wrunlock(&l);
}

static void misuse_destroy_held(void) {
    crt_rwlock l = CRT_RWLOCK_INIT;
    CHECK_EQ(crt_rwlock_rdlock(&l, CRT_TRY), 0);
    crt_rwlock_destroy(&l);
}

/* >>basics (task or plain thread) */
static void *basics(void *arg) {
    (void)arg;
    crt_rwlock l;
    crt_rwlock_init(&l);
    CHECK_EQ(crt_rwlock_rdlock(NULL, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_rwlock_wrlock(NULL, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_rwlock_rdlock(&l, CRT_TRY), 0);
    CHECK_EQ(crt_rwlock_rdlock(&l, CRT_TRY), 0); /* readers share */
    CHECK_EQ(crt_rwlock_wrlock(&l, CRT_TRY), -EAGAIN);
    crt_time t0 = crt_now();
    CHECK_EQ(crt_rwlock_wrlock(&l, crt_after(CRT_MS(10))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(10));
    crt_rwlock_rdunlock(&l);
    CHECK_EQ(crt_rwlock_wrlock(&l, CRT_TRY), -EAGAIN);
    crt_rwlock_rdunlock(&l);
    CHECK_EQ(crt_rwlock_wrlock(&l, CRT_TRY), 0);
    CHECK_EQ(crt_rwlock_rdlock(&l, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_rwlock_wrlock(&l, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_rwlock_rdlock(&l, crt_after(CRT_MS(5))), -ETIMEDOUT);
    crt_rwlock_wrunlock(&l);
    CHECK_EQ(crt_rwlock_rdlock(&l, CRT_FOREVER), 0);
    crt_rwlock_rdunlock(&l);
    crt_rwlock_destroy(&l);
    return NULL;
}

/* >>fairness on one worker: the order of events is the order of code */
typedef struct who {
    crt_rwlock *l;
    int writer, id;
    crt_time deadline;
    int *order, *norder;
    int rc;
} who;

static void *locker(void *p) {
    who *a = (who *)p;
    a->rc = a->writer ? crt_rwlock_wrlock(a->l, a->deadline) : crt_rwlock_rdlock(a->l, a->deadline);
    if (a->rc != 0) return NULL;
    a->order[(*a->norder)++] = a->id;
    crt_yield();
    crt_yield();
    if (a->writer) crt_rwlock_wrunlock(a->l);
    else crt_rwlock_rdunlock(a->l);
    return NULL;
}

static void *fairness(void *arg) {
    (void)arg;
    crt_rwlock l = CRT_RWLOCK_INIT;
    int order[16], norder = 0;
    CHECK_EQ(crt_rwlock_rdlock(&l, CRT_FOREVER), 0); /* a reader holds it */
    /* queue: W1 R2 R3 W4 R5; then a TRY reader must not get in */
    who a[5] = {{&l, 1, 1, CRT_FOREVER, order, &norder, 1}, {&l, 0, 2, CRT_FOREVER, order, &norder, 1},
                {&l, 0, 3, CRT_FOREVER, order, &norder, 1}, {&l, 1, 4, CRT_FOREVER, order, &norder, 1},
                {&l, 0, 5, CRT_FOREVER, order, &norder, 1}};
    crt_task *t[5];
    for (int i = 0; i < 5; i++) {
        t[i] = crt_spawn(locker, &a[i]);
        settle();
    }
    CHECK_EQ(norder, 0); /* R2, R3 and R5 wait although only a reader holds it */
    CHECK_EQ(crt_rwlock_rdlock(&l, CRT_TRY), -EAGAIN);
    crt_rwlock_rdunlock(&l);
    for (int i = 0; i < 5; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    int want[] = {1, 2, 3, 4, 5};
    CHECK_EQ(norder, 5);
    for (int i = 0; i < 5; i++) CHECK_EQ(order[i], want[i]);

    /* A writer at the head times out: the readers behind it get in. */
    norder = 0;
    CHECK_EQ(crt_rwlock_rdlock(&l, CRT_FOREVER), 0);
    who w = {&l, 1, 6, crt_after(CRT_MS(20)), order, &norder, 1};
    who r = {&l, 0, 7, CRT_FOREVER, order, &norder, 1};
    crt_task *tw = crt_spawn(locker, &w);
    settle();
    crt_task *tr = crt_spawn(locker, &r);
    settle();
    CHECK_EQ(norder, 0);
    CHECK_EQ(crt_join(tw, NULL, CRT_FOREVER), 0);
    CHECK_EQ(w.rc, -ETIMEDOUT);
    CHECK_EQ(crt_join(tr, NULL, CRT_FOREVER), 0); /* while we still read */
    CHECK_EQ(r.rc, 0);
    CHECK_EQ(norder, 1);
    /* An aborted writer at the head: the same. */
    norder = 0;
    w.deadline = CRT_FOREVER;
    w.rc = r.rc = 1;
    tw = crt_spawn(locker, &w);
    settle();
    tr = crt_spawn(locker, &r);
    settle();
    crt_abort(tw);
    CHECK_EQ(crt_join(tw, NULL, CRT_FOREVER), 0);
    CHECK_EQ(w.rc, -ECANCELED);
    CHECK_EQ(crt_join(tr, NULL, CRT_FOREVER), 0);
    CHECK_EQ(r.rc, 0);
    crt_rwlock_rdunlock(&l);
    CHECK_EQ(crt_rwlock_wrlock(&l, CRT_TRY), 0);
    crt_rwlock_wrunlock(&l);
    crt_rwlock_destroy(&l);
    return NULL;
}

/* >>a lost claim (claim_as_timeout: tests/check.h) */
static void *lost_claim(void *arg) {
    (void)arg;
    crt_rwlock l = CRT_RWLOCK_INIT;
    int order[4], norder = 0;
    who w1 = {&l, 1, 1, CRT_FOREVER, order, &norder, 9};
    who r2 = {&l, 0, 2, CRT_FOREVER, order, &norder, 9};
    CHECK_EQ(crt_rwlock_wrlock(&l, CRT_FOREVER), 0);
    crt_task *t1 = crt_spawn(locker, &w1);
    settle();
    crt_task *t2 = crt_spawn(locker, &r2);
    settle();
    crt__waiter *w = claim_as_timeout(l.q.head); /* the queued writer's deadline */
    crt_rwlock_wrunlock(&l);                     /* skips it, admits the reader */
    crt__waiter_wake_to(w, 0);
    CHECK_EQ(crt_join(t1, NULL, CRT_FOREVER), 0);
    CHECK_EQ(crt_join(t2, NULL, CRT_FOREVER), 0);
    CHECK_EQ(w1.rc, -ETIMEDOUT);
    CHECK_EQ(r2.rc, 0);
    CHECK_EQ(crt_rwlock_wrlock(&l, CRT_TRY), 0); /* nothing leaked */
    crt_rwlock_wrunlock(&l);
    crt_rwlock_destroy(&l);
    return NULL;
}

/* >>writer starvation: readers overlap without a gap; a writer still gets
 * in within 1 s */
typedef struct stream {
    crt_rwlock l;
    int stop;     /* atomic */
    long reads;   /* atomic */
    int writer_in; /* atomic */
} stream;

static void *reader_loop(void *p) {
    stream *s = (stream *)p;
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        int r = crt_rwlock_rdlock(&s->l, CRT_FOREVER);
        CHECK_EQ(r, 0);
        CHECK(!__atomic_load_n(&s->writer_in, __ATOMIC_SEQ_CST));
        crt_sleep(CRT_US(300)); /* long holds, so at any time some reader is in */
        __atomic_add_fetch(&s->reads, 1, __ATOMIC_RELAXED);
        crt_rwlock_rdunlock(&s->l);
    }
    return NULL;
}

static void *starvation(void *arg) {
    (void)arg;
    stream s;
    memset(&s, 0, sizeof s);
    crt_rwlock_init(&s.l);
    crt_task *t[16];
    for (int i = 0; i < 16; i++) CHECK((t[i] = crt_spawn(reader_loop, &s)) != NULL);
    crt_sleep(CRT_MS(20)); /* the stream is flowing */
    CHECK(__atomic_load_n(&s.reads, __ATOMIC_RELAXED) > 0);
    for (int round = 0; round < 5; round++) {
        crt_time t0 = crt_now();
        int r = crt_rwlock_wrlock(&s.l, crt_after(CRT_SEC(1)));
        CHECK_EQ(r, 0);
        CHECK(crt_now() - t0 < CRT_SEC(1));
        __atomic_store_n(&s.writer_in, 1, __ATOMIC_SEQ_CST);
        crt_sleep(CRT_US(200));
        __atomic_store_n(&s.writer_in, 0, __ATOMIC_SEQ_CST);
        crt_rwlock_wrunlock(&s.l);
        crt_sleep(CRT_MS(2));
    }
    __atomic_store_n(&s.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 16; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    crt_rwlock_destroy(&s.l);
    return NULL;
}

/* >>consistency: writers keep a == b, readers check it; tasks and threads,
 * some with short deadlines */
typedef struct pair {
    crt_rwlock l;
    long a, b;   /* not atomic: the lock protects them */
    int readers; /* atomic: readers inside */
    int writers; /* atomic: writers inside */
    int iters;
    long writes; /* atomic */
} pair;

static void pair_body(pair *p, uint64_t seed) {
    uint64_t x = seed | 1;
    for (int i = 0; i < p->iters; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        crt_time dl = (x & 7) == 0 ? crt_after(CRT_US((long)(x >> 8) % 100)) : CRT_FOREVER;
        if ((x >> 3) % 4 == 0) {
            int r = crt_rwlock_wrlock(&p->l, dl);
            if (r != 0) {
                CHECK_EQ(r, -ETIMEDOUT);
                continue;
            }
            CHECK_EQ(__atomic_add_fetch(&p->writers, 1, __ATOMIC_SEQ_CST), 1);
            CHECK_EQ(__atomic_load_n(&p->readers, __ATOMIC_SEQ_CST), 0);
            long v = p->a;
            if (x & 32) crt_yield();
            p->a = v + 1;
            p->b = v + 1;
            __atomic_sub_fetch(&p->writers, 1, __ATOMIC_SEQ_CST);
            __atomic_add_fetch(&p->writes, 1, __ATOMIC_RELAXED);
            crt_rwlock_wrunlock(&p->l);
        } else {
            int r = crt_rwlock_rdlock(&p->l, dl);
            if (r != 0) {
                CHECK_EQ(r, -ETIMEDOUT);
                continue;
            }
            __atomic_add_fetch(&p->readers, 1, __ATOMIC_SEQ_CST);
            CHECK_EQ(__atomic_load_n(&p->writers, __ATOMIC_SEQ_CST), 0);
            long a = p->a;
            if (x & 32) crt_yield();
            CHECK_EQ(p->b, a);
            __atomic_sub_fetch(&p->readers, 1, __ATOMIC_SEQ_CST);
            crt_rwlock_rdunlock(&p->l);
        }
    }
}

static void *pair_task(void *p) {
    pair_body((pair *)p, test_seed() ^ (uint64_t)(uintptr_t)&p);
    return NULL;
}

static void *pair_main(void *p) {
    crt_task *t[40];
    for (int i = 0; i < 40; i++) CHECK((t[i] = crt_spawn(pair_task, p)) != NULL);
    for (int i = 0; i < 40; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    return NULL;
}

static void consistency(int workers) {
    pair p;
    memset(&p, 0, sizeof p);
    crt_rwlock_init(&p.l);
    p.iters = test_short() ? 300 : 2000;
    pthread_t th[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, pair_task, &p) == 0);
    test_run(workers, pair_main, &p);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK_EQ(p.a, p.writes);
    CHECK_EQ(p.b, p.writes);
    CHECK_EQ(crt_rwlock_wrlock(&p.l, CRT_TRY), 0); /* nothing leaked */
    crt_rwlock_wrunlock(&p.l);
    crt_rwlock_destroy(&p.l);
}

int main(void) {
    (void)test_seed(); /* printed once, before any thread reads it */
    expect_assert(misuse_rdunlock, "crt_rwlock_rdunlock: the caller holds no read lock");
    expect_assert(misuse_rdunlock_writer, "crt_rwlock_rdunlock: the caller holds no read lock");
    expect_assert(misuse_wrunlock, "crt_rwlock_wrunlock: the caller does not hold the write lock");
    expect_assert(misuse_destroy_held, "crt_rwlock_destroy: the rwlock is held");
    for (int workers = 1; workers <= 2; workers++) {
        test_run(workers, basics, NULL);
        test_run(workers, starvation, NULL);
        consistency(workers);
    }
    test_run(1, fairness, NULL);
    test_run(1, lost_claim, NULL);
    basics(NULL); /* from a plain thread */
    fprintf(stderr, "test_rwlock: ok\n");
    return 0;
}
