/* crt/watch.h — the latest value, with a version, and a way to wait for
 * the next one (tokio's watch: configuration, state, progress).
 *
 *   config cfg0 = {...};
 *   crt_watch *cfg = crt_watch_new(sizeof(config), &cfg0);    // version 0
 *   crt_watch_send(cfg, &newer);                              // version 1, 2, ...
 *   // a reader
 *   config now;
 *   uint64_t seen = crt_watch_get(cfg, &now);                 // a consistent copy
 *   while (crt_watch_changed(cfg, &seen, CRT_FOREVER) == 0)   // -EPIPE once closed
 *       crt_watch_get(cfg, &now), apply(&now);
 *
 * Readers never take a lock: crt_watch_get is a seqlock read, so it never
 * returns a torn value, whatever the element's size (a read that overlaps a
 * send copies again). Senders are serialised by a small lock. Intermediate
 * values may be skipped: a reader sees the latest. After close, a change a
 * waiter has not seen is still reported once, then -EPIPE. Works between
 * tasks of any runtimes and plain threads.
 *
 * Select case (crt/select.h): CRT_CASE_CHANGED(w, &seen).
 *
 * Errors: -EPIPE (closed; for crt_watch_changed: closed and nothing new),
 * -ETIMEDOUT, -EAGAIN (deadline CRT_TRY), -ECANCELED, -EINVAL (NULL
 * argument). crt_watch_new: NULL
 * with errno EINVAL or ENOMEM. Freeing while a change is awaited is misuse
 * (asserted unless NDEBUG).
 */
#ifndef CRT_WATCH_H
#define CRT_WATCH_H
#include "case.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crt_watch crt_watch;

/* Creates a watch holding a copy of initial (elem_size bytes) as version 0.
 * Returns NULL with errno EINVAL (elem_size 0 or initial NULL) or ENOMEM.
 * Anywhere. */
CRT_API crt_watch *crt_watch_new(size_t elem_size, const void *initial);

/* Replaces the value with a copy of elem; the version goes up by one and
 * waiters wake. Never waits (a send concurrent with another spins briefly).
 * Returns 0, -EPIPE (closed), -EINVAL (w or elem NULL). Not a blocking
 * call: an aborted task may still send. Anywhere. */
CRT_API int crt_watch_send(crt_watch *w, const void *elem);

/* Copies the current value into out (if not NULL) and returns its version.
 * The copy is consistent: never parts of two values. Works after close
 * (the last value stays). NULL w: 0. Anywhere. */
CRT_API uint64_t crt_watch_get(crt_watch *w, void *out);

/* Waits for a version newer than *seen, then sets *seen to the version it
 * observed (read the value with crt_watch_get: it may be newer still).
 * Start with the version crt_watch_get returned, or 0 to wait for the
 * first send.
 * Returns 0; -EPIPE (closed and no version newer than *seen: a change made
 * before the close is reported first); -ETIMEDOUT; -EAGAIN (deadline
 * CRT_TRY and nothing new); -ECANCELED; -EINVAL (w or seen NULL);
 * On any error *seen is unchanged.
 * Task or plain thread. */
CRT_API int crt_watch_changed(crt_watch *w, uint64_t *seen, crt_time deadline);

/* Closes: sends fail with -EPIPE, waiters see a last change (if any) and
 * then -EPIPE; crt_watch_get keeps working. Closing twice is harmless;
 * NULL is a no-op. Anywhere. */
CRT_API void crt_watch_close(crt_watch *w);

/* Frees the watch. Call it once no call on it is in progress; freeing
 * while a change is awaited is misuse (asserted). NULL is a no-op. Anywhere. */
CRT_API void crt_watch_free(crt_watch *w);

/* Case: a version newer than *seen (it updates *seen); completes with 0
 * or -EPIPE. */
#define CRT_CASE_CHANGED(w, seen) crt__case_make(&crt__case_ops_watch, (void *)(w), (void *)(seen), 0)
CRT_API const crt__case_ops crt__case_ops_watch;

#ifdef __cplusplus
}
#endif

#endif /* CRT_WATCH_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__WATCH_IMPL)
#define CRT__WATCH_IMPL
#include "runtime.h"
#include <sched.h>
#include <string.h>

/* >>watch seqlock
 * seq is twice the version, odd while a send is writing. The value is
 * stored and loaded only with atomic word (and, for the last bytes of an
 * odd size, byte) accesses, so a read that races with a write is no data
 * race — it is just thrown away. Writer: seq odd, then the words with
 * release stores (none may move above the odd seq), then seq even with a
 * release store. Reader: seq with an acquire load, the words with acquire
 * loads (the second look at seq may not move above them), seq again: if
 * it is unchanged and even, no write overlapped. If a reader loaded a word
 * of a later write, that write's odd seq happens-before its load of seq
 * (release store → acquire load), so it sees the change and retries. */
