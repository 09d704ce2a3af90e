/* crt/sem.h — a counting semaphore: acquire and release n permits at a
 * time, strictly first come, first served.
 *
 *   static crt_sem slots;                      // at most 5 agents at once
 *   crt_sem_init(&slots, 5);
 *   ...
 *   if (crt_sem_acquire(&slots, 1, crt_after(CRT_SEC(2))) == 0) {
 *       run_agent();
 *       crt_sem_release(&slots, 1);
 *   }
 *   ...
 *   crt_sem_destroy(&slots);                   // nobody may be waiting
 *
 * A value type: embed it anywhere, crt_sem_init it in place; it allocates
 * nothing. Waiters are served strictly in arrival order: a request for
 * many permits at the head of the queue is not overtaken by smaller ones
 * behind it, nor by a newcomer, not even one using CRT_TRY. A release hands
 * the permits straight to the waiters it satisfies (they do not compete
 * again when they wake). crt_sem_release may raise the count beyond the
 * initial one (a counting semaphore, like sem_post), up to CRT_SEM_MAX.
 * Uncontended acquire and release are one atomic operation each.
 *
 * CRT_CASE_SEM(s, n) waits for n permits inside crt_select (crt/select.h);
 * when the case completes the permits are the caller's.
 *
 * No configuration macros.
 * Errors: -EINVAL (n == 0 or n > CRT_SEM_MAX), -EPIPE (closed), -ETIMEDOUT,
 * -EAGAIN (CRT_TRY), -ECANCELED (the calling task was aborted).
 * Misuse (asserted unless NDEBUG): a release that would overflow the count,
 * destroying a semaphore that has waiters.
 */
#ifndef CRT_SEM_H
#define CRT_SEM_H
#include "base.h"
#include "case.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest permit count (and the largest single request). */
#define CRT_SEM_MAX (sizeof(size_t) < 8 ? SIZE_MAX : (size_t)(UINT64_MAX >> 2))

typedef struct crt_sem {
    uint64_t state;    /* atomic: permits << 2 | closed (2) | waiters queued (1) */
    uint32_t lock;     /* guards q */
    uint32_t reserved;
    crt__waitq q;      /* waiting acquirers, FIFO; node->n is the request */
} crt_sem;

/* Initialises s with `permits` permits (more than CRT_SEM_MAX is misuse;
 * the count is then capped). No allocation. Anywhere. */
CRT_API void crt_sem_init(crt_sem *s, size_t permits);

/* Takes n permits, waiting (in arrival order) until they are there.
 * Returns 0, -EINVAL (s NULL, n == 0 or n > CRT_SEM_MAX), -EPIPE (the
 * semaphore is closed, also while waiting), -ETIMEDOUT, -EAGAIN (deadline
 * CRT_TRY and it would wait: also when others are queued, even if enough
 * permits are free), -ECANCELED (the task was aborted; also when permits
 * were free). On any error no permit was taken and the caller left the
 * queue (waiters behind it may then go ahead). Task or plain thread. */
CRT_API int crt_sem_acquire(crt_sem *s, size_t n, crt_time deadline);

/* Returns n permits (or adds new ones), handing them to the waiters at the
 * head of the queue as far as they go. Never waits. A count that would
 * exceed CRT_SEM_MAX is misuse (asserted; capped in release builds).
 * Works after close too (the permits are only counted). Anywhere. */
CRT_API void crt_sem_release(crt_sem *s, size_t n);

/* The number of free permits now (stale as soon as it returns). Anywhere. */
CRT_API size_t crt_sem_available(crt_sem *s);

/* Closes s: every waiter and every later acquire gets -EPIPE. Permits are
 * kept (crt_sem_available still counts them). Idempotent. Anywhere. */
CRT_API void crt_sem_close(crt_sem *s);

/* Ends s. Nobody may be waiting on it (asserted); it allocates nothing, so
 * this frees nothing. Anywhere. */
CRT_API void crt_sem_destroy(crt_sem *s);

/* Case for crt_select: n permits of s. Completes with result 0 (the
 * permits are taken), -EPIPE (closed) or -EINVAL (n == 0 or too large). */
#define CRT_CASE_SEM(s, n) crt__case_make(&crt__case_ops_sem, (void *)(s), NULL, (uint64_t)(n))
CRT_API const crt__case_ops crt__case_ops_sem;

#ifdef __cplusplus
}
#endif

