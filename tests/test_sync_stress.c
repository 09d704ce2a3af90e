/* Stress: tasks in a group and plain threads hammer one mutex, semaphore,
 * rwlock, notify and token tree at once, with random deadlines, selects
 * across them, and a chaos task aborting members at random; at the end the
 * group is destroyed and every invariant is checked: the counters the
 * locks protect add up, no permit and no lock leaked, nobody was inside
 * when they should not be. Prints its seed (CRT_TEST_SEED replays the
 * choices; the interleaving is the machine's). Also run with
 * CRT_DEBUG_MIGRATE=1, which moves every task at every switch. */
#ifndef CRT_IMPLEMENTATION
#define CRT_IMPLEMENTATION
#endif
#include "check.h"
#include <pthread.h>

#define PERMITS 4
#define TASKS 48
#define THREADS 2

typedef struct world {
    crt_mutex m;
    long m_count;        /* plain: the mutex protects it */
    long m_locks;        /* atomic: successful locks */
    int m_inside;        /* atomic */
    crt_sem s;
    int s_active;        /* atomic: permits held */
    crt_rwlock l;
    long l_a, l_b;       /* plain: the rwlock protects them */
    long l_writes;       /* atomic */
    int l_writers, l_readers; /* atomic */
    crt_notify n;
    long notified;       /* atomic: successful waits */
    crt_token root, kids[4];
    int iters;
    int stop_chaos;      /* atomic */
    long cancels;        /* atomic: calls that returned -ECANCELED */
    int finished;        /* atomic: members done */
} world;

