#!/usr/bin/python3
"""Generate reference attention cases for attn-cli into tests/golden/generated/.

usage: /usr/bin/python3 tests/make_golden.py [OUT_DIR]

Needs numpy and torch (1.13 CPU is enough). Deterministic: every case draws from its own
fixed seed, and archives are written with fixed timestamps, so a rerun reproduces the
same bytes.

Each case folder holds its input tensors, expected_out.npy, expected_scores.npy and
args.json = {"args": [...], "tol": t}; "OUT" and "SCORES" in the args stand for the files
attn-cli writes (the layout of tests/golden/pytorch, run by tests/tools/check_golden.py).

Reference semantics
- sdpa: PyTorch >= 2.5 F.scaled_dot_product_attention (math backend, _safe_softmax)
  evaluated in float64 from the (float32) inputs: logits = q @ k^T * scale, plus a float
  mask, -inf where a bool mask is False (attn-cli: bool true = may attend, like SDPA),
  where causal hides the key (top-left j <= i, bottom-right j <= i + S - L), where the
  key padding mask (batch..., S; leading batch dims) is True, or at/after the key length
  of the first batch index. GQA: query head h uses kv head h // (Hq / Hkv). Rows with no
  visible key give all-zero weights and output. Expected values are stored in the
  inputs' dtype (float32, or float64 for float64 cases).
- mha: torch.nn.MultiheadAttention(batch_first=True) run in float64 (.double() module
  and inputs) with need_weights=True; its float32 state_dict is saved as weights.npz.
  attn-cli's bool --mask is true = may attend, the opposite of torch's bool attn_mask,
  so mask.npy holds ~torch_mask. --causal and --key-lengths are referenced through the
  equivalent float -inf attn_mask / bool key_padding_mask handed to torch.
"""
import io
import json
import math
import os
import shutil
import sys
import zipfile
import zlib

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_ROOT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(HERE, "golden", "generated")

TOL_SDPA = 1e-5
TOL_SDPA64 = 1e-10
TOL_BIG = 1e-4
TOL_MHA = 2e-5
TOL_MHA64 = 1e-10

CASES = []  # names, in order of generation


def rng_for(name):
    """A generator seeded by the case name, so adding a case does not shift the others."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def randn(rng, shape, dtype=np.float32, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ---------------------------------------------------------------- writing


def npy_bytes(a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def write_npz(path, arrays):
    """Like np.savez (stored, not compressed) but with fixed timestamps: reproducible bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, a in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o600 << 16
            z.writestr(info, npy_bytes(a))


def write_case(name, files, args, tol, out, scores, weights=None):
    assert name not in CASES, name
    assert np.isfinite(out).all() and np.isfinite(scores).all(), f"{name}: non-finite expected values"
    d = os.path.join(OUT_ROOT, name)
    os.makedirs(d)
    for fname, a in files.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(npy_bytes(a))
    if weights is not None:
        write_npz(os.path.join(d, "weights.npz"), weights)
    with open(os.path.join(d, "expected_out.npy"), "wb") as f:
        f.write(npy_bytes(out))
    with open(os.path.join(d, "expected_scores.npy"), "wb") as f:
        f.write(npy_bytes(scores))
    with open(os.path.join(d, "args.json"), "w") as f:
        json.dump({"args": args, "tol": tol}, f)
        f.write("\n")
    CASES.append(name)


# ---------------------------------------------------------------- sdpa reference


