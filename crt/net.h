/* crt/net.h — async I/O: fd readiness, TCP, UDP and signals.
 *
 * Sockets are plain int file descriptors, so the sockets of other C
 * libraries (libpq, libcurl, an SSL library) fit in through crt_fd_wait.
 * Inside a task every call parks the task, never the worker; on a plain
 * thread (or in a crt_spawn_blocking job) it blocks that thread in poll(),
 * honouring the deadline.
 *
 *   static void *serve(void *arg) {               // one task per connection
 *       int fd = (int)(intptr_t)arg;
 *       char buf[4096];
 *       ssize_t n;
 *       while ((n = crt_read(fd, buf, sizeof buf, crt_after(CRT_SEC(30)))) > 0)
 *           if (crt_write(fd, buf, (size_t)n, crt_after(CRT_SEC(5))) < 0) break;
 *       crt_close(fd);
 *       return NULL;
 *   }
 *   static void *main_task(void *arg) {
 *       int l = crt_tcp_listen("127.0.0.1:7000", 0);
 *       for (int fd; (fd = crt_tcp_accept(l, CRT_FOREVER)) >= 0;)
 *           crt_detach(crt_spawn(serve, (void *)(intptr_t)fd));
 *       crt_close(l);
 *       return arg;
 *   }
 *
 * The reactor. Each runtime owns one epoll instance. An fd is registered
 * edge-triggered (in, out, rdhup) the first time a task has to wait for it
 * and forgotten by crt_close (or crt_fd_forget). crt remembers per fd and
 * per runtime whether it was last seen readable / writable: an event sets
 * that, an operation that hits EAGAIN clears it, and a read or write of a
 * crt-made TCP socket that comes back short clears it too (the socket was
 * drained), so a request/response loop costs one read and one write system
 * call per message. The worker that runs out of work waits in epoll_wait;
 * the others park; an eventfd wakes the waiting one.
 *
 * Rules that follow from remembering:
 *   - Close an fd that crt has waited on with crt_close, or call
 *     crt_fd_forget before another library closes it. (crt_fd_wait re-checks
 *     its registration each time, so foreign fds that only go through
 *     crt_fd_wait are safe even when their library closes them.)
 *   - The first crt_read/crt_write/crt_udp_* of a foreign fd inside a task
 *     sets O_NONBLOCK on it (a blocking read would stall the worker).
 *     Plain threads leave the flag alone.
 *   - Readiness may be spurious (as with epoll): crt_fd_wait may report an
 *     fd ready whose operation then says EAGAIN; wait again.
 *
 * Signals: crt_signal_wait installs a handler (sigaction, SA_RESTART) for
 * the signal the first time anyone waits on it — from then on, for the
 * rest of the process, the signal's default action (terminate, for SIGINT
 * and SIGTERM) no longer happens and deliveries are counted instead; a
 * handler installed before is still called after crt's. The handler writes
 * to a self-pipe read by a helper thread that crt starts on first use and
 * that wakes the waiters. crt blocks no signal in any thread but that
 * helper (which blocks all of them), so the signal must stay unblocked in
 * at least one thread. Each delivery wakes every task and thread waiting on
 * that signal at the time; a delivery that finds no waiter is kept (once,
 * coalesced) for the next crt_signal_wait of that signal. The same helper
 * thread watches the fds of CRT_CASE_FD cases selected on plain threads.
 *
 * Addresses: "127.0.0.1:8080", "[::1]:8080", "localhost:8080", ":8080"
 * (listen: every address, IPv6 and IPv4; connect: the local host). Ports are
 * numbers. Names are resolved with getaddrinfo on the blocking pool (inside
 * a task) or on the calling thread (plain threads); numeric addresses need
 * no resolution. TCP sockets made by crt are non-blocking, close-on-exec,
 * with TCP_NODELAY on (Go's default; clear it with setsockopt for bulk
 * transfers); listeners have SO_REUSEADDR.
 *
 * Config: none. Limits: fds up to 4,194,303 inside tasks (-EMFILE above).
 *
 * Errors (negative errno): -ETIMEDOUT, -EAGAIN (CRT_TRY and it would wait),
 * -ECANCELED (the task was aborted), -EPIPE (write to a closed peer),
 * -ECONNREFUSED, -ECONNRESET, -EADDRINUSE, -EBADF (bad fd, or the fd was
 * closed by crt_close while waiting), -ENOENT (a name that does not
 * resolve), -EINVAL, -ENOMEM, and whatever else the system call said.
 */
#ifndef CRT_NET_H
#define CRT_NET_H
#include "base.h"
#include "case.h"
#include "runtime.h"
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CRT_READABLE 1 /* crt_fd_wait / CRT_CASE_FD: data, EOF, an error or a connection to accept */
#define CRT_WRITABLE 2 /* crt_fd_wait / CRT_CASE_FD: room to write, connected, or an error */

/* Waits until fd is readable and/or writable (events: CRT_READABLE,
 * CRT_WRITABLE or both), for fds whose I/O the caller does itself — the
 * sockets of other libraries. It looks at the fd's current state first, so
 * an fd that is already ready returns at once. Errors and hang-ups count as
 * both readable and writable (the next operation reports them).
 * Returns the ready events (> 0, a subset of events), -ETIMEDOUT, -EAGAIN
 * (CRT_TRY and not ready), -ECANCELED, -EBADF (fd not open, or closed by
 * crt_close while waiting), -EINVAL (events empty or unknown bits),
 * -ENOMEM, -EMFILE. Nothing is consumed. Task or plain thread. */
CRT_API int crt_fd_wait(int fd, int events, crt_time deadline);

/* Makes crt forget fd without closing it: call it before another library
 * closes an fd that crt_read/crt_write/... have used in a task. Waiters of
 * fd in the caller's runtime are woken with -EBADF. Returns 0, or -EBADF
 * (fd < 0). Task, blocking job or plain thread (there: nothing to forget). */
CRT_API int crt_fd_forget(int fd);

/* Opens a TCP listener on addr ("host:port", "[v6]:port", ":port"; port 0
 * picks a free one: see crt_local_port), non-blocking, SO_REUSEADDR.
 * backlog <= 0 means SOMAXCONN. A name is resolved first (see the top).
 * Returns the listening fd, -EINVAL (malformed addr), -ENOENT (no such
 * host), -EADDRINUSE, -EADDRNOTAVAIL (not an address of this host),
 * -EACCES (a privileged port), -ENOMEM, -EMFILE/-ENFILE (out of fds),
 * -ECANCELED (aborted, perhaps while a name was being resolved: nothing
 * is left open), or another negative errno from socket(2), bind(2) or
 * listen(2). On any error nothing is left open. Task or plain thread. */
CRT_API int crt_tcp_listen(const char *addr, int backlog);

/* Accepts one connection on a listener from crt_tcp_listen (or any
 * listening socket), waiting for one if needed. The new socket is
 * non-blocking, close-on-exec, with TCP_NODELAY.
 * Returns the connection's fd, -ETIMEDOUT, -EAGAIN (CRT_TRY and none
 * pending), -ECANCELED, -EBADF, -EINVAL (not a listener), -EMFILE/-ENFILE
 * (out of fds: the connection stays queued), -ENOMEM. On any error no
 * connection was taken. Task or plain thread. */
CRT_API int crt_tcp_accept(int listener, crt_time deadline);

/* Connects to addr ("host:port", "[v6]:port", ":port" for the local host).
 * A name is resolved off the workers (blocking pool); each address it gives
 * is tried in order until one connects. The socket is non-blocking,
 * close-on-exec, with TCP_NODELAY.
 * Returns the connected fd, -ECONNREFUSED, -ETIMEDOUT (the deadline passed
 * while resolving or connecting), -EAGAIN (CRT_TRY: never waits, so only a
 * connection that completes at once succeeds), -ECANCELED, -ENOENT (no such
 * host), -EHOSTUNREACH, -ENETUNREACH, -EINVAL (malformed addr), -ENOMEM,
 * -EMFILE. On error no socket is left open. Task or plain thread. */
CRT_API int crt_tcp_connect(const char *addr, crt_time deadline);

/* The local port of a bound socket (after listening on port 0, say).
 * Returns the port (0..65535), -EBADF, -ENOTSOCK, -EINVAL (not IPv4/IPv6).
 * Anywhere; never waits. */
CRT_API int crt_local_port(int fd);

/* Reads up to len bytes, waiting until some are available. Inside a task it
 * tries the read first and waits only if there is nothing to read (or the
 * last read of this crt-made socket drained it).
 * Returns the number of bytes read (> 0), 0 at end of file (or len == 0),
 * -ETIMEDOUT, -EAGAIN (CRT_TRY and nothing to read), -ECANCELED, -EBADF,
 * -ECONNRESET, -EINVAL (buf NULL with len > 0), or another negative errno
 * from read(2). On any error nothing was read. Task or plain thread. */
CRT_API ssize_t crt_read(int fd, void *buf, size_t len, crt_time deadline);

/* Writes all len bytes, waiting for room as often as needed; never raises
 * SIGPIPE (sockets: MSG_NOSIGNAL; pipes: the signal is held back and
 * discarded).
 * Returns len, or -EPIPE (the peer closed or reset the connection),
 * -ETIMEDOUT, -ECANCELED, -EBADF, -EINVAL (buf NULL with len > 0, len >
 * SSIZE_MAX), or another negative errno from write(2). With CRT_TRY it
 * writes what fits without waiting and returns that count (-EAGAIN if
 * nothing fit). After a timeout, a cancel or an error a prefix of buf may
 * have been written: the stream is then in an unknown state (close it).
 * Task or plain thread. */
CRT_API ssize_t crt_write(int fd, const void *buf, size_t len, crt_time deadline);

/* Opens a UDP socket bound to addr (as crt_tcp_listen; ":port" binds every
 * address), non-blocking, close-on-exec.
 * Returns the fd, -EINVAL (malformed addr), -ENOENT, -EADDRINUSE,
 * -EADDRNOTAVAIL, -EACCES, -ENOMEM, -EMFILE/-ENFILE, -ECANCELED (all as
 * crt_tcp_listen), or another negative errno from socket(2) or bind(2).
 * On any error nothing is left open. Task or plain thread. */
