#!/usr/bin/env bash
# The README's test command. Installs what is missing, builds attn-cli with its tests
# (Release, warnings are errors) in build-test and runs the whole suite with CTest,
# stopping at the first failure; prints how long each phase took. CI runs this and then
# the sanitizer suite and the fuzzers: scripts/ci.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
phases_prefix=test.sh
source scripts/lib/phases.sh
scripts/install-deps.sh
jobs=$(nproc)

begin_phase "release build"
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Release -DATTN_BUILD_TESTS=ON -DATTN_WARNINGS_AS_ERRORS=ON
cmake --build build-test -j"$jobs"
end_phase
begin_phase "release ctest"
ctest --test-dir build-test --output-on-failure -j"$jobs"
end_phase

echo "test.sh: all phases passed in $SECONDS s" >&2
