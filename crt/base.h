/* crt/base.h — what every component of crt stands on: the hooks, the error
 * codes, time, and the atomic wrappers.
 *
 * Always included (through crt.h or any component header); never selected.
 *
 *   crt_time d = CRT_MS(250);            // durations and deadlines are ns
 *   int rc = crt_sleep_until(crt_after(d));
 *   if (rc < 0) fprintf(stderr, "%s\n", crt_strerror(rc));
 *
 * Hooks (define before the first include, identically in every TU):
 *   CRT_API               decoration of every public declaration (default: extern)
 *   CRT_MALLOC, CRT_FREE  allocator (default: malloc/free); define both or neither
 *   CRT_ASSERT(c, msg)    misuse check (default: print msg and abort unless NDEBUG)
 *
 * Errors are negative errno values (liburing's convention), never left in
 * errno by a blocking call: a task may resume on another thread.
 *   -ETIMEDOUT  the deadline passed          -EAGAIN     CRT_TRY and it would wait
 *   -ECANCELED  the calling task was aborted -EPIPE      the object is closed
 *   -EOVERFLOW  a broadcast receiver lagged  -ENOMEM, -EINVAL  as usual
 */
#ifndef CRT_BASE_H
#define CRT_BASE_H

/* The implementation uses a few GNU extensions of glibc (accept4, pipe2,
 * pthread_getattr_np, POLLRDHUP). Defined here they take effect only if no
 * system header came first; if one did, the files that use them declare
 * what the headers then left out (see __USE_GNU below them). */
#if !defined(_GNU_SOURCE) && defined(CRT_IMPLEMENTATION)
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifndef CRT_API
#define CRT_API extern
#endif

#if defined(CRT_MALLOC) != defined(CRT_FREE)
#error "crt: define both CRT_MALLOC and CRT_FREE, or neither"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* >>time ---------------------------------------------------------------- */

/* Nanoseconds of a monotonic clock (durations and absolute deadlines). */
typedef int64_t crt_time;

#define CRT_FOREVER ((crt_time)INT64_MAX) /* deadline: wait as long as it takes */
#define CRT_TRY ((crt_time)0)             /* deadline: never wait (-EAGAIN) */
#define CRT_NS(x) ((crt_time)(x))
#define CRT_US(x) ((crt_time)(x) * 1000)
#define CRT_MS(x) ((crt_time)(x) * 1000000)
#define CRT_SEC(x) ((crt_time)(x) * 1000000000)

/* Reads the clock. Inside a task this is its runtime's clock, which stands
 * still while paused (crt_time_pause); elsewhere CLOCK_MONOTONIC.
 * Task or plain thread. */
CRT_API crt_time crt_now(void);

/* crt_now() + duration, saturating at CRT_FOREVER and never below 1, so the
 * result is a deadline and never CRT_TRY. Task or plain thread. */
CRT_API crt_time crt_after(crt_time duration);

/* >>errors -------------------------------------------------------------- */

/* Names a negative errno returned by crt ("deadline passed", ...), and any
 * other errno a system call passed through (libc's name); also accepts
 * positive values. Never NULL. Task or plain thread. */
CRT_API const char *crt_strerror(int err);

/* >>errno ----------------------------------------------------------------
 * A task may resume on another thread after any blocking call, and glibc
 * declares __errno_location() const, so compilers reuse the previous
 * thread's errno address after the call. crt saves and restores errno per
 * task at every switch; for user code to read its own, every TU that
 * includes crt routes errno through this accessor, which the compiler must
 * call afresh each time. Define CRT_NO_ERRNO_WRAP to keep glibc's errno
 * (then read errno only right after the call that set it, before any
 * blocking call). */
/* The calling thread's errno, looked up afresh at every call (which is the
 * point: see above); what the errno macro reads through in crt's TUs.
 * Anywhere. */
