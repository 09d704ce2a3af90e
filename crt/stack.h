/* crt/stack.h — internal: task stacks.
 *
 * Stacks are carved from slab mappings (MAP_NORESERVE: address space only,
 * pages committed by the kernel on first touch and never zeroed by crt),
 * kept for reuse in a per-worker cache and, beyond it, in the runtime's
 * pool with their pages still committed ("warm"). Caches and pool trade
 * whole chains of up to CRT__STACK_BATCH stacks in O(1), so the pool's
 * lock is taken once per chain even when one worker starts tasks and
 * another finishes them, and no list is walked on the way. Nothing under
 * that lock touches a new page: slabs are mapped and never-used stacks'
 * records written outside it (see crt__stack_carve).
 *
 * Each stack's record (struct crt__stack: its machine context, its links)
 * sits at the very top of the stack itself, right above the task's first
 * frame: switching to a task touches one page, the one it runs on, and a
 * record costs no memory beside the stack's own top page.
 * Memory goes back to the kernel (MADV_DONTNEED) when a worker is idle: it
 * trims the warm stacks that have gone unused for CRT__STACK_TRIM_AGE,
 * oldest first, keeping CRT__STACK_KEEP_WARM. A burst of 100,000 tasks
 * therefore does not cost 100,000 system calls and page faults while it
 * runs, nor again each time it comes back soon after, and its memory is
 * returned once things have been calm for a second.
 * A stack's slot is its whole address space, guard page and record
 * included: the default 256 KiB slot gives a task 252 KiB less 128 bytes.
 *
 * Each stack has a guard page below it, made the cheapest way the kernel
 * allows, because the cost decides how many tasks a process can hold:
 *   1. madvise(MADV_GUARD_INSTALL) (Linux >= 6.13): no map entry per guard.
 *   2. mprotect(PROT_NONE): one more map entry per guard (two, as it splits
 *      the mapping), so only while the process stays well below
 *      vm.max_map_count (65,530 by default: ~32,000 guarded stacks).
 *   3. no guard page: at every switch away from the task, a canary word at
 *      the bottom of the stack is checked, and the stack pointer too.
 * CRT_STACK_GUARD=madvise|mprotect|canary in the environment forces one
 * (read when a runtime is created; a forced madvise that the kernel refuses
 * falls through to mprotect). A fault on a guard page — or a broken canary —
 * prints `crt: stack overflow in task "<name>"` and aborts; the report runs
 * on an alternate signal stack, since the task's own stack is exhausted.
 */
#ifndef CRT_STACK_H
#define CRT_STACK_H
#include "base.h"
#endif /* CRT_STACK_H */

#if defined(CRT_IMPLEMENTATION) && !defined(CRT__STACK_IMPL)
#define CRT__STACK_IMPL

#include "context.h"
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CRT__VALGRIND 1
#endif
#endif
#ifndef CRT__VALGRIND
#define CRT__VALGRIND 0
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define CRT__STACK_DEFAULT ((size_t)256 * 1024)
#define CRT__STACK_MIN ((size_t)16 * 1024)
#define CRT__STACK_MAX ((size_t)1 << 30)
#define CRT__STACK_BATCH 32        /* a chain; a worker caches up to two */
#define CRT__STACK_KEEP_WARM 256   /* warm stacks the pool keeps however long unused */
#define CRT__STACK_TRIM_AGE CRT_SEC(1) /* unused this long: its memory goes back */
#define CRT__STACK_TRIM_BATCH 64   /* stacks trimmed per idle moment */
#define CRT__STACKS_PER_SLAB 64
#define CRT__CANARY UINT64_C(0x6372742d63616e61) /* "crt-cana" */

enum { CRT__GUARD_AUTO, CRT__GUARD_MADVISE, CRT__GUARD_MPROTECT, CRT__GUARD_CANARY };

/* A stack and the machine context that runs on it, at the top of the
 * stack (see the top of the file); a task record points here while it
 * runs. */
