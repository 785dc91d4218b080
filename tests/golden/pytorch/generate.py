#!/usr/bin/python3
"""Compute the expected outputs of tests/golden/pytorch with PyTorch, in float64.

usage: /usr/bin/python3 tests/golden/pytorch/generate.py OUT_DIR
       /usr/bin/python3 tests/golden/pytorch/generate.py --check

Needs numpy and torch (Debian's torch 1.13 is enough: no scaled_dot_product_attention,
so sdpa is written as math in float64). Writes the whole set into OUT_DIR: meta.json, and
per case its inputs, args.json and expected_out.npy / expected_scores.npy.

- The cases of BASE_CASES keep the inputs committed beside this script (q.npy, k.npy,
  v.npy, mask.npy, kpm.npy, weights.npz, args.json: the seeds that drew them are not
  recorded) and get their expected outputs recomputed from them by torch:
  sdpa as softmax(Q·Kᵀ·scale + mask)·V in float64 (grouped-query K/V heads through
  repeat_interleave, bool mask true = may attend, the causal rule top-left j <= i or
  bottom-right j <= i + S - L, a row with no visible key all zeros as in PyTorch >= 2.5),
  mha through torch.nn.MultiheadAttention(batch_first=True) loaded with weights.npz and
  run in float64 (attn-cli's bool --mask is the negation of torch's attn_mask).
- The cases of GQA_CASES (mha --kv-heads, which torch 1.13's MultiheadAttention cannot
  express) are drawn from fixed seeds and computed step by step: torch.nn.functional.linear
  projections in float64 with non-zero biases, bias_k/bias_v appended, heads split,
  K/V heads repeat_interleave'd to the query heads, masked softmax attention, the output
  projection. The same steps with as many K/V heads as heads are checked against
  nn.MultiheadAttention on the mha cases of BASE_CASES (--check).

Expected values are stored in float32, or float64 when the inputs or --dtype are float64.
--check regenerates into a temporary folder and compares with the committed files
(max abs difference per case, and whether it is within the case's tol).
"""
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
from make_golden import npy_bytes, write_npz  # noqa: E402  (one way to write reproducible files)

BASE_CASES = [
    "sdpa_seed_3d", "sdpa_4d_cross", "sdpa_scale", "sdpa_causal_tl_wide", "sdpa_causal_tl_tall", "sdpa_causal_br",
    "sdpa_causal_br_masked_rows", "sdpa_bool_mask_2d", "sdpa_bool_mask_full_row", "sdpa_float_mask", "sdpa_gqa",
    "sdpa_big_logits", "sdpa_float64", "sdpa_5d_batch", "mha_seed", "mha_seed_self", "mha_average", "mha_kdim_vdim",
    "mha_no_bias", "mha_bias_kv", "mha_zero_attn", "mha_key_padding", "mha_float_mask_2d", "mha_bool_mask_3d",
    "mha_causal_self",
]


def parse(args):
    """The flags of an args.json argv: {flag: value or True}."""
    flags, i = {"cmd": args[0]}, 1
    bare = {"--average-heads", "--add-zero-attn", "--alibi"}
    while i < len(args):
        a = args[i]
        if a in bare:
            flags[a] = True
            i += 1
        elif a == "--causal" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            flags[a] = "top-left"
            i += 1
        else:
            flags[a] = args[i + 1]
            i += 2
    return flags


def tensor(a):
    return torch.from_numpy(np.ascontiguousarray(a)).to(torch.float64)


def causal_allowed(L, S, mode):
    i = torch.arange(L)[:, None]
    j = torch.arange(S)[None, :]
    return j <= i if mode == "top-left" else j <= i + S - L


def safe_softmax(logits):
    """softmax over the last dim; a row whose logits are all -inf gets zeros (PyTorch >= 2.5)."""
    w = torch.softmax(logits, dim=-1)
    dead = torch.isneginf(logits).all(dim=-1, keepdim=True)
    return torch.where(dead, torch.zeros_like(w), w)


