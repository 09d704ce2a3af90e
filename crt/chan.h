/* crt/chan.h — bounded channels: fixed-size elements copied in and out,
 * many senders and many receivers (each value reaches exactly one).
 *
 *   crt_chan *jobs = crt_chan_new(sizeof(int), 64);
 *   // producer                              // consumer
 *   int v = 42;                              int got;
 *   crt_chan_send(jobs, &v, CRT_FOREVER);    while (crt_chan_recv(jobs, &got, CRT_FOREVER) == 0)
 *   crt_chan_close(jobs);                        use(got);      // ends with -EPIPE
 *   ...once nobody uses it: crt_chan_free(jobs);
 *
 * The values live in a lock-free ring with a sequence stamp per slot
 * (Vyukov's bounded MPMC queue, with crossbeam's "lap" stamps so the
 * capacity need not be a power of two and no division is on the path).
 * Waiting tasks and threads are touched only when the ring is full or
 * empty: a send to a channel whose receiver is parked hands the value
 * straight to it and puts it in this worker's LIFO slot, so a ping-pong
 * never crosses workers; a receive that frees a slot while senders wait
 * moves the first waiting sender's value into the ring (Go's design).
 * A send that finds the ring full first polls for room for up to 2 µs
 * when a receiver may be running on another thread (the caller is a plain
 * thread, or another worker of its runtime is awake), so a receiver that
 * keeps up is not made to pay for a wake with every value it takes.
 *
 * Order: values of one sender are received in the order it sent them
 * (by any one receiver that gets several of them). Closing: sends fail at
 * once with -EPIPE, receivers take what is left, then get -EPIPE; parked
 * senders and receivers wake. Channels work between tasks of any runtimes
 * and plain threads.
 *
 * Select cases (crt/select.h): CRT_CASE_RECV(c, out), CRT_CASE_SEND(c, in).
 *
 * Errors: -EPIPE (closed; for a receive: closed and drained), -ETIMEDOUT,
 * -EAGAIN (deadline CRT_TRY and it would wait), -ECANCELED (the task was
 * aborted), -EINVAL (NULL channel or element). crt_chan_new: NULL with
 * errno EINVAL or ENOMEM.
 * Freeing a channel that tasks or threads still wait on is misuse
 * (asserted unless NDEBUG).
 */
#ifndef CRT_CHAN_H
#define CRT_CHAN_H
#include "case.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crt_chan crt_chan;

/* Creates a channel of `capacity` elements of elem_size bytes each.
 * Returns NULL with errno EINVAL (elem_size or capacity 0) or ENOMEM.
 * Anywhere. */
CRT_API crt_chan *crt_chan_new(size_t elem_size, size_t capacity);

/* Sends one element, waiting while the channel is full. Copies elem_size
 * bytes from elem before returning. If a receiver is parked, the value goes
 * straight to it and it runs next on this worker.
 * Returns 0, -EPIPE (closed), -ETIMEDOUT, -EAGAIN (deadline CRT_TRY and
 * full), -ECANCELED (aborted, also when the send could complete at once),
 * -EINVAL (c or elem NULL).
 * On any error the element was not sent. Task or plain thread. */
CRT_API int crt_chan_send(crt_chan *c, const void *elem, crt_time deadline);

/* Receives one element into out (elem_size bytes), waiting while the
 * channel is empty. After close it still returns what was sent before.
 * Returns 0, -EPIPE (closed and drained), -ETIMEDOUT, -EAGAIN (deadline
 * CRT_TRY and empty), -ECANCELED, -EINVAL (c or out NULL).
 * On any error nothing was taken and out is untouched. Task or plain thread. */
CRT_API int crt_chan_recv(crt_chan *c, void *out, crt_time deadline);

/* Closes the channel: sends from now on fail with -EPIPE, parked senders
 * return -EPIPE, receivers drain what is left and then get -EPIPE.
 * Closing twice is harmless; NULL is a no-op. Anywhere. */
CRT_API void crt_chan_close(crt_chan *c);

/* The number of elements in the channel (a snapshot; a send that is
 * being published counts). NULL: 0. Anywhere. */
CRT_API size_t crt_chan_len(crt_chan *c);

/* Frees the channel; elements still inside are dropped. Call it once no
 * call on it is in progress and none can start. A call whose effect let
 * another finish — the send that delivered the last value, the close that
 * made a receiver return -EPIPE — may still be returning: that is safe,
 * it touches the channel no more. Freeing with waiters is misuse
 * (asserted). NULL is a no-op. Anywhere. */
CRT_API void crt_chan_free(crt_chan *c);

/* Case: receive one element into out; completes with 0 or -EPIPE. */
#define CRT_CASE_RECV(c, out) crt__case_make(&crt__case_ops_chan_recv, (void *)(c), (void *)(out), 0)
/* Case: send the element at in; completes with 0 or -EPIPE. A send that
 * was not chosen did not happen. */
