/* Task stacks: an overflow is reported as `crt: stack overflow in task
 * "<name>"` and aborts, under each of the three guard paths
 * (CRT_STACK_GUARD=madvise|mprotect|canary, each in a forked child: the
 * parent has no threads when it forks); 100,000 stacks alive at once under
 * each path on a default kernel; stack sizes are rounded, bounded and
 * honoured. */
#define CRT_IMPLEMENTATION
#include "check.h"
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* >>child: overflow a task's stack */
static __attribute__((noinline)) long dig(long depth, long limit, volatile char *prev) {
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[1023] = prev ? prev[0] : 1;
    if (depth >= limit) {
        /* A canary is checked at the next switch: make one. */
        crt_yield();
        return frame[0];
    }
    return dig(depth + 1, limit, frame) + frame[1023];
}

static void *deep_task(void *arg) {
    (void)arg;
    /* ~1 KiB a frame: 300 frames pass the 252 KiB stack by ~50 KiB. */
    return (void *)(intptr_t)dig(0, 300, NULL);
}

/* An overflow found when the task returns, not at a switch: the canary is
 * broken by hand (as by an overflow that wrote only there), and a new task
 * waits behind, so the return may hand this stack straight on to it. */
static int overflow_at_return;

static void *smash_and_return(void *arg) {
    *(volatile uint64_t *)crt_current()->stack->lo = 0;
    return arg;
}

static void *nothing(void *arg) { return arg; }

static void *overflow_main(void *arg) {
    (void)arg;
    crt_spawn_opts o;
    memset(&o, 0, sizeof o);
    o.name = "deep";
    crt_task *t = crt_spawn_with(&o, overflow_at_return ? smash_and_return : deep_task, NULL);
    CHECK(t != NULL);
    crt_task *next = overflow_at_return ? crt_spawn(nothing, NULL) : NULL;
    crt_join(t, NULL, CRT_FOREVER);
    if (next) crt_join(next, NULL, CRT_FOREVER);
    return NULL;
}

static int child_overflow(void) {
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 1;
    crt_run(&cfg, overflow_main, NULL, NULL);
    fprintf(stderr, "child: the overflow went unnoticed\n");
    return 0; /* the parent treats a normal exit as failure */
}

/* Runs this program as `overflow` with CRT_STACK_GUARD=mode; checks the
 * report on stderr and the abnormal end. */
static void check_overflow(const char *mode) {
    int pipefd[2];
    CHECK_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        setenv("CRT_STACK_GUARD", mode, 1);
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        _exit(child_overflow());
    }
    close(pipefd[1]);
    char buf[4096];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(pipefd[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    buf[got] = 0;
    close(pipefd[0]);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (!strstr(buf, "crt: stack overflow in task \"deep\"")) fprintf(stderr, "child said: %s\n", buf);
    CHECK(strstr(buf, "crt: stack overflow in task \"deep\"") != NULL);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGABRT);
    TEST_LOG("overflow (%s%s): reported and aborted", mode, overflow_at_return ? ", found at the task's return" : "");
}

/* >>child: many stacks alive at once */
static long parked;

static void *park_forever(void *arg) {
    (void)arg;
    /* Release: main reads this task's record (its stack) once it sees the count. */
    __atomic_add_fetch(&parked, 1, __ATOMIC_RELEASE);
    int r = crt_sleep_until(CRT_FOREVER);
    return (void *)(intptr_t)r;
}

static int compare_stacks(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)*(crt__stack *const *)a, y = (uintptr_t)*(crt__stack *const *)b;
    return x < y ? -1 : x > y;
}

