#!/usr/bin/env python3
"""Oracle for test_text_transformer_vs_torch.cpp: rebuilds text_transformer
in PyTorch (float64) from the parameters contra dumped, as CLIP's text
encoder with PyTorch's own multi-head attention (causal attn_mask and
key_padding_mask), runs the same forward and backward, and prints the
largest relative differences as JSON."""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
folder = sys.argv[1]
meta = json.load(open(f"{folder}/meta.json"))
cfg = meta["config"]


def load(name, shape, dtype=np.float32):
    data = np.fromfile(f"{folder}/{name}.bin", dtype=dtype).reshape(shape)
    return torch.tensor(data.astype(np.float64) if dtype == np.float32 else data.astype(np.int64))


P = {n: load("p_" + n, s).requires_grad_() for n, s in meta["params"].items()}
ids = load("x", meta["x"], np.int32)
n, length = ids.shape
width, heads = cfg["width"], cfg["heads"]
# Valid positions: bos through the first eos; the rest is padding.
valid = (ids == cfg["eos"]).int().argmax(dim=1) + 1
padding = torch.arange(length)[None, :] >= valid[:, None]  # [N, L], True = never attended to
causal = torch.ones(length, length, dtype=torch.bool).triu(1) if cfg["causal"] else None  # True = hidden


def ln(h, name):
    return F.layer_norm(h, (width,), P[name + ".weight"], P[name + ".bias"], eps=1e-5)


h = F.embedding(ids, P["token_embedding.weight"]) + P["positional_embedding"]  # [N, L, W]
h = h.transpose(0, 1)  # [L, N, W], as nn.MultiheadAttention takes it
for i in range(cfg["layers"]):
    b = f"blocks.{i}."
    a = ln(h, b + "ln_1")
    a, _ = F.multi_head_attention_forward(
        a, a, a, width, heads, P[b + "attn.in_proj.weight"], P[b + "attn.in_proj.bias"], None, None, False, 0.0,
        P[b + "attn.out_proj.weight"], P[b + "attn.out_proj.bias"], training=True, key_padding_mask=padding,
        need_weights=False, attn_mask=causal)
    h = h + a
    m = F.linear(ln(h, b + "ln_2"), P[b + "mlp.c_fc.weight"], P[b + "mlp.c_fc.bias"])
    h = h + F.linear(F.gelu(m), P[b + "mlp.c_proj.weight"], P[b + "mlp.c_proj.bias"])
h = h.transpose(0, 1)  # [N, L, W]
if cfg["pooling"] == "eos":
    pooled = h[torch.arange(n), valid - 1]
else:
    pooled = (h * (~padding)[..., None]).sum(dim=1) / valid[:, None]
y = ln(pooled, "ln_final") @ P["text_projection.weight"].t()

w = load("w", list(y.shape))
(y * w).sum().backward()


def rel(a, b):
    return ((a - b).abs().max() / (a.abs().max() + 1e-30)).item()


print(json.dumps({
    "forward": rel(y.detach(), load("y", list(y.shape))),
    "params": max(rel(p.grad, load("g_" + n, p.shape)) for n, p in P.items()),
    "worst_param": max(P, key=lambda k: rel(P[k].grad, load("g_" + k, P[k].shape))),
    "count": len(P),
}))
