#!/usr/bin/env python3
"""Oracle for test_vit_vs_torch.cpp: rebuilds vit in PyTorch (float64) from
the parameters contra dumped, as CLIP's VisionTransformer (conv1 patch
embedding, class token, positions, ln_pre, blocks with PyTorch's own
multi-head attention, ln_post, projection), runs the same forward and
backward, and prints the largest relative differences as JSON."""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
folder = sys.argv[1]
meta = json.load(open(f"{folder}/meta.json"))
cfg = meta["config"]


def load(name, shape):
    return torch.tensor(np.fromfile(f"{folder}/{name}.bin", dtype=np.float32).reshape(shape).astype(np.float64))


P = {n: load("p_" + n, s).requires_grad_() for n, s in meta["params"].items()}
x = load("x", meta["x"]).requires_grad_()
n, channels = x.shape[0], x.shape[1]
width, heads, patch = cfg["width"], cfg["heads"], cfg["patch"]


def ln(h, name):
    return F.layer_norm(h, (width,), P[name + ".weight"], P[name + ".bias"], eps=1e-5)


conv = P["patch_embedding.weight"].reshape(width, channels, patch, patch)
h = F.conv2d(x, conv, stride=patch)  # [N, W, gh, gw]
h = h.flatten(2).transpose(1, 2)  # [N, P, W], patches row-major over the grid
h = torch.cat([P["class_embedding"].expand(n, 1, width), h], dim=1) + P["positional_embedding"]
h = ln(h, "ln_pre").transpose(0, 1)  # [L, N, W]
for i in range(cfg["layers"]):
    b = f"blocks.{i}."
    a = ln(h, b + "ln_1")
    a, _ = F.multi_head_attention_forward(
        a, a, a, width, heads, P[b + "attn.in_proj.weight"], P[b + "attn.in_proj.bias"], None, None, False, 0.0,
        P[b + "attn.out_proj.weight"], P[b + "attn.out_proj.bias"], training=True, need_weights=False)
    h = h + a
    m = F.linear(ln(h, b + "ln_2"), P[b + "mlp.c_fc.weight"], P[b + "mlp.c_fc.bias"])
    h = h + F.linear(F.gelu(m), P[b + "mlp.c_proj.weight"], P[b + "mlp.c_proj.bias"])
h = h.transpose(0, 1)  # [N, L, W]
pooled = h[:, 0] if cfg["pooling"] == "cls" else h.mean(dim=1)
y = ln(pooled, "ln_post") @ P["projection.weight"].t()

w = load("w", list(y.shape))
(y * w).sum().backward()


def rel(a, b):
    return ((a - b).abs().max() / (a.abs().max() + 1e-30)).item()


print(json.dumps({
    "forward": rel(y.detach(), load("y", list(y.shape))),
    "params": max(rel(p.grad, load("g_" + n, p.shape)) for n, p in P.items()),
    "worst_param": max(P, key=lambda k: rel(P[k].grad, load("g_" + k, P[k].shape))),
    "input": rel(x.grad, load("dx", list(x.shape))),
    "count": len(P),
}))
