/* crt/token.h — cancellation tokens in a tree: cancelling one cancels all
 * of its descendants (tokio's CancellationToken, Go's context).
 *
 *   crt_token server, conn;
 *   crt_token_init(&server, NULL);             // a root
 *   crt_token_init(&conn, &server);            // cancelled when server is
 *   ... in the connection's task:
 *   crt_case cs[2] = { CRT_CASE_RECV(requests, &req), CRT_CASE_TOKEN(&conn) };
 *   while (crt_select(cs, 2, 0, CRT_FOREVER) == 0) handle(&req);
 *   ... on shutdown, from any task or thread:
 *   crt_token_cancel(&server);                 // every connection stops
 *   ... once the connection's task is done with it:
 *   crt_token_destroy(&conn);                  // children before parents
 *   crt_token_destroy(&server);
 *
 * A value type (init in place, no allocation); children link into their
 * parent. Cancelling is sticky and reaches every descendant at any depth,
 * including children created after the cancel (they start cancelled).
 * Cancel, init and destroy may run at once on different threads: a child
 * destroyed while its parent is being cancelled is unlinked safely (the
 * cancel of a subtree holds each token's lock on the path it walks, top
 * down, so a token is never freed under it; destroy waits for it).
 *
 * A token cancels nothing by itself: tasks look at it (crt_token_wait,
 * crt_token_is_cancelled, CRT_CASE_TOKEN) and return. To stop tasks that
 * block elsewhere, abort them (crt_abort) or cancel their group.
 *
 * No configuration macros.
 * Errors: -ETIMEDOUT, -EAGAIN (CRT_TRY), -ECANCELED (the task was aborted).
 * Misuse (asserted unless NDEBUG): destroying a token that has waiters or
 * children still alive.
 */
#ifndef CRT_TOKEN_H
#define CRT_TOKEN_H
#include "base.h"
#include "case.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crt_token {
    uint32_t lock;                 /* guards the links and q */
    uint32_t state;                /* atomic: 1 once cancelled */
    struct crt_token *parent;      /* NULL: a root; fixed at init */
    struct crt_token *children;    /* first child */
    struct crt_token *next, *prev; /* siblings under parent */
    crt__waitq q;                  /* waiters */
} crt_token;

/* Initialises t as a child of parent (NULL: a root). It starts cancelled
 * if parent is. The parent must outlive t. No allocation. Anywhere. */
CRT_API void crt_token_init(crt_token *t, crt_token *parent);

/* Cancels t and every descendant, waking all their waiters. Idempotent.
 * Never waits (it may spin briefly on a lock a concurrent call holds).
 * Anywhere. */
CRT_API void crt_token_cancel(crt_token *t);

/* 1 if t is cancelled, else 0 (0 for NULL). Never waits. Anywhere. */
CRT_API int crt_token_is_cancelled(crt_token *t);

/* Waits until t is cancelled.
 * Returns 0 (cancelled), -ETIMEDOUT, -EAGAIN (deadline CRT_TRY and not
 * cancelled), -ECANCELED (the calling task was aborted — checked first),
 * -EINVAL (t NULL). Task or plain thread. */
CRT_API int crt_token_wait(crt_token *t, crt_time deadline);

/* Ends t and unlinks it from its parent; safe while an ancestor is being
 * cancelled on another thread. Nobody may be waiting on t and its
 * children must be destroyed first (asserted; in release builds they
 * become roots). Anywhere. */
CRT_API void crt_token_destroy(crt_token *t);

/* Case for crt_select: completes (result 0) once t is cancelled. */
#define CRT_CASE_TOKEN(t) crt__case_make(&crt__case_ops_token, (void *)(t), NULL, 0)
CRT_API const crt__case_ops crt__case_ops_token;

#ifdef __cplusplus
}
#endif

#endif /* CRT_TOKEN_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__TOKEN_IMPL)
#define CRT__TOKEN_IMPL

#define CRT__TOKEN_CANCELLED 1u

/* Lock order: a parent before its children (top down). Cancel walks a
 * subtree holding the locks of the whole path from its root to where it
 * is, so nothing on that path or next to it can be unlinked under it;
 * destroy takes the parent's lock, then its own; init the parent's. */

static inline int crt__token_cancelled(crt_token *t) {
    /* Acquire: pairs with the release store in crt__token_mark(); what the
     * canceller did before cancelling is visible. */
    return (crt__load(&t->state, CRT__ACQUIRE) & CRT__TOKEN_CANCELLED) != 0;
}

CRT_API void crt_token_init(crt_token *t, crt_token *parent) {
    if (!t) return;
    t->lock = 0;
    t->state = 0;
    t->parent = parent;
    t->children = NULL;
    t->next = t->prev = NULL;
    t->q.head = t->q.tail = NULL;
    if (!parent) return;
    crt__lock_acquire(&parent->lock);
    /* Relaxed: under the parent's lock, which every canceller of the
     * parent holds while it sets the flag. */
    if (crt__load(&parent->state, CRT__RELAXED) & CRT__TOKEN_CANCELLED) t->state = CRT__TOKEN_CANCELLED;
    t->next = parent->children;
    if (parent->children) parent->children->prev = t;
    parent->children = t;
    crt__lock_release(&parent->lock);
}

/* Marks one token cancelled and claims its waiters onto *tail (woken once
 * the walk has let go of every lock; each node stays valid until its
 * waiter's wake). Its lock is held (and its ancestors', during a walk). */
