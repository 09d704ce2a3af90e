/* tests/fuzz_resp.c — libFuzzer target for the RESP parser of
 * examples/mini_redis.c (examples/resp.h).
 *
 *   clang -fsanitize=fuzzer,address -Iexamples tests/fuzz_resp.c -o fuzz_resp
 *   ./fuzz_resp -max_total_time=60
 *
 * Each input is parsed twice: once whole, and once fed in pieces the way
 * mini_redis feeds it (the first byte picks the piece sizes; the buffer
 * grows and is compacted between requests). Both must see the same
 * requests with the same arguments and end the same way; every argument
 * must lie inside its request; and an array request must be byte for byte
 * the canonical encoding of the arguments it was parsed into. Small limits
 * make the limit checks reachable.
 *
 * Built with -DFUZZ_RESP_STANDALONE it is an ordinary program (any
 * compiler) that runs fixed cases and a few thousand pseudo-random inputs:
 * the smoke test `meson test` runs everywhere.
 */
#include "resp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAILIF(cond)                                                              \
    do {                                                                          \
        if (cond) {                                                               \
            fprintf(stderr, "fuzz_resp: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* What one parse of an input saw: a hash of every request, and the end. */
typedef struct trace {
    uint64_t hash;
    size_t requests;
    int end;            /* RESP_AGAIN, RESP_ERROR or RESP_NOMEM */
    const char *err;
} trace;

static uint64_t mix(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static const resp_limits limits = {1024, 64, 256};

/* Checks one completed request (at req, p->used bytes) and adds it to t. */
static void take(trace *t, const resp_parser *p, const char *req) {
    FAILIF(p->used == 0);
    FAILIF(p->argc > limits.max_args);
    t->hash = mix(t->hash, &p->argc, sizeof p->argc);
    for (size_t i = 0; i < p->argc; i++) {
        FAILIF(p->off[i] > p->used || p->len[i] > p->used - p->off[i]);
        FAILIF(p->len[i] > limits.max_bulk);
        t->hash = mix(t->hash, &p->len[i], sizeof p->len[i]);
        t->hash = mix(t->hash, req + p->off[i], p->len[i]);
    }
    if (req[0] == '*' && p->argc > 0) {
        /* canonical: *N\r\n then $len\r\n<bytes>\r\n per argument */
        char head[32];
        int n = snprintf(head, sizeof head, "*%zu\r\n", p->argc);
        FAILIF(memcmp(req, head, (size_t)n) != 0);
        size_t pos = (size_t)n;
        for (size_t i = 0; i < p->argc; i++) {
            n = snprintf(head, sizeof head, "$%zu\r\n", p->len[i]);
            FAILIF(pos + (size_t)n > p->used || memcmp(req + pos, head, (size_t)n) != 0);
            pos += (size_t)n;
            FAILIF(p->off[i] != pos);
            pos += p->len[i];
            FAILIF(pos + 2 > p->used || req[pos] != '\r' || req[pos + 1] != '\n');
            pos += 2;
        }
        FAILIF(pos != p->used);
    } else if (req[0] != '*') {
        /* inline: one line; arguments hold no blanks and no line end */
        FAILIF(req[p->used - 1] != '\n');
        for (size_t i = 0; i < p->argc; i++) {
            FAILIF(p->len[i] == 0);
            for (size_t k = 0; k < p->len[i]; k++) {
                char c = req[p->off[i] + k];
                FAILIF(c == ' ' || c == '\t' || c == '\n');
            }
        }
    }
    t->requests++;
}

static void whole(const char *data, size_t size, trace *t) {
    resp_parser p;
    resp_init(&p, &limits);
    memset(t, 0, sizeof *t);
    size_t start = 0;
    for (;;) {
        int r = resp_parse(&p, data + start, size - start);
        if (r != RESP_DONE) {
            t->end = r;
            t->err = p.err;
            break;
        }
        FAILIF(p.used > size - start);
        take(t, &p, data + start);
        start += p.used;
        resp_next(&p);
    }
    resp_free(&p);
}

/* As mini_redis does it: read pieces into a buffer that grows, parse,
 * drop what was used, read on. */
static void pieces(const char *data, size_t size, unsigned char how, trace *t) {
    resp_parser p;
    resp_init(&p, &limits);
    memset(t, 0, sizeof *t);
    size_t cap = 16, len = 0, fed = 0;
    char *buf = (char *)malloc(cap);
    FAILIF(!buf);
    uint32_t rng = how * 2654435761u + 1;
    int r = RESP_AGAIN;
    while (fed < size) {
        rng = rng * 1103515245u + 12345u;
        size_t piece = 1 + (rng >> 16) % ((how & 3) == 0 ? 1 : (how & 3) == 1 ? 7 : (how & 3) == 2 ? 64 : 4096);
        if (piece > size - fed) piece = size - fed;
        if (cap - len < piece) {
            while (cap - len < piece) cap *= 2;
            buf = (char *)realloc(buf, cap);
            FAILIF(!buf);
        }
        memcpy(buf + len, data + fed, piece);
        len += piece;
        fed += piece;
        size_t start = 0;
        for (;;) {
            r = resp_parse(&p, buf + start, len - start);
            if (r != RESP_DONE) break;
            FAILIF(p.used > len - start);
            take(t, &p, buf + start);
            start += p.used;
            resp_next(&p);
        }
        if (start) {
            memmove(buf, buf + start, len - start);
            len -= start;
        }
        if (r != RESP_AGAIN) break;
    }
    t->end = r;
    t->err = r == RESP_ERROR ? p.err : NULL;
    free(buf);
    resp_free(&p);
}

static void check(const char *in, size_t n, unsigned char how) {
    trace a, b;
    whole(in, n, &a);
    pieces(in, n, how, &b);
    if (n == 0) FAILIF(a.end != RESP_AGAIN || a.requests != 0);
    FAILIF(a.requests != b.requests);
    FAILIF(a.hash != b.hash);
    FAILIF(a.end != b.end);
    if (a.end == RESP_ERROR) FAILIF(!a.err || !b.err || strcmp(a.err, b.err) != 0);
}

/* Pieces of RESP: an input read as a list of them reaches the parser's
 * deeper states far sooner than raw bytes do. */
static const char *const frags[] = {"*", "$", "\r\n", "\r", "\n", "0", "1", "2", "3", "-1", "10", "1024", "1025",
                                    "99999999999", " ", "\t", "PING", "SET", "k", "v", "*1\r\n$4\r\nPING\r\n",
                                    "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "\x00", "\xff", "*3\r\n", "$3\r\n", "abc",
                                    "64", "65", "256", "-", "+", "*0\r\n", "*-1\r\n", "$0\r\n\r\n"};
#define NFRAGS (sizeof frags / sizeof frags[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    unsigned char how = data[0];
    check((const char *)data + 1, size - 1, how);
    /* The same bytes as fragment numbers (a byte >= 0xf0 is itself). */
    static char built[16384];
    size_t n = 0;
    for (size_t i = 1; i < size; i++) {
        const char *f;
        size_t fl;
        char raw = (char)data[i];
        if (data[i] >= 0xf0) {
            f = &raw;
            fl = 1;
        } else {
            f = frags[data[i] % NFRAGS];
            fl = f[0] ? strlen(f) : 1; /* the "\x00" fragment is one NUL */
        }
        if (n + fl > sizeof built) break;
        memcpy(built + n, f, fl);
        n += fl;
    }
    check(built, n, (unsigned char)(how + 1));
    return 0;
}

#ifdef FUZZ_RESP_STANDALONE
/* Fixed cases (expected outcome) and pseudo-random inputs built from RESP
 * fragments, each through LLVMFuzzerTestOneInput with several chunkings. */
static void expect(const char *in, size_t requests, int end) {
    trace t;
    whole(in, strlen(in), &t);
    if (t.requests != requests || t.end != end) {
        fprintf(stderr, "fuzz_resp: '%s': %zu requests, end %d (want %zu, %d)\n", in, t.requests, t.end, requests, end);
        abort();
    }
    for (unsigned how = 0; how < 8; how++) {
        size_t n = strlen(in);
        uint8_t *d = (uint8_t *)malloc(n + 1);
        d[0] = (uint8_t)how;
        memcpy(d + 1, in, n);
        LLVMFuzzerTestOneInput(d, n + 1);
        free(d);
    }
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 20000;
    expect("", 0, RESP_AGAIN);
    expect("PING\r\n", 1, RESP_AGAIN);
    expect("PING\n\r\nSET a b\r\n", 3, RESP_AGAIN);
    expect("*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 2, RESP_AGAIN);
    expect("*0\r\n*-1\r\n", 2, RESP_AGAIN);
    expect("*2\r\n$3\r\nGET\r\n", 0, RESP_AGAIN);
    expect("*1\r\n$1073741824\r\n", 0, RESP_ERROR);
    expect("*1\r\n$1025\r\n", 0, RESP_ERROR);
    expect("*1\r\n$1024\r\n", 0, RESP_AGAIN);
    expect("*65\r\n", 0, RESP_ERROR);
    expect("*64\r\n", 0, RESP_AGAIN);
    expect("*9999999999999999999999\r\n", 0, RESP_ERROR);
    expect("*01\r\n", 0, RESP_ERROR);
    expect("*1\r\n+x\r\n", 0, RESP_ERROR);
    expect("*1\r\n$-1\r\n", 0, RESP_ERROR);
    expect("*1\r\n$3\r\nabcde", 0, RESP_ERROR);
    expect("*1\rX", 0, RESP_ERROR);
    expect("*1111111111111111111111111111111111111111", 0, RESP_ERROR);
    char big[400];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect(big, 0, RESP_ERROR); /* inline longer than 256 without a newline */

    const size_t nfrags = NFRAGS;
    uint64_t s = 88172645463325252ull;
    uint8_t buf[2048];
    for (long it = 0; it < iters; it++) {
        size_t n = 1;
        buf[0] = (uint8_t)it;
        int parts = 1 + (int)(it % 40);
        for (int k = 0; k < parts; k++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            const char *f = frags[s % nfrags];
            size_t fl = f[0] ? strlen(f) : 1; /* the "\x00" fragment is one NUL */
            if (n + fl > sizeof buf) break;
            memcpy(buf + n, f, fl);
            n += fl;
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    fprintf(stderr, "fuzz_resp: %ld inputs, ok\n", iters);
    return 0;
}
#endif