struct crt_watch {
    uint64_t seq;           /* atomic: 2 * version, +1 while a send writes */
    uint32_t lock;          /* serialises sends, guards q */
    uint32_t closed;        /* atomic: written under lock */
    crt__waitq q;           /* changed() waiting; node->ptr is their *seen */
    size_t elem_size;
    unsigned char *data;    /* 8-aligned, in the same allocation */
};

static void crt__watch_store_value(crt_watch *w, const void *elem) {
    const unsigned char *src = (const unsigned char *)elem;
    uint64_t *words = (uint64_t *)(void *)w->data;
    size_t nwords = w->elem_size / 8, i;
    for (i = 0; i < nwords; i++) {
        uint64_t v;
        memcpy(&v, src + 8 * i, 8);
        /* Release: stays below the odd seq store (see >>watch seqlock). */
        crt__store(&words[i], v, CRT__RELEASE);
    }
    for (i = nwords * 8; i < w->elem_size; i++)
        /* Release: as above. */
        crt__store(&w->data[i], src[i], CRT__RELEASE);
}

static void crt__watch_load_value(crt_watch *w, void *out) {
    unsigned char *dst = (unsigned char *)out;
    const uint64_t *words = (const uint64_t *)(const void *)w->data;
    size_t nwords = w->elem_size / 8, i;
    for (i = 0; i < nwords; i++) {
        /* Acquire: keeps the reader's second look at seq below this load;
         * pairs with the writer's release stores (see >>watch seqlock). */
        uint64_t v = crt__load(&words[i], CRT__ACQUIRE);
        memcpy(dst + 8 * i, &v, 8);
    }
    for (i = nwords * 8; i < w->elem_size; i++)
        /* Acquire: as above. */
        dst[i] = crt__load(&w->data[i], CRT__ACQUIRE);
}

CRT_API crt_watch *crt_watch_new(size_t elem_size, const void *initial) {
    if (elem_size == 0 || !initial) {
        errno = EINVAL;
        return NULL;
    }
    size_t head_size = (sizeof(crt_watch) + 15) & ~(size_t)15;
    if (elem_size > SIZE_MAX - head_size - 8) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned char *mem = (unsigned char *)CRT_MALLOC(head_size + ((elem_size + 7) & ~(size_t)7));
    if (!mem) {
        errno = ENOMEM;
        return NULL;
    }
    crt_watch *w = (crt_watch *)(void *)mem;
    memset(w, 0, sizeof *w);
    w->elem_size = elem_size;
    w->data = mem + head_size;
    crt__watch_store_value(w, initial);
    return w;
}

CRT_API int crt_watch_send(crt_watch *w, const void *elem) {
    if (!w || !elem) return -EINVAL;
    crt__lock_acquire(&w->lock);
    /* Relaxed: written only under the lock we hold. */
    if (crt__load(&w->closed, CRT__RELAXED)) {
        crt__lock_release(&w->lock);
        return -EPIPE;
    }
    /* Relaxed: only lock holders write seq. */
    uint64_t s = crt__load(&w->seq, CRT__RELAXED);
    /* Relaxed: the release stores of the value keep below it. */
    crt__store(&w->seq, s + 1, CRT__RELAXED);
    crt__watch_store_value(w, elem);
    /* Release: the new value is complete before readers see the even seq;
     * pairs with the acquire loads of seq in crt_watch_get/changed. */
    crt__store(&w->seq, s + 2, CRT__RELEASE);
    uint64_t version = (s + 2) / 2;
    /* Waiters whose *seen is older get the new version directly. */
    crt__wait_node *won = NULL, *node = w->q.head;
    while (node) {
        crt__wait_node *next = node->next;
        uint64_t *seen = (uint64_t *)node->ptr; /* its owner waits: it does not touch *seen */
        if (*seen < version) {
            crt__waiter *wt = node->waiter; /* read before unlinking */
            crt__waitq_remove(&w->q, node);
            if (crt__waiter_claim(wt)) {
                *seen = version;
                wt->result = 0;
                wt->index = node->index;
                node->next = won;
                won = node;
            }
        }
        node = next;
    }
    crt__lock_release(&w->lock);
    /* Read each node before its wake: afterwards it may be gone. */
    while (won) {
        crt__wait_node *next = won->next;
        crt__waiter_wake_to(won->waiter, 0);
        won = next;
    }
    return 0;
}

CRT_API uint64_t crt_watch_get(crt_watch *w, void *out) {
    if (!w) return 0;
    unsigned spins = 0;
    for (;;) {
        /* Acquire: pairs with the release store of an even seq in send. */
        uint64_t s1 = crt__load(&w->seq, CRT__ACQUIRE);
        if (!(s1 & 1)) {
            if (out) crt__watch_load_value(w, out);
            /* Relaxed: kept below the value's acquire loads (>>watch seqlock). */
            if (crt__load(&w->seq, CRT__RELAXED) == s1) return s1 / 2;
        }
        /* A send is writing; it may have been preempted. */
        if (++spins < 64) crt__cpu_relax();
        else sched_yield();
    }
}