#define CRT_CASE_SEND(c, in) crt__case_make(&crt__case_ops_chan_send, (void *)(c), (void *)(in), 0)
CRT_API const crt__case_ops crt__case_ops_chan_recv;
CRT_API const crt__case_ops crt__case_ops_chan_send;

#ifdef __cplusplus
}
#endif

#endif /* CRT_CHAN_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__CHAN_IMPL)
#define CRT__CHAN_IMPL
#include "runtime.h"
#include <sched.h>
#include <string.h>

/* >>chan layout
 *
 * Positions (head, tail) hold a lap number above an index: index =
 * pos & (mark - 1), lap = pos & ~(one_lap - 1), where mark is the power of
 * two above the capacity and one_lap = 2 * mark. The step after index
 * cap - 1 goes to index 0 of the next lap, so the capacity is free.
 * Each slot's stamp says what it holds:
 *   stamp == pos           free, for a send at position pos
 *   stamp == pos + 1       holds the value sent at pos
 *   stamp == pos + one_lap taken: free for the send one lap later
 * Closing sets `mark` in tail: senders see it at once, receivers once the
 * ring is drained.
 *
 * The lock word guards the two wait queues; its spare bits say which queue
 * is non-empty, so the lock-free paths learn "someone waits" from one load.
 *
 * >>chan: why no wakeup is lost (the Dekker argument)
 * A receiver that found the ring empty registers with
 * crt__lock_acquire_set(RECV_WAITING) — a seq_cst RMW — and then, still
 * holding the lock, loads tail (seq_cst): only if the ring is still empty
 * does it enqueue and sleep. A sender reserves its slot with a seq_cst CAS
 * on tail and then loads the lock word (seq_cst), before it publishes the
 * value. All four are in the single seq_cst order: either the sender's
 * load comes after the receiver's RMW — it sees RECV_WAITING and serves a
 * receiver under the lock — or the receiver's RMW comes after it, hence
 * after the sender's CAS, and the receiver's tail load sees the reserved
 * slot and does not sleep (if the stamp is not written yet it lets go of
 * the lock and spins: the sender may need the lock to publish). The same
 * holds mirrored for senders waiting on a full ring (SEND_WAITING, the CAS
 * on head, the load of head).
 *
 * The lock-word load sits between the reserving CAS and the stamp store,
 * and a slow path publishes its stamp while holding the lock, so once a
 * value is visible a send touches the channel no more — except through
 * the lock, which crt_chan_free takes before freeing. That is what makes
 * "the receiver got the last value, so it frees the channel" safe. */

#define CRT__CHAN_RECV_WAITING 2u /* recvq is not empty (lock word) */
#define CRT__CHAN_SEND_WAITING 4u /* sendq is not empty (lock word) */

/* Results of the ring steps. */
enum { CRT__RING_OK, CRT__RING_EMPTY, CRT__RING_FULL, CRT__RING_CLOSED, CRT__RING_BUSY };

struct crt_chan {
    /* read-only after creation */
    size_t elem_size;
    size_t cap;
    size_t stride;            /* bytes per slot: the stamp, then the element */
    uint64_t mark;            /* the closed bit in tail; mark - 1 masks the index */
    uint64_t one_lap;
    unsigned char *slots;
    char pad0[CRT__CACHELINE - 2 * sizeof(uint64_t) - 3 * sizeof(size_t) - sizeof(unsigned char *)];
    uint64_t tail;            /* atomic: next send position, | mark once closed */
    char pad1[CRT__CACHELINE - sizeof(uint64_t)];
    uint64_t head;            /* atomic: next receive position */
    char pad2[CRT__CACHELINE - sizeof(uint64_t)];
    uint32_t lock;            /* crt__lock word + CRT__CHAN_*_WAITING */
    uint32_t reserved;
    crt__waitq recvq, sendq;  /* under lock */
};

static inline unsigned char *crt__chan_slot(const crt_chan *c, uint64_t pos) {
    return c->slots + (size_t)(pos & (c->mark - 1)) * c->stride;
}

static inline uint64_t *crt__chan_stamp(unsigned char *slot) { return (uint64_t *)(void *)slot; }

static inline uint64_t crt__chan_next(const crt_chan *c, uint64_t pos) {
    return (pos & (c->mark - 1)) + 1 < c->cap ? pos + 1 : (pos & ~(c->one_lap - 1)) + c->one_lap;
}

