#!/usr/bin/env python3
"""The PyTorch peer of tools/bench/gpu_train_step: the same SimCLR step on the
GPU (ResNet-18 CIFAR variant + projection head, NT-Xent with t = 0.5, Adam),
set up at its best in eager mode: cudnn.benchmark, the faster of NCHW and
channels_last (both tried), TF32 only with --tf32 (when contra's math mode
allows it). Prints one JSON line.

  python3 tools/bench/gpu_train_step_torch.py --batch 512 --steps 20 --warmup 5 [--tf32]
  python3 tools/bench/gpu_train_step_torch.py --epoch --folder DIR --batch 512 [--workers N]

--epoch: one pass over the CIFAR-10 binary batches in DIR through a
DataLoader (worker processes, pinned memory, non-blocking copies) with
torchvision's SimCLR views, timing each step with CUDA events against wall
time, as gpu_train_step does for contra.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step_torch import ResNet18Cifar  # noqa: E402  the CPU benchmark's model, same as contra's resnet18


def nt_xent(z, temperature):
    z = F.normalize(z, dim=1)
    n = z.shape[0] // 2
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n, device=z.device), torch.arange(0, n, device=z.device)])
    return F.cross_entropy(sim, target)


def build(channels_last):
    torch.manual_seed(0)
    encoder = ResNet18Cifar(3)
    feat = encoder.out_dim
    # contra's projection_head: Linear (no bias, batch norm follows) - BN - ReLU - Linear.
    head = nn.Sequential(nn.Linear(feat, feat, bias=False), nn.BatchNorm1d(feat), nn.ReLU(inplace=True),
                         nn.Linear(feat, 128))
    model = nn.Sequential(encoder, head).cuda()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, opt


def step(model, opt, x):
    loss = nt_xent(model(x), 0.5)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def time_steps(batch, steps, warmup, channels_last):
    model, opt = build(channels_last)
    x = torch.rand(2 * batch, 3, 32, 32, device="cuda")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for _ in range(warmup):
        loss = step(model, opt, x)
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(steps)]
    t0 = time.perf_counter()
    for a, b in events:
        a.record()
        loss = step(model, opt, x)
        b.record()
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    gpu_ms = sum(a.elapsed_time(b) for a, b in events) / steps
    return {"images_per_s": 2 * batch * steps / wall, "gpu_ms": gpu_ms, "loss": float(loss),
            "channels_last": channels_last}


def epoch(args):
    import numpy as np
    import torchvision.transforms as T
    from PIL import Image

    raw = b"".join(open(os.path.join(args.folder, f"data_batch_{i}.bin"), "rb").read() for i in range(1, 6))
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()  # HWC
    tf = T.Compose([T.RandomResizedCrop(32, scale=(0.2, 1.0)), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize([0.49, 0.48, 0.45], [0.25, 0.24, 0.26])])

    class Views(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            img = Image.fromarray(images[i])
            return tf(img), tf(img)

    workers = args.workers if args.workers > 0 else min(16, os.cpu_count() or 1)
    dl = torch.utils.data.DataLoader(Views(), batch_size=args.batch, shuffle=True, drop_last=True,
                                     num_workers=workers, pin_memory=True, persistent_workers=False,
                                     prefetch_factor=4)
    model, opt = build(args.channels_last)
    events, ends = [], []
    start = time.perf_counter()
    for a, b in dl:
        x = torch.cat([a, b]).cuda(non_blocking=True)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        step(model, opt, x)
        e1.record()
        events.append((e0, e1))
        # A step's end as the host sees it, like contra's sink (the step is queued, not done):
        # wall time per step is measured between these.
        ends.append(time.perf_counter())
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    ends[-1] = start + wall
    spans = [a.elapsed_time(b) / 1e3 for a, b in events]
    skip = args.skip
    wall_late = ends[-1] - ends[skip - 1]
    print(json.dumps({"peer": "pytorch " + torch.__version__, "steps": len(spans), "wall_s": wall,
                      "busy_s": sum(spans), "busy_late_s": sum(spans[skip:]), "wall_late_s": wall_late,
                      "images_per_s": 2 * args.batch * (len(spans) - skip) / wall_late, "workers": workers}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in matmuls and convolutions")
    ap.add_argument("--epoch", action="store_true")
    ap.add_argument("--folder", default="")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers; 0 = one per core, at most 16")
    ap.add_argument("--skip", type=int, default=2, help="--epoch: steps left out of the steady-state figures")
    ap.add_argument("--channels-last", dest="channels_last", action="store_true",
                    help="--epoch: channels_last (the step benchmark tries both)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no usable GPU for PyTorch"}))
        sys.exit(3)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.set_float32_matmul_precision("high" if args.tf32 else "highest")
    if args.epoch:
        return epoch(args)
    # Both layouts, briefly; the faster one timed in full.
    probe = {cl: time_steps(args.batch, 5, 3, cl)["images_per_s"] for cl in (False, True)}
    best = max(probe, key=probe.get)
    r = time_steps(args.batch, args.steps, args.warmup, best)
    r.update({"peer": "pytorch " + torch.__version__, "tf32": args.tf32, "probe_images_per_s": probe})
    print(json.dumps(r))


if __name__ == "__main__":
    main()
