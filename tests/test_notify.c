/* crt_notify: notify_one stores at most one permit when nobody waits and
 * wakes waiters in FIFO order, notify_all wakes the current waiters only
 * and stores nothing, a waiter that times out as it is picked does not
 * swallow the notification, CRT_CASE_NOTIFY in select, plain threads, and
 * the misuse assert. */
#ifndef CRT_IMPLEMENTATION
#define CRT_IMPLEMENTATION
#endif
#include "check.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>


static void *wait_forever(void *arg) {
    (void)crt_notify_wait((crt_notify *)arg, CRT_FOREVER);
    return NULL;
}

static void misuse_destroy_waiting(void) {
    static crt_notify n = CRT_NOTIFY_INIT;
    pthread_t th;
    pthread_create(&th, NULL, wait_forever, &n);
    while (!(crt__load(&n.word, CRT__ACQUIRE) & 4u)) usleep(1000);
    crt_notify_destroy(&n);
}

/* >>permits (task or plain thread) */
static void *permits(void *arg) {
    (void)arg;
    crt_notify n;
    crt_notify_init(&n);
    CHECK_EQ(crt_notify_wait(NULL, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_notify_wait(&n, CRT_TRY), -EAGAIN);
    crt_time t0 = crt_now();
    CHECK_EQ(crt_notify_wait(&n, crt_after(CRT_MS(10))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(10));
    crt_notify_one(&n);
    crt_notify_one(&n); /* still one permit */
    CHECK_EQ(crt_notify_wait(&n, CRT_TRY), 0);
    CHECK_EQ(crt_notify_wait(&n, CRT_TRY), -EAGAIN);
    crt_notify_one(&n);
    CHECK_EQ(crt_notify_wait(&n, CRT_FOREVER), 0);
    crt_notify_all(&n); /* nobody waits: stores nothing */
    CHECK_EQ(crt_notify_wait(&n, CRT_TRY), -EAGAIN);
    crt_notify_destroy(&n);
    return NULL;
}

/* >>order on one worker */
typedef struct waiter_arg {
    crt_notify *n;
    int id;
    int *order, *norder;
    crt_time deadline;
    int rc;
} waiter_arg;

static void *waiter_fn(void *p) {
    waiter_arg *a = (waiter_arg *)p;
    a->rc = crt_notify_wait(a->n, a->deadline);
    if (a->rc == 0) a->order[(*a->norder)++] = a->id;
    return NULL;
}

static void *ordering(void *arg) {
    (void)arg;
    crt_notify n = CRT_NOTIFY_INIT;
    int order[16], norder = 0;
    waiter_arg a[6];
    crt_task *t[6];
    for (int i = 0; i < 4; i++) {
        a[i].n = &n;
        a[i].id = i;
        a[i].order = order;
        a[i].norder = &norder;
        a[i].deadline = CRT_FOREVER;
        a[i].rc = 1;
        t[i] = crt_spawn(waiter_fn, &a[i]);
        settle();
    }
    crt_abort(t[1]); /* aborted in the queue: skipped */
    settle();
    CHECK_EQ(a[1].rc, -ECANCELED);
    crt_notify_one(&n);
    settle();
    CHECK_EQ(norder, 1);
    CHECK_EQ(order[0], 0);
    crt_notify_one(&n);
    settle();
    CHECK_EQ(norder, 2);
    CHECK_EQ(order[1], 2);
    /* notify_all wakes the one left and those queued now, not later ones. */
    for (int i = 4; i < 6; i++) {
        a[i].n = &n;
        a[i].id = i;
        a[i].order = order;
        a[i].norder = &norder;
        a[i].deadline = CRT_FOREVER;
        a[i].rc = 1;
        t[i] = crt_spawn(waiter_fn, &a[i]);
        settle();
    }
    crt_notify_all(&n);
    waiter_arg late = {&n, 9, order, &norder, crt_after(CRT_MS(20)), 1};
    crt_task *tl = crt_spawn(waiter_fn, &late);
    for (int i = 0; i < 6; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    CHECK_EQ(norder, 5);
    CHECK_EQ(order[2], 3);
    CHECK_EQ(order[3], 4);
    CHECK_EQ(order[4], 5);
    CHECK_EQ(crt_join(tl, NULL, CRT_FOREVER), 0);
    CHECK_EQ(late.rc, -ETIMEDOUT); /* notify_all stored nothing for it */
    crt_notify_destroy(&n);
    return NULL;
}

/* >>a lost claim (claim_as_timeout: tests/check.h) */
static void *lost_claim(void *arg) {
    (void)arg;
    crt_notify n = CRT_NOTIFY_INIT;
    int order[4], norder = 0;
    waiter_arg a = {&n, 1, order, &norder, CRT_FOREVER, 9};
    waiter_arg b = {&n, 2, order, &norder, CRT_FOREVER, 9};
    crt_task *ta = crt_spawn(waiter_fn, &a);
    settle();
    crt_task *tb = crt_spawn(waiter_fn, &b);
    settle();
    crt__waiter *w = claim_as_timeout(n.q.head); /* a's deadline */
    crt_notify_one(&n);                          /* goes to b */
    crt__waiter_wake_to(w, 0);
    CHECK_EQ(crt_join(ta, NULL, CRT_FOREVER), 0);
    CHECK_EQ(crt_join(tb, NULL, CRT_FOREVER), 0);
    CHECK_EQ(a.rc, -ETIMEDOUT);
    CHECK_EQ(b.rc, 0);
    CHECK_EQ(crt_notify_wait(&n, CRT_TRY), -EAGAIN);
    /* Nobody else: the notification is stored, not lost. */
    a.rc = 9;
    ta = crt_spawn(waiter_fn, &a);
    settle();
    w = claim_as_timeout(n.q.head);
    crt_notify_one(&n);
    crt__waiter_wake_to(w, 0);
    CHECK_EQ(crt_join(ta, NULL, CRT_FOREVER), 0);
    CHECK_EQ(a.rc, -ETIMEDOUT);
    CHECK_EQ(crt_notify_wait(&n, CRT_TRY), 0);
    crt_notify_destroy(&n);
    return NULL;
}

/* >>no lost notification: waiters with tiny deadlines race notify_one;
 * every notify is either consumed by a successful wait or left stored */
typedef struct race {
    crt_notify n;
    long woken;   /* atomic */
    int stop;     /* atomic */
} race;

static void race_body(race *r, uint64_t seed) {
    uint64_t x = seed | 1;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int rc;
        if (x & 1) {
            crt_case c = CRT_CASE_NOTIFY(&r->n);
            rc = crt_select(&c, 1, 0, crt_after(CRT_US((long)(x >> 8) % 40)));
            if (rc == 0) CHECK_EQ(c.result, 0);
        } else {
            rc = crt_notify_wait(&r->n, crt_after(CRT_US((long)(x >> 8) % 40)));
        }
        if (rc == 0) __atomic_add_fetch(&r->woken, 1, __ATOMIC_SEQ_CST);
        else CHECK_EQ(rc, -ETIMEDOUT);
    }
}

static void *race_task(void *p) {
    race_body((race *)p, test_seed() ^ (uint64_t)(uintptr_t)&p);
    return NULL;
}

static void *race_main(void *p) {
    race *r = (race *)p;
    crt_task *t[8];
    for (int i = 0; i < 8; i++) CHECK((t[i] = crt_spawn(race_task, r)) != NULL);
    int n = test_short() ? 500 : 5000;
    for (int i = 0; i < n; i++) {
        /* One at a time: the previous one has been consumed before the
         * next, so permits never merge and each notify must wake once. */
        long before = __atomic_load_n(&r->woken, __ATOMIC_SEQ_CST);
        crt_notify_one(&r->n);
        crt_time give_up = crt_after(CRT_SEC(10));
        while (__atomic_load_n(&r->woken, __ATOMIC_SEQ_CST) == before) {
            CHECK(crt_now() < give_up);
            crt_yield();
        }
        CHECK_EQ(__atomic_load_n(&r->woken, __ATOMIC_SEQ_CST), before + 1);
    }
    __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 8; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    return NULL;
}

static void no_lost_notify(int workers) {
    race r;
    memset(&r, 0, sizeof r);
    crt_notify_init(&r.n);
    test_run(workers, race_main, &r);
    CHECK_EQ(crt_notify_wait(&r.n, CRT_TRY), -EAGAIN); /* all consumed */
    crt_notify_destroy(&r.n);
}

/* >>threads: plain threads wait, tasks notify, and the other way round */
typedef struct cross {
    crt_notify to_thread, to_task;
    int n;
} cross;

static void *cross_thread(void *p) {
    cross *c = (cross *)p;
    for (int i = 0; i < c->n; i++) {
        CHECK_EQ(crt_notify_wait(&c->to_thread, CRT_FOREVER), 0);
        crt_notify_one(&c->to_task);
    }
    return NULL;
}

static void *cross_task(void *p) {
    cross *c = (cross *)p;
    for (int i = 0; i < c->n; i++) {
        crt_notify_one(&c->to_thread);
        CHECK_EQ(crt_notify_wait(&c->to_task, CRT_FOREVER), 0);
    }
    return NULL;
}

static void threads(int workers) {
    cross c;
    crt_notify_init(&c.to_thread);
    crt_notify_init(&c.to_task);
    c.n = test_short() ? 500 : 5000;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, cross_thread, &c) == 0);
    test_run(workers, cross_task, &c);
    pthread_join(th, NULL);
    crt_notify_destroy(&c.to_thread);
    crt_notify_destroy(&c.to_task);
}

