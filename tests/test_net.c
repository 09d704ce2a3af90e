/* tests/test_net.c — the NET component: reactor, TCP, UDP, signals,
 * CRT_CASE_FD, plain threads. */
#define CRT_IMPLEMENTATION
#include "check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct addr_str {
    char s[64];
} addr_str;
/* "127.0.0.1:port", by value (tasks on several workers call it at once). */
static addr_str loop_addr_s(int port) {
    addr_str a;
    snprintf(a.s, sizeof a.s, "127.0.0.1:%d", port);
    return a;
}
#define loop_addr(port) (loop_addr_s(port).s)

static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

/* The byte at offset i of connection k's stream. */
static unsigned char pattern(uint64_t k, size_t i) { return (unsigned char)((k * 131 + i * 7 + (i >> 9)) & 0xff); }

static int have_ipv6(void) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* ----------------------------------------------------------------- echo */

typedef struct echo_srv {
    int listener;
    int nconn;
    crt_task **handlers;
} echo_srv;

static void *echo_handler(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[8192];
    for (;;) {
        ssize_t n = crt_read(fd, buf, sizeof buf, crt_after(CRT_SEC(30)));
        if (n <= 0) {
            CHECK(n == 0);
            break;
        }
        CHECK_EQ(crt_write(fd, buf, (size_t)n, crt_after(CRT_SEC(30))), n);
    }
    CHECK_EQ(crt_close(fd), 0);
    return NULL;
}

static void *echo_acceptor(void *arg) {
    echo_srv *s = (echo_srv *)arg;
    for (int i = 0; i < s->nconn; i++) {
        int fd = crt_tcp_accept(s->listener, crt_after(CRT_SEC(30)));
        CHECK(fd >= 0);
        s->handlers[i] = crt_spawn(echo_handler, (void *)(intptr_t)fd);
        CHECK(s->handlers[i] != NULL);
    }
    return NULL;
}

typedef struct echo_cli {
    int port;
    uint64_t k;
    size_t total;
} echo_cli;

static void *echo_client(void *arg) {
    echo_cli *c = (echo_cli *)arg;
    int fd = crt_tcp_connect(loop_addr(c->port), crt_after(CRT_SEC(30)));
    if (fd < 0) fprintf(stderr, "connect: %s\n", crt_strerror(fd));
    CHECK(fd >= 0);
    unsigned char out[8192], in[8192];
    uint64_t rs = c->k * 2654435761u + 1;
    size_t sent = 0;
    while (sent < c->total) {
        size_t chunk = 1 + (size_t)(rng_next(&rs) % sizeof out);
        if (chunk > c->total - sent) chunk = c->total - sent;
        for (size_t i = 0; i < chunk; i++) out[i] = pattern(c->k, sent + i);
        CHECK_EQ(crt_write(fd, out, chunk, crt_after(CRT_SEC(30))), chunk);
        size_t got = 0;
        while (got < chunk) {
            ssize_t n = crt_read(fd, in, chunk - got, crt_after(CRT_SEC(30)));
            CHECK(n > 0);
            for (ssize_t i = 0; i < n; i++) CHECK_EQ(in[i], pattern(c->k, sent + got + (size_t)i));
            got += (size_t)n;
        }
        sent += chunk;
    }
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    CHECK_EQ(crt_read(fd, in, sizeof in, crt_after(CRT_SEC(30))), 0); /* EOF after the echo */
    CHECK_EQ(crt_close(fd), 0);
    return NULL;
}

static int echo_nconn;

static void *test_echo_many(void *arg) {
    (void)arg;
    int n = echo_nconn;
    echo_srv s;
    s.listener = crt_tcp_listen("127.0.0.1:0", 4096);
    CHECK(s.listener >= 0);
    int port = crt_local_port(s.listener);
    CHECK(port > 0);
    s.nconn = n;
    s.handlers = (crt_task **)calloc((size_t)n, sizeof *s.handlers);
    echo_cli *cli = (echo_cli *)calloc((size_t)n, sizeof *cli);
    crt_task **ct = (crt_task **)calloc((size_t)n, sizeof *ct);
    crt_task *acc = crt_spawn(echo_acceptor, &s);
    CHECK(acc != NULL);
    uint64_t seed = test_seed();
    for (int i = 0; i < n; i++) {
        cli[i].port = port;
        cli[i].k = seed + (uint64_t)i;
        cli[i].total = 1 + (size_t)(rng_next(&seed) % 32768);
        ct[i] = crt_spawn(echo_client, &cli[i]);
        CHECK(ct[i] != NULL);
    }
    for (int i = 0; i < n; i++) CHECK_EQ(crt_join(ct[i], NULL, crt_after(CRT_SEC(60))), 0);
    CHECK_EQ(crt_join(acc, NULL, crt_after(CRT_SEC(10))), 0);
    for (int i = 0; i < n; i++) CHECK_EQ(crt_join(s.handlers[i], NULL, crt_after(CRT_SEC(10))), 0);
    CHECK_EQ(crt_close(s.listener), 0);
    free(s.handlers);
    free(cli);
    free(ct);
    return NULL;
}

/* One connection, a writer task and a reader task on the same fd at once
 * (read and write waiters on one record), several MiB. */
typedef struct duplex {
    int fd;
    size_t total;
} duplex;

static void *duplex_writer(void *arg) {
    duplex *d = (duplex *)arg;
    static unsigned char buf[65536];
    size_t sent = 0;
    while (sent < d->total) {
        size_t chunk = d->total - sent < sizeof buf ? d->total - sent : sizeof buf;
        for (size_t i = 0; i < chunk; i++) buf[i] = pattern(7, sent + i);
        CHECK_EQ(crt_write(d->fd, buf, chunk, crt_after(CRT_SEC(30))), chunk);
        sent += chunk;
    }
    CHECK_EQ(shutdown(d->fd, SHUT_WR), 0);
    return NULL;
}