typedef struct crt__stack {
    crt__ctx ctx;              /* the context running on this stack */
    int saved_errno;           /* its errno while switched out */
    unsigned guard;            /* how this stack is guarded */
    void *lo;                  /* lowest usable byte, just above the guard */
    size_t size;               /* usable bytes: up to this record */
    struct crt__stack *next;   /* the next stack of its chain */
    /* The first stack of a chain in the pool describes the chain: */
    struct crt__stack *chain_next, *chain_prev; /* the pool's lists */
    crt_time warm_since;       /* warm: when it came back (CLOCK_MONOTONIC) */
    unsigned chain_len;
    unsigned valgrind_id;
    int own_mapping;           /* mapped alone (custom size): unmapped on free */
} crt__stack;

/* The bytes a record takes from the top of its stack. */
#define CRT__STACK_RECORD ((sizeof(crt__stack) + CRT__CACHELINE - 1) & ~(size_t)(CRT__CACHELINE - 1))

typedef struct crt__stack_slab {
    struct crt__stack_slab *next;
    struct crt__stack_slab *fresh_next; /* the pool's slabs with slots never carved */
    void *base;
    size_t len;
    unsigned guard;            /* how its stacks are guarded */
    unsigned carved;           /* stacks handed out so far; the rest untouched */
} crt__stack_slab;

/* A worker's private cache, touched only by its owner: the chain it takes
 * from and gives to, and one full chain in reserve. */
typedef struct crt__stack_cache {
    crt__stack *head;
    unsigned count;
    crt__stack *spare;         /* NULL, or a chain of CRT__STACK_BATCH */
} crt__stack_cache;

typedef struct crt__stack_pool {
    size_t slot;               /* address space per stack, guard and record included */
    unsigned guard_mode;       /* CRT__GUARD_AUTO or the forced mode */
    pthread_mutex_t lock;      /* guards the lists and slabs */
    crt__stack *cold;          /* chains of trimmed stacks (chain_next) */
    crt__stack *warm_head, *warm_tail; /* chains with pages committed; newest first */
    size_t nwarm;              /* stacks in warm chains */
    crt__stack_slab *slabs;    /* newest first */
    crt__stack_slab *fresh;    /* slabs with slots never carved (fresh_next) */
} crt__stack_pool;

CRT__INTERN size_t crt__page_size(void) {
    static size_t page;
    size_t p = crt__load(&page, CRT__RELAXED); /* Relaxed: idempotent cache of a constant */
    if (!p) {
        long v = sysconf(_SC_PAGESIZE);
        p = v > 0 ? (size_t)v : 4096;
        crt__store(&page, p, CRT__RELAXED);
    }
    return p;
}

/* Rounds a requested stack size to a slot: at least the minimum, whole pages,
 * one guard page included. 0 for sizes beyond CRT__STACK_MAX. */
CRT__INTERN size_t crt__stack_slot_size(size_t requested) {
    size_t page = crt__page_size();
    if (requested == 0) requested = CRT__STACK_DEFAULT;
    if (requested > CRT__STACK_MAX) return 0;
    if (requested < CRT__STACK_MIN) requested = CRT__STACK_MIN;
    return (requested + page - 1) / page * page;
}

CRT__INTERN unsigned crt__stack_forced_guard(void) {
    const char *e = getenv("CRT_STACK_GUARD");
    if (!e) return CRT__GUARD_AUTO;
    if (!strcmp(e, "madvise")) return CRT__GUARD_MADVISE;
    if (!strcmp(e, "mprotect")) return CRT__GUARD_MPROTECT;
    if (!strcmp(e, "canary")) return CRT__GUARD_CANARY;
    return CRT__GUARD_AUTO;
}

CRT__INTERN void crt__stack_pool_init(crt__stack_pool *p, size_t slot) {
    p->slot = slot;
    p->guard_mode = crt__stack_forced_guard();
    pthread_mutex_init(&p->lock, NULL);
    p->cold = NULL;
    p->warm_head = p->warm_tail = NULL;
    p->nwarm = 0;
    p->slabs = NULL;
    p->fresh = NULL;
}

