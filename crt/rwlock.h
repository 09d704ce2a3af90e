/* crt/rwlock.h — a readers-writer lock for tasks (and plain threads):
 * many readers at once, or one writer; fair, so writers never starve.
 *
 *   static crt_rwlock table_lock = CRT_RWLOCK_INIT;
 *   ...
 *   if (crt_rwlock_rdlock(&table_lock, CRT_FOREVER) == 0) {   // readers share
 *       lookup(key);
 *       crt_rwlock_rdunlock(&table_lock);
 *   }
 *   if (crt_rwlock_wrlock(&table_lock, crt_after(CRT_MS(50))) == 0) {
 *       insert(key, value);                                    // alone
 *       crt_rwlock_wrunlock(&table_lock);
 *   }
 *
 * A value type, all-zero when unlocked (CRT_RWLOCK_INIT); it allocates
 * nothing. Waiters queue in arrival order (tokio's RwLock): a queued
 * writer blocks every reader that arrives after it, even while other
 * readers hold the lock, so a stream of readers cannot starve a writer;
 * when a writer unlocks, the readers at the head of the queue get in
 * together, up to the next queued writer. Unlock hands the lock straight
 * to the waiters it admits. Uncontended, each lock and unlock is one
 * compare-and-swap. Not recursive: a reader asking again while a writer
 * waits deadlocks, as with any fair lock.
 *
 * No configuration macros.
 * Errors: -ETIMEDOUT, -EAGAIN (CRT_TRY), -ECANCELED (the task was aborted).
 * Misuse (asserted unless NDEBUG): rdunlock without a read lock, wrunlock
 * without the write lock, more than CRT_RWLOCK_MAX_READERS readers,
 * destroying a lock that is held or has waiters.
 */
#ifndef CRT_RWLOCK_H
#define CRT_RWLOCK_H
#include "base.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRT_RWLOCK_MAX_READERS ((1u << 29) - 1) /* readers holding it at once */

typedef struct crt_rwlock {
    uint32_t word;     /* atomic: readers << 3 | waiters queued (4) | writer (2) | queue lock (1) */
    uint32_t reserved;
    crt__waitq q;      /* waiting readers (node->n 0) and writers (1), FIFO */
} crt_rwlock;

/* A static initialiser for an unlocked rwlock (all zero). */
#define CRT_RWLOCK_INIT {0, 0, {0, 0}}

/* Initialises l unlocked (the same as CRT_RWLOCK_INIT). Anywhere. */
CRT_API void crt_rwlock_init(crt_rwlock *l);

/* Takes a read lock: shared with other readers, waiting while a writer
 * holds l or is queued before the caller.
 * Returns 0, -ETIMEDOUT, -EAGAIN (deadline CRT_TRY and it would wait),
 * -ECANCELED (the task was aborted; also when l was free), -EINVAL (l
 * NULL). On any error the caller holds nothing and has left the queue.
 * Task or plain thread. */
CRT_API int crt_rwlock_rdlock(crt_rwlock *l, crt_time deadline);

/* Drops a read lock; the last reader out hands l to a queued writer.
 * Without a read lock held this is misuse (asserted; ignored in release
 * builds). Never waits. Anywhere. */
CRT_API void crt_rwlock_rdunlock(crt_rwlock *l);

/* Takes the write lock: alone, waiting while anyone holds l or waits
 * before the caller.
 * Returns 0, -ETIMEDOUT, -EAGAIN (deadline CRT_TRY and it would wait),
 * -ECANCELED (the task was aborted; also when l was free), -EINVAL (l
 * NULL). On any error the caller holds nothing and has left the queue
 * (readers queued behind it may then get in). Task or plain thread. */
CRT_API int crt_rwlock_wrlock(crt_rwlock *l, crt_time deadline);

/* Drops the write lock, handing l to the next writer or to the readers at
 * the head of the queue. Without the write lock held this is misuse
 * (asserted; ignored in release builds). Never waits. Anywhere. */
CRT_API void crt_rwlock_wrunlock(crt_rwlock *l);

/* Ends l. It must be unlocked, with nobody waiting (asserted); nothing is
 * freed. Anywhere. */
CRT_API void crt_rwlock_destroy(crt_rwlock *l);

#ifdef __cplusplus
}
#endif

#endif /* CRT_RWLOCK_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__RWLOCK_IMPL)
#define CRT__RWLOCK_IMPL

