/* crt/bcast.h — broadcast: every receiver sees every value (tokio's
 * broadcast). Senders never wait; a receiver that falls more than
 * `capacity` values behind loses the oldest ones and is told so.
 *
 *   crt_bcast *news = crt_bcast_new(sizeof(event), 16);
 *   crt_bcast_rx *rx = crt_bcast_subscribe(news);     // sees what is sent from now on
 *   crt_bcast_send(news, &ev);                        // returns the number of receivers
 *   event e;
 *   for (;;) {
 *       int rc = crt_bcast_recv(rx, &e, CRT_FOREVER);
 *       if (rc == -EOVERFLOW) { lost += crt_bcast_missed(rx); continue; }
 *       if (rc < 0) break;                            // -EPIPE: closed and caught up
 *       handle(&e);
 *   }
 *   crt_bcast_unsubscribe(rx);
 *   crt_bcast_free(news);                             // either order
 *
 * The sender's handle and each receiver hold a reference: crt_bcast_free
 * closes and drops the sender's, crt_bcast_unsubscribe a receiver's, and
 * the last one frees the memory, so they may go in any order.
 * A receiver that lagged gets -EOVERFLOW once (no value with it); the next
 * receive returns the oldest value still kept. Values are copied under the
 * broadcast's lock: a send costs about elem_size bytes per waiting
 * receiver. Works between tasks of any runtimes and plain threads.
 *
 * Select case (crt/select.h): CRT_CASE_BCAST(rx, out).
 *
 * Errors: -EOVERFLOW (lagged; see crt_bcast_missed), -EPIPE (closed: for
 * a send at once, for a receive once caught up), -ETIMEDOUT, -EAGAIN
 * (deadline CRT_TRY), -ECANCELED, -EINVAL (NULL argument). crt_bcast_new
 * and crt_bcast_subscribe: NULL
 * with errno EINVAL or ENOMEM.
 */
#ifndef CRT_BCAST_H
#define CRT_BCAST_H
#include "case.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crt_bcast crt_bcast;
typedef struct crt_bcast_rx crt_bcast_rx;

/* Creates a broadcast that keeps the last `capacity` values of elem_size
 * bytes. Returns NULL with errno EINVAL (elem_size or capacity 0) or
 * ENOMEM. Anywhere. */
CRT_API crt_bcast *crt_bcast_new(size_t elem_size, size_t capacity);

/* Sends a copy of elem to every receiver. Never waits.
 * Returns the number of receivers subscribed (0: nobody, the value was
 * dropped), -EPIPE (closed), -EINVAL (b or elem NULL). Not a blocking call:
 * an aborted task may still send. Anywhere. */
CRT_API int crt_bcast_send(crt_bcast *b, const void *elem);

/* A new receiver: it sees every value sent from now on. On a closed
 * broadcast it is created all the same and reports -EPIPE.
 * Returns NULL with errno EINVAL (b NULL) or ENOMEM. Not after
 * crt_bcast_free (the handle is gone). Anywhere. */
CRT_API crt_bcast_rx *crt_bcast_subscribe(crt_bcast *b);

/* Receives the next value into out (elem_size bytes), waiting while
 * there is none.
 * Returns 0; -EOVERFLOW (the receiver lagged and values were dropped:
 * nothing is delivered, crt_bcast_missed says how many, the next call
 * returns the oldest value kept); -EPIPE (closed and caught up);
 * -ETIMEDOUT; -EAGAIN (deadline CRT_TRY); -ECANCELED; -EINVAL (rx or out
 * NULL). On the other errors
 * nothing was taken. One call at a time per receiver. Task or plain thread. */
CRT_API int crt_bcast_recv(crt_bcast_rx *rx, void *out, crt_time deadline);

/* The number of values rx lost to lagging since the previous call (or
 * since it subscribed). NULL: 0. Call it from the receiver's owner. */
CRT_API uint64_t crt_bcast_missed(crt_bcast_rx *rx);

/* Ends the receiver and frees it (and the broadcast, if the sender's
 * handle was freed already). Not while a receive on rx waits.
 * NULL is a no-op. Anywhere. */
CRT_API void crt_bcast_unsubscribe(crt_bcast_rx *rx);

/* Closes: sends fail with -EPIPE, receivers get what is left, then -EPIPE
 * (waiting ones wake). Closing twice is harmless; NULL is a no-op. Anywhere. */
CRT_API void crt_bcast_close(crt_bcast *b);

/* Closes and gives up the sender's handle; the memory goes with the last
 * receiver (receivers stay valid until they unsubscribe). NULL is a no-op.
 * Anywhere. */
CRT_API void crt_bcast_free(crt_bcast *b);

/* Case: receive the next value of rx into out; completes with 0,
 * -EOVERFLOW (as crt_bcast_recv) or -EPIPE. */
#define CRT_CASE_BCAST(rx, out) crt__case_make(&crt__case_ops_bcast, (void *)(rx), (void *)(out), 0)
CRT_API const crt__case_ops crt__case_ops_bcast;

#ifdef __cplusplus
}
#endif

