/* crt_barrier: n parties, reused round after round, exactly one leader per
 * round, nobody passes a round before all have arrived, a timeout or an
 * abort withdraws the arrival, tasks and plain threads in one barrier, and
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
    (void)crt_barrier_wait((crt_barrier *)arg, CRT_FOREVER);
    return NULL;
}

static void misuse_destroy_waiting(void) {
    static crt_barrier b;
    crt_barrier_init(&b, 2);
    pthread_t th;
    pthread_create(&th, NULL, wait_forever, &b);
    for (;;) {
        crt__lock_acquire(&b.lock);
        size_t c = b.count;
        crt__lock_release(&b.lock);
        if (c) break;
        usleep(1000);
    }
    crt_barrier_destroy(&b);
}

/* >>rounds: every party checks that all n arrived before anyone passed */
#define PARTIES 6

typedef struct rounds {
    crt_barrier b;
    int rounds;
    int arrived[64];  /* atomic: per round (mod 64) */
    int leaders[64];  /* atomic */
    int left[64];     /* atomic: parties past the barrier */
    int threads;      /* how many of the parties are plain threads */
} rounds;

static void party(rounds *r, int id) {
    for (int k = 0; k < r->rounds; k++) {
        int slot = k % 64;
        __atomic_add_fetch(&r->arrived[slot], 1, __ATOMIC_SEQ_CST);
        if ((k + id) % 3 == 0) crt_yield();
        int rc = crt_barrier_wait(&r->b, CRT_FOREVER);
        CHECK(rc == 0 || rc == 1);
        /* Everyone of this round arrived before anyone got here. */
        CHECK_EQ(__atomic_load_n(&r->arrived[slot], __ATOMIC_SEQ_CST), PARTIES);
        if (rc == 1) __atomic_add_fetch(&r->leaders[slot], 1, __ATOMIC_SEQ_CST);
        /* The last one out resets the slot for round k + 64; the round after
         * the next cannot start before everyone left this one (the next
         * barrier holds them). */
        if (__atomic_add_fetch(&r->left[slot], 1, __ATOMIC_SEQ_CST) == PARTIES) {
            CHECK_EQ(__atomic_load_n(&r->leaders[slot], __ATOMIC_SEQ_CST), 1);
            __atomic_store_n(&r->leaders[slot], 0, __ATOMIC_SEQ_CST);
            __atomic_store_n(&r->arrived[slot], 0, __ATOMIC_SEQ_CST);
            __atomic_store_n(&r->left[slot], 0, __ATOMIC_SEQ_CST);
        }
    }
}

typedef struct party_arg {
    rounds *r;
    int id;
} party_arg;

static void *party_fn(void *p) {
    party_arg *a = (party_arg *)p;
    party(a->r, a->id);
    return NULL;
}

