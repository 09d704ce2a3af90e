/* The context switch on its own, without a scheduler: callee-saved
 * registers survive it, the FP control state travels with a context only
 * under CRT_FP_CONTROL, deep recursion fits on a coroutine stack, ten
 * million switches, and a context suspended on one thread resumes on
 * another. test_context_fp.c and test_context_ucontext.c build this same
 * file with CRT_FP_CONTROL and CRT_CONTEXT_UCONTEXT; the aarch64 test runs
 * all three under qemu-aarch64. */
#ifndef CRT_IMPLEMENTATION
#define CRT_IMPLEMENTATION
#endif
#include "check.h"
#include <pthread.h>

static crt__stack_pool pool;
static crt__stack_cache cache;

static crt__stack *new_stack(void) {
    crt__stack *st = crt__stack_alloc(&pool, &cache);
    CHECK(st != NULL);
    return st;
}

static crt__ctx main_ctx;

/* >>registers: fill them from assembly, switch through an ordinary call,
 * check them from assembly. */
#if defined(__x86_64__) && !defined(CRT_CONTEXT_UCONTEXT)
#define NREGS 6 /* rbx, rbp, r12, r13, r14, r15 */
/* A global (not static): the assembly names it. */
__attribute__((used)) uint64_t regs_out[NREGS];

/* Loads six patterns into the callee-saved registers, calls
 * crt__ctx_switch_fn(from, to), stores what the registers hold after. */
static void switch_with_patterns(crt__ctx *from, crt__ctx *to, uint64_t base) {
    __asm__ __volatile__(
        "movq %%rsp, %%rcx\n\t"
        "subq $128, %%rsp\n\t" /* step over the red zone */
        "andq $-16, %%rsp\n\t"
        "pushq %%rcx\n\t"      /* our rsp, for the way back */
        "pushq %%rbp\n\t"      /* rsp 16-aligned again at the call */
        "movq %%rax, %%rbx\n\t"
        "leaq 1(%%rax), %%rbp\n\t"
        "leaq 2(%%rax), %%r12\n\t"
        "leaq 3(%%rax), %%r13\n\t"
        "leaq 4(%%rax), %%r14\n\t"
        "leaq 5(%%rax), %%r15\n\t"
        "call crt__ctx_switch_fn_abi\n\t"
        "movq %%rbx, regs_out+0(%%rip)\n\t"
        "movq %%rbp, regs_out+8(%%rip)\n\t"
        "movq %%r12, regs_out+16(%%rip)\n\t"
        "movq %%r13, regs_out+24(%%rip)\n\t"
        "movq %%r14, regs_out+32(%%rip)\n\t"
        "movq %%r15, regs_out+40(%%rip)\n\t"
        "popq %%rbp\n\t"
        "popq %%rsp\n\t"
        : "+D"(from), "+S"(to), "+a"(base)
        :
        : "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory", "cc", "xmm0",
          "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
          "xmm13", "xmm14", "xmm15");
}
#define HAVE_REG_TEST 1
#elif defined(__aarch64__) && !defined(CRT_CONTEXT_UCONTEXT)
#define NREGS 19 /* x19..x29 and d8..d15 */
uint64_t regs_out[NREGS];

