/* Sees everything but NET and GROUP. */
#define CRT_NO_NET
#define CRT_NO_GROUP
#include "crt.h"

#if defined(CRT_NET_H) || defined(CRT_GROUP_H)
#error "CRT_NO_NET and CRT_NO_GROUP must hide crt/net.h and crt/group.h"
#endif
#if !defined(CRT_SEM_H) || !defined(CRT_SELECT_H) || !defined(CRT_CHAN_H)
#error "the other components must stay visible"
#endif

int features_sem_and_select(void) {
    crt_sem s;
    crt_sem_init(&s, 1);
    crt_case c[1];
    c[0] = CRT_CASE_SEM(&s, 1);
    int r = crt_select(c, 1, 0, CRT_TRY);
    crt_sem_release(&s, 1);
    crt_sem_destroy(&s);
    return r == 0 && c[0].result == 0 ? 0 : -1;
}
