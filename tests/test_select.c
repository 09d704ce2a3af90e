/* tests/test_select.c — crt_select over channel, oneshot, broadcast, watch
 * and join cases: readiness, closed objects, deadlines, cancel, fairness,
 * and exactly-once under contention (a send that lost did not happen). */
#define CRT_IMPLEMENTATION
#include "check.h"

#include <pthread.h>

/* White box: waiters queued on a channel. */
static int chan_waiters(crt_chan *c) {
    crt__lock_acquire(&c->lock);
    int n = 0;
    for (crt__wait_node *x = c->recvq.head; x; x = x->next) n++;
    for (crt__wait_node *x = c->sendq.head; x; x = x->next) n++;
    crt__lock_release(&c->lock);
    return n;
}

static void wait_chan_waiters(crt_chan *c, int n) {
    while (chan_waiters(c) < n) crt_yield();
}

static void *t_basics(void *arg) {
    (void)arg;
    CHECK_EQ(crt_select(NULL, 1, 0, CRT_TRY), -EINVAL);
    crt_case bad[1];
    memset(bad, 0, sizeof bad);
    CHECK_EQ(crt_select(bad, 1, 0, CRT_TRY), -EINVAL);
    /* No cases: waits for the deadline. */
    CHECK_EQ(crt_select(NULL, 0, 0, CRT_TRY), -EAGAIN);
    crt_time t0 = crt_now();
    CHECK_EQ(crt_select(NULL, 0, 0, crt_after(CRT_MS(10))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(10));

    crt_chan *a = crt_chan_new(sizeof(int), 1), *b = crt_chan_new(sizeof(int), 1);
    int x = 0, y = 0, v = 5;
    crt_case cs[2];
    cs[0] = CRT_CASE_RECV(a, &x);
    cs[1] = CRT_CASE_RECV(b, &y);
    CHECK_EQ(crt_select(cs, 2, 0, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_chan_send(b, &v, CRT_TRY), 0);
    CHECK_EQ(crt_select(cs, 2, 0, CRT_TRY), 1);
    CHECK_EQ(cs[1].result, 0);
    CHECK_EQ(y, 5);
    CHECK_EQ(x, 0);
    /* SEND and RECV on one channel: only the ready one happens. */
    int in = 7, out = 0;
    cs[0] = CRT_CASE_SEND(a, &in);
    cs[1] = CRT_CASE_RECV(a, &out);
    CHECK_EQ(crt_select(cs, 2, 0, CRT_FOREVER), 0); /* empty: only the send is ready */
    CHECK_EQ(cs[0].result, 0);
    CHECK_EQ(crt_select(cs, 2, 0, CRT_FOREVER), 1); /* full: only the receive */
    CHECK_EQ(out, 7);
    CHECK_EQ(crt_chan_len(a), 0);
    /* Timeout: nothing happened, the send case did not send. */
    CHECK_EQ(crt_chan_send(b, &v, CRT_TRY), 0); /* b full */
    in = 99;
    cs[0] = CRT_CASE_SEND(b, &in);
    cs[1] = CRT_CASE_RECV(a, &out);
    t0 = crt_now();
    CHECK_EQ(crt_select(cs, 2, 0, crt_after(CRT_MS(10))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(10));
    CHECK_EQ(chan_waiters(a) + chan_waiters(b), 0);
    CHECK_EQ(crt_chan_len(b), 1);
    CHECK_EQ(crt_chan_recv(b, &out, CRT_TRY), 0);
    CHECK_EQ(out, 5);
    CHECK_EQ(crt_chan_recv(b, &out, CRT_TRY), -EAGAIN);
    /* Closed: ready, with -EPIPE in the case's result. */
    crt_chan_close(a);
    cs[0] = CRT_CASE_RECV(a, &out);
    cs[0].result = 12345;
    CHECK_EQ(crt_select(cs, 1, 0, CRT_FOREVER), 0);
    CHECK_EQ(cs[0].result, -EPIPE);
    cs[0] = CRT_CASE_SEND(a, &in);
    CHECK_EQ(crt_select(cs, 1, 0, CRT_TRY), 0);
    CHECK_EQ(cs[0].result, -EPIPE);
    /* A closed channel with values still hands them out first. */
    CHECK_EQ(crt_chan_send(b, &v, CRT_TRY), 0);
    crt_chan_close(b);
    cs[0] = CRT_CASE_RECV(b, &out);
    CHECK_EQ(crt_select(cs, 1, 0, CRT_TRY), 0);
    CHECK_EQ(cs[0].result, 0);
    CHECK_EQ(out, 5);
    CHECK_EQ(crt_select(cs, 1, 0, CRT_TRY), 0);
    CHECK_EQ(cs[0].result, -EPIPE);
    crt_chan_free(a);
    crt_chan_free(b);
    return NULL;
}

/* >>woken by another task; the other cases stay untouched */
typedef struct later {
    crt_chan *c;
    int value;
} later;

static void *send_later(void *arg) {
    later *l = (later *)arg;
    CHECK_EQ(crt_chan_send(l->c, &l->value, CRT_FOREVER), 0);
    return NULL;
}

static void *recv_later(void *arg) {
    later *l = (later *)arg;
    CHECK_EQ(crt_chan_recv(l->c, &l->value, CRT_FOREVER), 0);
    return NULL;
}

static void *close_later(void *arg) {
    crt_chan *c = (crt_chan *)arg;
    wait_chan_waiters(c, 1);
    crt_chan_close(c);
    return NULL;
}

static void *t_wake(void *arg) {
    (void)arg;
    crt_chan *a = crt_chan_new(sizeof(int), 1), *full = crt_chan_new(sizeof(int), 1);
    int v = 1;
    CHECK_EQ(crt_chan_send(full, &v, CRT_TRY), 0);
    /* A receive case woken by a sender (the hand-off). */
    int got = 0, in = 50;
    crt_case cs[2];
    cs[0] = CRT_CASE_SEND(full, &in);
    cs[1] = CRT_CASE_RECV(a, &got);
    later l = {a, 77};
    crt_task *t = crt_spawn(send_later, &l);
    CHECK_EQ(crt_select(cs, 2, 0, CRT_FOREVER), 1);
    CHECK_EQ(cs[1].result, 0);
    CHECK_EQ(got, 77);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    CHECK_EQ(chan_waiters(full), 0);
    CHECK_EQ(crt_chan_len(full), 1); /* the send case did not happen */
    /* A send case completed by a receiver that makes room. */
    cs[0] = CRT_CASE_SEND(full, &in);
    cs[1] = CRT_CASE_RECV(a, &got);
    l.c = full;
    l.value = -1;
    t = crt_spawn(recv_later, &l);
    CHECK_EQ(crt_select(cs, 2, 0, CRT_FOREVER), 0);
    CHECK_EQ(cs[0].result, 0);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    CHECK_EQ(l.value, 1);
    CHECK_EQ(crt_chan_recv(full, &v, CRT_TRY), 0);
    CHECK_EQ(v, 50);
    CHECK_EQ(chan_waiters(a), 0);
    /* A close wakes a parked select with -EPIPE. */
    cs[0] = CRT_CASE_RECV(a, &got);
    t = crt_spawn(close_later, a);
    CHECK_EQ(crt_select(cs, 1, 0, CRT_FOREVER), 0);
    CHECK_EQ(cs[0].result, -EPIPE);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    crt_chan_free(a);
    crt_chan_free(full);
    return NULL;
}

/* >>more cases than fit on the stack */
static void *t_many_cases(void *arg) {
    (void)arg;
    enum { N = 40 };
    crt_chan *c[N];
    int out[N];
    crt_case cs[N];
    for (int i = 0; i < N; i++) {
        c[i] = crt_chan_new(sizeof(int), 1);
        out[i] = -1;
        cs[i] = CRT_CASE_RECV(c[i], &out[i]);
    }
    later l = {c[33], 333};
    crt_task *t = crt_spawn(send_later, &l);
    CHECK_EQ(crt_select(cs, N, 0, CRT_FOREVER), 33);
    CHECK_EQ(out[33], 333);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(chan_waiters(c[i]), 0);
        if (i != 33) CHECK_EQ(out[i], -1);
        crt_chan_free(c[i]);
    }
    return NULL;
}

/* >>fairness: both always ready, each side lands 30-70 % */
static void *t_fairness(void *arg) {
    (void)arg;
    crt_chan *a = crt_chan_new(sizeof(int), 4), *b = crt_chan_new(sizeof(int), 4);
    int v = 1, x, y;
    for (int i = 0; i < 4; i++) {
        crt_chan_send(a, &v, CRT_TRY);
        crt_chan_send(b, &v, CRT_TRY);
    }
    int n = 4000, hits[2] = {0, 0};
    crt_case cs[2];
    cs[0] = CRT_CASE_RECV(a, &x);
    cs[1] = CRT_CASE_RECV(b, &y);
    for (int i = 0; i < n; i++) {
        int r = crt_select(cs, 2, 0, CRT_TRY);
        CHECK(r == 0 || r == 1);
        hits[r]++;
        CHECK_EQ(crt_chan_send(r ? b : a, &v, CRT_TRY), 0); /* keep both ready */
    }
    TEST_LOG("select fairness: %d / %d", hits[0], hits[1]);
    CHECK(hits[0] >= n * 3 / 10 && hits[0] <= n * 7 / 10);
    /* Three cases, the last never ready: the two ready ones still split
     * evenly (a random rotation of the order would give the first of them
     * two chances in three: it follows the never-ready case too). */
    {
        crt_chan *never = crt_chan_new(sizeof(int), 1);
        int z, hits3[3] = {0, 0, 0};
        crt_case c3[3];
        c3[0] = CRT_CASE_RECV(a, &x);
        c3[1] = CRT_CASE_RECV(b, &y);
        c3[2] = CRT_CASE_RECV(never, &z);
        for (int i = 0; i < n; i++) {
            int r = crt_select(c3, 3, 0, CRT_TRY);
            CHECK(r == 0 || r == 1);
            hits3[r]++;
            CHECK_EQ(crt_chan_send(r ? b : a, &v, CRT_TRY), 0);
        }
        TEST_LOG("select fairness, one of three never ready: %d / %d", hits3[0], hits3[1]);
        CHECK(hits3[0] >= n * 4 / 10 && hits3[0] <= n * 6 / 10);
        crt_chan_free(never);
    }
    /* Biased: always the first ready case. */
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(crt_select(cs, 2, CRT_SELECT_BIASED, CRT_TRY), 0);
        CHECK_EQ(crt_chan_send(a, &v, CRT_TRY), 0);
    }
    /* Send cases, both with room. */
    crt_chan *c = crt_chan_new(sizeof(int), 1), *d = crt_chan_new(sizeof(int), 1);
    cs[0] = CRT_CASE_SEND(c, &v);
    cs[1] = CRT_CASE_SEND(d, &v);
    hits[0] = hits[1] = 0;
    for (int i = 0; i < n; i++) {
        int r = crt_select(cs, 2, 0, CRT_TRY);
        CHECK(r == 0 || r == 1);
        hits[r]++;
        CHECK_EQ(crt_chan_recv(r ? d : c, &x, CRT_TRY), 0);
        CHECK_EQ(crt_chan_len(r ? c : d), 0); /* the other did not send */
    }
    CHECK(hits[0] >= n * 3 / 10 && hits[0] <= n * 7 / 10);
    crt_chan_free(a);
    crt_chan_free(b);
    crt_chan_free(c);
    crt_chan_free(d);
    return NULL;
}

/* >>other case kinds */
static void *finish_with(void *arg) { return arg; }

typedef struct trig {
    int kind;
    crt_oneshot *o;
    crt_bcast *b;
    crt_watch *w;
} trig;

static void *trigger(void *arg) {
    trig *t = (trig *)arg;
    crt_sleep(CRT_MS(2));
    int v = 100 + t->kind;
    switch (t->kind) {
    case 0: CHECK_EQ(crt_oneshot_send(t->o, &v), 0); break;
    case 1: CHECK_EQ(crt_bcast_send(t->b, &v), 1); break;
    case 2: CHECK_EQ(crt_watch_send(t->w, &v), 0); break;
    default: crt_oneshot_close(t->o); break;
    }
    return NULL;
}

static void *t_other_cases(void *arg) {
    (void)arg;
    crt_oneshot *o = crt_oneshot_new(sizeof(int));
    crt_bcast *b = crt_bcast_new(sizeof(int), 2);
    crt_bcast_rx *rx = crt_bcast_subscribe(b);
    int init = 0;
    crt_watch *w = crt_watch_new(sizeof(int), &init);
    int ov = -1, bv = -1;
    uint64_t seen = 0;
    crt_case cs[4];
    cs[0] = CRT_CASE_ONESHOT(o, &ov);
    cs[1] = CRT_CASE_BCAST(rx, &bv);
    cs[2] = CRT_CASE_CHANGED(w, &seen);
    CHECK_EQ(crt_select(cs, 3, 0, CRT_TRY), -EAGAIN);
    int v = 5;
    CHECK_EQ(crt_watch_send(w, &v), 0);
    CHECK_EQ(crt_select(cs, 3, 0, CRT_FOREVER), 2);
    CHECK_EQ(cs[2].result, 0);
    CHECK_EQ(seen, 1);
    CHECK_EQ(crt_bcast_send(b, &v), 1);
    CHECK_EQ(crt_select(cs, 3, 0, CRT_FOREVER), 1);
    CHECK_EQ(bv, 5);
    /* Lag shows as -EOVERFLOW in the case, as crt_bcast_recv. */
    for (int i = 0; i < 5; i++) crt_bcast_send(b, &i);
    CHECK_EQ(crt_select(cs, 3, 0, CRT_FOREVER), 1);
    CHECK_EQ(cs[1].result, -EOVERFLOW);
    CHECK_EQ(crt_bcast_missed(rx), 3);
    CHECK_EQ(crt_select(cs, 3, 0, CRT_FOREVER), 1);
    CHECK_EQ(bv, 3);
    CHECK_EQ(crt_select(cs, 3, 0, CRT_FOREVER), 1);
    CHECK_EQ(bv, 4);
    CHECK_EQ(crt_oneshot_send(o, &v), 0);
    CHECK_EQ(crt_select(cs, 3, 0, CRT_FOREVER), 0);
    CHECK_EQ(ov, 5);
    CHECK_EQ(crt_select(cs, 1, 0, CRT_FOREVER), 0); /* received once: -EPIPE */
    CHECK_EQ(cs[0].result, -EPIPE);
    /* Closed ones are ready with -EPIPE. */
    crt_watch_close(w);
    CHECK_EQ(crt_select(&cs[2], 1, 0, CRT_FOREVER), 0);
    CHECK_EQ(cs[2].result, -EPIPE);
    crt_bcast_close(b);
    CHECK_EQ(crt_select(&cs[1], 1, 0, CRT_FOREVER), 0);
    CHECK_EQ(cs[1].result, -EPIPE);
    crt_oneshot_free(o);
    crt_bcast_unsubscribe(rx);
    crt_bcast_free(b);
    crt_watch_free(w);

    /* Woken while parked: each kind (the trigger sleeps first so that the
     * select has usually parked; if not, the case is simply ready). */
    o = crt_oneshot_new(sizeof(int));
    b = crt_bcast_new(sizeof(int), 2);
    rx = crt_bcast_subscribe(b);
    w = crt_watch_new(sizeof(int), &init);
    seen = 0;
    crt_task *t = crt_spawn(finish_with, (void *)(uintptr_t)9);
    void *res = NULL;
    cs[0] = CRT_CASE_ONESHOT(o, &ov);
    cs[1] = CRT_CASE_BCAST(rx, &bv);
    cs[2] = CRT_CASE_CHANGED(w, &seen);
    cs[3] = CRT_CASE_JOIN(t, &res);
    CHECK_EQ(crt_select(cs, 4, 0, CRT_FOREVER), 3);
    CHECK_EQ(cs[3].result, 0);
    CHECK_EQ(res, (void *)(uintptr_t)9);
    trig tr = {0, o, b, w};
    static const int kinds[] = {2, 1, 0}; /* the oneshot last: once taken it stays ready (-EPIPE) */
    for (int k = 0; k < 3; k++) {
        tr.kind = kinds[k];
        crt_task *s = crt_spawn(trigger, &tr);
        CHECK_EQ(crt_select(cs, 3, 0, CRT_FOREVER), kinds[k]);
        CHECK_EQ(cs[kinds[k]].result, 0);
        CHECK_EQ(crt_join(s, NULL, CRT_FOREVER), 0);
    }
    CHECK_EQ(seen, 1);
    CHECK_EQ(bv, 101);
    CHECK_EQ(ov, 100);
    crt_oneshot_free(o);
    /* A oneshot whose sender gives up wakes the select with -EPIPE. */
    o = crt_oneshot_new(sizeof(int));
    cs[0] = CRT_CASE_ONESHOT(o, &ov);
    tr.o = o;
    tr.kind = 3;
    crt_task *s = crt_spawn(trigger, &tr);
    CHECK_EQ(crt_select(cs, 3, 0, CRT_FOREVER), 0);
    CHECK_EQ(cs[0].result, -EPIPE);
    CHECK_EQ(crt_join(s, NULL, CRT_FOREVER), 0);
    crt_oneshot_free(o);
    crt_bcast_unsubscribe(rx);
    crt_bcast_free(b);
    crt_watch_free(w);
    return NULL;
}

/* >>cancel */
typedef struct sel {
    crt_chan *c;
    int result;
} sel;

static void *select_forever(void *arg) {
    sel *s = (sel *)arg;
    int out;
    crt_case cs[1];
    cs[0] = CRT_CASE_RECV(s->c, &out);
    s->result = crt_select(cs, 1, 0, CRT_FOREVER);
    return NULL;
}

static void *t_cancel(void *arg) {
    (void)arg;
    sel s = {crt_chan_new(sizeof(int), 1), 1};
    crt_task *t = crt_spawn(select_forever, &s);
    wait_chan_waiters(s.c, 1);
    crt_abort(t);
    CHECK_EQ(crt_join(t, NULL, CRT_FOREVER), 0);
    CHECK_EQ(s.result, -ECANCELED);
    CHECK_EQ(chan_waiters(s.c), 0);
    crt_chan_free(s.c);
    return NULL;
}

/* >>exactly once under contention: senders select over two channels,
 * receivers select over both; every value arrives exactly once and the
 * number of completed send cases is the number received. Tasks and
 * plain threads (blocking-pool jobs) on both sides. */
#define EO_SENDERS 5
#define EO_RECEIVERS 3
typedef struct eo {
    crt_chan *c[2];
    int per;
    unsigned char *seen;  /* atomic bytes */
    long received;        /* atomic */
    long sent[2];         /* atomic: completed send cases per channel */
    long got[2];          /* atomic: received per channel */
} eo;

typedef struct eo_arg {
    eo *e;
    int id;
} eo_arg;

static void *eo_sender(void *arg) {
    eo_arg *a = (eo_arg *)arg;
    eo *e = a->e;
    for (int i = 0; i < e->per; i++) {
        int v = a->id * e->per + i;
        crt_case cs[2];
        cs[0] = CRT_CASE_SEND(e->c[0], &v);
        cs[1] = CRT_CASE_SEND(e->c[1], &v);
        int r = crt_select(cs, 2, 0, crt_after(CRT_SEC(30)));
        CHECK(r == 0 || r == 1);
        CHECK_EQ(cs[r].result, 0);
        __atomic_add_fetch(&e->sent[r], 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *eo_receiver(void *arg) {
    eo *e = (eo *)arg;
    int v[2];
    int open[2] = {1, 1};
    crt_case cs[2];
    int idx[2];
    for (;;) {
        int n = 0;
        for (int k = 0; k < 2; k++) {
            if (!open[k]) continue;
            cs[n] = CRT_CASE_RECV(e->c[k], &v[k]);
            idx[n++] = k;
        }
        if (n == 0) break;
        int r = crt_select(cs, (size_t)n, 0, crt_after(CRT_SEC(30)));
        CHECK(r >= 0 && r < n);
        int k = idx[r];
        if (cs[r].result == -EPIPE) {
            open[k] = 0;
            continue;
        }
        CHECK_EQ(cs[r].result, 0);
        CHECK(v[k] >= 0 && v[k] < EO_SENDERS * e->per);
        CHECK_EQ(__atomic_exchange_n(&e->seen[v[k]], 1, __ATOMIC_RELAXED), 0); /* not twice */
        __atomic_add_fetch(&e->received, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&e->got[k], 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *t_exactly_once(void *arg) {
    (void)arg;
    eo e;
    memset(&e, 0, sizeof e);
    e.per = test_short() ? 2000 : 20000;
    e.c[0] = crt_chan_new(sizeof(int), 1);
    e.c[1] = crt_chan_new(sizeof(int), 3);
    e.seen = (unsigned char *)calloc((size_t)(EO_SENDERS * e.per), 1);
    CHECK(e.seen != NULL);
    eo_arg sa[EO_SENDERS];
    crt_task *snd[EO_SENDERS], *rcv[EO_RECEIVERS];
    for (int i = 0; i < EO_RECEIVERS; i++)
        rcv[i] = i == 0 ? crt_spawn_blocking(eo_receiver, &e) : crt_spawn(eo_receiver, &e);
    for (int i = 0; i < EO_SENDERS; i++) {
        sa[i].e = &e;
        sa[i].id = i;
        snd[i] = i == 0 ? crt_spawn_blocking(eo_sender, &sa[i]) : crt_spawn(eo_sender, &sa[i]);
        CHECK(snd[i] != NULL);
    }
    for (int i = 0; i < EO_SENDERS; i++) CHECK_EQ(crt_join(snd[i], NULL, CRT_FOREVER), 0);
    crt_chan_close(e.c[0]);
    crt_chan_close(e.c[1]);
    for (int i = 0; i < EO_RECEIVERS; i++) CHECK_EQ(crt_join(rcv[i], NULL, CRT_FOREVER), 0);
    CHECK_EQ(e.received, (long)EO_SENDERS * e.per);
    for (int k = 0; k < 2; k++) CHECK_EQ(e.sent[k], e.got[k]); /* a send that lost did not happen */
    for (long i = 0; i < (long)EO_SENDERS * e.per; i++) CHECK_EQ(e.seen[i], 1);
    TEST_LOG("exactly once: %ld via the first channel, %ld via the second", e.got[0], e.got[1]);
    free(e.seen);
    crt_chan_free(e.c[0]);
    crt_chan_free(e.c[1]);
    return NULL;
}

/* >>a plain thread outside any runtime */
typedef struct thr {
    crt_chan *a, *b;
    int result;
    int index;
    int value;
} thr;

static void *thread_select(void *arg) {
    thr *t = (thr *)arg;
    crt_case cs[2];
    int x = -1, y = -1;
    cs[0] = CRT_CASE_RECV(t->a, &x);
    cs[1] = CRT_CASE_RECV(t->b, &y);
    t->index = crt_select(cs, 2, 0, crt_after(CRT_SEC(30)));
    t->result = t->index >= 0 ? cs[t->index].result : 0;
    t->value = t->index == 1 ? y : x;
    return NULL;
}

static void test_threads_only(void) {
    long before = test_live_allocs();
    thr t = {crt_chan_new(sizeof(int), 1), crt_chan_new(sizeof(int), 1), 1, -1, -1};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_select, &t), 0);
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
    int v = 31;
    CHECK_EQ(crt_chan_send(t.b, &v, CRT_FOREVER), 0);
    pthread_join(th, NULL);
    CHECK_EQ(t.index, 1);
    CHECK_EQ(t.result, 0);
    CHECK_EQ(t.value, 31);
    crt_case cs[1];
    cs[0] = CRT_CASE_RECV(t.a, &v);
    CHECK_EQ(crt_select(cs, 1, 0, crt_after(CRT_MS(10))), -ETIMEDOUT);
    CHECK_EQ(chan_waiters(t.a), 0);
    crt_chan_free(t.a);
    crt_chan_free(t.b);
    CHECK_EQ(test_live_allocs(), before);
}

int main(void) {
    test_seed();
    test_threads_only();
    static const int workers[] = {1, 2};
    for (int k = 0; k < 2; k++) {
        test_run(workers[k], t_basics, NULL);
        test_run(workers[k], t_wake, NULL);
        test_run(workers[k], t_many_cases, NULL);
        test_run(workers[k], t_fairness, NULL);
        test_run(workers[k], t_other_cases, NULL);
        test_run(workers[k], t_cancel, NULL);
        test_run(workers[k], t_exactly_once, NULL);
    }
    fprintf(stderr, "test_select: ok\n");
    return 0;
}
