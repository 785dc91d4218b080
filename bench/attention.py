#!/usr/bin/python3
"""Attention throughput, scaling, start-up time and memory: attn-cli against numpy's unfused
attention, PyTorch (SDPA when importable, else its unfused computation) and the machine's
sgemm, all measured in this run (docs/kernel.md, "Benchmarks"; issue 6's targets).

usage: bench/attention.py [--bin build/app/attn-cli] [--threads N] [--quick] [--no-big]
  --quick   only B1 H8 L4096 in the table, no L32768 memory runs
  --no-big  skip the L32768 memory runs (one writes a 4 GiB weights file)

GFLOP/s = 4·B·H·L·S·D / seconds; causal rows use the same count (an effective rate).
attn-cli is timed twice over: as a whole process (start, reading the .npy inputs,
computing, writing the output and, with weights, streaming the weights file), and its
attention phase alone as it reports with --timings, best of 2, with the peak RSS from
/usr/bin/time -v. The peers are timed in-process on the computation alone, so the ratios
("vs") compare that with attn-cli's attention phase. OpenBLAS 0.3.21 does not know CPUs newer than itself and falls back to its SSE3
kernels on them: unless OPENBLAS_CORETYPE is set, this script sets it to the best kernel
the CPU supports before numpy loads, so that sgemm, numpy and PyTorch run at full speed.
"""
import argparse
import ctypes
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def best_openblas_core():
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


CORE_SET_HERE = "OPENBLAS_CORETYPE" not in os.environ and best_openblas_core() is not None
if CORE_SET_HERE:
    os.environ["OPENBLAS_CORETYPE"] = best_openblas_core()

import numpy as np  # noqa: E402  (after OPENBLAS_CORETYPE)

from timing import best  # noqa: E402

CONFIGS = [(1, 8, 4096, 64), (8, 12, 512, 64), (1, 1, 16384, 64)]
HERE = os.path.dirname(os.path.abspath(__file__))


def openblas_core():
    try:
        lib = ctypes.CDLL("libblas.so.3")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "unknown"


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


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
    return run, f"torch {torch.__version__} unfused (no SDPA before 2.0)"


def run_cli(binary, args, runs=2):
    """Best wall time of `runs` runs of attn-cli, the best time of its attention phase
    (--timings), and the largest peak RSS (MB)."""
    cmd = ["/usr/bin/time", "-v", binary, *args, "--no-progress", "--timings"]
    times, kernel, rss = [], [], 0
    for _ in range(runs):
        s = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - s)
        if p.returncode != 0:
            sys.exit(f"attn-cli failed: {' '.join(cmd)}\n{p.stderr}")
        rss = max(rss, int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)))
        kernel.append(float(re.search(r" attention[^,]* ([0-9.]+) s,", p.stderr).group(1)))
    return min(times), min(kernel), rss / 1024


def save_inputs(tmp, shape, seed=0):
    rng = np.random.default_rng(seed)
    tensors, paths = [], []
    for name in "qkv":
        x = rng.standard_normal(shape, dtype=np.float32)
        paths.append(os.path.join(tmp, f"{name}.npy"))
        np.save(paths[-1], x)
        tensors.append(x)
    return tensors, paths


def sdpa_args(paths, tmp, threads, causal=False, weights=False):
    args = ["sdpa", "-q", paths[0], "-k", paths[1], "-v", paths[2], "-o", os.path.join(tmp, "out.npy"),
            "--threads", str(threads)]
    if causal:
        args.append("--causal")
    if weights:
        args += ["-s", os.path.join(tmp, "w.npy")]
    return args


def throughput_table(a, peak, torch_run):
    print(f"\n{'':36s} {'-- attn-cli GFLOP/s --':>23s}")
    print(f"{'config':20s} {'causal':6s} {'weights':7s} {'process':>8s} {'kernel':>7s} {'x sgemm':>7s} {'RSS MB':>7s} "
          f"{'numpy':>8s} {'torch':>8s} {'vs numpy':>8s} {'vs torch':>8s}")
    seconds = {}
    for B, H, L, D in CONFIGS[:1] if a.quick else CONFIGS:
        with tempfile.TemporaryDirectory() as tmp:
            (q, k, v), paths = save_inputs(tmp, (B, H, L, D))
            flops = 4 * B * H * L * L * D
            for causal in (False, True):
                g_np = flops / best(1, lambda: numpy_attention(q, k, v, causal)) / 1e9
                g_t = float("nan")
                if torch_run is not None:
                    import torch
                    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
                    g_t = flops / best(2, lambda: torch_run(tq, tk, tv, causal)) / 1e9
                for weights in (False, True):
                    t, tk, rss = run_cli(a.bin, sdpa_args(paths, tmp, a.threads, causal, weights))
                    seconds[(B, H, L, causal, weights)] = (t, tk)
                    g, gk = flops / t / 1e9, flops / tk / 1e9
                    print(f"B{B} H{H} L{L} D{D}".ljust(20) + f" {str(causal):6s} {str(weights):7s} {g:8.1f} "
                          f"{gk:7.1f} {gk / peak:7.2f} {rss:7.0f} {g_np:8.1f} {g_t:8.1f} {gk / g_np:8.2f} "
                          f"{gk / g_t:8.2f}", flush=True)
    full, causal = seconds[(1, 8, 4096, False, False)], seconds[(1, 8, 4096, True, False)]
    print(f"causal speed-up at B1 H8 L4096 (no weights): {full[0] / causal[0]:.2f}x whole process, "
          f"{full[1] / causal[1]:.2f}x kernel")


