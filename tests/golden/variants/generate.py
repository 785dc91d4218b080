#!/usr/bin/python3
"""Compute the expected outputs of tests/golden/variants with PyTorch, in float64.

usage: /usr/bin/python3 tests/golden/variants/generate.py OUT_DIR
       /usr/bin/python3 tests/golden/variants/generate.py --check

Needs numpy and torch (Debian's torch 1.13 is enough: no scaled_dot_product_attention is
used, the attention is written as math in float64). Writes the whole set into OUT_DIR:
meta.json, and per case its inputs, args.json and the expected_<name>.npy that args.json's
"outputs" map names (out, scores, lse).

Every case keeps the inputs committed beside this script (q.npy, k.npy, v.npy, x.npy,
mask.npy, slopes, sinks, weights.npz, args.json: the seeds that drew them are not recorded)
and gets its expected outputs recomputed from them, following docs/kernel.md ("Variants")
and lib/include/attn/attention.hpp. The logit of query i and key j (p_i = i + S - L, the
query's position aligned bottom-right; heads are dim -3, one head for a rank-2 Q) is built
in this order:
  1. s = scale * q_i . k_j (scale: --scale, default 1/sqrt(E));
  2. --softcap C: s = C * tanh(s / C);
  3. --alibi / --alibi-slopes: s -= slope_h * |p_i - j|, with the ALiBi paper's
     get_slopes(H) or the given (H,) / (batch..., H) slopes;
  4. masks added: --mask float added, bool False (may not attend) -> -inf; key padding
     (bool True = ignore the key);
  5. hidden keys -> -inf: --causal (top-left j <= i, bottom-right j <= p_i), key lengths
     (per index of the first batch dim), --window LEFT,RIGHT (p_i - LEFT <= j <= p_i + RIGHT,
     -1 unbounded).
The softmax with --sinks sigma_h: m = max(max_j s_j, sigma_h), w_j = e^(s_j - m) /
(sum_k e^(s_k - m) + e^(sigma_h - m)); LSE = m + ln(that sum) (without sinks:
ln sum_j e^(s_j)). A row with no visible key gets zero weights and output, and LSE -inf
(sigma_h with a sink), as lib/src/attention/reference.cpp does. Grouped-query K/V heads
are repeat_interleave'd to the query heads. mha (self-attention from -q): the
in-projection, heads split, the attention above per head (scale 1/sqrt(head dim)), the
heads joined and the out-projection, as tests/golden/pytorch/generate.py computes mha step
by step; the LSE is (N, H, L).

Expected values are stored in float32, or float64 when the inputs or --dtype are float64.
--check regenerates into a temporary folder and compares with the committed files: per
case and output the max abs and max rel difference, failing (exit 1) where an output is
not within the case's tol as tests/tools/check_golden.py measures it
(np.allclose(rtol=tol, atol=tol), infinities equal). It also checks that the step-by-step
mha with no variant matches torch.nn.MultiheadAttention on these cases' inputs, and that
the sdpa with no variant matches tests/golden/pytorch/generate.py's torch_sdpa.
"""
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
# No __pycache__ beside the imported scripts: check_golden counts every folder of a set as a case.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", ".."))
from make_golden import npy_bytes  # noqa: E402  (one way to write reproducible files)

_spec = importlib.util.spec_from_file_location("pytorch_generate", os.path.join(HERE, "..", "pytorch", "generate.py"))
pytorch_generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pytorch_generate)  # parse(), tensor(), projections(), torch_mha_module(), torch_sdpa()

CASES = [
    "var_window_sym", "var_window_sliding", "var_window_causal_unbounded", "var_window_cross_br", "var_window_tiles",
    "var_alibi_causal", "var_alibi_nonpow2", "var_alibi_slopes_bh", "var_softcap", "var_softcap_alibi_mask",
    "var_sinks", "var_sinks_empty_rows", "var_lse_key_lengths", "var_lse_float64", "var_gqa_window_alibi",
    "var_rank2_everything", "mha_window_alibi", "mha_softcap_sinks",
]

NEG_INF = -math.inf


parse = pytorch_generate.parse  # the flags of an args.json argv
tensor = pytorch_generate.tensor  # float64 torch tensor of an array


