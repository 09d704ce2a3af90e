/* tests/test_chan.c — crt_chan: FIFO over many laps, element sizes, close,
 * deadlines, cancellation, hand-off, many producers and consumers, plain
 * threads, two runtimes, and freeing right after the last value. */
#define CRT_IMPLEMENTATION
#include "check.h"

#include <pthread.h>

static int g_workers;

/* White box: how many waiters are queued (under the channel's lock). */
static int chan_waiters(crt_chan *c, int senders) {
    crt__lock_acquire(&c->lock);
    int n = 0;
    for (crt__wait_node *x = senders ? c->sendq.head : c->recvq.head; x; x = x->next) n++;
    crt__lock_release(&c->lock);
    return n;
}

/* Waits (yielding) until n waiters are queued. */
static void wait_waiters(crt_chan *c, int senders, int n) {
    while (chan_waiters(c, senders) < n) {
        if (crt_current()) crt_yield();
        else sched_yield();
    }
}

/* >>bad input */
static void *t_bad_input(void *arg) {
    (void)arg;
    errno = 0;
    CHECK(crt_chan_new(0, 4) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(crt_chan_new(4, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(crt_chan_new((size_t)1 << 40, (size_t)1 << 40) == NULL);
    CHECK_EQ(errno, ENOMEM);
    crt_chan *c = crt_chan_new(sizeof(int), 2);
    CHECK(c != NULL);
    int v = 1;
    CHECK_EQ(crt_chan_send(NULL, &v, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_chan_send(c, NULL, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_chan_recv(NULL, &v, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_chan_recv(c, NULL, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_chan_len(NULL), 0);
    crt_chan_close(NULL);
    crt_chan_free(NULL);
    CHECK_EQ(crt_chan_len(c), 0); /* nothing was sent by the failed calls */
    crt_chan_free(c);
    return NULL;
}

/* >>FIFO against a model queue, over many laps, odd capacities */
static void *t_fifo_model(void *arg) {
    (void)arg;
    static const size_t caps[] = {1, 2, 3, 5, 7, 64, 100};
    uint64_t rng = test_seed();
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        size_t cap = caps[k];
        crt_chan *c = crt_chan_new(sizeof(uint32_t), cap);
        CHECK(c != NULL);
        uint32_t model[128], next_in = 0, next_out = 0;
        size_t len = 0, head = 0;
        for (int i = 0; i < 20000; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            if (rng & 1) {
                uint32_t v = next_in;
                int r = crt_chan_send(c, &v, CRT_TRY);
                if (len == cap) {
                    CHECK_EQ(r, -EAGAIN);
                } else {
                    CHECK_EQ(r, 0);
                    model[(head + len) % 128] = v;
                    len++;
                    next_in++;
                }
            } else {
                uint32_t v = 0xdeadbeef;
                int r = crt_chan_recv(c, &v, CRT_TRY);
                if (len == 0) {
                    CHECK_EQ(r, -EAGAIN);
                    CHECK_EQ(v, 0xdeadbeef); /* untouched */
                } else {
                    CHECK_EQ(r, 0);
                    CHECK_EQ(v, model[head]);
                    CHECK_EQ(v, next_out);
                    head = (head + 1) % 128;
                    len--;
                    next_out++;
                }
            }
            CHECK_EQ(crt_chan_len(c), len);
        }
        crt_chan_free(c);
    }
    return NULL;
}

/* >>element sizes */
static void *t_elem_sizes(void *arg) {
    (void)arg;
    static const size_t sizes[] = {1, 3, 8, 13, 24, 1000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t sz = sizes[k];
        crt_chan *c = crt_chan_new(sz, 3);
        CHECK(c != NULL);
        unsigned char in[1000], out[1000];
        for (int round = 0; round < 10; round++) {
            for (int j = 0; j < 3; j++) {
                for (size_t b = 0; b < sz; b++) in[b] = (unsigned char)(b * 7 + (size_t)round * 31 + (size_t)j);
                CHECK_EQ(crt_chan_send(c, in, CRT_TRY), 0);
            }
            for (int j = 0; j < 3; j++) {
                memset(out, 0xee, sizeof out);
                CHECK_EQ(crt_chan_recv(c, out, CRT_TRY), 0);
                for (size_t b = 0; b < sz; b++) CHECK_EQ(out[b], (unsigned char)(b * 7 + (size_t)round * 31 + (size_t)j));
                if (sz < sizeof out) CHECK_EQ(out[sz], 0xee); /* exactly elem_size bytes */
            }
        }
        crt_chan_free(c);
    }
    return NULL;
}

/* >>close */
typedef struct blocker {
    crt_chan *c;
    int value;
    int result;
} blocker;

static void *recv_blocker(void *arg) {
    blocker *b = (blocker *)arg;
    b->result = crt_chan_recv(b->c, &b->value, CRT_FOREVER);
    return NULL;
}

static void *send_blocker(void *arg) {
    blocker *b = (blocker *)arg;
    b->result = crt_chan_send(b->c, &b->value, CRT_FOREVER);
    return NULL;
}

static void *t_close(void *arg) {
    (void)arg;
    /* Drain after close. */
    crt_chan *c = crt_chan_new(sizeof(int), 4);
    for (int i = 0; i < 3; i++) CHECK_EQ(crt_chan_send(c, &i, CRT_TRY), 0);
    crt_chan_close(c);
    crt_chan_close(c); /* twice: harmless */
    int v = 7;
    CHECK_EQ(crt_chan_send(c, &v, CRT_TRY), -EPIPE);
    CHECK_EQ(crt_chan_send(c, &v, CRT_FOREVER), -EPIPE);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(crt_chan_recv(c, &v, CRT_FOREVER), 0);
        CHECK_EQ(v, i);
    }
    CHECK_EQ(crt_chan_recv(c, &v, CRT_FOREVER), -EPIPE);
    CHECK_EQ(crt_chan_recv(c, &v, CRT_TRY), -EPIPE);
    CHECK_EQ(crt_chan_len(c), 0);
    crt_chan_free(c);

    /* Parked receivers wake with -EPIPE. */
    c = crt_chan_new(sizeof(int), 2);
    blocker rb[3];
    crt_task *t[3];
    for (int i = 0; i < 3; i++) {
        rb[i].c = c;
        rb[i].value = -1;
        rb[i].result = 1;
        t[i] = crt_spawn(recv_blocker, &rb[i]);
        CHECK(t[i] != NULL);
    }
    wait_waiters(c, 0, 3);
    crt_chan_close(c);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
        CHECK_EQ(rb[i].result, -EPIPE);
        CHECK_EQ(rb[i].value, -1);
    }
    crt_chan_free(c);

    /* Closing an empty channel with parked receivers, then freeing it at
     * once: the woken receivers must not touch it any more (ASan). */
    c = crt_chan_new(sizeof(int), 2);
    for (int i = 0; i < 3; i++) {
        rb[i].c = c;
        rb[i].value = -1;
        rb[i].result = 1;
        t[i] = crt_spawn(recv_blocker, &rb[i]);
    }
    wait_waiters(c, 0, 3);
    crt_chan_close(c);
    crt_chan_free(c);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
        CHECK_EQ(rb[i].result, -EPIPE);
    }

    /* Parked senders wake with -EPIPE; their values were not sent. */
    c = crt_chan_new(sizeof(int), 2);
    for (int i = 0; i < 2; i++) CHECK_EQ(crt_chan_send(c, &i, CRT_TRY), 0);
    blocker sb[2];
    for (int i = 0; i < 2; i++) {
        sb[i].c = c;
        sb[i].value = 100 + i;
        sb[i].result = 1;
        t[i] = crt_spawn(send_blocker, &sb[i]);
    }
    wait_waiters(c, 1, 2);
    crt_chan_close(c);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
        CHECK_EQ(sb[i].result, -EPIPE);
    }
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(crt_chan_recv(c, &v, CRT_TRY), 0);
        CHECK_EQ(v, i);
    }
    CHECK_EQ(crt_chan_recv(c, &v, CRT_TRY), -EPIPE);
    crt_chan_free(c);
    return NULL;
}

/* >>deadlines */
static void *t_deadlines(void *arg) {
    (void)arg;
    crt_chan *c = crt_chan_new(sizeof(int), 1);
    int v = 5;
    crt_time t0 = crt_now();
    CHECK_EQ(crt_chan_recv(c, &v, crt_after(CRT_MS(20))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(20));
    CHECK_EQ(v, 5);
    CHECK_EQ(chan_waiters(c, 0), 0); /* the node was taken off */
    CHECK_EQ(crt_chan_recv(c, &v, crt_now() - 1), -ETIMEDOUT); /* already past */
    CHECK_EQ(crt_chan_send(c, &v, CRT_TRY), 0);
    int w = 6;
    t0 = crt_now();
    CHECK_EQ(crt_chan_send(c, &w, crt_after(CRT_MS(20))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(20));
    CHECK_EQ(chan_waiters(c, 1), 0);
    CHECK_EQ(crt_chan_len(c), 1); /* the timed-out send did not happen */
    CHECK_EQ(crt_chan_recv(c, &w, CRT_TRY), 0);
    CHECK_EQ(w, 5);
    CHECK_EQ(crt_chan_recv(c, &w, CRT_TRY), -EAGAIN);
    crt_chan_free(c);
    return NULL;
}

/* >>cancellation */
static void *recv_self_aborted(void *arg) {
    blocker *b = (blocker *)arg;
    crt_abort(crt_current());
    b->result = crt_chan_recv(b->c, &b->value, CRT_FOREVER);
    return NULL;
}

static void *t_cancel(void *arg) {
    (void)arg;
    crt_chan *c = crt_chan_new(sizeof(int), 1);
    blocker b = {c, -1, 1};
    crt_task *t = crt_spawn(recv_blocker, &b);
    wait_waiters(c, 0, 1);
    crt_abort(t);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    CHECK_EQ(b.result, -ECANCELED);
    CHECK_EQ(chan_waiters(c, 0), 0);
    /* Once aborted, even a receive that could complete at once returns
     * -ECANCELED and takes nothing. */
    int v = 9;
    CHECK_EQ(crt_chan_send(c, &v, CRT_TRY), 0);
    t = crt_spawn(recv_self_aborted, &b);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    CHECK_EQ(b.result, -ECANCELED);
    CHECK_EQ(crt_chan_len(c), 1);
    /* A parked sender. */
    blocker s = {c, 10, 1};
    t = crt_spawn(send_blocker, &s);
    wait_waiters(c, 1, 1);
    crt_abort(t);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    CHECK_EQ(s.result, -ECANCELED);
    CHECK_EQ(crt_chan_recv(c, &v, CRT_TRY), 0);
    CHECK_EQ(v, 9);
    CHECK_EQ(crt_chan_recv(c, &v, CRT_TRY), -EAGAIN); /* 10 was not sent */
    crt_chan_free(c);
    return NULL;
}

/* >>ping-pong (the hand-off path) */
typedef struct pingpong {
    crt_chan *a, *b;
    int n;
} pingpong;

static void *echo(void *arg) {
    pingpong *p = (pingpong *)arg;
    int v;
    while (crt_chan_recv(p->a, &v, CRT_FOREVER) == 0) CHECK_EQ(crt_chan_send(p->b, &v, CRT_FOREVER), 0);
    return NULL;
}

static void *t_pingpong(void *arg) {
    (void)arg;
    pingpong p = {crt_chan_new(sizeof(int), 1), crt_chan_new(sizeof(int), 1), test_short() ? 5000 : 50000};
    crt_task *t = crt_spawn(echo, &p);
    for (int i = 0; i < p.n; i++) {
        int w = -1;
        CHECK_EQ(crt_chan_send(p.a, &i, CRT_FOREVER), 0);
        CHECK_EQ(crt_chan_recv(p.b, &w, CRT_FOREVER), 0);
        CHECK_EQ(w, i);
    }
    crt_chan_close(p.a);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    crt_chan_free(p.a);
    crt_chan_free(p.b);
    return NULL;
}

/* >>many producers, many consumers */
#define MP_PRODUCERS 4
#define MP_CONSUMERS 3
typedef struct mpmc {
    crt_chan *c;
    int per;
    int seen[MP_PRODUCERS];        /* consumers: count per producer (atomic) */
    long long sum;                 /* atomic */
} mpmc;

typedef struct mp_arg {
    mpmc *m;
    int id;
} mp_arg;

static void *mp_producer(void *arg) {
    mp_arg *a = (mp_arg *)arg;
    for (int i = 0; i < a->m->per; i++) {
        int v = a->id * 1000000 + i;
        CHECK_EQ(crt_chan_send(a->m->c, &v, CRT_FOREVER), 0);
    }
    return NULL;
}

static void *mp_consumer(void *arg) {
    mpmc *m = (mpmc *)arg;
    int last[MP_PRODUCERS];
    for (int i = 0; i < MP_PRODUCERS; i++) last[i] = -1;
    int v;
    while (crt_chan_recv(m->c, &v, CRT_FOREVER) == 0) {
        int p = v / 1000000, i = v % 1000000;
        CHECK(p >= 0 && p < MP_PRODUCERS);
        CHECK(i > last[p]); /* per-producer order */
        last[p] = i;
        __atomic_add_fetch(&m->seen[p], 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&m->sum, (long long)v, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *t_mpmc(void *arg) {
    (void)arg;
    static const size_t caps[] = {1, 3, 64};
    for (size_t k = 0; k < 3; k++) {
        mpmc m;
        memset(&m, 0, sizeof m);
        m.c = crt_chan_new(sizeof(int), caps[k]);
        m.per = test_short() ? 2000 : 20000;
        mp_arg pa[MP_PRODUCERS];
        crt_task *prod[MP_PRODUCERS], *cons[MP_CONSUMERS];
        for (int i = 0; i < MP_CONSUMERS; i++) cons[i] = crt_spawn(mp_consumer, &m);
        for (int i = 0; i < MP_PRODUCERS; i++) {
            pa[i].m = &m;
            pa[i].id = i;
            prod[i] = crt_spawn(mp_producer, &pa[i]);
        }
        for (int i = 0; i < MP_PRODUCERS; i++) CHECK_EQ(crt_join(prod[i], NULL, CRT_FOREVER), 0);
        crt_chan_close(m.c);
        for (int i = 0; i < MP_CONSUMERS; i++) CHECK_EQ(crt_join(cons[i], NULL, CRT_FOREVER), 0);
        long long expect = 0;
        for (int p = 0; p < MP_PRODUCERS; p++) {
            CHECK_EQ(m.seen[p], m.per);
            expect += (long long)p * 1000000 * m.per + (long long)m.per * (m.per - 1) / 2;
        }
        CHECK_EQ(m.sum, expect);
        crt_chan_free(m.c);
    }
    return NULL;
}

/* >>plain threads, with and without a runtime */
typedef struct thr {
    crt_chan *in, *out;
    int n;
    int result;
} thr;

static void *thread_echo(void *arg) {
    thr *t = (thr *)arg;
    int v;
    for (;;) {
        int r = crt_chan_recv(t->in, &v, crt_after(CRT_SEC(30)));
        if (r == -EPIPE) break;
        CHECK_EQ(r, 0);
        CHECK_EQ(crt_chan_send(t->out, &v, crt_after(CRT_SEC(30))), 0);
    }
    __atomic_store_n(&t->result, 0, __ATOMIC_RELEASE);
    return NULL;
}

static void *t_task_and_thread(void *arg) {
    (void)arg;
    thr t = {crt_chan_new(sizeof(int), 1), crt_chan_new(sizeof(int), 2), test_short() ? 2000 : 20000, 1};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_echo, &t), 0);
    for (int i = 0; i < t.n; i++) {
        int w = -1;
        CHECK_EQ(crt_chan_send(t.in, &i, CRT_FOREVER), 0);
        CHECK_EQ(crt_chan_recv(t.out, &w, CRT_FOREVER), 0);
        CHECK_EQ(w, i);
    }
    crt_chan_close(t.in);
    test_join_thread(th, &t.result, 1);
    crt_chan_free(t.in);
    crt_chan_free(t.out);
    return NULL;
}

static void test_threads_only(void) {
    long before = test_live_allocs();
    thr t = {crt_chan_new(sizeof(int), 1), crt_chan_new(sizeof(int), 1), test_short() ? 2000 : 20000, 1};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_echo, &t), 0);
    for (int i = 0; i < t.n; i++) {
        int w = -1;
        CHECK_EQ(crt_chan_send(t.in, &i, CRT_FOREVER), 0);
        CHECK_EQ(crt_chan_recv(t.out, &w, CRT_FOREVER), 0);
        CHECK_EQ(w, i);
    }
    crt_chan_close(t.in);
    pthread_join(th, NULL);
    CHECK_EQ(t.result, 0);
    /* Deadlines on a plain thread. */
    int v = 3;
    CHECK_EQ(crt_chan_recv(t.out, &v, CRT_TRY), -EAGAIN);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK_EQ(crt_chan_recv(t.out, &v, crt_after(CRT_MS(20))), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    CHECK((b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec) >= CRT_MS(20));
    CHECK_EQ(v, 3);
    CHECK_EQ(crt_chan_send(t.out, &v, CRT_TRY), 0);
    CHECK_EQ(crt_chan_send(t.out, &v, crt_after(CRT_MS(5))), -ETIMEDOUT);
    CHECK_EQ(crt_chan_len(t.out), 1);
    crt_chan_free(t.in);
    crt_chan_free(t.out);
    CHECK_EQ(test_live_allocs(), before);
}

/* >>a full ring: the sender's poll for room */

/* White box: crt__chan_advance(pos, k) is k steps of crt__chan_next, over
 * several laps and capacities that are and are not powers of two. */
static void test_advance(void) {
    static const size_t caps[] = {1, 2, 3, 5, 8, 100, 1024};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        crt_chan *c = crt_chan_new(sizeof(int), caps[i]);
        CHECK(c != NULL);
        uint64_t pos = 0;
        for (size_t step = 0; step < 3 * caps[i] + 7; step++) {
            uint64_t want = pos;
            for (uint64_t k = 0; k < caps[i] && k < 40; k++) {
                CHECK_EQ(crt__chan_advance(c, pos, k), want);
                want = crt__chan_next(c, want);
            }
            pos = crt__chan_next(c, pos);
        }
        crt_chan_free(c);
    }
}

typedef struct flood {
    crt_chan *c;
    int n;           /* values taken by the receiver */
    int fill;        /* values left in the ring at the end (its capacity) */
    int last_result;
} flood;

/* Sends 0..n+fill-1, then one more, which waits on the full ring until
 * the channel is closed. */
static void *flood_sender(void *arg) {
    flood *f = (flood *)arg;
    for (int i = 0; i < f->n + f->fill; i++) CHECK_EQ(crt_chan_send(f->c, &i, crt_after(CRT_SEC(30))), 0);
    int extra = -1;
    __atomic_store_n(&f->last_result, crt_chan_send(f->c, &extra, crt_after(CRT_SEC(30))), __ATOMIC_RELEASE);
    return NULL;
}

/* A plain thread keeps a small channel full while a task takes the values
 * in bursts and pauses (the sender polls, then parks, then polls again);
 * every value arrives once, in order; a close ends the send that waits. */
static void *t_full_ring(void *arg) {
    (void)arg;
    static const size_t caps[] = {1, 8, 200};
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        flood f = {crt_chan_new(sizeof(int), caps[k]), test_short() ? 3000 : 30000, (int)caps[k], 1};
        CHECK(f.c != NULL);
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, flood_sender, &f), 0);
        for (int i = 0; i < f.n; i++) {
            int v = -1;
            CHECK_EQ(crt_chan_recv(f.c, &v, CRT_FOREVER), 0);
            CHECK_EQ(v, i);
            if (i % 1000 == 999) crt_sleep(CRT_US(200));
            else if (i % 100 == 99) crt_yield();
        }
        /* The thread fills the ring, then waits on it with one more. */
        wait_waiters(f.c, 1, 1);
        CHECK_EQ(crt_chan_len(f.c), caps[k]);
        crt_chan_close(f.c);
        test_join_thread(th, &f.last_result, 1);
        CHECK_EQ(f.last_result, -EPIPE);
        crt_chan_free(f.c);
    }
    return NULL;
}

