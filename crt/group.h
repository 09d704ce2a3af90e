/* crt/group.h — structured concurrency: tasks spawned into a group belong
 * to it, and no member outlives it (tokio's JoinSet, Trio's nursery).
 *
 *   crt_group g;
 *   crt_group_init(&g);
 *   for (int i = 0; i < n; i++) crt_group_spawn(&g, fetch, &urls[i]);
 *   void *res;
 *   while (crt_group_next(&g, &res, crt_after(CRT_SEC(5))) == 0)  // completion order
 *       use(res);
 *   crt_group_destroy(&g);       // cancels what is left, waits for all of it
 *
 * A value type (init in place, no allocation of its own; each member is a
 * task record as crt_spawn makes one). The group owns its members'
 * handles: crt_abort one if you like, never join or detach it (asserted).
 * crt_group_next hands out the finished members' results in the order they
 * finished and frees their handles; crt_group_wait waits for all members
 * and discards their results. crt_group_cancel aborts every member — their
 * blocking calls return -ECANCELED — and the group stays cancelled: tasks
 * spawned into it later start aborted (a nursery's cancel scope), so a
 * member that spawns more while the group winds down cannot keep it alive.
 * crt_group_destroy cancels, then waits for every member, shielded from
 * the caller's own abort, and returns 0; after it the group may be
 * initialised again. The group's memory must stay valid until then.
 *
 * No configuration macros.
 * Errors: -EPIPE (crt_group_next: no members left), -ETIMEDOUT, -EAGAIN
 * (CRT_TRY), -ECANCELED (the calling task was aborted), -EINVAL (g NULL),
 * and crt_spawn's errno values for crt_group_spawn.
 * Misuse (asserted unless NDEBUG): waiting for or destroying a group from
 * one of its own members, destroying a group others still wait on.
 */
#ifndef CRT_GROUP_H
#define CRT_GROUP_H
#include "base.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

struct crt_group {
    crt__group_hdr hdr;            /* first: what crt_spawn_with calls */
    uint32_t lock;                 /* guards everything below */
    uint32_t state;                /* 1: cancelled */
    crt_task *running;             /* members not finished (task gnext/gprev) */
    crt_task *done_head, *done_tail; /* finished, not handed out yet (gnext), in finishing order */
    size_t nrunning, ndone;
    crt__waitq q;                  /* crt_group_next callers */
};

/* Initialises an empty group. No allocation. Anywhere. */
CRT_API void crt_group_init(crt_group *g);

/* Spawns fn(arg) as a member of g (as crt_spawn; it runs later, on any
 * worker). The handle belongs to the group: abort it if you like, never
 * join or detach it. In a cancelled group the task starts aborted (it
 * still runs, so it can free arg).
 * Returns NULL with errno EINVAL (g or fn NULL), ENOMEM, or EPERM (not
 * called from a task or a blocking-pool job). Task or blocking job. */
CRT_API crt_task *crt_group_spawn(crt_group *g, crt_fn fn, void *arg);

/* Waits for a member to finish (or takes one that has), stores its return
 * value in *result (if not NULL) and frees its handle; members come out in
 * the order they finished.
 * Returns 0, -EPIPE (no member is left, running or finished), -ETIMEDOUT,
 * -EAGAIN (deadline CRT_TRY and none has finished), -ECANCELED (the caller
 * was aborted), -EINVAL (g NULL). On an error no member was taken.
 * Task or plain thread; not from a member of g (it could wait for itself). */
CRT_API int crt_group_next(crt_group *g, void **result, crt_time deadline);

/* Waits until every member has finished (those spawned meanwhile too),
 * discarding their results and freeing their handles.
 * Returns 0 (the group is empty), -ETIMEDOUT, -EAGAIN (CRT_TRY and some
 * member still runs), -ECANCELED (the caller was aborted), -EINVAL.
 * On an error the members that finished were taken; the rest run on.
 * Task or plain thread; not from a member of g (asserted). */