/* Warm chains: lock held. A chain given back goes in front. */
CRT__INTERN void crt__stack_warm_push(crt__stack_pool *p, crt__stack *first, unsigned n, crt_time now) {
    first->chain_len = n;
    first->warm_since = now;
    first->chain_prev = NULL;
    first->chain_next = p->warm_head;
    if (p->warm_head) p->warm_head->chain_prev = first;
    else p->warm_tail = first;
    p->warm_head = first;
    /* Relaxed store (under the lock): crt__stack_pool_trim peeks without it. */
    crt__store(&p->nwarm, p->nwarm + n, CRT__RELAXED);
}

CRT__INTERN void crt__stack_warm_unlink(crt__stack_pool *p, crt__stack *first) {
    if (first->chain_prev) first->chain_prev->chain_next = first->chain_next;
    else p->warm_head = first->chain_next;
    if (first->chain_next) first->chain_next->chain_prev = first->chain_prev;
    else p->warm_tail = first->chain_prev;
    /* Relaxed store (under the lock): crt__stack_pool_trim peeks without it. */
    crt__store(&p->nwarm, p->nwarm - first->chain_len, CRT__RELAXED);
}

/* >>map counting: the mprotect path stays well below vm.max_map_count */
CRT__INTERN long crt__read_long_file(const char *path, long fallback) {
    FILE *f = fopen(path, "r");
    long v = fallback;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1) v = fallback;
        fclose(f);
    }
    return v;
}

/* Not inlined: its 4 KiB buffer would otherwise land in the frame of
 * crt__task_prepare_slow, which runs on a parking task's stack — and a
 * parked task should need one page of stack. */
CRT__NOINLINE CRT__INTERN long crt__map_count(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    long n = 0;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < got; i++) n += buf[i] == '\n';
    fclose(f);
    return n;
}

/* Map entries this process's mprotect guards have added (each splits its
 * mapping: two more), and the count found the first time we looked, so
 * /proc/self/maps is read once, not for every slab. */
static long crt__guard_map_entries;
static long crt__map_baseline = -1;

/* True if reading addr faults: write() from it into a pipe fails with
 * EFAULT instead of raising a signal. */
CRT__INTERN int crt__page_faults(const void *addr) {
    int fds[2];
    if (pipe(fds) != 0) return 0;
    ssize_t r = write(fds[1], addr, 1);
    int faulted = r < 0 && errno == EFAULT;
    close(fds[0]);
    close(fds[1]);
    return faulted;
}

/* 1 if MADV_GUARD_INSTALL makes a page fault here, 0 if not, -1 unknown.
 * Checked once: some environments (qemu-user) accept the advice and
 * ignore it. */
static int crt__madvise_guard_ok = -1;

/* Guards n stacks of one slab; returns the mode that worked. */
CRT__INTERN unsigned crt__stack_guard_slab(crt__stack_pool *p, crt__stack_slab *s, unsigned n) {
    size_t page = crt__page_size();
    unsigned mode = p->guard_mode;
    /* Relaxed: a cache of a fact about the kernel; a racing first probe
     * only probes twice. */
    int ok = crt__load(&crt__madvise_guard_ok, CRT__RELAXED);
    if ((mode == CRT__GUARD_AUTO || mode == CRT__GUARD_MADVISE) && ok != 0) {
        unsigned i;
        for (i = 0; i < n; i++)
            if (madvise((char *)s->base + i * p->slot, page, MADV_GUARD_INSTALL) != 0) break;
        if (i == n && ok < 0) {
            ok = crt__page_faults(s->base);
            crt__store(&crt__madvise_guard_ok, ok, CRT__RELAXED);
        }
        if (i == n && ok) return CRT__GUARD_MADVISE;
        mode = CRT__GUARD_AUTO; /* refused or ignored: the next cheapest way */
    }
    if (mode == CRT__GUARD_AUTO || mode == CRT__GUARD_MPROTECT) {
        static long max_maps;
        /* Relaxed: caches of values that do not change; the slab is created
         * under the pool lock, and two pools racing on the first read only
         * read the same files twice. */
        long limit = crt__load(&max_maps, CRT__RELAXED);
        if (!limit) {
            limit = crt__read_long_file("/proc/sys/vm/max_map_count", 65530);
            crt__store(&max_maps, limit, CRT__RELAXED);
        }
        long base = crt__load(&crt__map_baseline, CRT__RELAXED);
        if (base < 0) {
            base = crt__map_count();
            crt__store(&crt__map_baseline, base, CRT__RELAXED);
        }
        long ours = crt__load(&crt__guard_map_entries, CRT__RELAXED);
        /* Stay below half the limit: the rest of the process maps too. */
        mode = (base >= 0 && base + ours + 2 * (long)n < limit / 2) ? CRT__GUARD_MPROTECT : CRT__GUARD_CANARY;
    }
    if (mode == CRT__GUARD_MPROTECT) {
        for (unsigned i = 0; i < n; i++) {
            if (mprotect((char *)s->base + i * p->slot, page, PROT_NONE) != 0) {
                /* Out of map entries after all: unguard what we guarded. */
                for (unsigned j = 0; j < i; j++) mprotect((char *)s->base + j * p->slot, page, PROT_READ | PROT_WRITE);
                return CRT__GUARD_CANARY;
            }
        }
        /* Relaxed: a count for the estimate above, no ordering needed. */
        crt__fetch_add(&crt__guard_map_entries, 2 * (long)n, CRT__RELAXED);
        return CRT__GUARD_MPROTECT;
    }
    return CRT__GUARD_CANARY;
}