/* word: bit 0 is the queue's spinlock (CRT__LOCKED), WRITER says a writer
 * holds it, WAITERS is set exactly while the queue is non-empty, and the
 * rest counts the readers holding it. After every change made under the
 * spinlock the head of the queue cannot be admitted (it waits for a reason),
 * so a newcomer that finds WAITERS queues behind it. The lock-free paths CAS
 * only from words without the spinlock bit or WAITERS. */
#define CRT__RW_WRITER 2u
#define CRT__RW_WAITERS 4u
#define CRT__RW_READER 8u /* one reader */

static inline uint32_t crt__rw_readers(uint32_t v) { return v / CRT__RW_READER; }

CRT_API void crt_rwlock_init(crt_rwlock *l) {
    if (!l) return;
    l->word = 0;
    l->reserved = 0;
    l->q.head = l->q.tail = NULL;
}

/* Admits the waiters at the head of the queue that can go in now — one
 * writer, or a run of readers up to the next writer; waiters whose claim
 * fails (timed out, aborted) are dropped. v is the word (without the
 * spinlock bit). Spinlock held; released here with the new word, then the
 * admitted are woken (l is not touched after the release: a woken task may
 * destroy it). */
CRT__INTERN void crt__rw_admit_unlock(crt_rwlock *l, uint32_t v) {
    crt__wait_node *chain = NULL, **tail = &chain;
    unsigned n = 0;
    while (l->q.head) {
        crt__wait_node *node = l->q.head;
        int writer = node->n != 0;
        if (v & CRT__RW_WRITER) break;
        if (writer && crt__rw_readers(v) != 0) break;
        if (!writer && crt__rw_readers(v) >= CRT_RWLOCK_MAX_READERS) {
            CRT_ASSERT(0, "crt_rwlock_rdlock: more than CRT_RWLOCK_MAX_READERS readers");
            break;
        }
        crt__waitq_remove(&l->q, node);
        if (crt__waiter_claim(node->waiter)) {
            v += writer ? CRT__RW_WRITER : CRT__RW_READER;
            node->waiter->result = 0;
            node->waiter->index = node->index;
            *tail = node;
            tail = &node->next;
            n++;
        }
    }
    *tail = NULL;
    if (l->q.head) v |= CRT__RW_WAITERS;
    else v &= ~CRT__RW_WAITERS;
    /* Release (in crt__lock_release_with): the previous holders' work
     * reaches the admitted, which read it after their wake (acq_rel). */
    crt__lock_release_with(&l->word, v);
    while (chain) {
        crt__wait_node *next = chain->next; /* read first: the wake ends the node */
        crt__waiter_wake_to(chain->waiter, n == 1);
        chain = next;
    }
}

/* Blocks the caller in l's queue. Spinlock held on entry (prev: the word
 * without its bit), released inside. Returns 0 once admitted, or the error
 * of its own deadline or abort after leaving the queue. */
CRT__INTERN int crt__rw_wait(crt_rwlock *l, uint32_t prev, int writer, crt_time deadline) {
    crt__waiter w;
    crt__wait_node node;
    crt__waiter_init_one(&w, &node, NULL, (size_t)writer);
    crt__waitq_push(&l->q, &node);
    crt__lock_release_with(&l->word, prev | CRT__RW_WAITERS);
    int r = crt__waiter_wait(&w, deadline);
    if (w.index >= 0) return 0; /* admitted by an unlock: we hold it */
    /* Our deadline or abort claimed first: nothing was handed to us. If we
     * were a writer at the head, readers behind us may go in now. */
    prev = crt__lock_acquire_set(&l->word, 0);
    crt__waitq_remove(&l->q, &node);
    crt__rw_admit_unlock(l, prev);
    return r;
}

CRT__NOINLINE CRT__INTERN int crt__rw_lock_slow(crt_rwlock *l, int writer, crt_time deadline) {
    uint32_t prev = crt__lock_acquire_set(&l->word, 0);
    int free_ = writer ? !(prev & (CRT__RW_WRITER | CRT__RW_WAITERS)) && crt__rw_readers(prev) == 0
                       : !(prev & (CRT__RW_WRITER | CRT__RW_WAITERS));
    if (free_ && !writer && crt__rw_readers(prev) >= CRT_RWLOCK_MAX_READERS) {
        CRT_ASSERT(0, "crt_rwlock_rdlock: more than CRT_RWLOCK_MAX_READERS readers");
        free_ = 0;
    }
    if (free_) {
        crt__lock_release_with(&l->word, prev + (writer ? CRT__RW_WRITER : CRT__RW_READER));
        return 0;
    }
    if (deadline == CRT_TRY) {
        crt__lock_release_with(&l->word, prev);
        return -EAGAIN;
    }
    return crt__rw_wait(l, prev, writer, deadline);
}