CRT_API int crt_group_wait(crt_group *g, crt_time deadline);

/* Aborts every member (see crt_abort) and marks g cancelled: members
 * spawned later start aborted. Never waits. Anywhere. */
CRT_API void crt_group_cancel(crt_group *g);

/* Cancels g, waits for every member to finish and frees their handles,
 * shielded (the caller's own abort does not cut it short). Returns 0
 * (-EINVAL for NULL). Nobody else may be waiting on g (asserted).
 * Task or plain thread; not from a member of g (asserted). */
CRT_API int crt_group_destroy(crt_group *g);

#ifdef __cplusplus
}
#endif

#endif /* CRT_GROUP_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__GROUP_IMPL)
#define CRT__GROUP_IMPL

#include <string.h>

#define CRT__GROUP_CANCELLED 1u

/* Runs on the worker that finished t, after t left its stack and before
 * its record is released: records the completion — hands t to the first
 * crt_group_next caller whose claim succeeds, or queues it as done — and
 * wakes. It never frees t: the taker does, once t is released
 * (crt__join_take waits for that). */
CRT__INTERN void crt__group_on_finish(crt_task *t) {
    crt_group *g = t->group;
    crt__wait_node *chain = NULL, **tail = &chain;
    crt__lock_acquire(&g->lock);
    if (t->gprev) t->gprev->gnext = t->gnext;
    else g->running = t->gnext;
    if (t->gnext) t->gnext->gprev = t->gprev;
    t->gnext = t->gprev = NULL;
    g->nrunning--;
    while (g->q.head) {
        crt__wait_node *node = g->q.head;
        crt__waitq_remove(&g->q, node);
        if (crt__waiter_claim(node->waiter)) {
            node->ptr = t; /* the node is the waiter's: ours until the wake */
            node->waiter->result = 0;
            node->waiter->index = node->index;
            *tail = node;
            tail = &node->next;
            t = NULL;
            break;
        }
    }
    if (t) {
        if (g->done_tail) g->done_tail->gnext = t;
        else g->done_head = t;
        g->done_tail = t;
        g->ndone++;
    }
    /* Nothing left to finish: the other callers of next get -EPIPE. */
    while (g->nrunning == 0 && g->ndone == 0 && g->q.head) {
        crt__wait_node *node = g->q.head;
        crt__waitq_remove(&g->q, node);
        if (crt__waiter_claim(node->waiter)) {
            node->waiter->result = -EPIPE;
            node->waiter->index = node->index;
            *tail = node;
            tail = &node->next;
        }
    }
    *tail = NULL;
    crt__lock_release(&g->lock);
    /* From here on g is not touched: a woken owner may destroy it. */
    while (chain) {
        crt__wait_node *next = chain->next; /* read first: the wake ends the node */
        crt__waiter_wake_to(chain->waiter, 0);
        chain = next;
    }
}

CRT__INTERN int crt__group_attach(crt_group *g, crt_task *t) {
    t->group = g;
    t->gprev = NULL;
    crt__lock_acquire(&g->lock);
    t->gnext = g->running;
    if (g->running) g->running->gprev = t;
    g->running = t;
    g->nrunning++;
    int cancelled = (g->state & CRT__GROUP_CANCELLED) != 0;
    crt__lock_release(&g->lock);
    /* Not queued yet: it will begin with the abort pending. */
    if (cancelled) crt_abort(t);
    return 0;
}

CRT_API void crt_group_init(crt_group *g) {
    if (!g) return;
    g->hdr.attach = crt__group_attach;
    g->hdr.on_finish = crt__group_on_finish;
    g->lock = 0;
    g->state = 0;
    g->running = NULL;
    g->done_head = g->done_tail = NULL;
    g->nrunning = g->ndone = 0;
    g->q.head = g->q.tail = NULL;
}

