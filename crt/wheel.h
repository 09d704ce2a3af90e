/* crt/wheel.h — internal: the timing wheel that holds a worker's deadlines.
 *
 * Hierarchical, like the Linux kernel's timer wheel and tokio's: level 0
 * has 4,096 slots of 2^14 ns (16.4 µs; 67 ms in all), every higher level
 * 64 slots, each as long as the whole level below it; eight levels reach
 * past 2^63 ns. A timer sits in the slot of the lowest level whose span
 * still tells its deadline apart from the wheel's position (`elapsed`):
 * the highest bit in which the two differ picks the level, the deadline's
 * digit there the slot. When `elapsed` reaches a higher-level slot, its
 * timers move down a level or more (a cascade); a sleep shorter than
 * 67 ms usually lands in level 0 directly and never moves.
 *
 * Why a wheel: arming, cancelling and firing are O(1), and none of them
 * touches another timer's waiter. Waiters live on their tasks' stacks,
 * each on a page of its own, and with 100,000 sleepers (W7) those pages
 * are cold: the 4-ary heap this replaced wrote each moved entry's new
 * position back into its waiter, a dozen cold pages per pop, and that was
 * a quarter of the run. So the wheel keeps what it needs — deadline, list
 * links, slot — in cells of its own, a dense array indexed by number, and
 * a timer only remembers its cell. Slot lists are doubly linked FIFOs of
 * cell numbers; a bitmap of non-empty slots finds the next one.
 *
 * When timers fire: a level-0 slot fires as a whole once its end has
 * passed, so a deadline fires up to 16.4 µs late and never early, and a
 * burst is taken without comparing deadlines. With `exact` (the paused
 * clock, crt_time_advance) the slot that holds `now` is searched as well,
 * so a paused clock can jump exactly to a deadline and fire it.
 *
 * Firing takes a cell out of its slot but keeps it (slot NIL) until the
 * firer is done with the timer and releases it, so a canceller can tell
 * "still armed" from "being fired" by the cell alone, without the firer
 * writing to the timer's cold page under the lock.
 *
 * Cells never run out: the runtime grows every wheel's cells with its task
 * records (a task arms at most one timer at a time), so arming never
 * allocates. Not thread-safe: the runtime holds a per-worker lock around
 * every call.
 */
#ifndef CRT_WHEEL_H
#define CRT_WHEEL_H
#include "base.h"
#endif /* CRT_WHEEL_H */

#if defined(CRT_IMPLEMENTATION) && !defined(CRT__WHEEL_IMPL)
#define CRT__WHEEL_IMPL

#include "waiter.h"
#include <string.h>

#define CRT__WHEEL_SHIFT0 14u   /* level 0 slot: 2^14 ns */
#define CRT__WHEEL_BITS0 12u    /* level 0: 4,096 slots */
#define CRT__WHEEL_BITS 6u      /* levels 1..: 64 slots each */
#define CRT__WHEEL_LEVELS 8u
#define CRT__WHEEL_TOP0 (CRT__WHEEL_SHIFT0 + CRT__WHEEL_BITS0) /* first bit above level 0 */
#define CRT__WHEEL_SLOTS0 (1u << CRT__WHEEL_BITS0)
#define CRT__WHEEL_NSLOTS (CRT__WHEEL_SLOTS0 + (CRT__WHEEL_LEVELS - 1) * 64u)
#define CRT__WHEEL_WORDS (CRT__WHEEL_NSLOTS / 64u)
#define CRT__WHEEL_SLOT_NS ((crt_time)1 << CRT__WHEEL_SHIFT0)
#define CRT__WHEEL_NIL UINT32_MAX

typedef char crt__wheel_bits_check[CRT__WHEEL_TOP0 + (CRT__WHEEL_LEVELS - 1) * CRT__WHEEL_BITS >= 63 ? 1 : -1];

typedef struct crt__wheel_cell {
    crt_time deadline;
    crt__timer *timer;          /* the timer it stands for */
    uint32_t next, prev;        /* its slot's list; next also links free cells */
    uint32_t slot;              /* CRT__WHEEL_NIL: taken out to fire */
    uint32_t unused;
} crt__wheel_cell;

typedef struct crt__wheel {
    crt_time elapsed;                       /* its position: never ahead of the clock */
    uint64_t count;                         /* timers in it */
    crt__wheel_cell *cells;
    uint32_t cap;                           /* cells allocated */
    uint32_t used;                          /* cells ever handed out; the rest are fresh */
    uint32_t free_head;                     /* freed cells */
    uint64_t occupied[CRT__WHEEL_WORDS];    /* bit per slot: its list is not empty */
    uint32_t head[CRT__WHEEL_NSLOTS];       /* level 0's 4,096, then 64 per level */
    uint32_t tail[CRT__WHEEL_NSLOTS];
} crt__wheel;

static inline unsigned crt__wheel_shift(unsigned level) {
    return level == 0 ? CRT__WHEEL_SHIFT0 : CRT__WHEEL_TOP0 + (level - 1) * CRT__WHEEL_BITS;
}

