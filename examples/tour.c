/* A guided tour of crt, in six stops. Build and run it with the README's
 * first command; it takes about a second and says what it shows.
 *
 *   1. spawn and join         tasks are cheap; join hands back their result
 *   2. channels               a bounded channel between a producer and a consumer
 *   3. select with a timeout  wait for the first of several things, or give up
 *   4. a bounded pool         a semaphore keeps at most N jobs in flight
 *   5. cancellation           a token tree stops a whole family of workers
 *   6. graceful shutdown      crt_run aborts what is left and waits for it
 */
#define CRT_IMPLEMENTATION
#include "crt.h"
#include <stdio.h>
#include <stdlib.h>

static void say(const char *stop, const char *text) { printf("%-22s %s\n", stop, text); }

/* >>1. spawn and join */
static void *square(void *arg) {
    intptr_t x = (intptr_t)arg;
    return (void *)(x * x);
}

static void stop_spawn(void) {
    crt_task *t[10];
    for (intptr_t i = 0; i < 10; i++) t[i] = crt_spawn(square, (void *)i);
    intptr_t sum = 0;
    for (int i = 0; i < 10; i++) {
        void *r = NULL;
        if (crt_join(t[i], &r, CRT_FOREVER) == 0) sum += (intptr_t)r;
    }
    char line[96];
    snprintf(line, sizeof line, "10 tasks squared 0..9; joined, their results sum to %ld", (long)sum);
    say("1. spawn and join", line);
}

/* >>2. channels: the producer waits whenever the consumer falls behind */
typedef struct {
    crt_chan *ch;
    int count;
} producer_args;

static void *producer(void *arg) {
    producer_args *a = (producer_args *)arg;
    for (int i = 1; i <= a->count; i++)
        if (crt_chan_send(a->ch, &i, CRT_FOREVER) < 0) break;
    crt_chan_close(a->ch); /* the consumer drains what is left, then sees -EPIPE */
    return NULL;
}

static void stop_channels(void) {
    crt_chan *ch = crt_chan_new(sizeof(int), 4); /* at most 4 in flight */
    if (!ch) return;
    producer_args a = {ch, 100};
    crt_task *p = crt_spawn(producer, &a);
    int v, received = 0;
    long total = 0;
    while (crt_chan_recv(ch, &v, CRT_FOREVER) == 0) {
        received++;
        total += v;
    }
    crt_join(p, NULL, CRT_FOREVER);
    crt_chan_free(ch);
    char line[96];
    snprintf(line, sizeof line, "100 ints through a channel of 4: %d received, sum %ld", received, total);
    say("2. channels", line);
}

/* >>3. select with a timeout */
static void *slow_answer(void *arg) {
    crt_oneshot *reply = (crt_oneshot *)arg;
    crt_sleep(CRT_MS(200));
    int answer = 42;
    crt_oneshot_send(reply, &answer); /* ends the sender's side; -EPIPE if the receiver left */
    return NULL;
}

static void stop_select(void) {
    crt_oneshot *reply = crt_oneshot_new(sizeof(int));
    crt_chan *news = crt_chan_new(sizeof(int), 1);
    if (!reply || !news) return;
    crt_task *t = crt_spawn(slow_answer, reply);
    int answer = 0, headline = 0;
    crt_case cs[2];
    cs[0] = CRT_CASE_ONESHOT(reply, &answer);
    cs[1] = CRT_CASE_RECV(news, &headline);
    int i = crt_select(cs, 2, 0, crt_after(CRT_MS(50)));
    say("3. select", i == -ETIMEDOUT ? "nothing within 50 ms: select returned -ETIMEDOUT, nothing was taken"
                                     : "something arrived early?");
    i = crt_select(cs, 2, 0, crt_after(CRT_SEC(2)));
    char line[96];
    snprintf(line, sizeof line, "waiting longer, case %d completed: the answer is %d", i, answer);
    say("", line);
    crt_join(t, NULL, CRT_FOREVER);
    crt_oneshot_free(reply); /* ends the receiver's side */
    crt_chan_free(news);
}

