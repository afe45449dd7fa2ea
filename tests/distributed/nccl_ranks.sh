#!/usr/bin/env bash
# The nccl backend on the GPUs of this machine: a cuda pipeline as one process
# and as R ranks (one per GPU, at most 2; a single GPU runs NCCL with one
# rank), per-step losses compared. Prints SKIPPED without a usable GPU.
# Usage: nccl_ranks.sh CONTRA_BINARY WORK_DIR
set -u
contra=$1 work=$2
fail() { echo "FAILED: $*"; exit 1; }
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${gpus:-0}" -lt 1 ]; then echo "SKIPPED: no GPU (nvidia-smi lists none)"; exit 0; fi
ranks=$(( gpus < 2 ? gpus : 2 ))
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
cat > p.toml <<'TOML'
[pipeline]
seed = 4
[runtime]
data_threads = 1
[train]
device = "cuda"
max_steps = 10
[source]
plugin = "synthetic"
size = 480
height = 16
width = 16
[sampler]
plugin = "random"
batch_size = 48
[[augment.chain]]
plugin = "random_resized_crop"
size = 16
scale = [0.5, 1.0]
[[augment.chain]]
plugin = "normalize"
mean = [0.5]
std = [0.25]
[encoder]
plugin = "mlp"
hidden = [64]
output = 32
[loss]
plugin = "info_nce"
temperature = 0.5
[optimizer]
plugin = "sgd"
lr = 0.1
TOML
"$contra" run p.toml --run-dir one > one.txt 2>&1 || { cat one.txt; fail "one process"; }
mpirun --allow-run-as-root -np "$ranks" "$contra" run p.toml --set distributed.backend='"nccl"' --run-dir ranks \
  > ranks.txt 2>&1 || { cat ranks.txt; fail "$ranks ranks over nccl"; }
python3 - "$ranks" <<'PY' || fail "losses or records"
import json, sys
ranks = int(sys.argv[1])
def losses(run):
    return [json.loads(l)["loss"] for l in open(run + "/metrics.jsonl") if '"type": "step"' in l or '"type":"step"' in l]
a, b = losses("one"), losses("ranks")
assert len(a) == len(b) == 10, (len(a), len(b))
for i, (x, y) in enumerate(zip(a, b)):
    assert abs(x - y) <= 1e-4 * max(1.0, abs(x)), (i, x, y)
run = json.load(open("ranks/run.json"))
assert run["distributed"] == {"backend": "nccl", "ranks": ranks}, run["distributed"]
assert json.load(open("ranks/summary.json"))["distributed"]["ranks_agree"]
PY
echo "nccl_ranks: $ranks rank(s) over nccl match one process for 10 steps"
