/* examples/mini_redis.c — a Redis-protocol (RESP2) key-value server: the C
 * counterpart of tokio's mini-redis, on crt's tasks and sockets.
 *
 *   mini_redis [--port 6379] [--bind 127.0.0.1] [--workers 1] [--maxclients 10000]
 *              [--timeout 0] [--max-bulk 16777216]
 *   redis-cli -p 6379 set greeting hello ex 60
 *   redis-benchmark -p 6379 -t ping,set,get -P 16 -q
 *
 * Commands: PING [msg], ECHO msg, SET key value [EX s|PX ms] [NX|XX],
 * GET key, DEL key..., EXISTS key..., INCR/DECR key, INCRBY/DECRBY key n,
 * TTL/PTTL key, EXPIRE key s, DBSIZE, QUIT — as RESP arrays or inline
 * ("PING\r\n"). Errors are Redis's ("-ERR wrong number of arguments ...").
 *
 * How it is built:
 *   - one task per connection. It reads what is there, runs every complete
 *     command in the buffer, appends the replies to one output buffer and
 *     writes it with one write; then reads again (pipelining). crt_read
 *     tries the read first and parks only when the socket is drained, so a
 *     request costs one read and one write system call. No allocation per
 *     request: the buffers belong to the connection.
 *   - a store of 64 shards, each a hash table under its own mutex. A plain
 *     pthread mutex is right here: the critical sections are a lookup and a
 *     copy, and never block (never hold one across a crt blocking call).
 *   - expiry: lazily on access, and a background task that samples each
 *     shard every 100 ms and drops what has expired.
 *   - limits: --maxclients connections (a crt_sem; the one over the limit
 *     gets "-ERR max number of clients reached" and is closed); requests up
 *     to --max-bulk per argument and 1M arguments, parsed incrementally
 *     (examples/resp.h) with memory growing only as bytes arrive; replies
 *     are flushed every 64 KiB; --timeout closes idle clients. Malformed
 *     input gets "-ERR Protocol error: ..." and the connection is closed.
 *     A slow or stalled client only ever holds up its own task.
 *   - SIGINT/SIGTERM: stop accepting, give connections 2 s to finish what
 *     they are doing, cancel the rest, exit 0.
 *   - --workers: 1 by default. redis-server is single-threaded; on a small
 *     machine that also runs the clients, one worker avoids cross-thread
 *     wake-ups (measured: see bench/mini_redis.sh). More workers scale with
 *     cores when the clients run elsewhere.
 *
 * CRT_EXAMPLE_SHORT=1 (as `meson test` runs it): serve on a free port, run a
 * self-check client against it (commands, pipelining, expiry, errors,
 * malformed input), then shut down through SIGTERM; exit 0 if all passed.
 */
#define CRT_IMPLEMENTATION
#include "crt.h"
#include "resp.h"

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* >>options ---------------------------------------------------------------- */

typedef struct options {
    int port;
    const char *bind;
    int workers;
    size_t maxclients;
    int timeout_s;      /* idle clients are closed after this (0: never) */
    size_t max_bulk;
    int self_check;     /* CRT_EXAMPLE_SHORT */
} options;

static options opt;

/* >>store ------------------------------------------------------------------ */

#define NSHARDS 64
#define IN_INITIAL 16384
#define OUT_INITIAL 16384
#define OUT_FLUSH 65536
#define MAX_ARGS (1024 * 1024)
#define MAX_INLINE (64 * 1024)

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    crt_time expire;    /* 0: never; else crt_now() deadline */
    uint32_t klen, vlen, vcap;
    char data[];        /* key, then vcap bytes of value */
} entry;

typedef struct shard {
    pthread_mutex_t lock;
    entry **buckets;
    size_t nbuckets;    /* a power of two */
    size_t count;
    size_t cursor;      /* active expiry's position */
    char pad[64];
} shard;

static shard store[NSHARDS];

/* Keys that have an expiry (changed under their shard's lock). While there
 * are none the expiry task sleeps on expiry_wake and arms no timer, so an
 * idle server does not wake up ten times a second. */
static size_t volatile_keys;
static crt_notify expiry_wake;

/* An entry's expiry goes from `was` to `now_` (0: none). */
static void track_expiry(crt_time was, crt_time now_) {
    /* Relaxed: a count; the notify hands the wake-up over. */
    if (!was && now_) {
        if (__atomic_fetch_add(&volatile_keys, 1, __ATOMIC_RELAXED) == 0) crt_notify_one(&expiry_wake);
    } else if (was && !now_) {
        __atomic_fetch_sub(&volatile_keys, 1, __ATOMIC_RELAXED);
    }
}

/* Unlinks and frees the entry *pp. Shard locked. */
static void drop_at(shard *s, entry **pp) {
    entry *e = *pp;
    *pp = e->next;
    track_expiry(e->expire, 0);
    free(e);
    s->count--;
}

