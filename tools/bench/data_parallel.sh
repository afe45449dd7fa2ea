#!/usr/bin/env bash
# Data-parallel ranks against one process on this machine: the SimCLR
# pipeline (seed_resnet, projection head, info_nce with global negatives,
# batch 256, pipelines/simclr_fashion_mnist.toml without its evaluation) as
# R ranks x T threads against 1 process x R*T threads, images/s of each and
# the time the ranks spend in collectives per step, and what overlapping the
# gradient all-reduce with the backward pass buys ([distributed] overlap on
# and off). Rounds run the setups back to back; the ratios printed are the
# medians of the rounds' ratios.
# Usage: tools/bench/data_parallel.sh [ranks=2] [steps=40] [rounds=3] [build=build]
set -euo pipefail
cd "$(dirname "$0")/../.."
ranks=${1:-2} steps=${2:-40} rounds=${3:-3} build=${4:-build}
contra=$PWD/$build/bin/contra
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--set train.max_steps="$steps" --set eval.at_end=false --set train.log_every=1000)
"$contra" --version | sed 's/^/# /'
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
echo "# $ranks ranks x 1 thread against 1 process x $ranks threads; $steps steps of batch 256 per run (the first 5 not counted)"

# images/s after the first steps (warm-up: oneDNN's kernels, the first
# batches), from metrics.jsonl's elapsed time; and per rank ms per step in
# collectives (summary.json).
measure() {
  python3 - "$1" "$steps" <<'PY'
import json, sys
run, steps = sys.argv[1], int(sys.argv[2])
rows = [json.loads(l) for l in open(run + "/metrics.jsonl") if '"step"' in l]
rows = [r for r in rows if r.get("type") == "step"]
skip = 5
a, b = rows[skip - 1], rows[-1]
images = 512 * (b["step"] - a["step"])
s = json.load(open(run + "/summary.json"))
coll = [r["collective_s"] / s["steps"] * 1e3 for r in s.get("distributed", {}).get("per_rank", [])]
print(f'{images / (b["time_s"] - a["time_s"]):.1f}', " ".join(f"{c:.1f}" for c in coll))
PY
}

ratios=() gains=()
for round in $(seq 1 "$rounds"); do
  "$contra" run pipelines/simclr_fashion_mnist.toml "${common[@]}" --set runtime.compute_threads="$ranks" \
    --set runtime.data_threads="$ranks" --run-dir "$work/one-$round" > /dev/null
  for overlap in true false; do
    mpirun --allow-run-as-root --oversubscribe -np "$ranks" "$contra" run pipelines/simclr_fashion_mnist.toml \
      "${common[@]}" --set runtime.compute_threads=1 --set runtime.data_threads=1 \
      --set distributed.backend='"mpi"' --set distributed.overlap="$overlap" --run-dir "$work/ranks-$overlap-$round" > /dev/null
  done
  read -r one _ <<< "$(measure "$work/one-$round")"
  read -r many coll <<< "$(measure "$work/ranks-true-$round")"
  read -r serial coll_serial <<< "$(measure "$work/ranks-false-$round")"
  ratio=$(python3 -c "print(f'{$many / $one:.3f}')")
  gain=$(python3 -c "print(f'{$many / $serial:.3f}')")
  ratios+=("$ratio") gains+=("$gain")
  echo "round $round: 1 process x $ranks threads $one images/s; $ranks ranks x 1 thread $many images/s (ratio $ratio)," \
       "ms per step in collectives by rank: $coll; gradients reduced after the backward pass instead: $serial images/s," \
       "ms in collectives $coll_serial"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median ratio ($ranks ranks / 1 process): $(median "${ratios[@]}")"
echo "median ratio (overlapped / reduced after the backward pass): $(median "${gains[@]}")"
