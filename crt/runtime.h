/* crt/runtime.h — the runtime: workers, tasks, the blocking pool.
 *
 * Stackful tasks on a work-stealing scheduler (tokio's design): each worker
 * has a bounded local run queue (its owner pushes, idle workers steal half),
 * a LIFO slot for the task its running task just woke (so a ping-pong stays
 * on one worker), and all share an injection queue for work from outside.
 * Idle workers park on a futex; at most half of them search for work at a
 * time; the one that holds the I/O driver waits in epoll_wait instead —
 * once sockets are in use it first polls them for up to 20 µs, so a
 * request that arrives right after the last reply finds it awake (the
 * sender skips waking a sleeping thread, the receiver a trip through the
 * scheduler of the kernel; the poll is cheap next to either).
 *
 *   static void *hello(void *arg) { printf("hi %s\n", (char *)arg); return NULL; }
 *   static void *main_task(void *arg) {
 *       crt_task *t = crt_spawn(hello, "there");
 *       return crt_join(t, NULL, CRT_FOREVER) == 0 ? arg : NULL;
 *   }
 *   int main(void) { return crt_run(NULL, main_task, NULL, NULL); }
 *
 * Tasks may migrate between workers when they block or yield. So: read
 * thread-locals again after any blocking call (crt saves and restores errno
 * for you), or spawn with `.pinned = 1` to keep a task on the worker that
 * first ran it. CRT_DEBUG_MIGRATE=1 in the environment moves every task to
 * another worker at every switch, to flush out code that caches them.
 *
 * Config (zero means default):
 *   workers               0: one per CPU; 1: everything on the caller's thread
 *   stack_size            per task, 256 KiB of address space, committed lazily;
 *                         rounded up to 16 KiB and whole pages; > 1 GiB: -EINVAL
 *   max_blocking_threads  64
 *   shutdown_timeout      5 s
 *   seed                  0: random; fixed with workers = 1: reproducible runs
 *   start_paused          the clock starts paused (see crt/time.h)
 *
 * Errors: -EINVAL (bad config or argument), -ENOMEM, -ETIMEDOUT, -EAGAIN,
 * -ECANCELED, -EPERM (a call that needs a runtime made outside one).
 */
#ifndef CRT_RUNTIME_H
#define CRT_RUNTIME_H
#include "base.h"
#include "waiter.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crt_runtime crt_runtime;
typedef struct crt_task crt_task;
typedef struct crt_group crt_group;

/* Internal: a group as the runtime sees it. crt/group.h's crt_group starts
 * with this, so crt_spawn_with can attach a task without knowing groups. */
typedef struct crt__group_hdr {
    int (*attach)(crt_group *g, crt_task *t);  /* at spawn, before the task is queued */
    void (*on_finish)(crt_task *t);            /* on the worker that finished it */
} crt__group_hdr;

/* A task's function: it gets the spawner's arg; what it returns is handed
 * to whoever joins it. */
typedef void *(*crt_fn)(void *arg);

typedef struct crt_config {
    int workers;               /* 0: one per CPU; 1: current-thread (all on the caller) */
    size_t stack_size;         /* per task; 0: 256 KiB of address space, committed lazily */
    int max_blocking_threads;  /* 0: 64 */
    crt_time shutdown_timeout; /* 0: 5 s */
    uint64_t seed;             /* 0: random; fixed + workers = 1: reproducible runs */
    int start_paused;          /* start with the clock paused (tests) */
} crt_config;

typedef struct crt_spawn_opts {
    const char *name;          /* shown in stack-overflow reports; not copied */
    size_t stack_size;         /* 0: the runtime's; other sizes get a mapping of their own */
    crt_group *group;          /* spawn into this group (crt/group.h) */
    int pinned;                /* stay on the worker that first runs it */
} crt_spawn_opts;

/* >>runtime */

/* Creates a runtime, runs main(arg) as its first task and waits for it,
 * then shuts the runtime down: every task still alive is aborted and given
 * cfg->shutdown_timeout to finish. *result (if not NULL) gets main's return
 * value. cfg may be NULL (all defaults).
 * Returns 0; -EINVAL (bad cfg, main NULL, called from inside a task),
 * -ENOMEM; -ETIMEDOUT if main finished but other tasks did not end within
 * the shutdown timeout (main's result is still stored; those tasks' stacks
 * are released without running their cleanup). Plain thread only. */
CRT_API int crt_run(const crt_config *cfg, crt_fn main, void *arg, void **result);

/* Creates a runtime. With workers > 1 its worker threads start now and
 * park until there is work; with workers = 1 tasks run only while a thread
 * is inside crt_runtime_block_on or crt_runtime_shutdown.
 * Returns NULL with errno EINVAL (workers < 0, stack_size > 1 GiB,
 * max_blocking_threads < 0, a negative timeout) or ENOMEM. Plain thread. */
CRT_API crt_runtime *crt_runtime_new(const crt_config *cfg);

/* Runs fn(arg) as a task of rt and blocks the calling thread until it
 * returns; *result (if not NULL) gets its return value. Tasks it spawned
 * may still be running (or, with workers = 1, waiting for the next
 * block_on) when this returns.
 * Returns 0, -EINVAL (rt or fn NULL, called from inside a task), -ENOMEM,
 * -EPIPE (rt is shutting down). Plain thread only. */
CRT_API int crt_runtime_block_on(crt_runtime *rt, crt_fn fn, void *arg, void **result);

/* Aborts every task of rt and waits until all of them and all blocking-pool
 * jobs have finished, or the deadline passes. Tasks spawned from now on
 * start aborted. May be called again (a later deadline waits longer).
 * Returns 0 (all finished), -ETIMEDOUT (some still run; crt_runtime_free
 * releases their stacks without running them), -EINVAL (rt NULL, called
 * from a task of rt). Plain thread only. */
CRT_API int crt_runtime_shutdown(crt_runtime *rt, crt_time deadline);

/* Stops the workers and frees rt and everything it owns. Call it after
 * crt_runtime_shutdown; tasks that did not finish are dropped without
 * running again. Waits for blocking-pool jobs still running. NULL is a
 * no-op. Plain thread only. */
CRT_API void crt_runtime_free(crt_runtime *rt);

/* >>tasks */

/* Spawns fn(arg) as a task of the caller's runtime. It runs later (the
 * caller keeps going), on any worker. The handle must be joined or
 * detached exactly once.
 * Returns NULL with errno EINVAL (fn NULL), ENOMEM, or EPERM (not called
 * from a task or a blocking-pool job of a runtime). Task or blocking job. */
CRT_API crt_task *crt_spawn(crt_fn fn, void *arg);

/* crt_spawn with options (o may be NULL). With o->group the group owns the
 * handle: abort it, never join or detach it (crt/group.h).
 * Errors as crt_spawn; EINVAL also for stack_size > 1 GiB (smaller sizes
 * are rounded up to 16 KiB and whole pages). Task or blocking job of a
 * runtime (EPERM elsewhere). */
CRT_API crt_task *crt_spawn_with(const crt_spawn_opts *o, crt_fn fn, void *arg);

/* Runs fn(arg) on the blocking pool: up to max_blocking_threads threads,
 * created on demand and retired after 10 s idle, for code that blocks the
 * thread (file I/O, a C library that sleeps). The job is a plain thread:
 * crt_current() is NULL there and crt's blocking calls block its thread.
 * Join it like a task (a task joining it parks; the worker keeps running).
 * A job cannot be aborted (crt_abort only marks it).
 * Returns NULL with errno EINVAL, ENOMEM or EPERM, as crt_spawn. Task or
 * blocking job of a runtime (EPERM elsewhere). */
CRT_API crt_task *crt_spawn_blocking(crt_fn fn, void *arg);

/* Waits for t to finish; then stores its return value in *result (if not
 * NULL) and frees the handle.
 * Returns 0 (finished — also when it was aborted), -ETIMEDOUT, -EAGAIN
 * (CRT_TRY and not finished), -ECANCELED (the caller was aborted),
 * -EINVAL (t NULL). On every error the handle stays valid and t runs on.
 * Joining twice, joining a detached or a group's handle, and a task joining
 * itself are misuse (asserted). Task or plain thread. */
CRT_API int crt_join(crt_task *t, void **result, crt_time deadline);

/* Gives up the handle: t runs on and is freed when it finishes. NULL is a
 * no-op; detaching twice or after a join is misuse (asserted). Anywhere. */
CRT_API void crt_detach(crt_task *t);

/* Asks t to stop: from now on every blocking call it makes (or is making)
 * returns -ECANCELED, until it finishes — unless it holds crt_shield(1),
 * which defers this to crt_shield(0). A task aborted before it started
 * still runs, with the abort pending, so it can free its arg. The handle
 * stays valid (join it as usual). Aborting a finished task does nothing;
 * a blocking-pool job is only marked. NULL is a no-op. Anywhere. */
CRT_API void crt_abort(crt_task *t);

/* Lets the other runnable tasks of this worker run first.
 * Returns 0, or -ECANCELED (the task was aborted; it did not yield).
 * On a plain thread: sched_yield(), returns 0. */
CRT_API int crt_yield(void);

/* -ECANCELED if the current task was aborted (and is not shielded), else 0
 * (also outside a task). Anywhere. */
CRT_API int crt_cancelled(void);

/* Holds aborts back while on (for cleanup that must block); an abort that
 * arrives meanwhile takes effect at crt_shield(0). Returns the previous
 * setting, so shields nest: `int s = crt_shield(1); ...; crt_shield(s);`.
 * Task only (asserted). */
CRT_API int crt_shield(int on);

/* The running task, or NULL outside a task (plain threads, blocking-pool
 * jobs). Anywhere. */
CRT_API crt_task *crt_current(void);

#ifdef __cplusplus
}
#endif

#endif /* CRT_RUNTIME_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__RUNTIME_IMPL)
#define CRT__RUNTIME_IMPL

#include "context.h"
#include "stack.h"
#include "wheel.h"
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>
/* A system header came before crt.h without _GNU_SOURCE (crt/base.h). */
#if defined(__GLIBC__) && !defined(__USE_GNU)
extern int pthread_getattr_np(pthread_t thread, pthread_attr_t *attr);
#endif

/* >>types ----------------------------------------------------------------- */

#define CRT__RUNQ_SIZE 256u           /* a worker's local queue (a power of two) */
#define CRT__FAIR_INTERVAL 61u        /* ticks between looks at shared queues */
#define CRT__LIFO_STREAK 16u          /* LIFO runs in a row before the queue gets a turn */
#define CRT__TASK_CACHE 256u          /* task records a worker keeps */
#define CRT__TASK_FETCH_AHEAD 16u     /* spawns ahead that a record is fetched */
#define CRT__TASKS_PER_CHUNK 64u
#define CRT__BLOCKING_IDLE CRT_SEC(10)

/* Task flags (crt_task.flags). */
enum {
    CRT__T_LIVE = 1u << 0,      /* spawned and not yet freed */
    CRT__T_FINISHED = 1u << 1,  /* its function returned; it is off its stack */
    CRT__T_RELEASED = 1u << 2,  /* the finishing side no longer touches the record */
    CRT__T_DETACHED = 1u << 3,  /* nobody will join: free it when released */
    CRT__T_WAITERS = 1u << 4,   /* done_q may hold waiters: finish under done_lock */
    CRT__T_CUSTOM = 1u << 5     /* line 1 was changed: restore it on free */
};

/* What the next context does for the task that just switched away. */
enum { CRT__ACT_NONE, CRT__ACT_YIELD, CRT__ACT_PARK, CRT__ACT_EXIT };

struct crt__worker;
struct crt__group_hdr;

/* A task record, laid out by cache line: spawning, running, finishing and
 * joining touch only line 0 (the machine context lives with the stack);
 * line 1 is for what few tasks use, and holds its defaults while unused,
 * so spawning a record from the free list writes one line (crt__task_free
 * restores them when CRT__T_CUSTOM says they were changed). */
struct CRT__ALIGNED(CRT__CACHELINE) crt_task {
    /* line 0 */
    struct crt_task *next;        /* blocking-pool jobs, inboxes */
    union {
        crt_fn fn;                /* until it starts */
        void *result;             /* once it finished */
    } u;
    void *arg;
    crt_runtime *rt;
    crt__stack *stack;            /* with the context: NULL until it first runs */
    uint64_t park;                /* atomic: its wait word (crt/waiter.h): number of the wait << 3 | ... */
    uint32_t flags;               /* atomic CRT__T_* */
    uint32_t abort;               /* atomic: 1 once aborted */
    uint8_t shield;               /* owner: aborts held back */
    uint8_t pinned, blocking, reserved;
    unsigned last_worker;
    /* line 1: defaults while unused */
    uint32_t done_lock;           /* guards done_q */
    uint32_t stack_pages;         /* 0: the runtime's size; else a mapping of its own */
    crt__waitq done_q;            /* join, select and group waiters */
    struct crt__worker *home;     /* pinned: the worker that first ran it */
    const char *name;
    crt_group *group;             /* crt/group.h: its links; the hooks are in its header */
    struct crt_task *gnext, *gprev;
#ifdef CRT_FP_CONTROL
    /* line 2: the spawner's FP control state, loaded as the task starts */
    uint64_t fpctl;
#endif
};

/* Claims w: 1 if the caller won and must now write the result and wake it
 * (crt__waiter_wake_to), 0 if someone else owns it. The state the claim
 * found is kept for the wake: a task that was parked stays parked until
 * the winner's wake, because once CRT__CLAIMED is set neither an abort's
 * poke nor another claimer writes the word, and the task is switched out. */
static inline int crt__waiter_claim(crt__waiter *w) {
    crt_task *t = w->task;
    if (!t) {
        /* Relaxed: a guess for the CAS, which carries the order. */
        uint32_t v = crt__load(&w->park, CRT__RELAXED);
        do {
            if (v & CRT__CLAIMED) return 0;
            /* Acq_rel: the winner's later writes (result, payload) follow
             * the claim, and it sees what the waiting side wrote before. */
        } while (!crt__cas_weak(&w->park, &v, v | CRT__CLAIMED, CRT__ACQ_REL, CRT__RELAXED));
        w->claimed_as = v & CRT__PARK_STATE;
        return 1;
    }
    /* Relaxed: as above. */
    uint64_t v = crt__load(&t->park, CRT__RELAXED);
    do {
        CRT_ASSERT((v >> CRT__PARK_GEN_SHIFT) == w->gen, "waiter claimed for a wait that is over");
        if (v & CRT__CLAIMED) return 0;
        /* Acq_rel: as above; when it finds the task parked it also acquires
         * the saved context (pairs with the park CAS in crt__after_switch). */
    } while (!crt__cas_weak(&t->park, &v, v | CRT__CLAIMED, CRT__ACQ_REL, CRT__RELAXED));
    w->claimed_as = (uint32_t)(v & CRT__PARK_STATE);
    return 1;
}

/* The word of a finished wait: claimed and notified. */
static inline uint64_t crt__park_done(const crt__waiter *w) {
    return (w->gen << CRT__PARK_GEN_SHIFT) | CRT__CLAIMED | CRT__NOTIFIED;
}

