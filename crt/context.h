/* crt/context.h — internal: switching between machine contexts (stacks).
 *
 * The assembly switch for x86-64 System V and AArch64 is inline assembly,
 * not a function: it stores the stack pointer, the frame pointer and a
 * resume address into the context it leaves, loads the other context's and
 * jumps to its resume address. Every other register is declared clobbered,
 * so the compiler preserves exactly the callee-saved registers that hold
 * live values — rbx, rbp, r12–r15 on x86-64; x19–x29, lr and d8–d15 on
 * AArch64 — and nothing more. There is no call and no `ret`: a `ret` on a
 * freshly switched stack misses the return-stack predictor every time (8.7
 * ns against 3.1 ns here), and a call that never returns leaves a stale
 * entry that makes the next `ret` miss instead. Nothing is pushed, so the
 * red zone of the function around the switch is safe.
 *
 * Macros (implementation TU only; they change nothing in a public struct):
 *   CRT_CONTEXT_UCONTEXT  use makecontext/swapcontext (portable, slower: it
 *                         saves the signal mask with a system call). Chosen
 *                         automatically on targets without an assembly switch.
 *   CRT_FP_CONTROL        each task carries its own floating-point control
 *                         state (MXCSR and the x87 control word; FPCR on
 *                         AArch64) across switches, ~1.7 ns per switch. The
 *                         rule without it: the rounding mode and exception
 *                         masks belong to the worker thread, so a task that
 *                         changes them (fesetround, fesetenv) must restore
 *                         them before its next blocking call or yield. Tasks
 *                         that never touch them pay nothing. A new task
 *                         starts with the state its spawner had when it
 *                         called crt_spawn (crt/runtime.h keeps it in the
 *                         record and loads it as the task's first step).
 *
 * ASan, TSan and Valgrind are told about every stack and every switch when
 * they are present, so the test suite runs clean under each of them.
 */
#ifndef CRT_CONTEXT_H
#define CRT_CONTEXT_H
#include "base.h"
#endif /* CRT_CONTEXT_H */

#if defined(CRT_IMPLEMENTATION) && !defined(CRT__CONTEXT_IMPL)
#define CRT__CONTEXT_IMPL

#if !defined(CRT_CONTEXT_UCONTEXT) && !defined(__x86_64__) && !defined(__aarch64__)
#define CRT_CONTEXT_UCONTEXT 1
#endif
#ifdef CRT_CONTEXT_UCONTEXT
#include <ucontext.h>
#endif

/* >>sanitizer detection */
#if defined(__SANITIZE_ADDRESS__)
#define CRT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CRT__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CRT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CRT__TSAN 1
#endif
#endif
#ifndef CRT__ASAN
#define CRT__ASAN 0
#endif
#ifndef CRT__TSAN
#define CRT__TSAN 0
#endif

#if CRT__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if CRT__TSAN
#ifdef __cplusplus
extern "C" {
#endif
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
void __tsan_set_fiber_name(void *fiber, const char *name);
#ifdef __cplusplus
}
#endif
#endif

/* One machine context: 48 bytes, which a task record keeps in one cache
 * line. It is internal to the implementation TU, so the fields only the
 * sanitizers or the ucontext fallback need exist only in those builds.
 * The assembly below knows the offsets of the first six fields. */
typedef struct crt__ctx {
    void *sp;                 /* 0: stack pointer */
    void *fp;                 /* 8: frame pointer (rbp, x29) */
    uintptr_t ip;             /* 16: resume address */
    uint64_t fpctl;           /* 24: CRT_FP_CONTROL: MXCSR | x87 CW << 32, or FPCR */
    void (*entry)(void *);    /* 32: a new context's function */
    void *arg;                /* 40: and its argument */
#if CRT__ASAN || CRT__TSAN
    void *stack_lo;           /* lowest usable byte (for ASan) */
    size_t stack_size;
    void *asan_fake_stack;    /* ASan's fake stack while switched out */
    void *tsan_fiber;         /* TSan's fiber for this context */
#endif
#ifdef CRT_CONTEXT_UCONTEXT
    ucontext_t uc;
#endif
} crt__ctx;

typedef char crt__ctx_layout_check[(offsetof(crt__ctx, ip) == 16 && offsetof(crt__ctx, fpctl) == 24 &&
                                    offsetof(crt__ctx, entry) == 32 && offsetof(crt__ctx, arg) == 40) ? 1 : -1];

