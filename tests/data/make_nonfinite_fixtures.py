#!/usr/bin/python3
"""Writes tests/data/nonfinite/*.npz: attention on inputs holding NaN and infinities, and
what PyTorch's math attention gives for them.

Run with Debian's interpreter (numpy 1.24, torch 1.13): /usr/bin/python3 tests/data/make_nonfinite_fixtures.py

Each CASE.npz holds float32 inputs q (L, E), k (S, E), v (S, Ev), optionally `mask` (bool,
true = may attend, or float added), `causal` (int8 scalar, 1 = top-left) and
`key_lengths` (int64, one value), and torch's results in float64 on those same float32
values: `torch_out` (L, Ev) and `torch_weights` (L, S).

The results are torch 1.13's torch.nn.functional._scaled_dot_product_attention(q, k, v,
attn_mask, 0.0, need_attn_weights=True, is_causal), its math implementation:
softmax(q @ k.T * scale + mask) @ v, where a bool mask and the causal rule become an
additive -inf mask, so a NaN logit stays NaN under it and +inf + -inf is NaN. Key
lengths, which torch's sdpa has not, are given to it as the equivalent bool mask (as
nn.MultiheadAttention turns key_padding_mask into one). One change to 1.13: a row whose
logits are all -inf gets zero weights and output zeros @ v, as in PyTorch >= 2.5
(_safe_softmax), which attn-cli follows.

The cases are read by tests/cli_test.py (attn-cli's fast kernel) and tests/attention/test_attention.cpp
(the reference implementation).
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nonfinite")
NAN, INF = np.float32(np.nan), np.float32(np.inf)


def additive(allowed):
    """A bool mask (true = may attend) as torch adds it: 0 or -inf."""
    return torch.zeros(allowed.shape, dtype=torch.float64).masked_fill(~allowed, float("-inf"))


def torch_attention(q, k, v, mask=None, causal=False, key_lengths=None):
    q, k, v = (torch.tensor(x, dtype=torch.float64) for x in (q, k, v))
    L, S = q.shape[-2], k.shape[-2]
    # torch takes a mask or is_causal, not both: any other combination is one additive mask.
    terms = []
    if mask is not None:
        m = torch.tensor(mask)
        terms.append(m if m.dtype == torch.bool else m.to(torch.float64))
    if key_lengths is not None:
        terms.append(torch.arange(S)[None, :].expand(L, S) < int(key_lengths[0]))
    if causal and terms:
        terms.append(torch.ones(L, S, dtype=torch.bool).tril())
        causal = False
    if len(terms) == 1:
        attn_mask = terms[0]
    elif terms:
        attn_mask = sum(additive(t) if t.dtype == torch.bool else t for t in terms)
    else:
        attn_mask = None
    out, weights = F._scaled_dot_product_attention(q, k, v, attn_mask, 0.0, True, causal)
    # The logits torch softmaxed, to find the rows that are all -inf (PyTorch >= 2.5).
    bias = torch.zeros(L, S, dtype=torch.float64)
    if causal:
        bias = additive(torch.ones(L, S, dtype=torch.bool).tril())
    elif attn_mask is not None:
        bias = additive(attn_mask) if attn_mask.dtype == torch.bool else attn_mask
    logits = q @ k.transpose(-1, -2) / np.sqrt(q.shape[-1]) + bias
    all_masked = (logits == float("-inf")).all(-1, keepdim=True)
    weights = torch.where(all_masked, torch.zeros_like(weights), weights)
    out = torch.where(all_masked, weights @ v, out)
    return out.numpy(), weights.numpy()


def inputs(seed, L=4, S=5, E=3):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(shape).astype(np.float32) for shape in ((L, E), (S, E), (S, E)))


def case(name, q, k, v, mask=None, causal=False, key_lengths=None):
    out, weights = torch_attention(q, k, v, mask, causal, key_lengths)
    arrays = {"q": q, "k": k, "v": v, "torch_out": out, "torch_weights": weights}
    if mask is not None:
        arrays["mask"] = mask
    if causal:
        arrays["causal"] = np.int8(1)
    if key_lengths is not None:
        arrays["key_lengths"] = np.array(key_lengths, np.int64)
    np.savez_compressed(os.path.join(OUT, name + ".npz"), **arrays)


def main():
    os.makedirs(OUT, exist_ok=True)
    seed = iter(range(1000))

    def edit(fn, **kw):
        q, k, v = inputs(next(seed), **kw)
        fn(q, k, v)
        return q, k, v

    # No mask: every key is visible.
    case("nan_q", *edit(lambda q, k, v: q.__setitem__((1, 2), NAN)))
    case("nan_k", *edit(lambda q, k, v: k.__setitem__((3, 0), NAN)))
    case("posinf_q", *edit(lambda q, k, v: q.__setitem__((1, 2), INF)))
    case("neginf_q", *edit(lambda q, k, v: q.__setitem__((1, 2), -INF)))
    case("posinf_k", *edit(lambda q, k, v: k.__setitem__((2, 1), INF)))
    case("neginf_k", *edit(lambda q, k, v: k.__setitem__((2, 1), -INF)))
    case("nan_v", *edit(lambda q, k, v: v.__setitem__((3, 1), NAN)))
    case("posinf_v", *edit(lambda q, k, v: v.__setitem__((3, 1), INF)))
    case("neginf_v", *edit(lambda q, k, v: v.__setitem__((0, 2), -INF)))
    # -inf in Q with all-positive keys: every logit of row 1 is -inf, a fully masked row.
    q, k, v = inputs(next(seed))
    q[1] = [-INF, 0, 0]
    k[:, 0] = np.abs(k[:, 0]) + 0.5
    case("neginf_q_row_all_neginf", q, k, v)

    # Float masks: added to the logits.
    m = np.random.default_rng(100).standard_normal((4, 5)).astype(np.float32)
    m[2, 3] = NAN
    case("nan_float_mask", *inputs(next(seed)), mask=m)
    m = np.zeros((4, 5), np.float32)
    m[2] = -INF
    m[0, 1] = -INF
    case("neginf_float_mask_rows", *inputs(next(seed)), mask=m)
    q, k, v = inputs(next(seed))
    v[1, 0] = NAN  # a NaN value under a fully masked row: zeros @ v is NaN there too
    case("neginf_float_mask_row_nan_v", q, k, v, mask=m)
    m = np.zeros((4, 5), np.float32)
    m[1, 0] = INF
    case("posinf_float_mask", *inputs(next(seed)), mask=m)

    # Bool masks: the hidden key still takes part in q @ k.T (NaN + -inf is NaN).
    allowed = np.ones((4, 5), bool)
    allowed[:, 4] = False
    case("nan_k_hidden_by_bool_mask", *edit(lambda q, k, v: k.__setitem__((4, 0), NAN)), mask=allowed)
    case("nan_v_hidden_by_bool_mask", *edit(lambda q, k, v: v.__setitem__((4, 0), NAN)), mask=allowed)

    # The causal rule (top-left, L=4 < S=5: key 4 is hidden from every row) and key lengths.
    case("nan_q_causal", *edit(lambda q, k, v: q.__setitem__((1, 2), NAN)), causal=True)
    case("posinf_q_causal", *edit(lambda q, k, v: q.__setitem__((1, 2), INF)), causal=True)
    case("nan_k_causal", *edit(lambda q, k, v: k.__setitem__((3, 0), NAN)), causal=True)
    case("nan_k_hidden_by_causal", *edit(lambda q, k, v: k.__setitem__((4, 0), NAN)), causal=True)
    case("posinf_k_causal", *edit(lambda q, k, v: k.__setitem__((2, 1), INF)), causal=True)
    case("nan_v_causal", *edit(lambda q, k, v: v.__setitem__((3, 1), NAN)), causal=True)
    case("nan_v_hidden_by_causal", *edit(lambda q, k, v: v.__setitem__((4, 1), NAN)), causal=True)
    m = np.zeros((4, 5), np.float32)
    m[2, 3] = NAN
    case("nan_float_mask_hidden_by_causal", *inputs(next(seed)), mask=m, causal=True)
    # Past the 64-row query blocks of the fast kernel: a NaN value row only the later rows see.
    case("nan_v_hidden_by_causal_130", *edit(lambda q, k, v: v.__setitem__((100, 0), NAN), L=130, S=130, E=2),
         causal=True)
    case("nan_v_past_key_length", *edit(lambda q, k, v: v.__setitem__((4, 0), NAN)), key_lengths=[3])
    case("nan_k_past_key_length", *edit(lambda q, k, v: k.__setitem__((4, 0), NAN)), key_lengths=[3])


if __name__ == "__main__":
    main()
