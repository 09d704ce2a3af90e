/* examples/resp.h — an incremental RESP2 request parser, shared by
 * examples/mini_redis.c and the fuzz target tests/fuzz_resp.c.
 *
 * A request is either an array of bulk strings
 *     *2\r\n$3\r\nGET\r\n$3\r\nkey\r\n
 * or an inline command: one line of words separated by spaces or tabs
 *     PING\r\n
 * (what redis-benchmark's PING_INLINE and a telnet user send).
 *
 *   resp_parser p;
 *   resp_init(&p, &limits);
 *   for (;;) {
 *       int r = resp_parse(&p, buf + start, len - start);
 *       if (r == RESP_DONE) { run(buf + start, &p); start += p.used; resp_next(&p); continue; }
 *       if (r == RESP_AGAIN) break;        // read more, call again with the same start
 *       reply_error(p.err); close();       // RESP_ERROR (p.err) or RESP_NOMEM
 *   }
 *   resp_free(&p);
 *
 * The parser remembers how far it got in the current request, so a
 * request that arrives in many pieces is scanned once, not once per piece.
 * It stores argument positions as offsets from the request's first byte
 * (p.off[i], p.len[i]): the caller may move or grow its buffer between
 * calls as long as the request's bytes move with it.
 *
 * Memory is bounded by the limits, and grows only with bytes that actually
 * arrived: a declared count or length is checked against its limit, never
 * allocated up front ("*1000000000" and "$1073741824" are errors at once).
 */
#ifndef EXAMPLES_RESP_H
#define EXAMPLES_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { RESP_AGAIN = 0, RESP_DONE = 1, RESP_ERROR = -1, RESP_NOMEM = -2 };

typedef struct resp_limits {
    size_t max_bulk;   /* longest argument (redis: proto-max-bulk-len) */
    size_t max_args;   /* most arguments in one array request */
    size_t max_inline; /* longest inline request, and longest header line */
} resp_limits;

typedef struct resp_parser {
    resp_limits lim;
    /* the request being parsed (offsets from its first byte) */
    size_t pos;        /* bytes of it consumed so far */
    long long nargs;   /* array: arguments announced; -1: header not read yet */
    size_t argc;       /* arguments complete so far */
    size_t cap;        /* room in off/len */
    size_t *off, *len;
    size_t used;       /* RESP_DONE: the request's length in bytes */
    const char *err;   /* RESP_ERROR: what was wrong (a static string) */
} resp_parser;

static inline void resp_init(resp_parser *p, const resp_limits *lim) {
    memset(p, 0, sizeof *p);
    p->lim = *lim;
    p->nargs = -1;
}

/* Starts the next request (after RESP_DONE, or to drop the current one). */
static inline void resp_next(resp_parser *p) {
    p->pos = 0;
    p->nargs = -1;
    p->argc = 0;
    p->used = 0;
    p->err = NULL;
}

static inline void resp_free(resp_parser *p) {
    free(p->off);
    free(p->len);
    p->off = p->len = NULL;
    p->cap = 0;
}

/* Strict decimal integer (an optional '-', no '+', no leading zeros except
 * "0", fits int64). 1 on success. */
static inline int resp_parse_int(const char *s, size_t n, long long *out) {
    int neg = 0;
    if (n > 0 && s[0] == '-') {
        neg = 1;
        s++;
        n--;
    }
    if (n == 0 || n > 19) return 0;
    if (s[0] == '0' && (n > 1 || neg)) return 0;
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (!neg && v > (unsigned long long)INT64_MAX) return 0;
    if (neg && v > (unsigned long long)INT64_MAX + 1) return 0;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 1;
}

static inline int resp_push_arg(resp_parser *p, size_t off, size_t len) {
    if (p->argc == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        if (cap > p->lim.max_args) cap = p->lim.max_args;
        if (cap <= p->argc) return 0;
        size_t *o = (size_t *)realloc(p->off, cap * sizeof *o);
        if (!o) return 0;
        p->off = o;
        size_t *l = (size_t *)realloc(p->len, cap * sizeof *l);
        if (!l) return 0;
        p->len = l;
        p->cap = cap;
    }
    p->off[p->argc] = off;
    p->len[p->argc] = len;
    p->argc++;
    return 1;
}

/* The '\r' of the first "\r\n" in buf[from, len) no further than `limit`
 * bytes from `from`: its index; -1 not there yet; -2 too long or a '\r'
 * not followed by '\n'. */
static inline long long resp_find_crlf(const char *buf, size_t len, size_t from, size_t limit) {
    size_t end = len;
    if (end - from > limit + 2) end = from + limit + 2;
    const char *cr = (const char *)memchr(buf + from, '\r', end - from);
    if (!cr) return len - from > limit + 1 ? -2 : -1;
    size_t i = (size_t)(cr - buf);
    if (i + 1 >= len) return -1;
    if (buf[i + 1] != '\n') return -2;
    if (i - from > limit) return -2;
    return (long long)i;
}

