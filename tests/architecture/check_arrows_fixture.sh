#!/usr/bin/env bash
# check_arrows.py on a tree with one wrong arrow of each kind: it must fail
# and name each of them (tests/architecture/fixture.expected), no more.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(python3 "$here/check_arrows.py" "$here/fixture")
status=$?
if [[ $status != 1 ]]; then echo "expected exit status 1, got $status"; exit 1; fi
if ! diff <(echo "$out") "$here/fixture.expected"; then echo "the report differs from fixture.expected"; exit 1; fi
echo "check_arrows: every planted wrong arrow reported"
