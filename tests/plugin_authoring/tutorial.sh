#!/usr/bin/env bash
# Follows docs/plugin-authoring.md word for word: every ```sh block is run in
# order in a fresh folder, and every block preceded by
# "<!-- tutorial-test: file PATH -->" is written to PATH, as the reader is told
# to. Blocks preceded by "<!-- tutorial-test: skip -->" (building and
# installing contra itself) are replaced by the installed test prefix.
# Usage: tutorial.sh DOC PREFIX WORK_DIR
set -euo pipefail
doc=$1 prefix=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
script=$work/tutorial_commands.sh
awk -f "$(dirname "$0")/../support/tutorial_commands.awk" "$doc" > "$script"
grep -q "contra new-plugin --kind miner" "$script" || { echo "no new-plugin command found in $doc"; exit 1; }
grep -q "contra run" "$script" || { echo "no contra run found in $doc"; exit 1; }
cd "$work"
export CONTRA_PREFIX=$prefix
export PATH=$prefix/bin:$PATH
unset CONTRA_PLUGIN_PATH
bash -euo pipefail -x "$script" > "$work/tutorial.log" 2>&1 || {
  status=$?; cat "$work/tutorial.log"; echo "the tutorial failed (exit $status); commands: $script"; exit 1; }
cat "$work/tutorial.log"
grep -q "^loss: mean of the first" "$work/tutorial.log" || { echo "the tutorial's run reported no loss"; exit 1; }
echo "docs/plugin-authoring.md followed to the end"