static inline int resp_error(resp_parser *p, const char *msg) {
    p->err = msg;
    return RESP_ERROR;
}

static inline int resp_parse_inline(resp_parser *p, const char *buf, size_t len) {
    /* p->pos: how far we already looked for the newline */
    size_t end = len;
    if (end > p->lim.max_inline + 1) end = p->lim.max_inline + 1;
    const char *nl = p->pos < end ? (const char *)memchr(buf + p->pos, '\n', end - p->pos) : NULL;
    if (!nl) {
        if (len > p->lim.max_inline) return resp_error(p, "Protocol error: too big inline request");
        p->pos = len;
        return RESP_AGAIN;
    }
    size_t n = (size_t)(nl - buf), e = n;
    if (e > 0 && buf[e - 1] == '\r') e--;
    p->argc = 0;
    size_t i = 0;
    while (i < e) {
        while (i < e && (buf[i] == ' ' || buf[i] == '\t')) i++;
        size_t s = i;
        while (i < e && buf[i] != ' ' && buf[i] != '\t') i++;
        if (i > s) {
            if (p->argc == p->lim.max_args) return resp_error(p, "Protocol error: too many arguments");
            if (!resp_push_arg(p, s, i - s)) return RESP_NOMEM;
        }
    }
    p->used = n + 1;
    return RESP_DONE;
}

/* Parses (more of) the request that starts at buf[0]; len bytes are there.
 * Returns RESP_DONE (p->argc arguments at buf + p->off[i], p->len[i];
 * p->used bytes; an empty request, argc 0, is possible: skip it),
 * RESP_AGAIN (need more bytes: call again with the same buf start and a
 * larger len), RESP_ERROR (p->err says why; the stream is unusable), or
 * RESP_NOMEM. */
static inline int resp_parse(resp_parser *p, const char *buf, size_t len) {
    if (len == 0) return RESP_AGAIN;
    if (buf[0] != '*') return resp_parse_inline(p, buf, len);
    if (p->nargs < 0) {
        long long le = resp_find_crlf(buf, len, 1, 32);
        if (le == -1) return RESP_AGAIN;
        if (le == -2) return resp_error(p, "Protocol error: too big mbulk count string");
        long long n;
        if (!resp_parse_int(buf + 1, (size_t)le - 1, &n) || n > (long long)p->lim.max_args)
            return resp_error(p, "Protocol error: invalid multibulk length");
        p->pos = (size_t)le + 2;
        p->argc = 0;
        if (n <= 0) { /* "*0" and "*-1": an empty request */
            p->used = p->pos;
            return RESP_DONE;
        }
        p->nargs = n;
    }
    while (p->argc < (size_t)p->nargs) {
        size_t pos = p->pos;
        if (pos >= len) return RESP_AGAIN;
        if (buf[pos] != '$') return resp_error(p, "Protocol error: expected '$'");
        long long le = resp_find_crlf(buf, len, pos + 1, 32);
        if (le == -1) return RESP_AGAIN;
        if (le == -2) return resp_error(p, "Protocol error: too big bulk count string");
        long long bl;
        if (!resp_parse_int(buf + pos + 1, (size_t)le - pos - 1, &bl) || bl < 0 ||
            (unsigned long long)bl > p->lim.max_bulk)
            return resp_error(p, "Protocol error: invalid bulk length");
        size_t start = (size_t)le + 2;
        if (len - start < (size_t)bl + 2 || start > len) return RESP_AGAIN;
        if (buf[start + (size_t)bl] != '\r' || buf[start + (size_t)bl + 1] != '\n')
            return resp_error(p, "Protocol error: invalid bulk terminator");
        if (!resp_push_arg(p, start, (size_t)bl)) return RESP_NOMEM;
        p->pos = start + (size_t)bl + 2;
    }
    p->used = p->pos;
    return RESP_DONE;
}

/* Bytes the current request needs at least (a hint for growing a buffer):
 * what it has plus the rest of a bulk whose header was read. */
static inline size_t resp_need(const resp_parser *p, const char *buf, size_t len) {
    if (len == 0 || buf[0] != '*' || p->nargs < 0 || p->pos >= len || buf[p->pos] != '$') return len + 1;
    long long le = resp_find_crlf(buf, len, p->pos + 1, 32);
    long long bl;
    if (le < 0 || !resp_parse_int(buf + p->pos + 1, (size_t)le - p->pos - 1, &bl) || bl < 0) return len + 1;
    return (size_t)le + 2 + (size_t)bl + 2;
}

#endif /* EXAMPLES_RESP_H */