#endif /* CRT_BCAST_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__BCAST_IMPL)
#define CRT__BCAST_IMPL
#include "runtime.h"
#include <limits.h>
#include <string.h>

/* Value number s (counting from 0, kept values only) lives in slot
 * s % cap while s >= tail - cap. Everything but refs is under lock. */
struct crt_bcast {
    uint32_t lock;
    uint32_t refs;          /* atomic: the sender's handle + one per receiver */
    uint64_t tail;          /* the number of the next value */
    size_t nrx;             /* receivers subscribed */
    int closed;
    int reserved;
    crt__waitq q;           /* receives waiting; node->n is their receiver */
    size_t elem_size, cap;
    unsigned char *slots;   /* in the same allocation */
};

struct crt_bcast_rx {
    crt_bcast *b;
    uint64_t next;          /* the number of the value it reads next; under b->lock */
    uint64_t missed;        /* lost since crt_bcast_missed; under b->lock */
};

CRT__INTERN void crt__bcast_unref(crt_bcast *b) {
    /* Acq_rel: our accesses happen before the free; the last one sees
     * everybody's (pairs with the others' release here). */
    if (crt__fetch_sub(&b->refs, 1u, CRT__ACQ_REL) == 1) {
        CRT_ASSERT(crt__waitq_empty(&b->q), "crt_bcast: freed with receives waiting");
        CRT_FREE(b);
    }
}

CRT_API crt_bcast *crt_bcast_new(size_t elem_size, size_t capacity) {
    if (elem_size == 0 || capacity == 0) {
        errno = EINVAL;
        return NULL;
    }
    size_t head_size = (sizeof(crt_bcast) + 15) & ~(size_t)15;
    if (capacity > (SIZE_MAX - head_size) / elem_size) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned char *mem = (unsigned char *)CRT_MALLOC(head_size + capacity * elem_size);
    if (!mem) {
        errno = ENOMEM;
        return NULL;
    }
    crt_bcast *b = (crt_bcast *)(void *)mem;
    memset(b, 0, sizeof *b);
    b->refs = 1;
    b->elem_size = elem_size;
    b->cap = capacity;
    b->slots = mem + head_size;
    return b;
}

static inline unsigned char *crt__bcast_slot(crt_bcast *b, uint64_t s) {
    return b->slots + (size_t)(s % b->cap) * b->elem_size;
}

/* Under the lock: the next value for rx into out — 0, -EOVERFLOW, -EPIPE,
 * or 1 (nothing yet). */
static inline int crt__bcast_take(crt_bcast *b, crt_bcast_rx *rx, void *out) {
    uint64_t oldest = b->tail > b->cap ? b->tail - b->cap : 0;
    if (rx->next < oldest) {
        rx->missed += oldest - rx->next;
        rx->next = oldest;
        return -EOVERFLOW;
    }
    if (rx->next < b->tail) {
        memcpy(out, crt__bcast_slot(b, rx->next), b->elem_size);
        rx->next++;
        return 0;
    }
    return b->closed ? -EPIPE : 1;
}

/* Under the lock: claims every waiting receive; with elem, hands each its
 * copy (they are caught up: this is the value they wait for), else gives
 * result. Returns the won nodes chained through next. */
static inline crt__wait_node *crt__bcast_claim_all(crt_bcast *b, const void *elem, int result) {
    crt__wait_node *won = NULL;
    while (b->q.head) {
        crt__wait_node *node = b->q.head;
        crt__waiter *w = node->waiter; /* read before unlinking */
        crt__waitq_remove(&b->q, node);
        if (!crt__waiter_claim(w)) continue;
        if (elem) {
            crt_bcast_rx *rx = (crt_bcast_rx *)(uintptr_t)node->n;
            memcpy(node->ptr, elem, b->elem_size);
            rx->next++;
            w->result = 0;
        } else {
            w->result = result;
        }
        w->index = node->index;
        node->next = won;
        won = node;
    }
    return won;
}

/* Reads each node before its wake: afterwards it may be gone. */
CRT__INTERN void crt__bcast_wake(crt__wait_node *node) {
    while (node) {
        crt__wait_node *next = node->next;
        crt__waiter_wake_to(node->waiter, 0);
        node = next;
    }
}

CRT_API int crt_bcast_send(crt_bcast *b, const void *elem) {
    if (!b || !elem) return -EINVAL;
    crt__lock_acquire(&b->lock);
    if (b->closed) {
        crt__lock_release(&b->lock);
        return -EPIPE;
    }
    size_t n = b->nrx;
    crt__wait_node *won = NULL;
    if (n) {
        memcpy(crt__bcast_slot(b, b->tail), elem, b->elem_size);
        won = crt__bcast_claim_all(b, elem, 0); /* each gets value number tail */
        b->tail++;
    }
    crt__lock_release(&b->lock);
    crt__bcast_wake(won);
    return n > INT_MAX ? INT_MAX : (int)n;
}

