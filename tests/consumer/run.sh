#!/usr/bin/env bash
# Installs the built project into a temporary prefix and builds and runs
# tests/consumer against it. Usage: run.sh BUILD_DIR
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$here" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/build" >/dev/null
"$work/build/attn_consumer"
test -x "$work/prefix/bin/attn-cli"
"$work/prefix/bin/attn-cli" --version
