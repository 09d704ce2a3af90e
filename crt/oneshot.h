/* crt/oneshot.h — a one-shot channel: one value, sent once, received once
 * (tokio's oneshot; a reply slot for a request).
 *
 *   crt_oneshot *reply = crt_oneshot_new(sizeof(int));
 *   // server: compute, then                 // client
 *   crt_oneshot_send(reply, &answer);        int v;
 *                                            int rc = crt_oneshot_recv(reply, &v, crt_after(CRT_SEC(1)));
 *                                            crt_oneshot_free(reply);   // whatever rc was
 *
 * One handle, two sides. The sender side ends with crt_oneshot_send (the
 * value) or crt_oneshot_close (no value: the receiver gets -EPIPE); the
 * receiver side ends with crt_oneshot_free. The object lives until both
 * sides ended (reference counted), so either may go first: a receiver that
 * timed out and freed its end never meets a late sender, which just gets
 * -EPIPE. After its side ended a party must not touch the handle again.
 * Sending never waits. Works between tasks of any runtimes and plain threads.
 *
 * Select case (crt/select.h): CRT_CASE_ONESHOT(o, out).
 *
 * Errors: -EPIPE (the other side ended: closed or freed, or the value was
 * already received), -ETIMEDOUT, -EAGAIN (deadline CRT_TRY, nothing yet),
 * -ECANCELED, -EINVAL (NULL handle or buffer). crt_oneshot_new: NULL with
 * errno EINVAL or ENOMEM.
 * Using a side after it ended, and freeing while a receive waits, are
 * misuse (asserted unless NDEBUG).
 */
#ifndef CRT_ONESHOT_H
#define CRT_ONESHOT_H
#include "case.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crt_oneshot crt_oneshot;

/* Creates a one-shot channel for one element of elem_size bytes.
 * Returns NULL with errno EINVAL (elem_size 0) or ENOMEM. Anywhere. */
CRT_API crt_oneshot *crt_oneshot_new(size_t elem_size);

/* Sends the value (copies elem_size bytes from elem) and ends the sender
 * side. Never waits; a waiting receiver gets the value and runs next.
 * Returns 0; -EPIPE (the receiver side already ended: the value is
 * dropped, the sender side ended all the same); -EINVAL (o or elem NULL:
 * nothing happened, the sender side is still open). Not a blocking call,
 * so an aborted task may still send. Anywhere. */
CRT_API int crt_oneshot_send(crt_oneshot *o, const void *elem);

/* Ends the sender side without a value: the receiver gets -EPIPE.
 * NULL is a no-op. Anywhere. */
CRT_API void crt_oneshot_close(crt_oneshot *o);

/* Waits for the value and copies it into out (elem_size bytes).
 * Returns 0; -EPIPE (the sender closed, or the value was already
 * received); -ETIMEDOUT; -EAGAIN (deadline CRT_TRY, nothing sent yet);
 * -ECANCELED; -EINVAL (o or out NULL).
 * On any error nothing was taken: a value sent later is still there for
 * the next call. Task or plain thread. */
CRT_API int crt_oneshot_recv(crt_oneshot *o, void *out, crt_time deadline);

/* Ends the receiver side (a value not received is dropped). The memory
 * goes once the sender side has ended too. Freeing while a receive is
 * waiting on it is misuse (asserted). NULL is a no-op. Anywhere. */
CRT_API void crt_oneshot_free(crt_oneshot *o);

/* Case: receive the value into out; completes with 0 or -EPIPE. */
#define CRT_CASE_ONESHOT(o, out) crt__case_make(&crt__case_ops_oneshot, (void *)(o), (void *)(out), 0)
CRT_API const crt__case_ops crt__case_ops_oneshot;

#ifdef __cplusplus
}
#endif

#endif /* CRT_ONESHOT_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__ONESHOT_IMPL)
#define CRT__ONESHOT_IMPL
#include "runtime.h"
#include <string.h>