def paper_slopes(n):
    """get_slopes(n) of ofirpress/attention_with_linear_biases, as its authors wrote it."""

    def power_of_2(m):
        start = 2 ** (-2 ** -(math.log2(m) - 3))
        return [start * start ** i for i in range(m)]

    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + paper_slopes(2 * closest)[0::2][:n - closest]


class Variants:
    """The variant flags of one call: window, softcap, ALiBi, sinks, masks, key lengths."""

    def __init__(self, causal=None, window=None, softcap=None, alibi=False, alibi_slopes=None, sinks=None, mask=None,
                 key_padding_mask=None, key_lengths=None, scale=None):
        self.causal, self.window, self.softcap, self.alibi = causal, window, softcap, alibi
        self.alibi_slopes, self.sinks, self.mask, self.key_padding_mask = alibi_slopes, sinks, mask, key_padding_mask
        self.key_lengths, self.scale = key_lengths, scale


def variant_attention(q, k, v, o):
    """(out, weights, lse) of the math attention with the variants `o`; q, k, v float64 tensors
    of rank >= 3 (batch..., H, L, E) with equal ranks; K/V heads may divide H (grouped-query)."""
    if k.shape[-3] not in (1, q.shape[-3]):
        group = q.shape[-3] // k.shape[-3]  # query head h reads K/V head h // group
        k = k.repeat_interleave(group, dim=-3)
        v = v.repeat_interleave(group, dim=-3)
    L, E, S = q.shape[-2], q.shape[-1], k.shape[-2]
    H = q.shape[-3]
    scale = 1.0 / math.sqrt(E) if o.scale is None else o.scale
    # 1. scale * q . k
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    batch = s.shape[:-2]
    s = s.expand(*batch, L, S).clone()
    i = torch.arange(L, dtype=torch.int64)[:, None]
    j = torch.arange(S, dtype=torch.int64)[None, :]
    p = i + S - L  # the query's position aligned bottom-right
    # 2. softcap
    if o.softcap is not None:
        s = o.softcap * torch.tanh(s / o.softcap)
    # 3. ALiBi
    if o.alibi or o.alibi_slopes is not None:
        slopes = torch.tensor(paper_slopes(H), dtype=torch.float64) if o.alibi else tensor(o.alibi_slopes)
        s = s - slopes[..., None, None] * (p - j).abs().to(torch.float64)
    # 4. masks
    if o.mask is not None:
        m = o.mask
        s = s + (torch.zeros(m.shape, dtype=torch.float64).masked_fill(~torch.from_numpy(m), NEG_INF)
                 if m.dtype == np.bool_ else tensor(m))
    if o.key_padding_mask is not None:  # (batch..., S): its dims are the leading batch dims
        m = o.key_padding_mask
        add = (torch.zeros(m.shape, dtype=torch.float64).masked_fill(torch.from_numpy(m), NEG_INF)
               if m.dtype == np.bool_ else tensor(m))
        add = add.reshape(m.shape[:-1] + (1,) * (len(batch) - (m.ndim - 1)) + (1, S))
        s = s + add
    # 5. hidden keys
    hidden = torch.zeros(*batch, L, S, dtype=torch.bool)
    if o.causal == "top-left":
        hidden |= j > i
    elif o.causal == "bottom-right":
        hidden |= j > p
    if o.window is not None:
        left, right = o.window
        if left >= 0:
            hidden |= j < p - left
        if right >= 0:
            hidden |= j > p + right
    if o.key_lengths:
        lengths = o.key_lengths * batch[0] if len(o.key_lengths) == 1 else o.key_lengths
        length = torch.tensor(lengths, dtype=torch.int64).reshape((batch[0],) + (1,) * (len(batch) - 1) + (1, 1))
        hidden |= j >= length
    s = s + torch.zeros_like(s).masked_fill(hidden, NEG_INF)
    # The softmax, with a sink in the denominator only.
    dead = torch.isneginf(s).all(dim=-1, keepdim=True)  # a row with no visible key
    m = s.max(dim=-1, keepdim=True).values
    if o.sinks is not None:
        sink = tensor(o.sinks).reshape(H, 1, 1).expand(*batch, L, 1)
        m = torch.maximum(m, sink)
    m_safe = torch.where(dead, torch.zeros_like(m), m)
    e = torch.exp(s - m_safe)
    total = e.sum(dim=-1, keepdim=True)
    if o.sinks is not None:
        total = total + torch.exp(sink - m_safe)
    w = torch.where(dead, torch.zeros_like(e), e / total)
    lse = m_safe + torch.log(total)
    dead_lse = sink if o.sinks is not None else torch.full_like(m, NEG_INF)
    lse = torch.where(dead, dead_lse, lse)
    out = torch.matmul(w, v)
    return out, w, lse.squeeze(-1)


