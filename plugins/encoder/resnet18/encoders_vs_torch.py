#!/usr/bin/env python3
"""Oracle for test_encoders_vs_torch.cpp: rebuilds seed_resnet or resnet18
in PyTorch (float64) from the parameters contra dumped, runs the same forward
and backward, and prints the largest relative differences as JSON."""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
folder, model = sys.argv[1], sys.argv[2]
meta = json.load(open(f"{folder}/meta.json"))


def load(name, shape):
    data = np.fromfile(f"{folder}/{name}.bin", dtype=np.float32).reshape(shape)
    return torch.tensor(data, dtype=torch.float64)


P = {n: load("p_" + n, s).requires_grad_() for n, s in meta["params"].items()}
x = load("x", meta["x"]).requires_grad_()


def conv(h, n, stride, pad):
    return F.conv2d(h, P[n + ".weight"], stride=stride, padding=pad)


def bn(h, n):
    return F.batch_norm(h, None, None, P[n + ".weight"], P[n + ".bias"], training=True, eps=1e-5)


if model == "seed_resnet":
    h = F.max_pool2d(F.relu(bn(conv(x, "stem.conv", 1, 1), "stem.bn")), 3, 2, 1)
    for n in ["layer1.0", "layer1.1", "layer2.0", "layer2.1"]:
        h = F.relu(bn(conv(h, n + ".conv", 1, 1), n + ".bn"))
    y = h.mean(dim=(2, 3)) @ P["fc.weight"].t() + P["fc.bias"]
else:
    h = F.relu(bn(conv(x, "stem.conv", 1, 1), "stem.bn"))
    for stage in range(4):
        for b in range(2):
            n = f"layer{stage + 1}.{b}"
            s = (1 if stage == 0 else 2) if b == 0 else 1
            r = F.relu(bn(conv(h, n + ".conv1", s, 1), n + ".bn1"))
            r = bn(conv(r, n + ".conv2", 1, 1), n + ".bn2")
            short = bn(conv(h, n + ".shortcut.conv", s, 0), n + ".shortcut.bn") if n + ".shortcut.conv.weight" in P else h
            h = F.relu(r + short)
    y = h.mean(dim=(2, 3))

w = load("w", list(y.shape))
(y * w).sum().backward()


def rel(a, b):
    return ((a - b).abs().max() / (a.abs().max() + 1e-30)).item()


print(json.dumps({
    "forward": rel(y.detach(), load("y", list(y.shape))),
    "dx": rel(x.grad, load("dx", meta["x"])),
    "params": max(rel(p.grad, load("g_" + n, p.shape)) for n, p in P.items()),
    "count": len(P),
}))
