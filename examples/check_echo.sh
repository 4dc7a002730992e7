#!/usr/bin/env bash
# The echo example as a test: echo_server on a free port, echo_client against it (twice),
# then both outputs checked against asyncio's.
set -euo pipefail
server=$1 client=$2
out=$(mktemp)
trap 'kill $pid 2>/dev/null || true; rm -f "$out"' EXIT
"$server" 0 >"$out" &
pid=$!
for _ in $(seq 100); do grep -q "Serving on" "$out" && break; sleep 0.1; done
port=$(sed -n "s/^Serving on ('127.0.0.1', \([0-9]*\))$/\1/p" "$out")
[ -n "$port" ] || { echo "server did not start:"; cat "$out"; exit 1; }
want_client="Send: 'Hello World!'
Received: 'Hello World!'
Close the connection"
for i in 1 2; do
  got=$("$client" "$port")
  [ "$got" = "$want_client" ] || { echo "client printed:"; echo "$got"; exit 1; }
done
sleep 0.2
kill $pid
wait $pid 2>/dev/null || true
got_server=$(sed -e "s/', [0-9]*)$/', PORT)/" "$out")
want_server="Serving on ('127.0.0.1', PORT)
Received 'Hello World!' from ('127.0.0.1', PORT)
Send: 'Hello World!'
Close the connection
Received 'Hello World!' from ('127.0.0.1', PORT)
Send: 'Hello World!'
Close the connection"
[ "$got_server" = "$want_server" ] || { echo "server printed:"; echo "$got_server"; exit 1; }
echo "echo example: ok"
