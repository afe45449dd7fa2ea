#!/usr/bin/env python3
"""The two-tower losses (clip, siglip) in PyTorch autograd, float64, written as
open_clip writes them, as the oracle of test_clip.cpp and test_siglip.cpp
(tests/support/torch_oracle.hpp).

Usage: two_tower_vs_torch.py DIR. DIR holds meta.json ({"loss": "clip" or
"siglip", "n", "d", "first", "second": the views' indices, "t", "b",
"max_scale", and contra's "value", "dt", "db"}), z.bin ([2N, D] f32) and
grad.bin (contra's dL/dz, [2N, D] f32). Prints one JSON object: the
differences between contra and torch, and torch's magnitudes to scale them.
"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F


def main(folder):
    with open(f"{folder}/meta.json") as f:
        meta = json.load(f)
    n, d = meta["n"], meta["d"]
    z_np = np.fromfile(f"{folder}/z.bin", dtype=np.float32).reshape(2 * n, d)
    grad_contra = np.fromfile(f"{folder}/grad.bin", dtype=np.float32).reshape(2 * n, d).astype(np.float64)

    z = torch.tensor(z_np, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(meta["t"], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(meta["b"], dtype=torch.float64, requires_grad=True)
    first = F.normalize(z[meta["first"] * n:(meta["first"] + 1) * n], dim=1)
    second = F.normalize(z[meta["second"] * n:(meta["second"] + 1) * n], dim=1)
    cosines = first @ second.T
    if meta["loss"] == "clip":
        # open_clip's ClipLoss; its logit_scale.exp() clamped as CLIP clamps it.
        logits = t.exp().clamp(max=meta["max_scale"]) * cosines
        labels = torch.arange(n)
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    else:
        # open_clip's SigLipLoss: labels 2·I − 1, summed, divided by the batch size.
        logits = t.exp() * cosines + b
        labels = 2 * torch.eye(n, dtype=torch.float64) - 1
        loss = -F.logsigmoid(labels * logits).sum() / n
    loss.backward()

    grad = z.grad.numpy()
    dt = 0.0 if t.grad is None else float(t.grad)
    db = 0.0 if b.grad is None else float(b.grad)
    print(json.dumps({
        "value": abs(float(loss) - meta["value"]),
        "torch_value": float(loss),
        "grad": float(np.abs(grad - grad_contra).max()),
        "grad_scale": float(np.abs(grad).max()),
        "dt": abs(dt - meta["dt"]),
        "torch_dt": dt,
        "db": abs(db - meta["db"]),
        "torch_db": db,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
