/* crt/select.h — wait for the first of several operations; exactly one
 * of them completes.
 *
 *   int v; crt_case cs[2];
 *   cs[0] = CRT_CASE_RECV(jobs, &v);
 *   cs[1] = CRT_CASE_TOKEN(&stop);
 *   switch (crt_select(cs, 2, 0, crt_after(CRT_SEC(1)))) {
 *   case 0: if (cs[0].result == 0) handle(v); break;   // -EPIPE: closed
 *   case 1: return;                                    // stop was cancelled
 *   case -ETIMEDOUT: idle(); break;
 *   }
 *
 * Cases come with their components: CRT_CASE_RECV, CRT_CASE_SEND
 * (crt/chan.h), CRT_CASE_ONESHOT (crt/oneshot.h), CRT_CASE_BCAST
 * (crt/bcast.h), CRT_CASE_CHANGED (crt/watch.h), CRT_CASE_SEM and
 * CRT_CASE_NOTIFY (crt/sem.h, crt/notify.h), CRT_CASE_TOKEN (crt/token.h),
 * CRT_CASE_FD (crt/net.h), and CRT_CASE_JOIN here.
 *
 * The operation of every case that did not complete did not happen: a send
 * that lost was not sent, a receive that lost took nothing — so a select in
 * a loop loses nothing (tokio's cancel-safety trap does not exist here).
 * A case on a closed object is ready and completes with -EPIPE in its
 * result. Among ready cases the choice is fair and random, unless flags has
 * CRT_SELECT_BIASED (the first ready one in array order). With no cases,
 * select just waits for the deadline.
 */
#ifndef CRT_SELECT_H
#define CRT_SELECT_H
#include "case.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRT_SELECT_BIASED 1   /* flag: prefer earlier cases instead of a fair random pick */

/* Waits until one case completes, or the deadline passes.
 * Returns the index of the completed case (its own return code, 0 or a
 * negative errno such as -EPIPE, is in cases[i].result), or -ETIMEDOUT,
 * -EAGAIN (deadline CRT_TRY and no case was ready), -ECANCELED (the task
 * was aborted), -ENOMEM, -EINVAL (cases NULL with n > 0, or a case with
 * no operation). On any negative return no case completed.
 * Task or plain thread. */
CRT_API int crt_select(crt_case *cases, size_t n, int flags, crt_time deadline);

/* Case: t finished; *result (if not NULL) gets its return value and the
 * handle is freed, as crt_join. */
#define CRT_CASE_JOIN(t, result) crt__case_make(&crt__case_ops_join, (void *)(t), (void *)(result), 0)
CRT_API const crt__case_ops crt__case_ops_join;

#ifdef __cplusplus
}
#endif

#endif /* CRT_SELECT_H */

#if defined(CRT_IMPLEMENTATION) && !defined(CRT__SELECT_IMPL)
#define CRT__SELECT_IMPL

#define CRT__SELECT_STACK_NODES 16

