/* crt/notify.h — wake one waiter or all of them, without data (tokio's
 * Notify): the event a task parks on until something changes.
 *
 *   static crt_notify changed;                 // crt_notify_init(&changed)
 *   ... consumer:
 *   while (!ready(&state)) crt_notify_wait(&changed, CRT_FOREVER);
 *   ... producer:
 *   make_ready(&state);
 *   crt_notify_one(&changed);                  // or crt_notify_all
 *
 * A value type, all-zero when fresh (CRT_NOTIFY_INIT); it allocates
 * nothing. crt_notify_one wakes the longest-waiting waiter or, if nobody
 * waits, stores one permit that the next crt_notify_wait consumes at once
 * (so a notify that comes just before the wait is not lost); permits do
 * not add up: there is at most one. crt_notify_all wakes every waiter
 * queued at the moment of the call — not later arrivals — and stores
 * nothing. A waiter that times out or is aborted as a notify_one picks it
 * does not swallow it: the notify goes to the next waiter or is stored.
 *
 * CRT_CASE_NOTIFY(n) waits for a notification inside crt_select
 * (crt/select.h); a select that picks another case consumes none.
 *
 * No configuration macros.
 * Errors: -ETIMEDOUT, -EAGAIN (CRT_TRY), -ECANCELED (the task was aborted).
 * Misuse (asserted unless NDEBUG): destroying a notify with waiters.
 */
#ifndef CRT_NOTIFY_H
#define CRT_NOTIFY_H
#include "base.h"
#include "case.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crt_notify {
    uint32_t word;     /* atomic: queue lock (1) | permit stored (2) | waiters queued (4) */
    uint32_t reserved;
    crt__waitq q;      /* waiters, FIFO */
} crt_notify;

/* A static initialiser (all zero): no permit, nobody waiting. */
#define CRT_NOTIFY_INIT {0, 0, {0, 0}}

/* Initialises n with no permit (the same as CRT_NOTIFY_INIT). Anywhere. */
CRT_API void crt_notify_init(crt_notify *n);

/* Waits for a notification: consumes the stored permit at once if there is
 * one, else waits for crt_notify_one or crt_notify_all.
 * Returns 0, -ETIMEDOUT, -EAGAIN (deadline CRT_TRY and no permit),
 * -ECANCELED (the task was aborted; a stored permit is left alone),
 * -EINVAL (n NULL). On an error no notification was consumed.
 * Task or plain thread. */
CRT_API int crt_notify_wait(crt_notify *n, crt_time deadline);

/* Wakes the first waiter; with nobody waiting, stores the permit (if one
 * is stored already, nothing changes). Never waits. Anywhere. */
CRT_API void crt_notify_one(crt_notify *n);

/* Wakes every waiter queued now; stores no permit. Never waits. Anywhere. */
CRT_API void crt_notify_all(crt_notify *n);

/* Ends n. Nobody may be waiting (asserted); nothing is freed. Anywhere. */
CRT_API void crt_notify_destroy(crt_notify *n);

/* Case for crt_select: a notification of n (result 0 when it completes). */
#define CRT_CASE_NOTIFY(n) crt__case_make(&crt__case_ops_notify, (void *)(n), NULL, 0)
CRT_API const crt__case_ops crt__case_ops_notify;

#ifdef __cplusplus
}
#endif

#endif /* CRT_NOTIFY_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__NOTIFY_IMPL)
#define CRT__NOTIFY_IMPL

/* word: bit 0 is the queue's spinlock (CRT__LOCKED); PERMIT is the stored
 * notification; WAITERS is set exactly while the queue is non-empty (a
 * permit and waiters never coexist). The lock-free paths CAS only from
 * words without the spinlock bit and WAITERS. */
#define CRT__NOTIFY_PERMIT 2u
#define CRT__NOTIFY_WAITERS 4u

CRT_API void crt_notify_init(crt_notify *n) {
    if (!n) return;
    n->word = 0;
    n->reserved = 0;
    n->q.head = n->q.tail = NULL;
}

/* Takes the stored permit without the lock, if that is all it takes. */
static inline int crt__notify_take_fast(crt_notify *n) {
    uint32_t v = CRT__NOTIFY_PERMIT;
    /* Acquire: the notifier's work is visible to the woken; pairs with the
     * release CAS in crt_notify_one() (or its spinlock release). */
    return crt__cas(&n->word, &v, 0u, CRT__ACQUIRE, CRT__RELAXED);
}

/* The word after the queue lost a node: WAITERS only while non-empty. */
static inline uint32_t crt__notify_word(crt_notify *n, uint32_t prev) {
    return n->q.head ? (prev | CRT__NOTIFY_WAITERS) : (prev & ~CRT__NOTIFY_WAITERS);
}

/* Kept out of crt_notify_wait and small: a task parked here holds this
 * frame, and a parked task should fit in one page of stack. */
CRT__NOINLINE CRT__INTERN int crt__notify_wait_slow(crt_notify *n, crt_time deadline) {
    crt__waiter w;
    crt__wait_node node;
    uint32_t prev = crt__lock_acquire_set(&n->word, 0);
    if (prev & CRT__NOTIFY_PERMIT) {
        crt__lock_release_with(&n->word, prev & ~CRT__NOTIFY_PERMIT);
        return 0;
    }
    if (deadline == CRT_TRY) {
        crt__lock_release_with(&n->word, prev);
        return -EAGAIN;
    }
    crt__waiter_init_one(&w, &node, NULL, 0);
    crt__waitq_push(&n->q, &node);
    crt__lock_release_with(&n->word, prev | CRT__NOTIFY_WAITERS);
    int r = crt__waiter_wait(&w, deadline);
    if (w.index >= 0) return 0; /* a notify picked us */
    /* Our deadline or abort claimed first: no notification was ours (a
     * notify_one that lost the claim went on to the next waiter). */
    prev = crt__lock_acquire_set(&n->word, 0);
    crt__waitq_remove(&n->q, &node);
    crt__lock_release_with(&n->word, crt__notify_word(n, prev));
    return r;
}