CRT_API int crt_udp_bind(const char *addr);

/* Receives one datagram into buf (a longer one is truncated to len), and
 * its sender into *from if from is not NULL.
 * Returns the number of bytes stored, -ETIMEDOUT, -EAGAIN (CRT_TRY and
 * nothing queued), -ECANCELED, -EBADF, -EINVAL, or another negative errno
 * from recvfrom(2). On error no datagram was taken. Task or plain thread. */
CRT_API ssize_t crt_udp_recv(int fd, void *buf, size_t len, struct sockaddr_storage *from, crt_time deadline);

/* Sends one datagram of len bytes to `to` (NULL on a connected socket),
 * waiting while the socket's buffer is full.
 * Returns len, -ETIMEDOUT, -EAGAIN (CRT_TRY and no room), -ECANCELED,
 * -EBADF, -EMSGSIZE, -EINVAL, or another negative errno from sendto(2). On
 * error nothing was sent. Task or plain thread. */
CRT_API ssize_t crt_udp_send(int fd, const void *buf, size_t len, const struct sockaddr *to, socklen_t tolen,
                             crt_time deadline);

/* Closes fd and makes crt forget it: tasks of the caller's runtime still
 * waiting on it get -EBADF. Returns 0, -EBADF (not open), or another
 * negative errno from close(2) (the fd is released all the same).
 * Task, blocking job or plain thread. */
CRT_API int crt_close(int fd);

/* Waits for the next delivery of signal signo to the process (SIGINT,
 * SIGTERM, SIGHUP, SIGUSR1, ...). The first call for a signal — even with
 * CRT_TRY — installs crt's handler for it for the rest of the process (see
 * the top: its default action no longer happens). Every waiter present at a
 * delivery sees it; a delivery with no waiter is kept for the next call.
 * Returns 0 (delivered), -ETIMEDOUT, -EAGAIN (CRT_TRY and no delivery kept),
 * -ECANCELED, -EINVAL (signo out of range, or SIGKILL, SIGSTOP, SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL), -ENOMEM/-EMFILE (the helper thread or its pipe
 * could not be made). A timeout or cancel consumes nothing.
 * Task or plain thread. */
CRT_API int crt_signal_wait(int signo, crt_time deadline);

/* Case for crt_select: fd is ready for events (CRT_READABLE and/or
 * CRT_WRITABLE), as crt_fd_wait. Its result is the ready mask (> 0), or
 * -EBADF / -EINVAL / -ENOMEM / -EMFILE. Completing it consumes nothing.
 * In a task it waits in the runtime's reactor; in a plain thread's select
 * crt's helper thread watches (a dup of) the fd. */
#define CRT_CASE_FD(fd, events) \
    crt__case_make(&crt__case_ops_fd, NULL, NULL, (uint64_t)(uint32_t)(fd) | ((uint64_t)(uint32_t)(events) << 32))
CRT_API const crt__case_ops crt__case_ops_fd;

#ifdef __cplusplus
}
#endif

#endif /* CRT_NET_H */

/* ======================================================================= */
#if defined(CRT_IMPLEMENTATION) && !defined(CRT__NET_IMPL)
#define CRT__NET_IMPL

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

/* A system header came before crt.h without _GNU_SOURCE (see crt/base.h):
 * the Linux values and glibc's prototypes of what it then hid. */
#ifndef POLLRDHUP
#define POLLRDHUP 0x2000
#endif
#if defined(__GLIBC__) && !defined(__USE_GNU)
extern int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
extern int pipe2(int fds[2], int flags);
#endif

/* >>records ----------------------------------------------------------------
 * One record per fd number and runtime, in a two-level table that only
 * grows (records never move or die before the runtime), so a record's
 * address is its epoll data and may be used without a reference count. */

#define CRT__FD_CHUNK_BITS 10u
#define CRT__FD_CHUNK (1u << CRT__FD_CHUNK_BITS)
#define CRT__FD_TOP 4096u
#define CRT__FD_MAX (CRT__FD_CHUNK * CRT__FD_TOP)

/* rdy: low bits say what was last seen ready; the tick above them counts
 * events, so "clear if nothing happened since I looked" is one CAS. The
 * CLOSED bits (peer hung up, an error) are sticky: the last short read
 * before an EOF leaves nothing for a new edge to announce, yet the next
 * read must not wait (tokio keeps READ_CLOSED the same way). */
#define CRT__RDY_R 1u        /* = CRT_READABLE */
#define CRT__RDY_W 2u        /* = CRT_WRITABLE */
#define CRT__RDY_RCLOSED 4u  /* sticky: reads will not block again */
#define CRT__RDY_WCLOSED 8u  /* sticky: writes will not block again */
#define CRT__TICK_ONE (1u << 8)
#define CRT__TICK(v) ((v) >> 8)

/* The events (CRT_READABLE/CRT_WRITABLE) an rdy word says are ready. */
static inline uint32_t crt__rdy_ready(uint32_t v) { return (v | (v >> 2)) & (CRT__RDY_R | CRT__RDY_W); }

/* Facts about the fd (crt__fd_rec.flags). */
enum {
    CRT__FD_KNOWN = 1u << 0,  /* O_NONBLOCK is set and the bits below are valid */
    CRT__FD_SOCKET = 1u << 1, /* send/recv work (MSG_NOSIGNAL) */
    CRT__FD_STREAM = 1u << 2  /* a crt-made TCP socket: a short read or write drained it */
};

/* Registration (crt__fd_rec.reg, under the record's lock). */
enum { CRT__REG_NONE, CRT__REG_EPOLL, CRT__REG_ALWAYS };

typedef struct crt__fd_rec {
    uint32_t lock;          /* spinlock word: guards waiters and reg */
    uint32_t rdy;           /* atomic: (tick << 8) | CRT__RDY_* */
    uint32_t flags;         /* atomic: CRT__FD_* */
    int reg;                /* CRT__REG_*, under lock */
    int fd;                 /* the record's number, fixed */
    int reserved;
    crt__waitq waiters;     /* node->n: the events a node waits for */
    char pad[CRT__CACHELINE - 24 - sizeof(crt__waitq)];
} crt__fd_rec;

typedef struct crt__fd_chunk {
    crt__fd_rec recs[CRT__FD_CHUNK];
    void *mem;              /* what CRT_MALLOC returned (before aligning) */
} crt__fd_chunk;

typedef struct crt__net_state {
    int epfd;
    crt__fd_chunk *chunks[CRT__FD_TOP]; /* atomic: published once each */
} crt__net_state;

CRT__INTERN void crt__net_io_ready(crt_runtime *rt, void *data, uint32_t events);

static void crt__net_io_free(crt_runtime *rt) {
    crt__net_state *s = (crt__net_state *)rt->io_state;
    if (!s) return;
    for (unsigned i = 0; i < CRT__FD_TOP; i++)
        if (s->chunks[i]) CRT_FREE(s->chunks[i]->mem);
    CRT_FREE(s);
    rt->io_state = NULL;
}

CRT__NOINLINE static crt__net_state *crt__net_state_new(crt_runtime *rt) {
    crt__net_state *s = (crt__net_state *)CRT_MALLOC(sizeof *s);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    s->epfd = rt->epfd;
    void *expected = NULL;
    /* Acq_rel: publishes the zeroed table to the other workers (pairs with
     * the acquire in crt__net_state_of); on failure, acquire the winner's. */
    if (!crt__cas(&rt->io_state, &expected, (void *)s, CRT__ACQ_REL, CRT__ACQUIRE)) {
        CRT_FREE(s);
        return (crt__net_state *)expected;
    }
    /* Release: io_free is read by crt_runtime_free after it joined the
     * workers; io_ready by workers polling epoll (acquire loads there). An
     * event can only name a record after a registration, which comes later
     * from this runtime's tasks. */
    crt__store(&rt->io_free, &crt__net_io_free, CRT__RELEASE);
    crt__store(&rt->io_ready, &crt__net_io_ready, CRT__RELEASE);
    return s;
}

static inline crt__net_state *crt__net_state_of(crt_runtime *rt) {
    /* Acquire: pairs with the CAS that published the state. */
    crt__net_state *s = (crt__net_state *)crt__load(&rt->io_state, CRT__ACQUIRE);
    return CRT__LIKELY(s != NULL) ? s : crt__net_state_new(rt);
}

CRT__NOINLINE static crt__fd_chunk *crt__fd_chunk_new(crt__net_state *s, unsigned top) {
    void *mem = CRT_MALLOC(sizeof(crt__fd_chunk) + CRT__CACHELINE);
    if (!mem) return NULL;
    crt__fd_chunk *c = (crt__fd_chunk *)(((uintptr_t)mem + CRT__CACHELINE - 1) & ~(uintptr_t)(CRT__CACHELINE - 1));
    memset(c, 0, sizeof *c);
    c->mem = mem;
    for (unsigned i = 0; i < CRT__FD_CHUNK; i++) {
        c->recs[i].fd = (int)(top * CRT__FD_CHUNK + i);
        /* Unknown fds count as ready: the first operation just tries. */
        c->recs[i].rdy = CRT_READABLE | CRT_WRITABLE;
    }
    crt__fd_chunk *expected = NULL;
    /* Acq_rel: publishes the initialised records (pairs with the acquire in
     * crt__fd_rec_of); on failure, acquire the winner's chunk. */
    if (!crt__cas(&s->chunks[top], &expected, c, CRT__ACQ_REL, CRT__ACQUIRE)) {
        CRT_FREE(mem);
        return expected;
    }
    return c;
}