CRT_API crt_task *crt_group_spawn(crt_group *g, crt_fn fn, void *arg) {
    if (!g) {
        errno = EINVAL;
        return NULL;
    }
    crt_spawn_opts o;
    memset(&o, 0, sizeof o);
    o.group = g;
    return crt_spawn_with(&o, fn, arg);
}

static inline int crt__group_is_member(crt_group *g) {
    crt_task *self = crt__task_self();
    return self && self->group == g;
}

/* crt_group_next without the cancel check and the misuse checks. */
CRT__INTERN int crt__group_next(crt_group *g, void **result, crt_time deadline) {
    crt__waiter w;
    crt__wait_node node;
    crt__lock_acquire(&g->lock);
    crt_task *t = g->done_head;
    if (t) {
        g->done_head = t->gnext;
        if (!g->done_head) g->done_tail = NULL;
        t->gnext = NULL;
        g->ndone--;
        crt__lock_release(&g->lock);
        crt__join_take(crt__worker_tls(), t, result);
        return 0;
    }
    if (g->nrunning == 0 || deadline == CRT_TRY) {
        int r = g->nrunning == 0 ? -EPIPE : -EAGAIN;
        crt__lock_release(&g->lock);
        return r;
    }
    crt__waiter_init_one(&w, &node, NULL, 0);
    crt__waitq_push(&g->q, &node);
    crt__lock_release(&g->lock);
    int r = crt__waiter_wait(&w, deadline);
    if (w.index >= 0) {
        if (r < 0) return r; /* -EPIPE: the last member went to another caller */
        crt__join_take(crt__worker_tls(), (crt_task *)node.ptr, result);
        return 0;
    }
    /* Our deadline or abort claimed first: no member was handed to us. */
    crt__lock_acquire(&g->lock);
    crt__waitq_remove(&g->q, &node);
    crt__lock_release(&g->lock);
    return r;
}

CRT_API int crt_group_next(crt_group *g, void **result, crt_time deadline) {
    if (!g) return -EINVAL;
    CRT_ASSERT(!crt__group_is_member(g), "crt_group_next: called from a member of the group");
    int r = crt__check_cancel();
    if (r < 0) return r;
    return crt__group_next(g, result, deadline);
}

CRT_API int crt_group_wait(crt_group *g, crt_time deadline) {
    if (!g) return -EINVAL;
    CRT_ASSERT(!crt__group_is_member(g), "crt_group_wait: called from a member of the group (it would wait for itself)");
    int r = crt__check_cancel();
    if (r < 0) return r;
    for (;;) {
        r = crt__group_next(g, NULL, deadline);
        if (r == -EPIPE) return 0;
        if (r < 0) return r;
    }
}

CRT_API void crt_group_cancel(crt_group *g) {
    if (!g) return;
    crt__lock_acquire(&g->lock);
    g->state |= CRT__GROUP_CANCELLED;
    /* Running members cannot be freed while we hold the lock: finishing
     * takes it to move them to the done list. */
    for (crt_task *t = g->running; t; t = t->gnext) crt_abort(t);
    crt__lock_release(&g->lock);
}

CRT_API int crt_group_destroy(crt_group *g) {
    if (!g) return -EINVAL;
    CRT_ASSERT(!crt__group_is_member(g), "crt_group_destroy: called from a member of the group (it would wait for itself)");
    crt_task *self = crt__task_self();
    int shield = self ? crt_shield(1) : 0;
    crt_group_cancel(g);
    while (crt__group_next(g, NULL, CRT_FOREVER) == 0) {
    }
    if (self) crt_shield(shield);
    crt__lock_acquire(&g->lock);
    int waiting = g->q.head != NULL;
    crt__lock_release(&g->lock);
    CRT_ASSERT(!waiting, "crt_group_destroy: tasks or threads are still waiting on the group");
    (void)waiting;
    return 0;
}

#endif /* CRT_IMPLEMENTATION */