/* The record of the stack whose slot begins at slot_base. */
static inline crt__stack *crt__stack_of_slot(void *slot_base, size_t slot) {
    return (crt__stack *)((char *)slot_base + slot - CRT__STACK_RECORD);
}

/* Writes the record of a stack about to be used for the first time. */
CRT__INTERN crt__stack *crt__stack_describe(void *slot_base, size_t slot, unsigned guard) {
    size_t page = crt__page_size();
    crt__stack *st = crt__stack_of_slot(slot_base, slot);
    memset(st, 0, sizeof *st);
    st->lo = (char *)slot_base + page;
    st->size = (size_t)((char *)st - (char *)st->lo);
    st->guard = guard;
#if CRT__VALGRIND
    st->valgrind_id = VALGRIND_STACK_REGISTER(st->lo, (char *)st->lo + st->size);
#endif
    if (guard == CRT__GUARD_CANARY) *(uint64_t *)st->lo = CRT__CANARY;
    return st;
}

/* Maps a new slab, guards in place; NULL without memory. Called without
 * the lock (a system call per guard, while other workers may need the
 * pool): two workers that find the pool used up at once map a slab each,
 * and both are kept. */
CRT__INTERN crt__stack_slab *crt__stack_slab_new(crt__stack_pool *p) {
    crt__stack_slab *s = (crt__stack_slab *)CRT_MALLOC(sizeof *s);
    if (!s) return NULL;
    s->len = p->slot * CRT__STACKS_PER_SLAB;
    s->base = mmap(NULL, s->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (s->base == MAP_FAILED) {
        CRT_FREE(s);
        return NULL;
    }
    s->guard = crt__stack_guard_slab(p, s, CRT__STACKS_PER_SLAB);
    s->carved = 0;
    return s;
}

/* Puts a new slab in front of the others. Lock held. */
CRT__INTERN void crt__stack_slab_add(crt__stack_pool *p, crt__stack_slab *s) {
    s->next = p->slabs;
    p->slabs = s;
    s->fresh_next = p->fresh;
    p->fresh = s;
}

/* A chain of used stacks for a cache: a warm chain, else a cold one; NULL
 * if there is none. Lock held. */
CRT__INTERN crt__stack *crt__stack_pool_reuse(crt__stack_pool *p, unsigned *n) {
    crt__stack *first = p->warm_head;
    if (first) {
        crt__stack_warm_unlink(p, first);
        *n = first->chain_len;
        return first;
    }
    first = p->cold;
    if (first) {
        p->cold = first->chain_next;
        *n = first->chain_len;
    }
    return first;
}

/* Reserves a few never-used slots for the caller, *n of them from slot
 * *from of the slab returned (only as many as a burst is likely to need:
 * each will commit a page); NULL if no slab has any left. Lock held. */
CRT__INTERN crt__stack_slab *crt__stack_pool_reserve(crt__stack_pool *p, unsigned *from, unsigned *n) {
    crt__stack_slab *s = p->fresh;
    if (!s) return NULL;
    unsigned k = CRT__STACKS_PER_SLAB - s->carved;
    if (k > 8) k = 8;
    *from = s->carved;
    *n = k;
    s->carved += k;
    if (s->carved == CRT__STACKS_PER_SLAB) p->fresh = s->fresh_next;
    return s;
}

/* Writes the records of n reserved slots and chains them, newest first.
 * Without the lock: each record's write commits its stack's top page — a
 * page fault, which costs ~10 µs on some virtual machines — and workers
 * growing the pool at once should take those faults side by side, not in
 * turn (W7's warm-up repetitions spent a third of their time holding or
 * waiting for the lock when this was done under it). */
CRT__INTERN crt__stack *crt__stack_carve(crt__stack_pool *p, crt__stack_slab *s, unsigned from, unsigned n) {
    crt__stack *first = NULL;
    for (unsigned i = from; i < from + n; i++) {
        crt__stack *st = crt__stack_describe((char *)s->base + (size_t)i * p->slot, p->slot, s->guard);
        st->next = first;
        first = st;
    }
    return first;
}

/* The stack the next crt__stack_alloc from c returns, if c has one: its
 * top is worth fetching ahead of time. */
static inline crt__stack *crt__stack_cache_peek(const crt__stack_cache *c) {
    return c->head ? c->head : c->spare;
}

/* Refills an empty cache from its spare chain, else from the pool: 0, or
 * -ENOMEM. Out of line, so that a task's first run, which nearly always
 * finds a cached stack, does not pay this path's frame. */
CRT__NOINLINE CRT__INTERN int crt__stack_cache_refill(crt__stack_pool *p, crt__stack_cache *c) {
    if (c->spare) {
        c->head = c->spare;
        c->count = CRT__STACK_BATCH;
        c->spare = NULL;
        return 0;
    }
    crt__stack_slab *made = NULL, *s;
    unsigned from = 0, n = 0;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        if (made) crt__stack_slab_add(p, made);
        made = NULL;
        crt__stack *used = crt__stack_pool_reuse(p, &c->count);
        s = used ? NULL : crt__stack_pool_reserve(p, &from, &n);
        pthread_mutex_unlock(&p->lock);
        if (used) {
            c->head = used;
            return 0;
        }
        if (s) break;
        /* Every slab is carved: map one more (a slab just added always
         * has room, so this runs once a refill). */
        made = crt__stack_slab_new(p);
        if (!made) return -ENOMEM;
    }
    c->head = crt__stack_carve(p, s, from, n);
    c->count = n;
    return 0;
}

