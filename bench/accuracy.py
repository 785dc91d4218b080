#!/usr/bin/python3
"""float32 accuracy of attn-cli against a float64 computation, side by side with PyTorch's
float32 on the same inputs (docs/kernel.md, "Accuracy").

usage: bench/accuracy.py [--bin build/app/attn-cli] [--shape 1,8,1024,64] [--seed 0] [--causal]
Needs numpy; PyTorch when importable (F.scaled_dot_product_attention on torch >= 2.0, the
unfused softmax(Q·Kᵀ·scale)·V otherwise).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np


def reference(q, k, v, causal):
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        L, S = logits.shape[-2:]
        logits = np.where(np.tril(np.ones((L, S), bool)), logits, -np.inf)
    logits -= logits.max(-1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(-1, keepdims=True)
    return w @ v


def torch_float32(q, k, v, causal):
    try:
        import torch
    except ImportError:
        return None, "not importable"
    t = [torch.from_numpy(x) for x in (q, k, v)]
    if hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        out = torch.nn.functional.scaled_dot_product_attention(*t, is_causal=causal)
        how = f"torch {torch.__version__} F.scaled_dot_product_attention"
    else:
        logits = t[0] @ t[1].transpose(-1, -2) / float(np.sqrt(q.shape[-1]))
        if causal:
            L, S = logits.shape[-2:]
            logits = logits.masked_fill(~torch.ones(L, S, dtype=torch.bool).tril(), float("-inf"))
        out = torch.softmax(logits, -1) @ t[2]
        how = f"torch {torch.__version__} unfused softmax(QK^T)V"
    return out.numpy(), how


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/app/attn-cli")
    ap.add_argument("--shape", default="1,8,1024,64")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--causal", action="store_true")
    a = ap.parse_args()
    shape = tuple(int(x) for x in a.shape.split(","))
    rng = np.random.default_rng(a.seed)
    q, k, v = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    ref = reference(q, k, v, a.causal)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, x in (("q", q), ("k", k), ("v", v)):
            paths.append(os.path.join(tmp, f"{name}.npy"))
            np.save(paths[-1], x)
        out = os.path.join(tmp, "out.npy")
        cmd = [a.bin, "sdpa", "-q", paths[0], "-k", paths[1], "-v", paths[2], "-o", out]
        if a.causal:
            cmd.append("--causal")
        subprocess.run(cmd, check=True)
        ours = np.load(out)
    rows = [("attn-cli float32", ours)]
    theirs, how = torch_float32(q, k, v, a.causal)
    if theirs is not None:
        rows.append((how, theirs))
    print(f"shape {shape}{' causal' if a.causal else ''}, seed {a.seed}; error against float64:")
    for name, x in rows:
        err = np.abs(x.astype(np.float64) - ref)
        rel = err / np.maximum(np.abs(ref), 1e-6)
        print(f"  {name:55s} max abs {err.max():.3e}  mean abs {err.mean():.3e}  max rel {rel.max():.3e}")
    if theirs is None:
        print(f"  PyTorch: {how}")


if __name__ == "__main__":
    sys.exit(main())
