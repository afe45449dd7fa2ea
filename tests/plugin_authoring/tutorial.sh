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
awk '
  /^<!-- tutorial-test: skip -->/ { skip = 1; next }
  /^<!-- tutorial-test: file / { file = $4; next }
  /^```/ {
    if (!inblock) {
      inblock = 1
      lang = substr($0, 4)
      if (file != "") {
        mode = "file"
        printf "mkdir -p \"$(dirname %s)\"\ncat > %s <<'"'"'CONTRA_TUTORIAL_EOF'"'"'\n", file, file
      } else if (lang == "sh" && !skip) {
        mode = "sh"
      } else {
        mode = "none"
      }
    } else {
      if (mode == "file") print "CONTRA_TUTORIAL_EOF"
      inblock = 0; file = ""; skip = 0; mode = ""
    }
    next
  }
  inblock && mode != "none" { print }
' "$doc" > "$script"
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
