/* A program of three TUs that see different components (DESIGN §2): this
 * one compiles the implementation of everything; chan_only.c sees only
 * CHAN; no_net.c sees everything but NET and GROUP. They link and run. */
#define CRT_IMPLEMENTATION
#include "crt.h"
#include <stdio.h>
#include <stdlib.h>

int features_chan_roundtrip(int v);   /* chan_only.c */
int features_sem_and_select(void);    /* no_net.c */

static void *main_task(void *arg) {
    (void)arg;
    if (features_chan_roundtrip(41) != 42) abort();
    if (features_sem_and_select() != 0) abort();
    return (void *)1;
}

int main(void) {
    void *r = NULL;
    if (crt_run(NULL, main_task, NULL, &r) != 0 || r != (void *)1) return 1;
    puts("three TUs with different components: linked and ran");
    return 0;
}
