/* test_context.c with each context carrying its own FP control state. */
#define CRT_IMPLEMENTATION
#define CRT_FP_CONTROL
#include "test_context.c"