CRT_API int *crt_errno_location(void);
#if !defined(CRT_NO_ERRNO_WRAP) && defined(errno)
#undef errno
#define errno (*crt_errno_location())
#endif

#ifdef __cplusplus
}
#endif

/* >>internal hooks (crt__ names are not part of the API) ----------------- */

#ifndef CRT_MALLOC
#include <stdlib.h>
#define CRT_MALLOC(size) malloc(size)
#define CRT_FREE(ptr) free(ptr)
#endif

#ifndef CRT_ASSERT
#ifdef NDEBUG
#define CRT_ASSERT(cond, msg) ((void)0)
#else
#define CRT_ASSERT(cond, msg) ((cond) ? (void)0 : crt__assert_fail(msg, __FILE__, __LINE__))
#endif
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CRT__LIKELY(x) __builtin_expect(!!(x), 1)
#define CRT__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CRT__NOINLINE __attribute__((noinline))
#define CRT__HOT_INLINE __attribute__((always_inline)) inline
#if defined(__clang__)
#define CRT__OPAQUE __attribute__((noinline)) /* clang never clones */
#else
#define CRT__OPAQUE __attribute__((noinline, noclone))
#endif
/* For every function whose body can switch to another task and come back
 * (crt_yield, the waiter's wait, the worker loop). gcc's interprocedural
 * analysis assumes an inline asm calls nothing, so it would conclude that
 * such a function cannot change a static variable written only by a task
 * function (reached through a pointer) — and keep a stale copy across a
 * crt_yield in the implementation TU. noipa makes callers treat it as
 * unknown code. (clang does not make that assumption.) */
#if defined(__clang__)
#define CRT__NOIPA __attribute__((noinline))
#else
#define CRT__NOIPA __attribute__((noinline, noipa))
#endif
#define CRT__UNUSED __attribute__((unused))
#define CRT__ALIGNED(n) __attribute__((aligned(n)))
#else
#error "crt: needs gcc or clang (inline assembly and __atomic builtins)"
#endif

/* Internal functions are file-local to the implementation TU: every
 * component's implementation lives in that one TU, and a TU that selects
 * few components must not warn about helpers it does not use. */
#define CRT__INTERN static CRT__UNUSED

#define CRT__CACHELINE 64

#ifdef __cplusplus
extern "C" {
#endif
CRT_API void crt__assert_fail(const char *msg, const char *file, int line);
#ifdef __cplusplus
}
#endif

/* >>atomics --------------------------------------------------------------
 * Every atomic access in crt goes through these, so a model checker or a
 * sanitizer shim can replace them in one place (ck's ck_pr_*, tokio's loom).
 * The order is spelled at each call site, with a comment saying why it is
 * enough. They work on plain integer and pointer lvalues, in C and C++. */
#define CRT__RELAXED __ATOMIC_RELAXED
#define CRT__ACQUIRE __ATOMIC_ACQUIRE
#define CRT__RELEASE __ATOMIC_RELEASE
#define CRT__ACQ_REL __ATOMIC_ACQ_REL
#define CRT__SEQ_CST __ATOMIC_SEQ_CST

#define crt__load(p, mo) __atomic_load_n((p), mo)
#define crt__store(p, v, mo) __atomic_store_n((p), (v), mo)
#define crt__xchg(p, v, mo) __atomic_exchange_n((p), (v), mo)
#define crt__fetch_add(p, v, mo) __atomic_fetch_add((p), (v), mo)
#define crt__fetch_sub(p, v, mo) __atomic_fetch_sub((p), (v), mo)
#define crt__fetch_or(p, v, mo) __atomic_fetch_or((p), (v), mo)
#define crt__fetch_and(p, v, mo) __atomic_fetch_and((p), (v), mo)
/* Strong compare-exchange; on failure *expected receives the current value. */
#define crt__cas(p, expected, desired, mo_ok, mo_fail) \
    __atomic_compare_exchange_n((p), (expected), (desired), 0, mo_ok, mo_fail)
