/* tests/check.h — what every crt test program shares.
 *
 * Include it instead of crt.h, in a file that defines CRT_IMPLEMENTATION
 * (or not, for a second TU). It installs a counting allocator as
 * CRT_MALLOC/CRT_FREE, so a test can assert that a runtime left nothing
 * behind, and which can fail every Nth allocation (replayable: N comes
 * from the caller, not from a clock).
 *
 *   CHECK(cond)            stays on under NDEBUG; prints and aborts
 *   CHECK_EQ(a, b)         the same, printing both values
 *   test_short()           CRT_TEST_SHORT=1: scale stress tests down
 *   test_seed()            CRT_TEST_SEED or a fresh one, printed once
 *   test_live_allocs()     allocations not yet freed
 *   test_fail_every(n)     fail every nth allocation from now on (0: never)
 *   test_join_thread(th, flag, running)
 *                          from a task: join a plain thread once *flag is no
 *                          longer `running`, sleeping meanwhile (not blocking the worker)
 *   expect_assert(fn, msg) fn, run in a forked child, must die by CRT_ASSERT
 *                          with a message containing msg (debug builds)
 *   settle()               a few yields: spawned tasks reach their waits
 *   claim_as_timeout(node) white box: claim node's waiter as its timer would
 */
#ifndef CRT_TESTS_CHECK_H
#define CRT_TESTS_CHECK_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long test__allocs_live;
static long test__fail_every;
static long test__alloc_count;

static void *test_malloc(size_t n) {
    long k = __atomic_add_fetch(&test__alloc_count, 1, __ATOMIC_RELAXED);
    long every = __atomic_load_n(&test__fail_every, __ATOMIC_RELAXED);
    if (every > 0 && k % every == 0) return NULL;
    void *p = malloc(n);
    if (p) __atomic_add_fetch(&test__allocs_live, 1, __ATOMIC_RELAXED);
    return p;
}

static void test_free(void *p) {
    if (!p) return;
    __atomic_sub_fetch(&test__allocs_live, 1, __ATOMIC_RELAXED);
    free(p);
}

#define CRT_MALLOC(n) test_malloc(n)
#define CRT_FREE(p) test_free(p)
#include "crt.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            fflush(stderr);                                                          \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define CHECK_EQ(a, b)                                                                              \
    do {                                                                                            \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                             \
        if (check_a_ != check_b_) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, \
                    #b, check_a_, check_b_);                                                        \
            fflush(stderr);                                                                         \
            abort();                                                                                \
        }                                                                                           \
    } while (0)

static inline long test_live_allocs(void) { return __atomic_load_n(&test__allocs_live, __ATOMIC_RELAXED); }
static inline void test_fail_every(long n) {
    __atomic_store_n(&test__alloc_count, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&test__fail_every, n, __ATOMIC_RELAXED);
}

/* Joins plain thread th from a task: waits (crt_sleep, so the worker runs
 * the tasks the thread may need) until the thread has changed *flag away
 * from `running` as its last step, then joins it. */
static inline void test_join_thread(pthread_t th, int *flag, int running) {
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) == running) crt_sleep(CRT_MS(1));
    pthread_join(th, NULL);
}

static inline int test_short(void) {
    const char *s = getenv("CRT_TEST_SHORT");
    return s && s[0] == '1';
}

/* A seed for randomised tests, printed so a failure can be replayed with
 * CRT_TEST_SEED=<n>. */
static inline uint64_t test_seed(void) {
    static uint64_t seed;
    if (!seed) {
        const char *s = getenv("CRT_TEST_SEED");
        if (s) {
            seed = strtoull(s, NULL, 0);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
        }
        if (!seed) seed = 1;
        fprintf(stderr, "seed: CRT_TEST_SEED=%llu\n", (unsigned long long)seed);
    }
    return seed;
}

/* Runs a test body as the main task of a fresh runtime with `workers`
 * workers, checks it returned and that the runtime freed all it had. */
static inline void test_run(int workers, crt_fn fn, void *arg) {
    long before = test_live_allocs();
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = workers;
    void *res = NULL;
    int rc = crt_run(&cfg, fn, arg, &res);
    if (rc != 0) fprintf(stderr, "crt_run: %s\n", crt_strerror(rc));
    CHECK_EQ(rc, 0);
    CHECK_EQ(test_live_allocs(), before);
}

#define TEST_LOG(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))

/* >>death tests */
__attribute__((unused)) static void expect_assert(void (*fn)(void), const char *want) {
#ifndef NDEBUG
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        fn();
        _exit(0);
    }
    close(pfd[1]);
    char buf[1024];
    size_t len = 0;
    ssize_t k;
    while ((k = read(pfd[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)k;
    buf[len] = 0;
    close(pfd[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT) || !strstr(buf, want))
        fprintf(stderr, "expected an assert \"%s\", got status %d, stderr: %s\n", want, st, buf);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK(strstr(buf, want) != NULL);
#else
    (void)fn;
    (void)want;
#endif
}


/* >>white box: queue order and lost claims (the test TU has the implementation) */
#ifdef CRT_IMPLEMENTATION
/* A few yields, so tasks spawned on this worker run up to their waits
 * (and queue there in spawn order). */
__attribute__((unused)) static void settle(void) {
    for (int i = 0; i < 8; i++) crt_yield();
}

/* A lost claim: the queued waiter's deadline "fires" (we claim it as the
 * timer would) just before an operation reaches it; the operation must
 * then pass on what it had for the waiter. Wake the waiter with
 * crt__waiter_wake_to(w, 0) afterwards. */
__attribute__((unused)) static crt__waiter *claim_as_timeout(crt__wait_node *head) {
    CHECK(head != NULL);
    crt__waiter *w = head->waiter;
    CHECK(crt__waiter_claim(w));
    w->result = -ETIMEDOUT;
    w->index = -1;
    return w;
}
#endif

#endif /* CRT_TESTS_CHECK_H */