static void *duplex_reader(void *arg) {
    duplex *d = (duplex *)arg;
    unsigned char buf[65536];
    size_t got = 0;
    for (;;) {
        ssize_t n = crt_read(d->fd, buf, sizeof buf, crt_after(CRT_SEC(30)));
        CHECK(n >= 0);
        if (n == 0) break;
        for (ssize_t i = 0; i < n; i++) CHECK_EQ(buf[i], pattern(7, got + (size_t)i));
        got += (size_t)n;
    }
    CHECK_EQ(got, d->total);
    return NULL;
}

static void *test_duplex(void *arg) {
    (void)arg;
    int l = crt_tcp_listen("127.0.0.1:0", 0);
    CHECK(l >= 0);
    int port = crt_local_port(l);
    int c = crt_tcp_connect(loop_addr(port), crt_after(CRT_SEC(5)));
    CHECK(c >= 0);
    int a = crt_tcp_accept(l, crt_after(CRT_SEC(5)));
    CHECK(a >= 0);
    size_t total = test_short() ? ((size_t)1 << 20) : ((size_t)8 << 20);
    crt_task *echo = crt_spawn(echo_handler, (void *)(intptr_t)a);
    duplex d;
    d.fd = c;
    d.total = total;
    crt_task *w = crt_spawn(duplex_writer, &d);
    crt_task *r = crt_spawn(duplex_reader, &d);
    CHECK_EQ(crt_join(w, NULL, crt_after(CRT_SEC(60))), 0);
    CHECK_EQ(crt_join(r, NULL, crt_after(CRT_SEC(60))), 0);
    CHECK_EQ(crt_join(echo, NULL, crt_after(CRT_SEC(10))), 0);
    CHECK_EQ(crt_close(c), 0);
    CHECK_EQ(crt_close(l), 0);
    return NULL;
}

/* ------------------------------------------------------------ deadlines */