static void *many_main(void *arg) {
    long n = (long)(intptr_t)arg;
    crt_task **ts = (crt_task **)malloc((size_t)n * sizeof *ts);
    CHECK(ts != NULL);
    for (long i = 0; i < n; i++) {
        ts[i] = crt_spawn(park_forever, NULL);
        CHECK(ts[i] != NULL);
    }
    while (__atomic_load_n(&parked, __ATOMIC_ACQUIRE) < n) crt_sleep(CRT_MS(1));
    /* The point of the guard paths: map entries stay far below the limit. */
    long maps = crt__map_count();
    const char *mode = getenv("CRT_STACK_GUARD");
    /* (TSan maps shadow memory of its own for every mapping we make.) */
    if (mode && !strcmp(mode, "madvise") && crt__madvise_guard_ok == 1 && !CRT__TSAN) CHECK(maps < 5000);
    if (!CRT__TSAN) CHECK(maps < crt__read_long_file("/proc/sys/vm/max_map_count", 65530) / 2 + 2000);
    /* Both workers grew the pool at once (slots are reserved under its
     * lock, their records written outside it): no stack went to two tasks. */
    crt__stack **stacks = (crt__stack **)malloc((size_t)n * sizeof *stacks);
    CHECK(stacks != NULL);
    for (long i = 0; i < n; i++) stacks[i] = ts[i]->stack;
    qsort(stacks, (size_t)n, sizeof *stacks, compare_stacks);
    for (long i = 0; i < n; i++) CHECK(stacks[i] != NULL && (i == 0 || stacks[i] != stacks[i - 1]));
    free(stacks);
    TEST_LOG("  %ld tasks parked, %ld map entries (%s)", n, maps,
             mode && !strcmp(mode, "madvise") && crt__madvise_guard_ok != 1 ? "madvise ignored here: mprotect" : "");
    for (long i = 0; i < n; i++) crt_abort(ts[i]);
    for (long i = 0; i < n; i++) {
        void *r = NULL;
        CHECK_EQ(crt_join(ts[i], &r, CRT_FOREVER), 0);
        CHECK_EQ((intptr_t)r, -ECANCELED);
    }
    free(ts);
    return NULL;
}

static int child_many(long n) {
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 2;
    int rc = crt_run(&cfg, many_main, (void *)(intptr_t)n, NULL);
    CHECK_EQ(rc, 0);
    CHECK_EQ(parked, n);
    return 0;
}

static void check_many(const char *mode, long n) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setenv("CRT_STACK_GUARD", mode, 1);
        _exit(child_many(n));
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    TEST_LOG("%ld stacks alive at once (%s): ok", n, mode);
}

/* >>sizes */
static void *measure_stack(void *arg) {
    (void)arg;
    crt_task *self = crt_current();
    return (void *)(uintptr_t)self->stack->size;
}

static void *sizes_main(void *arg) {
    (void)arg;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct {
        size_t ask, usable;
    } cases[] = {
        {1, 16 * 1024 - page},                    /* below the minimum: rounded up */
        {100 * 1024 + 1, 100 * 1024 + page - page}, /* rounded to whole pages */
        {1024 * 1024, 1024 * 1024 - page},        /* a mapping of its own */
        /* (each less its guard page, above, and its record, below) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        crt_spawn_opts o;
        memset(&o, 0, sizeof o);
        o.stack_size = cases[i].ask;
        crt_task *t = crt_spawn_with(&o, measure_stack, NULL);
        CHECK(t != NULL);
        void *r = NULL;
        CHECK_EQ(crt_join(t, &r, CRT_FOREVER), 0);
        size_t expect = cases[i].usable;
        if (i == 1) expect = ((100 * 1024 + 1 + page - 1) / page * page) - page;
        CHECK_EQ((uintptr_t)r, expect - CRT__STACK_RECORD);
    }
    crt_spawn_opts o;
    memset(&o, 0, sizeof o);
    o.stack_size = (size_t)2 << 30;
    errno = 0;
    CHECK(crt_spawn_with(&o, measure_stack, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    return NULL;
}

static void test_sizes(void) {
    test_run(1, sizes_main, NULL);
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.stack_size = (size_t)3 << 30;
    errno = 0;
    CHECK(crt_runtime_new(&cfg) == NULL);
    CHECK_EQ(errno, EINVAL);
    TEST_LOG("sizes: rounded up, whole pages, own mappings, > 1 GiB refused");
}

int main(void) {
    test_sizes();
    check_overflow("madvise");
    check_overflow("mprotect");
    check_overflow("canary");
    overflow_at_return = 1; /* only a canary is looked at when a task returns */
    check_overflow("canary");
    overflow_at_return = 0;
    /* TSan keeps trace memory per fiber and runs out of mappings near
     * 20,000 of them, and Valgrind's table of mappings is smaller than
     * the mprotect path's: under them the path is exercised with fewer. */
    long n = CRT__TSAN ? 500 : test_short() ? 20000 : 100000;
#if CRT__VALGRIND
    if (RUNNING_ON_VALGRIND) n = 2000;
#endif
    check_many("madvise", n);
    check_many("mprotect", n);
    check_many("canary", n);
    return 0;
}