#define crt__cas_weak(p, expected, desired, mo_ok, mo_fail) \
    __atomic_compare_exchange_n((p), (expected), (desired), 1, mo_ok, mo_fail)
#define crt__fence(mo) __atomic_thread_fence(mo)
/* Keeps the compiler from caching memory across this point. */
#define crt__compiler_barrier() __asm__ __volatile__("" ::: "memory")

#if defined(__x86_64__) || defined(__i386__)
#define crt__cpu_relax() __asm__ __volatile__("pause")
#elif defined(__aarch64__)
#define crt__cpu_relax() __asm__ __volatile__("yield")
#else
#define crt__cpu_relax() ((void)0)
#endif

#endif /* CRT_BASE_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__BASE_IMPL)
#define CRT__BASE_IMPL

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

CRT__OPAQUE CRT_API int *crt_errno_location(void) {
    int *p = __errno_location();
    crt__compiler_barrier();
    return p;
}

/* A blocking call that makes system calls keeps the caller's errno: read
 * it on the way in, put it back on the way out. Through the opaque
 * accessor both times, since a task may come back on another thread. */
static inline int crt__errno_save(void) { return *crt_errno_location(); }
static inline void crt__errno_restore(int saved) { *crt_errno_location() = saved; }

CRT_API void crt__assert_fail(const char *msg, const char *file, int line) {
    fprintf(stderr, "crt: %s (%s:%d)\n", msg, file, line);
    fflush(stderr);
    abort();
}

/* One list, so the names and the codes cannot drift apart. */
#define CRT__ERRORS(X)                                        \
    X(ETIMEDOUT, "deadline passed")                           \
    X(EAGAIN, "would wait (deadline was CRT_TRY)")            \
    X(ECANCELED, "task aborted")                              \
    X(EPIPE, "closed")                                        \
    X(EOVERFLOW, "receiver lagged; values were skipped")      \
    X(ENOMEM, "out of memory")                                \
    X(EINVAL, "invalid argument")                             \
    X(EPERM, "not allowed here")                              \
    X(ECONNREFUSED, "connection refused")                     \
    X(ECONNRESET, "connection reset by peer")                 \
    X(EADDRINUSE, "address in use")                           \
    X(EADDRNOTAVAIL, "address not available")                 \
    X(EHOSTUNREACH, "host unreachable")                       \
    X(ENETUNREACH, "network unreachable")                     \
    X(ENOTCONN, "not connected")                              \
    X(EMSGSIZE, "message too long")                           \
    X(ENOTSOCK, "not a socket")                               \
    X(EMFILE, "too many open files")                          \
    X(ENFILE, "too many open files in the system")            \
    X(ENOENT, "no such file or directory")                    \
    X(EACCES, "permission denied")                            \
    X(EBADF, "bad file descriptor")                           \
    X(EBUSY, "busy")

CRT_API const char *crt_strerror(int err) {
    if (err < 0) err = -err;
    switch (err) {
    case 0: return "success";
#define CRT__ERROR_CASE(code, text) \
    case code: return text;
        CRT__ERRORS(CRT__ERROR_CASE)
#undef CRT__ERROR_CASE
    default: break;
    }
    /* Anything else a system call passed through: libc names it (its
     * strings for known codes are constants, fine from any thread). */
    return err < 4096 ? strerror(err) : "unknown error";
}

/* The raw monotonic clock, in ns. */
CRT__INTERN crt_time crt__mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (crt_time)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

CRT__INTERN crt_time crt__add_saturating(crt_time a, crt_time b) {
    if (b > 0 && a > CRT_FOREVER - b) return CRT_FOREVER;
    if (b < 0 && a < INT64_MIN - b) return 1;
    crt_time r = a + b;
    return r < 1 ? 1 : r;
}

#endif /* CRT_IMPLEMENTATION */