/* Ends the caller's own wait, whose claim it has just won (a deadline, an
 * abort, a withdrawal): the result, no winning node, and for a task the
 * finished word. Relaxed: nobody else writes a claimed word. */
static inline void crt__waiter_end_own(crt__waiter *w, int result) {
    w->result = result;
    w->index = -1;
    if (w->task) crt__store(&w->task->park, crt__park_done(w), CRT__RELAXED);
}

/* Two cache lines (a third for CRT_FP_CONTROL's word): a parked task costs
 * its stack page and this. */
#ifdef CRT_FP_CONTROL
#define CRT__TASK_LINES 3
#else
#define CRT__TASK_LINES 2
#endif
typedef char crt__task_size_check[sizeof(struct crt_task) == CRT__TASK_LINES * CRT__CACHELINE ? 1 : -1];

/* A worker's bounded local run queue (Go's runq): the owner pushes at tail,
 * the owner and thieves take from head with a CAS. */
typedef struct crt__runq {
    uint32_t head;                /* atomic */
    uint32_t tail;                /* atomic; written by the owner only */
    crt_task *slots[CRT__RUNQ_SIZE]; /* atomic (relaxed): thieves read while the owner writes */
} crt__runq;

/* A worker's armed deadlines: a timing wheel under a lock, and a hint for
 * lock-free peeks. */
typedef struct crt__timers {
    uint32_t lock;
    crt_time earliest;            /* atomic: nothing is due before it; CRT_FOREVER if empty */
    crt__wheel wheel;
} crt__timers;

/* The injection queue: a ring of task pointers under a lock (moving a
 * batch never touches the records), with an atomic length for lock-free
 * peeks. Its capacity grows with the number of task records, so a push
 * never fails. */
typedef struct crt__inject_q {
    uint32_t lock;
    crt_task **ring;
    uint64_t cap;                 /* a power of two, >= records */
    uint64_t head, tail;
    uint64_t len;                 /* atomic */
} crt__inject_q;

/* A list of tasks under a lock, with an atomic length for lock-free peeks. */
typedef struct crt__task_list {
    uint32_t lock;
    crt_task *head, *tail;
    uint64_t len;                 /* atomic */
} crt__task_list;

/* Worker parking states (crt__worker.park_state). */
enum { CRT__W_EMPTY, CRT__W_PARKED, CRT__W_NOTIFIED, CRT__W_PARKED_DRIVER };

typedef struct crt__worker {
    crt_runtime *rt;
    unsigned index;
    crt__ctx sched_ctx;           /* the worker thread's own stack: the scheduler loop */
    crt_task *current;            /* the running task, NULL in the scheduler loop */
    crt_task *prev;               /* switched away; its action is pending */
    int prev_action;
    uint64_t prev_park;           /* CRT__ACT_PARK: the park word it expects */
    crt_task *lifo;               /* LIFO slot: owner only, never stolen */
    unsigned lifo_streak;
    crt_task *nosteal_head, *nosteal_tail; /* owner only: pinned/migrated tasks */
    int *errno_loc;               /* this thread's errno */
    int single;                   /* the runtime has one worker: nobody steals */
    int migrate;                  /* CRT_DEBUG_MIGRATE */
    uint32_t fair_countdown;      /* runs until the shared queues get a look */
    int fair_due;
    uint32_t tick;
    int searching;
    int is_parked;                /* in the sleepers list (under rt->idle_lock) */
    uint32_t park_state;          /* atomic CRT__W_*; futex word */
    uint64_t rng;
    uint64_t spawned, exited;     /* atomic, written by the owner only */
    crt__task_list inbox;         /* tasks that must run here (pinned, migrate) */
    crt__stack_cache stacks;
    unsigned nfree_tasks;
    crt_task *free_tasks[2 * CRT__TASK_CACHE]; /* owner only */
    void *altstack;
    pthread_t thread;
    int started;
    crt__runq runq;
    crt__timers timers;
} crt__worker;

typedef struct crt__task_chunk {
    crt_task tasks[CRT__TASKS_PER_CHUNK];
    struct crt__task_chunk *next;
    void *mem;                    /* what CRT_MALLOC returned (before aligning) */
} crt__task_chunk;

struct crt_runtime {
    crt_config cfg;               /* with defaults resolved */
    unsigned nworkers;
    crt__worker *workers;
    int migrate;                  /* CRT_DEBUG_MIGRATE=1 and more than one worker */
    uint32_t stop;                /* atomic: workers leave their loops */
    uint32_t closing;             /* atomic: shutting down; new tasks start aborted */
    uint32_t in_block_on;         /* workers = 1: a thread drives the worker */
    crt__inject_q inject;         /* the global queue */
    /* idle workers (tokio's idle.rs): low 16 bits searching, high 16 unparked */
    uint32_t idle_state;
    uint32_t idle_lock;
    unsigned nsleepers;
    unsigned *sleepers;
    /* task records */
    pthread_mutex_t task_lock;    /* guards chunks, the free pool, growing inject */
    crt__task_chunk *chunks;
    uint64_t nrecords;
    crt_task **free_pool;         /* capacity free_cap >= nrecords */
    uint64_t free_cap;
    uint64_t nfree;
    uint64_t ext_spawned;         /* atomic: spawned from outside the workers */
    uint64_t ext_exited;          /* atomic: finished outside the workers */
    uint32_t ext_wakes;           /* atomic: crt__schedule calls from outside in flight */
    uint32_t live_word;           /* futex: bumped when a task ends while closing */
    crt__stack_pool stacks;
    /* clock */
    uint32_t clock_lock;
    uint32_t paused;              /* atomic */
    crt_time frozen;              /* atomic: the paused clock */
    crt_time offset;              /* atomic: runtime clock - CLOCK_MONOTONIC */
    /* I/O driver */
    int epfd, evfd;
    uint32_t driver_busy;         /* atomic: a worker holds the driver */
    void (*io_ready)(crt_runtime *rt, void *data, uint32_t events);
    void *io_state;               /* crt/net.h's per-runtime state */
    void (*io_free)(crt_runtime *rt);
    /* blocking pool */
    pthread_mutex_t bp_lock;
    pthread_cond_t bp_cond, bp_gone;
    crt_task *bp_head, *bp_tail;
    int bp_threads, bp_idle, bp_stop;
    int bp_queued;                /* jobs waiting for a thread */
    uint64_t bp_live;             /* atomic: jobs queued or running */
};

/* crt__group_hdr (a group as the runtime sees it) is declared above, with
 * the public types: crt/group.h's crt_group embeds it. */

/* >>thread-locals ----------------------------------------------------------
 * Read through non-inlined accessors with a compiler barrier: a task may
 * resume on another thread, and compilers cache the address of a
 * thread-local across calls. */
static __thread crt__worker *crt__tls_worker_v;
static __thread crt_runtime *crt__tls_blocking_rt;

CRT__OPAQUE static crt__worker *crt__worker_tls(void) {
    crt__worker *w = crt__tls_worker_v;
    crt__compiler_barrier();
    return w;
}

CRT__OPAQUE static void crt__worker_tls_set(crt__worker *w) {
    crt__tls_worker_v = w;
    crt__compiler_barrier();
}

CRT__OPAQUE static crt_runtime *crt__blocking_rt_tls(void) {
    crt_runtime *rt = crt__tls_blocking_rt;
    crt__compiler_barrier();
    return rt;
}

/* errno is reached through the worker's errno_loc, taken on the worker's
 * own thread: glibc declares __errno_location const, so the compiler could
 * reuse the previous thread's address after a switch. */

static inline crt_task *crt__task_self(void) {
    crt__worker *w = crt__worker_tls();
    return w ? w->current : NULL;
}

/* The runtime the caller belongs to: its worker's, or its blocking pool's. */
static inline crt_runtime *crt__current_rt(void) {
    crt__worker *w = crt__worker_tls();
    return w ? w->rt : crt__blocking_rt_tls();
}

