#!/usr/bin/env python3
"""The PyTorch peer of tools/bench/train_step: one SimCLR training step
(two views, NT-Xent, Adam) with the same encoder, head and batch as contra's,
timed the same way. Prints one JSON line with images/s and the split.

Run through train_step (which sets it up at its best: tcmalloc preloaded,
OpenBLAS with OpenMP, channels_last, 2 threads), or by hand:
  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp \
  /usr/bin/python3 tools/bench/train_step_torch.py --model seed_resnet --batch 256 --size 28 --channels 1
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SeedResNet(nn.Module):
    """The ResNetEncoder of the classic contrastive tutorial (see contra's seed_resnet)."""

    def __init__(self, channels, out_dim=128):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(channels, 64), nn.MaxPool2d(3, 2, 1))
        self.layer1 = nn.Sequential(*conv_bn_relu(64, 64), *conv_bn_relu(64, 64))
        self.layer2 = nn.Sequential(*conv_bn_relu(64, 128), *conv_bn_relu(128, 128))
        self.fc = nn.Linear(128, out_dim)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class ResNet18Cifar(nn.Module):
    """ResNet-18, CIFAR variant: 3x3 stem, no max pool (see contra's resnet18)."""

    def __init__(self, channels, width=64):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        layers, cin = [], w
        for i, cout in enumerate([w, 2 * w, 4 * w, 8 * w]):
            layers += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1)


def nt_xent(z, temperature):
    z = F.normalize(z, dim=1)
    n = z.shape[0] // 2
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def end_to_end(args, model, opt):
    """Steps fed by a DataLoader: torchvision SimCLR views made by worker processes."""
    import numpy as np
    import torchvision.transforms as T
    from PIL import Image

    images = np.fromfile(args.images, dtype=np.uint8).reshape(-1, 28, 28)
    tf = T.Compose([T.RandomResizedCrop(28, scale=(0.2, 1.0)), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize([0.286], [0.353])])

    class Views(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            img = Image.fromarray(images[i])
            return tf(img), tf(img)

    dl = torch.utils.data.DataLoader(Views(), batch_size=args.batch, shuffle=True, drop_last=True,
                                     num_workers=args.workers, persistent_workers=True)
    it = iter(dl)
    train_s, start = 0.0, None
    for step in range(args.warmup + args.pipeline_steps):
        if step == args.warmup:
            start = time.perf_counter()
        a, b = next(it)
        t0 = time.perf_counter()
        x = torch.cat([a, b]).contiguous(memory_format=torch.channels_last)
        z = model(x)
        loss = nt_xent(z, 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= args.warmup:
            train_s += time.perf_counter() - t0
    wall = time.perf_counter() - start
    print(json.dumps({"peer": "pytorch " + torch.__version__, "wall_s": wall, "train_s": train_s,
                      "images_per_s": 2 * args.batch * args.pipeline_steps / wall}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["seed_resnet", "resnet18"], default="seed_resnet")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pipeline-steps", type=int, default=0,
                    help="end to end: this many steps on Fashion-MNIST through a DataLoader with --workers workers")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--images", default="", help="raw uint8 Fashion-MNIST images (N,28,28,1) for --pipeline-steps")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model == "seed_resnet":
        encoder = SeedResNet(args.channels)
        feat = 128
    else:
        encoder = ResNet18Cifar(args.channels)
        feat = encoder.out_dim
    head = nn.Sequential(nn.Linear(feat, feat), nn.BatchNorm1d(feat), nn.ReLU(inplace=True), nn.Linear(feat, 128))
    model = nn.Sequential(encoder, head).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(2 * args.batch, args.channels, args.size, args.size).contiguous(memory_format=torch.channels_last)
    if args.pipeline_steps > 0:
        return end_to_end(args, model, opt)

    split = {"forward": 0.0, "loss": 0.0, "backward": 0.0, "optimizer": 0.0}
    totals = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        z = model(x)
        t1 = time.perf_counter()
        loss = nt_xent(z, 0.5)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if step >= args.warmup:
            split["forward"] += t1 - t0
            split["loss"] += t2 - t1
            split["backward"] += t3 - t2
            split["optimizer"] += t4 - t3
            totals.append(t4 - t0)
    per_step = sorted(totals)[len(totals) // 2]  # the median step, as contra's side takes it
    print(json.dumps({
        "peer": "pytorch " + torch.__version__,
        "threads": torch.get_num_threads(),
        "step_s": per_step,
        "images_per_s": 2 * args.batch / per_step,
        "split_s": {k: v / args.steps for k, v in split.items()},
        "loss": float(loss),
    }))


if __name__ == "__main__":
    main()