#endif /* CRT_SEM_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__SEM_IMPL)
#define CRT__SEM_IMPL

/* state: the permit count above two flags. WAITERS is set exactly while
 * the queue is non-empty (changed only under the lock); while it is set
 * nothing but a lock holder changes state, because the lock-free fast
 * paths only CAS from a value without it. CLOSED is sticky. */
#define CRT__SEM_WAITERS UINT64_C(1)
#define CRT__SEM_CLOSED UINT64_C(2)
#define CRT__SEM_SHIFT 2

CRT_API void crt_sem_init(crt_sem *s, size_t permits) {
    if (!s) return;
    CRT_ASSERT(permits <= CRT_SEM_MAX, "crt_sem_init: more permits than CRT_SEM_MAX");
    if (permits > CRT_SEM_MAX) permits = CRT_SEM_MAX;
    s->state = (uint64_t)permits << CRT__SEM_SHIFT;
    s->lock = 0;
    s->reserved = 0;
    s->q.head = s->q.tail = NULL;
}

/* Hands permits to the waiters at the head of the queue while they fit;
 * a waiter whose claim fails (it timed out, was aborted, or its select
 * completed elsewhere) is dropped from the queue and gets nothing. Clears
 * WAITERS when the queue empties. Lock held. Returns the claimed nodes
 * chained through next, in queue order, to be woken after unlocking (each
 * node stays valid until its waiter's wake). */
CRT__INTERN crt__wait_node *crt__sem_grant(crt_sem *s) {
    crt__wait_node *chain = NULL, **tail = &chain;
    /* Acquire: sees permits added by lock-free releases (pairs with their
     * release CAS). */
    uint64_t v = crt__load(&s->state, CRT__ACQUIRE);
    if (!(v & CRT__SEM_WAITERS)) return NULL; /* empty queue: nothing to hand out */
    /* From here on state is ours alone: WAITERS is set and we hold the lock. */
    uint64_t start = v;
    while (s->q.head && !(v & CRT__SEM_CLOSED)) {
        crt__wait_node *node = s->q.head;
        if ((v >> CRT__SEM_SHIFT) < (uint64_t)node->n) break; /* strictly FIFO: the head blocks the rest */
        crt__waitq_remove(&s->q, node);
        if (crt__waiter_claim(node->waiter)) {
            v -= (uint64_t)node->n << CRT__SEM_SHIFT;
            node->waiter->result = 0;
            node->waiter->index = node->index;
            *tail = node;
            tail = &node->next;
        }
    }
    *tail = NULL;
    if (!s->q.head) v &= ~CRT__SEM_WAITERS;
    /* Release: once WAITERS is clear the fast paths use this value; it
     * carries the lock-ordered history of the permits (pairs with their
     * acquire CAS). */
    if (v != start) crt__store(&s->state, v, CRT__RELEASE);
    return chain;
}

/* Wakes a chain of claimed nodes; one alone was handed what it waited
 * for, so it may run next on this worker. */
CRT__INTERN void crt__sem_wake(crt__wait_node *chain) {
    int lifo = chain && !chain->next;
    while (chain) {
        crt__wait_node *next = chain->next; /* read first: the wake ends the node */
        crt__waiter_wake_to(chain->waiter, lifo);
        chain = next;
    }
}

/* Hands out what fits, releases the lock, wakes the winners. Lock held on
 * entry, released on return; s is not touched after the release (a woken
 * task may destroy it). */
CRT__INTERN void crt__sem_grant_unlock(crt_sem *s) {
    crt__wait_node *chain = crt__sem_grant(s);
    crt__lock_release(&s->lock);
    crt__sem_wake(chain);
}

/* Takes a node out of the queue (if still there) and lets the waiters
 * behind it go ahead if they now fit. */
CRT__INTERN void crt__sem_leave(crt_sem *s, crt__wait_node *node) {
    crt__lock_acquire(&s->lock);
    crt__waitq_remove(&s->q, node);
    crt__sem_grant_unlock(s);
}

/* What crt__sem_decide does with a request that cannot be served now. */
enum {
    CRT__SEM_TRY,    /* nothing: -EAGAIN */
    CRT__SEM_QUEUE,  /* set WAITERS (the caller enqueues): -EAGAIN */
    CRT__SEM_ARM     /* as QUEUE, but one that could be served is only reported (1), not taken */
};