/* A stack of the pool's size: from the worker's cache, else the pool. */
CRT__INTERN crt__stack *crt__stack_alloc(crt__stack_pool *p, crt__stack_cache *c) {
    if (CRT__UNLIKELY(!c->head) && crt__stack_cache_refill(p, c) < 0) return NULL;
    crt__stack *st = c->head;
    c->head = st->next;
    c->count--;
    return st;
}

/* A stack of any size in a mapping of its own (spawn options). Out of
 * line: rare, and a system call anyway. */
CRT__NOINLINE CRT__INTERN crt__stack *crt__stack_map(size_t slot) {
    void *base = mmap(NULL, slot, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) return NULL;
    size_t page = crt__page_size();
    unsigned guard = CRT__GUARD_MADVISE;
    unsigned forced = crt__stack_forced_guard();
    /* Relaxed: see crt__madvise_guard_ok. Unknown yet: probe this one. */
    int ok = crt__load(&crt__madvise_guard_ok, CRT__RELAXED);
    if (forced == CRT__GUARD_CANARY || forced == CRT__GUARD_MPROTECT || ok == 0 ||
        madvise(base, page, MADV_GUARD_INSTALL) != 0 || (ok < 0 && !crt__page_faults(base)))
        guard = CRT__GUARD_MPROTECT;
    if (forced == CRT__GUARD_CANARY || (guard == CRT__GUARD_MPROTECT && mprotect(base, page, PROT_NONE) != 0))
        guard = CRT__GUARD_CANARY;
    crt__stack *st = crt__stack_describe(base, slot, guard);
    st->own_mapping = 1;
    return st;
}