CRT_API crt_bcast_rx *crt_bcast_subscribe(crt_bcast *b) {
    if (!b) {
        errno = EINVAL;
        return NULL;
    }
    crt_bcast_rx *rx = (crt_bcast_rx *)CRT_MALLOC(sizeof *rx);
    if (!rx) {
        errno = ENOMEM;
        return NULL;
    }
    rx->b = b;
    rx->missed = 0;
    crt__lock_acquire(&b->lock);
    rx->next = b->tail;
    b->nrx++;
    /* Relaxed: the caller holds the sender's reference, so the count
     * cannot reach zero meanwhile; the decrements carry the order. */
    crt__fetch_add(&b->refs, 1u, CRT__RELAXED);
    crt__lock_release(&b->lock);
    return rx;
}

CRT_API int crt_bcast_recv(crt_bcast_rx *rx, void *out, crt_time deadline) {
    if (!rx || !out) return -EINVAL;
    int r = crt__check_cancel();
    if (r < 0) return r;
    crt_bcast *b = rx->b;
    crt__waiter w;
    crt__wait_node node;
    crt__lock_acquire(&b->lock);
    r = crt__bcast_take(b, rx, out);
    if (r != 1 || deadline == CRT_TRY) {
        crt__lock_release(&b->lock);
        return r == 1 ? -EAGAIN : r;
    }
    crt__waiter_init_one(&w, &node, out, (size_t)(uintptr_t)rx);
    crt__waitq_push(&b->q, &node);
    crt__lock_release(&b->lock);
    /* A send copies its value into out and gives 0; a close gives -EPIPE
     * (a waiting receiver is caught up, so there is nothing left for it). */
    r = crt__waiter_wait(&w, deadline);
    if (w.index < 0) {
        /* No winner unlinked it; take the lock even if it looks unlinked:
         * a sender that lost the claim may be unlinking it right now. */
        crt__lock_acquire(&b->lock);
        crt__waitq_remove(&b->q, &node);
        crt__lock_release(&b->lock);
    }
    return r;
}

CRT_API uint64_t crt_bcast_missed(crt_bcast_rx *rx) {
    if (!rx) return 0;
    crt_bcast *b = rx->b;
    crt__lock_acquire(&b->lock);
    uint64_t m = rx->missed;
    rx->missed = 0;
    crt__lock_release(&b->lock);
    return m;
}

CRT_API void crt_bcast_unsubscribe(crt_bcast_rx *rx) {
    if (!rx) return;
    crt_bcast *b = rx->b;
    crt__lock_acquire(&b->lock);
    for (crt__wait_node *n = b->q.head; n; n = n->next)
        CRT_ASSERT(n->n != (size_t)(uintptr_t)rx, "crt_bcast_unsubscribe: a receive on this receiver is still waiting");
    b->nrx--;
    crt__lock_release(&b->lock);
    CRT_FREE(rx);
    crt__bcast_unref(b);
}

CRT_API void crt_bcast_close(crt_bcast *b) {
    if (!b) return;
    crt__lock_acquire(&b->lock);
    b->closed = 1;
    crt__wait_node *won = crt__bcast_claim_all(b, NULL, -EPIPE);
    crt__lock_release(&b->lock);
    crt__bcast_wake(won);
}

CRT_API void crt_bcast_free(crt_bcast *b) {
    if (!b) return;
    crt_bcast_close(b);
    crt__bcast_unref(b);
}

/* >>bcast select case */

static int crt__bcast_case_try(crt_case *cs) {
    crt_bcast_rx *rx = (crt_bcast_rx *)cs->obj;
    crt_bcast *b = rx->b;
    crt__lock_acquire(&b->lock);
    int r = crt__bcast_take(b, rx, cs->ptr);
    crt__lock_release(&b->lock);
    if (r == 1) return 0;
    cs->result = r;
    return 1;
}

static int crt__bcast_case_arm(crt_case *cs, crt__wait_node *node) {
    crt_bcast_rx *rx = (crt_bcast_rx *)cs->obj;
    crt_bcast *b = rx->b;
    crt__lock_acquire(&b->lock);
    int ready = rx->next != b->tail || b->closed;
    if (!ready) {
        node->n = (size_t)(uintptr_t)rx; /* the sender advances it when it hands over */
        crt__waitq_push(&b->q, node);
    }
    crt__lock_release(&b->lock);
    return ready;
}

static void crt__bcast_case_disarm(crt_case *cs, crt__wait_node *node) {
    crt_bcast *b = ((crt_bcast_rx *)cs->obj)->b;
    crt__lock_acquire(&b->lock);
    crt__waitq_remove(&b->q, node);
    crt__lock_release(&b->lock);
}

static int crt__bcast_case_finish(crt_case *cs, crt__wait_node *node, int result) {
    (void)node;
    cs->result = result; /* 0: the sender copied the value into cs->ptr; or -EPIPE */
    return 1;
}

const crt__case_ops crt__case_ops_bcast = {crt__bcast_case_try, crt__bcast_case_arm, crt__bcast_case_disarm,
                                           crt__bcast_case_finish};

#endif /* CRT_IMPLEMENTATION */
