/* test_context.c on the portable ucontext switch. */
#define CRT_IMPLEMENTATION
#define CRT_CONTEXT_UCONTEXT
#include "test_context.c"
