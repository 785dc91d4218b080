#!/usr/bin/env bash
# Installs what is missing, then, stopping at the first failure:
#   1. builds attn-cli with its tests (Release, warnings are errors) in build-test and
#      runs the whole suite with CTest;
#   2. builds it again with AddressSanitizer + UndefinedBehaviorSanitizer (Debug, every
#      report fatal) in build-asan and runs the whole suite there;
#   3. runs every libFuzzer harness for a bounded time (scripts/fuzz.sh, build-fuzz).
# Prints how long each phase took. The README's test command, and what CI runs.
# ATTN_FUZZ_SECONDS sets the fuzzing time per harness (default 90 s).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

timings=()
phase_name=""
phase_start=0
begin_phase() {
    phase_name=$1
    phase_start=$SECONDS
    echo "test.sh: == $phase_name" >&2
}
end_phase() {
    timings+=("$(printf '%-22s %5d s' "$phase_name" $((SECONDS - phase_start)))")
    phase_name=""
}
print_timings() {
    [ -n "$phase_name" ] && timings+=("$(printf '%-22s %5d s  FAILED' "$phase_name" $((SECONDS - phase_start)))")
    [ ${#timings[@]} -gt 0 ] && printf 'test.sh:   %s\n' "${timings[@]}" >&2
    return 0
}
trap print_timings EXIT

begin_phase "release build"
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Release -DATTN_BUILD_TESTS=ON -DATTN_WARNINGS_AS_ERRORS=ON
cmake --build build-test -j"$jobs"
end_phase
begin_phase "release ctest"
ctest --test-dir build-test --output-on-failure -j"$jobs"
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

echo "test.sh: all phases passed in $SECONDS s" >&2