/* Sender-side states (under lock). */
enum {
    CRT__ONESHOT_OPEN,   /* nothing sent yet */
    CRT__ONESHOT_FULL,   /* the value waits in data */
    CRT__ONESHOT_TAKEN,  /* the value was received */
    CRT__ONESHOT_CLOSED  /* the sender gave up, or sent to a freed receiver */
};

struct crt_oneshot {
    uint32_t lock;
    uint32_t refs;        /* atomic: one per side not yet ended */
    int state;            /* CRT__ONESHOT_*, under lock */
    int rx_gone;          /* crt_oneshot_free was called; under lock */
    crt__waitq q;         /* receives waiting; under lock */
    size_t elem_size;
    unsigned char *data;  /* in the same allocation */
};

/* Ends one side; the last one frees. */
CRT__INTERN void crt__oneshot_unref(crt_oneshot *o) {
    /* Acq_rel: our accesses happen before the free; the last side sees the
     * other side's (pairs with the other side's release here). */
    if (crt__fetch_sub(&o->refs, 1u, CRT__ACQ_REL) == 1) CRT_FREE(o);
}

CRT_API crt_oneshot *crt_oneshot_new(size_t elem_size) {
    if (elem_size == 0) {
        errno = EINVAL;
        return NULL;
    }
    size_t head_size = (sizeof(crt_oneshot) + 15) & ~(size_t)15;
    if (elem_size > SIZE_MAX - head_size) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned char *mem = (unsigned char *)CRT_MALLOC(head_size + elem_size);
    if (!mem) {
        errno = ENOMEM;
        return NULL;
    }
    crt_oneshot *o = (crt_oneshot *)(void *)mem;
    memset(o, 0, sizeof *o);
    o->refs = 2;
    o->state = CRT__ONESHOT_OPEN;
    o->elem_size = elem_size;
    o->data = mem + head_size;
    return o;
}

/* Ends the sender side with a value (elem) or without (NULL). */
CRT__INTERN int crt__oneshot_finish(crt_oneshot *o, const void *elem) {
    crt__wait_node *give = NULL, *rest = NULL;
    int r = 0;
    crt__lock_acquire(&o->lock);
    CRT_ASSERT(o->state == CRT__ONESHOT_OPEN,
               elem ? "crt_oneshot_send: the sender side already ended (sent or closed)"
                    : "crt_oneshot_close: the sender side already ended (sent or closed)");
    if (o->state != CRT__ONESHOT_OPEN) { /* misuse, release build: change nothing */
        crt__lock_release(&o->lock);
        return -EPIPE;
    }
    if (elem && o->rx_gone) {
        o->state = CRT__ONESHOT_CLOSED;
        r = -EPIPE;
    } else {
        o->state = elem ? CRT__ONESHOT_FULL : CRT__ONESHOT_CLOSED;
    }
    /* The first waiter we win gets the value; any others (a handle shared
     * by several receivers) and, without a value, all get -EPIPE. */
    while (o->q.head) {
        crt__wait_node *node = o->q.head;
        crt__waiter *w = node->waiter; /* read before unlinking */
        crt__waitq_remove(&o->q, node);
        if (!crt__waiter_claim(w)) continue;
        w->index = node->index;
        if (o->state == CRT__ONESHOT_FULL) {
            memcpy(node->ptr, elem, o->elem_size);
            o->state = CRT__ONESHOT_TAKEN;
            w->result = 0;
            node->next = give;
            give = node;
        } else {
            w->result = -EPIPE;
            node->next = rest;
            rest = node;
        }
    }
    if (o->state == CRT__ONESHOT_FULL) memcpy(o->data, elem, o->elem_size);
    crt__lock_release(&o->lock);
    /* Read each node before its wake: afterwards it may be gone. */
    while (rest) {
        crt__wait_node *next = rest->next;
        crt__waiter_wake_to(rest->waiter, 0);
        rest = next;
    }
    if (give) crt__waiter_wake_to(give->waiter, 1); /* a message for it: run it next */
    crt__oneshot_unref(o);
    return r;
}