/* The record of fd in the caller's runtime; NULL with *err set. */
static inline crt__fd_rec *crt__fd_rec_of(crt__net_state *s, int fd, int *err) {
    if (CRT__UNLIKELY(fd < 0)) {
        *err = -EBADF;
        return NULL;
    }
    if (CRT__UNLIKELY((unsigned)fd >= CRT__FD_MAX)) {
        *err = -EMFILE;
        return NULL;
    }
    unsigned top = (unsigned)fd >> CRT__FD_CHUNK_BITS;
    /* Acquire: pairs with the CAS in crt__fd_chunk_new(). */
    crt__fd_chunk *c = crt__load(&s->chunks[top], CRT__ACQUIRE);
    if (CRT__UNLIKELY(!c) && !(c = crt__fd_chunk_new(s, top))) {
        *err = -ENOMEM;
        return NULL;
    }
    return &c->recs[(unsigned)fd & (CRT__FD_CHUNK - 1)];
}

/* The record of fd if the caller is a task (its runtime's reactor), else
 * NULL with *err == 0 (plain thread: use poll). With `cancel`, first the
 * prologue of a blocking call: *err = -ECANCELED if the task was aborted
 * (one look at the thread-local worker for both). */
static inline crt__fd_rec *crt__fd_task_rec_c(int fd, crt__net_state **sp, int *err, int cancel) {
    *err = 0;
    crt__worker *w = crt__worker_tls();
    if (!w || !w->current) return NULL;
    if (cancel && crt__task_abort_pending(w->current)) {
        *err = -ECANCELED;
        return NULL;
    }
    crt__net_state *s = crt__net_state_of(w->rt);
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    *sp = s;
    return crt__fd_rec_of(s, fd, err);
}

static inline crt__fd_rec *crt__fd_task_rec(int fd, crt__net_state **sp, int *err) {
    return crt__fd_task_rec_c(fd, sp, err, 0);
}

/* Wakes a chain of claimed waiters (linked through node->next after their
 * nodes left the queue); the nodes may vanish once their waiter is woken. */
CRT__INTERN void crt__net_wake_chain(crt__wait_node *n) {
    while (n) {
        crt__wait_node *next = n->next;
        crt__waiter_wake_to(n->waiter, 0);
        n = next;
    }
}

/* Takes every waiter of r that waits for any of `bits` off the queue and
 * claims it with result `res` (or, if res is 0, the events it got).
 * r->lock held. Returns the chain to wake after unlocking. */
CRT__INTERN crt__wait_node *crt__fd_take_waiters(crt__fd_rec *r, uint32_t bits, int res) {
    crt__wait_node *won = NULL, **tail = &won;
    crt__wait_node *n = r->waiters.head;
    while (n) {
        crt__wait_node *next = n->next;
        uint32_t got = (uint32_t)n->n & bits;
        if (got) {
            crt__waitq_remove(&r->waiters, n);
            if (crt__waiter_claim(n->waiter)) {
                n->waiter->result = res ? res : (int)got;
                n->waiter->index = n->index;
                n->next = NULL;
                *tail = n;
                tail = &n->next;
            }
        }
        n = next;
    }
    return won;
}

/* Forgets everything about r's fd: off epoll (if `del`: the fd is still
 * open), readiness unknown (ready), facts unknown, waiters get -EBADF. */
CRT__INTERN void crt__fd_reset(crt__net_state *s, crt__fd_rec *r, uint32_t flags, int del) {
    crt__lock_acquire(&r->lock);
    if (r->reg == CRT__REG_EPOLL && del) {
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        (void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, r->fd, &ev);
    }
    r->reg = CRT__REG_NONE;
    /* Relaxed: a first guess for the CAS. Acq_rel on the CAS: it is an RMW
     * like the lock-free clears it races with (crt__fd_clear), so neither
     * is lost; its new tick makes their "clear if unchanged" fail. */
    uint32_t v = crt__load(&r->rdy, CRT__RELAXED);
    while (!crt__cas(&r->rdy, &v, ((v & ~(CRT__TICK_ONE - 1)) + CRT__TICK_ONE) | CRT_READABLE | CRT_WRITABLE,
                     CRT__ACQ_REL, CRT__RELAXED)) {
    }
    /* Relaxed: a cache of facts about the fd, as good as the caller's. */
    crt__store(&r->flags, flags, CRT__RELAXED);
    crt__wait_node *won = crt__fd_take_waiters(r, CRT_READABLE | CRT_WRITABLE, -EBADF);
    crt__lock_release(&r->lock);
    crt__net_wake_chain(won);
}

/* Clears `bits` of r's readiness if no event came since the caller read
 * `seen` (before the operation that found the fd drained). */
static inline void crt__fd_clear(crt__fd_rec *r, uint32_t bits, uint32_t seen) {
    uint32_t v = seen;
    /* Acq_rel: orders the clear with the events' RMW on rdy; fails (and
     * leaves the bits) if an event ticked since `seen`. Only events tick,
     * so a failure whose tick is unchanged was a concurrent clear: retry. */
    while (!crt__cas(&r->rdy, &v, v & ~bits, CRT__ACQ_REL, CRT__RELAXED))
        if (CRT__TICK(v) != CRT__TICK(seen) || !(v & bits)) return;
}

/* >>reactor: events ------------------------------------------------------------ */

/* epoll events as CRT__RDY_* bits (CLOSED ones included). */
static inline uint32_t crt__epoll_to_rdy(uint32_t events) {
    uint32_t bits = 0;
    if (events & (EPOLLIN | EPOLLPRI)) bits |= CRT__RDY_R;
    if (events & EPOLLOUT) bits |= CRT__RDY_W;
    if (events & EPOLLRDHUP) bits |= CRT__RDY_R | CRT__RDY_RCLOSED;
    if (events & (EPOLLHUP | EPOLLERR)) bits |= CRT__RDY_R | CRT__RDY_W | CRT__RDY_RCLOSED | CRT__RDY_WCLOSED;
    return bits;
}

static inline uint32_t crt__epoll_to_ready(uint32_t events) { return crt__rdy_ready(crt__epoll_to_rdy(events)); }

/* rt->io_ready: an event of a registered fd (on the worker holding the
 * driver). Sets readiness, ticks, wakes the matching waiters. */
CRT__INTERN void crt__net_io_ready(crt_runtime *rt, void *data, uint32_t events) {
    (void)rt;
    crt__fd_rec *r = (crt__fd_rec *)data;
    uint32_t bits = crt__epoll_to_rdy(events);
    if (!bits) return;
    crt__lock_acquire(&r->lock);
    /* Relaxed load: a first guess for the CAS. Acq_rel CAS: publishes the
     * readiness to the lock-free readers of rdy (their acquire loads in
     * crt_read and co.); an RMW so that racing lock-free clears are not
     * lost. Seq_cst is not needed: waiters check rdy under this lock. */
    uint32_t v = crt__load(&r->rdy, CRT__RELAXED);
    while (!crt__cas(&r->rdy, &v, (v | bits) + CRT__TICK_ONE, CRT__ACQ_REL, CRT__RELAXED)) {
    }
    crt__wait_node *won = r->waiters.head ? crt__fd_take_waiters(r, crt__rdy_ready(bits), 0) : NULL;
    crt__lock_release(&r->lock);
    crt__net_wake_chain(won);
}

/* Puts r's fd into epoll if it is not there (or, `recheck`, re-arms it:
 * EPOLL_CTL_MOD says ENOENT if another library closed and reopened the
 * number behind crt's back). r->lock held. 0, or a negative errno. */
CRT__INTERN int crt__fd_register_locked(crt__net_state *s, crt__fd_rec *r, int recheck) {
    if (r->reg == CRT__REG_ALWAYS) return 0;
    if (r->reg == CRT__REG_EPOLL && !recheck) return 0;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = r;
    int op = r->reg == CRT__REG_EPOLL ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(s->epfd, op, r->fd, &ev) == 0) {
        r->reg = CRT__REG_EPOLL;
        return 0;
    }
    int e = errno;
    if (op == EPOLL_CTL_MOD && e == ENOENT) {
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, r->fd, &ev) == 0) return 0;
        e = errno;
    } else if (op == EPOLL_CTL_ADD && e == EEXIST) {
        if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, r->fd, &ev) == 0) {
            r->reg = CRT__REG_EPOLL;
            return 0;
        }
        e = errno;
    }
    if (e == EPERM) {
        /* A regular file or a directory: epoll refuses it; it is always ready. */
        r->reg = CRT__REG_ALWAYS;
        return 0;
    }
    r->reg = CRT__REG_NONE;
    return -e;
}

/* Parks the calling task until r's fd shows one of `mask`. `seen` is the
 * rdy word the caller read before the operation that found the fd not
 * ready (or before its poll): if an event came since, or the fd is ready,
 * it returns at once. Returns the ready events (> 0: go and try again),
 * -ETIMEDOUT, -EAGAIN (CRT_TRY), -ECANCELED, -EBADF (closed while waiting),
 * -ENOMEM, or epoll_ctl's error.
 *
 * Lost wake-ups (the Dekker race between "register, then recheck" and
 * "set readiness, then wake"): the waiter checks rdy and queues its node
 * under r->lock, and crt__net_io_ready sets rdy and takes the nodes under
 * the same lock, so one of them sees the other. The events themselves are
 * not lost either: the fd is registered (under the lock) before the check,
 * and epoll reports an edge for any readiness that arises after the
 * registration — EPOLL_CTL_ADD/MOD also report the state at that moment. */