CRT_API int crt_select(crt_case *cases, size_t n, int flags, crt_time deadline) {
    if (n > 0 && !cases) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!cases[i].ops) return -EINVAL;
    int r = crt__check_cancel();
    if (r < 0) return r;
    crt__wait_node stack_nodes[CRT__SELECT_STACK_NODES];
    size_t stack_order[CRT__SELECT_STACK_NODES];
    crt__wait_node *nodes = stack_nodes;
    size_t *order = stack_order;
    if (n > CRT__SELECT_STACK_NODES) {
        /* One block: the nodes, then the order (sizes keep it aligned). */
        nodes = (crt__wait_node *)CRT_MALLOC(n * (sizeof *nodes + sizeof *order));
        if (!nodes) return -ENOMEM;
        order = (size_t *)(void *)(nodes + n);
    }
    /* The order cases are tried and armed in: a random permutation (Go's
     * pollorder), so that each ready case is as likely to be the first
     * ready one as any other. A random rotation would not be: a ready case
     * right after not-ready ones would win for all of them. Biased: array
     * order. */
    for (size_t i = 0; i < n; i++) order[i] = i;
    if (!(flags & CRT_SELECT_BIASED) && n > 1) {
        crt__worker *w = crt__worker_tls();
        static __thread uint64_t thread_rng;
        uint64_t *rng = w ? &w->rng : &thread_rng;
        if (!*rng) *rng = (uint64_t)(uintptr_t)&thread_rng ^ (uint64_t)crt__mono_now() ^ 1;
        for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            size_t j = (size_t)(crt__rng_next(rng) % (i + 1)), x = order[i];
            order[i] = order[j];
            order[j] = x;
        }
    }
    for (;;) {
        for (size_t k = 0; k < n; k++) {
            size_t i = order[k];
            if (cases[i].ops->try_now(&cases[i])) {
                r = (int)i;
                goto out;
            }
        }
        if (deadline == CRT_TRY) {
            r = -EAGAIN;
            goto out;
        }
        crt__waiter w;
        crt__waiter_init(&w);
        size_t armed = 0;
        int ready = 0;
        for (size_t k = 0; k < n && !ready; k++) {
            size_t i = order[k];
            nodes[i].waiter = &w;
            nodes[i].index = (int)i;
            nodes[i].linked = 0;
            nodes[i].ptr = cases[i].ptr;
            nodes[i].n = (size_t)cases[i].arg;
            if (cases[i].ops->arm(&cases[i], &nodes[i])) ready = 1;
            armed = k + 1;
        }
        if (ready) {
            /* Something became ready while arming: withdraw our own waiter so
             * no one hands us anything, take the nodes back, and try again.
             * If a case's claimer won first, collect what it handed us. */
            r = crt__waiter_withdraw(&w) ? 0 : crt__waiter_wait(&w, CRT_FOREVER);
        } else {
            r = crt__waiter_wait(&w, deadline);
        }
        /* Disarm every case but the winner's (its claimer unlinked that
         * node). `linked` is not ours to read here: a claimer that lost may
         * be unlinking a node right now under its object's lock, and then
         * reads it no more — disarm takes that lock, so once it returns
         * nobody touches the node or w. */
        for (size_t k = 0; k < armed; k++) {
            size_t i = order[k];
            if ((int)i != w.index) cases[i].ops->disarm(&cases[i], &nodes[i]);
        }
        if (w.index < 0) {
            if (ready) continue;          /* our own claim: go round */
            goto out;                     /* -ETIMEDOUT, -ECANCELED, -ENOMEM */
        }
        size_t i = (size_t)w.index;
        if (cases[i].ops->finish(&cases[i], &nodes[i], r)) {
            r = (int)i;
            goto out;
        }
        if ((r = crt__check_cancel()) < 0) goto out;
    }
out:
    if (nodes != stack_nodes) CRT_FREE(nodes);
    return r;
}

/* >>join case */
static int crt__join_try(crt_case *c) {
    crt_task *t = (crt_task *)c->obj;
    /* Acquire: pairs with the finisher's release; result is visible. */
    if (!(crt__load(&t->flags, CRT__ACQUIRE) & CRT__T_FINISHED)) return 0;
    crt__join_take(crt__worker_tls(), t, (void **)c->ptr);
    c->result = 0;
    return 1;
}

static int crt__join_arm(crt_case *c, crt__wait_node *node) {
    crt_task *t = (crt_task *)c->obj;
    crt__lock_acquire(&t->done_lock);
    /* Acq_rel: ordered with the finisher's CAS (see crt__join_wait). */
    uint32_t f = crt__fetch_or(&t->flags, (uint32_t)CRT__T_WAITERS, CRT__ACQ_REL);
    if (!(f & CRT__T_FINISHED)) crt__waitq_push(&t->done_q, node);
    crt__lock_release(&t->done_lock);
    return (f & CRT__T_FINISHED) != 0;
}

static void crt__join_disarm(crt_case *c, crt__wait_node *node) {
    crt_task *t = (crt_task *)c->obj;
    crt__lock_acquire(&t->done_lock);
    crt__waitq_remove(&t->done_q, node);
    crt__lock_release(&t->done_lock);
}

static int crt__join_finish(crt_case *c, crt__wait_node *node, int result) {
    (void)node;
    (void)result;
    return crt__join_try(c);
}

const crt__case_ops crt__case_ops_join = {crt__join_try, crt__join_arm, crt__join_disarm, crt__join_finish};

#endif /* CRT_IMPLEMENTATION */