def options(d, f):
    load = lambda flag: np.load(os.path.join(d, f[flag])) if flag in f else None
    window = tuple(int(x) for x in f["--window"].split(",")) if "--window" in f else None
    key_lengths = [int(x) for x in f["--key-lengths"].split(",")] if "--key-lengths" in f else None
    return Variants(causal=f.get("--causal"), window=window,
                    softcap=float(f["--softcap"]) if "--softcap" in f else None, alibi=f.get("--alibi", False),
                    alibi_slopes=load("--alibi-slopes"), sinks=load("--sinks"), mask=load("--mask"),
                    key_padding_mask=load("--key-padding-mask"), key_lengths=key_lengths,
                    scale=float(f["--scale"]) if "--scale" in f else None)


def sdpa(q, k, v, o):
    """Math attention for numpy q, k, v of any ranks >= 2 (batch dims broadcast as numpy's)."""
    q, k, v = tensor(q), tensor(k), tensor(v)
    rank = max(q.dim(), k.dim(), v.dim(), 3)  # a rank-2 Q is one head
    q, k, v = (t.reshape((1,) * (rank - t.dim()) + tuple(t.shape)) for t in (q, k, v))
    out, w, lse = variant_attention(q, k, v, o)
    return out, w, lse


def mha(weights, H, x_q, x_k, x_v, o):
    """Multi-head attention step by step in float64: in-projection, heads, the variants'
    attention per head, heads joined, out-projection. Inputs (N, L, E) or unbatched (L, E)."""
    F = torch.nn.functional
    unbatched = x_q.ndim == 2
    q, k, v = (tensor(a)[None] if unbatched else tensor(a) for a in (x_q, x_k, x_v))
    N, L, E = q.shape
    S = k.shape[1]
    hd = E // H
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = pytorch_generate.projections(weights, E, E)
    qh = F.linear(q, Wq, bq).reshape(N, L, H, hd).transpose(1, 2)  # (N, H, L, hd)
    kh = F.linear(k, Wk, bk).reshape(N, S, H, hd).transpose(1, 2)
    vh = F.linear(v, Wv, bv).reshape(N, S, H, hd).transpose(1, 2)
    o_heads, w, lse = variant_attention(qh, kh, vh, o)
    out = F.linear(o_heads.transpose(1, 2).reshape(N, L, E), Wo, bo)
    if unbatched:
        out, w, lse = out[0], w[0], lse[0]
    return out, w, lse


def load_weights(d):
    path = os.path.join(d, "weights.npz")
    return dict(np.load(path)) if os.path.isfile(path) else None


def compute(d, spec):
    """{output name: float64 array} for the case folder d with args.json `spec`."""
    f = parse(spec["args"])
    load = lambda flag: np.load(os.path.join(d, f[flag])) if flag in f else None
    q = load("-q")
    k = load("-k") if "-k" in f else q
    v = load("-v") if "-v" in f else k
    o = options(d, f)
    if f["cmd"] == "sdpa":
        out, w, lse = sdpa(q, k, v, o)
        out, w, lse = (t.reshape(t.shape[-r:]) if q.ndim == 2 else t for t, r in ((out, 2), (w, 2), (lse, 1)))
    else:
        assert f["cmd"] == "mha" and "--kv-heads" not in f and "--average-heads" not in f, d
        out, w, lse = mha(load_weights(d), int(f["--heads"]), q, k, v, o)
    results = {"OUT": out, "SCORES": w, "LSE": lse}
    outputs = spec.get("outputs", {"OUT": "out", "SCORES": "scores"})
    return {name: results[key].numpy() for key, name in outputs.items()}


def store_dtype(d, spec):
    f = parse(spec["args"])
    float64 = f.get("--dtype") == "float64" or np.load(os.path.join(d, f["-q"])).dtype == np.float64
    return np.float64 if float64 else np.float32