CRT__INTERN int crt__fd_wait_rec(crt__net_state *s, crt__fd_rec *r, uint32_t mask, uint32_t seen, int recheck,
                                 crt_time deadline) {
    if (deadline == CRT_TRY) return -EAGAIN;
    crt__waiter w;
    crt__wait_node node;
    crt__waiter_init_one(&w, &node, NULL, mask);
    crt__lock_acquire(&r->lock);
    int res = crt__fd_register_locked(s, r, recheck);
    if (res == 0 && r->reg == CRT__REG_ALWAYS) res = (int)mask;
    if (res == 0) {
        /* Relaxed: under the lock, which every event holds to change it;
         * only lock-free clears race, and the CAS below handles them. */
        uint32_t v = crt__load(&r->rdy, CRT__RELAXED);
        for (;;) {
            if (CRT__TICK(v) != CRT__TICK(seen)) {
                /* Something happened: look again. */
                res = (int)((crt__rdy_ready(v) & mask) ? (crt__rdy_ready(v) & mask) : mask);
                break;
            }
            if (!(v & (mask | (mask << 2)))) {
                crt__waitq_push(&r->waiters, &node);
                break;
            }
            /* Nothing happened since the caller found it not ready: what
             * rdy remembers is stale, the sticky CLOSED bits too (a stale
             * event of an fd closed under this number, an ICMP error on a
             * UDP socket). Acq_rel: as in crt__fd_clear. */
            if (crt__cas(&r->rdy, &v, v & ~(mask | (mask << 2)), CRT__ACQ_REL, CRT__RELAXED))
                v &= ~(mask | (mask << 2));
        }
    }
    crt__lock_release(&r->lock);
    if (res != 0) {
        int won = crt__waiter_withdraw(&w);
        (void)won; /* nothing was linked: nobody else can have claimed it */
        return res;
    }
    res = crt__waiter_wait(&w, deadline);
    if (node.linked) {
        crt__lock_acquire(&r->lock);
        crt__waitq_remove(&r->waiters, &node);
        crt__lock_release(&r->lock);
    }
    return res;
}

/* What a task does when a call on fd said EAGAIN with `seen` loaded
 * before it: under CRT_TRY it forgets the readiness (the next call waits
 * for an edge) and answers -EAGAIN; otherwise it waits for the next edge.
 * 0: try the call again; or a negative errno. */
CRT__INTERN int crt__fd_await_edge(crt__net_state *s, crt__fd_rec *rec, uint32_t mask, uint32_t seen,
                                   crt_time deadline) {
    if (deadline == CRT_TRY) {
        crt__fd_clear(rec, mask, seen);
        return -EAGAIN;
    }
    int r = crt__fd_wait_rec(s, rec, mask, seen, 0, deadline);
    return r < 0 ? r : 0;
}

/* Learns what a foreign fd is, once per record: makes it non-blocking and
 * notes whether it is a socket. 0 or a negative errno. */
CRT__NOINLINE static int crt__fd_learn(crt__fd_rec *r, int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    uint32_t flags = CRT__FD_KNOWN;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) flags |= CRT__FD_SOCKET;
    /* Relaxed: idempotent facts; racing learners store the same value. */
    crt__store(&r->flags, flags, CRT__RELAXED);
    return 0;
}

static inline int crt__fd_facts(crt__fd_rec *r, int fd, uint32_t *flags) {
    /* Relaxed: see crt__fd_learn. */
    uint32_t f = crt__load(&r->flags, CRT__RELAXED);
    if (CRT__UNLIKELY(!(f & CRT__FD_KNOWN))) {
        int e = crt__fd_learn(r, fd);
        if (e < 0) return e;
        f = crt__load(&r->flags, CRT__RELAXED); /* Relaxed: our own store, or an equal one */
    }
    *flags = f;
    return 0;
}

/* A fd made by crt: record it fresh in the caller's runtime (the number
 * may have been used before, by an fd closed behind crt's back). */
CRT__INTERN void crt__fd_adopt(int fd, uint32_t flags) {
    crt__net_state *s;
    int err;
    crt__fd_rec *r = crt__fd_task_rec(fd, &s, &err);
    if (r) crt__fd_reset(s, r, flags | CRT__FD_KNOWN, 0);
}

/* >>plain threads: poll --------------------------------------------------------- */

/* poll(2) timeout for an absolute CLOCK_MONOTONIC deadline. */
static inline int crt__poll_timeout(crt_time deadline) {
    if (deadline == CRT_FOREVER) return -1;
    if (deadline == CRT_TRY) return 0;
    crt_time d = deadline - crt__mono_now();
    if (d <= 0) return 0;
    if (d > (crt_time)INT_MAX * 1000000) return INT_MAX;
    return (int)((d + 999999) / 1000000); /* round up: never wake early */
}

/* Blocks the thread until fd shows one of `events` (POLL*). Returns the
 * revents (> 0), -ETIMEDOUT, -EAGAIN (CRT_TRY), -EBADF (POLLNVAL). */
CRT__INTERN int crt__poll_fd(int fd, short events, crt_time deadline) {
    for (;;) {
        struct pollfd p;
        p.fd = fd;
        p.events = events;
        p.revents = 0;
        int timeout = crt__poll_timeout(deadline);
        int n = poll(&p, 1, timeout);
        if (n > 0) return (p.revents & POLLNVAL) ? -EBADF : (int)p.revents;
        if (n < 0 && errno != EINTR) return -errno;
        if (n == 0 && timeout == 0) return deadline == CRT_TRY ? -EAGAIN : -ETIMEDOUT;
    }
}

static inline int crt__poll_to_ready(int revents, int want) {
    int got = 0;
    if (revents & (POLLIN | POLLPRI | POLLRDHUP | POLLHUP | POLLERR)) got |= CRT_READABLE;
    if (revents & (POLLOUT | POLLHUP | POLLERR)) got |= CRT_WRITABLE;
    return got & want;
}

static inline short crt__ready_to_poll(int events) {
    short p = 0;
    if (events & CRT_READABLE) p |= POLLIN | POLLRDHUP;
    if (events & CRT_WRITABLE) p |= POLLOUT;
    return p;
}

/* A non-blocking look at fd: the ready events (may be 0), or -EBADF. */
static inline int crt__fd_peek(int fd, int events) {
    int r = crt__poll_fd(fd, crt__ready_to_poll(events), CRT_TRY);
    if (r == -EAGAIN) return 0;
    return r < 0 ? r : crt__poll_to_ready(r, events);
}

/* write(2) that cannot raise SIGPIPE: for fds that are not sockets (a
 * pipe whose reader left). The signal is blocked in this thread for the
 * call and a SIGPIPE it caused is discarded; one that was already pending
 * is left alone. */
CRT__NOINLINE static ssize_t crt__write_nosigpipe(int fd, const void *buf, size_t len) {
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE) == 1;
    if (!was_pending) pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t n = write(fd, buf, len);
    int e = errno;
    if (!was_pending) {
        if (n < 0 && e == EPIPE) {
            struct timespec zero;
            zero.tv_sec = 0;
            zero.tv_nsec = 0;
            while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    errno = e;
    return n;
}

/* One attempt to write: send(MSG_NOSIGNAL) on sockets, else the guarded
 * write. *flags may learn that fd is not a socket. */
static inline ssize_t crt__write_once(int fd, const void *buf, size_t len, uint32_t *flags, int dontwait) {
    if ((*flags & CRT__FD_SOCKET) || !(*flags & CRT__FD_KNOWN)) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | (dontwait ? MSG_DONTWAIT : 0));
        if (n >= 0 || errno != ENOTSOCK) return n;
        *flags = (*flags & ~(uint32_t)CRT__FD_SOCKET) | CRT__FD_KNOWN;
        /* A plain thread first waits for room (see crt__plain_write). */
        if (dontwait) return -1; /* errno is ENOTSOCK */
    }
    return crt__write_nosigpipe(fd, buf, len);
}

/* >>fd wait ------------------------------------------------------------------------ */

CRT__INTERN int crt__fd_wait(int fd, int events, crt_time deadline) {
    int r = crt__check_cancel();
    if (r < 0) return r;
    if (events == 0 || (events & ~(CRT_READABLE | CRT_WRITABLE))) return -EINVAL;
    if (fd < 0) return -EBADF;
    crt__net_state *s = NULL;
    crt__fd_rec *rec = crt__fd_task_rec(fd, &s, &r);
    if (!rec) {
        if (r < 0) return r;
        r = crt__poll_fd(fd, crt__ready_to_poll(events), deadline);
        return r < 0 ? r : (crt__poll_to_ready(r, events) ? crt__poll_to_ready(r, events) : events);
    }
    for (;;) {
        /* Acquire: the tick is read before the poll below looks at the fd,
         * so an edge after that look ticks past this value. */
        uint32_t seen = crt__load(&rec->rdy, CRT__ACQUIRE);
        r = crt__fd_peek(fd, events);
        if (r != 0) return r;
        r = crt__fd_wait_rec(s, rec, (uint32_t)events, seen, 1, deadline);
        if (r < 0) return r;
        /* An event: report it if it is still true (it may be stale). */
        if ((r = crt__check_cancel()) < 0) return r;
    }
}

/* The call above, leaving errno as it found it (crt/base.h: results are
 * never left in errno). */
CRT_API int crt_fd_wait(int fd, int events, crt_time deadline) {
    int saved = crt__errno_save();
    int r = crt__fd_wait(fd, events, deadline);
    crt__errno_restore(saved);
    return r;
}

CRT_API int crt_fd_forget(int fd) {
    if (fd < 0) return -EBADF;
    crt_runtime *rt = crt__current_rt();
    if (!rt) return 0;
    /* Acquire: pairs with the CAS that published the state. */
    crt__net_state *s = (crt__net_state *)crt__load(&rt->io_state, CRT__ACQUIRE);
    if (!s || (unsigned)fd >= CRT__FD_MAX) return 0;
    /* Acquire: pairs with the CAS in crt__fd_chunk_new(). */
    crt__fd_chunk *c = crt__load(&s->chunks[(unsigned)fd >> CRT__FD_CHUNK_BITS], CRT__ACQUIRE);
    if (c) crt__fd_reset(s, &c->recs[(unsigned)fd & (CRT__FD_CHUNK - 1)], 0, 1);
    return 0;
}

CRT_API int crt_close(int fd) {
    if (fd < 0) return -EBADF;
    crt_fd_forget(fd);
    if (close(fd) == 0) return 0;
    return errno == EINTR ? 0 : -errno; /* Linux releases the fd even then */
}

/* >>read, write ----------------------------------------------------------------- */