/* Decides a request of n permits under the lock: 0 (taken), -EPIPE
 * (closed), -EAGAIN (it must wait; see mode), 1 (CRT__SEM_ARM: it could be
 * served now; nothing taken, WAITERS unchanged). */
CRT__INTERN int crt__sem_decide(crt_sem *s, size_t n, int mode) {
    /* Acquire: pairs with the release CAS of lock-free releases. */
    uint64_t v = crt__load(&s->state, CRT__ACQUIRE);
    for (;;) {
        if (v & CRT__SEM_CLOSED) return -EPIPE;
        if (!(v & CRT__SEM_WAITERS) && (v >> CRT__SEM_SHIFT) >= (uint64_t)n) {
            if (mode == CRT__SEM_ARM) return 1;
            /* Acq_rel: takes the permits with what their releasers did;
             * a CAS, because lock-free paths may change state meanwhile. */
            if (crt__cas(&s->state, &v, v - ((uint64_t)n << CRT__SEM_SHIFT), CRT__ACQ_REL, CRT__ACQUIRE)) return 0;
            continue;
        }
        if (mode == CRT__SEM_TRY || (v & CRT__SEM_WAITERS)) return -EAGAIN;
        /* Acq_rel: from here the fast paths back off; a CAS, so a
         * lock-free release that got in first is seen (we then retry). */
        if (crt__cas(&s->state, &v, v | CRT__SEM_WAITERS, CRT__ACQ_REL, CRT__ACQUIRE)) return -EAGAIN;
    }
}

/* The one-atomic fast path: no waiters, not closed, enough permits. */
static inline int crt__sem_try_fast(crt_sem *s, size_t n) {
    /* Relaxed: only a guess for the CAS, which orders. */
    uint64_t v = crt__load(&s->state, CRT__RELAXED);
    while (!(v & (CRT__SEM_WAITERS | CRT__SEM_CLOSED)) && (v >> CRT__SEM_SHIFT) >= (uint64_t)n) {
        /* Acquire: the permits come with what their releaser did before
         * releasing; pairs with the release CAS in crt_sem_release(). */
        if (crt__cas_weak(&s->state, &v, v - ((uint64_t)n << CRT__SEM_SHIFT), CRT__ACQUIRE, CRT__RELAXED)) return 1;
    }
    return 0;
}

CRT__NOINLINE CRT__INTERN int crt__sem_acquire_slow(crt_sem *s, size_t n, crt_time deadline) {
    crt__waiter w;
    crt__wait_node node;
    crt__lock_acquire(&s->lock);
    int r = crt__sem_decide(s, n, deadline == CRT_TRY ? CRT__SEM_TRY : CRT__SEM_QUEUE);
    if (r != -EAGAIN || deadline == CRT_TRY) {
        crt__lock_release(&s->lock);
        return r;
    }
    crt__waiter_init_one(&w, &node, NULL, n);
    crt__waitq_push(&s->q, &node);
    crt__lock_release(&s->lock);
    r = crt__waiter_wait(&w, deadline);
    if (w.index >= 0) return r; /* a release handed us the permits (0), or close (-EPIPE) */
    /* Our own deadline or abort won the claim: nothing was handed to us. */
    crt__sem_leave(s, &node);
    return r;
}

CRT_API int crt_sem_acquire(crt_sem *s, size_t n, crt_time deadline) {
    if (!s || n == 0 || n > CRT_SEM_MAX) return -EINVAL;
    int r = crt__check_cancel();
    if (r < 0) return r;
    if (CRT__LIKELY(crt__sem_try_fast(s, n))) return 0;
    return crt__sem_acquire_slow(s, n, deadline);
}

/* The count after adding n to v's, capped at CRT_SEM_MAX (misuse). */
static inline uint64_t crt__sem_add(uint64_t v, size_t n) {
    uint64_t have = v >> CRT__SEM_SHIFT, add = (uint64_t)n;
    CRT_ASSERT(add <= (uint64_t)CRT_SEM_MAX - have, "crt_sem_release: the permit count would overflow CRT_SEM_MAX");
    if (add > (uint64_t)CRT_SEM_MAX - have) add = (uint64_t)CRT_SEM_MAX - have;
    return v + (add << CRT__SEM_SHIFT);
}