CRT_API int crt_oneshot_send(crt_oneshot *o, const void *elem) {
    if (!o || !elem) return -EINVAL;
    return crt__oneshot_finish(o, elem);
}

CRT_API void crt_oneshot_close(crt_oneshot *o) {
    if (!o) return;
    (void)crt__oneshot_finish(o, NULL);
}

/* Under the lock: 0 (taken into out), -EPIPE, or 1 (nothing yet). */
static inline int crt__oneshot_take(crt_oneshot *o, void *out) {
    switch (o->state) {
    case CRT__ONESHOT_FULL:
        memcpy(out, o->data, o->elem_size);
        o->state = CRT__ONESHOT_TAKEN;
        return 0;
    case CRT__ONESHOT_OPEN: return 1;
    default: return -EPIPE;
    }
}

CRT_API int crt_oneshot_recv(crt_oneshot *o, void *out, crt_time deadline) {
    if (!o || !out) return -EINVAL;
    int r = crt__check_cancel();
    if (r < 0) return r;
    crt__waiter w;
    crt__wait_node node;
    crt__lock_acquire(&o->lock);
    CRT_ASSERT(!o->rx_gone, "crt_oneshot_recv: the receiver side already ended (crt_oneshot_free)");
    r = crt__oneshot_take(o, out);
    if (r != 1 || deadline == CRT_TRY) {
        crt__lock_release(&o->lock);
        return r == 1 ? -EAGAIN : r;
    }
    crt__waiter_init_one(&w, &node, out, 0);
    crt__waitq_push(&o->q, &node);
    crt__lock_release(&o->lock);
    /* The sender copies the value into out and gives 0, or gives -EPIPE. */
    r = crt__waiter_wait(&w, deadline);
    if (w.index < 0) {
        /* No winner unlinked it; take the lock even if it looks unlinked:
         * a sender that lost the claim may be unlinking it right now. */
        crt__lock_acquire(&o->lock);
        crt__waitq_remove(&o->q, &node);
        crt__lock_release(&o->lock);
    }
    return r;
}

CRT_API void crt_oneshot_free(crt_oneshot *o) {
    if (!o) return;
    crt__lock_acquire(&o->lock);
    CRT_ASSERT(!o->rx_gone, "crt_oneshot_free: the receiver side already ended (freed twice)");
    CRT_ASSERT(crt__waitq_empty(&o->q), "crt_oneshot_free: a receive is still waiting on it");
    o->rx_gone = 1;
    crt__lock_release(&o->lock);
    crt__oneshot_unref(o);
}

/* >>oneshot select case */

static int crt__oneshot_case_try(crt_case *cs) {
    crt_oneshot *o = (crt_oneshot *)cs->obj;
    crt__lock_acquire(&o->lock);
    int r = crt__oneshot_take(o, cs->ptr);
    crt__lock_release(&o->lock);
    if (r == 1) return 0;
    cs->result = r;
    return 1;
}

static int crt__oneshot_case_arm(crt_case *cs, crt__wait_node *node) {
    crt_oneshot *o = (crt_oneshot *)cs->obj;
    crt__lock_acquire(&o->lock);
    int ready = o->state != CRT__ONESHOT_OPEN;
    if (!ready) crt__waitq_push(&o->q, node);
    crt__lock_release(&o->lock);
    return ready;
}

static void crt__oneshot_case_disarm(crt_case *cs, crt__wait_node *node) {
    crt_oneshot *o = (crt_oneshot *)cs->obj;
    crt__lock_acquire(&o->lock);
    crt__waitq_remove(&o->q, node);
    crt__lock_release(&o->lock);
}

static int crt__oneshot_case_finish(crt_case *cs, crt__wait_node *node, int result) {
    (void)node;
    cs->result = result; /* 0: the sender copied the value into cs->ptr; or -EPIPE */
    return 1;
}

const crt__case_ops crt__case_ops_oneshot = {crt__oneshot_case_try, crt__oneshot_case_arm, crt__oneshot_case_disarm,
                                             crt__oneshot_case_finish};

#endif /* CRT_IMPLEMENTATION */
