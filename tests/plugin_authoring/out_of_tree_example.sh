#!/usr/bin/env bash
# examples/out_of_tree_plugin built against the installed contra, its test
# run, and its pipeline run by the installed contra with the plugin found
# through CONTRA_PLUGIN_PATH.
# Usage: out_of_tree_example.sh PREFIX EXAMPLE_DIR WORK_DIR GENERATOR CXX
set -euo pipefail
prefix=$1 example=$2 work=$3 generator=$4 cxx=$5
rm -rf "$work"
mkdir -p "$work"
cmake -S "$example" -B "$work/build" -G "$generator" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix"
cmake --build "$work/build"
ctest --test-dir "$work/build" --output-on-failure
cd "$work"  # a run records itself under the working directory
status=0
out=$(CONTRA_PLUGIN_PATH="$work/build/plugins" "$prefix/bin/contra" run "$example/align_uniform_loss.toml" \
        --set train.max_steps=20 2>&1) || status=$?
echo "$out"
[[ $status == 0 ]] || { echo "contra run exited with $status"; exit 1; }
grep -q "loss align_uniform_loss, optimizer" <<< "$out" || { echo "the run did not use align_uniform_loss"; exit 1; }
grep -q "^step 20/20 " <<< "$out" || { echo "no step 20/20 reported"; exit 1; }
for figure in align uniform; do
  grep -qE "^  $figure +-?[0-9]" <<< "$out" || { echo "figure '$figure' not reported"; exit 1; }
done
# "loss: mean of the first 10 steps A, of the last 10 steps B": it falls.
read -r first last < <(sed -n 's/^loss: mean of the first [0-9]* steps \(-\?[0-9.]*\), of the last [0-9]* steps \(-\?[0-9.]*\)$/\1 \2/p' <<< "$out")
[[ -n ${first:-} ]] || { echo "no loss summary reported"; exit 1; }
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || { echo "loss did not fall: $first -> $last"; exit 1; }
echo "out-of-tree plugin OK: loss $first -> $last"