/* >>notify_all to many, then the notify is destroyed at once */
typedef struct many {
    crt_notify *n;
    int parked; /* atomic */
} many;

static void *many_waiter(void *p) {
    many *m = (many *)p;
    __atomic_add_fetch(&m->parked, 1, __ATOMIC_SEQ_CST);
    CHECK_EQ(crt_notify_wait(m->n, CRT_FOREVER), 0);
    return NULL;
}

static void *all_then_destroy(void *arg) {
    (void)arg;
    for (int round = 0; round < 10; round++) {
        crt_notify *n = (crt_notify *)malloc(sizeof *n);
        crt_notify_init(n);
        many m = {n, 0};
        crt_task *t[100];
        for (int i = 0; i < 100; i++) CHECK((t[i] = crt_spawn(many_waiter, &m)) != NULL);
        while (__atomic_load_n(&m.parked, __ATOMIC_SEQ_CST) < 100) crt_yield();
        for (;;) { /* all queued */
            crt_sleep(CRT_US(100));
            crt__lock_acquire(&n->word);
            crt__wait_node *q = n->q.head;
            int k = 0;
            while (q) {
                k++;
                q = q->next;
            }
            crt__lock_release(&n->word);
            if (k == 100) break;
        }
        crt_notify_all(n);
        crt_notify_destroy(n);
        memset(n, 0xa5, sizeof *n);
        free(n);
        for (int i = 0; i < 100; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    }
    return NULL;
}

int main(void) {
    (void)test_seed(); /* printed once, before any thread reads it */
    expect_assert(misuse_destroy_waiting, "crt_notify_destroy: tasks or threads are still waiting");
    for (int workers = 1; workers <= 2; workers++) {
        test_run(workers, permits, NULL);
        test_run(workers, all_then_destroy, NULL);
        no_lost_notify(workers);
        threads(workers);
    }
    test_run(1, ordering, NULL);
    test_run(1, lost_claim, NULL);
    permits(NULL); /* from a plain thread */
    fprintf(stderr, "test_notify: ok\n");
    return 0;
}