static void *test_deadlines(void *arg) {
    (void)arg;
    int l = crt_tcp_listen("127.0.0.1:0", 0);
    CHECK(l >= 0);
    int port = crt_local_port(l);
    /* accept */
    CHECK_EQ(crt_tcp_accept(l, CRT_TRY), -EAGAIN);
    crt_time t0 = crt_now();
    CHECK_EQ(crt_tcp_accept(l, crt_after(CRT_MS(50))), -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(50));
    /* read */
    int c = crt_tcp_connect(loop_addr(port), crt_after(CRT_SEC(5)));
    CHECK(c >= 0);
    int a = crt_tcp_accept(l, crt_after(CRT_SEC(5)));
    CHECK(a >= 0);
    char b[16];
    *crt_errno_location() = 4321; /* a blocking call leaves errno as it found it (DESIGN §3) */
    CHECK_EQ(crt_read(a, b, sizeof b, CRT_TRY), -EAGAIN);
    CHECK_EQ(*crt_errno_location(), 4321);
    t0 = crt_now();
    CHECK_EQ(crt_read(a, b, sizeof b, crt_after(CRT_MS(50))), -ETIMEDOUT);
    CHECK_EQ(*crt_errno_location(), 4321);
    CHECK(crt_now() - t0 >= CRT_MS(50));
    CHECK_EQ(crt_read(a, b, sizeof b, crt_after(CRT_MS(1) - CRT_SEC(1))), -ETIMEDOUT); /* a past deadline */
    /* the connection still works after the timeouts */
    CHECK_EQ(crt_write(c, "hi", 2, crt_after(CRT_SEC(5))), 2);
    CHECK_EQ(crt_read(a, b, sizeof b, crt_after(CRT_SEC(5))), 2);
    CHECK(memcmp(b, "hi", 2) == 0);
    /* fd_wait */
    CHECK_EQ(crt_fd_wait(a, CRT_READABLE, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_fd_wait(a, CRT_READABLE, crt_after(CRT_MS(20))), -ETIMEDOUT);
    CHECK_EQ(crt_fd_wait(a, CRT_WRITABLE, CRT_TRY), CRT_WRITABLE);
    CHECK_EQ(crt_fd_wait(a, 0, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_fd_wait(a, 8, CRT_TRY), -EINVAL);
    /* write: nobody reads the other end, so the buffers fill up */
    size_t big = (size_t)64 << 20;
    char *buf = (char *)calloc(1, big);
    t0 = crt_now();
    ssize_t w = crt_write(c, buf, big, crt_after(CRT_MS(100)));
    CHECK_EQ(w, -ETIMEDOUT);
    CHECK(crt_now() - t0 >= CRT_MS(100));
    /* CRT_TRY writes what fits now (a count), until nothing fits. */
    ssize_t tw = 1;
    for (int i = 0; i < 10000 && tw > 0; i++) {
        tw = crt_write(c, buf, 1 << 16, CRT_TRY);
        CHECK(tw == -EAGAIN || (tw > 0 && tw <= (1 << 16)));
    }
    CHECK_EQ(tw, -EAGAIN);
    free(buf);
    CHECK_EQ(crt_close(a), 0);
    CHECK_EQ(crt_close(c), 0);
    CHECK_EQ(crt_close(l), 0);

    /* connect: a listener whose queue is full drops SYNs, so the connect
     * hangs until its deadline. */
    l = crt_tcp_listen("127.0.0.1:0", 1);
    CHECK(l >= 0);
    port = crt_local_port(l);
    int fds[16], nf = 0, timed_out = 0;
    for (int i = 0; i < 16 && !timed_out; i++) {
        int fd = crt_tcp_connect(loop_addr(port), crt_after(CRT_MS(150)));
        if (fd == -ETIMEDOUT) timed_out = 1;
        else {
            CHECK(fd >= 0);
            fds[nf++] = fd;
        }
    }
    CHECK(timed_out);
    CHECK_EQ(crt_tcp_connect(loop_addr(port), CRT_TRY), -EAGAIN);
    for (int i = 0; i < nf; i++) CHECK_EQ(crt_close(fds[i]), 0);
    CHECK_EQ(crt_close(l), 0);
    return NULL;
}

/* --------------------------------------------------------------- aborts */

typedef struct blocked {
    int fd;   /* for connect: the port */
    int what; /* 0 read, 1 accept, 2 write, 3 fd_wait, 4 signal, 5 connect */
    int started;
    int result;
} blocked;

static void *blocked_call(void *arg) {
    blocked *b = (blocked *)arg;
    __atomic_store_n(&b->started, 1, __ATOMIC_SEQ_CST);
    char small[16];
    switch (b->what) {
    case 0: b->result = (int)crt_read(b->fd, small, sizeof small, CRT_FOREVER); break;
    case 1: b->result = crt_tcp_accept(b->fd, CRT_FOREVER); break;
    case 2: {
        size_t big = (size_t)64 << 20;
        char *buf = (char *)calloc(1, big);
        b->result = (int)crt_write(b->fd, buf, big, CRT_FOREVER);
        free(buf);
        break;
    }
    case 3: b->result = crt_fd_wait(b->fd, CRT_READABLE, CRT_FOREVER); break;
    case 4: b->result = crt_signal_wait(SIGUSR2, CRT_FOREVER); break;
    case 5: b->result = crt_tcp_connect(loop_addr(b->fd), CRT_FOREVER); break;
    default: break;
    }
    /* From the abort on, every blocking call fails, even ready ones. */
    if (b->result == -ECANCELED && b->what != 5) {
        CHECK_EQ(crt_fd_wait(b->fd, CRT_WRITABLE, CRT_FOREVER), -ECANCELED);
        CHECK_EQ(crt_tcp_connect("127.0.0.1:1", CRT_FOREVER), -ECANCELED);
        CHECK_EQ(crt_write(b->fd, "x", 1, CRT_TRY), -ECANCELED);
    }
    return NULL;
}

static void *test_aborts(void *arg) {
    (void)arg;
    int l = crt_tcp_listen("127.0.0.1:0", 0);
    CHECK(l >= 0);
    int port = crt_local_port(l);
    int c = crt_tcp_connect(loop_addr(port), crt_after(CRT_SEC(5)));
    int a = crt_tcp_accept(l, crt_after(CRT_SEC(5)));
    CHECK(c >= 0 && a >= 0);
    static const int order[] = {0, 1, 3, 4, 2}; /* the write fills a's buffer: last */
    for (int k = 0; k < 5; k++) {
        int what = order[k];
        blocked b;
        b.fd = what == 1 ? l : (what == 2 ? c : a);
        b.what = what;
        b.started = 0;
        b.result = 1;
        crt_task *t = crt_spawn(blocked_call, &b);
        while (!__atomic_load_n(&b.started, __ATOMIC_SEQ_CST)) crt_yield();
        crt_sleep(CRT_MS(20)); /* let it park */
        crt_abort(t);
        CHECK_EQ(crt_join(t, NULL, crt_after(CRT_SEC(10))), 0);
        CHECK_EQ(b.result, -ECANCELED);
    }
    /* connect: to a listener whose queue is full, it hangs; abort it. */
    {
        int full = crt_tcp_listen("127.0.0.1:0", 1);
        CHECK(full >= 0);
        int fport = crt_local_port(full), held[16], nh = 0, hung = 0;
        for (int i = 0; i < 16 && !hung; i++) {
            int fd = crt_tcp_connect(loop_addr(fport), crt_after(CRT_MS(150)));
            if (fd == -ETIMEDOUT) hung = 1;
            else {
                CHECK(fd >= 0);
                held[nh++] = fd;
            }
        }
        CHECK(hung);
        blocked b;
        b.fd = fport;
        b.what = 5;
        b.started = 0;
        b.result = 1;
        crt_task *t = crt_spawn(blocked_call, &b);
        while (!__atomic_load_n(&b.started, __ATOMIC_SEQ_CST)) crt_yield();
        crt_sleep(CRT_MS(20));
        crt_abort(t);
        CHECK_EQ(crt_join(t, NULL, crt_after(CRT_SEC(10))), 0);
        CHECK_EQ(b.result, -ECANCELED);
        for (int i = 0; i < nh; i++) CHECK_EQ(crt_close(held[i]), 0);
        CHECK_EQ(crt_close(full), 0);
    }
    /* The connection is still usable after all that (the aborted write
     * left an unknown prefix on c, so use a fresh pair). */
    CHECK_EQ(crt_close(a), 0);
    CHECK_EQ(crt_close(c), 0);
    c = crt_tcp_connect(loop_addr(port), crt_after(CRT_SEC(5)));
    a = crt_tcp_accept(l, crt_after(CRT_SEC(5)));
    CHECK(c >= 0 && a >= 0);
    CHECK_EQ(crt_write(c, "ok", 2, crt_after(CRT_SEC(5))), 2);
    char buf[4];
    CHECK_EQ(crt_read(a, buf, sizeof buf, crt_after(CRT_SEC(5))), 2);
    CHECK_EQ(crt_close(a), 0);
    CHECK_EQ(crt_close(c), 0);
    CHECK_EQ(crt_close(l), 0);
    return NULL;
}

/* crt_close wakes the waiters of the fd with -EBADF. */
static void *test_close_wakes(void *arg) {
    (void)arg;
    int l = crt_tcp_listen("127.0.0.1:0", 0);
    CHECK(l >= 0);
    blocked b;
    b.fd = l;
    b.what = 1;
    b.started = 0;
    b.result = 1;
    crt_task *t = crt_spawn(blocked_call, &b);
    while (!__atomic_load_n(&b.started, __ATOMIC_SEQ_CST)) crt_yield();
    crt_sleep(CRT_MS(20));
    CHECK_EQ(crt_close(l), 0);
    CHECK_EQ(crt_join(t, NULL, crt_after(CRT_SEC(10))), 0);
    CHECK_EQ(b.result, -EBADF);
    return NULL;
}

/* ----------------------------------------------------- errors and edges */

static void *test_edges(void *arg) {
    (void)arg;
    /* malformed addresses */
    CHECK_EQ(crt_tcp_listen("nonsense", 0), -EINVAL);
    CHECK_EQ(crt_tcp_listen("127.0.0.1:99999", 0), -EINVAL);
    CHECK_EQ(crt_tcp_listen("127.0.0.1:", 0), -EINVAL);
    CHECK_EQ(crt_tcp_listen("::1:80", 0), -EINVAL);
    CHECK_EQ(crt_tcp_listen("[::1:80", 0), -EINVAL);
    CHECK_EQ(crt_tcp_listen(NULL, 0), -EINVAL);
    CHECK_EQ(crt_tcp_connect("1.2.3.4:x", CRT_FOREVER), -EINVAL);
    CHECK_EQ(crt_read(-1, NULL, 0, CRT_TRY), 0);
    char b[8];
    CHECK_EQ(crt_read(-1, b, sizeof b, CRT_TRY), -EBADF);
    CHECK_EQ(crt_write(-1, b, sizeof b, CRT_TRY), -EBADF);
    CHECK_EQ(crt_fd_wait(-1, CRT_READABLE, CRT_TRY), -EBADF);
    CHECK_EQ(crt_close(-1), -EBADF);
    CHECK_EQ(crt_local_port(-1), -EBADF);

    /* refused: a port that was just closed */
    int l = crt_tcp_listen("127.0.0.1:0", 0);
    int port = crt_local_port(l);
    CHECK_EQ(crt_close(l), 0);
    CHECK_EQ(crt_tcp_connect(loop_addr(port), crt_after(CRT_SEC(5))), -ECONNREFUSED);

    /* address in use (SO_REUSEADDR does not allow two listeners) */
    l = crt_tcp_listen("127.0.0.1:0", 0);
    port = crt_local_port(l);
    CHECK_EQ(crt_tcp_listen(loop_addr(port), 0), -EADDRINUSE);

    /* EOF, then a closed peer: -EPIPE and no SIGPIPE (it would kill us) */
    int c = crt_tcp_connect(loop_addr(port), crt_after(CRT_SEC(5)));
    int a = crt_tcp_accept(l, crt_after(CRT_SEC(5)));
    CHECK(c >= 0 && a >= 0);
    CHECK_EQ(crt_close(a), 0);
    CHECK_EQ(crt_read(c, b, sizeof b, crt_after(CRT_SEC(5))), 0);
    ssize_t w = 0;
    for (int i = 0; i < 100 && w >= 0; i++) {
        w = crt_write(c, "xxxx", 4, crt_after(CRT_SEC(5)));
        if (w >= 0) crt_sleep(CRT_MS(2));
    }
    CHECK_EQ(w, -EPIPE);
    CHECK_EQ(crt_close(c), 0);

    /* ":port" listens on every address: v4 and (if the host has it) v6 */
    int any = crt_tcp_listen(":0", 0);
    CHECK(any >= 0);
    int aport = crt_local_port(any);
    char addr[64];
    snprintf(addr, sizeof addr, ":%d", aport);
    c = crt_tcp_connect(addr, crt_after(CRT_SEC(5))); /* ":port" connects to the local host */
    CHECK(c >= 0);
    a = crt_tcp_accept(any, crt_after(CRT_SEC(5)));
    CHECK(a >= 0);
    CHECK_EQ(crt_close(a), 0);
    CHECK_EQ(crt_close(c), 0);
    if (have_ipv6()) {
        snprintf(addr, sizeof addr, "[::1]:%d", aport);
        c = crt_tcp_connect(addr, crt_after(CRT_SEC(5)));
        CHECK(c >= 0);
        a = crt_tcp_accept(any, crt_after(CRT_SEC(5)));
        CHECK(a >= 0);
        CHECK_EQ(crt_write(c, "v6", 2, crt_after(CRT_SEC(5))), 2);
        CHECK_EQ(crt_read(a, b, sizeof b, crt_after(CRT_SEC(5))), 2);
        CHECK_EQ(crt_close(a), 0);
        CHECK_EQ(crt_close(c), 0);
        int l6 = crt_tcp_listen("[::1]:0", 0);
        CHECK(l6 >= 0);
        snprintf(addr, sizeof addr, "[::1]:%d", crt_local_port(l6));
        c = crt_tcp_connect(addr, crt_after(CRT_SEC(5)));
        CHECK(c >= 0);
        CHECK_EQ(crt_close(c), 0);
        CHECK_EQ(crt_close(l6), 0);
    } else {
        TEST_LOG("no IPv6 loopback: skipping the [::1] checks");
    }
    /* a name: resolved on the blocking pool */
    snprintf(addr, sizeof addr, "localhost:%d", aport);
    c = crt_tcp_connect(addr, crt_after(CRT_SEC(10)));
    CHECK(c >= 0);
    a = crt_tcp_accept(any, crt_after(CRT_SEC(5)));
    CHECK(a >= 0);
    CHECK_EQ(crt_close(a), 0);
    CHECK_EQ(crt_close(c), 0);
    CHECK_EQ(crt_tcp_connect("no-such-host.invalid:80", crt_after(CRT_SEC(10))) < 0, 1);
    CHECK_EQ(crt_close(any), 0);
    CHECK_EQ(crt_close(l), 0);

    /* a pipe: a foreign fd through crt_fd_wait, crt_read and crt_write
     * (a write to a pipe without reader is -EPIPE, without SIGPIPE) */
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(crt_fd_wait(p[0], CRT_READABLE, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_write(p[1], "abc", 3, crt_after(CRT_SEC(1))), 3);
    CHECK_EQ(crt_fd_wait(p[0], CRT_READABLE | CRT_WRITABLE, CRT_FOREVER), CRT_READABLE);
    CHECK_EQ(crt_read(p[0], b, sizeof b, crt_after(CRT_SEC(1))), 3);
    CHECK_EQ(crt_read(p[0], b, sizeof b, crt_after(CRT_MS(10))), -ETIMEDOUT);
    CHECK_EQ(crt_close(p[0]), 0);
    CHECK_EQ(crt_write(p[1], "abc", 3, crt_after(CRT_SEC(1))), -EPIPE);
    CHECK_EQ(crt_close(p[1]), 0);
    /* A regular file is always ready. */
    char path[] = "/tmp/crt-test-net-XXXXXX";
    int f = mkstemp(path);
    CHECK(f >= 0);
    unlink(path);
    CHECK_EQ(crt_fd_wait(f, CRT_READABLE, CRT_FOREVER), CRT_READABLE);
    CHECK_EQ(crt_write(f, "abc", 3, CRT_FOREVER), 3);
    CHECK_EQ(crt_close(f), 0);
    return NULL;
}

/* An fd closed behind crt's back (plain close) and its number reused:
 * crt_fd_wait re-checks its registration, and crt-made fds start fresh. */
static void *test_fd_reuse(void *arg) {
    (void)arg;
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(crt_fd_wait(p[0], CRT_READABLE, crt_after(CRT_MS(10))), -ETIMEDOUT); /* registered now */
    close(p[0]);                                                                 /* behind crt's back */
    close(p[1]);
    int q[2];
    CHECK_EQ(pipe(q), 0);
    CHECK_EQ(q[0], p[0]); /* the lowest free numbers come back */
    char c = 'z';
    CHECK_EQ(write(q[1], &c, 1), 1);
    CHECK_EQ(crt_fd_wait(q[0], CRT_READABLE, crt_after(CRT_SEC(5))), CRT_READABLE);
    char r;
    CHECK_EQ(read(q[0], &r, 1), 1);
    /* and a wait that must be woken by an event on the new file */
    CHECK_EQ(crt_fd_wait(q[0], CRT_READABLE, crt_after(CRT_MS(10))), -ETIMEDOUT);
    CHECK_EQ(crt_fd_forget(q[0]), 0);
    close(q[0]);
    close(q[1]);
    return NULL;
}

/* ------------------------------------------------------------------ udp */

static void *udp_echo(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[2048];
    for (;;) {
        struct sockaddr_storage from;
        ssize_t n = crt_udp_recv(fd, buf, sizeof buf, &from, CRT_FOREVER);
        if (n == -ECANCELED) break;
        CHECK(n >= 0);
        socklen_t fl = from.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        CHECK_EQ(crt_udp_send(fd, buf, (size_t)n, (struct sockaddr *)&from, fl, crt_after(CRT_SEC(5))), n);
    }
    return NULL;
}

static void udp_round_trips(const char *bind_addr, int family) {
    int s = crt_udp_bind(bind_addr);
    CHECK(s >= 0);
    int port = crt_local_port(s);
    CHECK(port > 0);
    int c = crt_udp_bind(family == AF_INET6 ? "[::1]:0" : "127.0.0.1:0");
    CHECK(c >= 0);
    crt_task *t = crt_spawn(udp_echo, (void *)(intptr_t)s);
    struct sockaddr_storage to;
    socklen_t tolen;
    memset(&to, 0, sizeof to);
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&to;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons((unsigned short)port);
        tolen = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&to;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons((unsigned short)port);
        tolen = sizeof *a;
    }
    CHECK_EQ(crt_udp_recv(c, NULL, 0, NULL, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_udp_recv(c, NULL, 0, NULL, crt_after(CRT_MS(10))), -ETIMEDOUT);
    for (int i = 0; i < 200; i++) {
        char msg[1500], in[1500];
        size_t len = 1 + (size_t)(i * 37) % sizeof msg;
        for (size_t j = 0; j < len; j++) msg[j] = (char)pattern((uint64_t)i, j);
        CHECK_EQ(crt_udp_send(c, msg, len, (struct sockaddr *)&to, tolen, crt_after(CRT_SEC(5))), len);
        struct sockaddr_storage from;
        ssize_t n;
        /* loopback UDP does not drop at this rate, but be fair to it */
        n = crt_udp_recv(c, in, sizeof in, &from, crt_after(CRT_SEC(5)));
        CHECK_EQ(n, len);
        CHECK(memcmp(in, msg, len) == 0);
        CHECK_EQ(from.ss_family, family);
    }
    crt_abort(t);
    CHECK_EQ(crt_join(t, NULL, crt_after(CRT_SEC(5))), 0);
    CHECK_EQ(crt_close(c), 0);
    CHECK_EQ(crt_close(s), 0);
}

static void *test_udp(void *arg) {
    (void)arg;
    udp_round_trips("127.0.0.1:0", AF_INET);
    if (have_ipv6()) udp_round_trips("[::1]:0", AF_INET6);
    CHECK_EQ(crt_udp_bind("bad"), -EINVAL);
    return NULL;
}

/* -------------------------------------------------------------- signals */

typedef struct sigwaiter {
    int signo;
    int result;
} sigwaiter;

static void *sig_task(void *arg) {
    sigwaiter *s = (sigwaiter *)arg;
    s->result = crt_signal_wait(s->signo, crt_after(CRT_SEC(20)));
    return NULL;
}

static void *sig_thread(void *arg) {
    sigwaiter *s = (sigwaiter *)arg;
    s->result = crt_signal_wait(s->signo, crt_after(CRT_SEC(20)));
    return NULL;
}

static void *test_signals(void *arg) {
    (void)arg;
    CHECK_EQ(crt_signal_wait(0, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_signal_wait(SIGKILL, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_signal_wait(SIGSEGV, CRT_TRY), -EINVAL);
    CHECK_EQ(crt_signal_wait(100000, CRT_TRY), -EINVAL);
    /* The first call installs the handler (SIGUSR1 would otherwise kill us). */
    CHECK_EQ(crt_signal_wait(SIGUSR1, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_signal_wait(SIGUSR1, crt_after(CRT_MS(20))), -ETIMEDOUT);

    /* Three tasks and one plain thread wait; one kill wakes all four. */
    sigwaiter w[4];
    crt_task *t[3];
    for (int i = 0; i < 4; i++) {
        w[i].signo = SIGUSR1;
        w[i].result = 1;
    }
    for (int i = 0; i < 3; i++) t[i] = crt_spawn(sig_task, &w[i]);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, sig_thread, &w[3]), 0);
    crt_time give_up = crt_after(CRT_SEC(10));
    while (crt__signal_waiters(SIGUSR1) < 4 && crt_now() < give_up) crt_sleep(CRT_MS(1));
    CHECK_EQ(crt__signal_waiters(SIGUSR1), 4);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    for (int i = 0; i < 3; i++) CHECK_EQ(crt_join(t[i], NULL, crt_after(CRT_SEC(10))), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    for (int i = 0; i < 4; i++) CHECK_EQ(w[i].result, 0);

    /* A delivery with no waiter is kept (once) for the next call. */
    CHECK_EQ(raise(SIGUSR1), 0);
    give_up = crt_after(CRT_SEC(5));
    int r;
    while ((r = crt_signal_wait(SIGUSR1, CRT_TRY)) == -EAGAIN && crt_now() < give_up) crt_sleep(CRT_MS(1));
    CHECK_EQ(r, 0);
    CHECK_EQ(crt_signal_wait(SIGUSR1, CRT_TRY), -EAGAIN);
    /* Two deliveries with no waiter coalesce into one. */
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(crt_signal_wait(SIGUSR1, crt_after(CRT_SEC(5))), 0);
    CHECK_EQ(crt_signal_wait(SIGUSR1, crt_after(CRT_MS(20))), -ETIMEDOUT);
    /* A waiter that comes while the helper has not handed out a delivery yet
     * sees it together with the ones queued (loop: timing varies). */
    return NULL;
}

/* ----------------------------------------------------- select on an fd */

static void *delayed_writer(void *arg) {
    int fd = (int)(intptr_t)arg;
    crt_sleep(CRT_MS(30));
    CHECK_EQ(crt_write(fd, "s", 1, crt_after(CRT_SEC(5))), 1);
    return NULL;
}

static void select_fd_checks(int rd, int wr, int in_task) {
    crt_case cs[2];
    cs[0] = CRT_CASE_FD(rd, CRT_READABLE);
    CHECK_EQ(crt_select(cs, 1, 0, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_select(cs, 1, 0, crt_after(CRT_MS(20))), -ETIMEDOUT);
    cs[1] = CRT_CASE_FD(wr, CRT_WRITABLE);
    CHECK_EQ(crt_select(cs, 2, CRT_SELECT_BIASED, crt_after(CRT_SEC(5))), 1);
    CHECK_EQ(cs[1].result, CRT_WRITABLE);
    /* wake from a wait: a writer sends one byte after 30 ms */
    crt_task *t = NULL;
    pthread_t th;
    if (in_task) t = crt_spawn(delayed_writer, (void *)(intptr_t)wr);
    else CHECK_EQ(pthread_create(&th, NULL, delayed_writer, (void *)(intptr_t)wr), 0);
    cs[0] = CRT_CASE_FD(rd, CRT_READABLE);
    crt_time t0 = crt_now();
    CHECK_EQ(crt_select(cs, 1, 0, crt_after(CRT_SEC(5))), 0);
    CHECK_EQ(cs[0].result, CRT_READABLE);
    CHECK(crt_now() - t0 >= CRT_MS(20));
    char c;
    CHECK_EQ(crt_read(rd, &c, 1, crt_after(CRT_SEC(1))), 1);
    if (in_task) CHECK_EQ(crt_join(t, NULL, crt_after(CRT_SEC(5))), 0);
    else CHECK_EQ(pthread_join(th, NULL), 0);
    /* bad cases complete at once with their error */
    cs[0] = CRT_CASE_FD(-1, CRT_READABLE);
    CHECK_EQ(crt_select(cs, 1, 0, CRT_FOREVER), 0);
    CHECK_EQ(cs[0].result, -EBADF);
    cs[0] = CRT_CASE_FD(rd, 0);
    CHECK_EQ(crt_select(cs, 1, 0, CRT_FOREVER), 0);
    CHECK_EQ(cs[0].result, -EINVAL);
}

static void *test_select_fd(void *arg) {
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    select_fd_checks(sv[0], sv[1], 1);
    CHECK_EQ(crt_close(sv[0]), 0);
    CHECK_EQ(crt_close(sv[1]), 0);
    return NULL;
}

/* ------------------------------------------------------- plain threads */

typedef struct plain_srv {
    int listener;
    int rounds;
} plain_srv;

/* A plain thread serving one connection with the net calls. */
static void *plain_server(void *arg) {
    plain_srv *s = (plain_srv *)arg;
    CHECK(crt_current() == NULL);
    int fd = crt_tcp_accept(s->listener, crt_after(CRT_SEC(10)));
    CHECK(fd >= 0);
    char buf[256];
    CHECK_EQ(crt_read(fd, buf, sizeof buf, crt_after(CRT_MS(20))), -ETIMEDOUT);
    CHECK_EQ(crt_fd_wait(fd, CRT_READABLE, crt_after(CRT_MS(20))), -ETIMEDOUT);
    CHECK_EQ(crt_write(fd, "ready", 5, crt_after(CRT_SEC(5))), 5);
    for (int i = 0; i < s->rounds; i++) {
        CHECK_EQ(crt_fd_wait(fd, CRT_READABLE, crt_after(CRT_SEC(10))), CRT_READABLE);
        ssize_t n = crt_read(fd, buf, sizeof buf, crt_after(CRT_SEC(10)));
        CHECK(n > 0);
        CHECK_EQ(crt_write(fd, buf, (size_t)n, crt_after(CRT_SEC(10))), n);
    }
    CHECK_EQ(crt_read(fd, buf, sizeof buf, crt_after(CRT_SEC(10))), 0);
    CHECK_EQ(crt_close(fd), 0);
    return NULL;
}

static void talk(int fd, int rounds) {
    char buf[256];
    size_t got = 0;
    while (got < 5) {
        ssize_t n = crt_read(fd, buf + got, 5 - got, crt_after(CRT_SEC(10)));
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK(memcmp(buf, "ready", 5) == 0);
    for (int i = 0; i < rounds; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "round %d", i);
        CHECK_EQ(crt_write(fd, msg, (size_t)len, crt_after(CRT_SEC(10))), len);
        got = 0;
        while (got < (size_t)len) {
            ssize_t n = crt_read(fd, buf + got, sizeof buf - got, crt_after(CRT_SEC(10)));
            CHECK(n > 0);
            got += (size_t)n;
        }
        CHECK(memcmp(buf, msg, (size_t)len) == 0);
    }
}

/* A plain-thread client (no runtime at all). */
static void *plain_client(void *arg) {
    int port = (int)(intptr_t)arg;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    int fd = crt_tcp_connect(addr, crt_after(CRT_SEC(10)));
    CHECK(fd >= 0);
    talk(fd, 50);
    CHECK_EQ(crt_close(fd), 0);
    return NULL;
}

/* A blocking-pool job: crt_current() is NULL, its calls block its thread. */
static void *blocking_client(void *arg) {
    CHECK(crt_current() == NULL);
    return plain_client(arg);
}

static void *test_plain_threads_task(void *arg) {
    (void)arg;
    /* A plain-thread server, a task client. */
    plain_srv s;
    s.listener = crt_tcp_listen("127.0.0.1:0", 0);
    CHECK(s.listener >= 0);
    s.rounds = 50;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, plain_server, &s), 0);
    int fd = crt_tcp_connect(loop_addr(crt_local_port(s.listener)), crt_after(CRT_SEC(10)));
    CHECK(fd >= 0);
    talk(fd, 50);
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(crt_close(fd), 0);
    /* A task server, a blocking-pool client. */
    int port = crt_local_port(s.listener);
    crt_task *job = crt_spawn_blocking(blocking_client, (void *)(intptr_t)port);
    CHECK(job != NULL);
    int a = crt_tcp_accept(s.listener, crt_after(CRT_SEC(10)));
    CHECK(a >= 0);
    CHECK_EQ(crt_write(a, "ready", 5, crt_after(CRT_SEC(5))), 5);
    for (int i = 0; i < 50; i++) {
        char buf[64];
        ssize_t n = crt_read(a, buf, sizeof buf, crt_after(CRT_SEC(10)));
        CHECK(n > 0);
        CHECK_EQ(crt_write(a, buf, (size_t)n, crt_after(CRT_SEC(10))), n);
    }
    CHECK_EQ(crt_join(job, NULL, crt_after(CRT_SEC(10))), 0);
    CHECK_EQ(crt_close(a), 0);
    CHECK_EQ(crt_close(s.listener), 0);
    return NULL;
}

typedef struct pipe_drain {
    int fd;
    size_t len;
    int bad;
} pipe_drain;

/* Reads len bytes of pattern 5 from a blocking pipe, slowly at first. */
static void *pipe_drainer(void *arg) {
    pipe_drain *d = (pipe_drain *)arg;
    char buf[3000];
    size_t got = 0;
    usleep(20000);
    while (got < d->len) {
        ssize_t n = read(d->fd, buf, sizeof buf);
        if (n <= 0) {
            d->bad = 1;
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            if ((unsigned char)buf[i] != pattern(5, got + (size_t)i)) d->bad = 1;
        got += (size_t)n;
    }
    return NULL;
}

/* No runtime anywhere: plain threads on both sides, plus select and UDP. */
static void test_plain_only(void) {
    plain_srv s;
    s.listener = crt_tcp_listen("127.0.0.1:0", 0);
    CHECK(s.listener >= 0);
    s.rounds = 50;
    CHECK_EQ(crt_tcp_accept(s.listener, CRT_TRY), -EAGAIN);
    CHECK_EQ(crt_tcp_accept(s.listener, crt_after(CRT_MS(10))), -ETIMEDOUT);
    pthread_t srv, cli;
    CHECK_EQ(pthread_create(&srv, NULL, plain_server, &s), 0);
    CHECK_EQ(pthread_create(&cli, NULL, plain_client, (void *)(intptr_t)crt_local_port(s.listener)), 0);
    CHECK_EQ(pthread_join(cli, NULL), 0);
    CHECK_EQ(pthread_join(srv, NULL), 0);
    CHECK_EQ(crt_close(s.listener), 0);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    select_fd_checks(sv[0], sv[1], 0);
    CHECK_EQ(crt_close(sv[0]), 0);
    CHECK_EQ(crt_close(sv[1]), 0);
    /* UDP on a plain thread */
    int u1 = crt_udp_bind("127.0.0.1:0"), u2 = crt_udp_bind("127.0.0.1:0");
    CHECK(u1 >= 0 && u2 >= 0);
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons((unsigned short)crt_local_port(u2));
    char b[16];
    CHECK_EQ(crt_udp_recv(u2, b, sizeof b, NULL, crt_after(CRT_MS(10))), -ETIMEDOUT);
    CHECK_EQ(crt_udp_send(u1, "dgram", 5, (struct sockaddr *)&to, sizeof to, CRT_FOREVER), 5);
    CHECK_EQ(crt_udp_recv(u2, b, sizeof b, NULL, crt_after(CRT_SEC(5))), 5);
    CHECK_EQ(crt_close(u1), 0);
    CHECK_EQ(crt_close(u2), 0);
    /* A blocking pipe on a plain thread: deadlines still hold, and a write
     * larger than the pipe completes while a reader drains it. */
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(crt_read(p[0], b, sizeof b, crt_after(CRT_MS(10))), -ETIMEDOUT);
    size_t big = (size_t)1 << 20;
    char *buf = (char *)malloc(big);
    for (size_t i = 0; i < big; i++) buf[i] = (char)pattern(5, i);
    ssize_t w = crt_write(p[1], buf, big, crt_after(CRT_MS(50))); /* nobody reads: the pipe fills */
    CHECK_EQ(w, -ETIMEDOUT);
    CHECK_EQ(crt_write(p[1], buf, 16, CRT_TRY), -EAGAIN);
    CHECK_EQ(close(p[0]), 0);
    CHECK_EQ(close(p[1]), 0);
    CHECK_EQ(pipe(p), 0);
    pthread_t rd;
    pipe_drain pd;
    pd.fd = p[0];
    pd.len = big;
    pd.bad = 0;
    CHECK_EQ(pthread_create(&rd, NULL, pipe_drainer, &pd), 0);
    CHECK_EQ(crt_write(p[1], buf, big, crt_after(CRT_SEC(10))), big);
    CHECK_EQ(pthread_join(rd, NULL), 0);
    CHECK_EQ(pd.bad, 0);
    free(buf);
    CHECK_EQ(close(p[0]), 0);
    CHECK_EQ(close(p[1]), 0);
    /* A blocking listener of another library: accept honours its deadline. */
    int bl = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in la;
    memset(&la, 0, sizeof la);
    la.sin_family = AF_INET;
    la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(bl, (struct sockaddr *)&la, sizeof la), 0);
    CHECK_EQ(listen(bl, 4), 0);
    CHECK_EQ(crt_tcp_accept(bl, crt_after(CRT_MS(20))), -ETIMEDOUT);
    CHECK_EQ(crt_tcp_accept(bl, CRT_TRY), -EAGAIN);
    CHECK_EQ(close(bl), 0);
    /* a signal waited for by a plain thread only */
    CHECK_EQ(crt_signal_wait(SIGHUP, CRT_TRY), -EAGAIN);
    CHECK_EQ(raise(SIGHUP), 0);
    CHECK_EQ(crt_signal_wait(SIGHUP, crt_after(CRT_SEC(5))), 0);
}

/* After fork the helper thread is gone: the child starts its own (and its
 * own pipe), the parent's keeps working. */
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif

static void test_signal_fork(void) {
#ifdef TEST_TSAN
    TEST_LOG("fork: skipped under TSan (no threads in a child of a threaded process)");
#else
    CHECK_EQ(crt_signal_wait(SIGUSR1, CRT_TRY), -EAGAIN);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (crt_signal_wait(SIGUSR1, CRT_TRY) != -EAGAIN) _exit(2);
        raise(SIGUSR1);
        _exit(crt_signal_wait(SIGUSR1, crt_after(CRT_SEC(5))) == 0 ? 0 : 3);
    }
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    CHECK_EQ(crt_signal_wait(SIGUSR1, CRT_TRY), -EAGAIN); /* the child's was its own */
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(crt_signal_wait(SIGUSR1, crt_after(CRT_SEC(5))), 0);
#endif
}

/* ------------------------------------------------------------------- main */

static void raise_nofile(int need) {
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < (rlim_t)need) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)need ? rl.rlim_max : (rlim_t)need;
        CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < (rlim_t)need) {
        fprintf(stderr, "RLIMIT_NOFILE is %llu, need %d\n", (unsigned long long)rl.rlim_cur, need);
        exit(1);
    }
}

