#!/usr/bin/env python3
"""The cost of a loss written in Python: the SimCLR step of
pipelines/simclr_fashion_mnist.toml (seed_resnet + projection head, batch 256,
two views, adam) with contra's C++ info_nce against the same step with an
NT-Xent written in torch ([loss] plugin = "python", tensors = "torch",
autograd for the gradient). Rounds alternate the two; each round trains
--steps steps and takes the train stage's busy seconds per step from the
run's summary.json (data loading overlaps it and is not counted). Prints
each round, then the median overhead of the Python loss in percent of the
C++ step (the target: under 10%).

Usage (the build's module on PYTHONPATH, Debian's python3 with torch):
    PYTHONPATH=build/python /usr/bin/python3 tools/bench/python_loss.py [--steps 30] [--rounds 3]
"""

import argparse
import json
import os
import statistics
import tempfile

import contra

NTXENT = '''
import torch


class NTXent:
    def __init__(self, temperature=0.5):
        self.temperature = temperature

    def __call__(self, batch):
        z = torch.nn.functional.normalize(batch.z, dim=1)
        s = z @ z.T / self.temperature
        n = s.shape[0]
        eye = torch.eye(n, dtype=torch.bool)
        s = s.masked_fill(eye, float("-inf"))
        positive = (batch.sample[:, None] == batch.sample[None, :]) & ~eye
        log_p = s - torch.logsumexp(s, dim=1, keepdim=True)
        return -log_p[positive].view(n, -1).mean(dim=1).mean()
'''


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    with open(os.path.join(root, "pipelines", "simclr_fashion_mnist.toml"), encoding="utf-8") as f:
        text = f.read()
    # No evaluation (it would run after the steps); the loss table replaced.
    text = text[: text.index("\n[eval]")] + "\n"
    loss_start, loss_end = text.index("[loss]"), text.index("[optimizer]")
    python_loss = '[loss]\nplugin = "python"\nmodule = "bench_ntxent"\nclass = "NTXent"\n' \
                  'args = ["temperature=0.5"]\ntensors = "torch"\n\n'
    with tempfile.TemporaryDirectory(prefix="contra-bench-") as work:
        with open(os.path.join(work, "bench_ntxent.py"), "w", encoding="utf-8") as f:
            f.write(NTXENT)
        pipelines = {"info_nce (C++)": os.path.join(work, "cpp.toml"),
                     "NT-Xent in torch": os.path.join(work, "python.toml")}
        with open(pipelines["info_nce (C++)"], "w", encoding="utf-8") as f:
            f.write(text)
        with open(pipelines["NT-Xent in torch"], "w", encoding="utf-8") as f:
            f.write(text[:loss_start] + python_loss + text[loss_end:])

        import torch
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; contra {contra.__version__}; "
              f"{os.cpu_count()} cores")
        per_step = {name: [] for name in pipelines}
        for r in range(args.rounds):
            for name, pipeline in pipelines.items():
                run_dir = os.path.join(work, f"{r}-{len(per_step[name])}-{name[:4]}")
                summary = contra.run(pipeline, set=[f"train.max_steps={args.steps}"], run_dir=run_dir)
                with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as f:
                    stages = json.load(f)["stages"]
                busy = next(s for s in stages if s["name"] == "train")["busy_s"]
                per_step[name].append(1e3 * busy / summary["steps"])
                print(f"round {r + 1}: {name:18s} {per_step[name][-1]:8.1f} ms per step "
                      f"(loss {summary['losses'][0]:.4f} -> {summary['losses'][-1]:.4f})", flush=True)
        overheads = [p / c - 1 for p, c in zip(per_step["NT-Xent in torch"], per_step["info_nce (C++)"])]
        print(f"Python/torch NT-Xent: median overhead {100 * statistics.median(overheads):+.1f}% of the C++ step "
              f"(rounds: {', '.join(f'{100 * o:+.1f}%' for o in overheads)}); target: under 10%")


if __name__ == "__main__":
    main()
