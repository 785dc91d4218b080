#!/usr/bin/python3
"""What the attention variants cost, as ratios measured in one run (docs/kernel.md,
"Variants"): a sliding window against the same problem without one, ALiBi with a
soft-cap and the log-sum-exp against plain attention.

usage: bench/variants.py [--bin build/app/attn-cli] [--threads N] [--runs R]

Each row times attn-cli's attention phase (--timings, best of R runs, the same inputs)
and divides by the plain run of its problem. The window row's plain run is B1 H8 L16384
D64 (the window 511,0 leaves 512 of 16384 keys to each query: 32x less work); the others
are B1 H8 L4096 D64.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np


def attention_seconds(binary, args, runs):
    """Best time of attn-cli's attention phase over `runs` runs."""
    best = None
    for _ in range(runs):
        p = subprocess.run([binary, *args, "--no-progress", "--timings"], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"attn-cli failed: {' '.join(args)}\n{p.stderr}")
        seconds = float(re.search(r" attention[^,]* ([0-9.]+) s,", p.stderr).group(1))
        best = seconds if best is None else min(best, seconds)
    return best


def save_inputs(tmp, shape):
    rng = np.random.default_rng(0)
    paths = []
    for name in "qkv":
        paths.append(os.path.join(tmp, f"{name}_{shape[2]}.npy"))
        np.save(paths[-1], rng.standard_normal(shape, dtype=np.float32))
    return paths


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="build/app/attn-cli")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--runs", type=int, default=3)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for length, variants in [
            (16384, [("--window 511,0", ["--window", "511,0"]), ("--window 511,0 --causal", ["--window", "511,0", "--causal"])]),
            (4096, [("--alibi --softcap 30", ["--alibi", "--softcap", "30"]), ("--lse", ["--lse", os.path.join(tmp, "lse.npy")]),
                    ("--sinks", ["--sinks", os.path.join(tmp, "sinks.npy")])]),
        ]:
            shape = (1, 8, length, 64)
            q, k, v = save_inputs(tmp, shape)
            np.save(os.path.join(tmp, "sinks.npy"), np.linspace(-1, 1, 8, dtype=np.float32))
            base = ["sdpa", "-q", q, "-k", k, "-v", v, "-o", os.path.join(tmp, "out.npy"), "--threads", str(a.threads)]
            plain = attention_seconds(a.bin, base, a.runs)
            gflops = 4 * 8 * length * length * 64 / plain / 1e9
            rows.append((f"B1 H8 L{length} D64 plain", plain, 1.0, f"{gflops:.0f} GFLOP/s"))
            for label, extra in variants:
                t = attention_seconds(a.bin, base + extra, a.runs)
                rows.append((f"B1 H8 L{length} D64 {label}", t, t / plain, f"{plain / t:.1f}x faster" if t < plain else f"+{(t / plain - 1) * 100:.1f} %"))
        print(f"{'problem':45s} {'attention s':>12s} {'/ plain':>8s}")
        for label, t, ratio, note in rows:
            print(f"{label:45s} {t:12.3f} {ratio:8.3f}  {note}")


main()
