/* Sees only the CHAN component (and the core). */
#define CRT_ONLY_CHAN
#include "crt.h"

#if !defined(CRT_CHAN_H) || !defined(CRT_ONESHOT_H)
#error "CRT_ONLY_CHAN must show crt/chan.h and crt/oneshot.h"
#endif
#if defined(CRT_SEM_H) || defined(CRT_NET_H) || defined(CRT_SELECT_H) || defined(CRT_BCAST_H) || \
    defined(CRT_WATCH_H) || defined(CRT_TOKEN_H) || defined(CRT_GROUP_H)
#error "CRT_ONLY_CHAN must hide every other component"
#endif

int features_chan_roundtrip(int v) {
    crt_chan *c = crt_chan_new(sizeof(int), 1);
    int out = 0;
    v += 1;
    if (!c || crt_chan_send(c, &v, CRT_TRY) != 0 || crt_chan_recv(c, &out, CRT_TRY) != 0) out = -1;
    crt_chan_free(c);
    return out;
}