/* >>4. a semaphore-bounded pool */
static crt_sem pool_slots;
static long in_flight, peak;

static void *job(void *arg) {
    if (crt_sem_acquire(&pool_slots, 1, CRT_FOREVER) < 0) return arg;
    long now = __atomic_add_fetch(&in_flight, 1, __ATOMIC_RELAXED);
    long p = __atomic_load_n(&peak, __ATOMIC_RELAXED);
    while (now > p && !__atomic_compare_exchange_n(&peak, &p, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    crt_sleep(CRT_MS(5)); /* the work */
    __atomic_sub_fetch(&in_flight, 1, __ATOMIC_RELAXED);
    crt_sem_release(&pool_slots, 1);
    return arg;
}

static void stop_pool(void) {
    crt_sem_init(&pool_slots, 3);
    crt_task *t[12];
    for (int i = 0; i < 12; i++) t[i] = crt_spawn(job, NULL);
    for (int i = 0; i < 12; i++) crt_join(t[i], NULL, CRT_FOREVER);
    crt_sem_destroy(&pool_slots);
    char line[96];
    snprintf(line, sizeof line, "12 jobs, a semaphore of 3: never more than %ld at once", peak);
    say("4. bounded pool", line);
}

/* >>5. cancellation tokens: cancel the parent, every child stops */
static void *worker_until_cancelled(void *arg) {
    crt_token *stop = (crt_token *)arg;
    long rounds = 0;
    while (crt_token_wait(stop, crt_after(CRT_MS(1))) == -ETIMEDOUT) rounds++;
    return (void *)rounds;
}

static void stop_tokens(void) {
    crt_token root, child[3];
    crt_token_init(&root, NULL);
    crt_task *t[3];
    for (int i = 0; i < 3; i++) {
        crt_token_init(&child[i], &root);
        t[i] = crt_spawn(worker_until_cancelled, &child[i]);
    }
    crt_sleep(CRT_MS(20));
    crt_token_cancel(&root); /* one call stops all three */
    long rounds = 0;
    for (int i = 0; i < 3; i++) {
        void *r = NULL;
        crt_join(t[i], &r, CRT_FOREVER);
        rounds += (long)(intptr_t)r;
        crt_token_destroy(&child[i]);
    }
    crt_token_destroy(&root);
    char line[96];
    snprintf(line, sizeof line, "3 workers under one token ran %ld rounds; cancelling it stopped them all", rounds);
    say("5. cancellation", line);
}

/* >>6. graceful shutdown: tasks still running when main returns are
 * aborted; each sees -ECANCELED, cleans up and ends. */
static long cleaned;
static void *background(void *arg) {
    int *resource = (int *)malloc(sizeof *resource);
    int r = crt_sleep_until(CRT_FOREVER); /* until shutdown aborts it */
    free(resource);                       /* its own error path frees what it owns */
    if (r == -ECANCELED) __atomic_add_fetch(&cleaned, 1, __ATOMIC_RELAXED);
    return arg;
}

static void *tour(void *arg) {
    (void)arg;
    stop_spawn();
    stop_channels();
    stop_select();
    stop_pool();
    stop_tokens();
    for (int i = 0; i < 5; i++) crt_detach(crt_spawn(background, NULL));
    crt_yield();
    return NULL;
}

int main(void) {
    crt_config cfg = {0};
    cfg.workers = 2;
    cfg.shutdown_timeout = CRT_SEC(2);
    int rc = crt_run(&cfg, tour, NULL, NULL);
    char line[96];
    snprintf(line, sizeof line, "main returned; crt_run aborted 5 background tasks, %ld cleaned up (%s)", cleaned,
             crt_strerror(rc));
    say("6. graceful shutdown", line);
    return rc == 0 && cleaned == 5 ? 0 : 1;
}