/* Copies one element. The common sizes are spelt out so they compile to a
 * move instead of a call to memcpy (a tenth of a W4 message). Once this is
 * inlined next to a caller's small object, GCC warns about the cases that
 * cannot apply to it; they are dead there, so the warnings are off here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Wstringop-overread"
#endif
static inline void crt__chan_copy(void *dst, const void *src, size_t n) {
    switch (n) {
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, n); break;
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* Waits a moment for another thread to finish a step it has begun (a slot
 * reserved but not yet published or freed): spins, then yields the
 * thread, since that one may have been preempted in between. */
CRT__INTERN void crt__chan_backoff(unsigned *step) {
    if (*step < 7) {
        for (unsigned i = 0; i < (1u << *step); i++) crt__cpu_relax();
        (*step)++;
    } else {
        sched_yield();
    }
}

/* >>chan ring */

/* Reserves the slot for a send: CRT__RING_OK (*pos is ours; publish it with
 * crt__chan_commit_push), _FULL, _CLOSED, or _BUSY (a receiver is freeing
 * the slot: try again in a moment). Never waits. */
static inline int crt__chan_reserve_push(crt_chan *c, uint64_t *pos) {
    /* Relaxed: a guess that the CAS below checks. */
    uint64_t tail = crt__load(&c->tail, CRT__RELAXED);
    for (;;) {
        if (CRT__UNLIKELY(tail & c->mark)) return CRT__RING_CLOSED;
        unsigned char *slot = crt__chan_slot(c, tail);
        /* Acquire: pairs with the release in crt__chan_commit_pop(); the
         * old value was copied out before we overwrite it. */
        uint64_t stamp = crt__load(crt__chan_stamp(slot), CRT__ACQUIRE);
        if (stamp == tail) {
            /* Seq_cst: the sender's half of the Dekker pair (see >>chan);
             * it precedes the seq_cst load of the lock word by the caller. */
            if (crt__cas_weak(&c->tail, &tail, crt__chan_next(c, tail), CRT__SEQ_CST, CRT__RELAXED)) {
                *pos = tail;
                return CRT__RING_OK;
            }
            continue; /* another sender won the slot; tail was reloaded */
        }
        if (stamp + c->one_lap == tail + 1) {
            /* The slot holds last lap's value. Seq_cst: a registering
             * sender's view of head in the Dekker pair with receivers. */
            uint64_t head = crt__load(&c->head, CRT__SEQ_CST);
            if (head + c->one_lap == tail) return CRT__RING_FULL;
            return CRT__RING_BUSY;
        }
        /* Our tail was stale (the slot moved on): look again. Never wait
         * here, though (callers may hold the lock): if tail has not moved,
         * report what head says. Relaxed as above. */
        uint64_t again = crt__load(&c->tail, CRT__RELAXED);
        if (again == tail) {
            /* Seq_cst: as the full check above. */
            uint64_t head = crt__load(&c->head, CRT__SEQ_CST);
            return head + c->one_lap == tail ? CRT__RING_FULL : CRT__RING_BUSY;
        }
        tail = again;
    }
}

static inline void crt__chan_commit_push(crt_chan *c, uint64_t pos, const void *elem) {
    unsigned char *slot = crt__chan_slot(c, pos);
    crt__chan_copy(slot + sizeof(uint64_t), elem, c->elem_size);
    /* Release: publishes the value; pairs with the acquire in
     * crt__chan_reserve_pop(). */
    crt__store(crt__chan_stamp(slot), pos + 1, CRT__RELEASE);
}

/* Reserves the value at head for a receive: CRT__RING_OK (*pos; take it
 * with crt__chan_commit_pop), _EMPTY, _CLOSED (closed and drained), or
 * _BUSY (a sender is publishing it: try again in a moment). Never waits. */
static inline int crt__chan_reserve_pop(crt_chan *c, uint64_t *pos) {
    /* Relaxed: a guess that the CAS below checks. */
    uint64_t head = crt__load(&c->head, CRT__RELAXED);
    for (;;) {
        unsigned char *slot = crt__chan_slot(c, head);
        /* Acquire: pairs with the release in crt__chan_commit_push(); the
         * value is visible once the stamp says so. */
        uint64_t stamp = crt__load(crt__chan_stamp(slot), CRT__ACQUIRE);
        if (stamp == head + 1) {
            /* Seq_cst: the receiver's half of the Dekker pair with waiting
             * senders; precedes the caller's seq_cst load of the lock word. */
            if (crt__cas_weak(&c->head, &head, crt__chan_next(c, head), CRT__SEQ_CST, CRT__RELAXED)) {
                *pos = head;
                return CRT__RING_OK;
            }
            continue;
        }
        if (stamp == head) {
            /* Seq_cst: see whether a sender has reserved this slot; the
             * registering receiver's view of tail in the Dekker pair. */
            uint64_t tail = crt__load(&c->tail, CRT__SEQ_CST);
            if ((tail & ~c->mark) == head) return (tail & c->mark) ? CRT__RING_CLOSED : CRT__RING_EMPTY;
            return CRT__RING_BUSY;
        }
        /* Either our head was stale, or the slot still holds last lap's
         * value because that receive has reserved it but not finished (it
         * may be waiting for the lock our caller holds: never wait here).
         * If head has not moved, only tail tells whether anything new was
         * sent (a send at head needs this slot, so it cannot have been). */
        uint64_t again = crt__load(&c->head, CRT__RELAXED);
        if (again == head) {
            /* Seq_cst: as above, the registering receiver's view of tail. */
            uint64_t tail = crt__load(&c->tail, CRT__SEQ_CST);
            if ((tail & ~c->mark) == head) return (tail & c->mark) ? CRT__RING_CLOSED : CRT__RING_EMPTY;
            return CRT__RING_BUSY;
        }
        head = again;
    }
}