/* >>two runtimes joined by channels */
typedef struct cross {
    crt_chan *c, *back;
    int n;
} cross;

static void *cross_producer(void *arg) {
    cross *x = (cross *)arg;
    for (int i = 0; i < x->n; i++) CHECK_EQ(crt_chan_send(x->c, &i, CRT_FOREVER), 0);
    crt_chan_close(x->c);
    int ack = 0;
    CHECK_EQ(crt_chan_recv(x->back, &ack, CRT_FOREVER), 0);
    CHECK_EQ(ack, x->n);
    return NULL;
}

static void *cross_consumer(void *arg) {
    cross *x = (cross *)arg;
    int v, expect = 0;
    while (crt_chan_recv(x->c, &v, CRT_FOREVER) == 0) CHECK_EQ(v, expect++);
    CHECK_EQ(crt_chan_send(x->back, &expect, CRT_FOREVER), 0);
    return NULL;
}

typedef struct rt_thread {
    crt_runtime *rt;
    crt_fn fn;
    void *arg;
    int rc;
} rt_thread;

static void *rt_thread_main(void *arg) {
    rt_thread *r = (rt_thread *)arg;
    r->rc = crt_runtime_block_on(r->rt, r->fn, r->arg, NULL);
    return NULL;
}

static void test_two_runtimes(void) {
    long before = test_live_allocs();
    cross x = {crt_chan_new(sizeof(int), 4), crt_chan_new(sizeof(int), 1), test_short() ? 5000 : 50000};
    crt_config ca, cb;
    memset(&ca, 0, sizeof ca);
    memset(&cb, 0, sizeof cb);
    ca.workers = 2;
    cb.workers = 1;
    rt_thread ra = {crt_runtime_new(&ca), cross_producer, &x, 1};
    rt_thread rb = {crt_runtime_new(&cb), cross_consumer, &x, 1};
    CHECK(ra.rt && rb.rt);
    pthread_t ta, tb;
    CHECK_EQ(pthread_create(&ta, NULL, rt_thread_main, &ra), 0);
    CHECK_EQ(pthread_create(&tb, NULL, rt_thread_main, &rb), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_EQ(ra.rc, 0);
    CHECK_EQ(rb.rc, 0);
    CHECK_EQ(crt_runtime_shutdown(ra.rt, crt_after(CRT_SEC(5))), 0);
    CHECK_EQ(crt_runtime_shutdown(rb.rt, crt_after(CRT_SEC(5))), 0);
    crt_runtime_free(ra.rt);
    crt_runtime_free(rb.rt);
    crt_chan_free(x.c);
    crt_chan_free(x.back);
    CHECK_EQ(test_live_allocs(), before);
}

/* >>free right after the last value (ASan checks that the sender's and the
 * closer's last touches come before) */
typedef struct lastval {
    crt_chan *c;
    int close_it;
} lastval;

static void *last_sender(void *arg) {
    lastval *l = (lastval *)arg;
    crt_chan *c = l->c;
    int close_it = l->close_it;
    int v = 42;
    CHECK_EQ(crt_chan_send(c, &v, CRT_FOREVER), 0);
    if (close_it) crt_chan_close(c);
    return NULL;
}

static void *t_free_after_last(void *arg) {
    (void)arg;
    int rounds = test_short() ? 2000 : 20000;
    lastval *ls = (lastval *)malloc((size_t)rounds * sizeof *ls);
    crt_task **ts = (crt_task **)malloc((size_t)rounds * sizeof *ts);
    CHECK(ls && ts);
    for (int i = 0; i < rounds; i++) {
        ls[i].c = crt_chan_new(sizeof(int), 1);
        ls[i].close_it = i & 1;
        ts[i] = crt_spawn(last_sender, &ls[i]);
        CHECK(ts[i] != NULL);
        /* Half the time the sender goes first (through the ring), else the
         * receiver parks first (the hand-off). */
        if (i & 2) crt_yield();
        int v = 0;
        CHECK_EQ(crt_chan_recv(ls[i].c, &v, CRT_FOREVER), 0);
        CHECK_EQ(v, 42);
        if (ls[i].close_it) CHECK_EQ(crt_chan_recv(ls[i].c, &v, CRT_FOREVER), -EPIPE);
        /* The sender may still be inside crt_chan_send or crt_chan_close. */
        crt_chan_free(ls[i].c);
    }
    for (int i = 0; i < rounds; i++) CHECK_EQ(crt_join(ts[i], NULL, CRT_FOREVER), 0);
    free(ls);
    free(ts);
    return NULL;
}

int main(void) {
    test_seed();
    test_threads_only();
    test_two_runtimes();
    test_advance();
    static const int workers[] = {1, 2};
    for (int k = 0; k < 2; k++) {
        g_workers = workers[k];
        test_run(g_workers, t_bad_input, NULL);
        test_run(g_workers, t_fifo_model, NULL);
        test_run(g_workers, t_elem_sizes, NULL);
        test_run(g_workers, t_close, NULL);
        test_run(g_workers, t_deadlines, NULL);
        test_run(g_workers, t_cancel, NULL);
        test_run(g_workers, t_pingpong, NULL);
        test_run(g_workers, t_mpmc, NULL);
        test_run(g_workers, t_task_and_thread, NULL);
        test_run(g_workers, t_full_ring, NULL);
        test_run(g_workers, t_free_after_last, NULL);
    }
    fprintf(stderr, "test_chan: ok\n");
    return 0;
}
