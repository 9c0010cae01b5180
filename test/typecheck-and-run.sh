#!/bin/sh
# npm test: the typecheck of the tests runs alongside the fast suite instead
# of before it; its output comes after vitest's, and either failing fails the
# run. Arguments go to vitest (`npm test -- --reporter=verbose`,
# `npm test -- test/cli`). The build (`npm run build`, before this) checked
# src, bench, scripts and examples: tsconfig.test.json references that
# project and checks the tests against its declarations, so a change to src
# that leaves them as they were checks no test again.
#
# The typecheck is incremental (its state in node_modules/.cache, which
# `npm ci` starts afresh): a run after a small change checks little again.
# Build mode (-b) first compares the files' times with that state's, so a run
# after no change at all takes a fraction of a second, not seconds. It does
# not look at node_modules: a newer package-lock.json starts it afresh.
set -u
cache=node_modules/.cache
state=$cache/ap-persist-typecheck.tsbuildinfo
mkdir -p "$cache"
[ package-lock.json -nt "$state" ] && rm -f "$state"
log=$(mktemp "${TMPDIR:-/tmp}/ap-persist-typecheck.XXXXXX")
trap 'rm -f "$log"' EXIT
# At a lower priority: the tests' processes (and their time bounds) come first, and the
# typecheck takes the CPU they leave, most of all while the last files finish.
nice=
command -v nice >/dev/null 2>&1 && nice='nice -n 10'
# (tsconfig.test.json names the state file.)
$nice tsc -b tsconfig.test.json >"$log" 2>&1 &
typecheck=$!
vitest run --project fast "$@"
tests=$?
wait "$typecheck"
types=$?
if [ "$types" -ne 0 ]; then
  cat "$log"
  echo "npm test: the typecheck (tsc -b tsconfig.test.json) failed" >&2
fi
[ "$tests" -ne 0 ] && exit "$tests"
exit "$types"
