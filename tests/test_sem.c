/* crt_sem: counting, strict FIFO (a large request at the head is not
 * overtaken, not even by CRT_TRY), close, timeouts and aborts that lose no
 * permit, the agent pool (20 tasks, 5 permits, never more than 5 active),
 * CRT_CASE_SEM in select, plain threads, and the misuse asserts. */
#ifndef CRT_IMPLEMENTATION
#define CRT_IMPLEMENTATION
#endif
#include "check.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>


static void misuse_overflow(void) {
    crt_sem s;
    crt_sem_init(&s, CRT_SEM_MAX - 1);
    crt_sem_release(&s, 2);
}

static void *wait_forever(void *arg) {
    (void)crt_sem_acquire((crt_sem *)arg, 1, CRT_FOREVER);
    return NULL;
}

static void misuse_destroy_waiting(void) {
    static crt_sem s;
    crt_sem_init(&s, 0);
    pthread_t th;
    pthread_create(&th, NULL, wait_forever, &s);
    while (crt__load(&s.state, CRT__ACQUIRE) == 0) usleep(1000); /* WAITERS set */
    crt_sem_destroy(&s);
}

/* >>basics */
static void *basics(void *arg) {
    (void)arg;
    crt_sem s;
    crt_sem_init(&s, 3);
    CHECK_EQ(crt_sem_available(&s), 3);
    CHECK_EQ(crt_sem_acquire(&s, 0, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_sem_acquire(&s, CRT_SEM_MAX + (size_t)(sizeof(size_t) >= 8), CRT_TRY), sizeof(size_t) >= 8 ? -EINVAL : -EAGAIN);
    CHECK_EQ(crt_sem_acquire(NULL, 1, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_sem_acquire(&s, 2, CRT_TRY), 0);
    CHECK_EQ(crt_sem_available(&s), 1);
    CHECK_EQ(crt_sem_acquire(&s, 2, CRT_TRY), -EAGAIN);
    crt_time t0 = crt_now();
    CHECK_EQ(crt_sem_acquire(&s, 2, crt_after(CRT_MS(20))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(20));
    CHECK_EQ(crt_sem_available(&s), 1);
    crt_sem_release(&s, 2);
    CHECK_EQ(crt_sem_available(&s), 3);
    /* Beyond the initial count: a counting semaphore. */
    crt_sem_release(&s, 10);
    CHECK_EQ(crt_sem_available(&s), 13);
    CHECK_EQ(crt_sem_acquire(&s, 13, CRT_TRY), 0);
    CHECK_EQ(crt_sem_available(&s), 0);
    crt_sem_release(&s, 0); /* nothing */
    CHECK_EQ(crt_sem_available(&s), 0);
    crt_sem_release(&s, 1);
    crt_sem_close(&s);
    CHECK_EQ(crt_sem_acquire(&s, 1, CRT_TRY), -EPIPE);
    CHECK_EQ(crt_sem_acquire(&s, 1, CRT_FOREVER), -EPIPE);
    CHECK_EQ(crt_sem_available(&s), 1);
    crt_sem_close(&s); /* idempotent */
    crt_sem_destroy(&s);
    return NULL;
}

/* >>strict FIFO: one worker, so the order of events is the order of code */
typedef struct fifo_arg {
    crt_sem *s;
    size_t n;
    int id;
    int *order;
    int *norder;
    crt_time deadline;
    int rc;
} fifo_arg;

static void *fifo_taker(void *p) {
    fifo_arg *a = (fifo_arg *)p;
    a->rc = crt_sem_acquire(a->s, a->n, a->deadline);
    if (a->rc == 0) a->order[(*a->norder)++] = a->id;
    return NULL;
}

static void *fifo(void *arg) {
    (void)arg;
    crt_sem s;
    crt_sem_init(&s, 0);
    int order[8], norder = 0;
    fifo_arg big = {&s, 3, 1, order, &norder, CRT_FOREVER, 1};
    fifo_arg small = {&s, 1, 2, order, &norder, CRT_FOREVER, 1};
    crt_task *tb = crt_spawn(fifo_taker, &big);
    settle();
    crt_task *ts = crt_spawn(fifo_taker, &small);
    settle();
    /* Two permits: not enough for the head (3); the small request behind it
     * must not overtake it, nor may a CRT_TRY. */
    crt_sem_release(&s, 2);
    settle();
    CHECK_EQ(norder, 0);
    CHECK_EQ(crt_sem_available(&s), 2);
    CHECK_EQ(crt_sem_acquire(&s, 1, CRT_TRY), -EAGAIN);
    crt_case c = CRT_CASE_SEM(&s, 1);
    CHECK_EQ(crt_select(&c, 1, 0, CRT_TRY), -EAGAIN);
    crt_sem_release(&s, 1); /* 3: the head gets all of it, the small one waits on */
    settle();
    CHECK_EQ(norder, 1);
    CHECK_EQ(order[0], 1);
    CHECK_EQ(crt_sem_available(&s), 0);
    crt_sem_release(&s, 1);
    settle();
    CHECK_EQ(norder, 2);
    CHECK_EQ(order[1], 2);
    CHECK_EQ(crt_join(tb, NULL, CRT_FOREVER), 0);
    CHECK_EQ(crt_join(ts, NULL, CRT_FOREVER), 0);
    CHECK_EQ(big.rc, 0);
    CHECK_EQ(small.rc, 0);

    /* A head that times out lets the ones behind it in. */
    norder = 0;
    crt_sem_release(&s, 2);
    /* Long enough that a slow (TSan, loaded) run still checks before it
     * expires; the join below waits for it either way. */
    fifo_arg head = {&s, 10, 3, order, &norder, crt_after(CRT_MS(400)), 1};
    fifo_arg behind = {&s, 2, 4, order, &norder, CRT_FOREVER, 1};
    CHECK_EQ(crt_sem_acquire(&s, 2, CRT_TRY), 0); /* nobody queued yet: fine */
    crt_sem_release(&s, 2);
    tb = crt_spawn(fifo_taker, &head);
    settle();
    ts = crt_spawn(fifo_taker, &behind);
    settle();
    CHECK_EQ(norder, 0);
    CHECK_EQ(crt_join(tb, NULL, CRT_FOREVER), 0);
    CHECK_EQ(head.rc, -ETIMEDOUT);
    CHECK_EQ(crt_join(ts, NULL, CRT_FOREVER), 0);
    CHECK_EQ(behind.rc, 0);
    CHECK_EQ(crt_sem_available(&s), 0);

    /* An aborted waiter: -ECANCELED, nothing lost, the next one is served. */
    norder = 0;
    fifo_arg victim = {&s, 1, 5, order, &norder, CRT_FOREVER, 1};
    fifo_arg next = {&s, 1, 6, order, &norder, CRT_FOREVER, 1};
    tb = crt_spawn(fifo_taker, &victim);
    settle();
    ts = crt_spawn(fifo_taker, &next);
    settle();
    crt_abort(tb);
    settle();
    CHECK_EQ(victim.rc, -ECANCELED);
    crt_sem_release(&s, 1);
    CHECK_EQ(crt_join(ts, NULL, CRT_FOREVER), 0);
    CHECK_EQ(next.rc, 0);
    CHECK_EQ(crt_join(tb, NULL, CRT_FOREVER), 0);
    CHECK_EQ(crt_sem_available(&s), 0);

    /* An aborted task gets -ECANCELED even when permits are free. */
    crt_sem_release(&s, 1);
    victim.rc = 1;
    tb = crt_spawn(fifo_taker, &victim);
    crt_abort(tb);
    CHECK_EQ(crt_join(tb, NULL, CRT_FOREVER), 0);
    CHECK_EQ(victim.rc, -ECANCELED);
    CHECK_EQ(crt_sem_available(&s), 1);

    /* Close wakes every waiter with -EPIPE. */
    fifo_arg w1 = {&s, 5, 7, order, &norder, CRT_FOREVER, 1};
    fifo_arg w2 = {&s, 1, 8, order, &norder, CRT_FOREVER, 1};
    tb = crt_spawn(fifo_taker, &w1);
    ts = crt_spawn(fifo_taker, &w2);
    settle();
    crt_sem_close(&s);
    CHECK_EQ(crt_join(tb, NULL, CRT_FOREVER), 0);
    CHECK_EQ(crt_join(ts, NULL, CRT_FOREVER), 0);
    CHECK_EQ(w1.rc, -EPIPE);
    CHECK_EQ(w2.rc, -EPIPE);
    crt_sem_destroy(&s);
    return NULL;
}

/* >>a lost claim (claim_as_timeout: tests/check.h) */
static void *lost_claim(void *arg) {
    (void)arg;
    crt_sem s;
    crt_sem_init(&s, 0);
    int order[4], norder = 0;
    fifo_arg a = {&s, 2, 1, order, &norder, CRT_FOREVER, 9};
    fifo_arg b = {&s, 1, 2, order, &norder, CRT_FOREVER, 9};
    crt_task *ta = crt_spawn(fifo_taker, &a);
    settle();
    crt_task *tb = crt_spawn(fifo_taker, &b);
    settle();
    crt__waiter *w = claim_as_timeout(s.q.head); /* a's deadline */
    crt_sem_release(&s, 2);                      /* a gets none: b takes 1, 1 stays */
    crt__waiter_wake_to(w, 0);
    CHECK_EQ(crt_join(ta, NULL, CRT_FOREVER), 0);
    CHECK_EQ(crt_join(tb, NULL, CRT_FOREVER), 0);
    CHECK_EQ(a.rc, -ETIMEDOUT);
    CHECK_EQ(b.rc, 0);
    CHECK_EQ(crt_sem_available(&s), 1);
    crt_sem_destroy(&s);
    return NULL;
}

/* >>agent pool: 20 agents, 5 slots, the number active never exceeds 5 */
typedef struct pool {
    crt_sem slots;
    int active, max_active, done;
} pool;

static void *agent(void *p) {
    pool *pl = (pool *)p;
    for (int round = 0; round < 20; round++) {
        CHECK_EQ(crt_sem_acquire(&pl->slots, 1, CRT_FOREVER), 0);
        int a = __atomic_add_fetch(&pl->active, 1, __ATOMIC_SEQ_CST);
        CHECK(a <= 5);
        int m = __atomic_load_n(&pl->max_active, __ATOMIC_RELAXED);
        while (a > m && !__atomic_compare_exchange_n(&pl->max_active, &m, a, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        }
        if (round % 3 == 0) crt_sleep(CRT_US(200));
        else crt_yield();
        __atomic_sub_fetch(&pl->active, 1, __ATOMIC_SEQ_CST);
        crt_sem_release(&pl->slots, 1);
    }
    __atomic_add_fetch(&pl->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *agent_pool(void *arg) {
    (void)arg;
    pool pl;
    memset(&pl, 0, sizeof pl);
    crt_sem_init(&pl.slots, 5);
    crt_task *t[20];
    for (int i = 0; i < 20; i++) CHECK((t[i] = crt_spawn(agent, &pl)) != NULL);
    for (int i = 0; i < 20; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    CHECK_EQ(pl.done, 20);
    CHECK(pl.max_active <= 5);
    CHECK(pl.max_active >= 1);
    CHECK_EQ(crt_sem_available(&pl.slots), 5);
    crt_sem_destroy(&pl.slots);
    return NULL;
}

static void *thread_agent(void *p) { return agent(p); }

static void agent_pool_threads(void) {
    pool pl;
    memset(&pl, 0, sizeof pl);
    crt_sem_init(&pl.slots, 5);
    pthread_t th[20];
    for (int i = 0; i < 20; i++) CHECK(pthread_create(&th[i], NULL, thread_agent, &pl) == 0);
    for (int i = 0; i < 20; i++) pthread_join(th[i], NULL);
    CHECK_EQ(pl.done, 20);
    CHECK(pl.max_active <= 5);
    CHECK_EQ(crt_sem_available(&pl.slots), 5);
    crt_sem_destroy(&pl.slots);
}

/* >>conservation: tasks and plain threads move permits around with
 * timeouts and selects; at the end every permit is back. */
typedef struct churn {
    crt_sem a, b;
    int iters;
    long taken_a, taken_b; /* atomic */
} churn;

static void churn_body(churn *c, uint64_t seed) {
    uint64_t x = seed | 1;
    for (int i = 0; i < c->iters; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        crt_time dl = (x & 3) == 0 ? CRT_TRY : crt_after(CRT_US((long)(x >> 8) % 300));
        if (x & 4) {
            crt_case cs[2];
            cs[0] = CRT_CASE_SEM(&c->a, 1 + (x >> 5) % 2);
            cs[1] = CRT_CASE_SEM(&c->b, 1);
            int r = crt_select(cs, 2, 0, dl);
            if (r >= 0) {
                CHECK_EQ(cs[r].result, 0);
                if (r == 0) crt_sem_release(&c->a, (size_t)cs[0].arg);
                else crt_sem_release(&c->b, 1);
                __atomic_add_fetch(r == 0 ? &c->taken_a : &c->taken_b, 1, __ATOMIC_RELAXED);
            } else {
                CHECK(r == -ETIMEDOUT || r == -EAGAIN);
            }
        } else {
            size_t n = 1 + (x >> 5) % 3;
            int r = crt_sem_acquire(&c->a, n, dl);
            if (r == 0) {
                if (x & 8) crt_yield();
                crt_sem_release(&c->a, n);
                __atomic_add_fetch(&c->taken_a, 1, __ATOMIC_RELAXED);
            } else {
                CHECK(r == -ETIMEDOUT || r == -EAGAIN);
            }
        }
    }
}

static void *churn_task(void *p) {
    churn_body((churn *)p, test_seed() ^ (uint64_t)(uintptr_t)&p);
    return NULL;
}

static void *churn_thread(void *p) {
    churn_body((churn *)p, test_seed() * 31 ^ (uint64_t)(uintptr_t)&p);
    return NULL;
}

static void *churn_main(void *p) {
    churn *c = (churn *)p;
    crt_task *t[16];
    for (int i = 0; i < 16; i++) CHECK((t[i] = crt_spawn(churn_task, c)) != NULL);
    for (int i = 0; i < 16; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    return NULL;
}

static void conservation(int workers) {
    churn c;
    memset(&c, 0, sizeof c);
    crt_sem_init(&c.a, 3);
    crt_sem_init(&c.b, 1);
    c.iters = test_short() ? 300 : 2000;
    pthread_t th[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, churn_thread, &c) == 0);
    test_run(workers, churn_main, &c);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK_EQ(crt_sem_available(&c.a), 3);
    CHECK_EQ(crt_sem_available(&c.b), 1);
    CHECK(c.taken_a > 0);
    crt_sem_destroy(&c.a);
    crt_sem_destroy(&c.b);
}

/* >>select: a case completes with the permits, losers take none */
static void *select_cases(void *arg) {
    (void)arg;
    crt_sem a, b;
    crt_sem_init(&a, 0);
    crt_sem_init(&b, 2);
    crt_case cs[2];
    cs[0] = CRT_CASE_SEM(&a, 1);
    cs[1] = CRT_CASE_SEM(&b, 3);
    CHECK_EQ(crt_select(cs, 2, 0, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_select(cs, 2, 0, crt_after(CRT_MS(5))), -ETIMEDOUT);
    CHECK_EQ(crt_sem_available(&b), 2);
    crt_sem_release(&b, 1);
    CHECK_EQ(crt_select(cs, 2, 0, CRT_FOREVER), 1);
    CHECK_EQ(cs[1].result, 0);
    CHECK_EQ(crt_sem_available(&b), 0);
    cs[0] = CRT_CASE_SEM(&a, 0);
    CHECK_EQ(crt_select(cs, 1, 0, CRT_TRY), 0);
    CHECK_EQ(cs[0].result, -EINVAL);
    crt_sem_close(&a);
    cs[0] = CRT_CASE_SEM(&a, 1);
    CHECK_EQ(crt_select(cs, 2, CRT_SELECT_BIASED, CRT_FOREVER), 0);
    CHECK_EQ(cs[0].result, -EPIPE);
    crt_sem_destroy(&a);
    crt_sem_destroy(&b);
    return NULL;
}

/* >>plain threads and tasks hand permits back and forth */
typedef struct pingpong {
    crt_sem to_thread, to_task;
    int n;
} pingpong;

static void *pp_thread(void *p) {
    pingpong *pp = (pingpong *)p;
    for (int i = 0; i < pp->n; i++) {
        CHECK_EQ(crt_sem_acquire(&pp->to_thread, 1, CRT_FOREVER), 0);
        crt_sem_release(&pp->to_task, 1);
    }
    /* A plain thread's deadline. */
    crt_time t0 = crt_now();
    CHECK_EQ(crt_sem_acquire(&pp->to_thread, 1, crt_after(CRT_MS(10))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(10));
    CHECK_EQ(crt_sem_acquire(&pp->to_thread, 1, CRT_TRY), -EAGAIN);
    return NULL;
}

static void *pp_task(void *p) {
    pingpong *pp = (pingpong *)p;
    for (int i = 0; i < pp->n; i++) {
        crt_sem_release(&pp->to_thread, 1);
        CHECK_EQ(crt_sem_acquire(&pp->to_task, 1, CRT_FOREVER), 0);
    }
    return NULL;
}

static void threads_and_tasks(int workers) {
    pingpong pp;
    crt_sem_init(&pp.to_thread, 0);
    crt_sem_init(&pp.to_task, 0);
    pp.n = test_short() ? 500 : 5000;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, pp_thread, &pp) == 0);
    test_run(workers, pp_task, &pp);
    pthread_join(th, NULL);
    crt_sem_destroy(&pp.to_thread);
    crt_sem_destroy(&pp.to_task);
}

int main(void) {
    (void)test_seed(); /* printed once, before any thread reads it */
    expect_assert(misuse_overflow, "crt_sem_release: the permit count would overflow");
    expect_assert(misuse_destroy_waiting, "crt_sem_destroy: tasks or threads are still waiting");
    for (int workers = 1; workers <= 2; workers++) {
        test_run(workers, basics, NULL);
        test_run(workers, agent_pool, NULL);
        test_run(workers, select_cases, NULL);
        threads_and_tasks(workers);
        conservation(workers);
    }
    test_run(1, fifo, NULL);
    test_run(1, lost_claim, NULL);
    agent_pool_threads();
    basics(NULL); /* from a plain thread */
    fprintf(stderr, "test_sem: ok\n");
    return 0;
}