/* The completed version: seq rounded down to even. */
static inline uint64_t crt__watch_version(crt_watch *w) {
    /* Acquire: pairs with the release store of seq in send, so a reader
     * told "changed" then reads at least that value. */
    return crt__load(&w->seq, CRT__ACQUIRE) / 2;
}

/* 0 (newer than *seen: *seen updated), -EPIPE, or 1 (nothing yet). Looks at
 * closed before the version: once closed no send happens, so the version
 * read after it is the last one and a change before the close is not lost. */
static inline int crt__watch_check(crt_watch *w, uint64_t *seen) {
    /* Acquire: pairs with the release store in crt_watch_close(). */
    uint32_t closed = crt__load(&w->closed, CRT__ACQUIRE);
    uint64_t v = crt__watch_version(w);
    if (v > *seen) {
        *seen = v;
        return 0;
    }
    return closed ? -EPIPE : 1;
}

CRT_API int crt_watch_changed(crt_watch *w, uint64_t *seen, crt_time deadline) {
    if (!w || !seen) return -EINVAL;
    int r = crt__check_cancel();
    if (r < 0) return r;
    r = crt__watch_check(w, seen);
    if (r != 1) return r;
    if (deadline == CRT_TRY) return -EAGAIN;
    crt__waiter wt;
    crt__wait_node node;
    crt__lock_acquire(&w->lock);
    r = crt__watch_check(w, seen); /* sends and close hold the lock: exact */
    if (r != 1) {
        crt__lock_release(&w->lock);
        return r;
    }
    crt__waiter_init_one(&wt, &node, seen, 0);
    crt__waitq_push(&w->q, &node);
    crt__lock_release(&w->lock);
    /* A send sets *seen and gives 0; a close gives -EPIPE. */
    r = crt__waiter_wait(&wt, deadline);
    if (wt.index < 0) {
        /* No winner unlinked it; take the lock even if it looks unlinked:
         * a sender that lost the claim may be unlinking it right now. */
        crt__lock_acquire(&w->lock);
        crt__waitq_remove(&w->q, &node);
        crt__lock_release(&w->lock);
    }
    return r;
}

CRT_API void crt_watch_close(crt_watch *w) {
    if (!w) return;
    crt__wait_node *won = NULL;
    crt__lock_acquire(&w->lock);
    /* Release: pairs with the acquire in crt__watch_check(). */
    crt__store(&w->closed, 1u, CRT__RELEASE);
    /* Waiters have seen the current version (else they would not wait). */
    while (w->q.head) {
        crt__wait_node *node = w->q.head;
        crt__waiter *wt = node->waiter; /* read before unlinking */
        crt__waitq_remove(&w->q, node);
        if (!crt__waiter_claim(wt)) continue;
        wt->result = -EPIPE;
        wt->index = node->index;
        node->next = won;
        won = node;
    }
    crt__lock_release(&w->lock);
    while (won) {
        crt__wait_node *next = won->next;
        crt__waiter_wake_to(won->waiter, 0);
        won = next;
    }
}

CRT_API void crt_watch_free(crt_watch *w) {
    if (!w) return;
    /* Taking the lock waits out a send or close still letting go of it. */
    crt__lock_acquire(&w->lock);
    CRT_ASSERT(crt__waitq_empty(&w->q), "crt_watch_free: tasks or threads are still waiting for a change");
    CRT_FREE(w);
}

/* >>watch select case */

static int crt__watch_case_try(crt_case *cs) {
    int r = crt__watch_check((crt_watch *)cs->obj, (uint64_t *)cs->ptr);
    if (r == 1) return 0;
    cs->result = r;
    return 1;
}

static int crt__watch_case_arm(crt_case *cs, crt__wait_node *node) {
    crt_watch *w = (crt_watch *)cs->obj;
    crt__lock_acquire(&w->lock);
    /* Relaxed: under the lock that sends and close hold. */
    int ready = crt__load(&w->seq, CRT__RELAXED) / 2 > *(uint64_t *)cs->ptr || crt__load(&w->closed, CRT__RELAXED);
    if (!ready) crt__waitq_push(&w->q, node);
    crt__lock_release(&w->lock);
    return ready;
}

static void crt__watch_case_disarm(crt_case *cs, crt__wait_node *node) {
    crt_watch *w = (crt_watch *)cs->obj;
    crt__lock_acquire(&w->lock);
    crt__waitq_remove(&w->q, node);
    crt__lock_release(&w->lock);
}

static int crt__watch_case_finish(crt_case *cs, crt__wait_node *node, int result) {
    (void)node;
    cs->result = result; /* 0: the sender set *seen; or -EPIPE */
    return 1;
}

const crt__case_ops crt__case_ops_watch = {crt__watch_case_try, crt__watch_case_arm, crt__watch_case_disarm,
                                           crt__watch_case_finish};

#endif /* CRT_IMPLEMENTATION */
