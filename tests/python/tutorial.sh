#!/usr/bin/env bash
# Follows docs/tutorial-python-loss.md word for word: every block preceded by
# "<!-- tutorial-test: file PATH -->" is written to PATH and every ```sh
# block is run, in order, in a fresh folder; blocks preceded by
# "<!-- tutorial-test: skip -->" (paths to the build) are replaced by the
# build tree's, given here, and `python3` is the interpreter the module was
# built for (another python3 may come first on this machine's PATH).
# Usage: tutorial.sh DOC BUILD_DIR PYTHON WORK_DIR
set -euo pipefail
doc=$1 build=$2 python=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
script=$work/tutorial_commands.sh
awk -f "$(dirname "$0")/../support/tutorial_commands.awk" "$doc" > "$script"
for needed in "cat > my_losses.py" "contra run my_pipeline.toml" "python3 compare.py"; do
  grep -q "$needed" "$script" || { echo "the tutorial has no \"$needed\""; exit 1; }
done
mkdir -p "$work/python-bin"
ln -sf "$python" "$work/python-bin/python3"
cd "$work"
export PATH=$build/bin:$work/python-bin:$PATH PYTHONPATH=$build/python PYTHONDONTWRITEBYTECODE=1
unset CONTRA_PLUGIN_PATH
bash -euo pipefail -x "$script" > "$work/tutorial.log" 2>&1 || {
  status=$?; cat "$work/tutorial.log"; echo "the tutorial failed (exit $status); commands: $script"; exit 1; }
cat "$work/tutorial.log"
grep -q "^loss: mean of the first" "$work/tutorial.log" || { echo "the tutorial's run reported no loss"; exit 1; }
grep -q "^largest relative difference" "$work/tutorial.log" || { echo "compare.py printed no comparison"; exit 1; }
echo "docs/tutorial-python-loss.md followed to the end"
