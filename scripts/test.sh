#!/usr/bin/env bash
# Installs what is missing, builds attn-cli with its tests (warnings are errors) and runs
# the whole suite with CTest. The README's test command, and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Release -DATTN_BUILD_TESTS=ON -DATTN_WARNINGS_AS_ERRORS=ON
cmake --build build-test -j"$jobs"
ctest --test-dir build-test --output-on-failure -j"$jobs"
