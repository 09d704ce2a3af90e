/* crt/waiter.h — internal: the one way anything in crt waits.
 *
 * A *waiter* stands for one blocked caller — a parked task or a blocked
 * plain thread — for the length of one blocking call. Its wait word holds
 * an atomic claim bit: whoever completes the call (a sender, a timer, an
 * abort, one case of a select) first claims the waiter, then writes its
 * result, then wakes it. Claiming is what makes one waiter safe to hang on
 * several wait queues at once: the first claim wins, every later one fails
 * and leaves it alone. That is how select is exactly-once and how deadlines
 * and aborts race with completions without losing or doubling anything.
 *
 * A *wait node* is one entry of a waiter on one object's queue: it points to
 * its waiter and carries the operation's payload (the buffer to copy into,
 * the permits asked for, the select case index). Queues are intrusive FIFO
 * lists under the owning object's lock. A claimer unlinks the node, claims
 * the waiter while still holding the lock, and wakes it after unlocking;
 * the waiting side, once it returns, removes whatever nodes are still
 * linked. Nothing is freed while the other side may touch it because the
 * waiter cannot return before the winner's wake, and the winner touches
 * neither waiter nor node after it (the waiter's memory is reused at once).
 *
 * The lock is a small test-and-test-and-set spinlock: critical sections in
 * crt are a few pointer moves and never block. Its spare bits belong to the
 * object that embeds it (a channel keeps its "receivers are waiting" flag
 * there, so setting the flag and taking the lock is one atomic operation).
 */
#ifndef CRT_WAITER_H
#define CRT_WAITER_H
#include "base.h"

#define CRT__LOCKED 1u

/* Layout types embedded in public value types (crt_sem, crt_mutex, ...).
 * All-zero is an unlocked lock and an empty queue. */
typedef struct crt__wait_node {
    struct crt__wait_node *next, *prev; /* prev: stale at the head (crt__waitq_remove) */
    struct crt__waiter *waiter;
    void *ptr;        /* payload: buffer in or out */
    size_t n;         /* payload: a count (permits, ...) */
    int index;        /* the select case this node stands for */
    int linked;       /* on a queue; changed only under the queue's lock */
} crt__wait_node;

typedef struct crt__waitq {
    crt__wait_node *head, *tail;
} crt__waitq;

#endif /* CRT_WAITER_H */

#if defined(CRT_IMPLEMENTATION) && !defined(CRT__WAITER_IMPL)
#define CRT__WAITER_IMPL

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* >>lock */

/* Takes the lock and sets `bits` in the same atomic operation; returns the
 * word as it was just before (without CRT__LOCKED). */
CRT__INTERN uint32_t crt__lock_acquire_set(uint32_t *word, uint32_t bits) {
    unsigned spins = 0;
    for (;;) {
        /* Relaxed: only a hint for the CAS below, which carries the order. */
        uint32_t v = crt__load(word, CRT__RELAXED);
        if (!(v & CRT__LOCKED)) {
            /* Acquire: the critical section sees everything the previous
             * holder wrote; pairs with the release in crt__lock_release().
             * Seq_cst because primitives rely on this RMW as the full barrier
             * between publishing a waiter flag and re-checking their state. */
            if (crt__cas_weak(word, &v, v | CRT__LOCKED | bits, CRT__SEQ_CST, CRT__RELAXED)) return v;
            continue;
        }
        if (++spins < 64) {
            crt__cpu_relax();
        } else {
            spins = 0;
            sched_yield(); /* the holder was preempted: let it run */
        }
    }
}

static inline void crt__lock_acquire(uint32_t *word) { (void)crt__lock_acquire_set(word, 0); }

/* Releases the lock; the other bits become `bits`. Only the holder writes
 * the word, so a plain store suffices. */
static inline void crt__lock_release_with(uint32_t *word, uint32_t bits) {
    /* Release: publishes the critical section; pairs with the acquire in
     * crt__lock_acquire_set(). */
    crt__store(word, bits & ~CRT__LOCKED, CRT__RELEASE);
}

static inline void crt__lock_release(uint32_t *word) {
    /* Relaxed: we hold the lock, nobody else writes the word. */
    crt__lock_release_with(word, crt__load(word, CRT__RELAXED));
}

/* >>wait queue (caller holds the owning object's lock) */

static inline int crt__waitq_empty(const crt__waitq *q) { return q->head == NULL; }

CRT__INTERN void crt__waitq_push(crt__waitq *q, crt__wait_node *n) {
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail) q->tail->next = n;
    else q->head = n;
    q->tail = n;
    n->linked = 1;
}

/* A node lives in its waiter's frame, on a parked task's stack, and in a
 * long queue that line has gone cold by the time the node reaches the
 * head (a mutex convoy hands over to a new head at every unlock). So
 * taking the head off does not write the next node; it only starts
 * fetching it, for the hand-off that will take it. The head's prev is
 * therefore stale. Nothing reads it: a removal tells the head by q->head,
 * and every other node's prev is exact. */