static inline unsigned crt__wheel_top(unsigned level) {
    return level == 0 ? CRT__WHEEL_TOP0 : CRT__WHEEL_TOP0 + level * CRT__WHEEL_BITS;
}

/* A level's first slot in head[], tail[] and occupied[]. */
static inline unsigned crt__wheel_base(unsigned level) {
    return level == 0 ? 0u : CRT__WHEEL_SLOTS0 + (level - 1) * 64u;
}

static inline unsigned crt__wheel_digit(unsigned level, crt_time t) {
    uint64_t mask = level == 0 ? CRT__WHEEL_SLOTS0 - 1u : 63u;
    return (unsigned)(((uint64_t)t >> crt__wheel_shift(level)) & mask);
}

/* Where a level's slot `digit` begins, in the rotation `elapsed` is in. */
static inline crt_time crt__wheel_slot_start(const crt__wheel *w, unsigned level, unsigned digit) {
    unsigned top = crt__wheel_top(level);
    uint64_t above = top >= 64 ? 0 : ((uint64_t)w->elapsed >> top) << top;
    return (crt_time)(above | ((uint64_t)digit << crt__wheel_shift(level)));
}

/* An empty wheel at `now`, without cells yet (crt__wheel_grow). */
CRT__INTERN void crt__wheel_init(crt__wheel *w, crt_time now) {
    memset(w, 0, sizeof *w);
    memset(w->head, 0xff, sizeof w->head); /* CRT__WHEEL_NIL */
    memset(w->tail, 0xff, sizeof w->tail);
    w->free_head = CRT__WHEEL_NIL;
    w->elapsed = now;
}

/* Moves the cells into `cells` (room for cap, more than now) and returns
 * the old array for the caller to free. Cells are named by number, so the
 * timers that use them need no update. */
CRT__INTERN crt__wheel_cell *crt__wheel_grow(crt__wheel *w, crt__wheel_cell *cells, uint32_t cap) {
    crt__wheel_cell *old = w->cells;
    if (w->used) memcpy(cells, old, (size_t)w->used * sizeof *cells);
    w->cells = cells;
    w->cap = cap;
    return old;
}

static inline void crt__wheel_link(crt__wheel *w, uint32_t id, unsigned slot) {
    crt__wheel_cell *c = &w->cells[id];
    c->slot = slot;
    c->next = CRT__WHEEL_NIL;
    c->prev = w->tail[slot];
    if (c->prev != CRT__WHEEL_NIL) w->cells[c->prev].next = id;
    else w->head[slot] = id;
    w->tail[slot] = id;
    w->occupied[slot / 64] |= UINT64_C(1) << (slot % 64);
}

static inline void crt__wheel_unlink(crt__wheel *w, uint32_t id) {
    crt__wheel_cell *c = &w->cells[id];
    unsigned slot = c->slot;
    if (c->prev != CRT__WHEEL_NIL) w->cells[c->prev].next = c->next;
    else w->head[slot] = c->next;
    if (c->next != CRT__WHEEL_NIL) w->cells[c->next].prev = c->prev;
    else w->tail[slot] = c->prev;
    if (w->head[slot] == CRT__WHEEL_NIL) w->occupied[slot / 64] &= ~(UINT64_C(1) << (slot % 64));
}

/* Files a cell by its deadline against the current position. A deadline
 * already behind `elapsed` goes into the current level-0 slot, which fires
 * at the next look. */
static inline void crt__wheel_place(crt__wheel *w, uint32_t id) {
    crt_time d = w->cells[id].deadline;
    if (d < w->elapsed) d = w->elapsed;
    uint64_t differ = ((uint64_t)d ^ (uint64_t)w->elapsed) >> CRT__WHEEL_TOP0;
    unsigned level = differ ? 1u + (unsigned)(63 - __builtin_clzll(differ)) / CRT__WHEEL_BITS : 0u;
    crt__wheel_link(w, id, crt__wheel_base(level) + crt__wheel_digit(level, d));
}

/* Adds t with `deadline`; `now` is the clock as the caller read it: an
 * empty wheel moves up to it first, so a timer armed after a quiet spell
 * does not cascade down through levels it never needed. There is a free
 * cell (see the top of the file). */
CRT__INTERN void crt__wheel_insert(crt__wheel *w, crt__timer *t, crt_time deadline, crt_time now) {
    uint32_t id = w->free_head;
    if (id != CRT__WHEEL_NIL) {
        w->free_head = w->cells[id].next;
    } else {
        CRT_ASSERT(w->used < w->cap, "crt: timing wheel out of cells: more armed timers than tasks");
        id = w->used++;
    }
    if (w->count++ == 0 && now > w->elapsed) w->elapsed = now;
    w->cells[id].deadline = deadline;
    w->cells[id].timer = t;
    t->cell = id;
    crt__wheel_place(w, id);
}

/* Frees a cell that crt__wheel_pop_due took out. */
CRT__INTERN void crt__wheel_release(crt__wheel *w, uint32_t id) {
    w->cells[id].next = w->free_head;
    w->free_head = id;
}