static inline void crt__chan_commit_pop(crt_chan *c, uint64_t pos, void *out) {
    unsigned char *slot = crt__chan_slot(c, pos);
    crt__chan_copy(out, slot + sizeof(uint64_t), c->elem_size);
    /* Release: our copy is done before a sender reuses the slot; pairs with
     * the acquire in crt__chan_reserve_push(). */
    crt__store(crt__chan_stamp(slot), pos + c->one_lap, CRT__RELEASE);
}

/* Peeks under the lock (no reservation): is the ring empty / full? Stale
 * answers only cause a retry (they err towards "not empty", "not full").
 * Seq_cst loads: the registering side of the Dekker pairs (see >>chan). */
static inline int crt__chan_peek_empty(crt_chan *c) {
    uint64_t tail = crt__load(&c->tail, CRT__SEQ_CST);
    /* Relaxed: we only compare; a stale (older) head says "not empty". */
    uint64_t head = crt__load(&c->head, CRT__RELAXED);
    return tail == head; /* closed (mark set) counts as not empty: ready */
}

static inline int crt__chan_peek_full(crt_chan *c) {
    uint64_t head = crt__load(&c->head, CRT__SEQ_CST);
    /* Relaxed: a stale (older) tail says "not full"; mark says closed. */
    uint64_t tail = crt__load(&c->tail, CRT__RELAXED);
    return tail == head + c->one_lap;
}

/* >>chan waiters (all under c->lock) */

static inline uint32_t crt__chan_bits(const crt_chan *c) {
    return (c->recvq.head ? CRT__CHAN_RECV_WAITING : 0u) | (c->sendq.head ? CRT__CHAN_SEND_WAITING : 0u);
}

/* Won nodes are chained through their `next` (they are ours until the
 * wake); `lifo` holds at most the one receiver we handed a value to. */
typedef struct crt__chan_wakes {
    crt__wait_node *lifo, *rest;
} crt__chan_wakes;

/* Takes the first node off q and claims its waiter; NULL if q is empty,
 * else the node (*won says whether the claim won: a lost node belongs to a
 * select or a timeout that completed otherwise, and is just dropped). */
static inline crt__wait_node *crt__chan_pop_claim(crt__waitq *q, int *won) {
    crt__wait_node *node = q->head;
    *won = 0;
    if (!node) return NULL;
    crt__waiter *w = node->waiter; /* read before unlinking: then it is no longer ours to read */
    crt__waitq_remove(q, node);
    *won = crt__waiter_claim(w);
    return node;
}

static inline void crt__chan_won(crt__wait_node *node, int result, crt__wait_node **list) {
    node->waiter->result = result;
    node->waiter->index = node->index;
    node->next = *list;
    *list = node;
}

/* Wakes a list of won nodes. Reads each node before waking its waiter:
 * after the wake the node may be gone. */
CRT__INTERN void crt__chan_wake_list(crt__wait_node *node, int lifo) {
    while (node) {
        crt__wait_node *next = node->next;
        crt__waiter_wake_to(node->waiter, lifo);
        node = next;
    }
}

static inline void crt__chan_wake(crt__chan_wakes *wk) {
    if (wk->rest) crt__chan_wake_list(wk->rest, 0);
    if (wk->lifo) crt__chan_wake_list(wk->lifo, 1);
}

/* Under the lock: serve waiters while the ring allows — receivers while it
 * holds values, senders (their value moves into the ring) while it has
 * room. Every round takes at least one node off a queue, and nobody can
 * add one while we hold the lock, so this ends. */