static inline uint64_t crt__rng_next(uint64_t *s) {
    /* xorshift64*: cheap and good enough for victim order and select */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

/* >>clock ------------------------------------------------------------------ */

CRT__INTERN crt_time crt__rt_now(crt_runtime *rt) {
    /* Acquire: pairs with the release in crt__clock_set_paused(); a paused
     * clock's frozen value is read after the flag. */
    if (crt__load(&rt->paused, CRT__ACQUIRE)) return crt__load(&rt->frozen, CRT__RELAXED);
    /* Relaxed: offset changes only under clock_lock and a stale value is
     * off by what a concurrent resume is changing anyway. */
    return crt__mono_now() + crt__load(&rt->offset, CRT__RELAXED);
}

CRT_API crt_time crt_now(void) {
    crt__worker *w = crt__worker_tls();
    if (w) return crt__rt_now(w->rt);
    return crt__mono_now();
}

CRT_API crt_time crt_after(crt_time duration) { return crt__add_saturating(crt_now(), duration); }

/* A runtime-clock deadline as a CLOCK_MONOTONIC one (CRT_FOREVER while paused). */
CRT__INTERN crt_time crt__rt_to_real(crt_runtime *rt, crt_time deadline) {
    if (deadline == CRT_FOREVER || crt__load(&rt->paused, CRT__ACQUIRE)) return CRT_FOREVER;
    return crt__add_saturating(deadline, -crt__load(&rt->offset, CRT__RELAXED));
}

/* >>task records ------------------------------------------------------------
 * Records come in chunks owned by the runtime and are never returned to
 * the allocator before crt_runtime_free, so shutdown can walk every record
 * to abort the live ones without a list that each spawn would have to
 * lock. Workers keep a private cache of free records. */

CRT__INTERN int crt__inject_reserve(crt_runtime *rt, uint64_t records);
CRT__INTERN int crt__timers_reserve(crt_runtime *rt, uint64_t records);

/* Adds a chunk of records to the free pool. task_lock held. */
CRT__INTERN int crt__task_chunk_new(crt_runtime *rt) {
    uint64_t n = rt->nrecords + CRT__TASKS_PER_CHUNK;
    crt_task **pool = NULL;
    uint64_t cap = rt->free_cap;
    if (cap < n) {
        /* Doubling: growing by one chunk at a time would be quadratic. */
        cap = cap ? cap * 2 : 4 * CRT__TASKS_PER_CHUNK;
        pool = (crt_task **)CRT_MALLOC(cap * sizeof *pool);
        if (!pool) return -ENOMEM;
    }
    void *mem = CRT_MALLOC(sizeof(crt__task_chunk) + CRT__CACHELINE);
    if (!mem || crt__inject_reserve(rt, n) < 0 || crt__timers_reserve(rt, n) < 0) {
        CRT_FREE(pool);
        CRT_FREE(mem);
        return -ENOMEM;
    }
    if (pool) {
        if (rt->nfree) memcpy(pool, rt->free_pool, rt->nfree * sizeof *pool);
        CRT_FREE(rt->free_pool);
        rt->free_pool = pool;
        rt->free_cap = cap;
    }
    crt__task_chunk *c = (crt__task_chunk *)(((uintptr_t)mem + CRT__CACHELINE - 1) & ~(uintptr_t)(CRT__CACHELINE - 1));
    /* Every field at its default; flags 0: not live, shutdown skips it. */
    memset(c, 0, sizeof *c);
    c->mem = mem;
    for (unsigned i = CRT__TASKS_PER_CHUNK; i-- > 0;) rt->free_pool[rt->nfree++] = &c->tasks[i];
    c->next = rt->chunks;
    rt->chunks = c;
    rt->nrecords = n;
    return 0;
}

/* Takes a record from w's cache (which has one). Records come back when
 * their tasks are joined, and with many tasks alive at once (a burst of a
 * million spawns, joined later) a record has long left the CPU's caches
 * when a spawn takes it again, so its first write would wait for memory.
 * So ask now for the record the spawn CRT__TASK_FETCH_AHEAD spawns from
 * now will take: measured, a tenth off a one-worker spawn and join. */
static inline crt_task *crt__task_cache_take(crt__worker *w) {
    crt_task *t = w->free_tasks[--w->nfree_tasks];
    if (w->nfree_tasks >= CRT__TASK_FETCH_AHEAD)
        __builtin_prefetch(w->free_tasks[w->nfree_tasks - CRT__TASK_FETCH_AHEAD], 1);
    return t;
}

CRT__INTERN crt_task *crt__task_alloc(crt_runtime *rt, crt__worker *w) {
    if (w && w->nfree_tasks) return crt__task_cache_take(w);
    pthread_mutex_lock(&rt->task_lock);
    if (!rt->nfree && crt__task_chunk_new(rt) < 0) {
        pthread_mutex_unlock(&rt->task_lock);
        return NULL;
    }
    crt_task *t = rt->free_pool[--rt->nfree];
    /* A batch for the worker's cache, so the next spawns stay off the lock. */
    if (w) {
        uint64_t k = rt->nfree < CRT__TASK_CACHE ? rt->nfree : CRT__TASK_CACHE;
        rt->nfree -= k;
        memcpy(w->free_tasks, rt->free_pool + rt->nfree, k * sizeof *w->free_tasks);
        w->nfree_tasks = (unsigned)k;
    }
    pthread_mutex_unlock(&rt->task_lock);
    return t;
}

/* Restores line 1 after a custom spawn changed it. */
CRT__INTERN void crt__task_reset_custom(crt_task *t) {
    t->home = NULL;
    t->name = NULL;
    t->stack_pages = 0;
    t->group = NULL;
    t->gnext = t->gprev = NULL;
    t->pinned = 0;
    t->blocking = 0;
}

CRT__INTERN void crt__task_free_slow(crt__worker *w, crt_task *t);

/* Returns a record to the free lists; w is the caller's worker (or NULL). */
static inline void crt__task_free_on(crt__worker *w, crt_task *t) {
    /* Relaxed: nobody else holds the record any more. */
    uint32_t f = crt__load(&t->flags, CRT__RELAXED);
    crt__store(&t->flags, 0u, CRT__RELAXED);
    if (CRT__UNLIKELY(f & CRT__T_CUSTOM)) crt__task_reset_custom(t);
    if (CRT__LIKELY(w && w->rt == t->rt && w->nfree_tasks < 2 * CRT__TASK_CACHE)) {
        w->free_tasks[w->nfree_tasks++] = t;
        return;
    }
    crt__task_free_slow(w, t);
}

CRT__INTERN void crt__task_free_slow(crt__worker *w, crt_task *t) {
    crt_runtime *rt = t->rt;
    pthread_mutex_lock(&rt->task_lock);
    rt->free_pool[rt->nfree++] = t;
    if (w && w->rt == rt) {
        /* The cache is full: half of it goes back in one batch. */
        w->nfree_tasks -= CRT__TASK_CACHE;
        memcpy(rt->free_pool + rt->nfree, w->free_tasks + w->nfree_tasks, CRT__TASK_CACHE * sizeof *w->free_tasks);
        rt->nfree += CRT__TASK_CACHE;
    }
    pthread_mutex_unlock(&rt->task_lock);
}

static inline void crt__task_free(crt_task *t) { crt__task_free_on(crt__worker_tls(), t); }

/* Fills line 0 of a free record; the rest holds its defaults. */
static inline void crt__task_init(crt_task *t, crt_runtime *rt, crt_fn fn, void *arg) {
    t->u.fn = fn;
    t->arg = arg;
    t->rt = rt;
    t->stack = NULL;
    t->shield = 0;
    /* Relaxed: the record is published by the queue push that follows. */
    crt__store(&t->park, (uint64_t)CRT__NOTIFIED, CRT__RELAXED);
    crt__store(&t->abort, crt__load(&rt->closing, CRT__RELAXED), CRT__RELAXED);
    crt__store(&t->flags, (uint32_t)CRT__T_LIVE, CRT__RELAXED);
#ifdef CRT_FP_CONTROL
    t->fpctl = crt__fp_read(); /* the spawner's, for its first run */
#endif
}

/* >>task lists (injection queue, inboxes) ----------------------------------- */

CRT__INTERN void crt__list_push_chain(crt__task_list *l, crt_task *first, crt_task *last, uint64_t n) {
    last->next = NULL;
    crt__lock_acquire(&l->lock);
    if (l->tail) l->tail->next = first;
    else l->head = first;
    l->tail = last;
    /* Release: pairs with the acquire peek in crt__list_len(). */
    crt__store(&l->len, crt__load(&l->len, CRT__RELAXED) + n, CRT__RELEASE);
    crt__lock_release(&l->lock);
}

static inline uint64_t crt__list_len(crt__task_list *l) {
    /* Acquire: a hint; the lock orders the real access. */
    return crt__load(&l->len, CRT__ACQUIRE);
}

/* Pops up to max tasks as a chain; returns the first, *n the count. */
CRT__INTERN crt_task *crt__list_pop_chain(crt__task_list *l, uint64_t max, uint64_t *n) {
    *n = 0;
    if (!crt__list_len(l)) return NULL;
    crt__lock_acquire(&l->lock);
    crt_task *first = l->head, *last = NULL, *t = first;
    uint64_t got = 0;
    while (t && got < max) {
        last = t;
        t = t->next;
        got++;
    }
    if (got) {
        l->head = t;
        if (!t) l->tail = NULL;
        last->next = NULL;
        crt__store(&l->len, crt__load(&l->len, CRT__RELAXED) - got, CRT__RELAXED);
    }
    crt__lock_release(&l->lock);
    *n = got;
    return got ? first : NULL;
}

/* >>injection queue ------------------------------------------------------------ */

/* Grows the ring to hold `records` tasks. task_lock held. */
CRT__INTERN int crt__inject_reserve(crt_runtime *rt, uint64_t records) {
    crt__inject_q *q = &rt->inject;
    if (q->cap >= records) return 0;
    uint64_t cap = q->cap ? q->cap : 256;
    while (cap < records) cap *= 2;
    crt_task **ring = (crt_task **)CRT_MALLOC(cap * sizeof *ring);
    if (!ring) return -ENOMEM;
    crt__lock_acquire(&q->lock);
    uint64_t n = q->tail - q->head;
    for (uint64_t i = 0; i < n; i++) ring[i] = q->ring[(q->head + i) & (q->cap - 1)];
    crt_task **old = q->ring;
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
    q->tail = n;
    crt__lock_release(&q->lock);
    CRT_FREE(old);
    return 0;
}

CRT__INTERN void crt__inject_push(crt_runtime *rt, crt_task *const *tasks, uint64_t n) {
    crt__inject_q *q = &rt->inject;
    crt__lock_acquire(&q->lock);
    for (uint64_t i = 0; i < n; i++) q->ring[(q->tail + i) & (q->cap - 1)] = tasks[i];
    q->tail += n;
    /* Release: pairs with the acquire peek in crt__inject_len(). */
    crt__store(&q->len, q->tail - q->head, CRT__RELEASE);
    crt__lock_release(&q->lock);
}

static inline uint64_t crt__inject_len(crt_runtime *rt) {
    /* Acquire: a hint; the lock orders the real access. */
    return crt__load(&rt->inject.len, CRT__ACQUIRE);
}

/* Pops up to max tasks into out; returns how many. */
CRT__INTERN uint64_t crt__inject_pop(crt_runtime *rt, crt_task **out, uint64_t max) {
    crt__inject_q *q = &rt->inject;
    if (!crt__inject_len(rt)) return 0;
    crt__lock_acquire(&q->lock);
    uint64_t n = q->tail - q->head;
    if (n > max) n = max;
    for (uint64_t i = 0; i < n; i++) out[i] = q->ring[(q->head + i) & (q->cap - 1)];
    q->head += n;
    crt__store(&q->len, q->tail - q->head, CRT__RELAXED);
    crt__lock_release(&q->lock);
    return n;
}

/* >>run queue --------------------------------------------------------------- */

static inline uint32_t crt__runq_len(crt__runq *q) {
    /* Acquire on both: a consistent-enough snapshot for a hint. */
    uint32_t h = crt__load(&q->head, CRT__ACQUIRE);
    uint32_t t = crt__load(&q->tail, CRT__ACQUIRE);
    return t - h;
}

CRT__INTERN void crt__inject(crt_runtime *rt, crt_task *const *tasks, uint64_t n);

/* The queue is full: move half of it and t to the injection queue. */
/* Not inlined: its batch array (1 KiB) would otherwise sit in the frames of
 * the hot paths that push (every park goes through one), and a parked task
 * should need one page of stack. */
CRT__NOINLINE CRT__INTERN int crt__runq_push_overflow(crt__worker *w, crt_task *t, uint32_t head, uint32_t tail) {
    crt__runq *q = &w->runq;
    uint32_t n = (tail - head) / 2;
    crt_task *batch[CRT__RUNQ_SIZE / 2 + 1];
    for (uint32_t i = 0; i < n; i++) batch[i] = crt__load(&q->slots[(head + i) % CRT__RUNQ_SIZE], CRT__RELAXED);
    /* Release: our slot reads happen before thieves may reuse them.
     * Fails if a thief got there first; the caller then retries a push. */
    if (!crt__cas(&q->head, &head, head + n, CRT__RELEASE, CRT__RELAXED)) return 0;
    batch[n] = t;
    crt__inject(w->rt, batch, n + 1);
    return 1;
}

/* Owner only. Always inlined where a yield requeues its task (the hottest
 * push); everywhere else through crt__runq_push, which the compiler may
 * keep out of line. */
static CRT__HOT_INLINE void crt__runq_push_inline(crt__worker *w, crt_task *t) {
    crt__runq *q = &w->runq;
    for (;;) {
        /* Acquire: pairs with the consumers' CAS on head, so we do not
         * overwrite a slot before its reader has taken it. */
        uint32_t head = crt__load(&q->head, CRT__ACQUIRE);
        uint32_t tail = crt__load(&q->tail, CRT__RELAXED); /* Relaxed: we are its only writer */
        if (tail - head < CRT__RUNQ_SIZE) {
            crt__store(&q->slots[tail % CRT__RUNQ_SIZE], t, CRT__RELAXED);
            /* Release: publishes the slot; pairs with the acquire loads of
             * tail in crt__runq_pop() and crt__runq_steal(). */
            crt__store(&q->tail, tail + 1, CRT__RELEASE);
            return;
        }
        if (crt__runq_push_overflow(w, t, head, tail)) return;
    }
}

static inline void crt__runq_push(crt__worker *w, crt_task *t) { crt__runq_push_inline(w, t); }

/* Owner only. With one worker nobody steals, so no CAS is needed. */
static CRT__HOT_INLINE crt_task *crt__runq_pop(crt__worker *w) {
    crt__runq *q = &w->runq;
    if (w->single) {
        uint32_t head = crt__load(&q->head, CRT__RELAXED);
        if (head == crt__load(&q->tail, CRT__RELAXED)) return NULL;
        crt_task *t = crt__load(&q->slots[head % CRT__RUNQ_SIZE], CRT__RELAXED);
        crt__store(&q->head, head + 1, CRT__RELAXED);
        return t;
    }
    for (;;) {
        uint32_t head = crt__load(&q->head, CRT__ACQUIRE); /* Acquire: see the thieves' progress */
        uint32_t tail = crt__load(&q->tail, CRT__RELAXED); /* Relaxed: our own writes */
        if (head == tail) return NULL;
        crt_task *t = crt__load(&q->slots[head % CRT__RUNQ_SIZE], CRT__RELAXED);
        /* Release: our slot read is done before the slot can be reused. */
        if (crt__cas(&q->head, &head, head + 1, CRT__RELEASE, CRT__RELAXED)) return t;
    }
}

/* A thief takes half of victim's queue into its own and returns one of
 * them to run. The thief's queue is usually empty, but not always (the
 * fairness tick can send a worker with local work to steal): the batch is
 * capped by the room left in it, or its writes would wrap onto its own
 * queued tasks and one task would be run twice. */
CRT__INTERN crt_task *crt__runq_steal(crt__worker *thief, crt__worker *victim) {
    crt__runq *q = &victim->runq, *mine = &thief->runq;
    uint32_t my_tail = crt__load(&mine->tail, CRT__RELAXED);
    /* Acquire: pairs with the CAS of whoever took our slots below head, so
     * we overwrite none before its reader has taken it. A stale head only
     * understates the room. */
    uint32_t room = CRT__RUNQ_SIZE - (my_tail - crt__load(&mine->head, CRT__ACQUIRE));
    for (;;) {
        /* Acquire on both: the slots we read were published before tail. */
        uint32_t head = crt__load(&q->head, CRT__ACQUIRE);
        uint32_t tail = crt__load(&q->tail, CRT__ACQUIRE);
        uint32_t n = tail - head;
        n -= n / 2;
        if (n > CRT__RUNQ_SIZE / 2) continue; /* read head and tail at different moments */
        if (n > room) n = room;
        if (n == 0) return NULL;
        for (uint32_t i = 0; i < n; i++) {
            crt_task *t = crt__load(&q->slots[(head + i) % CRT__RUNQ_SIZE], CRT__RELAXED);
            crt__store(&mine->slots[(my_tail + i) % CRT__RUNQ_SIZE], t, CRT__RELAXED);
        }
        /* Acq_rel: commits the batch; our reads happen before the victim
         * may reuse the slots. */
        if (crt__cas(&q->head, &head, head + n, CRT__ACQ_REL, CRT__RELAXED)) {
            crt_task *run = crt__load(&mine->slots[(my_tail + n - 1) % CRT__RUNQ_SIZE], CRT__RELAXED);
            /* Release: publishes the other n-1 in our own queue. */
            if (n > 1) crt__store(&mine->tail, my_tail + n - 1, CRT__RELEASE);
            return run;
        }
    }
}

/* >>idle workers (tokio's protocol) ----------------------------------------- */

#define CRT__IDLE_SEARCH 1u
#define CRT__IDLE_UNPARK (1u << 16)
static inline unsigned crt__idle_searching(uint32_t s) { return s & 0xffffu; }
static inline unsigned crt__idle_unparked(uint32_t s) { return s >> 16; }

/* Whether a caller about to wait for another thread to act (a sender on
 * a full channel) should poll for a moment first. A plain
 * thread should: the other side runs elsewhere, and a futex sleep and
 * wake cost microseconds. A task only while another worker of its runtime
 * is awake: with every other worker asleep, whoever would act is a task
 * queued behind this one, and spinning only keeps it from running. */
static inline int crt__spin_may_help(void) {
    crt__worker *w = crt__worker_tls();
    if (!w) return 1;
    /* Relaxed: a hint; a stale count costs one short spin or one park. */
    return crt__idle_unparked(crt__load(&w->rt->idle_state, CRT__RELAXED)) >= 2;
}

CRT__INTERN void crt__worker_unpark(crt__worker *w) {
    /* Acq_rel: the work we pushed is visible to the worker once it sees
     * NOTIFIED; pairs with the exchanges in crt__worker_park(). */
    uint32_t prev = crt__xchg(&w->park_state, (uint32_t)CRT__W_NOTIFIED, CRT__ACQ_REL);
    if (prev == CRT__W_PARKED) {
        crt__futex_wake(&w->park_state, 1);
    } else if (prev == CRT__W_PARKED_DRIVER) {
        uint64_t one = 1;
        ssize_t r = write(w->rt->evfd, &one, sizeof one);
        (void)r; /* EAGAIN: the counter is already non-zero, which is all we need */
    }
}

static inline int crt__idle_should_notify(crt_runtime *rt) {
    uint32_t s = crt__load(&rt->idle_state, CRT__SEQ_CST);
    return crt__idle_searching(s) == 0 && crt__idle_unparked(s) < rt->nworkers;
}

/* New work is available: wake a parked worker unless someone is already
 * searching (that one will find it, then wake the next if it was last). */
CRT__INTERN void crt__notify_parked(crt_runtime *rt) {
    /* Seq_cst: orders the push the caller made before this check against a
     * parking worker's "last searcher checks the queues" (Dekker). */
    crt__fence(CRT__SEQ_CST);
    if (!crt__idle_should_notify(rt)) return;
    crt__lock_acquire(&rt->idle_lock);
    if (!crt__idle_should_notify(rt) || rt->nsleepers == 0) {
        crt__lock_release(&rt->idle_lock);
        return;
    }
    /* Seq_cst: the counts take part in the same Dekker pattern. */
    crt__fetch_add(&rt->idle_state, CRT__IDLE_SEARCH | CRT__IDLE_UNPARK, CRT__SEQ_CST);
    crt__worker *w = &rt->workers[rt->sleepers[--rt->nsleepers]];
    w->is_parked = 0;
    crt__lock_release(&rt->idle_lock);
    crt__worker_unpark(w);
}

CRT__INTERN int crt__worker_has_local_work(crt__worker *w) {
    return w->lifo || w->nosteal_head || crt__runq_len(&w->runq) || crt__list_len(&w->inbox);
}

CRT__INTERN void crt__notify_if_work_pending(crt_runtime *rt) {
    for (unsigned i = 0; i < rt->nworkers; i++) {
        if (crt__runq_len(&rt->workers[i].runq)) {
            crt__notify_parked(rt);
            return;
        }
    }
    if (crt__inject_len(rt)) crt__notify_parked(rt);
}

CRT__INTERN int crt__transition_to_searching(crt__worker *w) {
    crt_runtime *rt = w->rt;
    if (w->searching) return 1;
    /* Relaxed: a heuristic limit; the increment below is what counts. */
    uint32_t s = crt__load(&rt->idle_state, CRT__RELAXED);
    if (2 * crt__idle_searching(s) >= rt->nworkers) return 0;
    crt__fetch_add(&rt->idle_state, CRT__IDLE_SEARCH, CRT__SEQ_CST);
    w->searching = 1;
    return 1;
}

/* Found work while searching: if we were the last searcher, wake another
 * worker to search in our place (there may be more work). */
CRT__INTERN void crt__transition_from_searching(crt__worker *w) {
    w->searching = 0;
    uint32_t prev = crt__fetch_sub(&w->rt->idle_state, CRT__IDLE_SEARCH, CRT__SEQ_CST);
    if (crt__idle_searching(prev) == 1) crt__notify_parked(w->rt);
}

/* Returns 0 if the worker must not park after all. */
CRT__INTERN int crt__transition_to_parked(crt__worker *w) {
    crt_runtime *rt = w->rt;
    if (crt__worker_has_local_work(w)) return 0;
    crt__lock_acquire(&rt->idle_lock);
    uint32_t dec = CRT__IDLE_UNPARK | (w->searching ? CRT__IDLE_SEARCH : 0u);
    uint32_t prev = crt__fetch_sub(&rt->idle_state, dec, CRT__SEQ_CST);
    rt->sleepers[rt->nsleepers++] = w->index;
    w->is_parked = 1;
    crt__lock_release(&rt->idle_lock);
    int last_searcher = w->searching && crt__idle_searching(prev) == 1;
    w->searching = 0;
    if (last_searcher) crt__notify_if_work_pending(rt);
    return 1;
}

/* Takes the worker out of the sleepers list if it is still there. */
CRT__INTERN void crt__unpark_self(crt__worker *w) {
    crt_runtime *rt = w->rt;
    crt__lock_acquire(&rt->idle_lock);
    if (w->is_parked) {
        for (unsigned i = 0; i < rt->nsleepers; i++) {
            if (rt->sleepers[i] == w->index) {
                rt->sleepers[i] = rt->sleepers[--rt->nsleepers];
                break;
            }
        }
        w->is_parked = 0;
        crt__fetch_add(&rt->idle_state, CRT__IDLE_UNPARK, CRT__SEQ_CST);
    } else {
        /* crt__notify_parked took us out meanwhile and counted us as
         * searching: own that count, or it leaks and no worker is ever
         * notified again. */
        w->searching = 1;
    }
    crt__lock_release(&rt->idle_lock);
}

/* After a park returns: 1 if the worker goes back to work. */
CRT__INTERN int crt__transition_from_parked(crt__worker *w) {
    /* The injection queue counts too: a direct crt__worker_unpark (a lone
     * worker, which nobody else searches for) leaves us in the sleepers
     * list, and we would park again with the woken task still queued. */
    if (crt__worker_has_local_work(w) || crt__inject_len(w->rt)) {
        crt__unpark_self(w);
        return 1;
    }
    crt__lock_acquire(&w->rt->idle_lock);
    int still = w->is_parked;
    crt__lock_release(&w->rt->idle_lock);
    if (still) return 0;
    w->searching = 1; /* notify_parked counted us as searching */
    return 1;
}

/* >>timers: a timing wheel of deadlines per worker, under its lock ----------- */

static inline void crt__timers_publish(crt__timers *h, int exact) {
    /* Relaxed: a hint for fast peeks and for idle workers choosing their
     * sleep; the lock orders the wheel itself. */
    crt__store(&h->earliest, crt__wheel_next_due(&h->wheel, exact), CRT__RELAXED);
}

/* A task arms at most one timer at a time (one blocking call), and plain
 * threads wait on futex timeouts, so armed timers never outnumber task
 * records: every wheel's cells grow with the records (under task_lock),
 * and arming never allocates — no wait fails for want of memory. */
CRT__INTERN int crt__timers_reserve(crt_runtime *rt, uint64_t records) {
    if (records >= CRT__WHEEL_NIL) return -ENOMEM;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        crt__timers *h = &rt->workers[i].timers;
        uint64_t cap = h->wheel.cap; /* only grown under task_lock: a stable read */
        if (cap >= records) continue;
        cap = cap ? cap : 256;
        while (cap < records) cap *= 2;
        if (cap >= CRT__WHEEL_NIL) cap = CRT__WHEEL_NIL - 1;
        crt__wheel_cell *cells = (crt__wheel_cell *)CRT_MALLOC(cap * sizeof *cells);
        if (!cells) return -ENOMEM;
        crt__lock_acquire(&h->lock);
        crt__wheel_cell *old = crt__wheel_grow(&h->wheel, cells, (uint32_t)cap);
        crt__lock_release(&h->lock);
        CRT_FREE(old);
    }
    return 0;
}

