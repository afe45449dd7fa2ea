#!/usr/bin/env python3
"""The PyTorch peer of tools/bench/ntxent: NT-Xent forward + backward over 2N
rows of width D (normalize, similarity matmul, diagonal masked, cross-entropy
against the other view, backward), timed the same way as contra's info_nce.
Prints one JSON line per size: {"rows": 2N, "dim": D, "seconds": best, "loss": value}.

Run through ntxent (which sets it up at its best: tcmalloc preloaded, OpenBLAS
with OpenMP, 2 threads), or by hand:
  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp \
  /usr/bin/python3 tools/bench/ntxent_torch.py --rows 512 2048 8192 --dim 128
ntxent passes --input, a folder with the very rows contra used, so that the two
losses can be compared.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def nt_xent(z, temperature):
    z = F.normalize(z, dim=1)
    n = z.shape[0] // 2
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[512, 2048, 8192])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.5)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.5,
                    help="repeat beyond --reps until this many seconds were measured (at most 200 runs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input", default="",
                    help="folder with z_<rows>.f32 (rows x dim float32, row-major) to use instead of random rows")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    for rows in args.rows:
        if args.input:
            z0 = torch.from_file(f"{args.input}/z_{rows}.f32", size=rows * args.dim, dtype=torch.float32)
            z0 = z0.reshape(rows, args.dim).clone()
        else:
            z0 = torch.randn(rows, args.dim, generator=torch.Generator().manual_seed(rows))
        best, spent, rep = float("inf"), 0.0, 0
        while rep < args.warmup + args.reps or (spent < args.min_time and rep < args.warmup + 200):
            z = z0.clone().requires_grad_(True)
            t0 = time.perf_counter()
            loss = nt_xent(z, args.temperature)
            loss.backward()
            t1 = time.perf_counter()
            if rep >= args.warmup:
                best = min(best, t1 - t0)
                spent += t1 - t0
            rep += 1
        print(json.dumps({"peer": "pytorch " + torch.__version__, "threads": torch.get_num_threads(),
                          "rows": rows, "dim": args.dim, "seconds": best, "loss": float(loss)}), flush=True)


if __name__ == "__main__":
    main()
