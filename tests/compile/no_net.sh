#!/bin/sh
# A TU with CRT_NO_NET that calls crt_tcp_listen must fail to compile;
# the same TU without it (the control) must compile.
#   no_net.sh <source root> <compiler and its arguments...>
set -u
root=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags="-std=c11 -Wall -Wextra -Werror -Werror=implicit-function-declaration -D_GNU_SOURCE -I$root"
if ! "$@" $flags -c "$root/tests/compile/no_net.c" -o "$tmp/control.o" 2> "$tmp/err"; then
  echo "FAIL: the control (without CRT_NO_NET) does not compile:"
  cat "$tmp/err"
  exit 1
fi
if "$@" $flags -DCRT_NO_NET -c "$root/tests/compile/no_net.c" -o "$tmp/hidden.o" 2> "$tmp/err"; then
  echo "FAIL: crt_tcp_listen compiled under CRT_NO_NET"
  exit 1
fi
grep -q "crt_tcp_listen" "$tmp/err" || { echo "FAIL: unexpected error:"; cat "$tmp/err"; exit 1; }
echo "ok: control compiles; under CRT_NO_NET crt_tcp_listen is undeclared"