def sdpa_reference(q, k, v, scale=None, causal=None, mask=None, kpm=None, key_lengths=None):
    """PyTorch >= 2.5 SDPA semantics (plus attn-cli's key padding / key lengths) in float64.

    Returns (out, weights) as float64 arrays of shapes (..., L, Ev) and (..., L, S).
    """
    q = q.astype(np.float64)
    k = k.astype(np.float64)
    v = v.astype(np.float64)
    L, E = q.shape[-2:]
    S = k.shape[-2]
    if q.ndim >= 3 and k.ndim >= 3 and k.shape[-3] != q.shape[-3] and k.shape[-3] != 1 and q.shape[-3] != 1:
        hq, hkv = q.shape[-3], k.shape[-3]
        assert hq % hkv == 0 and v.shape[-3] == hkv
        k = np.repeat(k, hq // hkv, axis=-3)  # head h -> kv head h // (hq // hkv)
        v = np.repeat(v, hq // hkv, axis=-3)
    if scale is None:
        scale = 1.0 / math.sqrt(E)
    logits = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    batch = logits.shape[:-2]
    allowed = np.ones(logits.shape, dtype=bool)
    i = np.arange(L)[:, None]
    j = np.arange(S)[None, :]
    if causal == "top-left":
        allowed &= j <= i
    elif causal == "bottom-right":
        allowed &= j <= i + S - L
    else:
        assert causal is None
    if mask is not None:
        if mask.dtype == np.bool_:
            allowed &= np.broadcast_to(mask, logits.shape)
        else:
            logits = logits + mask.astype(np.float64)
    if kpm is not None:
        assert kpm.dtype == np.bool_ and kpm.shape[-1] == S
        lead = kpm.shape[:-1]
        assert len(lead) <= len(batch)
        kp = kpm.reshape(lead + (1,) * (len(batch) - len(lead)) + (1, S))  # leading alignment
        allowed &= ~np.broadcast_to(kp, logits.shape)
    if key_lengths is not None:
        n0 = batch[0] if batch else 1
        lens = np.array(key_lengths if len(key_lengths) != 1 else key_lengths * n0)
        assert len(lens) == n0
        if batch:
            lim = lens.reshape((n0,) + (1,) * (len(batch) - 1) + (1, 1))
        else:
            lim = lens.reshape(1, 1)
        allowed &= j < lim
    logits = np.where(allowed, logits, -np.inf)
    row_max = logits.max(axis=-1, keepdims=True)
    dead = ~np.isfinite(row_max)  # every key hidden (-inf): the row gets zeros
    row_max = np.where(dead, 0.0, row_max)
    e = np.exp(logits - row_max)
    denom = e.sum(axis=-1, keepdims=True)
    w = np.where(dead, 0.0, e / np.where(dead, 1.0, denom))
    out = np.matmul(w, v)
    return out, w


def sdpa_case(name, q, k=None, v=None, *, scale=None, causal=None, causal_flag=None, mask=None, kpm=None,
              key_lengths=None, dtype_flag=None, tol=None, expect_dead_rows=None):
    """causal: the semantics; causal_flag: the spelling on the command line ("" = bare --causal)."""
    files = {"q.npy": q}
    args = ["sdpa", "-q", "q.npy"]
    if k is not None:
        files["k.npy"] = k
        args += ["-k", "k.npy"]
    if v is not None:
        files["v.npy"] = v
        args += ["-v", "v.npy"]
    args += ["-o", "OUT", "--scores", "SCORES"]
    kk = q if k is None else k
    vv = kk if v is None else v
    if scale is not None:
        args += ["--scale", repr(scale)]
    if causal is not None:
        flag = causal if causal_flag is None else causal_flag
        args += ["--causal"] + ([flag] if flag else [])
    if mask is not None:
        files["mask.npy"] = mask
        args += ["--mask", "mask.npy"]
    if kpm is not None:
        files["kpm.npy"] = kpm
        args += ["--key-padding-mask", "kpm.npy"]
    if key_lengths is not None:
        args += ["--key-lengths", ",".join(str(n) for n in key_lengths)]
    if dtype_flag is not None:
        args += ["--dtype", dtype_flag]
    out, w = sdpa_reference(q, kk, vv, scale=scale, causal=causal, mask=mask, kpm=kpm, key_lengths=key_lengths)
    dead = int((w.sum(axis=-1) == 0).sum())
    if expect_dead_rows is not None:
        assert (dead > 0) == expect_dead_rows, f"{name}: fully masked rows: {dead}"
    is64 = q.dtype == np.float64 or kk.dtype == np.float64 or vv.dtype == np.float64 or dtype_flag == "float64"
    store = np.float64 if is64 else np.float32
    if tol is None:
        tol = TOL_SDPA64 if is64 else TOL_SDPA
    write_case(name, files, args, tol, out.astype(store), w.astype(store))


# ---------------------------------------------------------------- sdpa cases


def sdpa_cases():
    # --- plain ranks and shapes
    r = rng_for("sdpa_2d")
    sdpa_case("sdpa_2d", randn(r, (7, 16)), randn(r, (9, 16)), randn(r, (9, 16)))
    r = rng_for("sdpa_2d_self")  # -k and -v default to the query
    sdpa_case("sdpa_2d_self", randn(r, (6, 8)))
    r = rng_for("sdpa_3d")
    sdpa_case("sdpa_3d", randn(r, (3, 5, 16)), randn(r, (3, 5, 16)), randn(r, (3, 5, 16)))
    r = rng_for("sdpa_4d")
    sdpa_case("sdpa_4d", randn(r, (2, 3, 6, 16)), randn(r, (2, 3, 6, 16)), randn(r, (2, 3, 6, 16)))
    r = rng_for("sdpa_5d")
    sdpa_case("sdpa_5d", randn(r, (2, 2, 3, 4, 8)), randn(r, (2, 2, 3, 5, 8)), randn(r, (2, 2, 3, 5, 8)))
    r = rng_for("sdpa_cross_l_lt_s")
    sdpa_case("sdpa_cross_l_lt_s", randn(r, (2, 2, 3, 16)), randn(r, (2, 2, 11, 16)), randn(r, (2, 2, 11, 16)))
    r = rng_for("sdpa_cross_l_gt_s")
    sdpa_case("sdpa_cross_l_gt_s", randn(r, (2, 2, 10, 16)), randn(r, (2, 2, 4, 16)), randn(r, (2, 2, 4, 16)))
    r = rng_for("sdpa_ev_ne_e")
    sdpa_case("sdpa_ev_ne_e", randn(r, (2, 2, 5, 16)), randn(r, (2, 2, 7, 16)), randn(r, (2, 2, 7, 24)))
    r = rng_for("sdpa_ev_ne_e_small")
    sdpa_case("sdpa_ev_ne_e_small", randn(r, (3, 5, 32)), randn(r, (3, 6, 32)), randn(r, (3, 6, 3)))
    r = rng_for("sdpa_ev_1")
    sdpa_case("sdpa_ev_1", randn(r, (2, 4, 8)), randn(r, (2, 5, 8)), randn(r, (2, 5, 1)))
    r = rng_for("sdpa_e_1")
    sdpa_case("sdpa_e_1", randn(r, (2, 4, 1)), randn(r, (2, 5, 1)), randn(r, (2, 5, 4)))
    r = rng_for("sdpa_kv_shared")  # -v defaults to the key
    sdpa_case("sdpa_kv_shared", randn(r, (2, 4, 8)), randn(r, (2, 6, 8)))

    # --- broadcast batch dims
    r = rng_for("sdpa_bcast_kv_batch")
    sdpa_case("sdpa_bcast_kv_batch", randn(r, (2, 4, 5, 8)), randn(r, (1, 4, 6, 8)), randn(r, (1, 4, 6, 8)))
    r = rng_for("sdpa_bcast_q_batch")
    sdpa_case("sdpa_bcast_q_batch", randn(r, (1, 4, 5, 8)), randn(r, (3, 4, 6, 8)), randn(r, (3, 4, 6, 8)))
    r = rng_for("sdpa_bcast_kv_batch_5d")
    sdpa_case("sdpa_bcast_kv_batch_5d", randn(r, (2, 3, 2, 4, 8)), randn(r, (2, 1, 2, 5, 8)),
              randn(r, (2, 1, 2, 5, 8)))

    # --- scale
    r = rng_for("sdpa_scale")
    sdpa_case("sdpa_scale", randn(r, (2, 2, 5, 16)), randn(r, (2, 2, 6, 16)), randn(r, (2, 2, 6, 16)), scale=0.7)
    r = rng_for("sdpa_scale_one")
    sdpa_case("sdpa_scale_one", randn(r, (2, 5, 8)), randn(r, (2, 6, 8)), randn(r, (2, 6, 8)), scale=1.0)
    r = rng_for("sdpa_scale_small")
    sdpa_case("sdpa_scale_small", randn(r, (2, 5, 8)), randn(r, (2, 6, 8)), randn(r, (2, 6, 8)), scale=0.0125)

    # --- causal
    r = rng_for("sdpa_causal_bare")
    sdpa_case("sdpa_causal_bare", randn(r, (2, 2, 6, 8)), randn(r, (2, 2, 6, 8)), randn(r, (2, 2, 6, 8)),
              causal="top-left", causal_flag="")
    r = rng_for("sdpa_causal_bare_wide")  # bare = top-left also when L < S
    sdpa_case("sdpa_causal_bare_wide", randn(r, (2, 2, 4, 8)), randn(r, (2, 2, 7, 8)), randn(r, (2, 2, 7, 8)),
              causal="top-left", causal_flag="")
    for mode, tag in (("top-left", "tl"), ("bottom-right", "br")):
        for L, S, shape in ((4, 9, "wide"), (6, 6, "square"), (9, 4, "tall")):
            name = f"sdpa_causal_{tag}_{shape}"
            r = rng_for(name)
            sdpa_case(name, randn(r, (2, 2, L, 8)), randn(r, (2, 2, S, 8)), randn(r, (2, 2, S, 8)), causal=mode,
                      expect_dead_rows=(mode == "bottom-right" and L > S))
    r = rng_for("sdpa_causal_br_query_1")  # KV-cache decoding: one query sees every key
    sdpa_case("sdpa_causal_br_query_1", randn(r, (2, 3, 1, 8)), randn(r, (2, 3, 7, 8)), randn(r, (2, 3, 7, 8)),
              causal="bottom-right")
    r = rng_for("sdpa_causal_tl_query_1")  # top-left: one query sees key 0 only
    sdpa_case("sdpa_causal_tl_query_1", randn(r, (2, 3, 1, 8)), randn(r, (2, 3, 7, 8)), randn(r, (2, 3, 7, 8)),
              causal="top-left")
    r = rng_for("sdpa_causal_2d")
    sdpa_case("sdpa_causal_2d", randn(r, (5, 8)), randn(r, (8, 8)), randn(r, (8, 8)), causal="bottom-right")

    # --- bool mask (true = may attend)
    r = rng_for("sdpa_bool_mask_2d_bcast")
    L, S = 6, 7
    m = r.random((L, S)) < 0.6
    m[2, :] = False  # a fully masked row in every batch and head
    m[:, 0] |= np.arange(L) != 2
    sdpa_case("sdpa_bool_mask_2d_bcast", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)), randn(r, (2, 3, S, 8)),
              mask=m, expect_dead_rows=True)
    r = rng_for("sdpa_bool_mask_full")
    m = r.random((2, 3, L, S)) < 0.5
    m[1, 2, 4, :] = False
    m[0, 0, 0, :] = False
    sdpa_case("sdpa_bool_mask_full", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)), randn(r, (2, 3, S, 8)),
              mask=m, expect_dead_rows=True)
    r = rng_for("sdpa_bool_mask_heads_bcast")  # (1, H, L, S) over batch
    m = r.random((1, 3, L, S)) < 0.6
    m[0, 1, 3, :] = False
    sdpa_case("sdpa_bool_mask_heads_bcast", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)),
              randn(r, (2, 3, S, 8)), mask=m, expect_dead_rows=True)
    r = rng_for("sdpa_bool_mask_batch_bcast")  # (N, 1, L, S) over heads
    m = r.random((2, 1, L, S)) < 0.6
    sdpa_case("sdpa_bool_mask_batch_bcast", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)),
              randn(r, (2, 3, S, 8)), mask=m)
    r = rng_for("sdpa_bool_mask_row_bcast")  # (L, 1) and (1, S) broadcasting inside the matrix
    m = r.random((1, S)) < 0.6
    m[0, 0] = False
    m[0, 1] = True
    sdpa_case("sdpa_bool_mask_row_bcast", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)),
              randn(r, (2, 3, S, 8)), mask=m)
    r = rng_for("sdpa_bool_mask_col_bcast")
    m = np.array([[True], [False], [True], [True], [False], [True]])
    sdpa_case("sdpa_bool_mask_col_bcast", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)),
              randn(r, (2, 3, S, 8)), mask=m, expect_dead_rows=True)
    r = rng_for("sdpa_bool_mask_all_false")
    sdpa_case("sdpa_bool_mask_all_false", randn(r, (2, 4, 8)), randn(r, (2, 5, 8)), randn(r, (2, 5, 8)),
              mask=np.zeros((4, 5), dtype=bool), expect_dead_rows=True)
    r = rng_for("sdpa_bool_mask_2d_input")
    m = r.random((5, 6)) < 0.5
    m[3, :] = False
    sdpa_case("sdpa_bool_mask_2d_input", randn(r, (5, 8)), randn(r, (6, 8)), randn(r, (6, 8)), mask=m,
              expect_dead_rows=True)

    # --- float mask (added; -inf entries hide keys; an all -inf row gives zeros)
    r = rng_for("sdpa_float_mask_2d")
    fm = randn(r, (L, S), scale=2.0)
    fm[r.random((L, S)) < 0.3] = -np.inf
    fm[1, :] = -np.inf
    fm[:, 0] = np.where(np.arange(L) == 1, -np.inf, 0.5)
    sdpa_case("sdpa_float_mask_2d", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)), randn(r, (2, 3, S, 8)),
              mask=fm, expect_dead_rows=True)
    r = rng_for("sdpa_float_mask_full")
    fm = randn(r, (2, 3, L, S), scale=3.0)
    fm[r.random((2, 3, L, S)) < 0.2] = -np.inf
    sdpa_case("sdpa_float_mask_full", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)), randn(r, (2, 3, S, 8)),
              mask=fm)
    r = rng_for("sdpa_float_mask_finite")
    fm = randn(r, (1, 3, 1, S), scale=5.0)
    sdpa_case("sdpa_float_mask_finite", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)), randn(r, (2, 3, S, 8)),
              mask=fm)
    r = rng_for("sdpa_float_mask_f64")  # float64 mask with float32 q/k/v -> auto float64
    fm = r.standard_normal((L, S))
    fm[0, 3] = -np.inf
    sdpa_case("sdpa_float_mask_f64", randn(r, (2, L, 8)), randn(r, (2, S, 8)), randn(r, (2, S, 8)), mask=fm,
              dtype_flag="float64")

    # --- key padding mask (bool true = padding), (batch..., S) aligned to leading batch dims
    r = rng_for("sdpa_kpm_n_s")  # (N, S) for 4-D inputs: same for every head
    kp = r.random((2, S)) < 0.4
    kp[:, 0] = False
    sdpa_case("sdpa_kpm_n_s", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)), randn(r, (2, 3, S, 8)), kpm=kp)
    r = rng_for("sdpa_kpm_n_h_s")
    kp = r.random((2, 3, S)) < 0.4
    kp[1, 2, :] = True  # one (batch, head) with every key padded -> zeros
    sdpa_case("sdpa_kpm_n_h_s", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)), randn(r, (2, 3, S, 8)), kpm=kp,
              expect_dead_rows=True)
    r = rng_for("sdpa_kpm_3d")
    kp = r.random((3, S)) < 0.4
    kp[2, :] = True
    sdpa_case("sdpa_kpm_3d", randn(r, (3, L, 8)), randn(r, (3, S, 8)), randn(r, (3, S, 8)), kpm=kp,
              expect_dead_rows=True)
    r = rng_for("sdpa_kpm_5d_leading")  # (N, S) on 5-D inputs: dims 1..2 are broadcast
    kp = r.random((2, S)) < 0.4
    kp[:, 1] = False
    sdpa_case("sdpa_kpm_5d_leading", randn(r, (2, 2, 3, 4, 8)), randn(r, (2, 2, 3, S, 8)),
              randn(r, (2, 2, 3, S, 8)), kpm=kp)
    r = rng_for("sdpa_kpm_2d_input")  # no batch dims: shape (S,)
    kp = np.array([False, True, False, False, True, True, False])
    sdpa_case("sdpa_kpm_2d_input", randn(r, (5, 8)), randn(r, (S, 8)), randn(r, (S, 8)), kpm=kp)
    r = rng_for("sdpa_kpm_bcast_1")  # (1, S): one row for all batch items
    kp = np.array([[True, False, False, True, False, False, False]])
    sdpa_case("sdpa_kpm_bcast_1", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)), randn(r, (2, 3, S, 8)), kpm=kp)

    # --- key lengths (n = first batch dim)
    r = rng_for("sdpa_key_lengths_one")
    sdpa_case("sdpa_key_lengths_one", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)), randn(r, (2, 3, S, 8)),
              key_lengths=[4])
    r = rng_for("sdpa_key_lengths_per_batch")
    sdpa_case("sdpa_key_lengths_per_batch", randn(r, (3, 2, L, 8)), randn(r, (3, 2, S, 8)),
              randn(r, (3, 2, S, 8)), key_lengths=[3, 7, 1])
    r = rng_for("sdpa_key_lengths_3d")
    sdpa_case("sdpa_key_lengths_3d", randn(r, (2, L, 8)), randn(r, (2, S, 8)), randn(r, (2, S, 8)),
              key_lengths=[3, 5])
    r = rng_for("sdpa_key_lengths_2d_input")
    sdpa_case("sdpa_key_lengths_2d_input", randn(r, (L, 8)), randn(r, (S, 8)), randn(r, (S, 8)), key_lengths=[5])
    r = rng_for("sdpa_key_lengths_5d")
    sdpa_case("sdpa_key_lengths_5d", randn(r, (2, 2, 2, 4, 8)), randn(r, (2, 2, 2, S, 8)),
              randn(r, (2, 2, 2, S, 8)), key_lengths=[6, 2])
    r = rng_for("sdpa_key_lengths_zero")  # length 0: every key ignored -> zero rows
    sdpa_case("sdpa_key_lengths_zero", randn(r, (2, 2, 4, 8)), randn(r, (2, 2, S, 8)), randn(r, (2, 2, S, 8)),
              key_lengths=[0, 7], expect_dead_rows=True)

    # --- combinations
    r = rng_for("sdpa_causal_mask_kpm")
    m = r.random((L, L)) < 0.8
    m[:, 0] = True
    m[4, :] = False  # row 4 fully masked by the mask
    kp = r.random((2, L)) < 0.3
    kp[:, 0] = False
    sdpa_case("sdpa_causal_mask_kpm", randn(r, (2, 3, L, 8)), randn(r, (2, 3, L, 8)), randn(r, (2, 3, L, 8)),
              causal="top-left", mask=m, kpm=kp, expect_dead_rows=True)
    r = rng_for("sdpa_causal_br_floatmask_kpm")
    fm = randn(r, (3, 4, 9))
    fm[r.random((3, 4, 9)) < 0.2] = -np.inf
    kp = r.random((2, 9)) < 0.3
    sdpa_case("sdpa_causal_br_floatmask_kpm", randn(r, (2, 3, 4, 8)), randn(r, (2, 3, 9, 8)),
              randn(r, (2, 3, 9, 8)), causal="bottom-right", mask=fm, kpm=kp)
    r = rng_for("sdpa_causal_key_lengths")  # causal rows whose visible keys are all past the length
    sdpa_case("sdpa_causal_key_lengths", randn(r, (2, 2, 8, 8)), randn(r, (2, 2, 8, 8)), randn(r, (2, 2, 8, 8)),
              causal="bottom-right", key_lengths=[8, 5])
    r = rng_for("sdpa_causal_br_tall_key_lengths")
    sdpa_case("sdpa_causal_br_tall_key_lengths", randn(r, (2, 2, 9, 8)), randn(r, (2, 2, 5, 8)),
              randn(r, (2, 2, 5, 8)), causal="bottom-right", key_lengths=[2, 5], expect_dead_rows=True)
    r = rng_for("sdpa_all_masks")
    m = r.random((2, 1, 7, 10)) < 0.8
    kp = r.random((2, 10)) < 0.3
    sdpa_case("sdpa_all_masks", randn(r, (2, 3, 7, 8)), randn(r, (2, 3, 10, 8)), randn(r, (2, 3, 10, 8)),
              scale=0.4, causal="bottom-right", mask=m, kpm=kp, key_lengths=[9, 6], expect_dead_rows=None)
    r = rng_for("sdpa_kpm_key_lengths")
    kp = r.random((2, 3, S)) < 0.3
    sdpa_case("sdpa_kpm_key_lengths", randn(r, (2, 3, L, 8)), randn(r, (2, 3, S, 8)), randn(r, (2, 3, S, 8)),
              kpm=kp, key_lengths=[5, 2])

    # --- grouped-query attention
    r = rng_for("sdpa_gqa_8_2")
    sdpa_case("sdpa_gqa_8_2", randn(r, (2, 8, 5, 16)), randn(r, (2, 2, 7, 16)), randn(r, (2, 2, 7, 16)))
    r = rng_for("sdpa_gqa_8_1")
    sdpa_case("sdpa_gqa_8_1", randn(r, (2, 8, 5, 16)), randn(r, (2, 1, 7, 16)), randn(r, (2, 1, 7, 16)))
    r = rng_for("sdpa_gqa_6_3_3d")  # 3-D: the head dim is dim 0
    sdpa_case("sdpa_gqa_6_3_3d", randn(r, (6, 4, 8)), randn(r, (3, 5, 8)), randn(r, (3, 5, 8)))
    r = rng_for("sdpa_gqa_causal_kpm")
    kp = r.random((2, 9)) < 0.3
    kp[:, 0] = False
    sdpa_case("sdpa_gqa_causal_kpm", randn(r, (2, 8, 4, 16)), randn(r, (2, 2, 9, 16)), randn(r, (2, 2, 9, 12)),
              causal="bottom-right", kpm=kp)
    r = rng_for("sdpa_gqa_mask_full")  # mask with the query head count
    m = r.random((2, 8, 5, 7)) < 0.6
    m[0, 5, 2, :] = False
    sdpa_case("sdpa_gqa_mask_full", randn(r, (2, 8, 5, 16)), randn(r, (2, 2, 7, 16)), randn(r, (2, 2, 7, 16)),
              mask=m, expect_dead_rows=True)
    r = rng_for("sdpa_gqa_5d")
    sdpa_case("sdpa_gqa_5d", randn(r, (2, 3, 4, 5, 8)), randn(r, (2, 3, 2, 6, 8)), randn(r, (2, 3, 2, 6, 8)),
              key_lengths=[4, 6])

    # --- float64
    r = rng_for("sdpa_float64")
    sdpa_case("sdpa_float64", randn(r, (2, 3, 5, 16), np.float64), randn(r, (2, 3, 7, 16), np.float64),
              randn(r, (2, 3, 7, 16), np.float64))
    r = rng_for("sdpa_float64_masked")
    m = r.random((5, 7)) < 0.6
    m[1, :] = False
    sdpa_case("sdpa_float64_masked", randn(r, (2, 3, 5, 16), np.float64), randn(r, (2, 3, 7, 16), np.float64),
              randn(r, (2, 3, 7, 10), np.float64), causal="bottom-right", mask=m, key_lengths=[6, 7],
              expect_dead_rows=True)
    r = rng_for("sdpa_float64_mixed")  # one float64 input: auto -> float64
    sdpa_case("sdpa_float64_mixed", randn(r, (2, 5, 8)), randn(r, (2, 6, 8), np.float64), randn(r, (2, 6, 8)))
    r = rng_for("sdpa_float64_explicit")  # float32 inputs, --dtype float64
    sdpa_case("sdpa_float64_explicit", randn(r, (2, 5, 8)), randn(r, (2, 6, 8)), randn(r, (2, 6, 8)),
              dtype_flag="float64")
    r = rng_for("sdpa_float64_tile")
    sdpa_case("sdpa_float64_tile", randn(r, (1, 65, 8), np.float64), randn(r, (1, 63, 8), np.float64),
              randn(r, (1, 63, 8), np.float64), causal="bottom-right")

    # --- large logits (+-1e4): softmax must subtract the row max
    # Integer q/k make q.k exact in float32, and scale 1/sqrt(16) = 0.25 is exact, so
    # the logits are exact in float32 too; rows then differ by a few units at ~+-1e4.
    r = rng_for("sdpa_big_logits_near_ties")
    E = 16
    base = np.zeros((2, 2, 6, E), np.float32)
    base[..., 0] = 200.0
    q = base + r.integers(-2, 3, size=base.shape).astype(np.float32)
    q[:, 1, :, 0] = -200.0  # head 1: logits near -1e4
    kk = np.zeros((2, 2, 8, E), np.float32)
    kk[..., 0] = 200.0
    kk = kk + r.integers(-2, 3, size=kk.shape).astype(np.float32)
    sdpa_case("sdpa_big_logits_near_ties", q, kk, randn(r, (2, 2, 8, 8)), tol=TOL_BIG)
    r = rng_for("sdpa_big_logits_random")
    sdpa_case("sdpa_big_logits_random", randn(r, (2, 2, 6, 16), scale=30.0), randn(r, (2, 2, 8, 16), scale=30.0),
              randn(r, (2, 2, 8, 8)), scale=1.0, tol=TOL_BIG)
    # +-1e4 added by a float mask. float32 holds 1e4 + x only to ~1e-3 (its ulp there is
    # 2^-10), so q/k are small integers again: logits are multiples of 1/4, |.| <= 16, and
    # 1e4 + logit is exact in float32; the float64 reference is then what float32 can reach.
    r = rng_for("sdpa_big_float_mask")
    fm = (r.integers(-1, 2, size=(5, 7)) * 1e4).astype(np.float32)
    fm[0, :] = 1e4  # a whole row shifted by +1e4
    fm[1, :] = -1e4  # ... and by -1e4
    sdpa_case("sdpa_big_float_mask", r.integers(-2, 3, size=(2, 5, 16)).astype(np.float32),
              r.integers(-2, 3, size=(2, 7, 16)).astype(np.float32), randn(r, (2, 7, 8)), mask=fm, tol=TOL_BIG)

    # --- tile-sized and odd shapes: every L, S in {1, 2, 63, 64, 65, 300}
    sizes = (1, 2, 63, 64, 65, 300)
    for L in sizes:
        for S in sizes:
            name = f"sdpa_tile_L{L}_S{S}"
            r = rng_for(name)
            sdpa_case(name, randn(r, (1, L, 8)), randn(r, (1, S, 8)), randn(r, (1, S, 8)))
    for L, S in ((63, 65), (65, 63), (64, 64), (300, 300), (1, 300), (300, 2), (2, 65), (65, 1), (64, 300)):
        for mode, tag in (("top-left", "tl"), ("bottom-right", "br")):
            if L == S and mode == "bottom-right":
                continue  # the same mask as top-left
            name = f"sdpa_tile_causal_{tag}_L{L}_S{S}"
            r = rng_for(name)
            sdpa_case(name, randn(r, (L, 8)), randn(r, (S, 8)), randn(r, (S, 8)), causal=mode)
    r = rng_for("sdpa_tile_batched_65_63")
    sdpa_case("sdpa_tile_batched_65_63", randn(r, (2, 2, 65, 8)), randn(r, (2, 2, 63, 8)),
              randn(r, (2, 2, 63, 4)))
    r = rng_for("sdpa_tile_kpm_300")
    kp = r.random((2, 300)) < 0.5
    sdpa_case("sdpa_tile_kpm_300", randn(r, (2, 65, 8)), randn(r, (2, 300, 8)), randn(r, (2, 300, 8)), kpm=kp)
    r = rng_for("sdpa_tile_key_lengths_300")
    sdpa_case("sdpa_tile_key_lengths_300", randn(r, (3, 64, 8)), randn(r, (3, 300, 8)), randn(r, (3, 300, 8)),
              key_lengths=[65, 300, 63])
    r = rng_for("sdpa_tile_mask_65")
    m = r.random((65, 65)) < 0.5
    m[64, :] = False
    sdpa_case("sdpa_tile_mask_65", randn(r, (2, 65, 8)), randn(r, (2, 65, 8)), randn(r, (2, 65, 8)), mask=m,
              causal="top-left", expect_dead_rows=True)
    r = rng_for("sdpa_tile_gqa_65")
    sdpa_case("sdpa_tile_gqa_65", randn(r, (1, 4, 65, 8)), randn(r, (1, 2, 63, 8)), randn(r, (1, 2, 63, 8)),
              causal="bottom-right")


