/* crt/case.h — internal: the case type that crt_select (crt/select.h)
 * waits on, shared by every component that offers a CRT_CASE_*.
 *
 * A case is a small value: which operation (its ops table), the object,
 * a buffer and a number. Each component defines its ops in its own
 * implementation and a CRT_CASE_* constructor beside its API, so a case
 * exists exactly when its component is visible, and select needs to know
 * nothing about channels, semaphores or sockets.
 *
 * How select drives a case (see crt/select.h):
 *   try    complete it now if that needs no waiting (1), else 0;
 *   arm    put the select's wait node on the object's queue — or, if it
 *          became ready meanwhile, return 1 and enqueue nothing;
 *   disarm take the node off again if it is still linked;
 *   finish the waiter was claimed through this case's node with `result`:
 *          the winner may have done the operation already (a hand-off),
 *          or only said "ready, try again" — return 1 if the case is now
 *          complete, 0 to make select go round again.
 * Exactly one case completes because a winner must claim the select's one
 * waiter before it touches the case's buffer.
 */
#ifndef CRT_CASE_H
#define CRT_CASE_H
#include "base.h"
#include "waiter.h"

#ifdef __cplusplus
extern "C" {
#endif

struct crt_case;
typedef struct crt__case_ops {
    int (*try_now)(struct crt_case *c);
    int (*arm)(struct crt_case *c, crt__wait_node *node);
    void (*disarm)(struct crt_case *c, crt__wait_node *node);
    int (*finish)(struct crt_case *c, crt__wait_node *node, int result);
} crt__case_ops;

/* One operation for crt_select. Build it with a CRT_CASE_* constructor. */
typedef struct crt_case {
    const crt__case_ops *ops;
    void *obj;          /* the channel, semaphore, task, ... */
    void *ptr;          /* buffer in or out, or a pointer result */
    uint64_t arg;       /* a count, an fd and events, ... */
    int result;         /* the completed case's own return code */
    int reserved;
} crt_case;

static inline crt_case crt__case_make(const crt__case_ops *ops, void *obj, void *ptr, uint64_t arg) {
    crt_case c;
    c.ops = ops;
    c.obj = obj;
    c.ptr = ptr;
    c.arg = arg;
    c.result = 0;
    c.reserved = 0;
    return c;
}

#ifdef __cplusplus
}
#endif

/* Result a winner writes to say "ready: try the operation again". */
#define CRT__RETRY 1

#endif /* CRT_CASE_H */