CRT__INTERN void crt__waitq_remove(crt__waitq *q, crt__wait_node *n) {
    if (!n->linked) return;
    crt__wait_node *next = n->next;
    if (q->head == n) {
        q->head = next;
        if (next) __builtin_prefetch(next, 1);
        else q->tail = NULL;
    } else {
        n->prev->next = next;
        if (next) next->prev = n->prev;
        else q->tail = n->prev;
    }
    n->next = n->prev = NULL;
    n->linked = 0;
}

/* >>futex */
CRT__INTERN int crt__futex_wait_raw(uint32_t *addr, uint32_t expected, crt_time deadline) {
    struct timespec ts, *tp = NULL;
    if (deadline != CRT_FOREVER) {
        ts.tv_sec = (time_t)(deadline / 1000000000);
        ts.tv_nsec = (long)(deadline % 1000000000);
        tp = &ts;
    }
    /* A plain thread's errno is its own (no task migrates under it): keep
     * the caller's, as every blocking call does. */
    int saved = errno;
    /* Absolute CLOCK_MONOTONIC deadline: FUTEX_WAIT_BITSET takes one. */
    long r = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, tp, NULL, FUTEX_BITSET_MATCH_ANY);
    int res = r == 0 ? 0 : -errno;
    errno = saved;
    return res;
}

#if defined(__SANITIZE_THREAD__)
#define CRT__FUTEX_SLICED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CRT__FUTEX_SLICED 1
#endif
#endif

/* Under TSan only: TSan holds back an asynchronous signal that arrives in a
 * thread sleeping in a raw system call until that thread's next
 * intercepted call, and the kernel likes to deliver kill()'s signals to a
 * thread asleep right here (the main thread in crt_run), so a handler —
 * crt_signal_wait's — would never run. So sleep in slices of 20 ms, each
 * ending in an intercepted call (clock_gettime) that runs pending handlers.
 * Callers treat an early 0 as a spurious wake-up, as they must anyway. */
CRT__INTERN int crt__futex_wait(uint32_t *addr, uint32_t expected, crt_time deadline) {
#ifdef CRT__FUTEX_SLICED
    crt_time now = crt__mono_now();
    if (deadline != CRT_FOREVER && now >= deadline) return -ETIMEDOUT;
    crt_time slice = now + CRT_MS(20);
    if (deadline != CRT_FOREVER && deadline < slice) slice = deadline;
    int r = crt__futex_wait_raw(addr, expected, slice);
    if (r == -ETIMEDOUT && slice != deadline) r = 0;
    (void)crt__mono_now(); /* the intercepted call */
    return r;
#else
    return crt__futex_wait_raw(addr, expected, deadline);
#endif
}

CRT__INTERN void crt__futex_wake(uint32_t *addr, int n) {
    int saved = errno; /* a failure here is no news to the caller */
    syscall(SYS_futex, addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
    errno = saved;
}

/* >>timer: a deadline armed in a worker's timing wheel (crt/wheel.h) */
typedef struct crt__timer {
    struct crt__timers *timers;     /* the worker's timers it is armed in; NULL when not armed */
    uint32_t cell;                  /* its cell in that wheel */
} crt__timer;

/* >>waiter */

/* The wait word. For a plain thread it is the waiter's `park` (its futex);
 * for a task it is the task's park word, with the number of the wait above
 * these bits (so an abort's poke cannot reach a later wait). The claim is
 * a bit of the same word, so a winner that finds a task parked claims it
 * and wakes it with one atomic operation and one plain store: once the bit
 * is set nobody else writes the word (see crt__waiter_claim). */
enum {
    CRT__WAITING = 0,   /* blocked call in progress, not switched out yet */
    CRT__PARKED = 1,    /* switched out / sleeping on the futex */
    CRT__NOTIFIED = 2,  /* the winner's wake arrived (also: not in a wait) */
    CRT__POKED = 3      /* tasks only: an abort asks it to look at itself */
};
#define CRT__PARK_STATE 3u   /* the bits above */
#define CRT__CLAIMED 4u      /* a winner owns the result (set once per wait) */
#define CRT__PARK_GEN_SHIFT 3

typedef struct crt__waiter {
    uint32_t park;            /* plain thread: the wait word (futex) */
    uint32_t claimed_as;      /* the state the winning claim found (for its wake) */
    int result;               /* written by the winner before its wake */
    int index;                /* the node (select case) that won */
    struct crt_task *task;    /* NULL: a plain thread */
    uint64_t gen;             /* task: the number of this wait */
    crt__timer timer;         /* task with a deadline: its wheel entry */
} crt__waiter;

/* Claiming (crt__waiter_claim) needs the task record: crt/runtime.h. */

#endif /* CRT_IMPLEMENTATION */