/* Arms t in h. */
CRT__INTERN void crt__timer_arm(crt__timers *h, crt__timer *t, crt_time deadline, crt_time now) {
    crt__lock_acquire(&h->lock);
    t->timers = h;
    crt__wheel_insert(&h->wheel, t, deadline, now);
    /* The deadline itself: a lower bound for the hint, whatever the mode;
     * the next look computes the hint properly. */
    if (deadline < crt__load(&h->earliest, CRT__RELAXED)) crt__store(&h->earliest, deadline, CRT__RELAXED);
    crt__lock_release(&h->lock);
}

/* Disarms t if it has not fired; if it is firing right now, waits until
 * the firer is done with it. */
CRT__INTERN void crt__timer_cancel(crt__timer *t) {
    unsigned spins = 0;
    /* Acquire: pairs with the release that ends a firing (the firer is
     * done with t and its waiter) and with the arm's lock release. */
    crt__timers *h = crt__load(&t->timers, CRT__ACQUIRE);
    if (!h) return;
    crt__lock_acquire(&h->lock);
    /* Relaxed: under the lock. While timers is h, t's cell is still its
     * own: a firer releases the cell only after clearing timers. */
    int removed = crt__load(&t->timers, CRT__RELAXED) == h && crt__wheel_remove(&h->wheel, t);
    crt__lock_release(&h->lock);
    if (removed) {
        crt__store(&t->timers, (crt__timers *)NULL, CRT__RELAXED); /* Relaxed: we own t */
        return; /* the hint stays: still a lower bound */
    }
    /* Being fired: a claim or two away, with no lock held. */
    while (crt__load(&t->timers, CRT__ACQUIRE) != NULL) {
        if (++spins < 64) crt__cpu_relax();
        else sched_yield();
    }
}

CRT__INTERN void crt__waiter_wake_to(crt__waiter *w, int lifo);

#define CRT__WAITER_OF_TIMER(t) ((crt__waiter *)((char *)(t) - offsetof(crt__waiter, timer)))

/* Each waiter sits on its task's stack, most likely cold: a page nobody
 * touched for a while, one a page-table walk away. The claims fetch them
 * this many ahead of the claim that needs them, so the misses overlap.
 * Not all 64 at once: the CPU tracks only a couple of dozen misses, and
 * prefetches beyond those stall the loop that issues them (measured: two
 * thirds of the firing's time sat on the prefetch when it issued 64). */
#define CRT__TIMER_FETCH_AHEAD 8u

/* Fires every timer of h due by now (`exact`: see crt/wheel.h): takes
 * the due ones out of their slots under the lock, keeping their cells, so
 * their tasks cannot leave while we hold them (crt__timer_cancel waits);
 * claims each waiter with -ETIMEDOUT with the lock released, so the owner
 * arming its next timer does not wait behind a batch of claims on cold
 * stacks; then gives the cells back and wakes the won waiters. Returns
 * how many it woke. */
CRT__INTERN unsigned crt__timers_fire(crt__timers *h, crt_time now, int exact) {
    /* Relaxed peek: a stale value only delays the firing to the next look. */
    if (crt__load(&h->earliest, CRT__RELAXED) > now) return 0;
    crt__waiter *won[64];
    uint32_t cells[64];
    crt__timer *due[64];
    unsigned total = 0;
    for (;;) {
        unsigned ndue = 0, n = 0;
        crt__lock_acquire(&h->lock);
        /* Two passes: taking the due timers reads only the wheel's own
         * cells; the claims then touch the waiters, on the tasks' stacks. */
        while (ndue < 64 && (cells[ndue] = crt__wheel_pop_due(&h->wheel, now, exact)) != CRT__WHEEL_NIL) {
            due[ndue] = h->wheel.cells[cells[ndue]].timer;
            ndue++;
        }
        crt__timers_publish(h, exact);
        crt__lock_release(&h->lock);
        if (!ndue) return total;
        for (unsigned i = 0; i < ndue && i < CRT__TIMER_FETCH_AHEAD; i++)
            __builtin_prefetch(CRT__WAITER_OF_TIMER(due[i]), 1);
        for (unsigned i = 0; i < ndue; i++) {
            if (i + CRT__TIMER_FETCH_AHEAD < ndue)
                __builtin_prefetch(CRT__WAITER_OF_TIMER(due[i + CRT__TIMER_FETCH_AHEAD]), 1);
            crt__timer *t = due[i];
            crt__waiter *w = CRT__WAITER_OF_TIMER(t);
            if (crt__waiter_claim(w)) {
                w->result = -ETIMEDOUT;
                w->index = -1;
                won[n++] = w;
                if (w->task) __builtin_prefetch(w->task, 1); /* for the wake */
            }
            /* Release, and our last touch of t and w unless we won w: a
             * canceller that reads timers == NULL returns at once, and its
             * waiter (claimed by another) may be gone. */
            crt__store(&t->timers, (crt__timers *)NULL, CRT__RELEASE);
        }
        crt__lock_acquire(&h->lock);
        for (unsigned i = 0; i < ndue; i++) crt__wheel_release(&h->wheel, cells[i]);
        crt__lock_release(&h->lock);
        for (unsigned i = 0; i < n; i++) crt__waiter_wake_to(won[i], 0);
        total += n;
        if (ndue < 64) return total; /* the wheel has nothing more due */
    }
}

/* The earliest hint over every worker: nothing is due before it. */
CRT__INTERN crt_time crt__timers_earliest(crt_runtime *rt) {
    crt_time e = CRT_FOREVER;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        crt_time d = crt__load(&rt->workers[i].timers.earliest, CRT__RELAXED);
        if (d < e) e = d;
    }
    return e;
}

/* The earliest armed deadline, exactly (the paused clock jumps to it). */
CRT__INTERN crt_time crt__timers_next_exact(crt_runtime *rt) {
    crt_time e = CRT_FOREVER;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        crt__timers *h = &rt->workers[i].timers;
        crt__lock_acquire(&h->lock);
        crt_time d = crt__wheel_next_exact(&h->wheel);
        crt__lock_release(&h->lock);
        if (d < e) e = d;
    }
    return e;
}

/* A worker fires its own timers; another's only once they are this late
 * (its worker is stuck in a long task), or when it has nothing else to
 * do. So woken tasks stay on the worker they slept on, and two busy
 * workers do not fight over each other's wheels. */
#define CRT__TIMER_COVER CRT_MS(1)

/* Fires what is due in the wheel of `self` (NULL: none is special) and in
 * every other wheel whose earliest timer is `cover` late. A paused clock
 * always looks exactly: it only moves to deadlines. */
CRT__INTERN unsigned crt__timers_fire_all(crt_runtime *rt, int exact, crt__worker *self, crt_time cover) {
    crt_time e = crt__timers_earliest(rt);
    if (e == CRT_FOREVER) return 0;
    crt_time now = crt__rt_now(rt);
    if (e > now) return 0;
    /* Acquire: pairs with the release in crt_time_pause(). */
    exact |= crt__load(&rt->paused, CRT__ACQUIRE) != 0;
    unsigned n = 0;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        crt__worker *o = &rt->workers[i];
        /* Relaxed: a hint, as in crt__timers_fire. */
        if (o != self && crt__load(&o->timers.earliest, CRT__RELAXED) > now - cover) continue;
        n += crt__timers_fire(&o->timers, now, exact);
    }
    return n;
}

/* >>scheduling ---------------------------------------------------------------- */

CRT__INTERN void crt__inject(crt_runtime *rt, crt_task *const *tasks, uint64_t n) {
    crt__inject_push(rt, tasks, n);
    crt__notify_parked(rt);
}

/* Hands t to a specific worker (pinned tasks, forced migration). */
CRT__INTERN void crt__send_to_worker(crt__worker *target, crt_task *t) {
    crt__list_push_chain(&target->inbox, t, t, 1);
    crt__worker_unpark(target);
}

static inline void crt__nosteal_push(crt__worker *w, crt_task *t) {
    t->next = NULL;
    if (w->nosteal_tail) w->nosteal_tail->next = t;
    else w->nosteal_head = t;
    w->nosteal_tail = t;
}

static inline crt_task *crt__nosteal_pop(crt__worker *w) {
    crt_task *t = w->nosteal_head;
    if (t) {
        w->nosteal_head = t->next;
        if (!w->nosteal_head) w->nosteal_tail = NULL;
    }
    return t;
}

/* Makes t runnable. `lifo`: t was woken by the running task, so it may
 * take this worker's LIFO slot and run next. */
CRT__INTERN void crt__schedule_on(crt_runtime *rt, crt__worker *w, crt_task *t, int lifo);

CRT__INTERN void crt__schedule(crt_task *t, int lifo) {
    crt_runtime *rt = t->rt;
    crt__worker *w = crt__worker_tls();
    if (w && w->rt != rt) w = NULL; /* a task of another runtime woke it */
    if (CRT__LIKELY(w != NULL)) {
        crt__schedule_on(rt, w, t, lifo);
        return;
    }
    /* From outside the runtime (a plain thread, another runtime): once t
     * is queued it may run and finish, and the runtime be freed, while we
     * still wake a worker; crt_runtime_free waits for this count.
     * Acq_rel: ordered before the queue push that lets t run; the release
     * decrement pairs with the acquire load in crt_runtime_free(). */
    crt__fetch_add(&rt->ext_wakes, 1u, CRT__ACQ_REL);
    crt__schedule_on(rt, NULL, t, lifo);
    crt__fetch_sub(&rt->ext_wakes, 1u, CRT__RELEASE);
}

/* crt__schedule for the worker w of rt (NULL: from outside). */
CRT__INTERN void crt__schedule_on(crt_runtime *rt, crt__worker *w, crt_task *t, int lifo) {
    if (CRT__UNLIKELY(t->home != NULL)) {
        if (w == t->home) crt__nosteal_push(w, t);
        else crt__send_to_worker(t->home, t);
        return;
    }
    if (CRT__UNLIKELY(rt->migrate) && t->stack) {
        crt__send_to_worker(&rt->workers[(t->last_worker + 1) % rt->nworkers], t);
        return;
    }
    if (!w) {
        /* A lone worker never searches, so nobody rechecks the injection
         * queue after it counts itself parked, and a wake from another
         * runtime or a plain thread that read idle_state just before would
         * be lost. Its inbox is local work it always looks at, and the
         * push unparks it. */
        if (rt->nworkers == 1) crt__send_to_worker(&rt->workers[0], t);
        else crt__inject(rt, &t, 1);
        return;
    }
    if (lifo) {
        crt_task *prev = w->lifo;
        w->lifo = t;
        if (!prev) return;
        t = prev;
    }
    crt__runq_push(w, t);
    if (rt->nworkers > 1) crt__notify_parked(rt);
}

/* The next task this worker runs without going through its scheduler
 * loop, or NULL: the loop then looks at the shared queues, timers and I/O
 * (every CRT__FAIR_INTERVAL ticks at the latest, so nothing starves). */