CRT__INTERN ssize_t crt__plain_read(int fd, void *buf, size_t len, crt_time deadline) {
    for (;;) {
        ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n >= 0) return n;
        int e = errno;
        if (e == ENOTSOCK) break;
        if (e == EINTR) continue;
        if (e != EAGAIN && e != EWOULDBLOCK) return -e;
        int r = crt__poll_fd(fd, POLLIN | POLLRDHUP, deadline);
        if (r < 0) return r;
    }
    /* Not a socket (a pipe, a tty): wait first, so a blocking fd honours
     * the deadline too. */
    for (;;) {
        int r = crt__poll_fd(fd, POLLIN, deadline);
        if (r < 0) return r;
        ssize_t n = read(fd, buf, len);
        if (n >= 0) return n;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    }
}

CRT__INTERN ssize_t crt__read(int fd, void *buf, size_t len, crt_time deadline) {
    int r;
    crt__net_state *s = NULL;
    crt__fd_rec *rec = crt__fd_task_rec_c(fd, &s, &r, 1); /* checks for an abort first */
    if (r == -ECANCELED) return r;
    if (!buf && len) return -EINVAL;
    if (len == 0) return 0;
    if (len > (size_t)SSIZE_MAX) len = (size_t)SSIZE_MAX;
    if (!rec) return r < 0 ? r : crt__plain_read(fd, buf, len, deadline);
    uint32_t flags;
    if ((r = crt__fd_facts(rec, fd, &flags)) < 0) return r;
    for (;;) {
        /* Acquire: read before the read(2) below, so an edge that comes
         * after it has ticked past this value (see crt__fd_wait_rec). */
        uint32_t seen = crt__load(&rec->rdy, CRT__ACQUIRE);
        if (!(crt__rdy_ready(seen) & CRT_READABLE) && deadline != CRT_TRY) {
            /* Known drained: wait for an edge without trying. */
            r = crt__fd_wait_rec(s, rec, CRT_READABLE, seen, 0, deadline);
            if (r < 0) return r;
            continue;
        }
        ssize_t n = read(fd, buf, len);
        if (n >= 0) {
            if ((flags & CRT__FD_STREAM) && n > 0 && (size_t)n < len) crt__fd_clear(rec, CRT_READABLE, seen);
            return n;
        }
        int e = errno;
        if (e == EINTR) continue;
        if (e != EAGAIN && e != EWOULDBLOCK) return -e;
        if ((r = crt__fd_await_edge(s, rec, CRT_READABLE, seen, deadline)) < 0) return r;
    }
}

CRT_API ssize_t crt_read(int fd, void *buf, size_t len, crt_time deadline) {
    int saved = crt__errno_save();
    ssize_t r = crt__read(fd, buf, len, deadline);
    crt__errno_restore(saved);
    return r;
}

CRT__INTERN ssize_t crt__plain_write(int fd, const char *p, size_t len, crt_time deadline) {
    size_t done = 0;
    uint32_t flags = 0;
    while (done < len) {
        size_t chunk = len - done;
        if ((flags & CRT__FD_KNOWN) && !(flags & CRT__FD_SOCKET)) {
            /* Not a socket, perhaps blocking (a pipe): wait for room, then
             * write at most PIPE_BUF, which cannot block once poll said
             * POLLOUT — so the deadline holds. */
            if (chunk > PIPE_BUF) chunk = PIPE_BUF;
            int r = crt__poll_fd(fd, POLLOUT, deadline);
            if (r == -EAGAIN && done > 0) break; /* CRT_TRY: what fitted */
            if (r < 0) return r;
        }
        ssize_t n = crt__write_once(fd, p + done, chunk, &flags, 1);
        if (n >= 0) {
            done += (size_t)n;
            continue;
        }
        int e = errno;
        if (e == EINTR) continue;
        if (e == ECONNRESET) e = EPIPE;
        if (e == ENOTSOCK) continue; /* learnt: flags say so now */
        if (e != EAGAIN && e != EWOULDBLOCK) return -e;
        if (deadline == CRT_TRY && done > 0) break;
        int r = crt__poll_fd(fd, POLLOUT, deadline);
        if (r < 0) return r;
    }
    return (ssize_t)done;
}

CRT__INTERN ssize_t crt__write(int fd, const void *buf, size_t len, crt_time deadline) {
    int r;
    crt__net_state *s = NULL;
    crt__fd_rec *rec = crt__fd_task_rec_c(fd, &s, &r, 1); /* checks for an abort first */
    if (r == -ECANCELED) return r;
    if (!buf && len) return -EINVAL;
    if (len > (size_t)SSIZE_MAX) return -EINVAL;
    if (len == 0) return 0;
    const char *p = (const char *)buf;
    if (!rec) return r < 0 ? r : crt__plain_write(fd, p, len, deadline);
    uint32_t flags;
    if ((r = crt__fd_facts(rec, fd, &flags)) < 0) return r;
    size_t done = 0;
    while (done < len) {
        /* Acquire: as in crt_read. */
        uint32_t seen = crt__load(&rec->rdy, CRT__ACQUIRE);
        if (!(crt__rdy_ready(seen) & CRT_WRITABLE) && deadline != CRT_TRY) {
            r = crt__fd_wait_rec(s, rec, CRT_WRITABLE, seen, 0, deadline);
            if (r < 0) return r;
            continue;
        }
        ssize_t n = crt__write_once(fd, p + done, len - done, &flags, 0);
        if (n >= 0) {
            done += (size_t)n;
            if ((flags & CRT__FD_STREAM) && done < len) crt__fd_clear(rec, CRT_WRITABLE, seen);
            continue;
        }
        int e = errno;
        if (e == EINTR) continue;
        if (e == ECONNRESET) e = EPIPE;
        if (e != EAGAIN && e != EWOULDBLOCK) return -e;
        r = crt__fd_await_edge(s, rec, CRT_WRITABLE, seen, deadline);
        if (r == -EAGAIN && done > 0) break; /* CRT_TRY: what fitted */
        if (r < 0 || (r = crt__check_cancel()) < 0) return r;
    }
    return (ssize_t)done;
}

CRT_API ssize_t crt_write(int fd, const void *buf, size_t len, crt_time deadline) {
    int saved = crt__errno_save();
    ssize_t r = crt__write(fd, buf, len, deadline);
    crt__errno_restore(saved);
    return r;
}

/* >>addresses ------------------------------------------------------------------------ */

/* One resolved address list: numeric (one entry, no allocation) or
 * getaddrinfo's. */
typedef struct crt__addrs {
    struct sockaddr_storage one;
    socklen_t one_len;
    struct addrinfo *ai;          /* getaddrinfo's list, or NULL */
} crt__addrs;

/* getaddrinfo on the blocking pool. The job and the caller each hold a
 * reference: a caller that gives up (timeout, cancel) detaches the job,
 * which then frees everything itself. */
typedef struct crt__gai_job {
    uint32_t refs;                /* atomic */
    int rc;                       /* getaddrinfo's result, as crt__gai_error maps it */
    int passive;
    struct addrinfo *res;
    char port[8];
    char host[256];
} crt__gai_job;

static void crt__gai_job_put(crt__gai_job *j) {
    /* Acq_rel: the last owner sees the other's writes before freeing. */
    if (crt__fetch_sub(&j->refs, 1u, CRT__ACQ_REL) != 1) return;
    if (j->res) freeaddrinfo(j->res);
    CRT_FREE(j);
}

/* getaddrinfo's EAI_* code as a negative errno (errno for EAI_SYSTEM). */
static int crt__gai_error(int rc, int sys_errno) {
    switch (rc) {
    case 0: return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;
    case EAI_AGAIN: return -EHOSTUNREACH;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_SYSTEM: return sys_errno > 0 ? -sys_errno : -EIO;
    default: return -EINVAL;
    }
}

/* getaddrinfo for host:port; 0 or a negative errno. */
static int crt__gai(const char *host, const char *port, int passive, struct addrinfo **res) {
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = 0;
    hints.ai_protocol = 0;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) | AI_ADDRCONFIG;
    int rc = getaddrinfo(host, port, &hints, res);
    return crt__gai_error(rc, rc == EAI_SYSTEM ? errno : 0);
}

static void *crt__gai_job_run(void *arg) {
    crt__gai_job *j = (crt__gai_job *)arg;
    j->rc = crt__gai(j->host, j->port, j->passive, &j->res);
    crt__gai_job_put(j);
    return NULL;
}

/* Splits "host:port" / "[v6]:port" / ":port" into host (possibly empty)
 * and a numeric port. 0 or -EINVAL. */
static int crt__split_addr(const char *addr, char *host, size_t hostcap, char *port, size_t portcap, int *v6) {
    if (!addr) return -EINVAL;
    const char *colon, *h = addr;
    size_t hl;
    *v6 = 0;
    if (addr[0] == '[') {
        const char *close_ = strchr(addr, ']');
        if (!close_ || close_[1] != ':') return -EINVAL;
        h = addr + 1;
        hl = (size_t)(close_ - h);
        colon = close_ + 1;
        *v6 = 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon) return -EINVAL;
        hl = (size_t)(colon - addr);
        if (memchr(addr, ':', hl)) return -EINVAL; /* a bare IPv6 address needs brackets */
    }
    const char *pp = colon + 1;
    size_t pl = strlen(pp);
    if (pl == 0 || pl >= portcap || hl >= hostcap) return -EINVAL;
    unsigned long pv = 0;
    for (size_t i = 0; i < pl; i++) {
        if (pp[i] < '0' || pp[i] > '9') return -EINVAL;
        pv = pv * 10 + (unsigned long)(pp[i] - '0');
        if (pv > 65535) return -EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, pp, pl + 1);
    return 0;
}

/* Resolves addr. passive: for bind (empty host: any address); else for
 * connect (empty host: loopback). Names go to the blocking pool inside a
 * task. 0 or a negative errno; free with crt__addrs_free. */
