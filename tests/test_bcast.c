/* tests/test_bcast.c — crt_bcast: every receiver sees every value, lag and
 * -EOVERFLOW, close, free orders, deadlines, cancel, plain threads, and
 * receivers that subscribe and unsubscribe while values are being sent. */
#define CRT_IMPLEMENTATION
#include "check.h"

#include <pthread.h>

/* White box: receives waiting on b. */
static int waiters(crt_bcast *b) {
    crt__lock_acquire(&b->lock);
    int n = 0;
    for (crt__wait_node *x = b->q.head; x; x = x->next) n++;
    crt__lock_release(&b->lock);
    return n;
}

static void wait_waiters(crt_bcast *b, int n) {
    while (waiters(b) < n) crt_yield();
}

static void *t_bad_input(void *arg) {
    (void)arg;
    errno = 0;
    CHECK(crt_bcast_new(0, 4) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(crt_bcast_new(4, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(crt_bcast_subscribe(NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    crt_bcast *b = crt_bcast_new(sizeof(int), 4);
    crt_bcast_rx *rx = crt_bcast_subscribe(b);
    int v = 1;
    CHECK_EQ(crt_bcast_send(NULL, &v), -EINVAL);
    CHECK_EQ(crt_bcast_send(b, NULL), -EINVAL);
    CHECK_EQ(crt_bcast_recv(NULL, &v, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_bcast_recv(rx, NULL, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_bcast_recv(rx, &v, CRT_TRY), -EAGAIN); /* nothing was sent */
    CHECK_EQ(crt_bcast_missed(NULL), 0);
    crt_bcast_unsubscribe(NULL);
    crt_bcast_close(NULL);
    crt_bcast_free(NULL);
    crt_bcast_unsubscribe(rx);
    crt_bcast_free(b);
    return NULL;
}

static void *t_basics(void *arg) {
    (void)arg;
    crt_bcast *b = crt_bcast_new(sizeof(int), 8);
    int v = 1;
    /* Nobody listens: dropped, and a later receiver does not see it. */
    CHECK_EQ(crt_bcast_send(b, &v), 0);
    crt_bcast_rx *r1 = crt_bcast_subscribe(b);
    crt_bcast_rx *r2 = crt_bcast_subscribe(b);
    CHECK_EQ(crt_bcast_recv(r1, &v, CRT_TRY), -EAGAIN);
    for (int i = 10; i < 15; i++) CHECK_EQ(crt_bcast_send(b, &i), 2);
    crt_bcast_rx *r3 = crt_bcast_subscribe(b); /* sees only what comes next */
    v = 15;
    CHECK_EQ(crt_bcast_send(b, &v), 3);
    for (int i = 10; i < 16; i++) {
        int a = -1, c = -1;
        CHECK_EQ(crt_bcast_recv(r1, &a, CRT_TRY), 0);
        CHECK_EQ(crt_bcast_recv(r2, &c, CRT_FOREVER), 0);
        CHECK_EQ(a, i);
        CHECK_EQ(c, i);
    }
    CHECK_EQ(crt_bcast_recv(r3, &v, CRT_TRY), 0);
    CHECK_EQ(v, 15);
    CHECK_EQ(crt_bcast_recv(r3, &v, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_bcast_missed(r1), 0);
    crt_bcast_unsubscribe(r2);
    v = 16;
    CHECK_EQ(crt_bcast_send(b, &v), 2);
    crt_bcast_unsubscribe(r1);
    crt_bcast_unsubscribe(r3);
    CHECK_EQ(crt_bcast_send(b, &v), 0);
    crt_bcast_free(b);
    return NULL;
}

static void *t_lag(void *arg) {
    (void)arg;
    crt_bcast *b = crt_bcast_new(sizeof(int), 4);
    crt_bcast_rx *slow = crt_bcast_subscribe(b), *fast = crt_bcast_subscribe(b);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(crt_bcast_send(b, &i), 2);
        int v = -1;
        CHECK_EQ(crt_bcast_recv(fast, &v, CRT_TRY), 0);
        CHECK_EQ(v, i);
    }
    int v = -1;
    CHECK_EQ(crt_bcast_recv(slow, &v, CRT_FOREVER), -EOVERFLOW); /* once, and no value */
    CHECK_EQ(v, -1);
    CHECK_EQ(crt_bcast_missed(slow), 6);
    CHECK_EQ(crt_bcast_missed(slow), 0); /* since the last call */
    for (int i = 6; i < 10; i++) {
        CHECK_EQ(crt_bcast_recv(slow, &v, CRT_TRY), 0); /* from the oldest kept */
        CHECK_EQ(v, i);
    }
    CHECK_EQ(crt_bcast_recv(slow, &v, CRT_TRY), -EAGAIN);
    /* Lag again, then the counter adds up over two overflows. */
    for (int i = 10; i < 15; i++) CHECK_EQ(crt_bcast_send(b, &i), 2);
    CHECK_EQ(crt_bcast_recv(slow, &v, CRT_TRY), -EOVERFLOW); /* lost 10 */
    CHECK_EQ(crt_bcast_recv(slow, &v, CRT_TRY), 0);
    CHECK_EQ(v, 11);
    for (int i = 15; i < 21; i++) CHECK_EQ(crt_bcast_send(b, &i), 2);
    CHECK_EQ(crt_bcast_recv(slow, &v, CRT_TRY), -EOVERFLOW); /* lost 12..16 */
    CHECK_EQ(crt_bcast_missed(slow), 1 + 5);
    CHECK_EQ(crt_bcast_recv(slow, &v, CRT_TRY), 0);
    CHECK_EQ(v, 17);
    crt_bcast_unsubscribe(slow);
    crt_bcast_unsubscribe(fast);
    crt_bcast_free(b);
    return NULL;
}

typedef struct rxarg {
    crt_bcast_rx *rx;
    crt_time deadline;
    int value;
    int result;
} rxarg;

static void *receiver(void *arg) {
    rxarg *a = (rxarg *)arg;
    a->result = crt_bcast_recv(a->rx, &a->value, a->deadline);
    return NULL;
}

static void *t_wake_close(void *arg) {
    (void)arg;
    crt_bcast *b = crt_bcast_new(sizeof(int), 4);
    rxarg a[3];
    crt_task *t[3];
    for (int i = 0; i < 3; i++) {
        a[i].rx = crt_bcast_subscribe(b);
        a[i].deadline = CRT_FOREVER;
        a[i].value = -1;
        a[i].result = 1;
        t[i] = crt_spawn(receiver, &a[i]);
    }
    wait_waiters(b, 3);
    int v = 42;
    CHECK_EQ(crt_bcast_send(b, &v), 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
        CHECK_EQ(a[i].result, 0);
        CHECK_EQ(a[i].value, 42);
        CHECK_EQ(crt_bcast_recv(a[i].rx, &v, CRT_TRY), -EAGAIN); /* delivered once */
    }
    /* Close: parked receivers wake with -EPIPE; others drain first. */
    for (int i = 0; i < 2; i++) {
        a[i].result = 1;
        t[i] = crt_spawn(receiver, &a[i]);
    }
    wait_waiters(b, 2);
    v = 43;
    crt_bcast_close(b);
    CHECK_EQ(crt_bcast_send(b, &v), -EPIPE);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
        CHECK_EQ(a[i].result, -EPIPE);
    }
    crt_bcast_close(b); /* twice: harmless */
    crt_bcast_rx *late = crt_bcast_subscribe(b);
    CHECK(late != NULL);
    CHECK_EQ(crt_bcast_recv(late, &v, CRT_FOREVER), -EPIPE);
    crt_bcast_unsubscribe(late);
    for (int i = 0; i < 3; i++) crt_bcast_unsubscribe(a[i].rx);
    crt_bcast_free(b);

    /* Values sent before the close are still received, then -EPIPE. */
    b = crt_bcast_new(sizeof(int), 4);
    crt_bcast_rx *rx = crt_bcast_subscribe(b);
    for (int i = 0; i < 3; i++) CHECK_EQ(crt_bcast_send(b, &i), 1);
    crt_bcast_free(b); /* closes; rx stays valid */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(crt_bcast_recv(rx, &v, CRT_FOREVER), 0);
        CHECK_EQ(v, i);
    }
    CHECK_EQ(crt_bcast_recv(rx, &v, CRT_FOREVER), -EPIPE);
    crt_bcast_unsubscribe(rx); /* the last reference: frees */
    return NULL;
}

static void *t_deadline_cancel(void *arg) {
    (void)arg;
    crt_bcast *b = crt_bcast_new(sizeof(int), 4);
    crt_bcast_rx *rx = crt_bcast_subscribe(b);
    int v = 5;
    crt_time t0 = crt_now();
    CHECK_EQ(crt_bcast_recv(rx, &v, crt_after(CRT_MS(20))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(20));
    CHECK_EQ(v, 5);
    CHECK_EQ(waiters(b), 0);
    rxarg a = {rx, CRT_FOREVER, -1, 1};
    crt_task *t = crt_spawn(receiver, &a);
    wait_waiters(b, 1);
    crt_abort(t);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    CHECK_EQ(a.result, -ECANCELED);
    CHECK_EQ(waiters(b), 0);
    v = 6;
    CHECK_EQ(crt_bcast_send(b, &v), 1); /* not lost by the cancelled receive */
    CHECK_EQ(crt_bcast_recv(rx, &v, CRT_TRY), 0);
    CHECK_EQ(v, 6);
    crt_bcast_unsubscribe(rx);
    crt_bcast_free(b);
    return NULL;
}

/* >>receivers come and go while a sender sends (teardown races, ASan);
 * each receiver checks it sees consecutive values, or an -EOVERFLOW whose
 * missed count covers the gap exactly. */
typedef struct churn {
    crt_bcast *b;
    int rounds;
    int done;        /* atomic: the sender finished */
} churn;

/* Reads up to 20 values, checking their order, then unsubscribes. */
static void read_then_leave(crt_bcast_rx *rx) {
    long last = -1;
    uint64_t lost = 0;
    for (int k = 0; k < 20; k++) {
        long v = -1;
        int rc = crt_bcast_recv(rx, &v, crt_after(CRT_MS(50)));
        if (rc == -EOVERFLOW) {
            lost += crt_bcast_missed(rx);
            continue;
        }
        if (rc == -EPIPE || rc == -ETIMEDOUT) break;
        CHECK_EQ(rc, 0);
        if (last >= 0) CHECK_EQ((uint64_t)v, (uint64_t)last + 1 + lost);
        lost = 0;
        last = v;
    }
    crt_bcast_unsubscribe(rx); /* possibly while a send is in progress */
}

static void *churn_receiver(void *arg) {
    churn *c = (churn *)arg;
    for (int r = 0; r < c->rounds; r++) {
        crt_bcast_rx *rx = crt_bcast_subscribe(c->b);
        CHECK(rx != NULL);
        read_then_leave(rx);
    }
    return NULL;
}

static void *subscribed_receiver(void *arg) {
    read_then_leave((crt_bcast_rx *)arg);
    return NULL;
}

static void *churn_sender(void *arg) {
    churn *c = (churn *)arg;
    for (long i = 0; !__atomic_load_n(&c->done, __ATOMIC_ACQUIRE); i++) {
        int n = crt_bcast_send(c->b, &i);
        CHECK(n >= 0);
        if ((i & 15) == 0) crt_yield();
    }
    return NULL;
}

static void *t_churn(void *arg) {
    (void)arg;
    churn c;
    c.b = crt_bcast_new(sizeof(long), 8);
    c.rounds = test_short() ? 100 : 1000;
    c.done = 0;
    crt_task *s = crt_spawn(churn_sender, &c);
    crt_task *r[4];
    for (int i = 0; i < 4; i++) r[i] = crt_spawn(churn_receiver, &c);
    for (int i = 0; i < 4; i++) CHECK_EQ(crt_join(r[i], NULL, CRT_FOREVER), 0);
    __atomic_store_n(&c.done, 1, __ATOMIC_RELEASE);
    CHECK_EQ(crt_join(s, NULL, CRT_FOREVER), 0);
    crt_bcast_free(c.b);

    /* The sender's handle goes while receivers still read; the last
     * unsubscribe frees (checked by test_run's allocation count). They
     * subscribe first: subscribing to a freed broadcast is misuse. */
    c.b = crt_bcast_new(sizeof(long), 8);
    for (int i = 0; i < 4; i++) {
        crt_bcast_rx *rx = crt_bcast_subscribe(c.b);
        CHECK(rx != NULL);
        r[i] = crt_spawn(subscribed_receiver, rx);
    }
    for (long i = 0; i < 4; i++) {
        crt_bcast_send(c.b, &i);
        crt_yield();
    }
    crt_bcast_free(c.b);
    for (int i = 0; i < 4; i++) CHECK_EQ(crt_join(r[i], NULL, CRT_FOREVER), 0);
    return NULL;
}

/* >>plain threads */
typedef struct thr {
    crt_bcast_rx *rx;
    int n;
    int result; /* atomic */
} thr;

static void *thread_receiver(void *arg) {
    thr *t = (thr *)arg;
    int v, r = 0;
    for (int i = 0; i < t->n; i++) {
        r = crt_bcast_recv(t->rx, &v, crt_after(CRT_SEC(30)));
        if (r != 0 || v != i) break;
    }
    if (r == 0) r = crt_bcast_recv(t->rx, &v, crt_after(CRT_SEC(30))); /* then -EPIPE */
    __atomic_store_n(&t->result, r, __ATOMIC_RELEASE);
    return NULL;
}

static void *t_threads(void *arg) {
    (void)arg;
    crt_bcast *b = crt_bcast_new(sizeof(int), 1024);
    thr t = {crt_bcast_subscribe(b), 1000, 1};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_receiver, &t), 0);
    for (int i = 0; i < t.n; i++) {
        CHECK_EQ(crt_bcast_send(b, &i), 1);
        if (i % 64 == 0) crt_sleep(CRT_US(50));
    }
    crt_bcast_close(b);
    test_join_thread(th, &t.result, 1);
    CHECK_EQ(t.result, -EPIPE);
    crt_bcast_unsubscribe(t.rx);
    crt_bcast_free(b);
    return NULL;
}

static void test_threads_only(void) {
    long before = test_live_allocs();
    crt_bcast *b = crt_bcast_new(sizeof(int), 2048);
    thr t = {crt_bcast_subscribe(b), 2000, 1};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_receiver, &t), 0);
    for (int i = 0; i < t.n; i++) CHECK_EQ(crt_bcast_send(b, &i), 1);
    crt_bcast_free(b);
    pthread_join(th, NULL);
    CHECK_EQ(t.result, -EPIPE);
    crt_bcast_unsubscribe(t.rx);
    CHECK_EQ(test_live_allocs(), before);
}

int main(void) {
    test_seed();
    test_threads_only();
    static const int workers[] = {1, 2};
    for (int k = 0; k < 2; k++) {
        test_run(workers[k], t_bad_input, NULL);
        test_run(workers[k], t_basics, NULL);
        test_run(workers[k], t_lag, NULL);
        test_run(workers[k], t_wake_close, NULL);
        test_run(workers[k], t_deadline_cancel, NULL);
        test_run(workers[k], t_churn, NULL);
        test_run(workers[k], t_threads, NULL);
    }
    fprintf(stderr, "test_bcast: ok\n");
    return 0;
}
