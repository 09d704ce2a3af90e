/* examples/request_response.c — ask a task and wait for its answer: each
 * request carries a oneshot for the reply; a client that times out walks
 * away and nothing breaks.
 *
 * The pattern: a server task owns some state (here, a small key-value
 * table — no lock, since only the server touches it) and answers requests
 * that arrive on a channel. Each request brings its own crt_oneshot; the
 * server answers through it. The client waits for the reply with a
 * deadline. If the deadline passes it frees its end and leaves: the
 * oneshot is reference counted, so the server's late crt_oneshot_send just
 * returns -EPIPE and the reply is dropped. No dangling pointer, no leak, no
 * reply delivered to the wrong request.
 *
 *   tokio: the actor pattern: mpsc::Sender<(Request, oneshot::Sender<Reply>)> and
 *          tokio::time::timeout(d, rx).await
 *   Go:    a request struct with `reply chan Reply` (buffered, 1), and
 *          select { case r := <-reply: ...; case <-time.After(d): ... }
 *
 * Use it whenever one task needs an answer from another: an actor, a
 * connection pool handing out connections, a cache with one owner.
 *
 * The rule that keeps it safe: every oneshot's sender side is ended exactly
 * once (crt_oneshot_send, or crt_oneshot_close to say "no answer") and its
 * receiver side exactly once (crt_oneshot_free), whatever happens — see
 * call() and the server's cleanup.
 *
 * Scenario: three clients PUT and GET keys (all answered); then one client
 * asks for a slow scan (2 s) but will only wait 1 s: it times out and goes;
 * a patient client, queued behind the scan with a 5 s deadline, is answered
 * when the scan is done. Exit status 1 unless exactly that happens.
 *
 * CRT_EXAMPLE_SHORT=1 (as `meson test` runs it): the same timings on the
 * paused clock (crt_config.start_paused with workers = 1), so they are
 * exact and take no time — tokio's tests do this with time::pause.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { NKEYS = 64, NCLIENTS = 3, ROUNDS = 5 };

typedef enum { OP_GET, OP_PUT, OP_SCAN } op_kind;

typedef struct request {
    op_kind op;
    int key, value;
    crt_oneshot *reply; /* the server ends its sender side, exactly once */
} request;

typedef struct reply {
    int status; /* 0 or a negative errno */
    int value;
} reply;

typedef struct server {
    crt_chan *requests;
    int table[NKEYS];     /* owned by the server task: no lock */
    crt_time scan_cost;
    int answered, orphaned; /* replies delivered, and dropped because the client had gone */
} server;

static int short_mode(void) {
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    return s && s[0] == '1';
}

/* >>the server */

static reply handle(server *s, const request *rq) {
    reply rp = {0, 0};
    if (rq->key < 0 || rq->key >= NKEYS) rp.status = -EINVAL;
    else if (rq->op == OP_PUT) s->table[rq->key] = rq->value;
    else if (rq->op == OP_GET) rp.value = s->table[rq->key];
    else { /* OP_SCAN: expensive; the sum of every value */
        rp.status = crt_sleep(s->scan_cost);
        for (int k = 0; k < NKEYS; k++) rp.value += s->table[k];
    }
    return rp;
}

static void *server_run(void *arg) {
    server *s = (server *)arg;
    request rq;
    int rc;
    while ((rc = crt_chan_recv(s->requests, &rq, CRT_FOREVER)) == 0) {
        reply rp = handle(s, &rq);
        if (rp.status == -ECANCELED) { /* aborted mid-request: no answer, but end our side */
            crt_oneshot_close(rq.reply);
            rc = -ECANCELED;
            break;
        }
        if (crt_oneshot_send(rq.reply, &rp) == 0) s->answered++;
        else s->orphaned++; /* -EPIPE: the client timed out and left; the reply is dropped */
    }
    if (rc == -ECANCELED) {
        /* Aborted: tell the clients still queued that no answer will come.
         * Shielded, because after an abort even a CRT_TRY receive fails. */
        int was = crt_shield(1);
        crt_chan_close(s->requests);
        while (crt_chan_recv(s->requests, &rq, CRT_TRY) == 0) crt_oneshot_close(rq.reply);
        crt_shield(was);
    }
    return (void *)(intptr_t)(rc == -EPIPE ? 0 : rc); /* -EPIPE: closed and drained, the normal end */
}

/* >>the client side: one call */

/* Sends a request and waits for its reply until the deadline.
 * Returns 0 (*out filled), -ETIMEDOUT (we gave up: the reply, if it ever
 * comes, is dropped), -EPIPE (the server is gone), -ENOMEM, -ECANCELED. */
static int call(crt_chan *requests, request rq, reply *out, crt_time deadline) {
    rq.reply = crt_oneshot_new(sizeof(reply));
    if (!rq.reply) return -ENOMEM;
    int rc = crt_chan_send(requests, &rq, deadline);
    if (rc < 0) {                  /* never sent: both sides are still ours */
        crt_oneshot_close(rq.reply);
        crt_oneshot_free(rq.reply);
        return rc;
    }
    rc = crt_oneshot_recv(rq.reply, out, deadline);
    crt_oneshot_free(rq.reply); /* whatever rc is: our side ends here, the server's whenever it answers */
    if (rc == 0 && out->status < 0) rc = out->status;
    return rc;
}