CRT__INTERN int crt__resolve(const char *addr, int passive, crt__addrs *out, crt_time deadline) {
    char host[256], port[8];
    int v6;
    memset(out, 0, sizeof *out);
    int r = crt__split_addr(addr, host, sizeof host, port, sizeof port, &v6);
    if (r < 0) return r;
    unsigned short pnum = (unsigned short)atoi(port);
    if (host[0] == '\0') {
        if (passive) {
            struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->one;
            a6->sin6_family = AF_INET6;
            a6->sin6_addr = in6addr_any;
            a6->sin6_port = htons(pnum);
            out->one_len = sizeof *a6;
        } else {
            struct sockaddr_in *a4 = (struct sockaddr_in *)&out->one;
            a4->sin_family = AF_INET;
            a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a4->sin_port = htons(pnum);
            out->one_len = sizeof *a4;
        }
        return 0;
    }
    struct in_addr a4;
    struct in6_addr a6;
    if (!v6 && inet_pton(AF_INET, host, &a4) == 1) {
        struct sockaddr_in *sa = (struct sockaddr_in *)&out->one;
        sa->sin_family = AF_INET;
        sa->sin_addr = a4;
        sa->sin_port = htons(pnum);
        out->one_len = sizeof *sa;
        return 0;
    }
    if (v6) {
        if (inet_pton(AF_INET6, host, &a6) != 1) return -EINVAL;
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&out->one;
        sa->sin6_family = AF_INET6;
        sa->sin6_addr = a6;
        sa->sin6_port = htons(pnum);
        out->one_len = sizeof *sa;
        return 0;
    }
    /* A name. */
    if (!crt_current()) return crt__gai(host, port, passive, &out->ai);
    crt__gai_job *j = (crt__gai_job *)CRT_MALLOC(sizeof *j);
    if (!j) return -ENOMEM;
    memset(j, 0, sizeof *j);
    j->refs = 2;
    j->passive = passive;
    memcpy(j->host, host, strlen(host) + 1);
    memcpy(j->port, port, strlen(port) + 1);
    crt_task *t = crt_spawn_blocking(crt__gai_job_run, j);
    if (!t) {
        CRT_FREE(j);
        return -ENOMEM;
    }
    r = crt_join(t, NULL, deadline);
    if (r < 0) {
        crt_detach(t);
        crt__gai_job_put(j);
        return r;
    }
    r = j->rc;
    if (r == 0) {
        out->ai = j->res;
        j->res = NULL;
    }
    crt__gai_job_put(j);
    return r;
}

static void crt__addrs_free(crt__addrs *a) {
    if (a->ai) freeaddrinfo(a->ai);
    a->ai = NULL;
}

/* Iterates: the k-th address (k from 0), or NULL after the last. */
static const struct sockaddr *crt__addrs_at(const crt__addrs *a, int k, socklen_t *len) {
    if (!a->ai) {
        if (k > 0) return NULL;
        *len = a->one_len;
        return (const struct sockaddr *)&a->one;
    }
    const struct addrinfo *ai = a->ai;
    int i = 0;
    for (; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        /* getaddrinfo with socktype 0 lists each address once per socket
         * type: keep the stream (or first) entry of each. */
        if (ai->ai_socktype != 0 && ai->ai_socktype != SOCK_STREAM) continue;
        if (i++ == k) {
            *len = ai->ai_addrlen;
            return ai->ai_addr;
        }
    }
    return NULL;
}

static void crt__set_nodelay(int fd) {
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* socket + SO_REUSEADDR (stream) + dual stack for "::" + bind. fd or -errno. */
static int crt__bound_socket(const struct sockaddr *sa, socklen_t len, int type) {
    int fd = socket(sa->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1, zero = 0;
    if (type == SOCK_STREAM) (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (sa->sa_family == AF_INET6 &&
        IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr))
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, sa, len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Binds (and for TCP listens on) the first address of addr that works. */
CRT__INTERN int crt__open_bound(const char *addr, int type, int backlog) {
    crt__addrs as;
    int r = crt__resolve(addr, 1, &as, CRT_FOREVER);
    if (r < 0) return r;
    int fd = -EADDRNOTAVAIL;
    socklen_t len;
    const struct sockaddr *sa;
    for (int k = 0; (sa = crt__addrs_at(&as, k, &len)) != NULL; k++) {
        fd = crt__bound_socket(sa, len, type);
        if (fd == -EAFNOSUPPORT && sa->sa_family == AF_INET6 && !as.ai) {
            /* ":port" on a host without IPv6: every IPv4 address instead. */
            struct sockaddr_in a4;
            memset(&a4, 0, sizeof a4);
            a4.sin_family = AF_INET;
            a4.sin_addr.s_addr = htonl(INADDR_ANY);
            a4.sin_port = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_port;
            fd = crt__bound_socket((const struct sockaddr *)&a4, sizeof a4, type);
        }
        if (fd < 0) continue;
        if (type == SOCK_STREAM && listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
            int e = errno;
            close(fd);
            fd = -e;
            continue;
        }
        break;
    }
    crt__addrs_free(&as);
    if (fd >= 0) crt__fd_adopt(fd, CRT__FD_SOCKET);
    return fd;
}

/* >>tcp ------------------------------------------------------------------------------- */

CRT_API int crt_tcp_listen(const char *addr, int backlog) {
    int r = crt__check_cancel();
    if (r < 0) return r;
    return crt__open_bound(addr, SOCK_STREAM, backlog);
}

CRT__INTERN int crt__tcp_accept(int listener, crt_time deadline) {
    int r = crt__check_cancel();
    if (r < 0) return r;
    if (listener < 0) return -EBADF;
    crt__net_state *s = NULL;
    crt__fd_rec *rec = crt__fd_task_rec(listener, &s, &r);
    if (!rec && r < 0) return r;
    uint32_t flags;
    if (rec && (r = crt__fd_facts(rec, listener, &flags)) < 0) return r;
    for (;;) {
        /* Acquire: as in crt_read. */
        uint32_t seen = rec ? crt__load(&rec->rdy, CRT__ACQUIRE) : 0;
        if (rec && !(crt__rdy_ready(seen) & CRT_READABLE) && deadline != CRT_TRY) {
            r = crt__fd_wait_rec(s, rec, CRT_READABLE, seen, 0, deadline);
            if (r < 0) return r;
            continue;
        }
        if (!rec && deadline != CRT_FOREVER) {
            /* A plain thread: a listener of another library may be
             * blocking, so wait first to honour the deadline. */
            r = crt__poll_fd(listener, POLLIN, deadline);
            if (r < 0) return r;
        }
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            crt__set_nodelay(fd);
            crt__fd_adopt(fd, CRT__FD_SOCKET | CRT__FD_STREAM);
            return fd;
        }
        int e = errno;
        /* The connection died in the queue: take the next one (as Go does). */
        if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
        if (e != EAGAIN && e != EWOULDBLOCK) return -e;
        if (!rec) {
            if (deadline == CRT_TRY) return -EAGAIN;
            if (deadline == CRT_FOREVER && (r = crt__poll_fd(listener, POLLIN, deadline)) < 0) return r;
            continue;
        }
        r = crt__fd_await_edge(s, rec, CRT_READABLE, seen, deadline);
        if (r < 0 || (r = crt__check_cancel()) < 0) return r;
    }
}

CRT_API int crt_tcp_accept(int listener, crt_time deadline) {
    int saved = crt__errno_save();
    int r = crt__tcp_accept(listener, deadline);
    crt__errno_restore(saved);
    return r;
}

/* Connects one socket to sa, waiting until deadline. fd or -errno. */
CRT__INTERN int crt__connect_one(const struct sockaddr *sa, socklen_t len, crt_time deadline) {
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    crt__set_nodelay(fd);
    crt__fd_adopt(fd, CRT__FD_SOCKET | CRT__FD_STREAM);
    int r;
    while ((r = connect(fd, sa, len)) < 0 && errno == EINTR) {
    }
    if (r < 0) {
        r = -errno;
        if (r == -EINPROGRESS) {
            crt__net_state *s = NULL;
            int err;
            crt__fd_rec *rec = crt__fd_task_rec(fd, &s, &err);
            if (rec) {
                /* Not writable until connected: wait with a stale view.
                 * Acquire (both): as in crt_read — read before the look at
                 * the socket (the peek below) that may find it not ready. */
                uint32_t seen = crt__load(&rec->rdy, CRT__ACQUIRE);
                do {
                    r = crt__fd_wait_rec(s, rec, CRT_WRITABLE, seen, 0, deadline);
                    seen = crt__load(&rec->rdy, CRT__ACQUIRE);
                    if (r > 0) {
                        /* Connected, refused, or a stale edge: ask the socket. */
                        int pr = crt__fd_peek(fd, CRT_WRITABLE);
                        r = pr > 0 ? 0 : (pr < 0 ? pr : 1);
                    }
                } while (r > 0);
            } else if (err < 0) {
                r = err;
            } else {
                r = crt__poll_fd(fd, POLLOUT, deadline);
                r = r < 0 ? r : 0;
            }
            if (r == 0) {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
                r = -soerr;
            }
        }
    }
    if (r < 0) {
        crt_fd_forget(fd);
        close(fd);
        return r;
    }
    return fd;
}

CRT__INTERN int crt__tcp_connect(const char *addr, crt_time deadline) {
    int r = crt__check_cancel();
    if (r < 0) return r;
    crt__addrs as;
    r = crt__resolve(addr, 0, &as, deadline);
    if (r < 0) return r;
    socklen_t len;
    const struct sockaddr *sa;
    r = -EADDRNOTAVAIL;
    for (int k = 0; (sa = crt__addrs_at(&as, k, &len)) != NULL; k++) {
        r = crt__connect_one(sa, len, deadline);
        if (r >= 0 || r == -ETIMEDOUT || r == -ECANCELED || r == -EAGAIN) break;
    }
    crt__addrs_free(&as);
    return r;
}

CRT_API int crt_tcp_connect(const char *addr, crt_time deadline) {
    int saved = crt__errno_save();
    int r = crt__tcp_connect(addr, deadline);
    crt__errno_restore(saved);
    return r;
}

CRT_API int crt_local_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return -errno;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EINVAL;
}

/* >>udp ------------------------------------------------------------------------------- */

CRT_API int crt_udp_bind(const char *addr) {
    int r = crt__check_cancel();
    if (r < 0) return r;
    return crt__open_bound(addr, SOCK_DGRAM, 0);
}

CRT__INTERN ssize_t crt__udp_recv(int fd, void *buf, size_t len, struct sockaddr_storage *from, crt_time deadline) {
    int r = crt__check_cancel();
    if (r < 0) return r;
    if (!buf && len) return -EINVAL;
    crt__net_state *s = NULL;
    crt__fd_rec *rec = crt__fd_task_rec(fd, &s, &r);
    if (!rec && r < 0) return r;
    uint32_t flags;
    if (rec && (r = crt__fd_facts(rec, fd, &flags)) < 0) return r;
    for (;;) {
        /* Acquire: as in crt_read. */
        uint32_t seen = rec ? crt__load(&rec->rdy, CRT__ACQUIRE) : 0;
        if (rec && !(crt__rdy_ready(seen) & CRT_READABLE) && deadline != CRT_TRY) {
            r = crt__fd_wait_rec(s, rec, CRT_READABLE, seen, 0, deadline);
            if (r < 0) return r;
            continue;
        }
        socklen_t fl = sizeof *from;
        ssize_t n = recvfrom(fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)from, from ? &fl : NULL);
        if (n >= 0) return n;
        int e = errno;
        if (e == EINTR) continue;
        if (e != EAGAIN && e != EWOULDBLOCK) return -e;
        if (!rec) {
            r = crt__poll_fd(fd, POLLIN, deadline);
            if (r < 0) return r;
            continue;
        }
        r = crt__fd_await_edge(s, rec, CRT_READABLE, seen, deadline);
        if (r < 0 || (r = crt__check_cancel()) < 0) return r;
    }
}