CRT__INTERN void crt__chan_settle(crt_chan *c, crt__chan_wakes *wk) {
    for (;;) {
        int did = 0;
        if (c->recvq.head && !crt__chan_peek_empty(c)) {
            int won;
            crt__wait_node *node = crt__chan_pop_claim(&c->recvq, &won);
            did = 1;
            if (won) {
                uint64_t pos;
                int k = crt__chan_reserve_pop(c, &pos);
                if (k == CRT__RING_OK) {
                    crt__chan_commit_pop(c, pos, node->ptr);
                    crt__chan_won(node, 0, wk->lifo ? &wk->rest : &wk->lifo);
                } else {
                    /* Taken by someone else, or still being published (its
                     * sender will serve the next receiver): try again. */
                    crt__chan_won(node, CRT__RETRY, &wk->rest);
                }
            }
        }
        if (c->sendq.head && !crt__chan_peek_full(c)) {
            int won;
            crt__wait_node *node = crt__chan_pop_claim(&c->sendq, &won);
            did = 1;
            if (won) {
                uint64_t pos;
                int k = crt__chan_reserve_push(c, &pos);
                if (k == CRT__RING_OK) {
                    crt__chan_commit_push(c, pos, node->ptr);
                    crt__chan_won(node, 0, &wk->rest);
                } else {
                    crt__chan_won(node, k == CRT__RING_CLOSED ? -EPIPE : CRT__RETRY, &wk->rest);
                }
            }
        }
        if (!did) return;
    }
}

/* A send that reserved pos and saw receivers waiting: publish under the
 * lock and serve them. */
CRT__NOINLINE CRT__INTERN void crt__chan_commit_push_slow(crt_chan *c, uint64_t pos, const void *elem) {
    crt__chan_wakes wk = {NULL, NULL};
    crt__lock_acquire(&c->lock);
    crt__chan_commit_push(c, pos, elem);
    crt__chan_settle(c, &wk);
    crt__lock_release_with(&c->lock, crt__chan_bits(c));
    crt__chan_wake(&wk);
}

/* A receive that reserved pos and saw senders waiting: take the value and
 * move a waiting sender's into the freed room, under the lock. */
CRT__NOINLINE CRT__INTERN void crt__chan_commit_pop_slow(crt_chan *c, uint64_t pos, void *out) {
    crt__chan_wakes wk = {NULL, NULL};
    crt__lock_acquire(&c->lock);
    crt__chan_commit_pop(c, pos, out);
    crt__chan_settle(c, &wk);
    crt__lock_release_with(&c->lock, crt__chan_bits(c));
    crt__chan_wake(&wk);
}

/* Receivers are parked: if the ring is empty, give elem straight to the
 * first of them. Returns 0 (delivered), -EPIPE (closed), or 1 (go through
 * the ring: values are queued there, or nobody waits after all). */
CRT__NOINLINE CRT__INTERN int crt__chan_handoff(crt_chan *c, const void *elem) {
    crt__lock_acquire(&c->lock);
    /* Relaxed: under the lock; a stale tail or head reads as "not empty"
     * and only sends us through the ring, which is always correct. */
    uint64_t tail = crt__load(&c->tail, CRT__RELAXED);
    if (tail & c->mark) {
        crt__lock_release(&c->lock);
        return -EPIPE;
    }
    crt__wait_node *got = NULL;
    if (tail == crt__load(&c->head, CRT__RELAXED)) {
        int won;
        crt__wait_node *node;
        while ((node = crt__chan_pop_claim(&c->recvq, &won)) != NULL) {
            if (won) {
                crt__chan_copy(node->ptr, elem, c->elem_size);
                crt__chan_won(node, 0, &got);
                break;
            }
        }
    }
    crt__lock_release_with(&c->lock, crt__chan_bits(c));
    if (!got) return 1;
    crt__waiter_wake_to(got->waiter, 1); /* a message for it: run it next, here */
    return 0;
}

/* A send that found the ring full polls for room this long before it
 * parks (about what taking a few dozen values costs a receiver)... */
#define CRT__CHAN_SPIN CRT_US(2)
/* ...for room this many slots past its own (at most a quarter of the
 * capacity). */
#define CRT__CHAN_SPIN_AHEAD 32

/* The position k steps after pos (k < cap). */
static inline uint64_t crt__chan_advance(const crt_chan *c, uint64_t pos, uint64_t k) {
    uint64_t lap = pos & ~(c->one_lap - 1), index = (pos & (c->mark - 1)) + k;
    return index < c->cap ? lap + index : lap + c->one_lap + (index - c->cap);
}

/* A send found the ring full. Parking at once would make the receiver pay
 * for a wake with nearly every value it takes from then on (each frees one
 * slot for one parked sender), so if a receiver may be running on another
 * thread, poll for a moment instead. Poll for room a little ahead of our
 * own slot: a sender writing right behind the receiver shares a cache line
 * with it at every value, while one that starts a few lines back sends a
 * burst of values on lines the receiver has finished with. Returns 1 to
 * try again (room, or closed), 0 to park. Only a hint: after the polls the
 * wait's own recheck decides, and finds any room there is. */