#ifdef __cplusplus
extern "C" {
#endif
/* First code of a new context: the switch arrives with the context in the
 * second argument register; calls entry(arg), which never returns. */
void crt__ctx_trampoline(void);
#ifdef __cplusplus
}
#endif

#ifdef CRT_FP_CONTROL
#if !defined(__x86_64__) && !defined(__aarch64__)
#include <fenv.h>
#endif
/* The calling thread's FP control state in the layout of crt__ctx.fpctl,
 * and loading one: what a new task starts with (crt/runtime.h). Elsewhere
 * than x86-64 and AArch64 only the rounding mode travels. */
static inline uint64_t crt__fp_read(void) {
#if defined(__x86_64__)
    uint32_t mxcsr = 0;
    uint16_t cw = 0;
    __asm__ __volatile__("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(cw));
    return (uint64_t)mxcsr | (uint64_t)cw << 32;
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr;
#else
    return (uint64_t)(unsigned)fegetround();
#endif
}

static inline void crt__fp_write(uint64_t v) {
#if defined(__x86_64__)
    uint32_t mxcsr = (uint32_t)v;
    uint16_t cw = (uint16_t)(v >> 32);
    __asm__ __volatile__("ldmxcsr %0\n\tfldcw %1" : : "m"(mxcsr), "m"(cw));
#elif defined(__aarch64__)
    __asm__ __volatile__("msr fpcr, %0" : : "r"(v));
#else
    fesetround((int)v);
#endif
}
#endif

/* >>assembly: x86-64 System V */
#if !defined(CRT_CONTEXT_UCONTEXT) && defined(__x86_64__)
#ifdef CRT_FP_CONTROL
/* Both words are stored at every switch. fldcw serialises and two tasks
 * nearly always hold the same x87 word, so it is loaded only when the
 * words differ (the compare reads fnstcw's store back, which the CPU
 * forwards). MXCSR is loaded unconditionally: reading back what stmxcsr
 * just stored is not forwarded and stalls longer than ldmxcsr takes
 * (7.3 ns against 5.6 ns per switch on an AMD EPYC, bench/switch_fp.c). */
#define CRT__X64_SAVE_FP "stmxcsr 24(%0)\n\tfnstcw 28(%0)\n\t"
#define CRT__X64_LOAD_FP                                                       \
    "ldmxcsr 24(%1)\n\tmovzwl 28(%1), %%eax\n\tcmpw 28(%0), %%ax\n\tje 3f\n" \
    "\tfldcw 28(%1)\n3:\n\t"
#else
#define CRT__X64_SAVE_FP ""
#define CRT__X64_LOAD_FP ""
#endif
#ifdef __AVX512F__
#define CRT__X64_CLOBBER_AVX512 , "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", \
    "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31"
#else
#define CRT__X64_CLOBBER_AVX512
#endif

/* The raw switch. rdi/rsi carry from/to; a new context's trampoline finds
 * its context in rsi. */
#define CRT__CTX_JUMP(from, to)                                                                         \
    do {                                                                                                \
        crt__ctx *crt__from_ = (from), *crt__to_ = (to);                                                \
        __asm__ __volatile__("leaq 1f(%%rip), %%rax\n\t"                                                \
                             "movq %%rsp, 0(%0)\n\t"                                                    \
                             "movq %%rbp, 8(%0)\n\t"                                                    \
                             "movq %%rax, 16(%0)\n\t" CRT__X64_SAVE_FP CRT__X64_LOAD_FP                 \
                             "movq 0(%1), %%rsp\n\t"                                                    \
                             "movq 8(%1), %%rbp\n\t"                                                    \
                             "jmpq *16(%1)\n\t"                                                         \
                             "1:\n\t"                                                                   \
                             : "+D"(crt__from_), "+S"(crt__to_)                                         \
                             :                                                                          \
                             : "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13",     \
                               "r14", "r15", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",    \
                               "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",       \
                               "xmm13", "xmm14", "xmm15", "st", "st(1)", "st(2)", "st(3)", "st(4)",     \
                               "st(5)", "st(6)", "st(7)" CRT__X64_CLOBBER_AVX512);                      \
    } while (0)

__asm__(
    ".text\n"
    ".globl crt__ctx_trampoline\n"
    ".hidden crt__ctx_trampoline\n"
    ".type crt__ctx_trampoline,@function\n"
    ".p2align 4\n"
    "crt__ctx_trampoline:\n\t"
    ".cfi_startproc\n\t"
    ".cfi_undefined rip\n\t" /* debuggers: the backtrace ends here */
    "movq 40(%rsi), %rdi\n\t"
    "callq *32(%rsi)\n\t"
    "ud2\n\t"
    ".cfi_endproc\n"
    ".size crt__ctx_trampoline, .-crt__ctx_trampoline\n");

CRT__INTERN void crt__ctx_make(crt__ctx *c, void *lo, size_t size, void (*entry)(void *), void *arg) {
    /* rsp == top (16-aligned) at the trampoline, so its call enters entry
     * with rsp == 8 (mod 16), as after any call. */
    c->sp = (void *)(((uintptr_t)lo + size) & ~(uintptr_t)15);
    c->fp = NULL; /* ends frame-pointer walks */
    c->ip = (uintptr_t)crt__ctx_trampoline;
    c->entry = entry;
    c->arg = arg;
#ifdef CRT_FP_CONTROL
    c->fpctl = crt__fp_read(); /* a new task inherits the creator's */
#else
    c->fpctl = 0;
#endif
}
#endif /* x86-64 */

/* >>assembly: AArch64 (AAPCS64) */
#if !defined(CRT_CONTEXT_UCONTEXT) && defined(__aarch64__)
#ifdef CRT_FP_CONTROL
/* Writing FPCR may synchronise the FP unit: only when the words differ. */
#define CRT__A64_SAVE_FP "mrs x10, fpcr\n\tstr x10, [%0, #24]\n\t"
#define CRT__A64_LOAD_FP "ldr x11, [%1, #24]\n\tcmp x10, x11\n\tb.eq 2f\n\tmsr fpcr, x11\n2:\n\t"
#else
#define CRT__A64_SAVE_FP ""
#define CRT__A64_LOAD_FP ""
#endif

/* x0/x1 carry from/to; a new context's trampoline finds its context in x1. */
#define CRT__CTX_JUMP(from, to)                                                                           \
    do {                                                                                                  \
        register crt__ctx *crt__from_ __asm__("x0") = (from);                                             \
        register crt__ctx *crt__to_ __asm__("x1") = (to);                                                 \
        __asm__ __volatile__("adr x9, 1f\n\t"                                                             \
                             "mov x10, sp\n\t"                                                            \
                             "str x10, [%0, #0]\n\t"                                                      \
                             "str x29, [%0, #8]\n\t"                                                      \
                             "str x9, [%0, #16]\n\t" CRT__A64_SAVE_FP CRT__A64_LOAD_FP                    \
                             "ldr x10, [%1, #0]\n\t"                                                      \
                             "mov sp, x10\n\t"                                                            \
                             "ldr x29, [%1, #8]\n\t"                                                      \
                             "ldr x9, [%1, #16]\n\t"                                                      \
                             "br x9\n\t"                                                                  \
                             "1:\n\t"                                                                     \
                             : "+r"(crt__from_), "+r"(crt__to_)                                           \
                             :                                                                            \
                             : "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12",      \
                               "x13", "x14", "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22",      \
                               "x23", "x24", "x25", "x26", "x27", "x28", "x30", "memory", "cc", "v0",     \
                               "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", \
                               "v13", "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22",      \
                               "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31");            \
    } while (0)

__asm__(
    ".text\n"
    ".globl crt__ctx_trampoline\n"
    ".hidden crt__ctx_trampoline\n"
    ".type crt__ctx_trampoline,%function\n"
    ".p2align 4\n"
    "crt__ctx_trampoline:\n\t"
    ".cfi_startproc\n\t"
    ".cfi_undefined x30\n\t"
    "ldr x0, [x1, #40]\n\t"
    "ldr x9, [x1, #32]\n\t"
    "blr x9\n\t"
    "brk #0\n\t"
    ".cfi_endproc\n"
    ".size crt__ctx_trampoline, .-crt__ctx_trampoline\n");

CRT__INTERN void crt__ctx_make(crt__ctx *c, void *lo, size_t size, void (*entry)(void *), void *arg) {
    c->sp = (void *)(((uintptr_t)lo + size) & ~(uintptr_t)15);
    c->fp = NULL;
    c->ip = (uintptr_t)crt__ctx_trampoline;
    c->entry = entry;
    c->arg = arg;
#ifdef CRT_FP_CONTROL
    c->fpctl = crt__fp_read(); /* a new task inherits the creator's */
#else
    c->fpctl = 0;
#endif
}
#endif /* AArch64 */

/* >>ucontext fallback */
#ifdef CRT_CONTEXT_UCONTEXT
/* makecontext passes int arguments only: the context's address travels as
 * two 32-bit halves. */
static void crt__ctx_uc_entry(unsigned hi, unsigned lo) {
    crt__ctx *c = (crt__ctx *)(((uintptr_t)hi << 16 << 16) | (uintptr_t)lo);
    c->entry(c->arg);
    abort(); /* entry must never return */
}

CRT__INTERN void crt__ctx_make(crt__ctx *c, void *lo, size_t size, void (*entry)(void *), void *arg) {
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = lo;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    c->entry = entry;
    c->arg = arg;
    uintptr_t p = (uintptr_t)c;
    makecontext(&c->uc, (void (*)(void))crt__ctx_uc_entry, 2, (unsigned)(p >> 16 >> 16), (unsigned)(p & 0xffffffffu));
}
#endif

/* Records the stack a new context runs on (the sanitizers need it); call
 * before crt__ctx_make. */
static inline void crt__ctx_init(crt__ctx *c, void *lo, size_t size) {
#if CRT__ASAN || CRT__TSAN
    c->stack_lo = lo;
    c->stack_size = size;
    c->asan_fake_stack = NULL;
#else
    (void)c;
    (void)lo;
    (void)size;
#endif
#if CRT__TSAN
    c->tsan_fiber = __tsan_create_fiber(0);
#endif
}

/* The context of the running OS thread (a worker's scheduler loop). */
CRT__INTERN void crt__ctx_init_thread(crt__ctx *c, void *lo, size_t size) {
    c->sp = c->fp = NULL;
    c->ip = 0;
    c->fpctl = 0;
    c->entry = NULL;
    c->arg = NULL;
    crt__ctx_init(c, lo, size);
#if CRT__TSAN
    __tsan_destroy_fiber(c->tsan_fiber);
    c->tsan_fiber = __tsan_get_current_fiber();
#endif
}

/* Frees what the sanitizers keep for a context that will never run again. */
static inline void crt__ctx_release(crt__ctx *c) {
#if CRT__TSAN
    if (c->tsan_fiber) __tsan_destroy_fiber(c->tsan_fiber);
    c->tsan_fiber = NULL;
#else
    (void)c;
#endif
}

/* For a context that never finished (its runtime is freed while it is
 * still switched out): ASan's marks for the frames still on its stack go
 * too, or whatever is mapped at those addresses next inherits them (and a
 * frame of a later task there reads as an overflow). */
static inline void crt__ctx_abandon(crt__ctx *c) {
#if CRT__ASAN
    __asan_unpoison_memory_region(c->stack_lo, c->stack_size);
#endif
    crt__ctx_release(c);
}

/* Leaves `from` and resumes `to`; returns when something switches back to
 * `from`. `last` says that `from` will never be resumed (ASan then drops
 * its fake stack). Inlined at each call site, so each site resumes
 * through its own well-predicted jump. */
__attribute__((always_inline)) static inline void crt__ctx_switch(crt__ctx *from, crt__ctx *to, int last) {
#if CRT__ASAN
    __sanitizer_start_switch_fiber(last ? NULL : &from->asan_fake_stack, to->stack_lo, to->stack_size);
#else
    (void)last;
#endif
#if CRT__TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
#ifdef CRT_CONTEXT_UCONTEXT
    swapcontext(&from->uc, &to->uc);
#else
    CRT__CTX_JUMP(from, to);
#endif
#if CRT__ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake_stack, NULL, NULL);
#endif
}

/* The first thing a new context runs (before anything that could be
 * instrumented touches its stack): completes the switch for ASan. */
static inline void crt__ctx_entered(void) {
#if CRT__ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}

/* The switch as an ordinary function call: what the register tests
 * exercise at an ABI boundary. */
CRT__NOIPA CRT__UNUSED static void crt__ctx_switch_fn(crt__ctx *from, crt__ctx *to) {
    crt__ctx_switch(from, to, 0);
}

#endif /* CRT_IMPLEMENTATION */
