/* crt/mutex.h — a mutex for tasks (and plain threads): a task that waits
 * for it parks, and its worker runs other tasks meanwhile.
 *
 *   static crt_mutex lock = CRT_MUTEX_INIT;    // or crt_mutex_init(&lock)
 *   static long counter;
 *   ...
 *   if (crt_mutex_lock(&lock, CRT_FOREVER) == 0) {
 *       counter++;
 *       crt_mutex_unlock(&lock);
 *   }
 *
 * A value type, all-zero when unlocked: CRT_MUTEX_INIT initialises one
 * statically; it allocates nothing. Uncontended, lock and unlock are one
 * compare-and-swap each, with no system call and no lock of their own.
 * Under contention it is fair: waiters queue in arrival order and unlock
 * hands the mutex straight to the first of them (it stays locked across
 * the hand-off, so a newcomer cannot barge in and starve a waiter); the
 * new owner runs next on the unlocker's worker. It is not recursive, and
 * a task may hold it across blocking calls (it is not a spinlock).
 *
 * No configuration macros.
 * Errors: -ETIMEDOUT, -EAGAIN (CRT_TRY), -ECANCELED (the task was aborted).
 * Misuse (asserted unless NDEBUG): unlocking a mutex that is not locked,
 * destroying one that is locked or has waiters.
 */
#ifndef CRT_MUTEX_H
#define CRT_MUTEX_H
#include "base.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crt_mutex {
    uint32_t word;     /* atomic: queue lock (1) | locked (2) | waiters queued (4) */
    uint32_t reserved;
    crt__waitq q;      /* waiting lockers, FIFO */
} crt_mutex;

/* A static initialiser for an unlocked mutex (all zero). */
#define CRT_MUTEX_INIT {0, 0, {0, 0}}

/* Initialises m unlocked (the same as CRT_MUTEX_INIT). Anywhere. */
CRT_API void crt_mutex_init(crt_mutex *m);

/* Locks m, waiting in arrival order while another holds it.
 * Returns 0 (the caller holds m), -ETIMEDOUT, -EAGAIN (deadline CRT_TRY and
 * m is held or has waiters), -ECANCELED (the task was aborted; also when m
 * was free), -EINVAL (m NULL). On any error the caller does not hold m and
 * has left the queue. Task or plain thread; the holder is whoever locked
 * it, and any task or thread may unlock it. */
CRT_API int crt_mutex_lock(crt_mutex *m, crt_time deadline);

/* Unlocks m, handing it to the first waiter if there is one. Never waits.
 * Unlocking a mutex that is not locked is misuse (asserted; ignored in
 * release builds). Anywhere. */
CRT_API void crt_mutex_unlock(crt_mutex *m);

/* Ends m. It must be unlocked, with nobody waiting (asserted); nothing is
 * freed. Anywhere. */
CRT_API void crt_mutex_destroy(crt_mutex *m);

#ifdef __cplusplus
}
#endif

#endif /* CRT_MUTEX_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__MUTEX_IMPL)
#define CRT__MUTEX_IMPL

/* word: bit 0 is the queue's spinlock (CRT__LOCKED); HELD says the mutex is
 * locked; WAITERS is set exactly while the queue is non-empty. Queued
 * waiters imply HELD: an unlock with waiters passes ownership on without
 * clearing it. The lock-free paths CAS only between 0 and HELD, so they
 * never touch the word while the queue's lock is taken. */
#define CRT__MUTEX_HELD 2u
#define CRT__MUTEX_WAITERS 4u

CRT_API void crt_mutex_init(crt_mutex *m) {
    if (!m) return;
    m->word = 0;
    m->reserved = 0;
    m->q.head = m->q.tail = NULL;
}

