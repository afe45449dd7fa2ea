#!/usr/bin/env python3
"""The torchvision peers of tools/bench/augment: SimCLR two-view augmentation
(random resized crop scale 0.2-1, horizontal flip, color jitter 0.4/0.4/0.4/0.1
with p 0.8, grayscale p 0.2, normalize) measured three ways, printing one JSON
line of views/s each:
  dataloader_pil     per-sample torchvision transforms on PIL images, DataLoader(num_workers=W)
  dataloader_tensor  the same transforms on uint8 tensors, DataLoader(num_workers=W)
  batched            the same augmentations written as batched tensor operations, one process
Run it through tools/bench/augment, which sets the peer up at its best.
"""
import argparse
import json
import math
import time

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image


def simclr_transform(size, mean, std, pil):
    ops = [
        T.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=False) if not pil else T.RandomResizedCrop(size, scale=(0.2, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
    ]
    if pil:
        ops.append(T.ToTensor())
    else:
        ops.append(T.ConvertImageDtype(torch.float32))
    ops.append(T.Normalize(mean, std))
    return T.Compose(ops)


class TwoViews(torch.utils.data.Dataset):
    def __init__(self, images, transform, pil):
        self.images, self.transform, self.pil = images, transform, pil

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        if self.pil:
            img = Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img)
        else:
            img = torch.from_numpy(img).permute(2, 0, 1)
        return self.transform(img), self.transform(img)


def time_loader(images, size, mean, std, pil, workers, batch, seconds):
    ds = TwoViews(images, simclr_transform(size, mean, std, pil), pil)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                     persistent_workers=workers > 0)
    views, start = 0, None
    for epoch in range(100):
        for i, (a, b) in enumerate(dl):
            if start is None:  # skip worker start-up
                start = time.perf_counter()
                continue
            views += a.shape[0] + b.shape[0]
            if time.perf_counter() - start > seconds:
                return views / (time.perf_counter() - start)
    return views / (time.perf_counter() - start)


def batched_views(x, size, mean, std, gen):
    """x: uint8 [B, C, H, W]. The same augmentations as batched tensor operations."""
    b, c, h, w = x.shape
    x = x.float() / 255.0
    # random resized crop: per-sample boxes, one grid_sample for the batch
    area = torch.empty(b).uniform_(0.2, 1.0, generator=gen)
    logr = torch.empty(b).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen)
    ratio = torch.exp(logr)
    cw = torch.sqrt(area * ratio).clamp(max=1.0)
    ch = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = torch.rand(b, generator=gen) * (1 - cw) + cw / 2
    cy = torch.rand(b, generator=gen) * (1 - ch) + ch / 2
    theta = torch.zeros(b, 2, 3)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta[:, 0, 0] = cw * flip
    theta[:, 0, 2] = cx * 2 - 1
    theta[:, 1, 1] = ch
    theta[:, 1, 2] = cy * 2 - 1
    grid = torch.nn.functional.affine_grid(theta, (b, c, size, size), align_corners=False)
    x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", align_corners=False)
    # color jitter with p 0.8 (brightness, contrast, saturation; hue via a YIQ rotation)
    apply = (torch.rand(b, 1, 1, 1, generator=gen) < 0.8).float()
    def factor(s):
        return torch.empty(b, 1, 1, 1).uniform_(1 - s, 1 + s, generator=gen)
    y = x * factor(0.4)
    gray = (y * torch.tensor([0.299, 0.587, 0.114][:c]).view(1, c, 1, 1)).sum(1, keepdim=True) if c == 3 else y
    y = (y - gray.mean((2, 3), keepdim=True)) * factor(0.4) + gray.mean((2, 3), keepdim=True)
    if c == 3:
        gray = (y * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        y = (y - gray) * factor(0.4) + gray
        angle = torch.empty(b).uniform_(-0.1, 0.1, generator=gen) * 2 * math.pi
        cos, sin = torch.cos(angle).view(b, 1, 1), torch.sin(angle).view(b, 1, 1)
        yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        rgb = torch.linalg.inv(yiq)
        rot = torch.zeros(b, 3, 3)
        rot[:, 0, 0] = 1
        rot[:, 1, 1] = cos[:, 0, 0]
        rot[:, 1, 2] = -sin[:, 0, 0]
        rot[:, 2, 1] = sin[:, 0, 0]
        rot[:, 2, 2] = cos[:, 0, 0]
        m = rgb @ rot @ yiq
        y = torch.einsum("bij,bjhw->bihw", m, y)
    x = (apply * y.clamp(0, 1) + (1 - apply) * x)
    if c == 3:
        g = (torch.rand(b, 1, 1, 1, generator=gen) < 0.2).float()
        gray = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True).expand(-1, 3, -1, -1)
        x = g * gray + (1 - g) * x
    return (x - torch.tensor(mean).view(1, c, 1, 1)) / torch.tensor(std).view(1, c, 1, 1)


def time_batched(images, size, mean, std, batch, seconds):
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    gen = torch.Generator().manual_seed(0)
    views, start, i = 0, None, 0
    while True:
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
        xb = x[idx]
        a = batched_views(xb, size, mean, std, gen)
        b = batched_views(xb, size, mean, std, gen)
        if start is None:
            start = time.perf_counter()
            continue
        views += a.shape[0] + b.shape[0]
        if time.perf_counter() - start > seconds:
            return views / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True, help="raw uint8 file of N images HxWxC")
    ap.add_argument("--shape", required=True, help="N,H,W,C")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n, h, w, c = (int(v) for v in args.shape.split(","))
    images = np.fromfile(args.images, dtype=np.uint8).reshape(n, h, w, c)
    mean = [0.5] * c
    std = [0.25] * c
    out = {"peer": "torchvision " + __import__("torchvision").__version__}
    out["dataloader_pil"] = time_loader(images, h, mean, std, True, args.workers, args.batch, args.seconds)
    out["dataloader_tensor"] = time_loader(images, h, mean, std, False, args.workers, args.batch, args.seconds)
    out["batched"] = time_batched(images, h, mean, std, args.batch, args.seconds)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
