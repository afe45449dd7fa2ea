#!/usr/bin/env bash
# docs/plugins/ is what `contra plugins --markdown` generates from the built
# plugins' schemas: regenerate into a temporary folder and compare.
# Usage: plugin_docs.sh CONTRA DOCS_PLUGINS_DIR WORK_DIR
set -euo pipefail
contra=$1 committed=$2 work=$3
rm -rf "$work"
env -u CONTRA_PLUGIN_PATH "$contra" plugins --markdown "$work" > /dev/null
diff -ru "$committed" "$work" || {
  echo "docs/plugins is not current: run  build/bin/contra plugins --markdown docs/plugins  and commit it"
  exit 1
}
echo "docs/plugins is current ($(find "$work" -name '*.md' | wc -l) files)"