CRT__NOINLINE CRT__INTERN int crt__mutex_lock_slow(crt_mutex *m, crt_time deadline) {
    crt__waiter w;
    crt__wait_node node;
    /* Outside the spinlock, to keep its hold short under contention. */
    if (deadline != CRT_TRY) crt__waiter_init(&w);
    uint32_t prev = crt__lock_acquire_set(&m->word, 0);
    if (!(prev & CRT__MUTEX_HELD)) {
        /* Freed meanwhile; with no waiters then (they imply HELD): ours. */
        crt__lock_release_with(&m->word, prev | CRT__MUTEX_HELD);
        if (deadline != CRT_TRY) crt__waiter_withdraw(&w);
        return 0;
    }
    if (deadline == CRT_TRY) {
        crt__lock_release_with(&m->word, prev);
        return -EAGAIN;
    }
    crt__wait_node_init(&node, &w, NULL, 0);
    crt__waitq_push(&m->q, &node);
    crt__lock_release_with(&m->word, CRT__MUTEX_HELD | CRT__MUTEX_WAITERS);
    int r = crt__waiter_wait(&w, deadline);
    if (w.index >= 0) return 0; /* handed over: we hold it */
    /* Our deadline or abort claimed the waiter first, so no unlock handed
     * us the mutex (an unlocker that lost the claim passed it on). */
    prev = crt__lock_acquire_set(&m->word, 0);
    crt__waitq_remove(&m->q, &node);
    crt__lock_release_with(&m->word, m->q.head ? prev : (prev & ~CRT__MUTEX_WAITERS));
    return r;
}

CRT_API int crt_mutex_lock(crt_mutex *m, crt_time deadline) {
    if (CRT__UNLIKELY(!m)) return -EINVAL;
    int r = crt__check_cancel();
    if (CRT__UNLIKELY(r < 0)) return r;
    /* Relaxed: a look before the CAS, so a locker that will queue anyway
     * (a convoy: every lock a hand-off) spends no failed locked operation. */
    uint32_t v = crt__load(&m->word, CRT__RELAXED);
    /* Acquire: the critical section sees what the previous holder did;
     * pairs with the release CAS in crt_mutex_unlock() (or the release of
     * the queue lock after a hand-off). */
    if (CRT__LIKELY(v == 0) && crt__cas(&m->word, &v, CRT__MUTEX_HELD, CRT__ACQUIRE, CRT__RELAXED)) return 0;
    return crt__mutex_lock_slow(m, deadline);
}

CRT__NOINLINE CRT__INTERN void crt__mutex_unlock_slow(crt_mutex *m) {
    uint32_t prev = crt__lock_acquire_set(&m->word, 0);
    CRT_ASSERT(prev & CRT__MUTEX_HELD, "crt_mutex_unlock: the mutex is not locked");
    if (CRT__UNLIKELY(!(prev & CRT__MUTEX_HELD))) {
        crt__lock_release_with(&m->word, prev);
        return;
    }
    crt__waiter *next = NULL;
    while (m->q.head) {
        crt__wait_node *node = m->q.head;
        crt__waitq_remove(&m->q, node);
        /* A waiter that timed out or was aborted first is skipped: it
         * returns its error and the mutex goes to the next one. */
        if (crt__waiter_claim(node->waiter)) {
            next = node->waiter;
            next->result = 0;
            next->index = node->index;
            break;
        }
    }
    /* Release (in crt__lock_release_with): our critical section is visible
     * to the new owner, which reads it after its wake (acq_rel). */
    if (next) crt__lock_release_with(&m->word, CRT__MUTEX_HELD | (m->q.head ? CRT__MUTEX_WAITERS : 0u));
    else crt__lock_release_with(&m->word, 0);
    /* The new owner runs next here: it has the mutex and the line is warm. */
    if (next) crt__waiter_wake_to(next, 1);
}

CRT_API void crt_mutex_unlock(crt_mutex *m) {
    if (CRT__UNLIKELY(!m)) return;
    /* Relaxed: a look first, as in crt_mutex_lock: with waiters queued
     * the CAS would fail. */
    uint32_t v = crt__load(&m->word, CRT__RELAXED);
    /* Release: publishes the critical section to the next locker; pairs
     * with the acquire CAS in crt_mutex_lock(). */
    if (CRT__LIKELY(v == CRT__MUTEX_HELD) && crt__cas(&m->word, &v, 0u, CRT__RELEASE, CRT__RELAXED)) return;
    crt__mutex_unlock_slow(m);
}

CRT_API void crt_mutex_destroy(crt_mutex *m) {
    if (!m) return;
    uint32_t prev = crt__lock_acquire_set(&m->word, 0);
    crt__lock_release_with(&m->word, prev);
    CRT_ASSERT(!(prev & CRT__MUTEX_WAITERS), "crt_mutex_destroy: tasks or threads are still waiting on the mutex");
    CRT_ASSERT(!(prev & CRT__MUTEX_HELD), "crt_mutex_destroy: the mutex is locked");
    (void)prev;
}

#endif /* CRT_IMPLEMENTATION */
