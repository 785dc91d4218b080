#!/usr/bin/env bash
# Installs what attn-cli needs from Debian 12's archive, and nothing that is already
# there. Idempotent; runs as root or through sudo.
#   scripts/install-deps.sh          build and test dependencies
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libxtensor-dev libxtensor-blas-dev libxsimd-dev
  libcli11-dev nlohmann-json3-dev doctest-dev
  # OpenBLAS's OpenMP build: single-threaded inside our parallel regions (docs/kernel.md).
  libopenblas-openmp-dev
  # libzip's CMake config names zipcmp, zipmerge and ziptool (docs/debian.md).
  libzip-dev zipcmp zipmerge ziptool
  libpng-dev
  # The tests' reference checks run numpy under Debian's own python3.
  python3 python3-numpy
  # scripts/fuzz.sh: clang 14 with libFuzzer and the sanitizer runtimes (libclang-rt),
  # and LLVM's OpenMP runtime, which clang's -fopenmp links.
  clang libclang-rt-14-dev libomp-dev
)

missing=()
for p in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != "installed" ]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present" >&2
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