static void switch_with_patterns(crt__ctx *from, crt__ctx *to, uint64_t base) {
    register crt__ctx *f __asm__("x0") = from;
    register crt__ctx *t __asm__("x1") = to;
    register uint64_t b __asm__("x2") = base;
    register uint64_t *out __asm__("x3") = regs_out;
    __asm__ __volatile__(
        "stp x29, x30, [sp, #-16]!\n\t"
        "str x3, [sp, #-16]!\n\t"
        "add x19, x2, #0\n\t"
        "add x20, x2, #1\n\t"
        "add x21, x2, #2\n\t"
        "add x22, x2, #3\n\t"
        "add x23, x2, #4\n\t"
        "add x24, x2, #5\n\t"
        "add x25, x2, #6\n\t"
        "add x26, x2, #7\n\t"
        "add x27, x2, #8\n\t"
        "add x28, x2, #9\n\t"
        "add x29, x2, #10\n\t"
        "add x9, x2, #11\n\t fmov d8, x9\n\t"
        "add x9, x2, #12\n\t fmov d9, x9\n\t"
        "add x9, x2, #13\n\t fmov d10, x9\n\t"
        "add x9, x2, #14\n\t fmov d11, x9\n\t"
        "add x9, x2, #15\n\t fmov d12, x9\n\t"
        "add x9, x2, #16\n\t fmov d13, x9\n\t"
        "add x9, x2, #17\n\t fmov d14, x9\n\t"
        "add x9, x2, #18\n\t fmov d15, x9\n\t"
        "bl crt__ctx_switch_fn_abi\n\t"
        "ldr x3, [sp], #16\n\t"
        "stp x19, x20, [x3, #0]\n\t"
        "stp x21, x22, [x3, #16]\n\t"
        "stp x23, x24, [x3, #32]\n\t"
        "stp x25, x26, [x3, #48]\n\t"
        "stp x27, x28, [x3, #64]\n\t"
        "str x29, [x3, #80]\n\t"
        "fmov x9, d8\n\t str x9, [x3, #88]\n\t"
        "fmov x9, d9\n\t str x9, [x3, #96]\n\t"
        "fmov x9, d10\n\t str x9, [x3, #104]\n\t"
        "fmov x9, d11\n\t str x9, [x3, #112]\n\t"
        "fmov x9, d12\n\t str x9, [x3, #120]\n\t"
        "fmov x9, d13\n\t str x9, [x3, #128]\n\t"
        "fmov x9, d14\n\t str x9, [x3, #136]\n\t"
        "fmov x9, d15\n\t str x9, [x3, #144]\n\t"
        "ldp x29, x30, [sp], #16\n\t"
        : "+r"(f), "+r"(t), "+r"(b), "+r"(out)
        :
        : "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17", "x18",
          "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x30", "v0", "v1", "v2", "v3",
          "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18",
          "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31", "memory",
          "cc");
}
#define HAVE_REG_TEST 1
#endif

#ifdef HAVE_REG_TEST
/* An ABI-visible name for the switch, so assembly can call it. */
#ifdef __cplusplus
extern "C" {
#endif
void crt__ctx_switch_fn_abi(crt__ctx *from, crt__ctx *to);
#ifdef __cplusplus
}
#endif
CRT__NOIPA __attribute__((used)) void crt__ctx_switch_fn_abi(crt__ctx *from, crt__ctx *to) {
    crt__ctx_switch_fn(from, to);
}

static crt__ctx reg_ctx;
static uint64_t reg_seen[NREGS];

static void reg_entry(void *arg) {
    (void)arg;
    crt__ctx_entered();
    /* Back to main with our own patterns in every callee-saved register. */
    for (;;) {
        switch_with_patterns(&reg_ctx, &main_ctx, UINT64_C(0xC0C0000000000000));
        memcpy(reg_seen, regs_out, sizeof reg_seen);
    }
}

static void test_registers(void) {
    crt__stack *st = new_stack();
    crt__ctx_init(&reg_ctx, st->lo, st->size);
    crt__ctx_make(&reg_ctx, st->lo, st->size, reg_entry, NULL);
    for (int round = 0; round < 3; round++) {
        uint64_t base = UINT64_C(0xA1A1000000000000) + (uint64_t)round * 0x100;
        switch_with_patterns(&main_ctx, &reg_ctx, base);
        for (int i = 0; i < NREGS; i++) CHECK_EQ(regs_out[i], base + (uint64_t)i);
        if (round > 0)
            for (int i = 0; i < NREGS; i++) CHECK_EQ(reg_seen[i], UINT64_C(0xC0C0000000000000) + (uint64_t)i);
    }
    crt__stack_free(&pool, &cache, st);
    TEST_LOG("registers: %d callee-saved registers survive a switch in both directions", NREGS);
}
#endif

/* >>FP control: the rounding mode travels with a context only under
 * CRT_FP_CONTROL; without it, it stays with the thread. */
#if !defined(CRT_CONTEXT_UCONTEXT) && (defined(__x86_64__) || defined(__aarch64__))
#include <fenv.h>
static crt__ctx fp_ctx;
static int fp_seen_in_task;

static void fp_entry(void *arg) {
    (void)arg;
    crt__ctx_entered();
    for (;;) {
        fp_seen_in_task = fegetround();
        fesetround(FE_TOWARDZERO);
        crt__ctx_switch_fn(&fp_ctx, &main_ctx);
    }
}