# ---------------------------------------------------------------- mha


def make_module(E, H, seed, *, bias=True, add_bias_kv=False, kdim=None, vdim=None, randomize=True):
    """A torch MHA module (float32 parameters). randomize: also give the biases (which
    PyTorch initialises to zero) random values, so that every parameter matters."""
    torch.manual_seed(seed)
    m = torch.nn.MultiheadAttention(E, H, batch_first=True, bias=bias, add_bias_kv=add_bias_kv, kdim=kdim,
                                    vdim=vdim)
    if randomize:
        g = torch.Generator().manual_seed(seed + 1000)
        with torch.no_grad():
            for name, p in m.named_parameters():
                if p.dim() == 2:
                    bound = math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
                    p.copy_((torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1) * bound)
                else:
                    p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
    return m


def state_dict_np(m):
    return {k: v.detach().to(torch.float32).numpy().copy() for k, v in m.state_dict().items()}


def torch_mha(m, q, k, v, attn_mask=None, key_padding_mask=None, average=False, add_zero_attn=False):
    """Run module m in float64; attn_mask in torch's convention (bool True = NOT allowed)."""
    md = torch.nn.MultiheadAttention(m.embed_dim, m.num_heads, batch_first=True, bias=m.in_proj_bias is not None
                                     or m.out_proj.bias is not None, add_bias_kv=m.bias_k is not None,
                                     add_zero_attn=add_zero_attn, kdim=m.kdim, vdim=m.vdim)
    md.load_state_dict(m.state_dict())
    md = md.double().eval()
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(torch.float64)
    am = None
    if attn_mask is not None:
        am = torch.from_numpy(attn_mask) if attn_mask.dtype == np.bool_ else t(attn_mask)
    kp = None if key_padding_mask is None else torch.from_numpy(key_padding_mask)
    with torch.no_grad():
        out, w = md(t(q), t(k), t(v), attn_mask=am, key_padding_mask=kp, need_weights=True,
                    average_attn_weights=average)
    return out.numpy(), w.numpy()