CRT_API ssize_t crt_udp_recv(int fd, void *buf, size_t len, struct sockaddr_storage *from, crt_time deadline) {
    int saved = crt__errno_save();
    ssize_t r = crt__udp_recv(fd, buf, len, from, deadline);
    crt__errno_restore(saved);
    return r;
}

CRT__INTERN ssize_t crt__udp_send(int fd, const void *buf, size_t len, const struct sockaddr *to, socklen_t tolen,
                                  crt_time deadline) {
    int r = crt__check_cancel();
    if (r < 0) return r;
    if (!buf && len) return -EINVAL;
    crt__net_state *s = NULL;
    crt__fd_rec *rec = crt__fd_task_rec(fd, &s, &r);
    if (!rec && r < 0) return r;
    uint32_t flags;
    if (rec && (r = crt__fd_facts(rec, fd, &flags)) < 0) return r;
    for (;;) {
        /* Acquire: as in crt_read. */
        uint32_t seen = rec ? crt__load(&rec->rdy, CRT__ACQUIRE) : 0;
        if (rec && !(crt__rdy_ready(seen) & CRT_WRITABLE) && deadline != CRT_TRY) {
            r = crt__fd_wait_rec(s, rec, CRT_WRITABLE, seen, 0, deadline);
            if (r < 0) return r;
            continue;
        }
        ssize_t n = sendto(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, to, to ? tolen : 0);
        if (n >= 0) return n;
        int e = errno;
        if (e == EINTR) continue;
        if (e != EAGAIN && e != EWOULDBLOCK && e != ENOBUFS) return -e;
        if (!rec) {
            r = crt__poll_fd(fd, POLLOUT, deadline);
            if (r < 0) return r;
            continue;
        }
        r = crt__fd_await_edge(s, rec, CRT_WRITABLE, seen, deadline);
        if (r < 0 || (r = crt__check_cancel()) < 0) return r;
    }
}

CRT_API ssize_t crt_udp_send(int fd, const void *buf, size_t len, const struct sockaddr *to, socklen_t tolen,
                             crt_time deadline) {
    int saved = crt__errno_save();
    ssize_t r = crt__udp_send(fd, buf, len, to, tolen, deadline);
    crt__errno_restore(saved);
    return r;
}

/* >>helper thread: signals and plain-thread fd cases -----------------------------------
 * One per process, started on first need, never stopped. It waits in its
 * own epoll instance on the signal self-pipe (data 0) and on the fds of
 * CRT_CASE_FD cases armed by plain threads (data: the watch id). */

#ifdef NSIG
#define CRT__NSIG NSIG
#else
#define CRT__NSIG 65
#endif

static struct {
    uint32_t lock;                 /* guards everything here but the counts */
    int started;
    int epfd;
    int pipe_rd;
    uint64_t next_id;              /* watch ids; 0 is the signal pipe */
    crt__waitq watches;            /* armed plain-thread fd cases (node->n: the id) */
    crt__waitq sigq[CRT__NSIG];    /* signal waiters */
    uint32_t taken[CRT__NSIG];     /* deliveries up to here were seen */
    int installed[CRT__NSIG];
    struct sigaction prev[CRT__NSIG];
} crt__helper;
static uint32_t crt__sig_count[CRT__NSIG]; /* atomic: bumped by the handler */
static int crt__sig_wr = -1;               /* atomic: the pipe's write end, read by the handler */
static int crt__helper_atfork_done;

static void crt__sig_handler(int signo, siginfo_t *info, void *ctx) {
    int saved = errno;
    if (signo > 0 && signo < CRT__NSIG) {
        /* Seq_cst: the count is bumped before the byte that announces it
         * (pairs with the helper's acquire load after reading the pipe). */
        crt__fetch_add(&crt__sig_count[signo], 1u, CRT__SEQ_CST);
        /* Relaxed: set before the handler was installed (sigaction orders). */
        int fd = crt__load(&crt__sig_wr, CRT__RELAXED);
        if (fd >= 0) {
            char b = (char)signo;
            ssize_t r = write(fd, &b, 1); /* EAGAIN: a wake-up is pending anyway */
            (void)r;
        }
        const struct sigaction *p = &crt__helper.prev[signo];
        if (p->sa_flags & SA_SIGINFO) {
            if (p->sa_sigaction) p->sa_sigaction(signo, info, ctx);
        } else if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN && p->sa_handler) {
            p->sa_handler(signo);
        }
    }
    errno = saved;
}

/* Wakes the waiters of every signal with deliveries they have not seen.
 * Returns the chain to wake. helper lock held. */
CRT__INTERN crt__wait_node *crt__sig_dispatch_locked(void) {
    crt__wait_node *won = NULL, **tail = &won;
    for (int s = 1; s < CRT__NSIG; s++) {
        if (!crt__helper.installed[s] || crt__waitq_empty(&crt__helper.sigq[s])) continue;
        /* Acquire: pairs with the handler's bump. */
        uint32_t c = crt__load(&crt__sig_count[s], CRT__ACQUIRE);
        if (c == crt__helper.taken[s]) continue;
        int any = 0;
        while (crt__helper.sigq[s].head) {
            crt__wait_node *n = crt__helper.sigq[s].head;
            crt__waitq_remove(&crt__helper.sigq[s], n);
            if (crt__waiter_claim(n->waiter)) {
                n->waiter->result = 0;
                n->waiter->index = n->index;
                n->next = NULL;
                *tail = n;
                tail = &n->next;
                any = 1;
            }
        }
        if (any) crt__helper.taken[s] = c;
    }
    return won;
}

static void *crt__helper_main(void *arg) {
    int epfd = (int)(intptr_t)arg;
    struct epoll_event ev[32];
    crt__waiter *woken[32];
    for (;;) {
        int n = epoll_wait(epfd, ev, 32, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            return NULL; /* the instance is gone (a forked child reset it) */
        }
        int sig = 0;
        unsigned nw = 0;
        crt__lock_acquire(&crt__helper.lock);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == 0) {
                sig = 1;
                continue;
            }
            for (crt__wait_node *w = crt__helper.watches.head; w; w = w->next) {
                if ((uint64_t)w->n != ev[i].data.u64) continue;
                uint32_t got = crt__epoll_to_ready(ev[i].events);
                /* The node stays on the list: the select's disarm frees it. */
                if (crt__waiter_claim(w->waiter)) {
                    w->waiter->result = got ? (int)got : CRT_READABLE | CRT_WRITABLE;
                    w->waiter->index = w->index;
                    woken[nw++] = w->waiter;
                }
                break;
            }
        }
        crt__lock_release(&crt__helper.lock);
        for (unsigned i = 0; i < nw; i++) crt__waiter_wake_to(woken[i], 0);
        if (sig) {
            char buf[64];
            while (read(crt__helper.pipe_rd, buf, sizeof buf) > 0) {
            }
            crt__lock_acquire(&crt__helper.lock);
            crt__wait_node *won = crt__sig_dispatch_locked();
            crt__lock_release(&crt__helper.lock);
            crt__net_wake_chain(won);
        }
    }
}

/* In a forked child the helper thread is gone: start afresh on next use.
 * (Only the forking thread survives, so no waiter of it can be queued.) */
static void crt__helper_atfork_child(void) {
    if (!crt__helper.started) return;
    crt__store(&crt__sig_wr, -1, CRT__RELAXED); /* Relaxed: one thread is left */
    close(crt__helper.epfd);
    close(crt__helper.pipe_rd);
    crt__helper.started = 0;
    crt__helper.lock = 0;
    memset(&crt__helper.watches, 0, sizeof crt__helper.watches);
    memset(crt__helper.sigq, 0, sizeof crt__helper.sigq);
}

