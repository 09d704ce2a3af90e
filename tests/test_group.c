/* crt_group: next hands results out in completion order and says -EPIPE
 * when empty, wait, cancel (sticky: later members start aborted),
 * destroy with members blocked in every kind of wait (each gets
 * -ECANCELED and cleans up), destroy from an aborted task (shielded),
 * concurrent next callers, a plain thread as the group's owner, and the
 * misuse asserts. */
#ifndef CRT_IMPLEMENTATION
#define CRT_IMPLEMENTATION
#endif
#include "check.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>


static void *nothing(void *arg) { return arg; }

static void *join_member(void *arg) {
    (void)arg;
    crt_group g;
    crt_group_init(&g);
    crt_task *t = crt_group_spawn(&g, nothing, NULL);
    crt_join(t, NULL, CRT_FOREVER); /* asserts: the group owns it */
    return NULL;
}

static void misuse_join_member(void) { test_run(1, join_member, NULL); }

static crt_group self_group;

static void *destroy_own(void *arg) {
    (void)arg;
    crt_group_destroy(&self_group); /* a member destroying its own group */
    return NULL;
}

static void *destroy_own_main(void *arg) {
    (void)arg;
    crt_group_init(&self_group);
    crt_group_spawn(&self_group, destroy_own, NULL);
    crt_group_wait(&self_group, CRT_FOREVER);
    return NULL;
}

static void misuse_destroy_from_member(void) { test_run(1, destroy_own_main, NULL); }

/* >>completion order on one worker, -EPIPE, -EAGAIN, -ETIMEDOUT */
typedef struct gate {
    crt_notify go;
    int id;
} gate;

static void *gated(void *p) {
    gate *g = (gate *)p;
    CHECK_EQ(crt_notify_wait(&g->go, CRT_FOREVER), 0);
    return (void *)(intptr_t)g->id;
}

