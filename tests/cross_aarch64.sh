#!/bin/sh
# Builds the context test suite with aarch64-linux-gnu-gcc (cross/aarch64.txt)
# and runs it under qemu-aarch64. Skips (exit 77) only when the cross
# compiler or qemu is missing — CI installs both, so there it always runs.
#   cross_aarch64.sh <source root> <build dir for the cross build>
set -eu
root=$1
dir=$2
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
  if ! command -v $tool >/dev/null 2>&1; then
    echo "SKIP: $tool is not installed (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)"
    exit 77
  fi
done
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" "$root" --cross-file "$root/cross/aarch64.txt" \
    -Dexamples=false -Dbench=false -Dshort=true >/dev/null
fi
meson compile -C "$dir" test_context test_context_fp test_context_ucontext test_stack
meson test -C "$dir" --no-rebuild --suite context --print-errorlogs