/* Starts the helper thread if needed. helper lock held. 0 or -errno. */
CRT__INTERN int crt__helper_start_locked(void) {
    if (crt__helper.started) return 0;
    int p[2];
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) return -errno;
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
        int e = errno;
        close(epfd);
        return -e;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, p[0], &ev) < 0) {
        int e = errno;
        close(epfd);
        close(p[0]);
        close(p[1]);
        return -e;
    }
    /* The thread blocks every signal: it must not take deliveries (or
     * their default actions) away from the program's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t th;
    int e = pthread_create(&th, &attr, crt__helper_main, (void *)(intptr_t)epfd);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        close(epfd);
        close(p[0]);
        close(p[1]);
        return e == EAGAIN ? -ENOMEM : -e; /* not CRT_TRY's -EAGAIN */
    }
    crt__helper.epfd = epfd;
    crt__helper.pipe_rd = p[0];
    if (crt__helper.next_id == 0) crt__helper.next_id = 1;
    /* Relaxed: the handler reads it; sigaction (later) is the barrier. */
    crt__store(&crt__sig_wr, p[1], CRT__RELAXED);
    crt__helper.started = 1;
    if (!crt__helper_atfork_done) {
        crt__helper_atfork_done = 1;
        pthread_atfork(NULL, NULL, crt__helper_atfork_child);
    }
    return 0;
}

/* >>signals ---------------------------------------------------------------------------- */

CRT__INTERN int crt__signal_wait(int signo, crt_time deadline) {
    int r = crt__check_cancel();
    if (r < 0) return r;
    if (signo <= 0 || signo >= CRT__NSIG || signo == SIGKILL || signo == SIGSTOP || signo == SIGSEGV ||
        signo == SIGBUS || signo == SIGFPE || signo == SIGILL)
        return -EINVAL;
    crt__waiter w;
    crt__wait_node node;
    crt__waiter_init_one(&w, &node, NULL, 0);
    crt__lock_acquire(&crt__helper.lock);
    r = crt__helper_start_locked();
    if (r == 0 && !crt__helper.installed[signo]) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = crt__sig_handler;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        /* Acquire: pairs with the handler's bump (none yet: not installed). */
        crt__helper.taken[signo] = crt__load(&crt__sig_count[signo], CRT__ACQUIRE);
        if (sigaction(signo, &sa, &crt__helper.prev[signo]) < 0) r = -errno;
        else crt__helper.installed[signo] = 1;
    }
    crt__wait_node *won = NULL;
    if (r == 0) {
        /* Acquire: pairs with the handler's bump. */
        uint32_t c = crt__load(&crt__sig_count[signo], CRT__ACQUIRE);
        if (c != crt__helper.taken[signo]) {
            /* A delivery the helper has not handed out yet, or one that
             * found no waiter: ours — and the waiters already queued must
             * see it too, so hand it out to them now. */
            won = crt__sig_dispatch_locked();
            crt__helper.taken[signo] = c;
            r = 1;
        } else if (deadline == CRT_TRY) {
            r = -EAGAIN;
        } else {
            crt__waitq_push(&crt__helper.sigq[signo], &node);
        }
    }
    crt__lock_release(&crt__helper.lock);
    crt__net_wake_chain(won);
    if (r != 0) {
        int mine = crt__waiter_withdraw(&w);
        (void)mine; /* nothing was linked */
        return r > 0 ? 0 : r;
    }
    r = crt__waiter_wait(&w, deadline);
    if (node.linked) {
        crt__lock_acquire(&crt__helper.lock);
        crt__waitq_remove(&crt__helper.sigq[signo], &node);
        crt__lock_release(&crt__helper.lock);
    }
    return r;
}

CRT_API int crt_signal_wait(int signo, crt_time deadline) {
    int saved = crt__errno_save();
    int r = crt__signal_wait(signo, deadline);
    crt__errno_restore(saved);
    return r;
}

/* Tests: how many are waiting for signo right now. */
CRT__INTERN int crt__signal_waiters(int signo) {
    int n = 0;
    crt__lock_acquire(&crt__helper.lock);
    for (crt__wait_node *w = crt__helper.sigq[signo].head; w; w = w->next) n++;
    crt__lock_release(&crt__helper.lock);
    return n;
}

/* >>fd case ------------------------------------------------------------------------------
 * In a task the case waits in the runtime's reactor like crt_fd_wait (the
 * rdy word seen before the poll rides in c->ptr between try and arm). On a
 * plain thread it arms a one-shot watch of a dup of the fd in the helper
 * thread's epoll; the node itself is the watch (its next/prev link it into
 * the helper's list, n is its id, ptr the dup), so arming allocates
 * nothing. c->reserved carries an arming error to the next try. */

static inline int crt__fdcase_fd(const crt_case *c) { return (int)(uint32_t)(c->arg & 0xffffffffu); }
static inline int crt__fdcase_events(const crt_case *c) { return (int)(uint32_t)(c->arg >> 32); }

static int crt__fdcase_try(crt_case *c) {
    int fd = crt__fdcase_fd(c), ev = crt__fdcase_events(c);
    int r = c->reserved;
    c->reserved = 0;
    if (r == 0 && (ev == 0 || (ev & ~(CRT_READABLE | CRT_WRITABLE)))) r = -EINVAL;
    if (r == 0 && fd < 0) r = -EBADF;
    if (r == 0 && crt_current()) {
        crt__worker *w = crt__worker_tls();
        crt__net_state *s = crt__net_state_of(w->rt);
        crt__fd_rec *rec = s ? crt__fd_rec_of(s, fd, &r) : NULL;
        if (!s) r = -ENOMEM;
        /* Acquire: as in crt_fd_wait. */
        if (rec) c->ptr = (void *)(uintptr_t)crt__load(&rec->rdy, CRT__ACQUIRE);
    }
    if (r == 0) r = crt__fd_peek(fd, ev);
    if (r == 0) return 0;
    c->result = r;
    return 1;
}

static int crt__fdcase_arm(crt_case *c, crt__wait_node *node) {
    int fd = crt__fdcase_fd(c);
    uint32_t ev = (uint32_t)crt__fdcase_events(c);
    node->n = ev;
    if (crt_current()) {
        int err = 0;
        crt__worker *w = crt__worker_tls();
        crt__net_state *s = crt__net_state_of(w->rt);
        crt__fd_rec *r = s ? crt__fd_rec_of(s, fd, &err) : NULL;
        if (!r) {
            c->reserved = s ? err : -ENOMEM;
            return 1;
        }
        uint32_t seen = (uint32_t)(uintptr_t)c->ptr;
        int res = 0;
        crt__lock_acquire(&r->lock);
        err = crt__fd_register_locked(s, r, 1);
        if (err < 0) res = err;
        else if (r->reg == CRT__REG_ALWAYS) res = 1;
        if (res == 0) {
            /* Relaxed: under the lock; see crt__fd_wait_rec. */
            uint32_t v = crt__load(&r->rdy, CRT__RELAXED);
            for (;;) {
                if (CRT__TICK(v) != CRT__TICK(seen)) {
                    res = 1;
                    break;
                }
                if (!(v & (ev | (ev << 2)))) {
                    crt__waitq_push(&r->waiters, node);
                    break;
                }
                /* Stale, as in crt__fd_wait_rec. Acq_rel: as in crt__fd_clear. */
                if (crt__cas(&r->rdy, &v, v & ~(ev | (ev << 2)), CRT__ACQ_REL, CRT__RELAXED)) v &= ~(ev | (ev << 2));
            }
        }
        crt__lock_release(&r->lock);
        if (res < 0) c->reserved = res;
        return res != 0;
    }
    /* Plain thread: a one-shot watch in the helper's epoll. */
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dupfd < 0) {
        c->reserved = -errno;
        return 1;
    }
    crt__lock_acquire(&crt__helper.lock);
    int r = crt__helper_start_locked();
    if (r == 0) {
        node->n = (size_t)crt__helper.next_id++;
        node->ptr = (void *)(intptr_t)dupfd;
        crt__waitq_push(&crt__helper.watches, node);
    }
    crt__lock_release(&crt__helper.lock);
    if (r == 0) {
        struct epoll_event e;
        memset(&e, 0, sizeof e);
        e.events = EPOLLONESHOT | ((ev & CRT_READABLE) ? (EPOLLIN | EPOLLRDHUP) : 0u) | ((ev & CRT_WRITABLE) ? EPOLLOUT : 0u);
        e.data.u64 = (uint64_t)node->n;
        if (epoll_ctl(crt__helper.epfd, EPOLL_CTL_ADD, dupfd, &e) == 0) return 0;
        r = -errno;
        crt__lock_acquire(&crt__helper.lock);
        crt__waitq_remove(&crt__helper.watches, node);
        crt__lock_release(&crt__helper.lock);
    }
    close(dupfd);
    c->reserved = r;
    return 1;
}

static void crt__fdcase_disarm(crt_case *c, crt__wait_node *node) {
    if (crt_current()) {
        crt__worker *w = crt__worker_tls();
        int err;
        /* The state and the record exist: arm made them. Acquire: pairs
         * with the CAS that published the state. */
        crt__net_state *s = (crt__net_state *)crt__load(&w->rt->io_state, CRT__ACQUIRE);
        crt__fd_rec *r = crt__fd_rec_of(s, crt__fdcase_fd(c), &err);
        crt__lock_acquire(&r->lock);
        crt__waitq_remove(&r->waiters, node);
        crt__lock_release(&r->lock);
        return;
    }
    int dupfd = (int)(intptr_t)node->ptr;
    crt__lock_acquire(&crt__helper.lock);
    crt__waitq_remove(&crt__helper.watches, node);
    crt__lock_release(&crt__helper.lock);
    struct epoll_event e;
    memset(&e, 0, sizeof e);
    (void)epoll_ctl(crt__helper.epfd, EPOLL_CTL_DEL, dupfd, &e);
    close(dupfd);
}

static int crt__fdcase_finish(crt_case *c, crt__wait_node *node, int result) {
    (void)node;
    if (result > 0) {
        /* An edge: report it only if it is still true (it may be stale). */
        int now = crt__fd_peek(crt__fdcase_fd(c), crt__fdcase_events(c));
        if (now == 0) return 0;
        result = now;
    }
    c->result = result;
    return 1;
}

const crt__case_ops crt__case_ops_fd = {crt__fdcase_try, crt__fdcase_arm, crt__fdcase_disarm, crt__fdcase_finish};

#endif /* CRT_IMPLEMENTATION */