static void test_fp_control(void) {
    crt__stack *st = new_stack();
    crt__ctx_init(&fp_ctx, st->lo, st->size);
    fesetround(FE_UPWARD); /* a new context inherits its creator's state */
    crt__ctx_make(&fp_ctx, st->lo, st->size, fp_entry, NULL);
    fesetround(FE_DOWNWARD);
    crt__ctx_switch_fn(&main_ctx, &fp_ctx);
#ifdef CRT_FP_CONTROL
    CHECK_EQ(fp_seen_in_task, FE_UPWARD);   /* its own state, from creation */
    CHECK_EQ(fegetround(), FE_DOWNWARD);    /* ours came back with us */
    crt__ctx_switch_fn(&main_ctx, &fp_ctx);
    CHECK_EQ(fp_seen_in_task, FE_TOWARDZERO); /* its change stayed with it */
    CHECK_EQ(fegetround(), FE_DOWNWARD);
    TEST_LOG("fp control: each context keeps its rounding mode (CRT_FP_CONTROL)");
#else
    CHECK_EQ(fp_seen_in_task, FE_DOWNWARD); /* the thread's state */
    CHECK_EQ(fegetround(), FE_TOWARDZERO);  /* the task's change leaked to us: the documented rule */
    TEST_LOG("fp control: without CRT_FP_CONTROL the rounding mode belongs to the thread");
#endif
    fesetround(FE_TONEAREST);
    crt__stack_free(&pool, &cache, st);
}
#endif

/* >>deep recursion on a coroutine stack */
static crt__ctx deep_ctx;
static long deep_result;

static __attribute__((noinline)) long recurse(long n, volatile char *prev) {
    volatile char frame[512];
    frame[0] = (char)n;
    frame[511] = prev ? prev[0] : 0;
    if (n == 0) return frame[0] + frame[511];
    return recurse(n - 1, frame) + 1;
}

static void deep_entry(void *arg) {
    crt__ctx_entered();
    deep_result = recurse((long)(intptr_t)arg, NULL);
    crt__ctx_switch_fn(&deep_ctx, &main_ctx);
    CHECK(0);
}

static void test_deep_recursion(void) {
    crt__stack *st = new_stack();
    /* ~600 bytes a frame: 350 frames use ~210 KiB of the 252 KiB. */
    long depth = test_short() ? 200 : 350;
    crt__ctx_init(&deep_ctx, st->lo, st->size);
    crt__ctx_make(&deep_ctx, st->lo, st->size, deep_entry, (void *)(intptr_t)depth);
    crt__ctx_switch_fn(&main_ctx, &deep_ctx);
    CHECK_EQ(deep_result, depth + 1);
    crt__stack_free(&pool, &cache, st);
    TEST_LOG("deep recursion: %ld frames of 512+ bytes on a coroutine stack", depth);
}

/* >>ten million switches */
static crt__ctx ping_ctx;
static long ping_count;

static void ping_entry(void *arg) {
    (void)arg;
    crt__ctx_entered();
    for (;;) {
        ping_count++;
        crt__ctx_switch_fn(&ping_ctx, &main_ctx);
    }
}

static void test_many_switches(void) {
    crt__stack *st = new_stack();
    long n = test_short() ? 500000 : 5000000; /* two switches each */
    crt__ctx_init(&ping_ctx, st->lo, st->size);
    crt__ctx_make(&ping_ctx, st->lo, st->size, ping_entry, NULL);
    for (long i = 0; i < n; i++) crt__ctx_switch_fn(&main_ctx, &ping_ctx);
    CHECK_EQ(ping_count, n);
    crt__stack_free(&pool, &cache, st);
    TEST_LOG("many switches: %ld switches", 2 * n);
}

/* >>a context suspended on one thread, resumed on another */
static crt__ctx roam_ctx;
static crt__ctx thread_ctx[2];
static int roam_where;
static __thread int thread_id;

/* Code that may resume on another thread reads thread-locals through a
 * call the compiler cannot see into: on AArch64 it would otherwise keep
 * the first thread's thread pointer (tpidr_el0) across the switch. */
static CRT__OPAQUE int current_thread_id(void) {
    int id = thread_id;
    crt__compiler_barrier();
    return id;
}

static void roam_entry(void *arg) {
    (void)arg;
    crt__ctx_entered();
    volatile long local = 12345; /* lives on the coroutine stack across threads */
    roam_where = current_thread_id();
    crt__ctx_switch_fn(&roam_ctx, &thread_ctx[0]);
    roam_where = current_thread_id() * 100 + (int)(local == 12345);
    crt__ctx_switch_fn(&roam_ctx, &thread_ctx[1]);
    CHECK(0);
}

