#!/usr/bin/env bash
# `mpirun -np 2 contra run`: the ranks train and rank 0 records it; a rank that
# fails, dies or hangs stops every rank within seconds (with its message, or
# the collective's timeout); several ranks with [distributed] backend = "none"
# are refused.
# Usage: cli_ranks.sh CONTRA_BINARY FIXTURE_PLUGIN_DIR WORK_DIR
set -u
contra=$1 fixtures=$2 work=$3
mpirun=(mpirun --allow-run-as-root --oversubscribe -np 2)
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAILED: $*"; exit 1; }

cat > p.toml <<'TOML'
[pipeline]
seed = 3
[runtime]
compute_threads = 1
data_threads = 1
[train]
max_steps = 6
[source]
plugin = "synthetic"
size = 128
height = 8
width = 8
[sampler]
plugin = "random"
batch_size = 16
[[augment.chain]]
plugin = "normalize"
mean = [0.5]
std = [0.25]
[encoder]
plugin = "mlp"
hidden = [16]
output = 8
[loss]
plugin = "info_nce"
[optimizer]
plugin = "sgd"
lr = 0.1
TOML

# 1. Two ranks train; rank 0 alone prints and records; the records say so.
"${mpirun[@]}" "$contra" run p.toml --run-dir run2 > out.txt 2> err.txt || { cat out.txt err.txt; fail "2 ranks did not train"; }
grep -q "2 data-parallel ranks (mpi backend)" out.txt || { cat out.txt; fail "no rank line"; }
[ "$(grep -c '^contra run' out.txt)" = 1 ] || { cat out.txt; fail "more than one rank printed the header"; }
python3 - <<'PY' || fail "records"
import json
run = json.load(open("run2/run.json"))
assert run["distributed"] == {"backend": "mpi", "ranks": 2}, run["distributed"]
s = json.load(open("run2/summary.json"))
assert s["steps"] == 6 and s["distributed"]["ranks"] == 2 and s["distributed"]["ranks_agree"], s
assert len(s["distributed"]["per_rank"]) == 2
PY

# 2. Rank 1's source fails at its 21st sample (step 5 of batches of 8 per
# rank): every rank exits non-zero within seconds, saying which rank failed.
cat > bad.toml <<'TOML'
[pipeline]
seed = 3
[runtime]
compute_threads = 1
data_threads = 1
prefetch = 1
[distributed]
timeout_s = 60
[train]
max_steps = 8
[source]
plugin = "bad_source"
fault = "throw_on_rank"
rank = 1
after = 20
[sampler]
plugin = "random"
batch_size = 8
[[augment.chain]]
plugin = "normalize"
mean = [0.5]
std = [0.25]
[encoder]
plugin = "mlp"
hidden = [8]
output = 4
[loss]
plugin = "info_nce"
[optimizer]
plugin = "sgd"
lr = 0.1
TOML
start=$(date +%s)
CONTRA_PLUGIN_PATH="$fixtures" timeout 120 "${mpirun[@]}" "$contra" run bad.toml --run-dir bad > out.txt 2> err.txt
code=$? took=$(( $(date +%s) - start ))
[ "$code" != 0 ] || fail "a failing rank left exit code 0"
[ "$code" != 124 ] || { cat out.txt err.txt; fail "the ranks hung (killed by timeout)"; }
[ "$took" -lt 30 ] || fail "the ranks took $took s to stop"
grep -q "rank 1 of 2: .*load() fails on purpose on rank 1" err.txt || { cat err.txt; fail "the failing rank's message"; }
grep -q "rank 0 of 2: .*rank 1 of 2 failed: .*load() fails on purpose on rank 1" err.txt ||
  { cat err.txt; fail "rank 0 did not say that rank 1 failed"; }
python3 -c "import json; s = json.load(open('bad/summary.json')); assert 'rank 1 of 2 failed' in s['error'], s" ||
  fail "rank 0's summary.json does not record the failure"

# 3. A rank that dies (SIGKILL) takes the others down with it, within seconds.
start=$(date +%s)
CONTRA_PLUGIN_PATH="$fixtures" timeout 120 "${mpirun[@]}" "$contra" run bad.toml --run-dir died \
  --set source.fault='"die_on_rank"' > out.txt 2> err.txt
code=$? took=$(( $(date +%s) - start ))
[ "$code" != 0 ] && [ "$code" != 124 ] || { cat out.txt err.txt; fail "a dead rank: exit code $code"; }
[ "$took" -lt 40 ] || fail "a dead rank: the others took $took s to stop"

# 4. A rank that hangs: the others' collective times out (timeout_s = 3),
# rank 0 says so and records it, and the launcher ends the hung rank.
start=$(date +%s)
CONTRA_PLUGIN_PATH="$fixtures" timeout 120 "${mpirun[@]}" "$contra" run bad.toml --run-dir hung \
  --set source.fault='"hang_on_rank"' --set distributed.timeout_s=3 > out.txt 2> err.txt
code=$? took=$(( $(date +%s) - start ))
[ "$code" != 0 ] && [ "$code" != 124 ] || { cat out.txt err.txt; fail "a hung rank: exit code $code"; }
[ "$took" -lt 60 ] || fail "a hung rank: the run took $took s to stop"
grep -q "rank 0 of 2: .*waited [0-9]* s in .* for the other ranks, longer than distributed.timeout_s allows" err.txt ||
  { cat err.txt; fail "the timeout's message"; }
python3 -c "import json; s = json.load(open('hung/summary.json')); assert 'distributed.timeout_s' in s['error'], s" ||
  fail "rank 0's summary.json does not record the timeout"

# 5. Rank 0 evaluates alone, longer than the collectives' timeout: the other
# rank waits for it without timing out.
cat > eval.toml <<'TOML'
[eval]
at_end = true
[eval.test]
plugin = "synthetic"
size = 32
height = 8
width = 8
[[eval.chain]]
plugin = "normalize"
mean = [0.5]
std = [0.25]
[[eval.evaluator]]
plugin = "slow_evaluator"
seconds = 4
TOML
cat p.toml eval.toml > evaluated.toml
CONTRA_PLUGIN_PATH="$fixtures" timeout 120 "${mpirun[@]}" "$contra" run evaluated.toml --run-dir evaluated \
  --set distributed.timeout_s=1.5 > out.txt 2> err.txt || { cat out.txt err.txt; fail "an evaluation longer than the timeout"; }
grep -q "slow_evaluator.rows 32" out.txt || { cat out.txt; fail "rank 0's evaluation"; }

# 6. Several ranks of backend "none" would each train alone: refused.
"${mpirun[@]}" "$contra" run p.toml --no-record --set distributed.backend='"none"' > out.txt 2> err.txt && fail "backend none ran"
grep -q 'distributed.backend: "none", but mpirun started this process as rank 0 of 2' err.txt || { cat err.txt; fail "backend none message"; }
echo "cli_ranks: ok"