CRT__NOINLINE CRT__INTERN int crt__chan_spin_for_room(crt_chan *c) {
    if (!crt__spin_may_help()) return 0;
    uint64_t ahead = c->cap / 4 < CRT__CHAN_SPIN_AHEAD ? c->cap / 4 : CRT__CHAN_SPIN_AHEAD;
    crt_time until = crt__mono_now() + CRT__CHAN_SPIN;
    for (unsigned i = 1;; i++) {
        crt__cpu_relax();
        /* A pause takes 10 to 150 cycles depending on the CPU: the clock,
         * not a count, bounds the polling. */
        if (i % 16 == 0 && crt__mono_now() >= until) return 0;
        /* Relaxed, both: hints; the retry's reservation acquires. */
        uint64_t tail = crt__load(&c->tail, CRT__RELAXED);
        if (tail & c->mark) return 1;
        uint64_t want = crt__chan_advance(c, tail, ahead);
        if (crt__load(crt__chan_stamp(crt__chan_slot(c, want)), CRT__RELAXED) == want) return 1;
    }
}

/* >>chan send path */

/* Sends without waiting: 0, -EPIPE, or 1 (full). */
static inline int crt__chan_try_send(crt_chan *c, const void *elem) {
    /* Relaxed: a hint to prefer the hand-off; the Dekker load below is
     * what guarantees a parked receiver is never missed. */
    if (CRT__UNLIKELY(crt__load(&c->lock, CRT__RELAXED) & CRT__CHAN_RECV_WAITING)) {
        int r = crt__chan_handoff(c, elem);
        if (r <= 0) return r;
    }
    unsigned step = 0;
    for (;;) {
        uint64_t pos;
        int k = crt__chan_reserve_push(c, &pos);
        if (CRT__LIKELY(k == CRT__RING_OK)) {
            /* Seq_cst: after the seq_cst CAS that reserved pos (Dekker with
             * a registering receiver's crt__lock_acquire_set; see >>chan). */
            if (CRT__UNLIKELY(crt__load(&c->lock, CRT__SEQ_CST) & CRT__CHAN_RECV_WAITING))
                crt__chan_commit_push_slow(c, pos, elem);
            else
                crt__chan_commit_push(c, pos, elem);
            return 0;
        }
        if (k == CRT__RING_FULL) return 1;
        if (k == CRT__RING_CLOSED) return -EPIPE;
        crt__chan_backoff(&step);
    }
}

/* Registers node (its ptr is the element) as a waiting sender, unless the
 * ring has room or is closed by now: then 1, and nothing is queued. */
CRT__INTERN int crt__chan_arm_send(crt_chan *c, crt__wait_node *node) {
    /* Seq_cst RMW inside: sets SEND_WAITING before the recheck (Dekker). */
    crt__lock_acquire_set(&c->lock, CRT__CHAN_SEND_WAITING);
    if (!crt__chan_peek_full(c)) {
        crt__lock_release_with(&c->lock, crt__chan_bits(c));
        return 1;
    }
    crt__waitq_push(&c->sendq, node);
    crt__lock_release_with(&c->lock, crt__chan_bits(c));
    return 0;
}

CRT__INTERN int crt__chan_arm_recv(crt_chan *c, crt__wait_node *node) {
    /* Seq_cst RMW inside: sets RECV_WAITING before the recheck (Dekker). */
    crt__lock_acquire_set(&c->lock, CRT__CHAN_RECV_WAITING);
    if (!crt__chan_peek_empty(c)) {
        crt__lock_release_with(&c->lock, crt__chan_bits(c));
        return 1;
    }
    crt__waitq_push(&c->recvq, node);
    crt__lock_release_with(&c->lock, crt__chan_bits(c));
    return 0;
}

/* Takes node off q if it is still there. Always under the lock, even when
 * it looks unlinked: a claimer that lost may still be unlinking it. */
CRT__INTERN void crt__chan_disarm(crt_chan *c, crt__waitq *q, crt__wait_node *node) {
    crt__lock_acquire(&c->lock);
    crt__waitq_remove(q, node);
    crt__lock_release_with(&c->lock, crt__chan_bits(c));
}

/* One wait of a send: 0 (a receiver moved the value in), -EPIPE, CRT__RETRY
 * (room appeared: try again), or the waiter's -ETIMEDOUT/-ECANCELED. */
CRT__NOINLINE CRT__INTERN int crt__chan_wait_send(crt_chan *c, const void *elem, crt_time deadline) {
    crt__waiter w;
    crt__wait_node node;
    crt__waiter_init_one(&w, &node, (void *)(uintptr_t)elem, 0); /* elem is only read */
    if (crt__chan_arm_send(c, &node)) {
        (void)crt__waiter_withdraw(&w); /* never queued, so never claimed */
        return CRT__RETRY;
    }
    int r = crt__waiter_wait(&w, deadline);
    if (w.index < 0) crt__chan_disarm(c, &c->sendq, &node); /* no winner unlinked it */
    return r;
}

