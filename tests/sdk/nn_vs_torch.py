#!/usr/bin/env python3
"""Oracle for test_nn_vs_torch.cpp: rebuilds each case's layer in PyTorch
(float64) from what contra dumped, runs the same forward and backward
(L = sum(y * w)), and prints per case: id, then the largest relative
differences of y, dL/dx and the parameter gradients (0 without parameters).

cases.txt, one case a line:
  <id> <train|eval> <input shape> <output shape> <layer spec> | <parameter name>=<dims, e.g. 4x3x1x1> ...
Activations are NHWC ([N, H, W, C]) or [N, D]; PyTorch works in NCHW."""
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
folder = sys.argv[1]
LINE = re.compile(r"^(\S+) (train|eval) (\[[^\]]*\]) (\[[^\]]*\]) (.*?) \|(.*)$")


def load(name, shape):
    data = np.fromfile(f"{folder}/{name}.bin", dtype=np.float32).reshape(shape)
    return torch.tensor(data, dtype=torch.float64)


def shape(text):
    return [int(v) for v in text.strip("[]").split(",") if v.strip()]


def nchw(t):
    return t.permute(0, 3, 1, 2) if t.dim() == 4 else t


def nhwc(t):
    return t.permute(0, 2, 3, 1) if t.dim() == 4 else t


def rel(a, b):
    return ((a - b).abs().max() / (b.abs().max() + 1e-30)).item()


for line in open(f"{folder}/cases.txt"):
    m = LINE.match(line.rstrip("\n"))
    if not m:
        sys.exit(f"bad case line: {line!r}")
    cid, mode, in_shape, out_shape, spec, names = m.groups()
    train = mode == "train"
    kind, *args = spec.split()
    args = [int(a) for a in args]
    P = {}
    for item in names.split():
        n, dims = item.split("=")
        P[n] = load(f"{cid}_p_{n}", [int(d) for d in dims.split("x")]).requires_grad_()
    x = load(f"{cid}_x", shape(in_shape)).requires_grad_()
    if kind == "conv2d":
        cin, cout, k, s, p, bias = args
        y = nhwc(F.conv2d(nchw(x), P["conv.weight"], P["conv.bias"] if bias else None, stride=s, padding=p))
    elif kind == "linear":
        cin, cout, bias = args
        y = F.linear(x, P["fc.weight"], P["fc.bias"] if bias else None)
    elif kind == "batch_norm":
        (c,) = args
        rm = rv = None
        if not train:
            rm, rv = load(f"{cid}_b_bn.running_mean", [c]), load(f"{cid}_b_bn.running_var", [c])
        y = nhwc(F.batch_norm(nchw(x), rm, rv, P["bn.weight"], P["bn.bias"], training=train, eps=1e-5))
    elif kind == "batch_norm_relu":
        y = F.relu(nhwc(F.batch_norm(nchw(x), None, None, P["bn.weight"], P["bn.bias"], training=True, eps=1e-5)))
    elif kind == "max_pool":
        k, s, p = args
        y = nhwc(F.max_pool2d(nchw(x), k, s, p))
    elif kind == "avg_pool":
        k, s, p, include_pad = args
        y = nhwc(F.avg_pool2d(nchw(x), k, s, p, count_include_pad=bool(include_pad)))
    elif kind == "global_avg_pool":
        y = x.mean(dim=(1, 2))
    elif kind == "relu":
        y = F.relu(x)
    else:
        sys.exit(f"unknown layer {kind!r}")
    if list(y.shape) != shape(out_shape):
        sys.exit(f"{cid}: oracle output {list(y.shape)}, contra {shape(out_shape)}")
    (y * load(f"{cid}_w", list(y.shape))).sum().backward()
    params = max([rel(p.grad, load(f"{cid}_g_{n}", list(p.shape))) for n, p in P.items()], default=0.0)
    print(cid, rel(y.detach(), load(f"{cid}_y", list(y.shape))), rel(x.grad, load(f"{cid}_dx", list(x.shape))), params)