CRT_API int crt_notify_wait(crt_notify *n, crt_time deadline) {
    if (!n) return -EINVAL;
    int r = crt__check_cancel();
    if (r < 0) return r;
    if (crt__notify_take_fast(n)) return 0;
    return crt__notify_wait_slow(n, deadline);
}

CRT_API void crt_notify_one(crt_notify *n) {
    if (!n) return;
    /* Relaxed: only a guess for the CAS, which orders. */
    uint32_t v = crt__load(&n->word, CRT__RELAXED);
    while (!(v & (CRT__LOCKED | CRT__NOTIFY_WAITERS))) {
        if (v & CRT__NOTIFY_PERMIT) return; /* at most one permit */
        /* Release: publishes the notifier's work to whoever takes the
         * permit; pairs with the acquire CAS in crt__notify_take_fast(). */
        if (crt__cas_weak(&n->word, &v, v | CRT__NOTIFY_PERMIT, CRT__RELEASE, CRT__RELAXED)) return;
    }
    uint32_t prev = crt__lock_acquire_set(&n->word, 0);
    crt__waiter *won = NULL;
    while (n->q.head) {
        crt__wait_node *node = n->q.head;
        crt__waitq_remove(&n->q, node);
        if (crt__waiter_claim(node->waiter)) {
            won = node->waiter;
            won->result = 0;
            won->index = node->index;
            break;
        }
    }
    /* Release (in crt__lock_release_with): pairs with the acquire of the
     * woken (its wake) or of the permit's taker. */
    crt__lock_release_with(&n->word, crt__notify_word(n, won ? prev : (prev | CRT__NOTIFY_PERMIT)));
    if (won) crt__waiter_wake_to(won, 1);
}

CRT_API void crt_notify_all(crt_notify *n) {
    if (!n) return;
    crt__wait_node *chain = NULL, **tail = &chain;
    uint32_t prev = crt__lock_acquire_set(&n->word, 0);
    /* Every waiter queued now, in one hold of the lock: later arrivals
     * queue after it and are not woken. */
    while (n->q.head) {
        crt__wait_node *node = n->q.head;
        crt__waitq_remove(&n->q, node);
        if (crt__waiter_claim(node->waiter)) {
            node->waiter->result = 0;
            node->waiter->index = node->index;
            *tail = node;
            tail = &node->next;
        }
    }
    *tail = NULL;
    crt__lock_release_with(&n->word, prev & ~CRT__NOTIFY_WAITERS);
    /* n is not touched from here on: a woken task may destroy it. */
    while (chain) {
        crt__wait_node *next = chain->next; /* read first: the wake ends the node */
        crt__waiter_wake_to(chain->waiter, 0);
        chain = next;
    }
}

CRT_API void crt_notify_destroy(crt_notify *n) {
    if (!n) return;
    uint32_t prev = crt__lock_acquire_set(&n->word, 0);
    crt__lock_release_with(&n->word, prev);
    CRT_ASSERT(!(prev & CRT__NOTIFY_WAITERS), "crt_notify_destroy: tasks or threads are still waiting on the notify");
    (void)prev;
}

/* >>notify case */
static int crt__notify_case_try(crt_case *c) {
    crt_notify *n = (crt_notify *)c->obj;
    if (!n) {
        c->result = -EINVAL;
        return 1;
    }
    if (!crt__notify_take_fast(n)) {
        uint32_t prev = crt__lock_acquire_set(&n->word, 0);
        crt__lock_release_with(&n->word, prev & ~CRT__NOTIFY_PERMIT);
        if (!(prev & CRT__NOTIFY_PERMIT)) return 0;
    }
    c->result = 0;
    return 1;
}

static int crt__notify_case_arm(crt_case *c, crt__wait_node *node) {
    crt_notify *n = (crt_notify *)c->obj;
    uint32_t prev = crt__lock_acquire_set(&n->word, 0);
    if (prev & CRT__NOTIFY_PERMIT) {
        crt__lock_release_with(&n->word, prev);
        return 1; /* select goes round to try_now, which takes it */
    }
    crt__waitq_push(&n->q, node);
    crt__lock_release_with(&n->word, prev | CRT__NOTIFY_WAITERS);
    return 0;
}

static void crt__notify_case_disarm(crt_case *c, crt__wait_node *node) {
    crt_notify *n = (crt_notify *)c->obj;
    uint32_t prev = crt__lock_acquire_set(&n->word, 0);
    crt__waitq_remove(&n->q, node);
    crt__lock_release_with(&n->word, crt__notify_word(n, prev));
}

static int crt__notify_case_finish(crt_case *c, crt__wait_node *node, int result) {
    (void)node;
    c->result = result; /* 0: a notify picked this case */
    return 1;
}

const crt__case_ops crt__case_ops_notify = {crt__notify_case_try, crt__notify_case_arm, crt__notify_case_disarm,
                                            crt__notify_case_finish};

#endif /* CRT_IMPLEMENTATION */
