/* examples/echo_server.c — a TCP echo server: one task per connection, a
 * connection limit, and a graceful shutdown on SIGINT/SIGTERM.
 *
 *   echo_server [--port 7000] [--bind 127.0.0.1] [--workers 0] [--max-conns 1024] [--grace-ms 5000]
 *   printf 'hello\n' | nc -q1 127.0.0.1 7000
 *
 * The shape of most crt servers:
 *   - an acceptor task takes a slot of a crt_sem before it accepts, so at
 *     most --max-conns connections are served at once; the next client
 *     waits in the listen backlog until a slot frees (no busy loop, no
 *     refusal);
 *   - each connection is a task in a crt_group (the group owns the tasks,
 *     so none can outlive the server);
 *   - a task per signal waits in crt_signal_wait and wakes the main task;
 *   - shutdown: stop accepting (abort the acceptor, close the listener),
 *     give the connections --grace-ms to finish, cancel the ones still
 *     open (their blocking calls return -ECANCELED and they clean up),
 *     exit 0.
 *
 * CRT_EXAMPLE_SHORT=1 (as `meson test` runs it): serve on a free port with
 * a limit of 4, run 16 clients of its own at once (checking every echoed
 * byte and that no more than 4 connections were ever served together),
 * then send itself SIGTERM in the middle of one more client's session and
 * check that that client is still served and that new ones are turned
 * away; exit 0 if all of it held.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct options {
    int port;
    const char *bind;
    int workers;
    size_t max_conns;
    crt_time grace;
    int self_check;
} options;

static options opt;

typedef struct server {
    int listener;
    crt_sem slots;
    crt_group conns;
    crt_notify stop;
    int active, peak;   /* connections being served (atomic), and the most at once */
} server;

static server srv;

/* >>serving ----------------------------------------------------------------- */

static void *serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    int now = __atomic_add_fetch(&srv.active, 1, __ATOMIC_RELAXED);
    int peak = __atomic_load_n(&srv.peak, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&srv.peak, &peak, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    char buf[16384];
    for (;;) {
        /* An idle client is dropped after a minute. */
        ssize_t n = crt_read(fd, buf, sizeof buf, crt_after(CRT_SEC(60)));
        if (n <= 0) break; /* EOF, error, idle, or -ECANCELED at shutdown */
        if (crt_write(fd, buf, (size_t)n, crt_after(CRT_SEC(60))) < 0) break;
    }
    __atomic_sub_fetch(&srv.active, 1, __ATOMIC_RELAXED);
    crt_close(fd);
    crt_sem_release(&srv.slots, 1);
    return NULL;
}

static void *acceptor(void *arg) {
    (void)arg;
    for (;;) {
        if (crt_sem_acquire(&srv.slots, 1, CRT_FOREVER) < 0) break; /* -ECANCELED: shutting down */
        int fd = crt_tcp_accept(srv.listener, CRT_FOREVER);
        if (fd < 0) {
            crt_sem_release(&srv.slots, 1);
            if (fd == -ECANCELED) break;
            fprintf(stderr, "echo_server: accept: %s\n", crt_strerror(fd));
            if (crt_sleep(CRT_MS(100)) < 0) break; /* out of fds, say: back off */
            continue;
        }
        if (!crt_group_spawn(&srv.conns, serve, (void *)(intptr_t)fd)) {
            crt_close(fd);
            crt_sem_release(&srv.slots, 1);
        }
        while (crt_group_next(&srv.conns, NULL, CRT_TRY) == 0) {
        } /* collect the finished ones */
    }
    return NULL;
}

static void *signal_waiter(void *arg) {
    int signo = (int)(intptr_t)arg;
    if (crt_signal_wait(signo, CRT_FOREVER) == 0) {
        fprintf(stderr, "echo_server: %s: no new connections; %lld ms for the open ones\n",
                signo == SIGINT ? "SIGINT" : "SIGTERM", (long long)(opt.grace / CRT_MS(1)));
        crt_notify_one(&srv.stop);
    }
    return NULL;
}