CRT__INTERN crt__wait_node **crt__token_mark(crt_token *t, crt__wait_node **tail) {
    /* Release: pairs with the acquire in crt__token_cancelled(). */
    crt__store(&t->state, CRT__TOKEN_CANCELLED, CRT__RELEASE);
    while (t->q.head) {
        crt__wait_node *node = t->q.head;
        crt__waitq_remove(&t->q, node);
        if (crt__waiter_claim(node->waiter)) {
            node->waiter->result = 0;
            node->waiter->index = node->index;
            *tail = node;
            tail = &node->next;
        }
    }
    return tail;
}

CRT_API void crt_token_cancel(crt_token *t) {
    if (!t) return;
    crt__wait_node *chain = NULL, **tail = &chain;
    crt__lock_acquire(&t->lock);
    /* A token found cancelled under its lock has its whole subtree
     * cancelled: its canceller held this lock until the walk was done, and
     * children created since start cancelled. */
    if (crt__load(&t->state, CRT__RELAXED) & CRT__TOKEN_CANCELLED) {
        crt__lock_release(&t->lock);
        return;
    }
    tail = crt__token_mark(t, tail);
    /* Depth first without recursion: x is the deepest locked token, c the
     * next child of x to visit. */
    crt_token *x = t, *c = t->children;
    for (;;) {
        if (c) {
            crt__lock_acquire(&c->lock);
            /* Relaxed: under c's lock, which every writer of state holds. */
            if (!(crt__load(&c->state, CRT__RELAXED) & CRT__TOKEN_CANCELLED)) {
                tail = crt__token_mark(c, tail);
                x = c;
                c = c->children;
                continue;
            }
            crt__lock_release(&c->lock);
            c = c->next;
            continue;
        }
        if (x == t) break;
        /* x's subtree is done: back up to its parent (still locked). */
        crt_token *up = x->parent, *next = x->next;
        crt__lock_release(&x->lock);
        x = up;
        c = next;
    }
    *tail = NULL;
    crt__lock_release(&t->lock);
    /* No token is touched from here on: a woken task may destroy them. */
    while (chain) {
        crt__wait_node *next = chain->next; /* read first: the wake ends the node */
        crt__waiter_wake_to(chain->waiter, 0);
        chain = next;
    }
}
CRT_API int crt_token_is_cancelled(crt_token *t) { return t ? crt__token_cancelled(t) : 0; }

CRT_API int crt_token_wait(crt_token *t, crt_time deadline) {
    if (!t) return -EINVAL;
    int r = crt__check_cancel();
    if (r < 0) return r;
    if (crt__token_cancelled(t)) return 0;
    if (deadline == CRT_TRY) return -EAGAIN;
    crt__waiter w;
    crt__wait_node node;
    crt__waiter_init_one(&w, &node, NULL, 0);
    crt__lock_acquire(&t->lock);
    if (crt__token_cancelled(t)) {
        crt__lock_release(&t->lock);
        crt__waiter_withdraw(&w); /* never linked: nobody can have claimed it */
        return 0;
    }
    crt__waitq_push(&t->q, &node);
    crt__lock_release(&t->lock);
    r = crt__waiter_wait(&w, deadline);
    if (w.index >= 0) return 0; /* the cancel woke us */
    crt__lock_acquire(&t->lock);
    crt__waitq_remove(&t->q, &node);
    crt__lock_release(&t->lock);
    return r;
}

CRT_API void crt_token_destroy(crt_token *t) {
    if (!t) return;
    crt_token *p = t->parent;
    if (p) crt__lock_acquire(&p->lock);
    crt__lock_acquire(&t->lock);
    CRT_ASSERT(t->q.head == NULL, "crt_token_destroy: tasks or threads are still waiting on the token");
    CRT_ASSERT(t->children == NULL, "crt_token_destroy: the token still has children (destroy them first)");
    /* Release builds: orphans become roots rather than point at freed memory. */
    for (crt_token *c = t->children; c; c = c->next) c->parent = NULL;
    t->children = NULL;
    if (p) {
        if (t->prev) t->prev->next = t->next;
        else p->children = t->next;
        if (t->next) t->next->prev = t->prev;
    }
    t->parent = t->next = t->prev = NULL;
    crt__lock_release(&t->lock);
    if (p) crt__lock_release(&p->lock);
}

/* >>token case */
static int crt__token_case_try(crt_case *c) {
    crt_token *t = (crt_token *)c->obj;
    if (t && !crt__token_cancelled(t)) return 0;
    c->result = t ? 0 : -EINVAL;
    return 1;
}

static int crt__token_case_arm(crt_case *c, crt__wait_node *node) {
    crt_token *t = (crt_token *)c->obj;
    crt__lock_acquire(&t->lock);
    int ready = crt__token_cancelled(t);
    if (!ready) crt__waitq_push(&t->q, node);
    crt__lock_release(&t->lock);
    return ready;
}

static void crt__token_case_disarm(crt_case *c, crt__wait_node *node) {
    crt_token *t = (crt_token *)c->obj;
    crt__lock_acquire(&t->lock);
    crt__waitq_remove(&t->q, node);
    crt__lock_release(&t->lock);
}

static int crt__token_case_finish(crt_case *c, crt__wait_node *node, int result) {
    (void)node;
    c->result = result; /* 0: cancelled */
    return 1;
}

const crt__case_ops crt__case_ops_token = {crt__token_case_try, crt__token_case_arm, crt__token_case_disarm,
                                           crt__token_case_finish};

#endif /* CRT_IMPLEMENTATION */