/* Out of line: only custom-size stacks come here (see crt__stack_free). */
CRT__NOINLINE CRT__INTERN void crt__stack_unmap(crt__stack *st) {
    size_t page = crt__page_size();
    char *base = (char *)st->lo - page;
    size_t len = (size_t)((char *)st + CRT__STACK_RECORD - base);
#if CRT__VALGRIND
    VALGRIND_STACK_DEREGISTER(st->valgrind_id);
#endif
    munmap(base, len); /* the record goes with it */
}

/* The cache is full (a chain of CRT__STACK_BATCH): it becomes the spare;
 * a spare already there goes back to the pool. */
CRT__NOINLINE CRT__INTERN void crt__stack_cache_spill(crt__stack_pool *p, crt__stack_cache *c) {
    crt__stack *give = c->spare;
    c->spare = c->head;
    c->head = NULL;
    c->count = 0;
    if (!give) return;
    crt_time now = crt__mono_now();
    pthread_mutex_lock(&p->lock);
    crt__stack_warm_push(p, give, CRT__STACK_BATCH, now);
    pthread_mutex_unlock(&p->lock);
}

/* Gives a stack back: to the worker's cache, whose chains go back to the
 * pool's warm list (pages still committed; see crt__stack_pool_trim). */
static inline void crt__stack_free(crt__stack_pool *p, crt__stack_cache *c, crt__stack *st) {
    if (CRT__UNLIKELY(st->own_mapping)) {
        crt__stack_unmap(st);
        return;
    }
    st->next = c->head;
    c->head = st;
    if (CRT__UNLIKELY(++c->count == CRT__STACK_BATCH)) crt__stack_cache_spill(p, c);
}

/* Hands memory back: the oldest warm chains, while more than `keep`
 * stacks are warm, that came back at `now - CRT__STACK_TRIM_AGE` or
 * earlier lose their pages (MADV_DONTNEED, all but the top page: it holds
 * the record and is the first touched on reuse), until `batch` stacks are
 * done. Called by a worker with nothing else to do. Returns how many
 * stacks it trimmed. */
CRT__INTERN unsigned crt__stack_pool_trim(crt__stack_pool *p, size_t keep, unsigned batch, crt_time now) {
    /* Racy peek: a stale count only delays or skips one trim. */
    if (crt__load(&p->nwarm, CRT__RELAXED) <= keep) return 0;
    size_t page = crt__page_size();
    unsigned done = 0;
    while (done < batch) {
        pthread_mutex_lock(&p->lock);
        crt__stack *first = p->nwarm > keep ? p->warm_tail : NULL;
        if (first && now - first->warm_since < CRT__STACK_TRIM_AGE) first = NULL;
        if (first) crt__stack_warm_unlink(p, first);
        pthread_mutex_unlock(&p->lock);
        if (!first) break;
        /* Unlinked: nobody can take it while we trim it. */
        for (crt__stack *st = first; st; st = st->next) {
            size_t below_top = (size_t)((char *)st - (char *)st->lo) / page * page;
            if (below_top > page) madvise(st->lo, below_top - page, MADV_DONTNEED);
            if (st->guard == CRT__GUARD_CANARY) *(uint64_t *)st->lo = CRT__CANARY;
        }
        done += first->chain_len;
        pthread_mutex_lock(&p->lock);
        first->chain_next = p->cold;
        p->cold = first;
        pthread_mutex_unlock(&p->lock);
    }
    return done;
}

/* When crt__stack_pool_trim next has something to do (CLOCK_MONOTONIC),
 * or CRT_FOREVER: an idle worker sleeps no longer than this. */
CRT__INTERN crt_time crt__stack_pool_next_trim(crt__stack_pool *p, size_t keep) {
    /* Racy peek: a stale count only delays or skips one trim. */
    if (crt__load(&p->nwarm, CRT__RELAXED) <= keep) return CRT_FOREVER;
    pthread_mutex_lock(&p->lock);
    crt_time at = p->nwarm > keep ? p->warm_tail->warm_since + CRT__STACK_TRIM_AGE : CRT_FOREVER;
    pthread_mutex_unlock(&p->lock);
    return at;
}