static CRT__HOT_INLINE crt_task *crt__next_local(crt__worker *w) {
    if (CRT__UNLIKELY(--w->fair_countdown == 0)) {
        w->fair_countdown = CRT__FAIR_INTERVAL;
        w->fair_due = 1;
        return NULL;
    }
    crt_task *t = w->lifo;
    if (t) {
        if (w->lifo_streak < CRT__LIFO_STREAK || !crt__runq_len(&w->runq)) {
            w->lifo = NULL;
            w->lifo_streak++;
            return t;
        }
        /* The queue gets its turn; the LIFO task waits behind it. */
        w->lifo = NULL;
        crt__runq_push(w, t);
    }
    w->lifo_streak = 0;
    if (CRT__UNLIKELY(w->nosteal_head != NULL) && ((++w->tick & 1) || !crt__runq_len(&w->runq)))
        return crt__nosteal_pop(w);
    t = crt__runq_pop(w);
    if (!t && w->nosteal_head) t = crt__nosteal_pop(w);
    return t;
}

CRT__INTERN void crt__task_entry(void *arg);

/* t runs for the first time, on w and on st: a pinned task stays on the
 * worker that first ran it. */
static inline void crt__task_first_run(crt__worker *w, crt_task *t, crt__stack *st) {
    t->stack = st;
    if (t->pinned) t->home = w;
}

/* Gives t a stack and a context the first time it runs. 0 or -ENOMEM. */
CRT__INTERN int crt__task_prepare_slow(crt__worker *w, crt_task *t) {
    crt__stack *st = t->stack_pages ? crt__stack_map((size_t)t->stack_pages * crt__page_size())
                                    : crt__stack_alloc(&w->rt->stacks, &w->stacks);
    if (!st) return -ENOMEM;
    crt__task_first_run(w, t, st);
    crt__ctx_init(&st->ctx, st->lo, st->size);
    crt__ctx_make(&st->ctx, st->lo, st->size, crt__task_entry, t);
    /* The next new task most likely starts on the next cached stack: its
     * top is on a page nothing has touched for a while, so ask for it now,
     * while this task runs, not when that one's first call stalls on it. */
    crt__stack *next = crt__stack_cache_peek(&w->stacks);
    if (next) __builtin_prefetch(next, 1);
    return 0;
}

static inline int crt__task_prepare(crt__worker *w, crt_task *t) {
    return CRT__LIKELY(t->stack != NULL) ? 0 : crt__task_prepare_slow(w, t);
}

static inline void crt__task_complete(crt_task *t);

/* The end of a finished task whose stack has been dealt with (freed, or
 * handed on to the next task: crt__task_run_here). The record may be
 * freed once this returns. */
static inline void crt__task_retire(crt__worker *w, crt_task *t) {
    /* Relaxed: only the owner writes it; readers want a count, not an order. */
    crt__store(&w->exited, w->exited + 1, CRT__RELAXED);
    /* Relaxed: CUSTOM was set before the task was published. */
    if (CRT__UNLIKELY(crt__load(&t->flags, CRT__RELAXED) & CRT__T_CUSTOM) && t->group)
        ((crt__group_hdr *)t->group)->on_finish(t);
    crt_runtime *rt = w->rt;
    crt__task_complete(t);
    /* Acquire: a shutdown that started before we finished wants to know. */
    if (crt__load(&rt->closing, CRT__ACQUIRE)) {
        crt__fetch_add(&rt->live_word, 1u, CRT__RELEASE);
        crt__futex_wake(&rt->live_word, INT32_MAX);
    }
}

/* Out of line: every context's crt__after_switch may run it. */
CRT__NOINLINE CRT__INTERN void crt__task_finish(crt__worker *w, crt_task *t) {
    crt__stack *st = t->stack;
    t->stack = NULL;
    crt__ctx_release(&st->ctx);
    crt__stack_free(&w->rt->stacks, &w->stacks, st);
    crt__task_retire(w, t);
}

/* Runs the action the previous context left for the task it switched away
 * from: now that its registers are saved, it may be made runnable, parked
 * or released. Every context calls this first thing after a switch. */
CRT__INTERN void crt__task_poke(crt_task *t);

static CRT__HOT_INLINE void crt__after_switch(crt__worker *w) {
    crt_task *prev = w->prev;
    if (!prev) return;
    w->prev = NULL;
    switch (w->prev_action) {
    case CRT__ACT_YIELD:
        if (CRT__UNLIKELY(prev->home != NULL || w->migrate)) crt__schedule(prev, 0);
        else crt__runq_push_inline(w, prev);
        break;
    case CRT__ACT_PARK: {
        uint64_t expected = w->prev_park;
        /* Seq_cst: on success our saved context is published to whoever
         * wakes it (pairs with the claim in crt__waiter_claim(), or the
         * exchange of a wake that claimed it earlier); on failure a wake or
         * a poke arrived before we parked: it is runnable right away. And the
         * parking side of the Dekker pair with crt_abort(): its flag store
         * and park-word load against this CAS and the abort load after it.
         * An abort whose look came too early to see this wait is seen here,
         * and pokes the task as crt_abort would have. */
        /* A plain read, before the CAS: the shield is the task's own and we
         * ran it until the switch; once parked it may run elsewhere at once. */
        int shielded = prev->shield;
        for (;;) {
            if (crt__cas(&prev->park, &expected, (expected & ~(uint64_t)CRT__PARK_STATE) | CRT__PARKED, CRT__SEQ_CST,
                         CRT__ACQUIRE)) {
                if (CRT__UNLIKELY(crt__load(&prev->abort, CRT__SEQ_CST)) && !shielded) crt__task_poke(prev);
                break;
            }
            /* Claimed meanwhile, its winner not yet here: park all the same.
             * Notified or poked: it is runnable right away. */
            if ((expected & CRT__PARK_STATE) != CRT__WAITING) {
                crt__schedule(prev, 0);
                break;
            }
        }
        break;
    }
    case CRT__ACT_EXIT: crt__task_finish(w, prev); break;
    default: break;
    }
}

/* Reports it if self, about to leave its stack (frame: the caller's frame
 * address), has overflowed it: a canary-guarded stack's check (a guard
 * page faults by itself). */
static inline void crt__task_check_stack(const crt_task *self, const void *frame) {
    if (CRT__UNLIKELY(crt__stack_overflowed(self->stack, frame))) crt__report_overflow(self->name);
}

/* Switches from the current context to t (or to the scheduler loop when
 * t is NULL) with `action` pending for `self`. */
static inline void crt__switch_away(crt__worker *w, crt_task *self, crt_task *next, int action) {
    crt__task_check_stack(self, __builtin_frame_address(0));
    w->prev = self;
    w->prev_action = action;
    w->current = next;
    self->last_worker = w->index;
    crt__ctx_switch(&self->stack->ctx, next ? &next->stack->ctx : &w->sched_ctx, action == CRT__ACT_EXIT);
}

/* t (NULL or a task from crt__next_local) with its stack ready, or NULL. */
static CRT__HOT_INLINE crt_task *crt__task_ready(crt__worker *w, crt_task *t) {
    if (t && CRT__UNLIKELY(crt__task_prepare(w, t) < 0)) {
        /* No memory for its stack: let the scheduler loop retry later. */
        crt__inject_push(w->rt, &t, 1);
        return NULL;
    }
    return t;
}

/* The next runnable task with its stack ready, or NULL. */
static CRT__HOT_INLINE crt_task *crt__next_ready(crt__worker *w) { return crt__task_ready(w, crt__next_local(w)); }

/* The current task (self, running on w) leaves the CPU; returns when it
 * runs again, perhaps on another worker — the one it returns. */
static CRT__HOT_INLINE crt__worker *crt__suspend(crt__worker *w, crt_task *self, int action, uint64_t park_expected) {
    self->stack->saved_errno = *w->errno_loc;
    w->prev_park = park_expected;
    crt_task *next = crt__next_ready(w);
    crt__switch_away(w, self, next, action);
    /* Running again: read the worker afresh. */
    w = crt__worker_tls();
    crt__after_switch(w);
    *w->errno_loc = self->stack->saved_errno;
    return w;
}

/* A task that has returned from its function leaves for next (NULL: the
 * scheduler loop), never to come back. */
static CRT__HOT_INLINE void crt__task_exit_to(crt__worker *w, crt_task *self, crt_task *next) {
    crt__switch_away(w, self, crt__task_ready(w, next), CRT__ACT_EXIT);
    CRT_ASSERT(0, "a finished task was resumed");
}

/* Whether next, the task this worker runs after self has returned, can
 * start on self's stack: it has never run, and both use the runtime's
 * stack size (a custom-size stack is mapped for its task alone). Never
 * under ASan, which keeps marks per context (scopes, fake frames) that a
 * task starting without a switch would inherit from the one before. */
static inline int crt__task_can_start_here(const crt_task *self, const crt_task *next) {
#if CRT__ASAN
    (void)self;
    (void)next;
    return 0;
#else
    return next && !next->stack && !next->stack_pages && !self->stack_pages;
#endif
}

/* Starts next on the stack of self, which has returned, with no switch:
 * that saves what a switch costs on both sides (self's stack back to the
 * cache and one out of it for next, next's new context, the switch, and
 * the landing on a stack that may be cold). Then, for as long as each
 * task that returns here is followed by one that can start here, the
 * same again; the last one leaves as any task does.
 * Out of line, and not a loop in crt__task_entry: the frame of every
 * task's first call is on the stack of each of them, parked or not, and
 * 16 bytes more there cost 100,000 sleeping tasks (W7) a cache line each. */
CRT__NOIPA CRT__UNUSED static void crt__task_run_here(crt__worker *w, crt_task *self, crt_task *next) {
    do {
        crt__task_check_stack(self, __builtin_frame_address(0)); /* as the switch away would */
        crt__stack *st = self->stack;
        self->stack = NULL;
        crt__task_first_run(w, next, st);
        w->current = next;
        self->last_worker = w->index;
        crt__task_retire(w, self); /* the last touch of self's record */
        self = next;
        *w->errno_loc = 0;
#ifdef CRT_FP_CONTROL
        crt__fp_write(self->fpctl); /* not the state the task before left */
#endif
        self->u.result = self->u.fn(self->arg);
        w = crt__worker_tls();
        next = crt__next_local(w);
    } while (crt__task_can_start_here(self, next));
    crt__task_exit_to(w, self, next);
}

CRT__INTERN void crt__task_entry(void *arg) {
    crt_task *self = (crt_task *)arg;
    crt__ctx_entered();
    crt__worker *w = crt__worker_tls();
    crt__after_switch(w);
    *w->errno_loc = 0;
#ifdef CRT_FP_CONTROL
    crt__fp_write(self->fpctl);
#endif
    self->u.result = self->u.fn(self->arg);
    w = crt__worker_tls();
    crt_task *next = crt__next_local(w);
    if (crt__task_can_start_here(self, next)) crt__task_run_here(w, self, next);
    else crt__task_exit_to(w, self, next);
}

/* >>task completion -------------------------------------------------------------
 * Finishing sets FINISHED and, as its very last touch of the record,
 * RELEASED; whoever frees the record (the joiner, or the finisher itself if
 * detached) waits for RELEASED, so a record is never freed under a side
 * still using it. */

/* Out of line, as the other rare paths of a task's exit: inlined, their
 * locals would give every exit a stack frame. */
CRT__NOINLINE CRT__INTERN void crt__task_complete_slow(crt_task *t, uint32_t v);

static inline void crt__task_complete(crt_task *t) {
    /* Relaxed: the CAS below carries the order. */
    uint32_t v = crt__load(&t->flags, CRT__RELAXED);
    /* Release: the result and everything the task did, for whoever sees
     * FINISHED (pairs with the acquire loads in crt_join()). */
    if (CRT__LIKELY(!(v & (CRT__T_WAITERS | CRT__T_DETACHED))) &&
        crt__cas(&t->flags, &v, v | CRT__T_FINISHED | CRT__T_RELEASED, CRT__ACQ_REL, CRT__RELAXED))
        return;
    crt__task_complete_slow(t, v);
}

CRT__NOINLINE CRT__INTERN void crt__task_complete_slow(crt_task *t, uint32_t v) {
    for (;;) {
        if (!(v & CRT__T_WAITERS)) {
            /* Release: the result and everything the task did, for whoever
             * sees FINISHED (pairs with the acquire loads in crt_join()). */
            if (crt__cas(&t->flags, &v, v | CRT__T_FINISHED | CRT__T_RELEASED, CRT__ACQ_REL, CRT__RELAXED)) {
                if (v & CRT__T_DETACHED) crt__task_free(t);
                return;
            }
            continue;
        }
        if (crt__cas(&t->flags, &v, v | CRT__T_FINISHED, CRT__ACQ_REL, CRT__RELAXED)) break;
    }
    /* Someone waits in done_q: claim them all under the lock, release the
     * record, then wake them (their waiters outlive the wake). */
    crt__waiter *won[32];
    unsigned n;
    do {
        n = 0;
        crt__lock_acquire(&t->done_lock);
        while (t->done_q.head && n < 32) {
            crt__wait_node *node = t->done_q.head;
            crt__waitq_remove(&t->done_q, node);
            if (crt__waiter_claim(node->waiter)) {
                node->waiter->result = 0;
                node->waiter->index = node->index;
                won[n++] = node->waiter;
            }
        }
        int more = t->done_q.head != NULL;
        crt__lock_release(&t->done_lock);
        if (!more) break;
        for (unsigned i = 0; i < n; i++) crt__waiter_wake_to(won[i], 0);
    } while (1);
    uint32_t prev = crt__fetch_or(&t->flags, (uint32_t)CRT__T_RELEASED, CRT__ACQ_REL);
    /* Not the LIFO slot: a joiner queues behind the work already runnable,
     * and by its turn more of what it waits for has finished. */
    for (unsigned i = 0; i < n; i++) crt__waiter_wake_to(won[i], 0);
    if (prev & CRT__T_DETACHED) crt__task_free(t);
}

/* Waits (spinning) for a finished task's finisher to let go of it. */
CRT__INTERN void crt__task_wait_released(crt_task *t) {
    unsigned spins = 0;
    /* Acquire: pairs with the release of RELEASED; then the record is ours. */
    while (!(crt__load(&t->flags, CRT__ACQUIRE) & CRT__T_RELEASED)) {
        if (++spins < 64) crt__cpu_relax();
        else sched_yield();
    }
}

/* >>waiter: wait and wake --------------------------------------------------------- */

/* Prepares w for a blocking call of the caller (task or plain thread).
 * Call before linking its nodes anywhere. */