static uint64_t hash_key(const char *k, size_t n) {
    uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= UINT64_C(0x100000001b3);
    }
    h ^= h >> 29;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 32;
    return h;
}

static shard *shard_of(uint64_t h) { return &store[h >> 58]; }

static void store_init(void) {
    for (int i = 0; i < NSHARDS; i++) {
        pthread_mutex_init(&store[i].lock, NULL);
        store[i].nbuckets = 64;
        store[i].buckets = (entry **)calloc(store[i].nbuckets, sizeof(entry *));
        if (!store[i].buckets) {
            fprintf(stderr, "mini_redis: out of memory\n");
            exit(1);
        }
    }
}

static void store_free(void) {
    for (int i = 0; i < NSHARDS; i++) {
        shard *s = &store[i];
        for (size_t b = 0; b < s->nbuckets; b++) {
            entry *e = s->buckets[b];
            while (e) {
                entry *n = e->next;
                free(e);
                e = n;
            }
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
}

/* *now is read from the clock the first time an entry with an expiry is
 * met (0: not read yet): most keys have none, and most requests then never
 * read the clock. */
static int expired(const entry *e, crt_time *now) {
    if (e->expire == 0) return 0;
    if (*now == 0) *now = crt_now();
    return e->expire <= *now;
}

/* The link that points at key's entry (or the NULL at the chain's end).
 * Drops an expired entry it meets on the way. Shard locked. */
static entry **find_slot(shard *s, uint64_t h, const char *k, size_t kl, crt_time *now) {
    entry **pp = &s->buckets[h & (s->nbuckets - 1)];
    while (*pp) {
        entry *e = *pp;
        if (e->hash == h && e->klen == kl && memcmp(e->data, k, kl) == 0) {
            if (expired(e, now)) drop_at(s, pp);
            return pp;
        }
        pp = &e->next;
    }
    return pp;
}

static void maybe_grow(shard *s) {
    if (s->count <= s->nbuckets) return;
    size_t nb = s->nbuckets * 2;
    entry **b = (entry **)calloc(nb, sizeof *b);
    if (!b) return; /* longer chains; still correct */
    for (size_t i = 0; i < s->nbuckets; i++) {
        entry *e = s->buckets[i];
        while (e) {
            entry *n = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = n;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

/* Stores value under key at *pp (the slot find_slot gave). 0 or -ENOMEM. */
static int put_at(shard *s, entry **pp, uint64_t h, const char *k, size_t kl, const char *v, size_t vl,
                  crt_time expire) {
    entry *e = *pp;
    if (e && e->vcap >= vl) {
        memcpy(e->data + e->klen, v, vl);
        e->vlen = (uint32_t)vl;
        track_expiry(e->expire, expire);
        e->expire = expire;
        return 0;
    }
    size_t cap = vl < 16 ? 16 : vl;
    entry *n = (entry *)malloc(sizeof *n + kl + cap);
    if (!n) return -ENOMEM;
    n->hash = h;
    n->klen = (uint32_t)kl;
    n->vlen = (uint32_t)vl;
    n->vcap = (uint32_t)cap;
    n->expire = expire;
    memcpy(n->data, k, kl);
    memcpy(n->data + kl, v, vl);
    track_expiry(e ? e->expire : 0, expire);
    if (e) {
        n->next = e->next;
        *pp = n;
        free(e);
    } else {
        n->next = NULL;
        *pp = n;
        s->count++;
        maybe_grow(s);
    }
    return 0;
}

/* Active expiry: a sample of every shard, every 100 ms, while any key has
 * an expiry. */
static void *expiry_task(void *arg) {
    (void)arg;
    for (;;) {
        /* Relaxed: a hint; a SET that makes the first volatile key also
         * notifies, and a notify with nobody waiting is kept for us. */
        if (__atomic_load_n(&volatile_keys, __ATOMIC_RELAXED) == 0) {
            if (crt_notify_wait(&expiry_wake, CRT_FOREVER) < 0) break;
            continue;
        }
        if (crt_sleep(CRT_MS(100)) < 0) break;
        crt_time now = crt_now();
        for (int i = 0; i < NSHARDS; i++) {
            shard *s = &store[i];
            pthread_mutex_lock(&s->lock);
            for (int k = 0; k < 32; k++) {
                s->cursor = (s->cursor + 1) & (s->nbuckets - 1);
                entry **pp = &s->buckets[s->cursor];
                while (*pp) {
                    if (expired(*pp, &now)) drop_at(s, pp);
                    else pp = &(*pp)->next;
                }
            }
            pthread_mutex_unlock(&s->lock);
        }
    }
    return NULL;
}

/* >>replies ----------------------------------------------------------------- */

typedef struct outbuf {
    char *p;
    size_t len, cap;
    int oom;            /* a reply did not fit in memory: close the connection */
} outbuf;

static int out_reserve(outbuf *o, size_t n) {
    if (o->cap - o->len >= n) return 1;
    size_t cap = o->cap * 2;
    while (cap - o->len < n) cap *= 2;
    char *p = (char *)realloc(o->p, cap);
    if (!p) {
        o->oom = 1;
        return 0;
    }
    o->p = p;
    o->cap = cap;
    return 1;
}

static void out_raw(outbuf *o, const char *s, size_t n) {
    if (!out_reserve(o, n)) return;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

#define OUT_LIT(o, s) out_raw((o), s, sizeof(s) - 1)

/* Decimal digits of v into buf (at most 20 + sign); returns the length. */
static size_t fmt_i64(char *buf, long long v) {
    char tmp[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t k = 0;
    if (v < 0) buf[k++] = '-';
    while (n) buf[k++] = tmp[--n];
    return k;
}

static void out_prefixed(outbuf *o, char type, long long v) {
    if (!out_reserve(o, 24)) return;
    char *p = o->p + o->len;
    p[0] = type;
    size_t n = 1 + fmt_i64(p + 1, v);
    p[n] = '\r';
    p[n + 1] = '\n';
    o->len += n + 2;
}

static void out_int(outbuf *o, long long v) { out_prefixed(o, ':', v); }

static void out_bulk(outbuf *o, const char *s, size_t n) {
    if (!out_reserve(o, n + 24)) return;
    out_prefixed(o, '$', (long long)n);
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len++] = '\r';
    o->p[o->len++] = '\n';
}

static void out_err(outbuf *o, const char *msg) {
    OUT_LIT(o, "-");
    out_raw(o, msg, strlen(msg));
    OUT_LIT(o, "\r\n");
}

/* An error naming the command, with its (printable) name copied in. */
static void out_err_cmd(outbuf *o, const char *before, const char *name, size_t nl, const char *after) {
    OUT_LIT(o, "-");
    out_raw(o, before, strlen(before));
    for (size_t i = 0; i < nl && i < 128; i++) {
        char c = name[i];
        if (c == '\r' || c == '\n' || (unsigned char)c < 32) c = ' ';
        out_raw(o, &c, 1);
    }
    out_raw(o, after, strlen(after));
    OUT_LIT(o, "\r\n");
}

static void out_arity(outbuf *o, const char *name) {
    out_err_cmd(o, "ERR wrong number of arguments for '", name, strlen(name), "' command");
}

/* >>commands ---------------------------------------------------------------- */

typedef struct cmd {
    size_t argc;
    const char **argv;
    const size_t *argl;
} cmd;

static int is(const char *a, size_t n, const char *upper) {
    size_t m = strlen(upper);
    if (n != m) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 32);
        if (c != upper[i]) return 0;
    }
    return 1;
}

static int parse_ll(const char *s, size_t n, long long *v) { return resp_parse_int(s, n, v); }

static const char *ERR_NOT_INT = "ERR value is not an integer or out of range";
static const char *ERR_SYNTAX = "ERR syntax error";

static void cmd_get(const cmd *c, outbuf *o) {
    uint64_t h = hash_key(c->argv[1], c->argl[1]);
    shard *s = shard_of(h);
    crt_time now = 0;
    pthread_mutex_lock(&s->lock);
    entry *e = *find_slot(s, h, c->argv[1], c->argl[1], &now);
    if (e) out_bulk(o, e->data + e->klen, e->vlen);
    else OUT_LIT(o, "$-1\r\n");
    pthread_mutex_unlock(&s->lock);
}

static void cmd_set(const cmd *c, outbuf *o) {
    crt_time expire = 0;
    int nx = 0, xx = 0;
    for (size_t i = 3; i < c->argc; i++) {
        const char *a = c->argv[i];
        size_t al = c->argl[i];
        if ((is(a, al, "EX") || is(a, al, "PX")) && i + 1 < c->argc && !expire) {
            long long v;
            if (!parse_ll(c->argv[i + 1], c->argl[i + 1], &v)) {
                out_err(o, ERR_NOT_INT);
                return;
            }
            int ex = is(a, al, "EX");
            if (v <= 0 || v > (ex ? INT64_MAX / 1000000000 : INT64_MAX / 1000000) / 2) {
                out_err(o, "ERR invalid expire time in 'set' command");
                return;
            }
            expire = crt_after(ex ? CRT_SEC(v) : CRT_MS(v));
            i++;
        } else if (is(a, al, "NX") && !xx) {
            nx = 1;
        } else if (is(a, al, "XX") && !nx) {
            xx = 1;
        } else {
            out_err(o, ERR_SYNTAX);
            return;
        }
    }
    if (c->argl[2] > UINT32_MAX / 2 || c->argl[1] > UINT32_MAX / 2) {
        out_err(o, "ERR string exceeds maximum allowed size");
        return;
    }
    uint64_t h = hash_key(c->argv[1], c->argl[1]);
    shard *s = shard_of(h);
    crt_time now = 0;
    pthread_mutex_lock(&s->lock);
    entry **pp = find_slot(s, h, c->argv[1], c->argl[1], &now);
    if ((nx && *pp) || (xx && !*pp)) {
        pthread_mutex_unlock(&s->lock);
        OUT_LIT(o, "$-1\r\n");
        return;
    }
    int r = put_at(s, pp, h, c->argv[1], c->argl[1], c->argv[2], c->argl[2], expire);
    pthread_mutex_unlock(&s->lock);
    if (r < 0) out_err(o, "OOM command not allowed when used memory > 'maxmemory'");
    else OUT_LIT(o, "+OK\r\n");
}

static void cmd_incrby(const cmd *c, outbuf *o, long long by) {
    uint64_t h = hash_key(c->argv[1], c->argl[1]);
    shard *s = shard_of(h);
    crt_time now = 0;
    pthread_mutex_lock(&s->lock);
    entry **pp = find_slot(s, h, c->argv[1], c->argl[1], &now);
    long long v = 0;
    crt_time expire = 0;
    if (*pp) {
        expire = (*pp)->expire;
        if (!parse_ll((*pp)->data + (*pp)->klen, (*pp)->vlen, &v)) {
            pthread_mutex_unlock(&s->lock);
            out_err(o, ERR_NOT_INT);
            return;
        }
    }
    if ((by > 0 && v > LLONG_MAX - by) || (by < 0 && v < LLONG_MIN - by)) {
        pthread_mutex_unlock(&s->lock);
        out_err(o, "ERR increment or decrement would overflow");
        return;
    }
    v += by;
    char num[24];
    size_t n = fmt_i64(num, v);
    int r = put_at(s, pp, h, c->argv[1], c->argl[1], num, n, expire);
    pthread_mutex_unlock(&s->lock);
    if (r < 0) out_err(o, "OOM command not allowed when used memory > 'maxmemory'");
    else out_int(o, v);
}

static long long count_keys(const cmd *c, int del) {
    long long n = 0;
    crt_time now = 0;
    for (size_t i = 1; i < c->argc; i++) {
        uint64_t h = hash_key(c->argv[i], c->argl[i]);
        shard *s = shard_of(h);
        pthread_mutex_lock(&s->lock);
        entry **pp = find_slot(s, h, c->argv[i], c->argl[i], &now);
        if (*pp) {
            n++;
            if (del) drop_at(s, pp);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return n;
}

static void cmd_ttl(const cmd *c, outbuf *o, int ms) {
    uint64_t h = hash_key(c->argv[1], c->argl[1]);
    shard *s = shard_of(h);
    crt_time now = crt_now();
    pthread_mutex_lock(&s->lock);
    entry *e = *find_slot(s, h, c->argv[1], c->argl[1], &now);
    long long r = -2;
    if (e && !e->expire) r = -1;
    else if (e) {
        crt_time left = e->expire - now;
        r = ms ? (long long)((left + CRT_MS(1) / 2) / CRT_MS(1)) : (long long)((left + CRT_SEC(1) / 2) / CRT_SEC(1));
    }
    pthread_mutex_unlock(&s->lock);
    out_int(o, r);
}

static void cmd_expire(const cmd *c, outbuf *o) {
    long long secs;
    if (!parse_ll(c->argv[2], c->argl[2], &secs)) {
        out_err(o, ERR_NOT_INT);
        return;
    }
    if (secs > INT64_MAX / 1000000000 / 2 || secs < -(INT64_MAX / 1000000000 / 2)) {
        out_err(o, "ERR invalid expire time in 'expire' command");
        return;
    }
    uint64_t h = hash_key(c->argv[1], c->argl[1]);
    shard *s = shard_of(h);
    crt_time now = 0;
    pthread_mutex_lock(&s->lock);
    entry **pp = find_slot(s, h, c->argv[1], c->argl[1], &now);
    int r = 0;
    if (*pp) {
        r = 1;
        if (secs <= 0) { /* an expiry in the past deletes the key */
            drop_at(s, pp);
        } else {
            crt_time at = crt_after(CRT_SEC(secs));
            track_expiry((*pp)->expire, at);
            (*pp)->expire = at;
        }
    }
    pthread_mutex_unlock(&s->lock);
    out_int(o, r);
}

static long long dbsize(void) {
    long long n = 0;
    for (int i = 0; i < NSHARDS; i++) {
        pthread_mutex_lock(&store[i].lock);
        n += (long long)store[i].count; /* counts keys not yet found expired */
        pthread_mutex_unlock(&store[i].lock);
    }
    return n;
}

/* Runs one command; its reply goes to o. Returns 0, or 1 for QUIT. */
static int execute(const cmd *c, outbuf *o) {
    const char *name = c->argv[0];
    size_t nl = c->argl[0], n = c->argc;
    switch (nl) {
    case 3:
        if (is(name, nl, "GET")) {
            if (n != 2) out_arity(o, "get");
            else cmd_get(c, o);
            return 0;
        }
        if (is(name, nl, "SET")) {
            if (n < 3) out_arity(o, "set");
            else cmd_set(c, o);
            return 0;
        }
        if (is(name, nl, "DEL")) {
            if (n < 2) out_arity(o, "del");
            else out_int(o, count_keys(c, 1));
            return 0;
        }
        if (is(name, nl, "TTL")) {
            if (n != 2) out_arity(o, "ttl");
            else cmd_ttl(c, o, 0);
            return 0;
        }
        break;
    case 4:
        if (is(name, nl, "PING")) {
            if (n == 1) OUT_LIT(o, "+PONG\r\n");
            else if (n == 2) out_bulk(o, c->argv[1], c->argl[1]);
            else out_arity(o, "ping");
            return 0;
        }
        if (is(name, nl, "ECHO")) {
            if (n != 2) out_arity(o, "echo");
            else out_bulk(o, c->argv[1], c->argl[1]);
            return 0;
        }
        if (is(name, nl, "INCR")) {
            if (n != 2) out_arity(o, "incr");
            else cmd_incrby(c, o, 1);
            return 0;
        }
        if (is(name, nl, "DECR")) {
            if (n != 2) out_arity(o, "decr");
            else cmd_incrby(c, o, -1);
            return 0;
        }
        if (is(name, nl, "PTTL")) {
            if (n != 2) out_arity(o, "pttl");
            else cmd_ttl(c, o, 1);
            return 0;
        }
        if (is(name, nl, "QUIT")) {
            OUT_LIT(o, "+OK\r\n");
            return 1;
        }
        break;
    case 6:
        if (is(name, nl, "EXISTS")) {
            if (n < 2) out_arity(o, "exists");
            else out_int(o, count_keys(c, 0));
            return 0;
        }
        if (is(name, nl, "INCRBY") || is(name, nl, "DECRBY")) {
            long long by;
            if (n != 3) out_arity(o, is(name, nl, "INCRBY") ? "incrby" : "decrby");
            else if (!parse_ll(c->argv[2], c->argl[2], &by) || (is(name, nl, "DECRBY") && by == LLONG_MIN))
                out_err(o, ERR_NOT_INT);
            else cmd_incrby(c, o, is(name, nl, "INCRBY") ? by : -by);
            return 0;
        }
        if (is(name, nl, "EXPIRE")) {
            if (n != 3) out_arity(o, "expire");
            else cmd_expire(c, o);
            return 0;
        }
        if (is(name, nl, "DBSIZE")) {
            if (n != 1) out_arity(o, "dbsize");
            else out_int(o, dbsize());
            return 0;
        }
        break;
    default: break;
    }
    out_err_cmd(o, "ERR unknown command '", name, nl, "'");
    return 0;
}

/* >>connections --------------------------------------------------------------- */

typedef struct server {
    int listener;
    crt_sem slots;       /* --maxclients */
    crt_group conns;
    crt_notify stop;     /* a signal arrived (or the self-check is done) */
} server;

static server srv;

typedef struct conn {
    int fd;
    char *in;
    size_t in_len, in_cap;
    outbuf out;
    resp_parser p;
    const char **argv;   /* the current command's arguments, as pointers */
    size_t argv_cap;
} conn;

/* Writes what the connection has to say. 0, or <0 to give up on it. */
static int conn_flush(conn *c) {
    if (c->out.len == 0) return 0;
    /* Most replies fit in the socket's buffer: try without a deadline
     * first (no clock read); a client that does not read gets 60 s. */
    ssize_t w = crt_write(c->fd, c->out.p, c->out.len, CRT_TRY);
    if (w == -EAGAIN) w = 0;
    if (w >= 0 && (size_t)w < c->out.len) {
        ssize_t rest = crt_write(c->fd, c->out.p + w, c->out.len - (size_t)w, crt_after(CRT_SEC(60)));
        w = rest < 0 ? rest : w + rest;
    }
    c->out.len = 0;
    if (c->out.cap > 4 * OUT_FLUSH) { /* a huge reply: give the memory back */
        char *p = (char *)realloc(c->out.p, OUT_INITIAL);
        if (p) {
            c->out.p = p;
            c->out.cap = OUT_INITIAL;
        }
    }
    return w < 0 ? (int)w : 0;
}

/* Runs the command the parser just completed (at buf). 1: QUIT. */
static int conn_execute(conn *c, const char *buf) {
    resp_parser *p = &c->p;
    if (p->argc > c->argv_cap) {
        size_t cap = c->argv_cap * 2;
        while (cap < p->argc) cap *= 2;
        const char **a = (const char **)realloc((void *)c->argv, cap * sizeof *a);
        if (!a) {
            out_err(&c->out, "OOM command not allowed when used memory > 'maxmemory'");
            return 0;
        }
        c->argv = a;
        c->argv_cap = cap;
    }
    for (size_t i = 0; i < p->argc; i++) c->argv[i] = buf + p->off[i];
    cmd cm;
    cm.argc = p->argc;
    cm.argv = c->argv;
    cm.argl = p->len;
    return execute(&cm, &c->out);
}

static void conn_serve(conn *c) {
    size_t max_req = opt.max_bulk + MAX_INLINE + 64;
    crt_time idle = opt.timeout_s > 0 ? CRT_SEC(opt.timeout_s) : 0;
    for (;;) {
        if (c->in_len == c->in_cap) {
            /* One request is bigger than the buffer: grow it (bounded). */
            size_t cap = c->in_cap * 2, need = resp_need(&c->p, c->in, c->in_len);
            if (cap < need) cap = need;
            if (cap > max_req) cap = max_req;
            char *in = cap > c->in_cap ? (char *)realloc(c->in, cap) : NULL;
            if (!in) {
                out_err(&c->out, "ERR Protocol error: request too large");
                conn_flush(c);
                return;
            }
            c->in = in;
            c->in_cap = cap;
        }
        ssize_t n = crt_read(c->fd, c->in + c->in_len, c->in_cap - c->in_len,
                             idle ? crt_after(idle) : CRT_FOREVER);
        if (n <= 0) return; /* EOF, error, idle timeout, or shutdown (-ECANCELED) */
        c->in_len += (size_t)n;
        size_t start = 0;
        for (;;) {
            int r = resp_parse(&c->p, c->in + start, c->in_len - start);
            if (r == RESP_DONE) {
                int quit = c->p.argc ? conn_execute(c, c->in + start) : 0;
                start += c->p.used;
                resp_next(&c->p);
                if (quit || c->out.oom) {
                    conn_flush(c);
                    return;
                }
                if (c->out.len >= OUT_FLUSH && conn_flush(c) < 0) return;
                continue;
            }
            if (r == RESP_AGAIN) break;
            out_err_cmd(&c->out, "ERR ", r == RESP_NOMEM ? "out of memory" : c->p.err,
                        strlen(r == RESP_NOMEM ? "out of memory" : c->p.err), "");
            conn_flush(c);
            return;
        }
        if (conn_flush(c) < 0) return;
        if (start) {
            c->in_len -= start;
            if (c->in_len) memmove(c->in, c->in + start, c->in_len);
        }
        if (c->in_len == 0 && c->in_cap > 4 * IN_INITIAL) { /* after a huge request */
            char *in = (char *)realloc(c->in, IN_INITIAL);
            if (in) {
                c->in = in;
                c->in_cap = IN_INITIAL;
            }
        }
    }
}

static void *conn_main(void *arg) {
    conn c;
    memset(&c, 0, sizeof c);
    c.fd = (int)(intptr_t)arg;
    resp_limits lim;
    lim.max_bulk = opt.max_bulk;
    lim.max_args = MAX_ARGS;
    lim.max_inline = MAX_INLINE;
    resp_init(&c.p, &lim);
    c.in = (char *)malloc(IN_INITIAL);
    c.out.p = (char *)malloc(OUT_INITIAL);
    c.argv = (const char **)malloc(16 * sizeof *c.argv);
    if (c.in && c.out.p && c.argv) {
        c.in_cap = IN_INITIAL;
        c.out.cap = OUT_INITIAL;
        c.argv_cap = 16;
        conn_serve(&c);
    }
    crt_close(c.fd);
    resp_free(&c.p);
    free(c.in);
    free(c.out.p);
    free((void *)c.argv);
    crt_sem_release(&srv.slots, 1);
    return NULL;
}

static void *acceptor(void *arg) {
    (void)arg;
    for (;;) {
        int fd = crt_tcp_accept(srv.listener, CRT_FOREVER);
        if (fd == -ECANCELED) break;
        if (fd < 0) {
            /* Out of fds, say: back off a little instead of spinning. */
            fprintf(stderr, "mini_redis: accept: %s\n", crt_strerror(fd));
            if (crt_sleep(CRT_MS(100)) < 0) break;
            continue;
        }
        if (crt_sem_acquire(&srv.slots, 1, CRT_TRY) < 0) {
            static const char full[] = "-ERR max number of clients reached\r\n";
            crt_write(fd, full, sizeof full - 1, CRT_TRY);
            crt_close(fd);
            continue;
        }
        if (!crt_group_spawn(&srv.conns, conn_main, (void *)(intptr_t)fd)) {
            crt_close(fd);
            crt_sem_release(&srv.slots, 1);
        }
        /* Collect finished connections (their handles) as we go. */
        while (crt_group_next(&srv.conns, NULL, CRT_TRY) == 0) {
        }
    }
    return NULL;
}

static void *signal_waiter(void *arg) {
    int signo = (int)(intptr_t)arg;
    if (crt_signal_wait(signo, CRT_FOREVER) == 0) {
        fprintf(stderr, "mini_redis: %s, shutting down\n", signo == SIGINT ? "SIGINT" : "SIGTERM");
        crt_notify_one(&srv.stop);
    }
    return NULL;
}

/* >>self-check (CRT_EXAMPLE_SHORT=1) ------------------------------------------ */

static int check_failed;

/* Sends req on fd and checks that exactly `want` comes back. */
static void expect(int fd, const char *req, size_t reqlen, const char *want, size_t wantlen, const char *what) {
    if (reqlen && crt_write(fd, req, reqlen, crt_after(CRT_SEC(5))) != (ssize_t)reqlen) {
        fprintf(stderr, "self-check %s: write failed\n", what);
        check_failed = 1;
        return;
    }
    char got[4096];
    size_t n = 0;
    while (n < wantlen) {
        ssize_t r = crt_read(fd, got + n, wantlen - n, crt_after(CRT_SEC(5)));
        if (r <= 0) break;
        n += (size_t)r;
    }
    if (n != wantlen || memcmp(got, want, wantlen) != 0) {
        fprintf(stderr, "self-check %s: got %zu bytes '%.*s', want '%s'\n", what, n, (int)n, got, want);
        check_failed = 1;
    }
}

#define EXPECT(fd, req, want) expect((fd), req, sizeof(req) - 1, want, sizeof(want) - 1, req)

/* Sends a malformed request and checks the error reply and the close. */
static void expect_close(int port, const char *req, const char *want) {
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    int fd = crt_tcp_connect(addr, crt_after(CRT_SEC(5)));
    if (fd < 0) {
        check_failed = 1;
        return;
    }
    expect(fd, req, strlen(req), want, strlen(want), want);
    char b[16];
    if (crt_read(fd, b, sizeof b, crt_after(CRT_SEC(5))) != 0) {
        fprintf(stderr, "self-check: connection not closed after '%s'\n", want);
        check_failed = 1;
    }
    crt_close(fd);
}

static void *self_check(void *arg) {
    int port = (int)(intptr_t)arg;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    int fd = crt_tcp_connect(addr, crt_after(CRT_SEC(5)));
    if (fd < 0) {
        fprintf(stderr, "self-check: connect: %s\n", crt_strerror(fd));
        check_failed = 1;
    } else {
        EXPECT(fd, "PING\r\n", "+PONG\r\n");
        EXPECT(fd, "*1\r\n$4\r\nping\r\n", "+PONG\r\n");
        EXPECT(fd, "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n", "$5\r\nhello\r\n");
        EXPECT(fd, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n", "+OK\r\n");
        EXPECT(fd, "GET k\r\n", "$2\r\nv1\r\n");
        EXPECT(fd, "GET missing\r\n", "$-1\r\n");
        /* pipelined: one write, the replies in order */
        EXPECT(fd, "SET n 41\r\nINCR n\r\n*2\r\n$3\r\nGET\r\n$1\r\nn\r\nEXISTS n k nope\r\nDEL n k\r\nEXISTS n\r\n",
               "+OK\r\n:42\r\n$2\r\n42\r\n:2\r\n:2\r\n:0\r\n");
        /* errors keep the connection */
        EXPECT(fd, "SET s abc\r\nINCR s\r\n", "+OK\r\n-ERR value is not an integer or out of range\r\n");
        EXPECT(fd, "GET\r\n", "-ERR wrong number of arguments for 'get' command\r\n");
        EXPECT(fd, "FOO bar\r\n", "-ERR unknown command 'FOO'\r\n");
        EXPECT(fd, "SET k v EX 0\r\n", "-ERR invalid expire time in 'set' command\r\n");
        EXPECT(fd, "SET k v BOGUS\r\n", "-ERR syntax error\r\n");
        /* expiry */
        EXPECT(fd, "SET e v PX 500\r\n", "+OK\r\n"); /* roomy: the tests run it under Valgrind too */
        EXPECT(fd, "GET e\r\n", "$1\r\nv\r\n");
        crt_sleep(CRT_MS(700));
        EXPECT(fd, "GET e\r\n", "$-1\r\n");
        EXPECT(fd, "EXISTS e\r\n", ":0\r\n");
        /* a request split into single bytes */
        const char *slow = "*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n";
        for (size_t i = 0; slow[i]; i++) crt_write(fd, slow + i, 1, crt_after(CRT_SEC(5)));
        expect(fd, "", 0, "$3\r\nabc\r\n", 9, "split request");
        EXPECT(fd, "QUIT\r\n", "+OK\r\n");
        crt_close(fd);
    }
    expect_close(port, "*1\r\n$1073741824\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    expect_close(port, "*9999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
    expect_close(port, "*2\r\n$3\r\nGET\r\n+x\r\n", "-ERR Protocol error: expected '$'\r\n");
    expect_close(port, "*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    expect_close(port, "*1\r\n$3\r\nabcXY", "-ERR Protocol error: invalid bulk terminator\r\n");
    fd = crt_tcp_connect(addr, crt_after(CRT_SEC(5)));
    if (fd >= 0) { /* still serving */
        EXPECT(fd, "PING\r\n", "+PONG\r\n");
        crt_close(fd);
    }
    fprintf(stderr, "mini_redis: self-check %s\n", check_failed ? "FAILED" : "passed");
    kill(getpid(), SIGTERM); /* and the shutdown path runs as for a real signal */
    return NULL;
}

/* >>main --------------------------------------------------------------------- */

static void *server_main(void *arg) {
    (void)arg;
    char addr[128];
    snprintf(addr, sizeof addr, strchr(opt.bind, ':') ? "[%s]:%d" : "%s:%d", opt.bind, opt.port);
    srv.listener = crt_tcp_listen(addr, 511);
    if (srv.listener < 0) {
        fprintf(stderr, "mini_redis: listen on %s: %s\n", addr, crt_strerror(srv.listener));
        return (void *)1;
    }
    int port = crt_local_port(srv.listener);
    fprintf(stderr, "mini_redis: listening on %s:%d, %d worker%s\n", opt.bind, port, opt.workers,
            opt.workers == 1 ? "" : "s");
    crt_sem_init(&srv.slots, opt.maxclients);
    crt_group_init(&srv.conns);
    crt_notify_init(&srv.stop);
    crt_notify_init(&expiry_wake);
    crt_task *sig[2] = {crt_spawn(signal_waiter, (void *)(intptr_t)SIGINT),
                        crt_spawn(signal_waiter, (void *)(intptr_t)SIGTERM)};
    crt_task *acc = crt_spawn(acceptor, NULL);
    crt_task *exp = crt_spawn(expiry_task, NULL);
    crt_task *chk = opt.self_check ? crt_spawn(self_check, (void *)(intptr_t)port) : NULL;

    crt_notify_wait(&srv.stop, CRT_FOREVER);

    /* Stop accepting; give the connections 2 s; then cancel the rest. */
    crt_abort(acc);
    crt_join(acc, NULL, CRT_FOREVER);
    crt_close(srv.listener);
    if (crt_group_wait(&srv.conns, crt_after(CRT_SEC(2))) == -ETIMEDOUT)
        fprintf(stderr, "mini_redis: closing the connections still open\n");
    crt_group_destroy(&srv.conns);
    for (int i = 0; i < 2; i++) {
        crt_abort(sig[i]);
        crt_join(sig[i], NULL, CRT_FOREVER);
    }
    crt_abort(exp);
    crt_join(exp, NULL, CRT_FOREVER);
    if (chk) crt_join(chk, NULL, CRT_FOREVER);
    crt_sem_destroy(&srv.slots);
    crt_notify_destroy(&srv.stop);
    crt_notify_destroy(&expiry_wake);
    return NULL;
}

static void usage(void) {
    fprintf(stderr, "usage: mini_redis [--port N] [--bind ADDR] [--workers N] [--maxclients N] [--timeout S] "
                    "[--max-bulk BYTES]\n");
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
    opt.port = 6379;
    opt.bind = "127.0.0.1";
    opt.workers = 1;
    opt.maxclients = 10000;
    opt.max_bulk = 16u << 20;
    const char *s = getenv("CRT_EXAMPLE_SHORT");
    opt.self_check = s && s[0] == '1';
    if (opt.self_check) opt.port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port")) opt.port = (int)arg_num(argc, argv, &i, 0, 65535);
        else if (!strcmp(argv[i], "--bind") && i + 1 < argc) opt.bind = argv[++i];
        else if (!strcmp(argv[i], "--workers")) opt.workers = (int)arg_num(argc, argv, &i, 0, 1024);
        else if (!strcmp(argv[i], "--maxclients")) opt.maxclients = (size_t)arg_num(argc, argv, &i, 1, 10000000);
        else if (!strcmp(argv[i], "--timeout")) opt.timeout_s = (int)arg_num(argc, argv, &i, 0, 86400 * 365);
        else if (!strcmp(argv[i], "--max-bulk")) opt.max_bulk = (size_t)arg_num(argc, argv, &i, 1, 512L << 20);
        else usage();
    }
    if (opt.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        opt.workers = n > 0 ? (int)n : 1;
    }
    /* As many fds as allowed: each client is one. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Install the signal handlers now, before any client can send one. */
    crt_signal_wait(SIGINT, CRT_TRY);
    crt_signal_wait(SIGTERM, CRT_TRY);
    store_init();
    crt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = opt.workers;
    void *res = NULL;
    int r = crt_run(&cfg, server_main, NULL, &res);
    store_free();
    if (r < 0) {
        fprintf(stderr, "mini_redis: %s\n", crt_strerror(r));
        return 1;
    }
    return res != NULL || check_failed ? 1 : 0;
}
