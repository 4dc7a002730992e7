#!/usr/bin/env bash
# Runs an example, sends it a signal once it has printed `ready`, and checks its exit
# status and that its output matches every line of an expected pattern list.
#   check_signal.sh <program> <signal> <ready-regex> <exit-status> <regex>...
set -uo pipefail
set -m  # job control: the program gets its own group and SIGINT is not ignored in it
program=$1 sig=$2 ready=$3 status=$4
shift 4
out=$(mktemp)
trap 'kill -KILL $pid 2>/dev/null; rm -f "$out"' EXIT
"$program" >"$out" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -Eq "$ready" "$out" && break; sleep 0.1; done
grep -Eq "$ready" "$out" || { echo "never printed '$ready':"; cat "$out"; exit 1; }
kill -"$sig" $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then echo "still running 10 s after SIG$sig:"; cat "$out"; exit 1; fi
wait $pid
got=$?
[ "$got" = "$status" ] || { echo "exit status $got, expected $status:"; cat "$out"; exit 1; }
for pattern in "$@"; do
  grep -Eq "$pattern" "$out" || { echo "no line matches '$pattern':"; cat "$out"; exit 1; }
done
echo "$(basename "$program") on SIG$sig: ok"