CRT__INTERN void crt__stack_pool_destroy(crt__stack_pool *p) {
    while (p->slabs) {
        crt__stack_slab *s = p->slabs;
        p->slabs = s->next;
#if CRT__VALGRIND
        for (unsigned i = 0; i < s->carved; i++)
            VALGRIND_STACK_DEREGISTER(crt__stack_of_slot((char *)s->base + (size_t)i * p->slot, p->slot)->valgrind_id);
#endif
        if (s->guard == CRT__GUARD_MPROTECT)
            crt__fetch_sub(&crt__guard_map_entries, 2 * (long)CRT__STACKS_PER_SLAB, CRT__RELAXED);
        munmap(s->base, s->len);
        CRT_FREE(s);
    }
    p->cold = p->warm_head = p->warm_tail = NULL;
    pthread_mutex_destroy(&p->lock);
}

/* True if a canary-guarded stack has overflowed: the task is switching
 * with its stack pointer (sp) below the stack, or something wrote over the
 * canary. (A deep frame can step over the canary word without writing it,
 * which the first test catches while the task is still down there.) */
static inline int crt__stack_overflowed(const crt__stack *st, const void *sp) {
    return st->guard == CRT__GUARD_CANARY &&
           ((const char *)sp < (const char *)st->lo + sizeof(uint64_t) || *(const uint64_t *)st->lo != CRT__CANARY);
}

/* >>overflow reporting
 * The SIGSEGV/SIGBUS handler asks the runtime (through this hook) for the
 * running task's stack and name; a fault inside that stack's guard page is
 * an overflow. Anything else goes to the handler that was there before. */
typedef int (*crt__overflow_probe_fn)(void *addr, const char **name);
static crt__overflow_probe_fn crt__overflow_probe;
static struct sigaction crt__old_segv, crt__old_bus;

CRT__INTERN void crt__write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

CRT__INTERN void crt__report_overflow(const char *name) {
    /* Only async-signal-safe calls: this may run in a signal handler. */
    static const char a[] = "crt: stack overflow in task \"";
    static const char b[] = "\"\n";
    if (!name) name = "unnamed";
    crt__write_all(2, a, sizeof a - 1);
    crt__write_all(2, name, strlen(name));
    crt__write_all(2, b, sizeof b - 1);
    signal(SIGABRT, SIG_DFL);
    abort();
}

static void crt__fault_handler(int sig, siginfo_t *info, void *uctx) {
    const char *name = NULL;
    crt__overflow_probe_fn probe = crt__overflow_probe;
    if (probe && probe(info->si_addr, &name)) crt__report_overflow(name);
    /* Not ours: restore the previous disposition and let the fault recur. */
    struct sigaction *old = sig == SIGSEGV ? &crt__old_segv : &crt__old_bus;
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, info, uctx);
        return;
    }
    if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN && old->sa_handler != NULL) {
        old->sa_handler(sig);
        return;
    }
    sigaction(sig, old, NULL);
}

static void crt__overflow_install_once(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = crt__fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &crt__old_segv);
    sigaction(SIGBUS, &sa, &crt__old_bus);
}

/* Installs the fault handler (once per process) with the runtime's probe. */
CRT__INTERN void crt__overflow_install(crt__overflow_probe_fn probe) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    crt__store(&crt__overflow_probe, probe, CRT__RELEASE); /* Release: the probe's code and data before the handler can run it */
    pthread_once(&once, crt__overflow_install_once);
}

/* Gives the calling thread an alternate signal stack, unless it has one:
 * a handler for a stack overflow cannot run on the exhausted stack.
 * Returns the memory to pass to crt__altstack_leave, or NULL. */
CRT__INTERN void *crt__altstack_enter(void) {
    stack_t old;
    if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE)) return NULL;
    size_t size = 64 * 1024;
    void *mem = CRT_MALLOC(size);
    if (!mem) return NULL;
    stack_t ss;
    ss.ss_sp = mem;
    ss.ss_size = size;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) != 0) {
        CRT_FREE(mem);
        return NULL;
    }
    return mem;
}

CRT__INTERN void crt__altstack_leave(void *mem) {
    if (!mem) return;
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    CRT_FREE(mem);
}

#endif /* CRT_IMPLEMENTATION */