int main(void) {
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test: none may happen */
    echo_nconn = test_short() ? 200 : 1000;
    raise_nofile(2 * echo_nconn + 64);
    TEST_LOG("echo: %d connections, 2 workers", echo_nconn);
    test_run(2, test_echo_many, NULL);
    TEST_LOG("echo: %d connections, 1 worker", echo_nconn / 4);
    echo_nconn /= 4;
    test_run(1, test_echo_many, NULL);
    TEST_LOG("duplex");
    test_run(2, test_duplex, NULL);
    test_run(1, test_duplex, NULL);
    TEST_LOG("deadlines");
    test_run(2, test_deadlines, NULL);
    TEST_LOG("aborts");
    test_run(2, test_aborts, NULL);
    test_run(1, test_aborts, NULL);
    test_run(2, test_close_wakes, NULL);
    TEST_LOG("edges");
    test_run(2, test_edges, NULL);
    test_run(1, test_fd_reuse, NULL);
    TEST_LOG("udp");
    test_run(2, test_udp, NULL);
    TEST_LOG("signals");
    test_run(2, test_signals, NULL);
    TEST_LOG("select");
    test_run(2, test_select_fd, NULL);
    test_run(1, test_select_fd, NULL);
    TEST_LOG("plain threads");
    test_run(2, test_plain_threads_task, NULL);
    test_plain_only();
    test_signal_fork();
    TEST_LOG("ok");
    return 0;
}