CRT__INTERN void crt__waiter_init(crt__waiter *w) {
    w->park = CRT__WAITING;
    w->claimed_as = 0;
    w->result = 0;
    w->index = -1;
    w->timer.timers = NULL;
    crt__worker *wk = crt__worker_tls();
    crt_task *t = wk ? wk->current : NULL;
    w->task = t;
    w->gen = 0;
    if (t) {
        /* Relaxed: only this task changes the number in its park word. */
        w->gen = (crt__load(&t->park, CRT__RELAXED) >> CRT__PARK_GEN_SHIFT) + 1;
        /* Relaxed: wakers find the waiter through a queue's lock or the
         * wheel's, which publish this store; an abort that looks too early
         * to see it is caught after the park CAS (crt__after_switch). */
        crt__store(&t->park, (w->gen << CRT__PARK_GEN_SHIFT) | CRT__WAITING, CRT__RELAXED);
    }
}

/* A wait node of w, not on any queue yet (case index 0). */
static inline void crt__wait_node_init(crt__wait_node *node, crt__waiter *w, void *ptr, size_t n) {
    node->waiter = w;
    node->ptr = ptr;
    node->n = n;
    node->index = 0;
    node->linked = 0;
}

/* The usual blocking call: one waiter with one node. */
static inline void crt__waiter_init_one(crt__waiter *w, crt__wait_node *node, void *ptr, size_t n) {
    crt__waiter_init(w);
    crt__wait_node_init(node, w, ptr, n);
}

/* Wakes a claimed waiter; after this the caller must not touch it. `lifo`:
 * a task woken by the running task (a message for it) may run next on
 * this worker. */
CRT__INTERN void crt__waiter_wake_to(crt__waiter *w, int lifo) {
    crt_task *t = w->task;
    if (!t) {
        /* Acq_rel: publishes result and payload to the thread, which reads
         * them after seeing NOTIFIED (pairs with its acquire load). */
        uint32_t prev = crt__xchg(&w->park, CRT__CLAIMED | (uint32_t)CRT__NOTIFIED, CRT__ACQ_REL);
        /* The thread may return as soon as it sees NOTIFIED; a wake on the
         * stale address is harmless (futex waiters recheck their word). */
        if ((prev & CRT__PARK_STATE) == CRT__PARKED) crt__futex_wake(&w->park, 1);
        return;
    }
    /* Read before the wake: once it lands the task may return and reuse
     * the memory of w for its next wait. */
    uint64_t done = crt__park_done(w), was;
    if (w->claimed_as == CRT__PARKED) {
        /* Parked when we claimed it: nobody else writes the word now (see
         * crt__waiter_claim). Release: publishes result and payload to the
         * task, which acquires the word when it runs. */
        was = CRT__PARKED;
        crt__store(&t->park, done, CRT__RELEASE);
    } else {
        /* Still running, or poked: it may park, or unpoke itself, until
         * now. Acq_rel: publishes as above; acquires a context saved since. */
        uint64_t v = crt__xchg(&t->park, done, CRT__ACQ_REL);
        CRT_ASSERT((v >> CRT__PARK_GEN_SHIFT) == (done >> CRT__PARK_GEN_SHIFT), "waiter woken for a wait that is over");
        was = v & CRT__PARK_STATE;
    }
    if (was == CRT__PARKED) {
        /* Its stack, where it resumes, has likely gone cold while it slept:
         * start fetching it now (our claim acquired its parked context). */
        __builtin_prefetch(t->stack->ctx.sp, 1);
        crt__worker *me = crt__worker_tls();
        /* The hand-off of a message (a channel, a mutex) to a task of our
         * own worker's runtime: straight into our LIFO slot, what
         * crt__schedule_on would do after its checks for the rare cases. */
        if (lifo && me && me->rt == t->rt && CRT__LIKELY(t->home == NULL && !me->migrate)) {
            crt_task *prev = me->lifo;
            me->lifo = t;
            if (prev) crt__schedule_on(me->rt, me, prev, 0);
            return;
        }
        crt__schedule(t, lifo);
    }
}

/* Makes t look at itself: used by crt_abort. */
CRT__INTERN void crt__task_poke(crt_task *t) {
    /* Seq_cst: after the abort flag store; the other half of the Dekker
     * pair with the park CAS and abort load in crt__after_switch(). */
    uint64_t v = crt__load(&t->park, CRT__SEQ_CST);
    for (;;) {
        uint64_t s = v & CRT__PARK_STATE;
        /* Not waiting, poked already, or a winner is on its way. */
        if (s == CRT__NOTIFIED || s == CRT__POKED || (v & CRT__CLAIMED)) return;
        if (crt__cas(&t->park, &v, (v & ~(uint64_t)CRT__PARK_STATE) | CRT__POKED, CRT__ACQ_REL, CRT__ACQUIRE)) {
            if (s == CRT__PARKED) crt__schedule(t, 0);
            return;
        }
    }
}

static inline int crt__task_abort_pending(crt_task *t) {
    /* Relaxed: the flag is sticky; the Dekker pairs use their own order. */
    return !t->shield && crt__load(&t->abort, CRT__RELAXED);
}

CRT__INTERN int crt__waiter_wait_thread(crt__waiter *w, crt_time deadline) {
    for (;;) {
        /* Acquire: pairs with the winner's exchange; result is visible. */
        uint32_t v = crt__load(&w->park, CRT__ACQUIRE);
        if ((v & CRT__PARK_STATE) == CRT__NOTIFIED) break;
        if ((v & CRT__PARK_STATE) == CRT__WAITING) {
            /* Acq_rel: as the winner's exchange, which may come first. A
             * claim that lands meanwhile only makes us look again. */
            uint32_t parked = v | CRT__PARKED;
            if (!crt__cas(&w->park, &v, parked, CRT__ACQ_REL, CRT__ACQUIRE)) continue;
            v = parked;
        }
        int r = crt__futex_wait(&w->park, v, deadline);
        if (r == -ETIMEDOUT && deadline != CRT_FOREVER) {
            if (crt__waiter_claim(w)) {
                crt__waiter_end_own(w, -ETIMEDOUT);
                break;
            }
            deadline = CRT_FOREVER; /* the winner is about to wake us */
        }
    }
    return w->result;
}

/* Blocks until w is claimed and woken, or the deadline passes, or (a task)
 * it is aborted. The caller has linked w's nodes into their queues and
 * must afterwards unlink those still linked (under each queue's lock).
 * Returns w->result: what the winner wrote, or -ETIMEDOUT or -ECANCELED
 * (never -ENOMEM: arming a deadline does not allocate). deadline is not
 * CRT_TRY (the caller answers -EAGAIN itself).
 *
 * `now` is the task's clock as the caller has just read it (crt_sleep),
 * or CRT__NOW_UNREAD. One clock read less per sleep matters when 100,000
 * tasks start sleeping at once: the read waits for every miss before it,
 * on cold stacks. */
#define CRT__NOW_UNREAD INT64_MIN
CRT__NOIPA CRT__UNUSED static int crt__waiter_wait_since(crt__waiter *w, crt_time deadline, crt_time now) {
    crt_task *t = w->task;
    if (!t) return crt__waiter_wait_thread(w, deadline); /* plain threads: CLOCK_MONOTONIC */
    crt__worker *wk = crt__worker_tls();
    if (deadline != CRT_FOREVER) {
        if (now == CRT__NOW_UNREAD) now = crt__rt_now(wk->rt);
        if (deadline > now) {
            crt__timer_arm(&wk->timers, &w->timer, deadline, now);
        } else if (crt__waiter_claim(w)) {
            crt__waiter_end_own(w, -ETIMEDOUT);
            return -ETIMEDOUT;
        }
    }
    /* Relaxed: a shortcut for an abort already seen; one that lands later
     * is caught after the park (crt__after_switch). */
    if (crt__load(&t->abort, CRT__RELAXED) && !t->shield && crt__waiter_claim(w)) {
        crt__waiter_end_own(w, -ECANCELED);
        goto done;
    }
    for (;;) {
        /* Acquire: pairs with the winner's wake; result is visible. */
        uint64_t v = crt__load(&t->park, CRT__ACQUIRE);
        uint64_t s = v & CRT__PARK_STATE;
        if (s == CRT__NOTIFIED) break;
        if (s == CRT__POKED) {
            if (crt__task_abort_pending(t) && crt__waiter_claim(w)) {
                crt__waiter_end_own(w, -ECANCELED);
                break;
            }
            /* Shielded, or a winner is on its way: wait on. */
            uint64_t expect = v;
            crt__cas(&t->park, &expect, (v & ~(uint64_t)CRT__PARK_STATE) | CRT__WAITING, CRT__ACQ_REL, CRT__ACQUIRE);
            continue;
        }
        wk = crt__suspend(wk, t, CRT__ACT_PARK, v);
    }
done:
    if (deadline != CRT_FOREVER) crt__timer_cancel(&w->timer);
    return w->result;
}

/* crt__waiter_wait_since for a caller that has not read the clock. */
CRT__UNUSED static inline int crt__waiter_wait(crt__waiter *w, crt_time deadline) {
    return crt__waiter_wait_since(w, deadline, CRT__NOW_UNREAD);
}

/* Backs out of a wait that was set up but is no longer needed (a recheck
 * found the object ready). Returns 1 if nobody had claimed the waiter —
 * now nobody will, and the caller only unlinks its nodes; 0 if a winner
 * claimed it first — the caller must collect that with
 * crt__waiter_wait(w, CRT_FOREVER), which returns at once or very soon. */
CRT__INTERN int crt__waiter_withdraw(crt__waiter *w) {
    if (!crt__waiter_claim(w)) return 0;
    crt__waiter_end_own(w, 0);
    return 1;
}

/* The common prologue of a blocking call: -ECANCELED once aborted. */
static inline int crt__check_cancel(void) {
    crt_task *t = crt__task_self();
    return (t && crt__task_abort_pending(t)) ? -ECANCELED : 0;
}

/* >>I/O driver ------------------------------------------------------------------ */

/* Waits for I/O readiness (or an unpark) until the deadline (real clock),
 * and wakes the waiters of ready fds. Holding rt->driver_busy. */
CRT__INTERN void crt__driver_poll(crt_runtime *rt, crt_time real_deadline) {
    struct epoll_event ev[64];
    int timeout = -1;
    if (real_deadline != CRT_FOREVER) {
        crt_time d = real_deadline - crt__mono_now();
        timeout = d <= 0 ? 0 : (int)((d + 999999) / 1000000); /* round up: never wake early */
        if (d > (crt_time)INT32_MAX * 1000000) timeout = INT32_MAX;
    }
    int n = epoll_wait(rt->epfd, ev, 64, timeout);
    /* Acquire: crt/net.h publishes io_ready (and its state) with a release
     * store while workers run; an fd event implies it was set. */
    void (*io_ready)(crt_runtime *, void *, uint32_t) = crt__load(&rt->io_ready, CRT__ACQUIRE);
    for (int i = 0; i < n; i++) {
        if (ev[i].data.ptr == NULL) {
            uint64_t v;
            ssize_t r = read(rt->evfd, &v, sizeof v);
            (void)r;
        } else if (io_ready) {
            io_ready(rt, ev[i].data.ptr, ev[i].events);
        }
    }
}

/* Polls I/O without waiting, if no other worker holds the driver.
 * Returns 1 if it polled. */
CRT__INTERN int crt__driver_poll_now(crt_runtime *rt) {
    /* Acquire: pairs with crt/net.h's release store of io_ready. */
    if (!crt__load(&rt->io_ready, CRT__ACQUIRE)) return 0;
    uint32_t free_ = 0;
    /* Relaxed look first: a worker that finds the driver taken leaves the
     * line shared instead of stealing it from the holder for a failed CAS. */
    if (crt__load(&rt->driver_busy, CRT__RELAXED)) return 0;
    /* Acquire/release: the driver is a lock around epoll's event handling. */
    if (!crt__cas(&rt->driver_busy, &free_, 1u, CRT__ACQUIRE, CRT__RELAXED)) return 0;
    crt__driver_poll(rt, 0);
    crt__store(&rt->driver_busy, 0u, CRT__RELEASE);
    return 1;
}

/* How long an idle worker keeps polling sockets before it sleeps. A
 * request/response peer answers within a few microseconds; 20 µs covers
 * that without spending much on a server that really is idle (at most
 * 20 µs per time it runs dry). */
#define CRT__IO_LINGER CRT_US(20)

/* Polls I/O until something is runnable here or CRT__IO_LINGER has passed.
 * Only while sockets are registered and no other worker holds the driver
 * (one poller is enough). Returns 1 if there is work to look at. */
CRT__INTERN int crt__io_linger(crt__worker *w) {
    crt_runtime *rt = w->rt;
    if (!crt__driver_poll_now(rt)) return 0; /* no sockets, or another worker polls */
    crt_time until = crt__mono_now() + CRT__IO_LINGER;
    for (;;) {
        if (crt__worker_has_local_work(w) || crt__inject_len(rt)) return 1;
        if (crt__mono_now() >= until || !crt__driver_poll_now(rt)) return 0;
    }
}

/* Sleeps until unparked, a timer is due or (holding the driver) I/O. */
CRT__INTERN void crt__worker_park(crt__worker *w, crt_time real_deadline) {
    crt_runtime *rt = w->rt;
    uint32_t s = CRT__W_NOTIFIED;
    /* Acquire: consumes the notification and the work published with it. */
    if (crt__cas(&w->park_state, &s, (uint32_t)CRT__W_EMPTY, CRT__ACQUIRE, CRT__RELAXED)) return;
    uint32_t free_ = 0;
    if (crt__cas(&rt->driver_busy, &free_, 1u, CRT__ACQUIRE, CRT__RELAXED)) {
        s = CRT__W_EMPTY;
        if (crt__cas(&w->park_state, &s, (uint32_t)CRT__W_PARKED_DRIVER, CRT__ACQ_REL, CRT__ACQUIRE))
            crt__driver_poll(rt, real_deadline);
        crt__xchg(&w->park_state, (uint32_t)CRT__W_EMPTY, CRT__ACQ_REL);
        crt__store(&rt->driver_busy, 0u, CRT__RELEASE);
        return;
    }
    s = CRT__W_EMPTY;
    if (crt__cas(&w->park_state, &s, (uint32_t)CRT__W_PARKED, CRT__ACQ_REL, CRT__ACQUIRE))
        crt__futex_wait(&w->park_state, CRT__W_PARKED, real_deadline);
    crt__xchg(&w->park_state, (uint32_t)CRT__W_EMPTY, CRT__ACQ_REL);
}

/* >>worker loop ------------------------------------------------------------------ */

static inline uint64_t crt__live_tasks(crt_runtime *rt) {
    uint64_t s = crt__load(&rt->ext_spawned, CRT__ACQUIRE), e = crt__load(&rt->ext_exited, CRT__ACQUIRE);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        s += crt__load(&rt->workers[i].spawned, CRT__ACQUIRE);
        e += crt__load(&rt->workers[i].exited, CRT__ACQUIRE);
    }
    return s - e;
}

/* Drains the inbox into the owner-only list. */
CRT__INTERN void crt__drain_inbox(crt__worker *w) {
    uint64_t n;
    crt_task *t = crt__list_pop_chain(&w->inbox, UINT64_MAX, &n);
    while (t) {
        crt_task *next = t->next;
        crt__nosteal_push(w, t);
        t = next;
    }
}

