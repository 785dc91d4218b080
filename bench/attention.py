#!/usr/bin/python3
"""Attention throughput: attn-cli against numpy's unfused attention, PyTorch's SDPA (when
importable) and the machine's sgemm, all measured in this run (kernel.md, "Benchmarks").

usage: bench/attention.py [--bin build/app/attn-cli] [--threads N] [--quick]
GFLOP/s = 4·B·H·L·S·D / seconds (causal rows also as this effective rate). attn-cli is
timed as a whole process (start, reading .npy inputs, computing, writing the output and,
with weights, the weights file) and its peak RSS comes from /usr/bin/time -v; the peers
are timed in-process on the compute alone, which favours them.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from timing import best

CONFIGS = [(1, 8, 4096, 64), (8, 12, 512, 64), (1, 1, 16384, 64)]


def sgemm_gflops():
    a = np.ones((2048, 2048), np.float32)
    b = np.ones((2048, 2048), np.float32)
    return 2 * 2048**3 / best(3, lambda: a @ b) / 1e9


def numpy_attention(q, k, v, causal):
    logits = q @ np.swapaxes(k, -1, -2) * np.float32(1 / np.sqrt(q.shape[-1]))
    if causal:
        L = logits.shape[-1]
        logits = np.where(np.tril(np.ones((L, L), bool)), logits, np.float32(-np.inf))
    logits -= logits.max(-1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(-1, keepdims=True)
    return logits @ v


def torch_runner(threads):
    try:
        import torch
    except ImportError:
        return None, "PyTorch not importable"
    torch.set_num_threads(threads)
    F = torch.nn.functional
    if hasattr(F, "scaled_dot_product_attention"):
        def run(q, k, v, causal):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return run, f"torch {torch.__version__} SDPA"

    def run(q, k, v, causal):  # PyTorch 1.x: no SDPA, the unfused computation
        logits = q @ k.transpose(-1, -2) / float(np.sqrt(q.shape[-1]))
        if causal:
            L = logits.shape[-1]
            logits = logits.masked_fill(~torch.ones(L, L, dtype=torch.bool).tril(), float("-inf"))
        return torch.softmax(logits, -1) @ v
    return run, f"torch {torch.__version__} unfused"


def run_cli(binary, paths, causal, weights, threads, tmp):
    cmd = ["/usr/bin/time", "-v", binary, "sdpa", "-q", paths[0], "-k", paths[1], "-v", paths[2],
           "-o", os.path.join(tmp, "out.npy"), "--threads", str(threads)]
    if causal:
        cmd.append("--causal")
    if weights:
        cmd += ["-s", os.path.join(tmp, "w.npy")]
    times, rss = [], 0
    for _ in range(2):
        s = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - s)
        rss = max(rss, int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)))
    return min(times), rss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/app/attn-cli")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true", help="only the first configuration")
    a = ap.parse_args()
    torch_run, torch_name = torch_runner(a.threads)
    peak = sgemm_gflops()
    print(f"threads {a.threads}; numpy sgemm 2048^3: {peak:.1f} GFLOP/s; peer: {torch_name}")
    print(f"{'config':24s} {'causal':6s} {'weights':7s} {'attn-cli':>9s} {'x sgemm':>7s} {'RSS MB':>7s} "
          f"{'numpy':>8s} {'torch':>8s} {'vs numpy':>8s} {'vs torch':>8s}")
    rng = np.random.default_rng(0)
    for B, H, L, D in CONFIGS[:1] if a.quick else CONFIGS:
        q, k, v = (rng.standard_normal((B, H, L, D), dtype=np.float32) for _ in range(3))
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for name, x in (("q", q), ("k", k), ("v", v)):
                paths.append(os.path.join(tmp, f"{name}.npy"))
                np.save(paths[-1], x)
            for causal in (False, True):
                flops = 4 * B * H * L * L * D
                t_np = best(1, lambda: numpy_attention(q, k, v, causal))
                t_torch = None
                if torch_run is not None:
                    import torch
                    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
                    t_torch = best(2, lambda: torch_run(tq, tk, tv, causal))
                for weights in (False, True):
                    t_cli, rss = run_cli(a.bin, paths, causal, weights, a.threads, tmp)
                    g = flops / t_cli / 1e9
                    g_np = flops / t_np / 1e9
                    g_t = flops / t_torch / 1e9 if t_torch else float("nan")
                    print(f"B{B} H{H} L{L} D{D}".ljust(24) + f" {str(causal):6s} {str(weights):7s} {g:9.1f} "
                          f"{g / peak:7.2f} {rss:7.0f} {g_np:8.1f} {g_t:8.1f} {g / g_np:8.2f} "
                          f"{(g / g_t if t_torch else float('nan')):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
