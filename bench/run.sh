#!/usr/bin/env bash
# Builds attn-cli (Release) and prints the benchmark tables: attention against numpy,
# PyTorch (when importable) and sgemm; tensor file I/O against numpy and Python's json;
# the mha projections against sgemm; float32 accuracy beside PyTorch's.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DATTN_BUILD_TESTS=OFF -DATTN_BUILD_BENCH=ON >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
python=${PYTHON:-/usr/bin/python3}
"$python" bench/attention.py --bin build/app/attn-cli "$@"
build/bench/attn_io_bench /tmp 3
"$python" bench/io_peers.py /tmp 3
build/bench/attn_mha_bench
"$python" bench/variants.py --bin build/app/attn-cli
"$python" bench/accuracy.py --bin build/app/attn-cli
