#!/usr/bin/env python3
"""The PyTorch peer of tools/bench/text_encoder: one training step of a text
encoder of the same size as contra's text_transformer (token + position
embeddings, nn.TransformerEncoder of pre-LayerNorm GELU layers with a causal
mask and a key padding mask, pooling at eos, final LayerNorm, projection
without bias), the loss sum(y^2) / 2B, torch.optim.Adam; on the same token
rows as contra's side (the same LCG), timed the same way (median step).
Prints one JSON line with the step and its split.

Run through text_encoder (which sets it up at its best: tcmalloc preloaded,
OpenBLAS with OpenMP, 2 threads), or by hand:
  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp \
  /usr/bin/python3 tools/bench/text_encoder_torch.py --batch 256 --length 32 --width 256 --layers 4 --heads 4
"""
import argparse
import contextlib
import json
import time

import torch
import torch.nn as nn

VOCABULARY, PAD, BOS, EOS, FIRST_TEXT_ID = 260, 0, 1, 2, 4  # the bytes tokenizer's
MASK64 = (1 << 64) - 1


def token_rows(batch, length):
    """bos, n tokens (n uniform in 1..L-2), eos, pad: the LCG of text_encoder.cpp."""
    state = 12345

    def draw():
        nonlocal state
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK64
        return state >> 33

    rows, text_tokens = [], 0
    for _ in range(batch):
        n = 1 + draw() % (length - 2)
        row = [BOS] + [FIRST_TEXT_ID + draw() % 256 for _ in range(n)] + [EOS]
        rows.append(row + [PAD] * (length - len(row)))
        text_tokens += n
    return torch.tensor(rows, dtype=torch.long), text_tokens


class TextEncoder(nn.Module):
    def __init__(self, length, width, layers, heads, mlp_ratio, output):
        super().__init__()
        self.token_embedding = nn.Embedding(VOCABULARY, width)
        self.positional_embedding = nn.Parameter(torch.randn(length, width) * 0.01)
        layer = nn.TransformerEncoderLayer(d_model=width, nhead=heads, dim_feedforward=mlp_ratio * width, dropout=0.0,
                                           activation="gelu", norm_first=True, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Linear(width, output, bias=False)
        # True = hidden: each position sees itself and the earlier ones (contra's causal = true).
        self.register_buffer("causal", torch.ones(length, length, dtype=torch.bool).triu(1), persistent=False)

    def forward(self, ids):
        valid = (ids == EOS).int().argmax(dim=1) + 1  # bos through the first eos
        padding = torch.arange(ids.shape[1])[None, :] >= valid[:, None]  # True = never attended to
        h = self.token_embedding(ids) + self.positional_embedding
        h = self.transformer(h, mask=self.causal, src_key_padding_mask=padding)
        pooled = h[torch.arange(ids.shape[0]), valid - 1]
        return self.text_projection(self.ln_final(pooled))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--length", type=int, default=32)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp-ratio", type=int, default=4)
    ap.add_argument("--output", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                    help="bf16: the forward pass under torch.autocast('cpu', torch.bfloat16)")
    ap.add_argument("--foreach", action=argparse.BooleanOptionalAction, default=False,
                    help="Adam's multi-tensor (foreach) implementation")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = TextEncoder(args.length, args.width, args.layers, args.heads, args.mlp_ratio, args.output)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=args.foreach)
    ids, text_tokens = token_rows(args.batch, args.length)

    def autocast():
        if args.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    split = {"forward": [], "loss": [], "backward": [], "optimizer": []}
    totals = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        with autocast():
            y = model(ids)
        t1 = time.perf_counter()
        y = y.float()
        loss = (y * y).sum() / (2 * args.batch)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if step >= args.warmup:
            for k, v in zip(split, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                split[k].append(v)
            totals.append(t4 - t0)

    def median(v):
        v = sorted(v)
        return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2

    print(json.dumps({
        "peer": "pytorch " + torch.__version__,
        "threads": torch.get_num_threads(),
        "precision": args.precision,
        "step_s": median(totals),  # the median step, as contra's side takes it
        "split_s": {k: median(v) for k, v in split.items()},
        "loss": float(loss),
        "parameters": sum(p.numel() for p in model.parameters()),
        "text_tokens": text_tokens,
    }))


if __name__ == "__main__":
    main()