def torch_sdpa(q, k, v, scale=None, causal=None, mask=None):
    """Math attention in float64; q, k, v, mask as numpy arrays (attn-cli's bool mask: true = may attend)."""
    q, k, v = tensor(q), tensor(k), tensor(v)
    if q.dim() >= 3 and k.dim() >= 3 and k.shape[-3] not in (1, q.shape[-3]):
        group = q.shape[-3] // k.shape[-3]  # query head h reads K/V head h // group
        k = k.repeat_interleave(group, dim=-3)
        v = v.repeat_interleave(group, dim=-3)
    L, E, S = q.shape[-2], q.shape[-1], k.shape[-2]
    logits = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(E) if scale is None else scale)
    if mask is not None:
        if mask.dtype == np.bool_:
            logits = logits.masked_fill(~torch.from_numpy(mask), -math.inf)
        else:
            logits = logits + tensor(mask)
    if causal is not None:
        logits = logits.masked_fill(~causal_allowed(L, S, causal), -math.inf)
    w = safe_softmax(logits)
    return torch.matmul(w, v).numpy(), w.numpy()


def torch_mha_module(weights, H, q, k, v, attn_mask, key_padding_mask, average, add_zero_attn):
    """nn.MultiheadAttention(batch_first=True) in float64 with the state_dict `weights`."""
    E = q.shape[-1]
    kdim, vdim = k.shape[-1], v.shape[-1]
    m = torch.nn.MultiheadAttention(E, H, batch_first=True, bias="out_proj.bias" in weights,
                                    add_bias_kv="bias_k" in weights, add_zero_attn=add_zero_attn, kdim=kdim,
                                    vdim=vdim)
    m.load_state_dict({name: torch.from_numpy(a) for name, a in weights.items()})
    m = m.double().eval()
    with torch.no_grad():
        out, w = m(tensor(q), tensor(k), tensor(v), attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                   need_weights=True, average_attn_weights=average)
    return out.numpy(), w.numpy()


def projections(weights, E, Ekv):
    """(Wq, bq, Wk, bk, Wv, bv, Wo, bo) in float64 from any of attn-cli's weight layouts (docs/cli.md)."""
    get = lambda name: tensor(weights[name]) if name in weights else None
    if "in_proj_weight" in weights:
        W = get("in_proj_weight")
        Wq, Wk, Wv = W[:E], W[E:E + Ekv], W[E + Ekv:]
    elif "q_proj_weight" in weights:
        Wq, Wk, Wv = get("q_proj_weight"), get("k_proj_weight"), get("v_proj_weight")
    else:
        Wq, Wk, Wv = get("q_proj.weight"), get("k_proj.weight"), get("v_proj.weight")
    if "in_proj_bias" in weights:
        b = get("in_proj_bias")
        bq, bk, bv = b[:E], b[E:E + Ekv], b[E + Ekv:]
    else:
        bq, bk, bv = get("q_proj.bias"), get("k_proj.bias"), get("v_proj.bias")
    Wo = get("out_proj.weight") if "out_proj.weight" in weights else get("o_proj.weight")
    bo = get("out_proj.bias") if "out_proj.weight" in weights else get("o_proj.bias")
    return Wq, bq, Wk, bk, Wv, bv, Wo, bo