CRT_API int crt_chan_send(crt_chan *c, const void *elem, crt_time deadline) {
    if (CRT__UNLIKELY(!c || !elem)) return -EINVAL;
    int r = crt__check_cancel(), spun = 0;
    if (r < 0) return r;
    for (;;) {
        r = crt__chan_try_send(c, elem);
        if (CRT__LIKELY(r <= 0)) return r;
        if (deadline == CRT_TRY) return -EAGAIN;
        if (!spun) {
            spun = 1; /* once a call: a sender that lost the room it saw parks */
            if (crt__chan_spin_for_room(c)) continue;
        }
        r = crt__chan_wait_send(c, elem, deadline);
        if (r != CRT__RETRY) return r;
        if ((r = crt__check_cancel()) < 0) return r;
    }
}

/* >>chan receive path */

/* Receives without waiting: 0, -EPIPE (closed and drained), or 1 (empty). */
static inline int crt__chan_try_recv(crt_chan *c, void *out) {
    unsigned step = 0;
    for (;;) {
        uint64_t pos;
        int k = crt__chan_reserve_pop(c, &pos);
        if (CRT__LIKELY(k == CRT__RING_OK)) {
            /* Seq_cst: after the seq_cst CAS that reserved pos (Dekker with
             * a registering sender's crt__lock_acquire_set; see >>chan). */
            if (CRT__UNLIKELY(crt__load(&c->lock, CRT__SEQ_CST) & CRT__CHAN_SEND_WAITING))
                crt__chan_commit_pop_slow(c, pos, out);
            else
                crt__chan_commit_pop(c, pos, out);
            return 0;
        }
        if (k == CRT__RING_EMPTY) return 1;
        if (k == CRT__RING_CLOSED) return -EPIPE;
        crt__chan_backoff(&step);
    }
}

/* One wait of a receive: 0 (a sender handed us a value), CRT__RETRY, or
 * the waiter's -ETIMEDOUT/-ECANCELED. */
CRT__NOINLINE CRT__INTERN int crt__chan_wait_recv(crt_chan *c, void *out, crt_time deadline) {
    crt__waiter w;
    crt__wait_node node;
    crt__waiter_init_one(&w, &node, out, 0);
    if (crt__chan_arm_recv(c, &node)) {
        (void)crt__waiter_withdraw(&w); /* never queued, so never claimed */
        return CRT__RETRY;
    }
    int r = crt__waiter_wait(&w, deadline);
    if (w.index < 0) crt__chan_disarm(c, &c->recvq, &node); /* no winner unlinked it */
    return r;
}

CRT_API int crt_chan_recv(crt_chan *c, void *out, crt_time deadline) {
    if (CRT__UNLIKELY(!c || !out)) return -EINVAL;
    int r = crt__check_cancel();
    if (r < 0) return r;
    for (;;) {
        r = crt__chan_try_recv(c, out);
        if (CRT__LIKELY(r <= 0)) return r;
        if (deadline == CRT_TRY) return -EAGAIN;
        r = crt__chan_wait_recv(c, out, deadline);
        if (r != CRT__RETRY) return r;
        if ((r = crt__check_cancel()) < 0) return r;
    }
}

/* >>chan lifecycle */

CRT_API crt_chan *crt_chan_new(size_t elem_size, size_t capacity) {
    if (elem_size == 0 || capacity == 0) {
        errno = EINVAL;
        return NULL;
    }
    /* The stamp, then the element, rounded to 8 so every stamp is aligned. */
    size_t stride = (sizeof(uint64_t) + elem_size + 7) & ~(size_t)7;
    size_t head_size = (sizeof(crt_chan) + 15) & ~(size_t)15;
    if (elem_size > SIZE_MAX / 2 || capacity > ((uint64_t)1 << 60) || capacity > (SIZE_MAX - head_size) / stride) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned char *mem = (unsigned char *)CRT_MALLOC(head_size + capacity * stride);
    if (!mem) {
        errno = ENOMEM;
        return NULL;
    }
    crt_chan *c = (crt_chan *)(void *)mem;
    memset(c, 0, sizeof *c);
    c->elem_size = elem_size;
    c->cap = capacity;
    c->stride = stride;
    uint64_t mark = 1;
    while (mark < (uint64_t)capacity + 1) mark <<= 1;
    c->mark = mark;
    c->one_lap = mark * 2;
    c->slots = mem + head_size;
    for (size_t i = 0; i < capacity; i++)
        /* Relaxed: the channel is published by whatever hands it over. */
        crt__store(crt__chan_stamp(c->slots + i * stride), (uint64_t)i, CRT__RELAXED);
    return c;
}

