#!/usr/bin/python3
"""Writes the classic example of attn-cli's README into data/.

  q.npy k.npy v.npy         Q, K, V of shape (N, L, D) = (2, 5, 64), float32
  q.json k.json v.json      the same tensors as JSON ({shape, dtype, data})
  mha_weights.npz           torch.nn.MultiheadAttention(64, 8) state_dict (8 heads, d_model 64)
  tokens.txt                five labels for the sequence positions

Run with Debian's python3 with python3-torch and python3-numpy: /usr/bin/python3 data/make_example.py
"""
import json
import os

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(2024)
q, k, v = (torch.randn(2, 5, 64) for _ in range(3))
for name, t in (("q", q), ("k", k), ("v", v)):
    a = t.numpy().astype(np.float32)
    np.save(os.path.join(here, f"{name}.npy"), a)
    with open(os.path.join(here, f"{name}.json"), "w") as f:
        json.dump({"shape": list(a.shape), "dtype": "float32", "data": a.tolist()}, f)
        f.write("\n")

torch.manual_seed(0)
mha = torch.nn.MultiheadAttention(64, 8, batch_first=True)
np.savez(os.path.join(here, "mha_weights.npz"), **{k: t.detach().numpy() for k, t in mha.state_dict().items()})

with open(os.path.join(here, "tokens.txt"), "w") as f:
    f.write("the\ncat\nsat\non\nmats\n")
