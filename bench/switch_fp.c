/* W0 with each context carrying its FP control state (CRT_FP_CONTROL). */
#define CRT_IMPLEMENTATION
#define CRT_FP_CONTROL
#include "switch.c"