CRT_API void crt_chan_close(crt_chan *c) {
    if (!c) return;
    crt__wait_node *won = NULL;
    crt__lock_acquire(&c->lock);
    /* Seq_cst: a sender's reserving CAS either precedes this (its value
     * gets in and is drained) or fails and sees the mark. Under the lock,
     * so a registering waiter's recheck after us sees it too. */
    uint64_t tail = crt__fetch_or(&c->tail, c->mark, CRT__SEQ_CST);
    /* Relaxed: compared with tail, which no send can move any more; a
     * stale head only sends the receivers round to drain. */
    int drained = (tail & ~c->mark) == crt__load(&c->head, CRT__RELAXED);
    int claimed;
    crt__wait_node *node;
    /* Receivers get -EPIPE at once if nothing is left (then they touch the
     * channel no more), else they retry: drain, then see -EPIPE. */
    while ((node = crt__chan_pop_claim(&c->recvq, &claimed)) != NULL)
        if (claimed) crt__chan_won(node, drained ? -EPIPE : CRT__RETRY, &won);
    while ((node = crt__chan_pop_claim(&c->sendq, &claimed)) != NULL)
        if (claimed) crt__chan_won(node, -EPIPE, &won);
    crt__lock_release_with(&c->lock, 0);
    crt__chan_wake_list(won, 0);
}

CRT_API size_t crt_chan_len(crt_chan *c) {
    if (!c) return 0;
    for (;;) {
        /* Seq_cst: a snapshot of both ends, checked by rereading tail. */
        uint64_t tail = crt__load(&c->tail, CRT__SEQ_CST);
        uint64_t head = crt__load(&c->head, CRT__SEQ_CST);
        if (crt__load(&c->tail, CRT__SEQ_CST) != tail) continue;
        tail &= ~c->mark;
        uint64_t hix = head & (c->mark - 1), tix = tail & (c->mark - 1);
        if (hix < tix) return (size_t)(tix - hix);
        if (hix > tix) return (size_t)(c->cap - hix + tix);
        return tail == head ? 0 : c->cap;
    }
}

CRT_API void crt_chan_free(crt_chan *c) {
    if (!c) return;
    /* Taking the lock waits out a close or a slow-path send that is still
     * letting go of it (see >>chan). */
    crt__lock_acquire(&c->lock);
    CRT_ASSERT(crt__waitq_empty(&c->recvq) && crt__waitq_empty(&c->sendq),
               "crt_chan_free: tasks or threads are still waiting on the channel");
    CRT_FREE(c);
}

/* >>chan select cases */

static int crt__chan_recv_try(crt_case *cs) {
    int r = crt__chan_try_recv((crt_chan *)cs->obj, cs->ptr);
    if (r == 1) return 0;
    cs->result = r;
    return 1;
}

static int crt__chan_recv_arm(crt_case *cs, crt__wait_node *node) {
    return crt__chan_arm_recv((crt_chan *)cs->obj, node);
}

static void crt__chan_recv_disarm(crt_case *cs, crt__wait_node *node) {
    crt_chan *c = (crt_chan *)cs->obj;
    crt__chan_disarm(c, &c->recvq, node);
}

static int crt__chan_recv_finish(crt_case *cs, crt__wait_node *node, int result) {
    (void)node;
    if (result == CRT__RETRY) return 0;
    cs->result = result; /* 0: a sender copied the value into cs->ptr */
    return 1;
}

static int crt__chan_send_try(crt_case *cs) {
    int r = crt__chan_try_send((crt_chan *)cs->obj, cs->ptr);
    if (r == 1) return 0;
    cs->result = r;
    return 1;
}

static int crt__chan_send_arm(crt_case *cs, crt__wait_node *node) {
    return crt__chan_arm_send((crt_chan *)cs->obj, node);
}

static void crt__chan_send_disarm(crt_case *cs, crt__wait_node *node) {
    crt_chan *c = (crt_chan *)cs->obj;
    crt__chan_disarm(c, &c->sendq, node);
}

static int crt__chan_send_finish(crt_case *cs, crt__wait_node *node, int result) {
    (void)node;
    if (result == CRT__RETRY) return 0;
    cs->result = result; /* 0: a receiver moved the value into the ring */
    return 1;
}

const crt__case_ops crt__case_ops_chan_recv = {crt__chan_recv_try, crt__chan_recv_arm, crt__chan_recv_disarm,
                                               crt__chan_recv_finish};
const crt__case_ops crt__case_ops_chan_send = {crt__chan_send_try, crt__chan_send_arm, crt__chan_send_disarm,
                                               crt__chan_send_finish};

#endif /* CRT_IMPLEMENTATION */