/* A batch from the injection queue: one to run, some more into our queue. */
CRT__INTERN crt_task *crt__inject_take(crt__worker *w) {
    crt_runtime *rt = w->rt;
    uint64_t len = crt__inject_len(rt);
    if (!len) return NULL;
    uint64_t want = len / rt->nworkers + 1;
    uint32_t room = CRT__RUNQ_SIZE - crt__runq_len(&w->runq);
    if (want > room / 2 + 1) want = room / 2 + 1;
    crt_task *batch[CRT__RUNQ_SIZE / 2 + 1];
    uint64_t n = crt__inject_pop(rt, batch, want);
    for (uint64_t i = 1; i < n; i++) crt__runq_push(w, batch[i]);
    return n ? batch[0] : NULL;
}

CRT__INTERN crt_task *crt__steal_work(crt__worker *w) {
    crt_runtime *rt = w->rt;
    unsigned n = rt->nworkers;
    unsigned start = (unsigned)(crt__rng_next(&w->rng) % n);
    for (unsigned i = 0; i < n; i++) {
        crt__worker *v = &rt->workers[(start + i) % n];
        if (v == w) continue;
        crt_task *t = crt__runq_steal(w, v);
        if (t) return t;
    }
    return crt__inject_take(w);
}

/* Everything the scheduler loop looks at besides the local queues. */
CRT__INTERN void crt__maintenance(crt__worker *w) {
    if (crt__list_len(&w->inbox)) crt__drain_inbox(w);
    crt__timers_fire_all(w->rt, 0, w, CRT__TIMER_COVER);
    if (w->fair_due) crt__driver_poll_now(w->rt);
}

CRT__INTERN crt_task *crt__find_work(crt__worker *w) {
    crt_runtime *rt = w->rt;
    crt_task *t = NULL;
    /* Every CRT__FAIR_INTERVAL runs the shared queue goes first. */
    if (w->fair_due) {
        w->fair_due = 0;
        t = crt__inject_take(w);
    }
    if (!t) t = crt__next_local(w);
    /* The fairness tick may fall on that call, which then returns NULL with
     * work still queued here: take it rather than go stealing. */
    if (!t && w->fair_due) t = crt__next_local(w);
    if (!t) t = crt__inject_take(w);
    if (!t && rt->nworkers > 1 && crt__transition_to_searching(w)) t = crt__steal_work(w);
    if (!t && crt__load(&rt->io_ready, CRT__RELAXED)) { /* Relaxed: a hint; poll_now acquires */
        crt__driver_poll_now(rt);
        t = crt__next_local(w);
    }
    return t;
}

/* With the clock paused and every task idle, the clock jumps to the next
 * deadline. The caller (an idle worker about to sleep) has no local work;
 * every other worker must be asleep with nothing queued for it — a worker
 * woken directly (an inbox delivery) still counts as parked in idle_state
 * until it runs, so its park word is what tells. Returns 1 if it fired
 * something. */
CRT__INTERN int crt__auto_advance(crt__worker *w) {
    crt_runtime *rt = w->rt;
    if (!crt__load(&rt->paused, CRT__ACQUIRE)) return 0;
    if (crt__load(&rt->bp_live, CRT__ACQUIRE)) return 0; /* a blocking job may still act */
    if (crt__inject_len(rt)) return 0;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        crt__worker *o = &rt->workers[i];
        if (crt__runq_len(&o->runq) || crt__list_len(&o->inbox)) return 0;
        if (o == w) continue;
        /* Acquire: a worker that sleeps published its emptiness before. */
        uint32_t ps = crt__load(&o->park_state, CRT__ACQUIRE);
        if (ps != CRT__W_PARKED && ps != CRT__W_PARKED_DRIVER) return 0;
    }
    crt_time next = crt__timers_next_exact(rt);
    if (next == CRT_FOREVER) return 0;
    crt__lock_acquire(&rt->clock_lock);
    if (crt__load(&rt->paused, CRT__RELAXED) && next > crt__load(&rt->frozen, CRT__RELAXED))
        crt__store(&rt->frozen, next, CRT__RELEASE);
    crt__lock_release(&rt->clock_lock);
    return crt__timers_fire_all(rt, 1, NULL, 0) > 0;
}

/* Runs tasks until `until` says stop. Runs on the worker's own stack. */
typedef int (*crt__until_fn)(crt__worker *w, void *arg);

CRT__NOIPA static void crt__worker_loop(crt__worker *w, crt__until_fn until, void *until_arg, crt_time real_deadline) {
    crt_runtime *rt = w->rt;
    for (;;) {
        crt__after_switch(w);
        if (crt__load(&rt->stop, CRT__ACQUIRE)) return;
        if (until && until(w, until_arg)) return;
        if (real_deadline != CRT_FOREVER && crt__mono_now() >= real_deadline) return;
        crt__maintenance(w);
        crt_task *t = crt__find_work(w);
        if (t) {
            if (w->searching) crt__transition_from_searching(w);
            if (crt__task_prepare(w, t) < 0) {
                crt__inject_push(rt, &t, 1);
                crt__worker_park(w, crt__add_saturating(crt__mono_now(), CRT_MS(10)));
                continue;
            }
            w->current = t;
            crt__ctx_switch(&w->sched_ctx, &t->stack->ctx, 0);
            continue;
        }
        if (crt__auto_advance(w)) continue;
        if (crt__timers_fire_all(rt, 0, NULL, 0)) continue; /* cover for busy workers */
        /* Nothing to do: a good moment to hand idle stack memory back. */
        if (crt__stack_pool_trim(&rt->stacks, CRT__STACK_KEEP_WARM, CRT__STACK_TRIM_BATCH, crt__mono_now())) continue;
        if (crt__io_linger(w)) continue;
        if (!crt__transition_to_parked(w)) continue;
        for (;;) {
            crt_time d = crt__rt_to_real(rt, crt__timers_earliest(rt));
            if (real_deadline < d) d = real_deadline;
            /* Wake when idle stacks are old enough to give back. */
            crt_time trim_at = crt__stack_pool_next_trim(&rt->stacks, CRT__STACK_KEEP_WARM);
            if (trim_at < d) d = trim_at;
            crt__worker_park(w, d);
            if (trim_at <= d)
                crt__stack_pool_trim(&rt->stacks, CRT__STACK_KEEP_WARM, CRT__STACK_TRIM_BATCH, crt__mono_now());
            crt__timers_fire_all(rt, 0, NULL, 0);
            if (crt__load(&rt->stop, CRT__ACQUIRE) || crt__transition_from_parked(w)) break;
            if ((until && until(w, until_arg)) || crt__mono_now() >= real_deadline) {
                crt__unpark_self(w);
                break;
            }
            if (crt__auto_advance(w)) {
                crt__unpark_self(w);
                break;
            }
        }
        if (w->searching && crt__worker_has_local_work(w)) crt__transition_from_searching(w);
    }
}

CRT__INTERN int crt__overflow_probe_rt(void *addr, const char **name) {
    crt__worker *w = crt__tls_worker_v;
    crt_task *t = w ? w->current : NULL;
    if (!t || !t->stack) return 0;
    char *lo = (char *)t->stack->lo;
    size_t page = crt__page_size();
    if ((char *)addr < lo - page || (char *)addr >= lo) return 0;
    *name = t->name;
    return 1;
}

/* Binds the calling thread to w: TLS, its stack for ASan, the alternate
 * signal stack for overflow reports. */
CRT__INTERN void crt__worker_enter(crt__worker *w) {
    pthread_attr_t attr;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &lo, &size);
        pthread_attr_destroy(&attr);
    }
    crt__ctx_init_thread(&w->sched_ctx, lo, size);
    w->errno_loc = &errno;
    w->altstack = crt__altstack_enter();
    crt__worker_tls_set(w);
}

CRT__INTERN void crt__worker_leave(crt__worker *w) {
    crt__worker_tls_set(NULL);
    crt__altstack_leave(w->altstack);
    w->altstack = NULL;
}

static void *crt__worker_thread(void *arg) {
    crt__worker *w = (crt__worker *)arg;
    crt__worker_enter(w);
    crt__worker_loop(w, NULL, NULL, CRT_FOREVER);
    crt__worker_leave(w);
    return NULL;
}

/* >>spawn, join, abort -------------------------------------------------------------- */

CRT__INTERN crt_task *crt__spawn_in(crt_runtime *rt, const crt_spawn_opts *o, crt_fn fn, void *arg) {
    size_t slot = 0;
    if (o && o->stack_size) {
        slot = crt__stack_slot_size(o->stack_size);
        if (!slot) {
            errno = EINVAL;
            return NULL;
        }
        if (slot == rt->stacks.slot) slot = 0;
    }
    crt__worker *w = crt__worker_tls();
    if (w && w->rt != rt) w = NULL;
    crt_task *t = crt__task_alloc(rt, w);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    crt__task_init(t, rt, fn, arg);
    if (o) {
        crt__store(&t->flags, (uint32_t)(CRT__T_LIVE | CRT__T_CUSTOM), CRT__RELAXED);
        t->name = o->name;
        t->stack_pages = (uint32_t)(slot / crt__page_size());
        t->pinned = o->pinned != 0;
        if (o->group) {
            int r = ((crt__group_hdr *)o->group)->attach(o->group, t);
            if (r < 0) {
                crt__task_free(t);
                errno = -r;
                return NULL;
            }
        }
    }
    if (w) {
        /* Relaxed: counted by the owner, read as a sum by shutdown. */
        crt__store(&w->spawned, w->spawned + 1, CRT__RELAXED);
        crt__runq_push(w, t);
        if (rt->nworkers > 1) crt__notify_parked(rt);
    } else {
        crt__fetch_add(&rt->ext_spawned, (uint64_t)1, CRT__RELAXED);
        crt__inject(rt, &t, 1);
        if (rt->nworkers == 1) crt__worker_unpark(&rt->workers[0]);
    }
    return t;
}

CRT_API crt_task *crt_spawn_with(const crt_spawn_opts *o, crt_fn fn, void *arg) {
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    crt_runtime *rt = crt__current_rt();
    if (!rt) {
        errno = EPERM;
        return NULL;
    }
    return crt__spawn_in(rt, o, fn, arg);
}

CRT_API crt_task *crt_spawn(crt_fn fn, void *arg) {
    crt__worker *w = crt__worker_tls();
    crt_task *t;
    /* The common case, kept short: a task spawning with a cached record. */
    if (CRT__LIKELY(fn && w && w->nfree_tasks)) {
        t = crt__task_cache_take(w);
        crt__task_init(t, w->rt, fn, arg);
        /* Relaxed: counted by the owner, read as a sum by shutdown. */
        crt__store(&w->spawned, w->spawned + 1, CRT__RELAXED);
        crt__runq_push(w, t);
        if (!w->single) crt__notify_parked(w->rt);
        return t;
    }
    return crt_spawn_with(NULL, fn, arg);
}

/* crt_join when t has not finished: wait in its done_q. Out of line: its
 * waiter would otherwise give crt_join's common case (the task has
 * finished) a frame of 136 bytes and six saved registers. */
CRT__NOINLINE CRT__INTERN int crt__join_wait(crt_task *t, crt_time deadline) {
    if (deadline == CRT_TRY) return -EAGAIN;
    crt__waiter w;
    crt__wait_node node;
    crt__waiter_init_one(&w, &node, NULL, 0);
    crt__lock_acquire(&t->done_lock);
    /* Acq_rel: ordered with the finisher's CAS on flags; exactly one of us
     * sees the other (it takes done_lock if it sees WAITERS). */
    uint32_t f = crt__fetch_or(&t->flags, (uint32_t)CRT__T_WAITERS, CRT__ACQ_REL);
    if (!(f & CRT__T_FINISHED)) crt__waitq_push(&t->done_q, &node);
    crt__lock_release(&t->done_lock);
    if (f & CRT__T_FINISHED) return 0;
    int r = crt__waiter_wait(&w, deadline);
    /* Not `if (node.linked)`: that is not ours to read without the lock —
     * after a timeout the finisher may be unlinking the node right now and
     * then reads it once more. Unless it won (index 0), take the lock. */
    if (w.index < 0) {
        crt__lock_acquire(&t->done_lock);
        crt__waitq_remove(&t->done_q, &node);
        crt__lock_release(&t->done_lock);
    }
    return r;
}

/* Takes the result of a finished task and frees it (no cancel check). */
CRT__INTERN void crt__join_take(crt__worker *w, crt_task *t, void **result) {
    crt__task_wait_released(t);
    if (result) *result = t->u.result;
    crt__task_free_on(w, t);
}

CRT_API int crt_join(crt_task *t, void **result, crt_time deadline) {
    if (!t) return -EINVAL;
    crt__worker *w = crt__worker_tls();
    crt_task *self = w ? w->current : NULL;
    /* Acquire: pairs with the finisher's release; result is visible. */
    uint32_t f = crt__load(&t->flags, CRT__ACQUIRE);
    CRT_ASSERT((f & CRT__T_LIVE) && !(f & CRT__T_DETACHED), "crt_join: the handle was already joined or detached");
    CRT_ASSERT(t->group == NULL, "crt_join: a group's task is joined through its group (crt_group_next)");
    CRT_ASSERT(t != self, "crt_join: a task cannot join itself");
    if (self && crt__task_abort_pending(self)) return -ECANCELED;
    if (CRT__UNLIKELY(!(f & CRT__T_RELEASED))) {
        if (!(f & CRT__T_FINISHED)) {
            int r = crt__join_wait(t, deadline);
            if (r < 0) return r;
            w = crt__worker_tls(); /* we may have moved */
        }
        crt__task_wait_released(t);
    }
    if (result) *result = t->u.result;
    crt__task_free_on(w, t);
    return 0;
}

CRT_API void crt_detach(crt_task *t) {
    if (!t) return;
    CRT_ASSERT(t->group == NULL, "crt_detach: a group's task belongs to its group");
    /* Acq_rel: either we see RELEASED (and free) or the finisher sees
     * DETACHED (and frees): exactly one of us. */
    uint32_t prev = crt__fetch_or(&t->flags, (uint32_t)CRT__T_DETACHED, CRT__ACQ_REL);
    CRT_ASSERT((prev & CRT__T_LIVE) && !(prev & CRT__T_DETACHED), "crt_detach: the handle was already joined or detached");
    if (prev & CRT__T_RELEASED) crt__task_free(t);
}

CRT_API void crt_abort(crt_task *t) {
    if (!t) return;
    /* Seq_cst: before the look at its park word (Dekker with waiter_init). */
    crt__store(&t->abort, 1u, CRT__SEQ_CST);
    if (t->blocking) return;
    crt__task_poke(t);
}

CRT__NOIPA CRT_API int crt_yield(void) {
    crt__worker *w = crt__worker_tls();
    crt_task *self = w ? w->current : NULL;
    if (!self) {
        sched_yield();
        return 0;
    }
    if (crt__task_abort_pending(self)) return -ECANCELED;
    crt__suspend(w, self, CRT__ACT_YIELD, 0);
    return 0;
}