static void *roam_thread(void *arg) {
    thread_id = (int)(intptr_t)arg;
    pthread_attr_t a;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &lo, &size);
        pthread_attr_destroy(&a);
    }
    crt__ctx_init_thread(&thread_ctx[thread_id - 1], lo, size);
    crt__ctx_switch_fn(&thread_ctx[thread_id - 1], &roam_ctx);
    return NULL;
}

static void test_cross_thread(void) {
    crt__stack *st = new_stack();
    crt__ctx_init(&roam_ctx, st->lo, st->size);
    crt__ctx_make(&roam_ctx, st->lo, st->size, roam_entry, NULL);
    pthread_t a, b;
    CHECK_EQ(pthread_create(&a, NULL, roam_thread, (void *)1), 0);
    pthread_join(a, NULL);
    CHECK_EQ(roam_where, 1);
    CHECK_EQ(pthread_create(&b, NULL, roam_thread, (void *)2), 0);
    pthread_join(b, NULL);
    CHECK_EQ(roam_where, 201);
    crt__ctx_release(&roam_ctx);
    crt__stack_free(&pool, &cache, st);
    TEST_LOG("cross thread: suspended on thread 1, resumed on thread 2 with its locals intact");
}

#if defined(CRT_FP_CONTROL) && !defined(CRT_CONTEXT_UCONTEXT) && (defined(__x86_64__) || defined(__aarch64__))
/* Tasks of a runtime: a new task starts with the state its spawner had at
 * crt_spawn, not the one the task that ran before it on the thread left
 * (the first task here changes its rounding mode and yields; the second
 * then starts on the same thread), whether it starts after a switch or on
 * the stack of a task that returned. */
static int fp_seen_at_start;

static void *fp_changer(void *arg) {
    (void)arg;
    fesetround(FE_UPWARD);
    crt_yield();
    CHECK_EQ(fegetround(), FE_UPWARD); /* its own, across the switch */
    return NULL;
}

static void *fp_observer(void *arg) {
    (void)arg;
    fp_seen_at_start = fegetround();
    fesetround(FE_TOWARDZERO); /* left behind for whoever starts next here */
    return NULL;
}

static void *fp_tasks_main(void *arg) {
    (void)arg;
    CHECK_EQ(fegetround(), FE_TONEAREST);
    crt_task *a = crt_spawn(fp_changer, NULL), *b = crt_spawn(fp_observer, NULL);
    CHECK(a && b);
    CHECK_EQ(crt_join(a, NULL, CRT_FOREVER), 0);
    CHECK_EQ(crt_join(b, NULL, CRT_FOREVER), 0);
    CHECK_EQ(fp_seen_at_start, FE_TONEAREST);
    fesetround(FE_DOWNWARD);
    crt_task *c = crt_spawn(fp_observer, NULL), *d = crt_spawn(fp_observer, NULL);
    fesetround(FE_TONEAREST);
    CHECK(c && d);
    CHECK_EQ(crt_join(c, NULL, CRT_FOREVER), 0);
    CHECK_EQ(crt_join(d, NULL, CRT_FOREVER), 0); /* started where c returned */
    CHECK_EQ(fp_seen_at_start, FE_DOWNWARD);
    CHECK_EQ(fegetround(), FE_TONEAREST);
    return NULL;
}

static void test_fp_tasks(void) {
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 1;
    CHECK_EQ(crt_run(&cfg, fp_tasks_main, NULL, NULL), 0);
    TEST_LOG("fp control: a new task starts with its spawner's rounding mode");
}
#endif

int main(void) {
    crt__stack_pool_init(&pool, crt__stack_slot_size(0));
    pthread_attr_t a;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &lo, &size);
        pthread_attr_destroy(&a);
    }
    crt__ctx_init_thread(&main_ctx, lo, size);
#ifdef HAVE_REG_TEST
    test_registers();
#endif
#if !defined(CRT_CONTEXT_UCONTEXT) && (defined(__x86_64__) || defined(__aarch64__))
    test_fp_control();
#endif
    test_deep_recursion();
    test_many_switches();
    test_cross_thread();
#if defined(CRT_FP_CONTROL) && !defined(CRT_CONTEXT_UCONTEXT) && (defined(__x86_64__) || defined(__aarch64__))
    test_fp_tasks();
#endif
    cache.head = cache.spare = NULL; /* its stacks go with the slabs */
    crt__stack_pool_destroy(&pool);
    CHECK_EQ(test_live_allocs(), 0);
    return 0;
}
