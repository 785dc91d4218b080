#!/usr/bin/env bash
# Installs what is missing, builds attn-cli (Release) and runs the classic example:
# single-head attention on Q, K, V of shape (2, 5, 64) from data/, printing the output
# (2, 5, 64) and then the attention weights (2, 5, 5), each as one JSON document.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DATTN_BUILD_TESTS=OFF >&2
cmake --build build -j"$(nproc)" >&2
build/app/attn-cli sdpa -q data/q.npy -k data/k.npy -v data/v.npy -o - --scores -