static void *order(void *arg) {
    (void)arg;
    crt_group g;
    crt_group_init(&g);
    void *res = (void *)1;
    CHECK_EQ(crt_group_next(NULL, &res, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_group_next(&g, &res, CRT_TRY), -EPIPE);
    CHECK_EQ(crt_group_next(&g, &res, CRT_FOREVER), -EPIPE);
    CHECK_EQ(crt_group_wait(&g, CRT_FOREVER), 0);
    gate gt[4];
    for (int i = 0; i < 4; i++) {
        crt_notify_init(&gt[i].go);
        gt[i].id = 10 + i;
        CHECK(crt_group_spawn(&g, gated, &gt[i]) != NULL);
    }
    CHECK_EQ(crt_group_next(&g, &res, CRT_TRY), -EAGAIN);
    crt_time t0 = crt_now();
    CHECK_EQ(crt_group_next(&g, &res, crt_after(CRT_MS(10))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(10));
    CHECK_EQ(crt_group_wait(&g, crt_after(CRT_MS(5))), -ETIMEDOUT);
    /* Finish them in the order 2, 0, 3, 1. */
    int seq[4] = {2, 0, 3, 1};
    crt_notify_one(&gt[seq[0]].go);
    for (int i = 0; i < 8; i++) crt_yield(); /* finished: queued as done */
    crt_notify_one(&gt[seq[1]].go);
    for (int i = 0; i < 8; i++) crt_yield();
    CHECK_EQ(crt_group_next(&g, &res, CRT_TRY), 0);
    CHECK_EQ((intptr_t)res, 10 + seq[0]);
    CHECK_EQ(crt_group_next(&g, &res, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)res, 10 + seq[1]);
    crt_notify_one(&gt[seq[2]].go); /* handed to a waiting next */
    CHECK_EQ(crt_group_next(&g, &res, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)res, 10 + seq[2]);
    crt_notify_one(&gt[seq[3]].go);
    CHECK_EQ(crt_group_next(&g, NULL, CRT_FOREVER), 0); /* result may be NULL */
    CHECK_EQ(crt_group_next(&g, &res, CRT_FOREVER), -EPIPE);
    for (int i = 0; i < 4; i++) crt_notify_destroy(&gt[i].go);
    CHECK_EQ(crt_group_destroy(&g), 0);
    /* Reusable after destroy. */
    crt_group_init(&g);
    for (int i = 0; i < 50; i++) CHECK(crt_group_spawn(&g, nothing, (void *)(intptr_t)i) != NULL);
    CHECK_EQ(crt_group_wait(&g, CRT_FOREVER), 0);
    CHECK_EQ(crt_group_next(&g, &res, CRT_TRY), -EPIPE);
    CHECK_EQ(crt_group_destroy(&g), 0);
    return NULL;
}

/* >>a lost claim: the caller waiting in next times out (we claim it as its
 * deadline would) just as a member finishes; the member must stay in the
 * group for the next caller. White-box: the test TU has the implementation. */
typedef struct nexter_arg {
    crt_group *g;
    void *res;
    int rc;
} nexter_arg;

static void *nexter(void *p) {
    nexter_arg *a = (nexter_arg *)p;
    a->rc = crt_group_next(a->g, &a->res, CRT_FOREVER);
    return NULL;
}

static void *lost_claim(void *arg) {
    (void)arg;
    crt_group g;
    crt_group_init(&g);
    gate gt;
    crt_notify_init(&gt.go);
    gt.id = 77;
    CHECK(crt_group_spawn(&g, gated, &gt) != NULL);
    nexter_arg a = {&g, NULL, 9};
    crt_task *tn = crt_spawn(nexter, &a);
    for (int i = 0; i < 8; i++) crt_yield(); /* it waits in next */
    crt__lock_acquire(&g.lock);
    crt__wait_node *head = g.q.head;
    CHECK(head != NULL);
    crt__waiter *w = head->waiter;
    CHECK(crt__waiter_claim(w));
    w->result = -ETIMEDOUT;
    w->index = -1;
    crt__lock_release(&g.lock);
    crt_notify_one(&gt.go); /* the member finishes: its taker is gone */
    for (int i = 0; i < 8; i++) crt_yield();
    crt__waiter_wake_to(w, 0);
    CHECK_EQ(crt_join(tn, NULL, CRT_FOREVER), 0);
    CHECK_EQ(a.rc, -ETIMEDOUT);
    void *res = NULL;
    CHECK_EQ(crt_group_next(&g, &res, CRT_TRY), 0); /* kept for the next caller */
    CHECK_EQ((intptr_t)res, 77);
    crt_notify_destroy(&gt.go);
    CHECK_EQ(crt_group_destroy(&g), 0);
    return NULL;
}

/* >>many members, several callers of next at once (2 workers too) */
typedef struct collect {
    crt_group *g;
    long sum;   /* atomic */
    int got;    /* atomic */
    int epipe;  /* atomic */
} collect;

static void *summer(void *p) {
    collect *c = (collect *)p;
    for (;;) {
        void *res;
        int r = crt_group_next(c->g, &res, CRT_FOREVER);
        if (r == -EPIPE) {
            __atomic_add_fetch(&c->epipe, 1, __ATOMIC_SEQ_CST);
            return NULL;
        }
        CHECK_EQ(r, 0);
        __atomic_add_fetch(&c->sum, (long)(intptr_t)res, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&c->got, 1, __ATOMIC_SEQ_CST);
    }
}

static void *work(void *arg) {
    intptr_t i = (intptr_t)arg;
    if (i % 7 == 0) crt_sleep(CRT_US(100 * (i % 5)));
    else if (i % 2) crt_yield();
    return arg;
}

static void *many(void *arg) {
    (void)arg;
    int n = test_short() ? 300 : 3000;
    crt_group g;
    crt_group_init(&g);
    for (int i = 1; i <= n; i++) CHECK(crt_group_spawn(&g, work, (void *)(intptr_t)i) != NULL);
    collect c = {&g, 0, 0, 0};
    crt_task *s[4];
    for (int i = 0; i < 4; i++) CHECK((s[i] = crt_spawn(summer, &c)) != NULL);
    for (int i = 0; i < 4; i++) CHECK_EQ(crt_join(s[i], NULL, CRT_FOREVER), 0);
    CHECK_EQ(c.got, n);
    CHECK_EQ(c.sum, (long)n * (n + 1) / 2);
    CHECK_EQ(c.epipe, 4);
    CHECK_EQ(crt_group_destroy(&g), 0);
    return NULL;
}

/* >>destroy with members blocked in every kind of wait */
typedef struct blockers {
    crt_sem sem;
    crt_mutex mutex;
    crt_rwlock rw_read_held, rw_write_held;
    crt_barrier barrier;
    crt_notify notify;
    crt_token token;
    crt_task *sleeper;   /* not a member: joined by a member */
    crt_group inner;     /* a member owns it and waits in its next */
#ifdef CRT__WANT_CHAN
    crt_chan *chan;
#endif
#ifdef CRT__WANT_NET
    int pipefd[2];
#endif
    int started;         /* atomic */
    int cancelled;       /* atomic: members that saw -ECANCELED */
    int cleaned;         /* atomic: members that ran their cleanup */
} blockers;

typedef struct blocker_arg {
    blockers *b;
    int kind;
} blocker_arg;

enum {
    K_SLEEP, K_SEM, K_MUTEX, K_RDLOCK, K_WRLOCK, K_BARRIER, K_NOTIFY, K_TOKEN, K_JOIN, K_SELECT,
    K_GROUP_NEXT, K_YIELD, K_INTERVAL, K_SELECT_NONE, K_CHAN, K_FD, K_COUNT
};

static void *forever(void *arg) {
    (void)arg;
    return (void *)(intptr_t)crt_sleep_until(CRT_FOREVER);
}

static void *blocker(void *p) {
    blocker_arg *a = (blocker_arg *)p;
    blockers *b = a->b;
    __atomic_add_fetch(&b->started, 1, __ATOMIC_SEQ_CST);
    int r = 0;
    switch (a->kind) {
    case K_SLEEP: r = crt_sleep(CRT_SEC(3600)); break;
    case K_SEM: r = crt_sem_acquire(&b->sem, 1, CRT_FOREVER); break;
    case K_MUTEX: r = crt_mutex_lock(&b->mutex, CRT_FOREVER); break;
    case K_RDLOCK: r = crt_rwlock_rdlock(&b->rw_write_held, CRT_FOREVER); break;
    case K_WRLOCK: r = crt_rwlock_wrlock(&b->rw_read_held, CRT_FOREVER); break;
    case K_BARRIER: r = crt_barrier_wait(&b->barrier, CRT_FOREVER); break;
    case K_NOTIFY: r = crt_notify_wait(&b->notify, CRT_FOREVER); break;
    case K_TOKEN: r = crt_token_wait(&b->token, CRT_FOREVER); break;
    case K_JOIN: r = crt_join(b->sleeper, NULL, CRT_FOREVER); break;
    case K_SELECT: {
        crt_case cs[4];
        cs[0] = CRT_CASE_SEM(&b->sem, 2);
        cs[1] = CRT_CASE_NOTIFY(&b->notify);
        cs[2] = CRT_CASE_TOKEN(&b->token);
        cs[3] = CRT_CASE_SEM(&b->sem, 1);
        r = crt_select(cs, 4, 0, crt_after(CRT_SEC(3600)));
        break;
    }
    case K_GROUP_NEXT: {
        crt_group_init(&b->inner);
        CHECK(crt_group_spawn(&b->inner, forever, NULL) != NULL);
        r = crt_group_next(&b->inner, NULL, CRT_FOREVER);
        /* Cleanup that blocks: the shield lets it wait for the inner member. */
        CHECK_EQ(crt_group_destroy(&b->inner), 0);
        break;
    }
    case K_YIELD:
        while ((r = crt_yield()) == 0) {
        }
        break;
    case K_INTERVAL: {
        crt_interval iv;
        crt_interval_init(&iv, CRT_SEC(3600), CRT_MISSED_SKIP);
        while ((r = crt_interval_tick(&iv)) == 0) {
        }
        break;
    }
    case K_SELECT_NONE: r = crt_select(NULL, 0, 0, CRT_FOREVER); break;
#ifdef CRT__WANT_CHAN
    case K_CHAN: {
        int v;
        r = crt_chan_recv(b->chan, &v, CRT_FOREVER);
        break;
    }
#endif
#ifdef CRT__WANT_NET
    case K_FD: r = crt_fd_wait(b->pipefd[0], CRT_READABLE, CRT_FOREVER); break;
#endif
    default: r = -ECANCELED; break; /* a component this build does not see */
    }
    if (r == -ECANCELED) __atomic_add_fetch(&b->cancelled, 1, __ATOMIC_SEQ_CST);
    else fprintf(stderr, "blocker kind %d returned %d\n", a->kind, r);
    /* Cleanup: the arg is ours to free. */
    free(a);
    __atomic_add_fetch(&b->cleaned, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *destroy_blocked(void *arg) {
    (void)arg;
    blockers b;
    memset(&b, 0, sizeof b);
    crt_sem_init(&b.sem, 0);
    crt_mutex_init(&b.mutex);
    crt_rwlock_init(&b.rw_read_held);
    crt_rwlock_init(&b.rw_write_held);
    crt_barrier_init(&b.barrier, 100);
    crt_notify_init(&b.notify);
    crt_token_init(&b.token, NULL);
    CHECK_EQ(crt_mutex_lock(&b.mutex, CRT_FOREVER), 0);
    CHECK_EQ(crt_rwlock_rdlock(&b.rw_read_held, CRT_FOREVER), 0);
    CHECK_EQ(crt_rwlock_wrlock(&b.rw_write_held, CRT_FOREVER), 0);
    CHECK((b.sleeper = crt_spawn(forever, NULL)) != NULL);
#ifdef CRT__WANT_CHAN
    CHECK((b.chan = crt_chan_new(sizeof(int), 4)) != NULL);
#endif
#ifdef CRT__WANT_NET
    CHECK(pipe(b.pipefd) == 0);
#endif
    crt_group g;
    crt_group_init(&g);
    int copies = 3;
    for (int c = 0; c < copies; c++) {
        for (int k = 0; k < K_COUNT; k++) {
            if (k == K_GROUP_NEXT && c > 0) continue; /* one inner group */
            blocker_arg *a = (blocker_arg *)malloc(sizeof *a);
            a->b = &b;
            a->kind = k;
            CHECK(crt_group_spawn(&g, blocker, a) != NULL);
        }
    }
    int members = copies * K_COUNT - (copies - 1);
    while (__atomic_load_n(&b.started, __ATOMIC_SEQ_CST) < members) crt_sleep(CRT_MS(1));
    crt_sleep(CRT_MS(20)); /* all of them blocked by now */
    CHECK_EQ(b.cleaned, 0);
    CHECK_EQ(crt_group_destroy(&g), 0);
    CHECK_EQ(b.cancelled, members);
    CHECK_EQ(b.cleaned, members);
    /* The objects are intact: nobody waits, nothing was taken. */
    CHECK_EQ(crt_sem_available(&b.sem), 0);
    crt_mutex_unlock(&b.mutex);
    CHECK_EQ(crt_mutex_lock(&b.mutex, CRT_TRY), 0);
    crt_mutex_unlock(&b.mutex);
    crt_rwlock_rdunlock(&b.rw_read_held);
    crt_rwlock_wrunlock(&b.rw_write_held);
    CHECK_EQ(crt_notify_wait(&b.notify, CRT_TRY), -EAGAIN);
    crt_abort(b.sleeper);
    void *res;
    CHECK_EQ(crt_join(b.sleeper, &res, CRT_FOREVER), 0);
    CHECK_EQ((int)(intptr_t)res, -ECANCELED);
#ifdef CRT__WANT_CHAN
    crt_chan_free(b.chan);
#endif
#ifdef CRT__WANT_NET
    close(b.pipefd[0]);
    close(b.pipefd[1]);
#endif
    crt_sem_destroy(&b.sem);
    crt_mutex_destroy(&b.mutex);
    crt_rwlock_destroy(&b.rw_read_held);
    crt_rwlock_destroy(&b.rw_write_held);
    crt_barrier_destroy(&b.barrier);
    crt_notify_destroy(&b.notify);
    crt_token_destroy(&b.token);
    return NULL;
}

/* >>cancel is sticky; destroy is shielded */
static int ran_with_abort;

static void *note_abort(void *arg) {
    (void)arg;
    if (crt_cancelled() == -ECANCELED) __atomic_add_fetch(&ran_with_abort, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *spawner(void *p) {
    crt_group *g = (crt_group *)p;
    /* Keeps spawning until its own abort: destroy must not hang on it. */
    while (crt_cancelled() == 0) {
        CHECK(crt_group_spawn(g, note_abort, NULL) != NULL);
        crt_yield();
    }
    CHECK(crt_group_spawn(g, note_abort, NULL) != NULL); /* after the cancel: starts aborted */
    return NULL;
}

static void *owner(void *arg) {
    (void)arg;
    crt_group g;
    crt_group_init(&g);
    CHECK(crt_group_spawn(&g, spawner, &g) != NULL);
    CHECK(crt_group_spawn(&g, forever, NULL) != NULL);
    while (crt_sleep(CRT_MS(1)) == 0) { /* until our owner aborts us */
    }
    CHECK_EQ(crt_cancelled(), -ECANCELED);
    CHECK_EQ(crt_group_destroy(&g), 0);    /* shielded: still waits for all */
    CHECK_EQ(crt_group_next(&g, NULL, CRT_TRY), -ECANCELED);
    CHECK_EQ(crt_cancelled(), -ECANCELED); /* the shield is off again */
    return (void *)1;
}

static void *sticky(void *arg) {
    (void)arg;
    crt_group g;
    crt_group_init(&g);
    crt_group_cancel(&g);
    ran_with_abort = 0;
    for (int i = 0; i < 5; i++) CHECK(crt_group_spawn(&g, note_abort, NULL) != NULL);
    CHECK_EQ(crt_group_wait(&g, CRT_FOREVER), 0);
    CHECK_EQ(ran_with_abort, 5);
    CHECK_EQ(crt_group_destroy(&g), 0);
    /* An aborted owner's destroy. */
    crt_task *o = crt_spawn(owner, NULL);
    crt_sleep(CRT_US(500));
    crt_abort(o);
    void *res;
    CHECK_EQ(crt_join(o, &res, CRT_FOREVER), 0);
    CHECK_EQ((intptr_t)res, 1);
    /* crt_group_cancel aborts running members; next reports them. */
    crt_group_init(&g);
    for (int i = 0; i < 10; i++) CHECK(crt_group_spawn(&g, forever, NULL) != NULL);
    crt_sleep(CRT_MS(1));
    crt_group_cancel(&g);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(crt_group_next(&g, &res, CRT_FOREVER), 0);
        CHECK_EQ((int)(intptr_t)res, -ECANCELED);
    }
    CHECK_EQ(crt_group_next(&g, &res, CRT_FOREVER), -EPIPE);
    CHECK_EQ(crt_group_destroy(&g), 0);
    return NULL;
}

/* >>a plain thread owns the group */
static void *fill(void *p) {
    crt_group *g = (crt_group *)p;
    for (int i = 1; i <= 100; i++) CHECK(crt_group_spawn(g, work, (void *)(intptr_t)i) != NULL);
    for (int i = 0; i < 5; i++) CHECK(crt_group_spawn(g, forever, NULL) != NULL);
    return NULL;
}

static void thread_owner(int workers) {
    long before = test_live_allocs();
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = workers;
    crt_runtime *rt = crt_runtime_new(&cfg);
    CHECK(rt != NULL);
    crt_group g;
    crt_group_init(&g);
    CHECK(crt_group_spawn(&g, work, NULL) == NULL); /* not in a task */
    CHECK_EQ(errno, EPERM);
    CHECK_EQ(crt_runtime_block_on(rt, fill, &g, NULL), 0);
    if (workers > 1) { /* with one worker nothing runs outside block_on */
        long sum = 0;
        for (int i = 0; i < 100; i++) {
            void *res;
            CHECK_EQ(crt_group_next(&g, &res, crt_after(CRT_SEC(10))), 0);
            sum += (long)(intptr_t)res;
        }
        CHECK_EQ(sum, 5050);
        CHECK_EQ(crt_group_next(&g, NULL, crt_after(CRT_MS(5))), -ETIMEDOUT);
        CHECK_EQ(crt_group_destroy(&g), 0); /* from a plain thread */
    }
    CHECK_EQ(crt_runtime_shutdown(rt, crt_after(CRT_SEC(10))), 0);
    if (workers == 1) {
        /* The runtime aborted and finished them all: collect the records. */
        int n = 0;
        while (crt_group_next(&g, NULL, CRT_TRY) == 0) n++;
        CHECK_EQ(n, 105);
        CHECK_EQ(crt_group_destroy(&g), 0);
    }
    crt_runtime_free(rt);
    CHECK_EQ(test_live_allocs(), before);
}

int main(void) {
    expect_assert(misuse_join_member, "crt_join: a group's task is joined through its group");
    expect_assert(misuse_destroy_from_member, "crt_group_destroy: called from a member of the group");
    for (int workers = 1; workers <= 2; workers++) {
        test_run(workers, many, NULL);
        test_run(workers, destroy_blocked, NULL);
        test_run(workers, sticky, NULL);
        thread_owner(workers);
    }
    test_run(1, order, NULL);
    test_run(1, lost_claim, NULL);
    fprintf(stderr, "test_group: ok\n");
    return 0;
}
