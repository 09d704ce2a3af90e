/* tests/test_oneshot.c — crt_oneshot: value, close, deadlines, cancel,
 * both teardown orders, plain threads, and the race between a receiver
 * that times out and frees and a late sender (ASan checks it). */
#define CRT_IMPLEMENTATION
#include "check.h"

#include <pthread.h>

typedef struct big {
    long a[5];
} big;

/* White box: receives waiting on o. */
static int waiters(crt_oneshot *o) {
    crt__lock_acquire(&o->lock);
    int n = 0;
    for (crt__wait_node *x = o->q.head; x; x = x->next) n++;
    crt__lock_release(&o->lock);
    return n;
}

static void wait_waiters(crt_oneshot *o, int n) {
    while (waiters(o) < n) crt_yield();
}

static void *t_bad_input(void *arg) {
    (void)arg;
    errno = 0;
    CHECK(crt_oneshot_new(0) == NULL);
    CHECK_EQ(errno, EINVAL);
    crt_oneshot *o = crt_oneshot_new(sizeof(int));
    CHECK(o != NULL);
    int v = 5;
    CHECK_EQ(crt_oneshot_send(NULL, &v), -EINVAL);
    CHECK_EQ(crt_oneshot_send(o, NULL), -EINVAL); /* the sender side stays open */
    CHECK_EQ(crt_oneshot_recv(NULL, &v, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_oneshot_recv(o, NULL, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_oneshot_recv(o, &v, CRT_TRY), -EAGAIN);
    crt_oneshot_close(NULL);
    crt_oneshot_free(NULL);
    CHECK_EQ(crt_oneshot_send(o, &v), 0);
    int w = 0;
    CHECK_EQ(crt_oneshot_recv(o, &w, CRT_TRY), 0);
    CHECK_EQ(w, 5);
    crt_oneshot_free(o);
    return NULL;
}

static void *t_value(void *arg) {
    (void)arg;
    crt_oneshot *o = crt_oneshot_new(sizeof(big));
    big b = {{1, 2, 3, 4, 5}}, got;
    CHECK_EQ(crt_oneshot_send(o, &b), 0);
    memset(&got, 0, sizeof got);
    CHECK_EQ(crt_oneshot_recv(o, &got, CRT_FOREVER), 0);
    CHECK(memcmp(&b, &got, sizeof b) == 0);
    /* Received once: from now on -EPIPE, also with a deadline. */
    CHECK_EQ(crt_oneshot_recv(o, &got, CRT_TRY), -EPIPE);
    CHECK_EQ(crt_oneshot_recv(o, &got, crt_after(CRT_SEC(10))), -EPIPE);
    crt_oneshot_free(o);
    return NULL;
}

typedef struct rx {
    crt_oneshot *o;
    crt_time deadline;
    int value;
    int result;
} rx;

static void *receiver(void *arg) {
    rx *r = (rx *)arg;
    r->result = crt_oneshot_recv(r->o, &r->value, r->deadline);
    return NULL;
}

static void *t_wake(void *arg) {
    (void)arg;
    /* A parked receiver gets the value. */
    crt_oneshot *o = crt_oneshot_new(sizeof(int));
    rx r = {o, CRT_FOREVER, -1, 1};
    crt_task *t = crt_spawn(receiver, &r);
    wait_waiters(o, 1);
    int v = 77;
    CHECK_EQ(crt_oneshot_send(o, &v), 0);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    CHECK_EQ(r.result, 0);
    CHECK_EQ(r.value, 77);
    crt_oneshot_free(o);
    /* A parked receiver gets -EPIPE when the sender gives up. */
    o = crt_oneshot_new(sizeof(int));
    r.o = o;
    r.value = -1;
    r.result = 1;
    t = crt_spawn(receiver, &r);
    wait_waiters(o, 1);
    crt_oneshot_close(o);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    CHECK_EQ(r.result, -EPIPE);
    CHECK_EQ(r.value, -1);
    CHECK_EQ(crt_oneshot_recv(o, &v, CRT_TRY), -EPIPE);
    crt_oneshot_free(o);
    /* Closed before anyone waits. */
    o = crt_oneshot_new(sizeof(int));
    crt_oneshot_close(o);
    CHECK_EQ(crt_oneshot_recv(o, &v, CRT_FOREVER), -EPIPE);
    crt_oneshot_free(o);
    return NULL;
}

static void *t_deadline_cancel(void *arg) {
    (void)arg;
    crt_oneshot *o = crt_oneshot_new(sizeof(int));
    int v = 3;
    crt_time t0 = crt_now();
    CHECK_EQ(crt_oneshot_recv(o, &v, crt_after(CRT_MS(20))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(20));
    CHECK_EQ(v, 3);
    CHECK_EQ(waiters(o), 0);
    /* Cancelled while parked; the value sent later is still there. */
    rx r = {o, CRT_FOREVER, -1, 1};
    crt_task *t = crt_spawn(receiver, &r);
    wait_waiters(o, 1);
    crt_abort(t);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    CHECK_EQ(r.result, -ECANCELED);
    CHECK_EQ(waiters(o), 0);
    v = 8;
    CHECK_EQ(crt_oneshot_send(o, &v), 0);
    int w = 0;
    CHECK_EQ(crt_oneshot_recv(o, &w, CRT_TRY), 0);
    CHECK_EQ(w, 8);
    crt_oneshot_free(o);
    return NULL;
}

/* Both orders of ending the two sides; the allocator check in test_run
 * proves the memory went exactly once (ASan: and not too early). */
static void *t_teardown(void *arg) {
    (void)arg;
    int v = 1, w = 0;
    /* Receiver ends first: the late send gets -EPIPE and frees. */
    crt_oneshot *o = crt_oneshot_new(sizeof(int));
    crt_oneshot_free(o);
    CHECK_EQ(crt_oneshot_send(o, &v), -EPIPE);
    /* Receiver ends first; the sender closes. */
    o = crt_oneshot_new(sizeof(int));
    crt_oneshot_free(o);
    crt_oneshot_close(o);
    /* Sender ends first with a value nobody takes. */
    o = crt_oneshot_new(sizeof(int));
    CHECK_EQ(crt_oneshot_send(o, &v), 0);
    crt_oneshot_free(o);
    /* Sender ends first, receiver takes it, then frees. */
    o = crt_oneshot_new(sizeof(int));
    CHECK_EQ(crt_oneshot_send(o, &v), 0);
    CHECK_EQ(crt_oneshot_recv(o, &w, CRT_TRY), 0);
    CHECK_EQ(w, 1);
    crt_oneshot_free(o);
    return NULL;
}

/* >>the race: a receiver that times out and frees, a sender at any time */
typedef struct race {
    crt_oneshot *o;
    int send_result;
    uint64_t delay; /* spins before sending */
} race;

static void *race_sender(void *arg) {
    race *r = (race *)arg;
    crt_oneshot *o = r->o;
    for (volatile uint64_t i = 0; i < r->delay; i++) {
    }
    int v = 1234;
    r->send_result = crt_oneshot_send(o, &v);
    return NULL;
}

static void *t_race(void *arg) {
    (void)arg;
    int rounds = test_short() ? 2000 : 20000;
    uint64_t rng = test_seed();
    int got = 0, epipe = 0, dropped = 0;
    for (int i = 0; i < rounds; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        race r;
        r.o = crt_oneshot_new(sizeof(int));
        r.send_result = 1;
        r.delay = rng % 3000;
        crt_task *t = crt_spawn(race_sender, &r);
        int v = 0;
        crt_time dl = (rng >> 20) % 3 == 0 ? CRT_TRY : crt_after(CRT_US((int64_t)((rng >> 24) % 20)));
        int rr = crt_oneshot_recv(r.o, &v, dl);
        CHECK(rr == 0 || rr == -ETIMEDOUT || rr == -EAGAIN);
        if (rr == 0) CHECK_EQ(v, 1234);
        if (rr != 0 && (rng >> 40) % 2) crt_yield(); /* some rounds: let the sender come */
        crt_oneshot_free(r.o); /* the sender may be sending right now */
        CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
        CHECK(r.send_result == 0 || r.send_result == -EPIPE);
        if (rr == 0) {
            CHECK_EQ(r.send_result, 0); /* a received value was sent */
            got++;
        } else if (r.send_result == -EPIPE) {
            epipe++;
        } else {
            dropped++; /* sent after the timeout, before the free */
        }
    }
    CHECK_EQ(got + epipe + dropped, rounds);
    TEST_LOG("oneshot race: %d received, %d sends after the free, %d sent but not received", got, epipe, dropped);
    return NULL;
}

/* >>plain threads */
typedef struct thr {
    crt_oneshot *o;
    int result;
    int value;
} thr;

static void *thread_sender(void *arg) {
    thr *t = (thr *)arg;
    int v = 99;
    __atomic_store_n(&t->result, crt_oneshot_send(t->o, &v), __ATOMIC_RELEASE);
    return NULL;
}

static void *thread_receiver(void *arg) {
    thr *t = (thr *)arg;
    int r = crt_oneshot_recv(t->o, &t->value, crt_after(CRT_SEC(30)));
    __atomic_store_n(&t->result, r, __ATOMIC_RELEASE);
    return NULL;
}

static void *t_task_and_thread(void *arg) {
    (void)arg;
    /* A plain thread sends to a task. */
    thr t = {crt_oneshot_new(sizeof(int)), 1, 0};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_sender, &t), 0);
    int v = 0;
    CHECK_EQ(crt_oneshot_recv(t.o, &v, CRT_FOREVER), 0);
    CHECK_EQ(v, 99);
    test_join_thread(th, &t.result, 1);
    CHECK_EQ(t.result, 0);
    crt_oneshot_free(t.o);
    /* A task sends to a plain thread. */
    thr u = {crt_oneshot_new(sizeof(int)), 1, 0};
    CHECK_EQ(pthread_create(&th, NULL, thread_receiver, &u), 0);
    crt_sleep(CRT_MS(5));
    v = 11;
    CHECK_EQ(crt_oneshot_send(u.o, &v), 0);
    test_join_thread(th, &u.result, 1);
    CHECK_EQ(u.result, 0);
    CHECK_EQ(u.value, 11);
    crt_oneshot_free(u.o);
    return NULL;
}

static void test_threads_only(void) {
    long before = test_live_allocs();
    thr u = {crt_oneshot_new(sizeof(int)), 1, 0};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_receiver, &u), 0);
    int v = 21;
    CHECK_EQ(crt_oneshot_send(u.o, &v), 0);
    pthread_join(th, NULL);
    CHECK_EQ(u.result, 0);
    CHECK_EQ(u.value, 21);
    crt_oneshot_free(u.o);
    crt_oneshot *o = crt_oneshot_new(sizeof(int));
    CHECK_EQ(crt_oneshot_recv(o, &v, crt_after(CRT_MS(10))), -ETIMEDOUT);
    crt_oneshot_close(o);
    CHECK_EQ(crt_oneshot_recv(o, &v, crt_after(CRT_MS(10))), -EPIPE);
    crt_oneshot_free(o);
    CHECK_EQ(test_live_allocs(), before);
}

int main(void) {
    test_seed();
    test_threads_only();
    static const int workers[] = {1, 2};
    for (int k = 0; k < 2; k++) {
        test_run(workers[k], t_bad_input, NULL);
        test_run(workers[k], t_value, NULL);
        test_run(workers[k], t_wake, NULL);
        test_run(workers[k], t_deadline_cancel, NULL);
        test_run(workers[k], t_teardown, NULL);
        test_run(workers[k], t_race, NULL);
        test_run(workers[k], t_task_and_thread, NULL);
    }
    fprintf(stderr, "test_oneshot: ok\n");
    return 0;
}