static void *rounds_main(void *p) {
    rounds *r = (rounds *)p;
    party_arg a[PARTIES];
    crt_task *t[PARTIES];
    int tasks = PARTIES - r->threads;
    for (int i = 0; i < tasks; i++) {
        a[i].r = r;
        a[i].id = i;
        CHECK((t[i] = crt_spawn(party_fn, &a[i])) != NULL);
    }
    for (int i = 0; i < tasks; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    return NULL;
}

static void run_rounds(int workers, int threads) {
    rounds r;
    memset(&r, 0, sizeof r);
    crt_barrier_init(&r.b, PARTIES);
    r.rounds = test_short() ? 200 : 1000;
    r.threads = threads;
    pthread_t th[PARTIES];
    party_arg a[PARTIES];
    for (int i = 0; i < threads; i++) {
        a[i].r = &r;
        a[i].id = 100 + i;
        CHECK(pthread_create(&th[i], NULL, party_fn, &a[i]) == 0);
    }
    test_run(workers, rounds_main, &r);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    crt_barrier_destroy(&r.b);
}

/* >>withdrawing: a timed-out or aborted party does not count */
static void *wait_rc(void *p) { return (void *)(intptr_t)crt_barrier_wait((crt_barrier *)p, CRT_FOREVER); }

static void *withdraw(void *arg) {
    (void)arg;
    crt_barrier b;
    crt_barrier_init(&b, 3);
    CHECK_EQ(crt_barrier_wait(NULL, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_barrier_wait(&b, CRT_TRY), -EAGAIN);
    crt_time t0 = crt_now();
    CHECK_EQ(crt_barrier_wait(&b, crt_after(CRT_MS(10))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(10));
    crt_task *victim = crt_spawn(wait_rc, &b);
    crt_sleep(CRT_MS(2));
    crt_abort(victim);
    void *res;
    CHECK_EQ(crt_join(victim, &res, CRT_FOREVER), 0);
    CHECK_EQ((int)(intptr_t)res, -ECANCELED);
    /* Neither counted: two more parties still wait for a third. */
    crt_task *p1 = crt_spawn(wait_rc, &b);
    crt_task *p2 = crt_spawn(wait_rc, &b);
    for (;;) { /* both arrived */
        crt__lock_acquire(&b.lock);
        size_t arrived = b.count;
        crt__lock_release(&b.lock);
        if (arrived == 2) break;
        crt_sleep(CRT_MS(1));
    }
    crt_sleep(CRT_MS(2));
    CHECK_EQ(crt_join(p1, NULL, CRT_TRY), -EAGAIN);
    int me = crt_barrier_wait(&b, CRT_TRY); /* completes the round: leader */
    CHECK_EQ(me, 1);
    void *r1, *r2;
    CHECK_EQ(crt_join(p1, &r1, CRT_FOREVER), 0);
    CHECK_EQ(crt_join(p2, &r2, CRT_FOREVER), 0);
    CHECK_EQ((int)(intptr_t)r1 + (int)(intptr_t)r2, 0);
    /* n = 0 counts as 1: everyone leads. */
    crt_barrier_init(&b, 0);
    CHECK_EQ(crt_barrier_wait(&b, CRT_TRY), 1);
    CHECK_EQ(crt_barrier_wait(&b, CRT_FOREVER), 1);
    crt_barrier_destroy(&b);
    return NULL;
}

/* >>a party destroys the barrier right after the last round: the leader's
 * wakes must not touch it any more */
typedef struct last_round {
    crt_barrier *b;
    int gone; /* atomic */
} last_round;

static void *last_party(void *p) {
    last_round *lr = (last_round *)p;
    int rc = crt_barrier_wait(lr->b, CRT_FOREVER);
    CHECK(rc == 0 || rc == 1);
    if (__atomic_add_fetch(&lr->gone, 1, __ATOMIC_SEQ_CST) == 40) {
        crt_barrier_destroy(lr->b);
        memset(lr->b, 0xa5, sizeof *lr->b); /* "freed" */
    }
    return NULL;
}

static void *destroy_after(void *arg) {
    (void)arg;
    for (int round = 0; round < 20; round++) {
        crt_barrier b;
        crt_barrier_init(&b, 40);
        last_round lr = {&b, 0};
        crt_task *t[40];
        for (int i = 0; i < 40; i++) CHECK((t[i] = crt_spawn(last_party, &lr)) != NULL);
        for (int i = 0; i < 40; i++) CHECK_EQ(crt_join(t[i], NULL, CRT_FOREVER), 0);
    }
    return NULL;
}

int main(void) {
    expect_assert(misuse_destroy_waiting, "crt_barrier_destroy: tasks or threads are still waiting");
    for (int workers = 1; workers <= 2; workers++) {
        run_rounds(workers, 0);
        run_rounds(workers, 2);
        test_run(workers, withdraw, NULL);
        test_run(workers, destroy_after, NULL);
    }
    /* Plain threads only. */
    rounds r;
    memset(&r, 0, sizeof r);
    crt_barrier_init(&r.b, PARTIES);
    r.rounds = test_short() ? 100 : 300;
    pthread_t th[PARTIES];
    party_arg a[PARTIES];
    for (int i = 0; i < PARTIES; i++) {
        a[i].r = &r;
        a[i].id = i;
        CHECK(pthread_create(&th[i], NULL, party_fn, &a[i]) == 0);
    }
    for (int i = 0; i < PARTIES; i++) pthread_join(th[i], NULL);
    crt_barrier_destroy(&r.b);
    fprintf(stderr, "test_barrier: ok\n");
    return 0;
}