CRT_API void crt_sem_release(crt_sem *s, size_t n) {
    if (!s || n == 0) return;
    /* Relaxed: only a guess for the CAS, which orders. */
    uint64_t v = crt__load(&s->state, CRT__RELAXED);
    while (!(v & CRT__SEM_WAITERS)) {
        /* Release: publishes what the caller did with the permits; pairs
         * with the acquire CAS of whoever takes them. */
        if (crt__cas_weak(&s->state, &v, crt__sem_add(v, n), CRT__RELEASE, CRT__RELAXED)) return;
    }
    /* Waiters are queued: add under the lock and hand the permits out. */
    crt__lock_acquire(&s->lock);
    /* Acquire/acq_rel: WAITERS may have cleared since we looked, so the
     * fast paths may race with us: add with a CAS. */
    v = crt__load(&s->state, CRT__ACQUIRE);
    while (!crt__cas(&s->state, &v, crt__sem_add(v, n), CRT__ACQ_REL, CRT__ACQUIRE)) {
    }
    crt__sem_grant_unlock(s);
}

CRT_API size_t crt_sem_available(crt_sem *s) {
    if (!s) return 0;
    /* Relaxed: a snapshot, stale at once; it orders nothing. */
    return (size_t)(crt__load(&s->state, CRT__RELAXED) >> CRT__SEM_SHIFT);
}

CRT_API void crt_sem_close(crt_sem *s) {
    if (!s) return;
    crt__wait_node *chain = NULL, **tail = &chain;
    crt__lock_acquire(&s->lock);
    /* Acq_rel: an RMW, as the fast paths may race; from now on they fail
     * and every slow path sees CLOSED under the lock. */
    crt__fetch_or(&s->state, CRT__SEM_CLOSED, CRT__ACQ_REL);
    while (s->q.head) {
        crt__wait_node *node = s->q.head;
        crt__waitq_remove(&s->q, node);
        if (crt__waiter_claim(node->waiter)) {
            node->waiter->result = -EPIPE;
            node->waiter->index = node->index;
            *tail = node;
            tail = &node->next;
        }
    }
    *tail = NULL;
    /* Acq_rel: nothing enqueues once CLOSED is set, so the queue stays
     * empty; an RMW because fast paths may still look. */
    crt__fetch_and(&s->state, ~CRT__SEM_WAITERS, CRT__ACQ_REL);
    crt__lock_release(&s->lock);
    crt__sem_wake(chain);
}

CRT_API void crt_sem_destroy(crt_sem *s) {
    if (!s) return;
    crt__lock_acquire(&s->lock);
    int waiting = s->q.head != NULL;
    crt__lock_release(&s->lock);
    CRT_ASSERT(!waiting, "crt_sem_destroy: tasks or threads are still waiting on the semaphore");
    (void)waiting;
}

/* >>sem case */
static int crt__sem_case_try(crt_case *c) {
    crt_sem *s = (crt_sem *)c->obj;
    size_t n = (size_t)c->arg;
    if (!s || n == 0 || c->arg > (uint64_t)CRT_SEM_MAX) {
        c->result = -EINVAL;
        return 1;
    }
    if (crt__sem_try_fast(s, n)) {
        c->result = 0;
        return 1;
    }
    crt__lock_acquire(&s->lock);
    int r = crt__sem_decide(s, n, CRT__SEM_TRY);
    crt__lock_release(&s->lock);
    if (r == -EAGAIN) return 0;
    c->result = r;
    return 1;
}

static int crt__sem_case_arm(crt_case *c, crt__wait_node *node) {
    crt_sem *s = (crt_sem *)c->obj;
    crt__lock_acquire(&s->lock);
    int r = crt__sem_decide(s, node->n, CRT__SEM_ARM);
    if (r == -EAGAIN) crt__waitq_push(&s->q, node);
    crt__lock_release(&s->lock);
    return r != -EAGAIN; /* ready or closed: select goes round to try_now */
}

static void crt__sem_case_disarm(crt_case *c, crt__wait_node *node) { crt__sem_leave((crt_sem *)c->obj, node); }

static int crt__sem_case_finish(crt_case *c, crt__wait_node *node, int result) {
    (void)node;
    c->result = result; /* 0: the permits were handed to us; -EPIPE: closed */
    return 1;
}

const crt__case_ops crt__case_ops_sem = {crt__sem_case_try, crt__sem_case_arm, crt__sem_case_disarm,
                                         crt__sem_case_finish};

#endif /* CRT_IMPLEMENTATION */