/* >>self-check (CRT_EXAMPLE_SHORT=1) ------------------------------------------ */

static int check_failed;

#define FAIL(...)                                 \
    do {                                          \
        fprintf(stderr, "self-check: " __VA_ARGS__); \
        fputc('\n', stderr);                      \
        __atomic_store_n(&check_failed, 1, __ATOMIC_RELAXED); \
    } while (0)

typedef struct client {
    int port;
    unsigned seed;
    int rounds;
    crt_time pause;
} client;

static unsigned char pattern(unsigned seed, size_t i) { return (unsigned char)(seed * 31 + i * 7 + (i >> 8)); }

/* One exchange on fd: send len bytes, read them back, compare. */
static int exchange(int fd, unsigned seed, size_t len) {
    unsigned char out[8192], in[8192]; /* on the task's stack: a task may change threads */
    if (len > sizeof out) len = sizeof out;
    for (size_t i = 0; i < len; i++) out[i] = pattern(seed, i);
    if (crt_write(fd, out, len, crt_after(CRT_SEC(10))) != (ssize_t)len) return -1;
    size_t got = 0;
    while (got < len) {
        ssize_t n = crt_read(fd, in + got, len - got, crt_after(CRT_SEC(10)));
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return memcmp(in, out, len) == 0 ? 0 : -1;
}

static void *client_main(void *arg) {
    client *c = (client *)arg;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", c->port);
    int fd = crt_tcp_connect(addr, crt_after(CRT_SEC(10)));
    if (fd < 0) {
        FAIL("connect: %s", crt_strerror(fd));
        return NULL;
    }
    for (int r = 0; r < c->rounds; r++) {
        if (exchange(fd, c->seed + (unsigned)r, 1 + (c->seed * 131 + (unsigned)r * 977) % 8192) < 0) {
            FAIL("client %u: echo mismatch or error in round %d", c->seed, r);
            break;
        }
        crt_sleep(c->pause);
    }
    crt_close(fd);
    return NULL;
}

static void *self_check(void *arg) {
    int port = (int)(intptr_t)arg;
    /* 16 clients against a limit of 4. */
    enum { N = 16 };
    client cl[N];
    crt_task *t[N];
    for (int i = 0; i < N; i++) {
        cl[i].port = port;
        cl[i].seed = (unsigned)i + 1;
        cl[i].rounds = 5;
        cl[i].pause = CRT_MS(2);
        t[i] = crt_spawn(client_main, &cl[i]);
    }
    for (int i = 0; i < N; i++) crt_join(t[i], NULL, CRT_FOREVER);
    int peak = __atomic_load_n(&srv.peak, __ATOMIC_RELAXED);
    if (peak > (int)opt.max_conns) FAIL("%d connections served at once, limit %zu", peak, opt.max_conns);
    if (peak < 2) FAIL("connections were not served concurrently (peak %d)", peak);

    /* Graceful shutdown: a client mid-session when SIGTERM arrives is
     * still served; a new one is turned away once the listener closed. */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    int fd = crt_tcp_connect(addr, crt_after(CRT_SEC(10)));
    if (fd < 0 || exchange(fd, 99, 1000) < 0) FAIL("session before SIGTERM");
    kill(getpid(), SIGTERM);
    crt_time give_up = crt_after(CRT_SEC(5));
    int refused = 0;
    while (!refused && crt_now() < give_up) {
        crt_sleep(CRT_MS(10));
        int x = crt_tcp_connect(addr, crt_after(CRT_SEC(1)));
        if (x == -ECONNREFUSED) refused = 1;
        else if (x >= 0) crt_close(x); /* still accepting: not yet */
    }
    if (!refused) FAIL("new connections still accepted after SIGTERM");
    if (fd >= 0 && exchange(fd, 100, 5000) < 0) FAIL("session after SIGTERM was not served");
    if (fd >= 0) crt_close(fd);
    fprintf(stderr, "echo_server: self-check %s (peak %d connections)\n",
            __atomic_load_n(&check_failed, __ATOMIC_RELAXED) ? "FAILED" : "passed", peak);
    return NULL;
}

/* >>main ------------------------------------------------------------------------ */

static void *server_main(void *arg) {
    (void)arg;
    char addr[128];
    snprintf(addr, sizeof addr, strchr(opt.bind, ':') ? "[%s]:%d" : "%s:%d", opt.bind, opt.port);
    srv.listener = crt_tcp_listen(addr, 0);
    if (srv.listener < 0) {
        fprintf(stderr, "echo_server: listen on %s: %s\n", addr, crt_strerror(srv.listener));
        return (void *)1;
    }
    int port = crt_local_port(srv.listener);
    fprintf(stderr, "echo_server: listening on %s:%d (at most %zu connections)\n", opt.bind, port, opt.max_conns);
    crt_sem_init(&srv.slots, opt.max_conns);
    crt_group_init(&srv.conns);
    crt_notify_init(&srv.stop);
    crt_task *sig_int = crt_spawn(signal_waiter, (void *)(intptr_t)SIGINT);
    crt_task *sig_term = crt_spawn(signal_waiter, (void *)(intptr_t)SIGTERM);
    crt_task *acc = crt_spawn(acceptor, NULL);
    crt_task *chk = opt.self_check ? crt_spawn(self_check, (void *)(intptr_t)port) : NULL;

    crt_notify_wait(&srv.stop, CRT_FOREVER);

    crt_abort(acc);
    crt_join(acc, NULL, CRT_FOREVER);
    crt_close(srv.listener);
    if (crt_group_wait(&srv.conns, crt_after(opt.grace)) == -ETIMEDOUT)
        fprintf(stderr, "echo_server: cancelling the connections still open\n");
    crt_group_destroy(&srv.conns); /* cancels what is left and waits for it */
    crt_abort(sig_int);
    crt_abort(sig_term);
    crt_join(sig_int, NULL, CRT_FOREVER);
    crt_join(sig_term, NULL, CRT_FOREVER);
    if (chk) crt_join(chk, NULL, CRT_FOREVER);
    crt_sem_destroy(&srv.slots);
    crt_notify_destroy(&srv.stop);
    return NULL;
}

static void usage(void) {
    fprintf(stderr, "usage: echo_server [--port N] [--bind ADDR] [--workers N] [--max-conns N] [--grace-ms MS]\n");
    exit(2);
}

static long arg_num(int argc, char **argv, int *i, long lo, long hi) {
    if (*i + 1 >= argc) usage();
    char *end;
    long v = strtol(argv[++*i], &end, 10);
    if (*end || v < lo || v > hi) usage();
    return v;
}

int main(int argc, char **argv) {
    opt.port = 7000;
    opt.bind = "127.0.0.1";
    opt.workers = 0;
    opt.max_conns = 1024;
    opt.grace = CRT_SEC(5);
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    opt.self_check = s && s[0] == '1';
    if (opt.self_check) {
        opt.port = 0;
        opt.max_conns = 4;
        opt.workers = 2;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port")) opt.port = (int)arg_num(argc, argv, &i, 0, 65535);
        else if (!strcmp(argv[i], "--bind") && i + 1 < argc) opt.bind = argv[++i];
        else if (!strcmp(argv[i], "--workers")) opt.workers = (int)arg_num(argc, argv, &i, 0, 1024);
        else if (!strcmp(argv[i], "--max-conns")) opt.max_conns = (size_t)arg_num(argc, argv, &i, 1, 10000000);
        else if (!strcmp(argv[i], "--grace-ms")) opt.grace = CRT_MS(arg_num(argc, argv, &i, 0, 3600000));
        else usage();
    }
    /* Install the handlers before anyone can send a signal. */
    crt_signal_wait(SIGINT, CRT_TRY);
    crt_signal_wait(SIGTERM, CRT_TRY);
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = opt.workers;
    void *res = NULL;
    int r = crt_run(&cfg, server_main, NULL, &res);
    if (r < 0) {
        fprintf(stderr, "echo_server: %s\n", crt_strerror(r));
        return 1;
    }
    return res != NULL || check_failed ? 1 : 0;
}
