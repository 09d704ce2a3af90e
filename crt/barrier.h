/* crt/barrier.h — n parties meet: each waits until all n have arrived,
 * then all go on together; one of them is the round's leader.
 *
 *   crt_barrier b;
 *   crt_barrier_init(&b, NWORKERS);
 *   ... in each of the NWORKERS tasks, round after round:
 *   compute_my_part(step);
 *   if (crt_barrier_wait(&b, CRT_FOREVER) == 1) merge_parts(step);  // exactly one leader
 *   ...
 *   crt_barrier_destroy(&b);
 *
 * A value type (init in place, no allocation), reusable: the arrival that
 * completes a round starts the next one, so a party may come back for the
 * next round before the others have woken from the last. The party whose
 * arrival completes the round is its leader (crt_barrier_wait returns 1),
 * like pthread_barrier's PTHREAD_BARRIER_SERIAL_THREAD and tokio's
 * is_leader(); the others get 0.
 *
 * No configuration macros.
 * Errors: -ETIMEDOUT, -EAGAIN (CRT_TRY), -ECANCELED (the task was aborted).
 * Misuse (asserted unless NDEBUG): destroying a barrier with waiters.
 */
#ifndef CRT_BARRIER_H
#define CRT_BARRIER_H
#include "base.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crt_barrier {
    uint32_t lock;     /* guards everything below */
    uint32_t reserved;
    size_t n;          /* parties per round */
    size_t count;      /* arrived in this round */
    size_t round;      /* the number of the current round (wraps) */
    crt__waitq q;      /* waiting parties; node->n is their round */
} crt_barrier;

/* Initialises b for rounds of n parties (0 counts as 1). No allocation.
 * Anywhere. */
CRT_API void crt_barrier_init(crt_barrier *b, size_t n);

/* Arrives at b and waits until the round is complete.
 * Returns 1 for the leader (the arrival that completed the round), 0 for
 * the others; -ETIMEDOUT, -EAGAIN (deadline CRT_TRY and the caller would
 * not complete the round), -ECANCELED (the task was aborted), -EINVAL (b
 * NULL). On an error the caller's arrival is withdrawn — unless the round
 * completed before the deadline or abort could take effect, in which case
 * the call returns 0 instead: an arrival is never both counted and failed.
 * Task or plain thread. */
CRT_API int crt_barrier_wait(crt_barrier *b, crt_time deadline);

/* Ends b. Nobody may be waiting (asserted); nothing is freed. Anywhere. */
CRT_API void crt_barrier_destroy(crt_barrier *b);

#ifdef __cplusplus
}
#endif

#endif /* CRT_BARRIER_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__BARRIER_IMPL)
#define CRT__BARRIER_IMPL

CRT_API void crt_barrier_init(crt_barrier *b, size_t n) {
    if (!b) return;
    b->lock = 0;
    b->reserved = 0;
    b->n = n ? n : 1;
    b->count = 0;
    b->round = 0;
    b->q.head = b->q.tail = NULL;
}

/* The leader releases every party of the round just completed: they sit
 * at the head of the queue (the next round queues behind them). Lock held
 * on entry, released here before the wakes; b is not touched after it (a
 * released party may destroy it). */
CRT__INTERN void crt__barrier_release_unlock(crt_barrier *b) {
    crt__wait_node *chain = NULL, **tail = &chain;
    while (b->q.head) {
        crt__wait_node *node = b->q.head;
        crt__waitq_remove(&b->q, node);
        /* A party whose deadline or abort claimed it first finds its node
         * gone and returns 0 all the same: the round completed. */
        if (crt__waiter_claim(node->waiter)) {
            node->waiter->result = 0;
            node->waiter->index = node->index;
            *tail = node;
            tail = &node->next;
        }
    }
    *tail = NULL;
    crt__lock_release(&b->lock);
    while (chain) {
        crt__wait_node *next = chain->next; /* read first: the wake ends the node */
        crt__waiter_wake_to(chain->waiter, 0);
        chain = next;
    }
}

CRT_API int crt_barrier_wait(crt_barrier *b, crt_time deadline) {
    if (!b) return -EINVAL;
    int r = crt__check_cancel();
    if (r < 0) return r;
    crt__lock_acquire(&b->lock);
    if (b->count + 1 >= b->n) {
        b->count = 0;
        b->round++;
        crt__barrier_release_unlock(b);
        return 1;
    }
    if (deadline == CRT_TRY) {
        crt__lock_release(&b->lock);
        return -EAGAIN;
    }
    crt__waiter w;
    crt__wait_node node;
    crt__waiter_init_one(&w, &node, NULL, b->round);
    b->count++;
    crt__waitq_push(&b->q, &node);
    crt__lock_release(&b->lock);
    r = crt__waiter_wait(&w, deadline);
    if (w.index >= 0) return 0; /* released by the leader */
    crt__lock_acquire(&b->lock);
    if (node.linked && node.n == b->round) {
        /* Still in the current round: withdraw the arrival. */
        crt__waitq_remove(&b->q, &node);
        b->count--;
    } else {
        /* Its round completed (the leader is releasing it, or has). */
        crt__waitq_remove(&b->q, &node);
        r = 0;
    }
    crt__lock_release(&b->lock);
    return r;
}

CRT_API void crt_barrier_destroy(crt_barrier *b) {
    if (!b) return;
    crt__lock_acquire(&b->lock);
    int waiting = b->q.head != NULL;
    crt__lock_release(&b->lock);
    CRT_ASSERT(!waiting, "crt_barrier_destroy: tasks or threads are still waiting at the barrier");
    (void)waiting;
}

#endif /* CRT_IMPLEMENTATION */