CRT_API int crt_rwlock_rdlock(crt_rwlock *l, crt_time deadline) {
    if (CRT__UNLIKELY(!l)) return -EINVAL;
    int r = crt__check_cancel();
    if (CRT__UNLIKELY(r < 0)) return r;
    /* Relaxed: only a guess for the CAS, which orders. */
    uint32_t v = crt__load(&l->word, CRT__RELAXED);
    while (!(v & (CRT__LOCKED | CRT__RW_WRITER | CRT__RW_WAITERS)) && crt__rw_readers(v) < CRT_RWLOCK_MAX_READERS) {
        /* Acquire: sees the last writer's work; pairs with the release CAS
         * in crt_rwlock_wrunlock() (or the spinlock's release). */
        if (crt__cas_weak(&l->word, &v, v + CRT__RW_READER, CRT__ACQUIRE, CRT__RELAXED)) return 0;
    }
    return crt__rw_lock_slow(l, 0, deadline);
}

CRT_API int crt_rwlock_wrlock(crt_rwlock *l, crt_time deadline) {
    if (CRT__UNLIKELY(!l)) return -EINVAL;
    int r = crt__check_cancel();
    if (CRT__UNLIKELY(r < 0)) return r;
    uint32_t v = 0;
    /* Acquire: sees the previous holders' work; pairs with the release
     * CASes of the unlocks (or the spinlock's release). */
    if (CRT__LIKELY(crt__cas(&l->word, &v, CRT__RW_WRITER, CRT__ACQUIRE, CRT__RELAXED))) return 0;
    return crt__rw_lock_slow(l, 1, deadline);
}

CRT_API void crt_rwlock_rdunlock(crt_rwlock *l) {
    if (CRT__UNLIKELY(!l)) return;
    /* Relaxed: only a guess for the CAS, which orders. */
    uint32_t v = crt__load(&l->word, CRT__RELAXED);
    while (!(v & (CRT__LOCKED | CRT__RW_WAITERS | CRT__RW_WRITER)) && crt__rw_readers(v) > 0) {
        /* Release: our reads happen before a later writer's writes; pairs
         * with the acquire CAS in crt_rwlock_wrlock(). */
        if (crt__cas_weak(&l->word, &v, v - CRT__RW_READER, CRT__RELEASE, CRT__RELAXED)) return;
    }
    uint32_t prev = crt__lock_acquire_set(&l->word, 0);
    int held = crt__rw_readers(prev) > 0 && !(prev & CRT__RW_WRITER);
    CRT_ASSERT(held, "crt_rwlock_rdunlock: the caller holds no read lock");
    if (CRT__UNLIKELY(!held)) {
        crt__lock_release_with(&l->word, prev);
        return;
    }
    crt__rw_admit_unlock(l, prev - CRT__RW_READER);
}

CRT_API void crt_rwlock_wrunlock(crt_rwlock *l) {
    if (CRT__UNLIKELY(!l)) return;
    uint32_t v = CRT__RW_WRITER;
    /* Release: publishes the writer's work; pairs with the acquire CASes of
     * the next lockers. */
    if (CRT__LIKELY(crt__cas(&l->word, &v, 0u, CRT__RELEASE, CRT__RELAXED))) return;
    uint32_t prev = crt__lock_acquire_set(&l->word, 0);
    CRT_ASSERT(prev & CRT__RW_WRITER, "crt_rwlock_wrunlock: the caller does not hold the write lock");
    if (CRT__UNLIKELY(!(prev & CRT__RW_WRITER))) {
        crt__lock_release_with(&l->word, prev);
        return;
    }
    crt__rw_admit_unlock(l, prev & ~CRT__RW_WRITER);
}

CRT_API void crt_rwlock_destroy(crt_rwlock *l) {
    if (!l) return;
    uint32_t prev = crt__lock_acquire_set(&l->word, 0);
    crt__lock_release_with(&l->word, prev);
    CRT_ASSERT(!(prev & CRT__RW_WAITERS), "crt_rwlock_destroy: tasks or threads are still waiting on the rwlock");
    CRT_ASSERT(!(prev & CRT__RW_WRITER) && crt__rw_readers(prev) == 0, "crt_rwlock_destroy: the rwlock is held");
    (void)prev;
}

#endif /* CRT_IMPLEMENTATION */
