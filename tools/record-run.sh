#!/usr/bin/env bash
# Record what a person sees while `ogsim run` works: run it in a detached tmux terminal
# (COLSxROWS) and capture the screen every INTERVAL seconds until it ends.
# usage: tools/record-run.sh OUTPUT.txt [COLS ROWS INTERVAL] -- ogsim run ARGS...
set -euo pipefail
out=$1; shift
cols=120; rows=40; every=3
if [ "${1:-}" != "--" ]; then cols=$1; rows=$2; every=$3; shift 3; fi
[ "$1" = "--" ] && shift
session="ogrec$$"
done_flag=$(mktemp)
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -f "$done_flag"' EXIT
tmux new-session -d -s "$session" -x "$cols" -y "$rows" \
  "$(printf '%q ' "$@"); echo \$? > $done_flag; sleep 2"
: > "$out"
n=0
while tmux has-session -t "$session" 2>/dev/null; do
  sleep "$every"
  n=$((n + 1))
  { printf -- '----- screen %d (%d s) -----\n' "$n" $((n * every));
    tmux capture-pane -p -t "$session" 2>/dev/null | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' || true; } >> "$out"
  [ -s "$done_flag" ] && break
done
echo "exit status $(cat "$done_flag" 2>/dev/null || echo '?'); $n screens in $out"