/* Takes t out if it is still in a slot and returns 1; 0 if it was taken
 * out to fire and not yet released. */
CRT__INTERN int crt__wheel_remove(crt__wheel *w, crt__timer *t) {
    if (w->cells[t->cell].slot == CRT__WHEEL_NIL) return 0;
    crt__wheel_unlink(w, t->cell);
    w->count--;
    crt__wheel_release(w, t->cell);
    return 1;
}

/* The first non-empty slot at or after the position: its level and digit.
 * Lower levels come first: all of a higher level's pending slots lie
 * beyond the rotation the levels below are in. 0 if the wheel is empty. */
CRT__INTERN int crt__wheel_first(const crt__wheel *w, unsigned *level, unsigned *digit) {
    if (w->count == 0) return 0;
    unsigned d0 = crt__wheel_digit(0, w->elapsed);
    for (unsigned i = d0 / 64; i < CRT__WHEEL_SLOTS0 / 64; i++) {
        uint64_t bits = w->occupied[i];
        if (i == d0 / 64) bits &= ~UINT64_C(0) << (d0 % 64);
        if (bits) {
            *level = 0;
            *digit = i * 64 + (unsigned)__builtin_ctzll(bits);
            return 1;
        }
    }
    for (unsigned l = 1; l < CRT__WHEEL_LEVELS; l++) {
        uint64_t bits = w->occupied[crt__wheel_base(l) / 64] & (~UINT64_C(0) << crt__wheel_digit(l, w->elapsed));
        if (bits) {
            *level = l;
            *digit = (unsigned)__builtin_ctzll(bits);
            return 1;
        }
    }
    CRT_ASSERT(0, "crt: timing wheel lost track of its timers");
    return 0;
}

/* Moves the position to the start of a higher-level slot and files its
 * cells again: each lands on a lower level. */
CRT__INTERN void crt__wheel_cascade(crt__wheel *w, unsigned level, unsigned digit, crt_time start) {
    unsigned slot = crt__wheel_base(level) + digit;
    uint32_t id = w->head[slot];
    w->head[slot] = w->tail[slot] = CRT__WHEEL_NIL;
    w->occupied[slot / 64] &= ~(UINT64_C(1) << (slot % 64));
    w->elapsed = start;
    while (id != CRT__WHEEL_NIL) {
        uint32_t next = w->cells[id].next;
        crt__wheel_place(w, id);
        id = next;
    }
}

/* Takes one timer that is due at `now` out of its slot and returns its
 * cell (release it with crt__wheel_release once done with the timer), or
 * CRT__WHEEL_NIL when none is due (see the top of the file for when). */
CRT__INTERN uint32_t crt__wheel_pop_due(crt__wheel *w, crt_time now, int exact) {
    unsigned level, digit;
    while (crt__wheel_first(w, &level, &digit)) {
        crt_time start = crt__wheel_slot_start(w, level, digit);
        if (start > now) return CRT__WHEEL_NIL;
        if (level > 0) {
            crt__wheel_cascade(w, level, digit, start);
            continue;
        }
        w->elapsed = start;
        uint32_t id = w->head[digit];
        if (start + CRT__WHEEL_SLOT_NS > now) {
            /* `now` is inside this slot: only an exact look fires here. */
            if (!exact) return CRT__WHEEL_NIL;
            while (id != CRT__WHEEL_NIL && w->cells[id].deadline > now) id = w->cells[id].next;
            if (id == CRT__WHEEL_NIL) return CRT__WHEEL_NIL;
        }
        crt__wheel_unlink(w, id);
        w->cells[id].slot = CRT__WHEEL_NIL;
        w->count--;
        return id;
    }
    return CRT__WHEEL_NIL;
}

/* The earliest deadline in the wheel, exactly; CRT_FOREVER if empty. */
CRT__INTERN crt_time crt__wheel_next_exact(const crt__wheel *w) {
    unsigned level, digit;
    if (!crt__wheel_first(w, &level, &digit)) return CRT_FOREVER;
    crt_time best = CRT_FOREVER;
    for (uint32_t id = w->head[crt__wheel_base(level) + digit]; id != CRT__WHEEL_NIL; id = w->cells[id].next)
        if (w->cells[id].deadline < best) best = w->cells[id].deadline;
    return best;
}

/* When crt__wheel_pop_due(w, now, 0) next has something to do (fire or
 * cascade): the end of the first level-0 slot, or the start of the first
 * higher slot. With `exact`, the earliest deadline. CRT_FOREVER if empty. */
CRT__INTERN crt_time crt__wheel_next_due(const crt__wheel *w, int exact) {
    unsigned level, digit;
    if (exact) return crt__wheel_next_exact(w);
    if (!crt__wheel_first(w, &level, &digit)) return CRT_FOREVER;
    crt_time start = crt__wheel_slot_start(w, level, digit);
    return level == 0 ? start + CRT__WHEEL_SLOT_NS : start;
}

#endif /* CRT_IMPLEMENTATION */