def write_expected(d, spec, results):
    store = store_dtype(d, spec)
    for name, a in results.items():
        assert not np.isnan(a).any(), f"{d}: NaN in expected {name}"
        with open(os.path.join(d, f"expected_{name}.npy"), "wb") as fh:
            fh.write(npy_bytes(a.astype(store)))


def generate(out_root):
    """Writes the whole set into out_root (created or refreshed)."""
    os.makedirs(out_root, exist_ok=True)
    for name in CASES:
        src, dst = os.path.join(HERE, name), os.path.join(out_root, name)
        if os.path.abspath(src) != os.path.abspath(dst):
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("expected_*"))
        with open(os.path.join(dst, "args.json")) as fh:
            spec = json.load(fh)
        write_expected(dst, spec, compute(dst, spec))
    with open(os.path.join(out_root, "meta.json"), "w") as fh:
        json.dump({"generator": "tests/golden/variants/generate.py", "torch": torch.__version__.split("+")[0],
                   "cases": CASES}, fh, indent=1)
        fh.write("\n")


def differences(a, b):
    """(max abs, max rel) difference of a to b, infinities of the same sign equal."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore"):  # inf - inf where only one side is infinite: inf below
        diff = np.where(same, 0.0, np.nan_to_num(np.abs(a - b), nan=np.inf))
        rel = np.where(same, 0.0, diff / np.where(b == 0, 1.0, np.abs(b)))
    rel = np.where((b == 0) & ~same, np.inf, rel)
    return (float(diff.max()) if diff.size else 0.0), (float(rel.max()) if rel.size else 0.0)


def check():
    """Regenerates into a temporary folder; compares with the committed expected files."""
    worst_abs = worst_rel = 0.0
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp)
        for name in CASES:
            with open(os.path.join(HERE, name, "args.json")) as fh:
                spec = json.load(fh)
            tol = spec["tol"]
            for what in spec.get("outputs", {"OUT": "out", "SCORES": "scores"}).values():
                a = np.load(os.path.join(tmp, name, f"expected_{what}.npy"))
                b = np.load(os.path.join(HERE, name, f"expected_{what}.npy"))
                if a.shape != b.shape or a.dtype != b.dtype:
                    ok = False
                    print(f"DIFF {name} {what}: {a.shape} {a.dtype} != committed {b.shape} {b.dtype}")
                    continue
                da, dr = differences(a, b)
                good = bool(np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True))
                worst_abs, worst_rel = max(worst_abs, da), max(worst_rel, dr)
                ok &= good
                print(f"{'ok  ' if good else 'DIFF'} {name} {what}: max abs {da:.3g}, max rel {dr:.3g} (tol {tol})")
        # With no variant, the step-by-step computations against torch's own.
        for name in CASES:
            d = os.path.join(HERE, name)
            with open(os.path.join(d, "args.json")) as fh:
                f = parse(json.load(fh)["args"])
            load = lambda flag: np.load(os.path.join(d, f[flag])) if flag in f else None
            q = load("-q")
            k = load("-k") if "-k" in f else q
            v = load("-v") if "-v" in f else k
            if f["cmd"] == "mha":
                H = int(f["--heads"])
                ours = mha(load_weights(d), H, q, k, v, Variants())
                theirs = pytorch_generate.torch_mha_module(load_weights(d), H, q, k, v, None, None, False, False)
                pairs = list(zip((t.numpy() for t in ours[:2]), theirs))
                what = "mha steps vs nn.MultiheadAttention"
            else:
                plain = Variants(causal=f.get("--causal"))
                ours = sdpa(q, k, v, plain)
                theirs = pytorch_generate.torch_sdpa(q, k, v, None, f.get("--causal"))
                pairs = [(t.numpy().reshape(a.shape), a) for t, a in zip(ours[:2], theirs)]
                what = "sdpa with no variant vs pytorch/generate.py"
            diff = max(float(np.max(np.abs(a - b))) for a, b in pairs)
            ok &= diff <= 1e-12
            print(f"{'ok  ' if diff <= 1e-12 else 'DIFF'} {name}: {what} {diff:.3g}")
    print(f"max abs difference to the committed expected files: {worst_abs:.3g}; max rel difference: {worst_rel:.3g}")
    return ok


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if check() else 1)
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    generate(os.path.abspath(sys.argv[1]))
