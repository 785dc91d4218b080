#!/usr/bin/env bash
# What CI runs (.ci/run), stopping at the first failure:
#   1. scripts/test.sh: the Release build with its tests (build-test) and the whole suite;
#   2. the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer (Debug,
#      every report fatal) in build-asan;
#   3. every libFuzzer harness for a bounded time (scripts/fuzz.sh, build-fuzz).
# Prints how long each phase took. ATTN_FUZZ_SECONDS sets the fuzzing time per harness
# (default 90 s).
set -euo pipefail
cd "$(dirname "$0")/.."
phases_prefix=ci.sh
source scripts/lib/phases.sh
jobs=$(nproc)

begin_phase "test.sh"
scripts/test.sh
end_phase

begin_phase "asan+ubsan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DATTN_SANITIZE=ON -DATTN_BUILD_TESTS=ON \
    -DATTN_BUILD_BENCH=OFF -DATTN_WARNINGS_AS_ERRORS=ON
cmake --build build-asan -j"$jobs"
end_phase
begin_phase "asan+ubsan ctest"
UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build-asan --output-on-failure -j"$jobs"
end_phase

begin_phase "fuzz (build and run)"
scripts/fuzz.sh
end_phase

echo "ci.sh: all phases passed in $SECONDS s" >&2