def causal_float(L, S, mode="top-left"):
    i = np.arange(L)[:, None]
    j = np.arange(S)[None, :]
    ok = j <= i if mode == "top-left" else j <= i + S - L
    return np.where(ok, 0.0, -np.inf)


def mha_case(name, E, H, q, k=None, v=None, *, seed=None, use_seed_flag=False, bias=True, add_bias_kv=False,
             add_zero_attn=False, average=False, mask=None, torch_mask=None, kpm=None, key_lengths=None,
             causal=None, causal_flag=None, tol=TOL_MHA, dtype_flag=None):
    """mask: what attn-cli reads (bool true = may attend, or float); torch_mask: what torch
    gets (default: derived from mask). causal: handed to torch as a float -inf mask."""
    kk = q if k is None else k
    vv = kk if v is None else v
    kdim = kk.shape[-1] if kk.shape[-1] != E else None
    vdim = vv.shape[-1] if vv.shape[-1] != E else None
    m = make_module(E, H, seed, bias=bias, add_bias_kv=add_bias_kv, kdim=kdim, vdim=vdim,
                    randomize=not use_seed_flag)
    files = {"q.npy": q}
    args = ["mha", "--heads", str(H), "-q", "q.npy"]
    if k is not None:
        files["k.npy"] = k
        args += ["-k", "k.npy"]
    if v is not None:
        files["v.npy"] = v
        args += ["-v", "v.npy"]
    if use_seed_flag:
        assert bias and not add_bias_kv
        args += ["--seed", str(seed)]
    else:
        args += ["--weights", "weights.npz"]
    args += ["-o", "OUT", "--scores", "SCORES"]
    if add_zero_attn:
        args += ["--add-zero-attn"]
    if average:
        args += ["--average-heads"]
    unbatched = q.ndim == 2
    N = 1 if unbatched else q.shape[0]
    L, S = q.shape[-2], kk.shape[-2]

    # torch's attn_mask: float (L, S) or (N*H, L, S)
    tm = None
    if mask is not None:
        files["mask.npy"] = mask
        args += ["--mask", "mask.npy"]
        if torch_mask is not None:
            tm = torch_mask
        elif mask.dtype == np.bool_:
            tm = np.where(mask, 0.0, -np.inf)
        else:
            tm = mask.astype(np.float64)
        if tm.ndim == 4:  # broadcastable to (N, H, L, S): torch wants (N*H, L, S)
            tm = np.broadcast_to(tm, (N, H, L, S)).reshape(N * H, L, S)
    if causal is not None:
        flag = causal if causal_flag is None else causal_flag
        args += ["--causal"] + ([flag] if flag else [])
        cm = causal_float(L, S, causal)
        tm = cm if tm is None else tm + cm
    if tm is not None and tm.ndim == 3 and unbatched:
        assert tm.shape[0] == H
    tkp = None
    if kpm is not None:
        files["kpm.npy"] = kpm
        args += ["--key-padding-mask", "kpm.npy"]
        tkp = kpm.copy()
    if key_lengths is not None:
        args += ["--key-lengths", ",".join(str(n) for n in key_lengths)]
        lens = np.array(key_lengths * N if len(key_lengths) == 1 else key_lengths)
        pad = np.arange(S)[None, :] >= lens[:, None]
        if unbatched:
            pad = pad[0]
        tkp = pad if tkp is None else (tkp | pad)
    if dtype_flag is not None:
        args += ["--dtype", dtype_flag]
    out, w = torch_mha(m, q, kk, vv, attn_mask=tm, key_padding_mask=tkp, average=average,
                       add_zero_attn=add_zero_attn)
    assert np.isfinite(out).all() and np.isfinite(w).all(), f"{name}: torch gave non-finite values"
    store = np.float64 if (q.dtype == np.float64 or dtype_flag == "float64") else np.float32
    write_case(name, files, args, tol, out.astype(store), w.astype(store), weights=state_dict_np(m))