CRT_API int crt_cancelled(void) { return crt__check_cancel(); }

CRT_API int crt_shield(int on) {
    crt_task *t = crt__task_self();
    CRT_ASSERT(t != NULL, "crt_shield: not inside a task");
    if (!t) return 0;
    int prev = t->shield;
    t->shield = on != 0;
    return prev;
}

CRT_API crt_task *crt_current(void) { return crt__task_self(); }

/* >>blocking pool ------------------------------------------------------------------- */

static void *crt__blocking_thread(void *arg) {
    crt_runtime *rt = (crt_runtime *)arg;
    crt__tls_blocking_rt = rt;
    pthread_mutex_lock(&rt->bp_lock);
    for (;;) {
        while (!rt->bp_head && !rt->bp_stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(CRT__BLOCKING_IDLE / 1000000000);
            rt->bp_idle++;
            int r = pthread_cond_timedwait(&rt->bp_cond, &rt->bp_lock, &ts);
            rt->bp_idle--;
            if (r == ETIMEDOUT && !rt->bp_head) goto retire;
        }
        if (!rt->bp_head) goto retire; /* stopping and nothing left */
        crt_task *job = rt->bp_head;
        rt->bp_head = job->next;
        if (!rt->bp_head) rt->bp_tail = NULL;
        rt->bp_queued--;
        pthread_mutex_unlock(&rt->bp_lock);
        job->u.result = job->u.fn(job->arg);
        crt__task_complete(job);
        /* Acq_rel: the job's effects before the count; pairs with the
         * acquire loads of shutdown and auto-advance. */
        if (crt__fetch_sub(&rt->bp_live, (uint64_t)1, CRT__ACQ_REL) == 1) {
            /* The last job: a worker waiting for quiet (shutdown with one
             * worker, a paused clock's auto-advance) must look again. */
            for (unsigned i = 0; i < rt->nworkers; i++) crt__worker_unpark(&rt->workers[i]);
        }
        crt__fetch_add(&rt->live_word, 1u, CRT__RELEASE);
        crt__futex_wake(&rt->live_word, INT32_MAX);
        pthread_mutex_lock(&rt->bp_lock);
    }
retire:
    rt->bp_threads--;
    pthread_cond_broadcast(&rt->bp_gone);
    pthread_mutex_unlock(&rt->bp_lock);
    crt__tls_blocking_rt = NULL;
    return NULL;
}

CRT_API crt_task *crt_spawn_blocking(crt_fn fn, void *arg) {
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    crt_runtime *rt = crt__current_rt();
    if (!rt) {
        errno = EPERM;
        return NULL;
    }
    crt__worker *w = crt__worker_tls();
    crt_task *t = crt__task_alloc(rt, w && w->rt == rt ? w : NULL);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    crt__task_init(t, rt, fn, arg);
    crt__store(&t->flags, (uint32_t)(CRT__T_LIVE | CRT__T_CUSTOM), CRT__RELAXED);
    t->blocking = 1;
    crt__fetch_add(&rt->bp_live, (uint64_t)1, CRT__ACQ_REL);
    pthread_mutex_lock(&rt->bp_lock);
    t->next = NULL;
    if (rt->bp_tail) rt->bp_tail->next = t;
    else rt->bp_head = t;
    rt->bp_tail = t;
    rt->bp_queued++;
    if (rt->bp_idle > 0) pthread_cond_signal(&rt->bp_cond);
    /* A signalled thread counts as idle until it runs: grow the pool while
     * more jobs wait than idle threads can take. */
    if (rt->bp_queued > rt->bp_idle && rt->bp_threads < rt->cfg.max_blocking_threads) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, crt__blocking_thread, rt) == 0) rt->bp_threads++;
        pthread_attr_destroy(&attr);
        if (rt->bp_threads == 0) {
            /* No thread and none can be made: take the job back. */
            rt->bp_head = rt->bp_tail = NULL;
            rt->bp_queued = 0;
            pthread_mutex_unlock(&rt->bp_lock);
            crt__fetch_sub(&rt->bp_live, (uint64_t)1, CRT__ACQ_REL);
            crt__task_free(t);
            errno = ENOMEM;
            return NULL;
        }
    }
    pthread_mutex_unlock(&rt->bp_lock);
    return t;
}

/* >>runtime lifecycle --------------------------------------------------------------- */

CRT__INTERN int crt__config_defaults(const crt_config *in, crt_config *out) {
    crt_config c;
    if (in) c = *in;
    else memset(&c, 0, sizeof c);
    if (c.workers < 0 || c.max_blocking_threads < 0 || c.shutdown_timeout < 0) return -EINVAL;
    if (c.workers > 1024) return -EINVAL;
    if (c.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c.workers = n > 0 ? (int)n : 1;
    }
    c.stack_size = crt__stack_slot_size(c.stack_size);
    if (!c.stack_size) return -EINVAL;
    if (c.max_blocking_threads == 0) c.max_blocking_threads = 64;
    if (c.shutdown_timeout == 0) c.shutdown_timeout = CRT_SEC(5);
    if (c.seed == 0) {
        c.seed = (uint64_t)crt__mono_now() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&c;
        if (c.seed == 0) c.seed = 1;
    }
    *out = c;
    return 0;
}

CRT_API crt_runtime *crt_runtime_new(const crt_config *cfg) {
    crt_config c;
    int r = crt__config_defaults(cfg, &c);
    if (r < 0) {
        errno = -r;
        return NULL;
    }
    crt_runtime *rt = (crt_runtime *)CRT_MALLOC(sizeof *rt);
    if (!rt) {
        errno = ENOMEM;
        return NULL;
    }
    memset(rt, 0, sizeof *rt);
    rt->cfg = c;
    rt->nworkers = (unsigned)c.workers;
    rt->workers = (crt__worker *)CRT_MALLOC(rt->nworkers * sizeof *rt->workers);
    rt->sleepers = (unsigned *)CRT_MALLOC(rt->nworkers * sizeof *rt->sleepers);
    rt->epfd = epoll_create1(EPOLL_CLOEXEC);
    rt->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!rt->workers || !rt->sleepers || rt->epfd < 0 || rt->evfd < 0) goto fail;
    {
        struct epoll_event ev;
        ev.events = EPOLLIN;
        ev.data.ptr = NULL;
        if (epoll_ctl(rt->epfd, EPOLL_CTL_ADD, rt->evfd, &ev) < 0) goto fail;
    }
    memset(rt->workers, 0, rt->nworkers * sizeof *rt->workers);
    {
        const char *m = getenv("CRT_DEBUG_MIGRATE");
        rt->migrate = rt->nworkers > 1 && m && m[0] == '1';
    }
    pthread_mutex_init(&rt->task_lock, NULL);
    pthread_mutex_init(&rt->bp_lock, NULL);
    pthread_cond_init(&rt->bp_cond, NULL);
    pthread_cond_init(&rt->bp_gone, NULL);
    crt__stack_pool_init(&rt->stacks, c.stack_size);
    rt->idle_state = rt->nworkers * CRT__IDLE_UNPARK;
    if (c.start_paused) {
        rt->paused = 1;
        rt->frozen = crt__mono_now();
    }
    crt__overflow_install(crt__overflow_probe_rt);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        crt__worker *w = &rt->workers[i];
        w->rt = rt;
        w->index = i;
        w->rng = c.seed + UINT64_C(0x9e3779b97f4a7c15) * (i + 1);
        if (!w->rng) w->rng = 1;
        w->timers.earliest = CRT_FOREVER;
        crt__wheel_init(&w->timers.wheel, crt__rt_now(rt));
        w->single = rt->nworkers == 1;
        w->migrate = rt->migrate;
        w->fair_countdown = CRT__FAIR_INTERVAL;
    }
    if (rt->nworkers > 1) {
        for (unsigned i = 0; i < rt->nworkers; i++) {
            crt__worker *w = &rt->workers[i];
            if (pthread_create(&w->thread, NULL, crt__worker_thread, w) != 0) {
                crt__store(&rt->stop, 1u, CRT__RELEASE);
                for (unsigned j = 0; j < i; j++) {
                    crt__worker_unpark(&rt->workers[j]);
                    pthread_join(rt->workers[j].thread, NULL);
                }
                crt__stack_pool_destroy(&rt->stacks);
                goto fail;
            }
            w->started = 1;
        }
    }
    return rt;
fail:
    if (rt->epfd >= 0) close(rt->epfd);
    if (rt->evfd >= 0) close(rt->evfd);
    CRT_FREE(rt->workers);
    CRT_FREE(rt->sleepers);
    CRT_FREE(rt);
    errno = ENOMEM;
    return NULL;
}

static int crt__until_released(crt__worker *w, void *arg) {
    (void)w;
    return (crt__load(&((crt_task *)arg)->flags, CRT__ACQUIRE) & CRT__T_RELEASED) != 0;
}

static int crt__until_quiet(crt__worker *w, void *arg) {
    (void)arg;
    return crt__live_tasks(w->rt) == 0 && crt__load(&w->rt->bp_live, CRT__ACQUIRE) == 0;
}

/* workers = 1: the calling thread becomes the worker until `until`. */
CRT__INTERN void crt__drive(crt_runtime *rt, crt__until_fn until, void *arg, crt_time real_deadline) {
    crt__worker *w = &rt->workers[0];
    crt__store(&rt->in_block_on, 1u, CRT__RELAXED);
    crt__worker_enter(w);
    crt__worker_loop(w, until, arg, real_deadline);
    crt__worker_leave(w);
    crt__store(&rt->in_block_on, 0u, CRT__RELAXED);
}

CRT_API int crt_runtime_block_on(crt_runtime *rt, crt_fn fn, void *arg, void **result) {
    if (!rt || !fn) return -EINVAL;
    CRT_ASSERT(crt__worker_tls() == NULL, "crt_runtime_block_on: called from inside a task");
    if (crt__worker_tls() != NULL) return -EINVAL;
    if (crt__load(&rt->closing, CRT__ACQUIRE)) return -EPIPE;
    crt_spawn_opts o;
    memset(&o, 0, sizeof o);
    o.name = "main";
    crt_task *t = crt__spawn_in(rt, &o, fn, arg);
    if (!t) return -ENOMEM;
    if (rt->nworkers == 1) crt__drive(rt, crt__until_released, t, CRT_FOREVER);
    return crt_join(t, result, CRT_FOREVER);
}

/* Aborts every live task: the record chunks are the list of all tasks. */
CRT__INTERN void crt__abort_all(crt_runtime *rt) {
    pthread_mutex_lock(&rt->task_lock);
    for (crt__task_chunk *c = rt->chunks; c; c = c->next) {
        for (unsigned i = 0; i < CRT__TASKS_PER_CHUNK; i++) {
            crt_task *t = &c->tasks[i];
            uint32_t f = crt__load(&t->flags, CRT__ACQUIRE);
            if ((f & CRT__T_LIVE) && !(f & CRT__T_FINISHED) && !t->blocking) crt_abort(t);
        }
    }
    pthread_mutex_unlock(&rt->task_lock);
}

CRT_API int crt_runtime_shutdown(crt_runtime *rt, crt_time deadline) {
    if (!rt) return -EINVAL;
    crt__worker *me = crt__worker_tls();
    CRT_ASSERT(!me || me->rt != rt, "crt_runtime_shutdown: called from a task of the same runtime");
    if (me && me->rt == rt) return -EINVAL;
    crt__store(&rt->closing, 1u, CRT__SEQ_CST);
    crt__abort_all(rt);
    if (rt->nworkers == 1) {
        crt__drive(rt, crt__until_quiet, NULL, deadline);
    } else {
        for (;;) {
            uint32_t seen = crt__load(&rt->live_word, CRT__ACQUIRE);
            if (crt__live_tasks(rt) == 0 && crt__load(&rt->bp_live, CRT__ACQUIRE) == 0) break;
            crt_time now = crt__mono_now();
            if (now >= deadline) break;
            crt_time d = crt__add_saturating(now, CRT_MS(10));
            crt__futex_wait(&rt->live_word, seen, d < deadline ? d : deadline);
        }
    }
    return (crt__live_tasks(rt) == 0 && crt__load(&rt->bp_live, CRT__ACQUIRE) == 0) ? 0 : -ETIMEDOUT;
}

CRT_API void crt_runtime_free(crt_runtime *rt) {
    if (!rt) return;
    /* A wake from outside may still be touching rt after the task it woke
     * finished (see crt__schedule). Acquire: pairs with its decrement. */
    while (crt__load(&rt->ext_wakes, CRT__ACQUIRE) != 0) sched_yield();
    crt__store(&rt->stop, 1u, CRT__RELEASE);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        crt__worker *w = &rt->workers[i];
        if (!w->started) continue;
        crt__worker_unpark(w);
        pthread_join(w->thread, NULL);
    }
    pthread_mutex_lock(&rt->bp_lock);
    rt->bp_stop = 1;
    pthread_cond_broadcast(&rt->bp_cond);
    while (rt->bp_threads > 0) pthread_cond_wait(&rt->bp_gone, &rt->bp_lock);
    pthread_mutex_unlock(&rt->bp_lock);
    if (rt->io_free) rt->io_free(rt);
    for (unsigned i = 0; i < rt->nworkers; i++) CRT_FREE(rt->workers[i].timers.wheel.cells);
    /* Tasks that never finished: their stacks go with the slabs; a stack of
     * their own is unmapped here. */
    for (crt__task_chunk *c = rt->chunks; c; c = c->next) {
        for (unsigned i = 0; i < CRT__TASKS_PER_CHUNK; i++) {
            crt_task *t = &c->tasks[i];
            if (t->stack) crt__ctx_abandon(&t->stack->ctx);
            if (t->stack && t->stack->own_mapping) crt__stack_unmap(t->stack);
        }
    }
    while (rt->chunks) {
        crt__task_chunk *c = rt->chunks;
        rt->chunks = c->next;
        CRT_FREE(c->mem);
    }
    crt__stack_pool_destroy(&rt->stacks);
    CRT_FREE(rt->free_pool);
    CRT_FREE(rt->inject.ring);
    pthread_mutex_destroy(&rt->task_lock);
    pthread_mutex_destroy(&rt->bp_lock);
    pthread_cond_destroy(&rt->bp_cond);
    pthread_cond_destroy(&rt->bp_gone);
    close(rt->epfd);
    close(rt->evfd);
    CRT_FREE(rt->workers);
    CRT_FREE(rt->sleepers);
    CRT_FREE(rt);
}

CRT_API int crt_run(const crt_config *cfg, crt_fn main, void *arg, void **result) {
    if (!main) return -EINVAL;
    if (crt__worker_tls() != NULL) return -EINVAL;
    crt_runtime *rt = crt_runtime_new(cfg);
    if (!rt) return -errno;
    int r = crt_runtime_block_on(rt, main, arg, result);
    int s = crt_runtime_shutdown(rt, crt__add_saturating(crt__mono_now(), rt->cfg.shutdown_timeout));
    crt_runtime_free(rt);
    return r < 0 ? r : s;
}

#endif /* CRT_IMPLEMENTATION */