static uint64_t next_rand(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static crt_time some_deadline(uint64_t r) {
    switch (r % 4) {
    case 0: return CRT_TRY;
    case 1: return CRT_FOREVER;
    default: return crt_after(CRT_US((long)(r >> 8) % 200));
    }
}

/* One operation; returns -ECANCELED when the caller was aborted. Plain
 * threads (no abort reaches them) never wait on the notify forever. */
static int one_op(world *w, uint64_t *x, int thread) {
    uint64_t r = next_rand(x);
    crt_time dl = some_deadline(r >> 4);
    int rc;
    switch (r % 7) {
    case 0: /* mutex */
        rc = crt_mutex_lock(&w->m, dl);
        if (rc != 0) return rc;
        CHECK_EQ(__atomic_add_fetch(&w->m_inside, 1, __ATOMIC_SEQ_CST), 1);
        {
            long c = w->m_count;
            if (r & 256) crt_yield();
            w->m_count = c + 1;
        }
        __atomic_add_fetch(&w->m_locks, 1, __ATOMIC_RELAXED);
        __atomic_sub_fetch(&w->m_inside, 1, __ATOMIC_SEQ_CST);
        crt_mutex_unlock(&w->m);
        return 0;
    case 1: { /* semaphore */
        size_t k = 1 + (r >> 9) % 2;
        rc = crt_sem_acquire(&w->s, k, dl);
        if (rc != 0) return rc;
        CHECK(__atomic_add_fetch(&w->s_active, (int)k, __ATOMIC_SEQ_CST) <= PERMITS);
        if (r & 512) crt_yield();
        __atomic_sub_fetch(&w->s_active, (int)k, __ATOMIC_SEQ_CST);
        crt_sem_release(&w->s, k);
        return 0;
    }
    case 2: /* rwlock */
        if ((r >> 10) % 3 == 0) {
            rc = crt_rwlock_wrlock(&w->l, dl);
            if (rc != 0) return rc;
            CHECK_EQ(__atomic_add_fetch(&w->l_writers, 1, __ATOMIC_SEQ_CST), 1);
            CHECK_EQ(__atomic_load_n(&w->l_readers, __ATOMIC_SEQ_CST), 0);
            long a = w->l_a;
            if (r & 2048) crt_yield();
            w->l_a = a + 1;
            w->l_b = a + 1;
            __atomic_add_fetch(&w->l_writes, 1, __ATOMIC_RELAXED);
            __atomic_sub_fetch(&w->l_writers, 1, __ATOMIC_SEQ_CST);
            crt_rwlock_wrunlock(&w->l);
        } else {
            rc = crt_rwlock_rdlock(&w->l, dl);
            if (rc != 0) return rc;
            __atomic_add_fetch(&w->l_readers, 1, __ATOMIC_SEQ_CST);
            CHECK_EQ(__atomic_load_n(&w->l_writers, __ATOMIC_SEQ_CST), 0);
            long a = w->l_a;
            if (r & 2048) crt_yield();
            CHECK_EQ(w->l_b, a);
            __atomic_sub_fetch(&w->l_readers, 1, __ATOMIC_SEQ_CST);
            crt_rwlock_rdunlock(&w->l);
        }
        return 0;
    case 3: { /* select across the primitives */
        crt_case cs[4];
        cs[0] = CRT_CASE_SEM(&w->s, 1);
        cs[1] = CRT_CASE_NOTIFY(&w->n);
        cs[2] = CRT_CASE_TOKEN(&w->kids[(r >> 12) % 4]);
        cs[3] = CRT_CASE_SEM(&w->s, 2);
        if (thread && dl == CRT_FOREVER) dl = crt_after(CRT_MS(2));
        rc = crt_select(cs, 4, (r & 8192) ? CRT_SELECT_BIASED : 0, dl);
        if (rc < 0) return rc;
        CHECK_EQ(cs[rc].result, 0);
        if (rc == 0 || rc == 3) {
            int k = rc == 0 ? 1 : 2;
            CHECK(__atomic_add_fetch(&w->s_active, k, __ATOMIC_SEQ_CST) <= PERMITS);
            __atomic_sub_fetch(&w->s_active, k, __ATOMIC_SEQ_CST);
            crt_sem_release(&w->s, (size_t)k);
        } else if (rc == 1) {
            __atomic_add_fetch(&w->notified, 1, __ATOMIC_RELAXED);
        } else {
            CHECK(crt_token_is_cancelled(&w->kids[(r >> 12) % 4]));
        }
        return 0;
    }
    case 4: /* notify */
        if (r & 1024) {
            if (thread && dl == CRT_FOREVER) dl = crt_after(CRT_MS(2));
            rc = crt_notify_wait(&w->n, dl);
            if (rc == 0) __atomic_add_fetch(&w->notified, 1, __ATOMIC_RELAXED);
            return rc;
        }
        if (r & 4096) crt_notify_all(&w->n);
        else crt_notify_one(&w->n);
        return 0;
    case 5: { /* a short-lived token under a random kid */
        crt_token t;
        crt_token_init(&t, &w->kids[(r >> 12) % 4]);
        rc = crt_token_wait(&t, (r & 1) ? CRT_TRY : crt_after(CRT_US(20)));
        crt_token_destroy(&t);
        return rc;
    }
    default:
        return (r & 3) ? crt_yield() : crt_sleep(CRT_US((long)(r >> 8) % 100));
    }
}

typedef struct member {
    world *w;
    uint64_t seed;
} member;

static void *member_fn(void *p) {
    member *m = (member *)p;
    uint64_t x = m->seed | 1;
    for (int i = 0; i < m->w->iters; i++) {
        int rc = one_op(m->w, &x, 0);
        if (rc == -ECANCELED) {
            __atomic_add_fetch(&m->w->cancels, 1, __ATOMIC_RELAXED);
            CHECK_EQ(crt_cancelled(), -ECANCELED);
            break; /* unwind: we hold nothing */
        }
        CHECK(rc == 0 || rc == -ETIMEDOUT || rc == -EAGAIN);
    }
    __atomic_add_fetch(&m->w->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *thread_fn(void *p) {
    member *m = (member *)p;
    uint64_t x = m->seed | 1;
    for (int i = 0; i < m->w->iters; i++) {
        int rc = one_op(m->w, &x, 1);
        CHECK(rc == 0 || rc == -ETIMEDOUT || rc == -EAGAIN);
    }
    return NULL;
}

typedef struct chaos_arg {
    world *w;
    crt_task **members;
    int n;
    uint64_t seed;
} chaos_arg;

static void *chaos(void *p) {
    chaos_arg *c = (chaos_arg *)p;
    uint64_t x = c->seed | 1;
    int kid = 0;
    while (!__atomic_load_n(&c->w->stop_chaos, __ATOMIC_ACQUIRE)) {
        uint64_t r = next_rand(&x);
        if (crt_sleep(CRT_US(200 + (long)(r % 400))) < 0) break;
        if ((r & 15) == 0) crt_abort(c->members[(r >> 8) % (uint64_t)c->n]); /* group handles: ours to abort */
        if ((r & 0x70) == 0 && kid < 4) crt_token_cancel(&c->w->kids[kid++]);
    }
    return NULL;
}

static void *stress_main(void *p) {
    world *w = (world *)p;
    crt_group g;
    crt_group_init(&g);
    member ms[TASKS];
    crt_task *handles[TASKS];
    for (int i = 0; i < TASKS; i++) {
        ms[i].w = w;
        ms[i].seed = test_seed() * (uint64_t)(i + 1) + 0x9e3779b97f4a7c15u;
        CHECK((handles[i] = crt_group_spawn(&g, member_fn, &ms[i])) != NULL);
    }
    chaos_arg ca = {w, handles, TASKS, test_seed() ^ 0xc4a05u};
    crt_task *ct = crt_spawn(chaos, &ca);
    CHECK(ct != NULL);
    /* Most of them finish; then chaos stops (it holds handles, which must
     * not be collected before), the finished are collected, and the rest
     * go with destroy. */
    while (__atomic_load_n(&w->finished, __ATOMIC_ACQUIRE) < TASKS * 3 / 4) crt_sleep(CRT_MS(1));
    __atomic_store_n(&w->stop_chaos, 1, __ATOMIC_RELEASE);
    CHECK_EQ(crt_join(ct, NULL, CRT_FOREVER), 0);
    for (int i = 0; i < TASKS * 3 / 4; i++) CHECK_EQ(crt_group_next(&g, NULL, CRT_FOREVER), 0);
    CHECK_EQ(crt_group_destroy(&g), 0);
    return NULL;
}

static void stress(int workers) {
    world w;
    memset(&w, 0, sizeof w);
    crt_mutex_init(&w.m);
    crt_sem_init(&w.s, PERMITS);
    crt_rwlock_init(&w.l);
    crt_notify_init(&w.n);
    crt_token_init(&w.root, NULL);
    for (int i = 0; i < 4; i++) crt_token_init(&w.kids[i], &w.root);
    w.iters = test_short() ? 300 : 3000;
    pthread_t th[THREADS];
    member tm[THREADS];
    for (int i = 0; i < THREADS; i++) {
        tm[i].w = &w;
        tm[i].seed = test_seed() * 7919u + (uint64_t)i;
        CHECK(pthread_create(&th[i], NULL, thread_fn, &tm[i]) == 0);
    }
    test_run(workers, stress_main, &w);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    CHECK_EQ(w.m_count, w.m_locks);
    CHECK_EQ(w.m_inside, 0);
    CHECK_EQ(crt_mutex_lock(&w.m, CRT_TRY), 0);
    crt_mutex_unlock(&w.m);
    CHECK_EQ(w.s_active, 0);
    CHECK_EQ(crt_sem_available(&w.s), PERMITS);
    CHECK_EQ(w.l_a, w.l_writes);
    CHECK_EQ(w.l_b, w.l_writes);
    CHECK_EQ(crt_rwlock_wrlock(&w.l, CRT_TRY), 0);
    crt_rwlock_wrunlock(&w.l);
    CHECK(w.m_locks > 0);
    crt_token_cancel(&w.root);
    for (int i = 0; i < 4; i++) {
        CHECK(crt_token_is_cancelled(&w.kids[i]));
        crt_token_destroy(&w.kids[i]);
    }
    crt_token_destroy(&w.root);
    crt_notify_destroy(&w.n);
    crt_rwlock_destroy(&w.l);
    crt_sem_destroy(&w.s);
    crt_mutex_destroy(&w.m);
    TEST_LOG("stress workers=%d: %ld locks, %ld writes, %ld notified, %ld cancelled", workers, w.m_locks, w.l_writes,
             w.notified, w.cancels);
}

int main(void) {
    (void)test_seed(); /* printed once, before any thread reads it */
    stress(1);
    stress(2);
    stress(2);
    fprintf(stderr, "test_sync_stress: ok\n");
    return 0;
}