def mha_cases():
    E, H = 32, 4
    r = rng_for("mha_seed_flag")  # weights from --seed: torch.manual_seed(S); MultiheadAttention(E, H)
    mha_case("mha_seed_flag", E, H, randn(r, (2, 5, E)), randn(r, (2, 6, E)), randn(r, (2, 6, E)), seed=7,
             use_seed_flag=True)
    r = rng_for("mha_seed_flag_self")
    mha_case("mha_seed_flag_self", 64, 8, randn(r, (2, 5, 64)), seed=0, use_seed_flag=True)
    r = rng_for("mha_seed_flag_kdim_vdim")
    mha_case("mha_seed_flag_kdim_vdim", E, H, randn(r, (2, 5, E)), randn(r, (2, 6, 12)), randn(r, (2, 6, 20)),
             seed=3, use_seed_flag=True)
    r = rng_for("mha_weights")
    mha_case("mha_weights", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)), seed=11)
    r = rng_for("mha_self")
    mha_case("mha_self", E, H, randn(r, (3, 6, E)), seed=12)
    r = rng_for("mha_kdim_vdim")
    mha_case("mha_kdim_vdim", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, 10)), randn(r, (2, 7, 24)), seed=13)
    r = rng_for("mha_kdim_only")  # kdim != E, vdim == E: still separate projections
    mha_case("mha_kdim_only", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, 16)), randn(r, (2, 7, E)), seed=14)
    r = rng_for("mha_no_bias")
    mha_case("mha_no_bias", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)), seed=15,
             bias=False)
    r = rng_for("mha_bias_kv")
    mha_case("mha_bias_kv", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)), seed=16,
             add_bias_kv=True)
    r = rng_for("mha_zero_attn")
    mha_case("mha_zero_attn", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)), seed=17,
             add_zero_attn=True)
    r = rng_for("mha_bias_kv_zero_attn")
    mha_case("mha_bias_kv_zero_attn", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)),
             seed=18, add_bias_kv=True, add_zero_attn=True)
    r = rng_for("mha_bias_kv_zero_attn_mask")
    m = r.random((5, 7)) < 0.6
    m[2, :] = False  # all real keys hidden: bias key and zero key stay visible
    mha_case("mha_bias_kv_zero_attn_mask", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)),
             seed=19, add_bias_kv=True, add_zero_attn=True, mask=m)
    r = rng_for("mha_bias_kv_kpm_kdim")
    kp = r.random((2, 7)) < 0.4
    kp[:, 0] = False
    mha_case("mha_bias_kv_kpm_kdim", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, 12)), randn(r, (2, 7, 8)),
             seed=20, add_bias_kv=True, kpm=kp)
    r = rng_for("mha_key_padding")
    kp = r.random((3, 7)) < 0.4
    kp[:, 2] = False
    mha_case("mha_key_padding", E, H, randn(r, (3, 5, E)), randn(r, (3, 7, E)), randn(r, (3, 7, E)), seed=21,
             kpm=kp)
    r = rng_for("mha_key_lengths")
    mha_case("mha_key_lengths", E, H, randn(r, (3, 5, E)), randn(r, (3, 7, E)), randn(r, (3, 7, E)), seed=22,
             key_lengths=[7, 3, 1])
    r = rng_for("mha_key_lengths_one")
    mha_case("mha_key_lengths_one", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)), seed=23,
             key_lengths=[4])
    r = rng_for("mha_key_lengths_bias_kv")  # the bias key is past S yet stays visible
    mha_case("mha_key_lengths_bias_kv", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)),
             seed=24, key_lengths=[2, 6], add_bias_kv=True)
    r = rng_for("mha_key_lengths_zero_attn")
    mha_case("mha_key_lengths_zero_attn", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)),
             seed=25, key_lengths=[3, 7], add_zero_attn=True)
    r = rng_for("mha_bool_mask_2d")
    m = r.random((5, 7)) < 0.6
    m[:, 0] = True
    mha_case("mha_bool_mask_2d", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)), seed=26,
             mask=m)
    r = rng_for("mha_bool_mask_nh")
    m = r.random((2 * H, 5, 7)) < 0.6
    m[:, :, 3] = True
    mha_case("mha_bool_mask_nh", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)), seed=27,
             mask=m)
    r = rng_for("mha_bool_mask_4d_bcast")  # (N, 1, L, S), broadcast over heads
    m = r.random((2, 1, 5, 7)) < 0.6
    m[..., 1] = True
    mha_case("mha_bool_mask_4d_bcast", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)),
             seed=28, mask=m)
    r = rng_for("mha_float_mask")
    fm = randn(r, (5, 7), scale=2.0)
    fm[r.random((5, 7)) < 0.3] = -np.inf
    fm[:, 4] = 0.25
    mha_case("mha_float_mask", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)), seed=29,
             mask=fm)
    r = rng_for("mha_float_mask_nh")
    fm = randn(r, (2 * H, 5, 7))
    mha_case("mha_float_mask_nh", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)), seed=30,
             mask=fm)
    r = rng_for("mha_causal")
    mha_case("mha_causal", E, H, randn(r, (2, 6, E)), seed=31, causal="top-left", causal_flag="")
    r = rng_for("mha_causal_cross_tl")
    mha_case("mha_causal_cross_tl", E, H, randn(r, (2, 5, E)), randn(r, (2, 8, E)), randn(r, (2, 8, E)),
             seed=32, causal="top-left")
    r = rng_for("mha_causal_cross_br")
    mha_case("mha_causal_cross_br", E, H, randn(r, (2, 5, E)), randn(r, (2, 8, E)), randn(r, (2, 8, E)),
             seed=33, causal="bottom-right")
    r = rng_for("mha_causal_bias_kv")  # the bias key column stays visible to every query
    mha_case("mha_causal_bias_kv", E, H, randn(r, (2, 6, E)), seed=34, causal="top-left", causal_flag="",
             add_bias_kv=True)
    r = rng_for("mha_causal_zero_attn")
    mha_case("mha_causal_zero_attn", E, H, randn(r, (2, 6, E)), seed=35, causal="top-left", causal_flag="",
             add_zero_attn=True)
    r = rng_for("mha_causal_bias_kv_zero_attn_kpm")
    kp = r.random((2, 6)) < 0.4
    mha_case("mha_causal_bias_kv_zero_attn_kpm", E, H, randn(r, (2, 6, E)), seed=36, causal="top-left",
             add_bias_kv=True, add_zero_attn=True, kpm=kp)
    r = rng_for("mha_causal_mask_kpm")
    m = r.random((6, 6)) < 0.7
    m[:, 0] = True
    kp = r.random((2, 6)) < 0.3
    kp[:, 0] = False
    mha_case("mha_causal_mask_kpm", E, H, randn(r, (2, 6, E)), seed=37, causal="top-left", mask=m, kpm=kp)
    r = rng_for("mha_average")
    mha_case("mha_average", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)), seed=38,
             average=True)
    r = rng_for("mha_average_masked")
    m = r.random((5, 7)) < 0.6
    m[:, 0] = True
    mha_case("mha_average_masked", E, H, randn(r, (2, 5, E)), randn(r, (2, 7, E)), randn(r, (2, 7, E)), seed=39,
             average=True, mask=m, add_zero_attn=True)
    r = rng_for("mha_unbatched")
    mha_case("mha_unbatched", E, H, randn(r, (5, E)), randn(r, (7, E)), randn(r, (7, E)), seed=40)
    r = rng_for("mha_unbatched_self_causal")
    mha_case("mha_unbatched_self_causal", E, H, randn(r, (6, E)), seed=41, causal="top-left", causal_flag="")
    r = rng_for("mha_unbatched_kpm_mask")
    m = r.random((5, 7)) < 0.6
    m[:, 0] = True
    mha_case("mha_unbatched_kpm_mask", E, H, randn(r, (5, E)), randn(r, (7, E)), randn(r, (7, E)), seed=42,
             mask=m, kpm=np.array([False, True, False, False, True, False, True]))
    r = rng_for("mha_unbatched_average_bias_kv")
    mha_case("mha_unbatched_average_bias_kv", E, H, randn(r, (5, E)), randn(r, (7, E)), randn(r, (7, E)),
             seed=43, average=True, add_bias_kv=True)
    r = rng_for("mha_unbatched_key_lengths")
    mha_case("mha_unbatched_key_lengths", E, H, randn(r, (5, E)), randn(r, (7, E)), randn(r, (7, 12)), seed=44,
             key_lengths=[4])
    r = rng_for("mha_large")
    mha_case("mha_large", 64, 8, randn(r, (2, 65, 64)), randn(r, (2, 65, 64)), randn(r, (2, 65, 64)), seed=45)
    r = rng_for("mha_large_causal_kpm")
    kp = r.random((2, 65)) < 0.2
    kp[:, 0] = False
    mha_case("mha_large_causal_kpm", 64, 8, randn(r, (2, 65, 64)), seed=46, causal="top-left", kpm=kp)
    r = rng_for("mha_heads_1")
    mha_case("mha_heads_1", 16, 1, randn(r, (2, 4, 16)), randn(r, (2, 6, 16)), randn(r, (2, 6, 16)), seed=47)
    r = rng_for("mha_head_dim_1")
    mha_case("mha_head_dim_1", 8, 8, randn(r, (2, 4, 8)), randn(r, (2, 6, 8)), randn(r, (2, 6, 8)), seed=48)
    r = rng_for("mha_float64")  # float64 inputs: auto -> float64
    mha_case("mha_float64", E, H, randn(r, (2, 5, E), np.float64), randn(r, (2, 7, E), np.float64),
             randn(r, (2, 7, E), np.float64), seed=49, add_bias_kv=True, tol=TOL_MHA64)


def main():
    if os.path.isdir(OUT_ROOT):
        shutil.rmtree(OUT_ROOT)
    os.makedirs(OUT_ROOT)
    sdpa_cases()
    mha_cases()
    with open(os.path.join(OUT_ROOT, "meta.json"), "w") as f:
        json.dump({"generator": "tests/make_golden.py", "torch": torch.__version__.split("+")[0],
                   "numpy": np.__version__, "cases": CASES}, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(OUT_ROOT) for fn in fns)
    print(f"{len(CASES)} cases, {size / 1e6:.2f} MB in {OUT_ROOT}")


if __name__ == "__main__":
    main()
