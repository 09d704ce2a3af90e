/* crt_token: cancel reaches every descendant at any depth, children made
 * after the cancel start cancelled, cancelling a child leaves its parent
 * alone, waiters (wait, select) wake; trees 10 levels deep cancelled while
 * other tasks and threads create and destroy children in them; and the
 * misuse asserts. */
#ifndef CRT_IMPLEMENTATION
#define CRT_IMPLEMENTATION
#endif
#include "check.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>


static void misuse_destroy_parent(void) {
    crt_token p, c;
    crt_token_init(&p, NULL);
    crt_token_init(&c, &p);
    crt_token_destroy(&p);
}

static void *wait_forever(void *arg) {
    (void)crt_token_wait((crt_token *)arg, CRT_FOREVER);
    return NULL;
}

static void misuse_destroy_waiting(void) {
    static crt_token t;
    crt_token_init(&t, NULL);
    pthread_t th;
    pthread_create(&th, NULL, wait_forever, &t);
    for (;;) {
        crt__lock_acquire(&t.lock);
        int queued = t.q.head != NULL;
        crt__lock_release(&t.lock);
        if (queued) break;
        usleep(1000);
    }
    crt_token_destroy(&t);
}

/* >>tree basics (task or plain thread) */
static void *tree_basics(void *arg) {
    (void)arg;
    crt_token chain[10], side;
    crt_token_init(&chain[0], NULL);
    for (int i = 1; i < 10; i++) crt_token_init(&chain[i], &chain[i - 1]);
    crt_token_init(&side, &chain[4]);
    CHECK_EQ(crt_token_wait(NULL, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_token_is_cancelled(NULL), 0);
    CHECK_EQ(crt_token_wait(&chain[9], CRT_TRY), -EAGAIN);
    crt_time t0 = crt_now();
    CHECK_EQ(crt_token_wait(&chain[9], crt_after(CRT_MS(10))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(10));
    /* A child's cancel stays below it. */
    crt_token_cancel(&chain[7]);
    for (int i = 0; i < 10; i++) CHECK_EQ(crt_token_is_cancelled(&chain[i]), i >= 7);
    CHECK_EQ(crt_token_is_cancelled(&side), 0);
    crt_token_cancel(&chain[7]); /* idempotent */
    /* The root reaches every depth. */
    crt_token_cancel(&chain[0]);
    for (int i = 0; i < 10; i++) CHECK_EQ(crt_token_is_cancelled(&chain[i]), 1);
    CHECK_EQ(crt_token_is_cancelled(&side), 1);
    CHECK_EQ(crt_token_wait(&chain[9], CRT_TRY), 0);
    CHECK_EQ(crt_token_wait(&side, CRT_FOREVER), 0);
    /* Born after the cancel: cancelled. */
    crt_token late, later;
    crt_token_init(&late, &chain[9]);
    crt_token_init(&later, &late);
    CHECK_EQ(crt_token_is_cancelled(&late), 1);
    CHECK_EQ(crt_token_is_cancelled(&later), 1);
    crt_token_destroy(&later);
    crt_token_destroy(&late);
    crt_token_destroy(&side);
    for (int i = 9; i >= 0; i--) crt_token_destroy(&chain[i]);
    return NULL;
}

/* >>waiters wake on an ancestor's cancel: wait, select, plain threads */
typedef struct waiting {
    crt_token *t;
    int use_select; /* 2: wait for our own abort first, then token_wait */
    int rc;
} waiting;

static void *waiter_fn(void *p) {
    waiting *w = (waiting *)p;
    if (w->use_select == 2) {
        while (crt_yield() == 0) {
        }
        w->rc = crt_token_wait(w->t, CRT_FOREVER);
    } else if (w->use_select) {
        crt_notify never = CRT_NOTIFY_INIT;
        crt_case cs[2];
        cs[0] = CRT_CASE_NOTIFY(&never);
        cs[1] = CRT_CASE_TOKEN(w->t);
        w->rc = crt_select(cs, 2, 0, CRT_FOREVER);
        if (w->rc == 1) CHECK_EQ(cs[1].result, 0);
        crt_notify_destroy(&never);
    } else {
        w->rc = crt_token_wait(w->t, CRT_FOREVER);
    }
    return NULL;
}

static void *wakeups(void *arg) {
    (void)arg;
    crt_token root, mid, leaf;
    crt_token_init(&root, NULL);
    crt_token_init(&mid, &root);
    crt_token_init(&leaf, &mid);
    waiting w[6] = {{&root, 0, 9}, {&mid, 1, 9}, {&leaf, 0, 9}, {&leaf, 1, 9}, {&mid, 0, 9}, {&leaf, 0, 9}};
    crt_task *t[4];
    pthread_t th[2];
    for (int i = 0; i < 4; i++) CHECK((t[i] = crt_spawn(waiter_fn, &w[i])) != NULL);
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, waiter_fn, &w[4 + i]) == 0);
    crt_sleep(CRT_MS(10));
    for (int i = 0; i < 6; i++) CHECK_EQ(w[i].rc, 9);
    crt_token_cancel(&root);
    for (int i = 0; i < 4; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK_EQ(w[0].rc, 0);
    CHECK_EQ(w[1].rc, 1);
    CHECK_EQ(w[2].rc, 0);
    CHECK_EQ(w[3].rc, 1);
    CHECK_EQ(w[4].rc, 0);
    CHECK_EQ(w[5].rc, 0);
    /* An aborted waiter: -ECANCELED, even on a cancelled token. */
    waiting late = {&leaf, 2, 9};
    crt_task *tl = crt_spawn(waiter_fn, &late);
    crt_abort(tl);
    CHECK_EQ(crt_join(tl, NULL, CRT_FOREVER), 0);
    CHECK_EQ(late.rc, -ECANCELED);
    crt_token_destroy(&leaf);
    crt_token_destroy(&mid);
    crt_token_destroy(&root);
    return NULL;
}

/* >>the stress: a 10-level tree; churners keep making and destroying
 * short-lived subtrees (with waiters in them) under random nodes while the
 * root is cancelled; afterwards every token still alive is cancelled, and
 * every waiter woke. Repeated with fresh trees. */
#define DEPTH 10
#define WIDTH 2

typedef struct tree {
    crt_token nodes[DEPTH][WIDTH]; /* level 0 has one root (index 0) */
    int churn_stop;                /* atomic */
    long made;                     /* atomic */
    long woke_early;               /* atomic: waits that returned before the cancel */
    int cancelled;                 /* atomic: the root was cancelled */
} tree;

static crt_token *tree_node(tree *tr, uint64_t x) {
    int level = (int)(x % DEPTH);
    return &tr->nodes[level][level == 0 ? 0 : (int)((x >> 8) % WIDTH)];
}

static void churn_body(tree *tr, uint64_t seed) {
    uint64_t x = seed | 1;
    while (!__atomic_load_n(&tr->churn_stop, __ATOMIC_ACQUIRE)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        crt_token *parent = tree_node(tr, x);
        crt_token a, b;
        int was = __atomic_load_n(&tr->cancelled, __ATOMIC_SEQ_CST); /* the cancel returned */
        crt_token_init(&a, parent);
        crt_token_init(&b, &a);
        if (was) CHECK_EQ(crt_token_is_cancelled(&b), 1); /* born after the cancel */
        int rc = crt_token_wait(&b, crt_after(CRT_US((long)(x >> 20) % 50)));
        if (rc == 0 && !crt_token_is_cancelled(&b)) __atomic_add_fetch(&tr->woke_early, 1, __ATOMIC_RELAXED);
        CHECK(rc == 0 || rc == -ETIMEDOUT);
        if (rc == 0) CHECK_EQ(crt_token_is_cancelled(&a), 1);
        if (x & 64) crt_yield();
        crt_token_destroy(&b);
        crt_token_destroy(&a);
        __atomic_add_fetch(&tr->made, 1, __ATOMIC_RELAXED);
    }
}

static void *churn_task(void *p) {
    churn_body((tree *)p, test_seed() ^ (uint64_t)(uintptr_t)&p);
    return NULL;
}

static void *tree_waiter(void *p) {
    int rc = crt_token_wait((crt_token *)p, CRT_FOREVER);
    CHECK_EQ(rc, 0);
    return NULL;
}

static void tree_init(tree *tr) {
    memset(tr, 0, sizeof *tr);
    crt_token_init(&tr->nodes[0][0], NULL);
    for (int l = 1; l < DEPTH; l++)
        for (int i = 0; i < WIDTH; i++) crt_token_init(&tr->nodes[l][i], &tr->nodes[l - 1][l == 1 ? 0 : i]);
}

static void tree_destroy(tree *tr) {
    for (int l = DEPTH - 1; l >= 1; l--)
        for (int i = 0; i < WIDTH; i++) crt_token_destroy(&tr->nodes[l][i]);
    crt_token_destroy(&tr->nodes[0][0]);
}

static void *tree_stress(void *arg) {
    (void)arg;
    int rounds = test_short() ? 10 : 40;
    for (int round = 0; round < rounds; round++) {
        tree tr;
        tree_init(&tr);
        crt_task *churn[6], *waiters[DEPTH];
        for (int i = 0; i < 6; i++) CHECK((churn[i] = crt_spawn(churn_task, &tr)) != NULL);
        for (int l = 0; l < DEPTH; l++)
            CHECK((waiters[l] = crt_spawn(tree_waiter, &tr.nodes[l][l == 0 ? 0 : (l % WIDTH)])) != NULL);
        pthread_t th;
        CHECK(pthread_create(&th, NULL, churn_task, &tr) == 0);
        crt_sleep(CRT_US(500));
        /* Odd rounds first cancel a middle level, then the root. */
        if (round & 1) crt_token_cancel(&tr.nodes[DEPTH / 2][0]);
        crt_token_cancel(&tr.nodes[0][0]);
        __atomic_store_n(&tr.cancelled, 1, __ATOMIC_SEQ_CST);
        crt_sleep(CRT_US(300)); /* churn on in a cancelled tree */
        __atomic_store_n(&tr.churn_stop, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < 6; i++) CHECK_EQ(crt_join(churn[i], NULL, CRT_FOREVER), 0);
        pthread_join(th, NULL);
        for (int l = 0; l < DEPTH; l++) CHECK_EQ(crt_join(waiters[l], NULL, CRT_FOREVER), 0);
        for (int l = 0; l < DEPTH; l++)
            for (int i = 0; i < (l == 0 ? 1 : WIDTH); i++) CHECK_EQ(crt_token_is_cancelled(&tr.nodes[l][i]), 1);
        CHECK_EQ(tr.woke_early, 0);
        CHECK(tr.made > 0);
        tree_destroy(&tr);
    }
    return NULL;
}

/* Cancels from a plain thread while tasks churn. */
static void *cancel_thread(void *p) {
    crt_token_cancel((crt_token *)p);
    return NULL;
}

static void *tree_thread_cancel(void *arg) {
    (void)arg;
    for (int round = 0; round < (test_short() ? 5 : 20); round++) {
        tree tr;
        tree_init(&tr);
        crt_task *churn[4];
        for (int i = 0; i < 4; i++) CHECK((churn[i] = crt_spawn(churn_task, &tr)) != NULL);
        crt_sleep(CRT_US(300));
        pthread_t th;
        CHECK(pthread_create(&th, NULL, cancel_thread, &tr.nodes[0][0]) == 0);
        pthread_join(th, NULL);
        __atomic_store_n(&tr.cancelled, 1, __ATOMIC_SEQ_CST);
        crt_sleep(CRT_US(200)); /* churn on in a cancelled tree */
        __atomic_store_n(&tr.churn_stop, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < 4; i++) CHECK_EQ(crt_join(churn[i], NULL, CRT_FOREVER), 0);
        for (int l = 0; l < DEPTH; l++)
            for (int i = 0; i < (l == 0 ? 1 : WIDTH); i++) CHECK_EQ(crt_token_is_cancelled(&tr.nodes[l][i]), 1);
        tree_destroy(&tr);
    }
    return NULL;
}

int main(void) {
    (void)test_seed(); /* printed once, before any thread reads it */
    expect_assert(misuse_destroy_parent, "crt_token_destroy: the token still has children");
    expect_assert(misuse_destroy_waiting, "crt_token_destroy: tasks or threads are still waiting");
    for (int workers = 1; workers <= 2; workers++) {
        test_run(workers, tree_basics, NULL);
        test_run(workers, wakeups, NULL);
        test_run(workers, tree_stress, NULL);
        test_run(workers, tree_thread_cancel, NULL);
    }
    tree_basics(NULL); /* from a plain thread */
    fprintf(stderr, "test_token: ok\n");
    return 0;
}