/* >>the clients */

typedef struct client {
    crt_chan *requests;
    int id;
    crt_time start_after, timeout;
    op_kind op;               /* for the one-request clients */
    int ok, timed_out, wrong; /* outcomes */
    reply last;
} client;

/* PUTs a value under each of its keys, then GETs them back. */
static void *busy_client(void *arg) {
    client *c = (client *)arg;
    for (int i = 0; i < ROUNDS * 2; i++) {
        int key = c->id * ROUNDS + i % ROUNDS, value = 100 * c->id + key;
        request rq = {i < ROUNDS ? OP_PUT : OP_GET, key, value, NULL};
        reply rp;
        int rc = call(c->requests, rq, &rp, crt_after(c->timeout));
        if (rc == 0) c->ok++;
        else if (rc == -ETIMEDOUT) c->timed_out++;
        if (rc == 0 && rq.op == OP_GET && rp.value != value) c->wrong++;
        if (rc < 0 && rc != -ETIMEDOUT) c->wrong++;
    }
    return NULL;
}

/* Makes one request, after a delay, and reports how it went. */
static void *one_request_client(void *arg) {
    client *c = (client *)arg;
    if (crt_sleep(c->start_after) < 0) return NULL;
    request rq = {c->op, 0, 0, NULL};
    crt_time asked = crt_now();
    int rc = call(c->requests, rq, &c->last, crt_after(c->timeout));
    double waited = (double)(crt_now() - asked) / 1e9;
    if (rc == 0) {
        c->ok++;
        printf("client %d: %s answered after %.2f s (it would wait %.0f s)\n", c->id,
               c->op == OP_SCAN ? "scan" : "get", waited, (double)c->timeout / 1e9);
    } else if (rc == -ETIMEDOUT) {
        c->timed_out++;
        printf("client %d: %s: no answer within %.2f s; gave up and walked away\n", c->id,
               c->op == OP_SCAN ? "scan" : "get", waited);
    } else {
        c->wrong++;
        fprintf(stderr, "request_response: client %d: %s\n", c->id, crt_strerror(rc));
    }
    return NULL;
}

/* >>main */

static void *main_task(void *arg) {
    (void)arg;
    server s = {0};
    s.scan_cost = CRT_SEC(2);
    s.requests = crt_chan_new(sizeof(request), 16);
    if (!s.requests) return (void *)1;
    crt_task *srv = crt_spawn(server_run, &s);
    if (!srv) {
        crt_chan_free(s.requests);
        return (void *)1;
    }

    /* Phase 1: busy clients, all answered. */
    client busy[NCLIENTS];
    crt_group clients;
    crt_group_init(&clients);
    int failed = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        busy[i] = (client){.requests = s.requests, .id = i, .timeout = CRT_SEC(1)};
        if (!crt_group_spawn(&clients, busy_client, &busy[i])) failed++;
    }
    if (crt_group_wait(&clients, crt_after(CRT_SEC(30))) < 0) failed++;
    int ok = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        ok += busy[i].ok;
        failed += busy[i].wrong + busy[i].timed_out;
    }
    printf("%d clients: %d requests, %d answered correctly\n", NCLIENTS, NCLIENTS * ROUNDS * 2, ok);

    /* Phase 2: an impatient client asks for the slow scan; a patient one
     * queues behind it. */
    client impatient = {.requests = s.requests, .id = 10, .timeout = CRT_SEC(1), .op = OP_SCAN};
    client patient = {.requests = s.requests, .id = 11, .start_after = CRT_MS(100), .timeout = CRT_SEC(5),
                      .op = OP_GET};
    if (!crt_group_spawn(&clients, one_request_client, &impatient)) failed++;
    if (!crt_group_spawn(&clients, one_request_client, &patient)) failed++;
    if (crt_group_wait(&clients, crt_after(CRT_SEC(30))) < 0) failed++;
    crt_group_destroy(&clients);

    /* Shut the server down: close, and it drains what is queued and ends. */
    crt_chan_close(s.requests);
    void *server_rc = NULL;
    if (crt_join(srv, &server_rc, crt_after(CRT_SEC(10))) < 0) {
        crt_abort(srv);
        crt_join(srv, &server_rc, CRT_FOREVER);
        failed++;
    }
    crt_chan_free(s.requests);
    printf("server: %d replies delivered, %d dropped because the client had gone\n", s.answered, s.orphaned);

    int good = !failed && server_rc == NULL && ok == NCLIENTS * ROUNDS * 2 && impatient.timed_out == 1 &&
               patient.ok == 1 && s.orphaned == 1 && s.answered == ok + 1;
    if (!good) fprintf(stderr, "request_response: FAILED: not every request ended as it should\n");
    return (void *)(intptr_t)(good ? 0 : 1);
}

int main(void) {
    crt_config cfg = {0};
    if (short_mode()) {
        cfg.workers = 1;
        cfg.start_paused = 1; /* the 1, 2 and 5 s timings, exact and instant */
    } else {
        cfg.workers = 2;
    }
    void *status = NULL;
    int rc = crt_run(&cfg, main_task, NULL, &status);
    if (rc < 0) {
        fprintf(stderr, "request_response: crt_run: %s\n", crt_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}
