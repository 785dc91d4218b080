#!/usr/bin/env bash
# Installs the built project into a temporary prefix and builds and runs tests/consumer
# against it; then configures tests/consumer with attn's source tree taken in by
# add_subdirectory (CMakeLists.txt checks that it brings the library only) and compiles
# the consumer's source against attn::core there. Usage: run.sh BUILD_DIR
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The tools' chatter goes to a log (not /dev/null, which a chroot may lack), shown on failure.
log=$work/log
quiet() { "$@" >>"$log" 2>&1 || { status=$?; cat "$log" >&2; return "$status"; }; }
quiet cmake --install "$build" --prefix "$work/prefix"
quiet cmake -S "$here" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release
quiet cmake --build "$work/build"
"$work/build/attn_consumer"
test -x "$work/prefix/bin/attn-cli"
"$work/prefix/bin/attn-cli" --version

# add_subdirectory: building the library again would take minutes, so only the
# consumer's own object (main.o, a Makefile generator's per-source target).
quiet cmake -S "$here" -B "$work/subdir" -G "Unix Makefiles" -DATTN_SOURCE_DIR="$source_dir" \
    -DCMAKE_BUILD_TYPE=Release
quiet make -C "$work/subdir" --no-print-directory main.o
echo "attn_consumer: add_subdirectory ok"
