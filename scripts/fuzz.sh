#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz, clang with ASan + UBSan) in build-fuzz and
# runs each one for a bounded time on a copy of its seed corpus (tests/fuzz/corpus/NAME,
# never modified), one harness at a time. Prints one line per harness: its name, the
# executions libFuzzer ran and the crashes it found; exits 1 if any harness found one,
# leaving the crashing input where the line says.
#
#   scripts/fuzz.sh                      every harness for 90 s (about 11 minutes in all)
#   scripts/fuzz.sh -t 600 json npz      those harnesses for 10 minutes each
#   scripts/fuzz.sh -k out/ npy          keep the grown corpus and any crash under out/npy/
#
# ATTN_FUZZ_SECONDS sets the default time per harness. Reproduce a crash with
# build-fuzz/tests/fuzz/fuzz_NAME CRASH_FILE.
set -euo pipefail
cd "$(dirname "$0")/.."

all_harnesses=(npy npz safetensors safetensors_header stream json attention)
seconds=${ATTN_FUZZ_SECONDS:-90}
keep=""
usage() {
    echo "usage: scripts/fuzz.sh [-t SECONDS_PER_HARNESS] [-k KEEP_DIR] [HARNESS...]" >&2
    echo "harnesses: ${all_harnesses[*]}" >&2
    exit 2
}
while getopts "t:k:h" opt; do
    case $opt in
        t) seconds=$OPTARG ;;
        k) keep=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=("${all_harnesses[@]}")
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: -t wants a whole number of seconds, got '$seconds'" >&2; exit 2; }
for h in "${harnesses[@]}"; do
    [[ " ${all_harnesses[*]} " == *" $h "* ]] || { echo "fuzz: unknown harness '$h'" >&2; usage; }
done

jobs=$(nproc)
build_start=$SECONDS
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATTN_FUZZ=ON \
    -DATTN_BUILD_TESTS=OFF -DATTN_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz --target attn_fuzzers -j"$jobs"
echo "fuzz: build-fuzz built in $((SECONDS - build_start)) s; running ${#harnesses[@]} harnesses, ${seconds} s each"

# Symbolized stack traces in the reports (Debian installs the symbolizer versioned).
if ! command -v llvm-symbolizer >/dev/null && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
    export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/attn-fuzz.XXXXXX")
failed=0
for h in "${harnesses[@]}"; do
    dir=$work/$h
    mkdir -p "$dir/corpus" "$dir/crashes"
    if [ -d "tests/fuzz/corpus/$h" ]; then cp -R "tests/fuzz/corpus/$h/." "$dir/corpus/"; fi
    # A budget per input: -timeout seconds of run time, -rss_limit_mb of memory (also the
    # most one malloc may ask for). The readers bound every allocation by the input's size
    # (or by what a stream has delivered), so an input over budget is a bug.
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$dir/crashes/")
    dict=tests/fuzz/${h%_header}.dict  # the header harness shares safetensors.dict
    if [ -f "$dict" ]; then args+=(-dict="$PWD/$dict"); fi
    # libFuzzer stops at the first crash; the outer timeout only guards against a hang
    # that its own -timeout could not catch.
    status=0
    timeout --kill-after=30 $((seconds + 120)) "build-fuzz/tests/fuzz/fuzz_$h" "${args[@]}" "$dir/corpus" \
        >"$dir/log" 2>&1 || status=$?
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
    crashes=("$dir"/crashes/*)
    [ -e "${crashes[0]}" ] || crashes=()
    if [ ${#crashes[@]} -gt 0 ] || [ "$status" -ne 0 ] || [ -z "$executions" ]; then
        failed=1
        printf 'fuzz: %-12s executions %10s  crashes %d  FAILED (exit status %d)\n' \
            "$h" "${executions:-?}" "${#crashes[@]}" "$status"
        for c in "${crashes[@]}"; do echo "fuzz:   crash input: $c"; done
        echo "fuzz:   log: $dir/log; its end:"
        grep -v '# Uses: ' "$dir/log" | tail -n 40 | sed 's/^/    /'
    else
        printf 'fuzz: %-12s executions %10s  crashes 0\n' "$h" "$executions"
    fi
    if [ -n "$keep" ]; then
        mkdir -p "$keep/$h"
        cp -R "$dir/." "$keep/$h/"
    fi
done

if [ "$failed" -ne 0 ]; then
    echo "fuzz: FAILED; inputs and logs are under $work" >&2
    exit 1
fi
rm -rf "$work"
echo "fuzz: ${#harnesses[@]} harnesses, ${seconds} s each, no crashes"
