/* Must NOT compile: CRT_NO_NET hides crt_tcp_listen. tests/compile/no_net.sh
 * compiles it with and without CRT_NO_NET (the control must compile). */
#include "crt.h"

int listen_somewhere(void) { return crt_tcp_listen(":0", 16); }
