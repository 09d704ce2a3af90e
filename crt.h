/* crt.h — a concurrency runtime for C: stackful tasks on a work-stealing
 * scheduler, timers, channels, synchronisation, cancellation, select and
 * async sockets. MIT licence (see LICENSE).
 *
 * In exactly one .c file of the program:
 *     #define CRT_IMPLEMENTATION
 *     #include "crt.h"
 * everywhere else just #include "crt.h". The implementation TU must see
 * every component any TU uses (it compiles what it sees).
 *
 * Components (the core — runtime, tasks, time, errors — is always there):
 *   CHAN    crt/chan.h, crt/oneshot.h   bounded channels, one-shot values
 *   BCAST   crt/bcast.h                 broadcast: every receiver sees every value
 *   WATCH   crt/watch.h                 the latest value, with change notification
 *   SYNC    crt/sem.h crt/mutex.h crt/rwlock.h crt/barrier.h crt/notify.h
 *   TOKEN   crt/token.h                 cancellation tokens in a tree
 *   GROUP   crt/group.h                 structured concurrency (task groups)
 *   SELECT  crt/select.h                wait on several operations, exactly one completes
 *   NET     crt/net.h                   fd readiness, TCP, UDP, signals
 * Selection, per TU: CRT_NO_<C> hides C; CRT_ONLY_<C> (any number of them)
 * shows only the named ones. Different TUs may choose differently.
 *
 * Other macros: CRT_API, CRT_MALLOC/CRT_FREE, CRT_ASSERT (crt/base.h),
 * CRT_CONTEXT_UCONTEXT and CRT_FP_CONTROL (crt/context.h).
 */
#ifndef CRT__SELECTED
#define CRT__SELECTED

#if defined(CRT_ONLY_CHAN) || defined(CRT_ONLY_BCAST) || defined(CRT_ONLY_WATCH) || defined(CRT_ONLY_SYNC) || \
    defined(CRT_ONLY_TOKEN) || defined(CRT_ONLY_GROUP) || defined(CRT_ONLY_SELECT) || defined(CRT_ONLY_NET)
#define CRT__ONLY 1
#endif

#if defined(CRT__ONLY) ? defined(CRT_ONLY_CHAN) : !defined(CRT_NO_CHAN)
#define CRT__WANT_CHAN 1
#endif
#if defined(CRT__ONLY) ? defined(CRT_ONLY_BCAST) : !defined(CRT_NO_BCAST)
#define CRT__WANT_BCAST 1
#endif
#if defined(CRT__ONLY) ? defined(CRT_ONLY_WATCH) : !defined(CRT_NO_WATCH)
#define CRT__WANT_WATCH 1
#endif
#if defined(CRT__ONLY) ? defined(CRT_ONLY_SYNC) : !defined(CRT_NO_SYNC)
#define CRT__WANT_SYNC 1
#endif
#if defined(CRT__ONLY) ? defined(CRT_ONLY_TOKEN) : !defined(CRT_NO_TOKEN)
#define CRT__WANT_TOKEN 1
#endif
#if defined(CRT__ONLY) ? defined(CRT_ONLY_GROUP) : !defined(CRT_NO_GROUP)
#define CRT__WANT_GROUP 1
#endif
#if defined(CRT__ONLY) ? defined(CRT_ONLY_SELECT) : !defined(CRT_NO_SELECT)
#define CRT__WANT_SELECT 1
#endif
#if defined(CRT__ONLY) ? defined(CRT_ONLY_NET) : !defined(CRT_NO_NET)
#define CRT__WANT_NET 1
#endif

#endif /* CRT__SELECTED */

/* No guard below: included again with CRT_IMPLEMENTATION defined, each
 * header compiles its implementation once. */
#include "crt/base.h"
#include "crt/runtime.h"
#include "crt/time.h"
#ifdef CRT__WANT_CHAN
#include "crt/chan.h"
#include "crt/oneshot.h"
#endif
#ifdef CRT__WANT_BCAST
#include "crt/bcast.h"
#endif
#ifdef CRT__WANT_WATCH
#include "crt/watch.h"
#endif
#ifdef CRT__WANT_SYNC
#include "crt/sem.h"
#include "crt/mutex.h"
#include "crt/rwlock.h"
#include "crt/barrier.h"
#include "crt/notify.h"
#endif
#ifdef CRT__WANT_TOKEN
#include "crt/token.h"
#endif
#ifdef CRT__WANT_GROUP
#include "crt/group.h"
#endif
#ifdef CRT__WANT_SELECT
#include "crt/select.h"
#endif
#ifdef CRT__WANT_NET
#include "crt/net.h"
#endif