def torch_mha_steps(weights, H, G, q, k, v, attn_mask, key_padding_mask, average, add_zero_attn):
    """MultiheadAttention with G key/value heads, step by step in float64 (batched inputs).

    attn_mask: torch's convention (bool True = hidden, or float added), (L, S) or (N*H, L, S);
    key_padding_mask: bool (N, S), True = padding."""
    F = torch.nn.functional
    N, L, E = q.shape
    S = k.shape[1]
    hd = E // H
    Ekv = G * hd
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = projections(weights, E, Ekv)
    qp = F.linear(tensor(q), Wq, bq)  # (N, L, E)
    kp = F.linear(tensor(k), Wk, bk)  # (N, S, Ekv)
    vp = F.linear(tensor(v), Wv, bv)
    add = torch.zeros(N, L, S, dtype=torch.float64).unsqueeze(1).repeat(1, H, 1, 1)  # (N, H, L, S)
    if attn_mask is not None:
        m = torch.from_numpy(np.ascontiguousarray(attn_mask))
        m = torch.zeros(m.shape, dtype=torch.float64).masked_fill(m, -math.inf) if m.dtype == torch.bool else tensor(
            attn_mask)
        add = add + (m.reshape(N, H, L, S) if m.dim() == 3 else m)
    if key_padding_mask is not None:
        add = add.masked_fill(torch.from_numpy(key_padding_mask)[:, None, None, :], -math.inf)
    appended = []
    if "bias_k" in weights:
        appended.append((tensor(weights["bias_k"]).expand(N, 1, Ekv), tensor(weights["bias_v"]).expand(N, 1, Ekv)))
    if add_zero_attn:
        appended.append((torch.zeros(N, 1, Ekv, dtype=torch.float64), torch.zeros(N, 1, Ekv, dtype=torch.float64)))
    for extra_k, extra_v in appended:  # appended keys stay visible: a zero column of the mask
        kp = torch.cat([kp, extra_k], dim=1)
        vp = torch.cat([vp, extra_v], dim=1)
        add = torch.cat([add, torch.zeros(N, H, L, 1, dtype=torch.float64)], dim=3)
    St = kp.shape[1]
    qh = qp.reshape(N, L, H, hd).transpose(1, 2)  # (N, H, L, hd)
    kh = kp.reshape(N, St, G, hd).transpose(1, 2).repeat_interleave(H // G, dim=1)  # head h reads K/V head h // (H/G)
    vh = vp.reshape(N, St, G, hd).transpose(1, 2).repeat_interleave(H // G, dim=1)
    logits = torch.matmul(qh, kh.transpose(-1, -2)) / math.sqrt(hd) + add
    w = torch.softmax(logits, dim=-1)
    o = torch.matmul(w, vh).transpose(1, 2).reshape(N, L, E)
    out = F.linear(o, Wo, bo)
    if average:
        w = w.mean(dim=1)
    return out.numpy(), w.numpy()


def compute(d, spec, weights):
    """(out, scores) for the case folder d with args.json `spec`, as float64 arrays."""
    f = parse(spec["args"])
    load = lambda flag: np.load(os.path.join(d, f[flag])) if flag in f else None
    q = load("-q")
    k = load("-k") if "-k" in f else q
    v = load("-v") if "-v" in f else k
    mask = load("--mask")
    causal = f.get("--causal")
    if f["cmd"] == "sdpa":
        scale = float(f["--scale"]) if "--scale" in f else None
        return torch_sdpa(q, k, v, scale, causal, mask)
    H = int(f["--heads"])
    G = int(f.get("--kv-heads", H))
    L, S = q.shape[-2], k.shape[-2]
    tm = None  # torch's attn_mask: bool True = hidden, or float added
    if mask is not None:
        tm = ~mask if mask.dtype == np.bool_ else mask.astype(np.float64)
    if causal is not None:
        hidden = ~causal_allowed(L, S, causal).numpy()
        tm = hidden if tm is None else (tm | hidden if tm.dtype == np.bool_ else np.where(hidden, -np.inf, tm))
    kpm = load("--key-padding-mask")
    average, zero_attn = f.get("--average-heads", False), f.get("--add-zero-attn", False)
    if G == H and "--kv-heads" not in f:
        am = None if tm is None else torch.from_numpy(np.ascontiguousarray(tm))
        am = am if am is None or am.dtype == torch.bool else am.to(torch.float64)
        kp = None if kpm is None else torch.from_numpy(kpm)
        return torch_mha_module(weights, H, q, k, v, am, kp, average, zero_attn)
    return torch_mha_steps(weights, H, G, q, k, v, tm, kpm, average, zero_attn)


def write_expected(d, spec, out, scores):
    f = parse(spec["args"])
    float64 = f.get("--dtype") == "float64" or np.load(os.path.join(d, f["-q"])).dtype == np.float64
    store = np.float64 if float64 else np.float32
    for name, a in (("out", out), ("scores", scores)):
        assert np.isfinite(a).all(), f"{d}: non-finite expected {name}"
        with open(os.path.join(d, f"expected_{name}.npy"), "wb") as fh:
            fh.write(npy_bytes(a.astype(store)))


def write_inputs(d, files, weights, spec):
    os.makedirs(d)
    for name, a in files.items():
        with open(os.path.join(d, name), "wb") as fh:
            fh.write(npy_bytes(a))
    write_npz(os.path.join(d, "weights.npz"), weights)
    with open(os.path.join(d, "args.json"), "w") as fh:
        json.dump(spec, fh)


# ---------------------------------------------------------------- mha --kv-heads


def gqa_weights(rng, E, H, G, kdim, vdim, layout, bias_kv):
    """Random weights with non-zero biases in one of attn-cli's layouts."""
    Ekv = G * (E // H)
    w = lambda *shape: (rng.standard_normal(shape) * 0.3).astype(np.float32)
    Wq, Wk, Wv, Wo = w(E, E), w(Ekv, kdim), w(Ekv, vdim), w(E, E)
    bq, bk, bv, bo = w(E), w(Ekv), w(Ekv), w(E)
    if layout == "separate_linear":  # Llama-style q_proj.weight ... o_proj.weight, each with .bias
        d = {"q_proj.weight": Wq, "q_proj.bias": bq, "k_proj.weight": Wk, "k_proj.bias": bk, "v_proj.weight": Wv,
             "v_proj.bias": bv, "o_proj.weight": Wo, "o_proj.bias": bo}
    else:  # PyTorch's names for separate projections: q_proj_weight ..., one packed in_proj_bias
        d = {"q_proj_weight": Wq, "k_proj_weight": Wk, "v_proj_weight": Wv,
             "in_proj_bias": np.concatenate([bq, bk, bv]), "out_proj.weight": Wo, "out_proj.bias": bo}
    if bias_kv:
        d["bias_k"], d["bias_v"] = w(1, 1, Ekv), w(1, 1, Ekv)
    return d


GQA_CASES = {
    # name: (seed, E, H, G, N, L, S, kdim, vdim, layout, bias_kv, extra flags, mask, kpm, dtype, tol)
    "mha_gqa_bias": (101, 32, 8, 2, 2, 5, 7, 24, 40, "separate_linear", False, [], None, False, np.float32, 2e-5),
    "mha_gqa_bias_kv_mask_kpm": (102, 32, 4, 2, 2, 6, 8, 32, 32, "packed_bias", True, ["--add-zero-attn"], "bool",
                                 True, np.float32, 2e-5),
    "mha_gqa_causal_float_mask_average": (103, 48, 6, 3, 2, 7, 7, 48, 48, "separate_linear", False,
                                          ["--causal", "--average-heads"], "float_nh", False, np.float32, 2e-5),
    "mha_mqa_float64": (104, 32, 4, 1, 2, 5, 6, 16, 32, "packed_bias", True, [], None, True, np.float64, 1e-10),
}


def gqa_case(out_root, name):
    seed, E, H, G, N, L, S, kdim, vdim, layout, bias_kv, extra, mask_kind, with_kpm, dtype, tol = GQA_CASES[name]
    rng = np.random.default_rng(seed)
    files = {"q.npy": rng.standard_normal((N, L, E)).astype(dtype),
             "k.npy": rng.standard_normal((N, S, kdim)).astype(dtype),
             "v.npy": rng.standard_normal((N, S, vdim)).astype(dtype)}
    weights = gqa_weights(rng, E, H, G, kdim, vdim, layout, bias_kv)
    args = ["mha", "--heads", str(H), "--kv-heads", str(G), "-q", "q.npy", "-k", "k.npy", "-v", "v.npy", "--weights",
            "weights.npz", "-o", "OUT", "--scores", "SCORES"] + extra
    if mask_kind == "bool":  # attn-cli: true = may attend; every row keeps a key
        m = rng.random((L, S)) < 0.7
        m[:, 0] = True
        files["mask.npy"] = m
    elif mask_kind == "float_nh":  # (N·H, L, S) as PyTorch's attn_mask
        files["mask.npy"] = (rng.standard_normal((N * H, L, S)) * 0.5).astype(np.float32)
    if mask_kind:
        args += ["--mask", "mask.npy"]
    if with_kpm:
        kpm = np.zeros((N, S), dtype=bool)
        kpm[0, -2:] = True
        kpm[1, 1] = True
        files["kpm.npy"] = kpm
        args += ["--key-padding-mask", "kpm.npy"]
    spec = {"args": args, "tol": tol}
    d = os.path.join(out_root, name)
    write_inputs(d, files, weights, spec)
    out, scores = compute(d, spec, weights)
    write_expected(d, spec, out, scores)


# ---------------------------------------------------------------- the set


def load_weights(d):
    path = os.path.join(d, "weights.npz")
    return dict(np.load(path)) if os.path.isfile(path) else None


def generate(out_root):
    """Writes the whole set into out_root (created or refreshed)."""
    os.makedirs(out_root, exist_ok=True)
    for name in BASE_CASES:
        src, dst = os.path.join(HERE, name), os.path.join(out_root, name)
        if os.path.abspath(src) != os.path.abspath(dst):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("expected_*"))
        with open(os.path.join(dst, "args.json")) as fh:
            spec = json.load(fh)
        out, scores = compute(dst, spec, load_weights(dst))
        write_expected(dst, spec, out, scores)
    for name in GQA_CASES:
        shutil.rmtree(os.path.join(out_root, name), ignore_errors=True)
        gqa_case(out_root, name)
    with open(os.path.join(out_root, "meta.json"), "w") as fh:
        json.dump({"generator": "tests/golden/pytorch/generate.py", "torch": torch.__version__.split("+")[0],
                   "sdpa": False, "cases": BASE_CASES + list(GQA_CASES)}, fh, indent=1)
        fh.write("\n")


def check():
    """Regenerates into a temporary folder; compares with the committed expected files."""
    worst = 0.0
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp)
        for name in BASE_CASES + list(GQA_CASES):
            with open(os.path.join(HERE, name, "args.json")) as fh:
                tol = json.load(fh)["tol"]
            diffs = []
            for what in ("out", "scores"):
                a = np.load(os.path.join(tmp, name, f"expected_{what}.npy"))
                b = np.load(os.path.join(HERE, name, f"expected_{what}.npy"))
                same = a.shape == b.shape and a.dtype == b.dtype
                diffs.append(float(np.max(np.abs(a.astype(np.float64) - b))) if same else math.inf)
            d = max(diffs)
            worst = max(worst, d)
            ok &= d <= tol
            print(f"{'ok  ' if d <= tol else 'DIFF'} {name}: max abs difference {d:.3g} (tol {tol})")
        # The step-by-step mha (GQA's computation) against nn.MultiheadAttention where both apply.
        for name in BASE_CASES:
            d = os.path.join(HERE, name)
            with open(os.path.join(d, "args.json")) as fh:
                spec = json.load(fh)
            if spec["args"][0] != "mha" or len(np.load(os.path.join(d, "q.npy")).shape) != 3:
                continue
            module = compute(d, spec, load_weights(d))
            spec_steps = {"args": spec["args"] + ["--kv-heads", parse(spec["args"])["--heads"]]}
            steps = compute(d, spec_steps, load_weights(d))
            diff = max(float(np.max(np.abs(a - b))) for a, b in zip(module, steps))
            ok &= diff <= 1e-12
            print(f"{'ok  ' if diff <= 1e-12 else 'DIFF'} {name}: steps vs nn.MultiheadAttention {diff:.3g}")
    print(f"max abs difference to the committed expected files: {worst:.3g}")
    return ok


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if check() else 1)
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    generate(os.path.abspath(sys.argv[1]))