def scaling(a):
    with tempfile.TemporaryDirectory() as tmp:
        _, paths = save_inputs(tmp, (1, 8, 4096, 64))
        t1, k1, _ = run_cli(a.bin, sdpa_args(paths, tmp, 1), runs=3)
        tn, kn, _ = run_cli(a.bin, sdpa_args(paths, tmp, a.threads), runs=3)
    print(f"B1 H8 L4096 D64: 1 thread {t1:.3f} s (kernel {k1:.3f} s), {a.threads} threads {tn:.3f} s "
          f"(kernel {kn:.3f} s): {t1 / tn:.2f}x whole process, {k1 / kn:.2f}x kernel")


def startup(a):
    data = os.path.join(HERE, "..", "data")
    with tempfile.TemporaryDirectory() as tmp:
        args = ["sdpa", "-q", os.path.join(data, "q.npy"), "-k", os.path.join(data, "k.npy"), "-v",
                os.path.join(data, "v.npy"), "-o", os.path.join(tmp, "out.npy"), "-s", os.path.join(tmp, "w.npy")]
        times = []
        for _ in range(41):
            s = time.perf_counter()
            subprocess.run([a.bin, *args], check=True)
            times.append(time.perf_counter() - s)
    py = []
    for code in ("import numpy", "import torch"):
        s = time.perf_counter()
        ok = subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
        py.append(f"python3 -c '{code}' {time.perf_counter() - s:.3f} s" if ok else f"no {code.split()[1]}")
    print(f"classic example (N 2, L 5, D 64, output and weights to .npy), whole process: median "
          f"{statistics.median(times) * 1e3:.1f} ms over 41 runs; for comparison {', '.join(py)}")


def memory(a):
    L = 32768
    with tempfile.TemporaryDirectory() as tmp:
        free = shutil.disk_usage(tmp).free
        _, paths = save_inputs(tmp, (1, 1, L, 64))
        mb = 4 * L * 64 / 2**20  # one tensor
        t, _, rss = run_cli(a.bin, sdpa_args(paths, tmp, a.threads), runs=1)
        print(f"B1 H1 L{L} D64, no weights: {t:.2f} s, peak RSS {rss:.0f} MB "
              f"(bound 64 + 1.25 x (inputs + output) = {64 + 1.25 * 4 * mb:.0f} MB)")
        if free < 5 * 2**30:
            print(f"  with weights: skipped, {free / 2**30:.1f} GiB free in {tmp} (needs 5)")
            return
        t, _, rss = run_cli(a.bin, sdpa_args(paths, tmp, a.threads, weights=True), runs=1)
        size = os.path.getsize(os.path.join(tmp, "w.npy"))
        print(f"B1 H1 L{L} D64, -s w.npy ({size / 2**30:.1f} GiB): {t:.2f} s, peak RSS {rss:.0f} MB (bound 256 MB)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/app/attn-cli")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true", help="only the first configuration, no memory runs")
    ap.add_argument("--no-big", action="store_true", help="no L32768 memory runs")
    a = ap.parse_args()
    torch_run, torch_name = torch_runner(a.threads)
    peak = sgemm_gflops()
    core = openblas_core() + (" (OPENBLAS_CORETYPE set by this script)" if CORE_SET_HERE else "")
    print(f"{cpu_name()}, {os.cpu_count()} cores; threads {a.threads}; OpenBLAS core {core}")
    print(f"numpy sgemm 2048^3: {peak:.1f} GFLOP/s; peer: {torch_name}")
    throughput_table(a, peak, torch_run)
    scaling(a)
    startup(a)
    if not (a.quick or a.no_big):
        memory(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
