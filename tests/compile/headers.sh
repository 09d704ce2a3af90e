#!/bin/sh
# Every public header alone — declarations only, and with its
# implementation — compiles warning-free as C11 under gcc and clang and as
# C++17 under g++ and clang++ (sokol's tests/compile, stb's C++ test).
#   headers.sh <source root>
set -u
root=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
headers="crt.h crt/runtime.h crt/time.h crt/select.h crt/chan.h crt/oneshot.h crt/bcast.h crt/watch.h
         crt/sem.h crt/mutex.h crt/rwlock.h crt/barrier.h crt/notify.h crt/token.h crt/group.h crt/net.h"
fail=0 ran=0
for compiler in "gcc -std=c11" "clang -std=c11" "g++ -std=c++17 -x c++" "clang++ -std=c++17 -x c++"; do
  prog=${compiler%% *}
  if ! command -v "$prog" >/dev/null 2>&1; then
    echo "skip: $prog is not installed"
    continue
  fi
  for h in $headers; do
    for impl in 0 1; do
      src=$tmp/tu.c
      if [ $impl = 1 ]; then echo '#define CRT_IMPLEMENTATION' > "$src"; else : > "$src"; fi
      printf '#include "%s"\nint main(void) { return 0; }\n' "$h" >> "$src"
      ran=$((ran + 1))
      if ! $compiler -Wall -Wextra -Wpedantic -Werror -D_GNU_SOURCE -I"$root" -c "$src" -o "$tmp/tu.o" 2> "$tmp/err"; then
        echo "FAIL: $compiler, $h, implementation=$impl"
        cat "$tmp/err"
        fail=1
      fi
    done
  done
done
# The implementation TU as a user may write it: a system header first,
# no -D_GNU_SOURCE, the compiler's default dialect (crt/base.h's
# _GNU_SOURCE then comes too late; the GNU declarations it needs are
# supplied by crt itself).
for compiler in gcc clang; do
  command -v "$compiler" >/dev/null 2>&1 || continue
  for first in stdio.h pthread.h sys/socket.h poll.h; do
    src=$tmp/first.c
    printf '#include <%s>\n#define CRT_IMPLEMENTATION\n#include "crt.h"\nint main(void) { return 0; }\n' "$first" > "$src"
    ran=$((ran + 1))
    if ! $compiler -Wall -Wextra -Werror -I"$root" -c "$src" -o "$tmp/first.o" 2> "$tmp/err"; then
      echo "FAIL: $compiler, <$first> before the implementation, no _GNU_SOURCE"
      cat "$tmp/err"
      fail=1
    fi
  done
done
echo "$ran header compilations"
exit $fail
