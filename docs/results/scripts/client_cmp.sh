#!/usr/bin/env bash
# client_cmp.sh CLIENT(harness|ours): against C tevent's echo server, 50 conns x 10000 x 64 B
# The record of how the 2026-11-29 client comparison was made: "harness" is the
# tokio load client of the benchmark harness of the time, which is not in this
# repository (give its path in HARNESS_CLIENT); "ours" is examples/echo_client.
# The server is benches/c/tevent_echo_fd (built by benches/run.sh). Programs: paths.sh.
[ $# -eq 1 ] || { echo "usage: $0 harness|ours" >&2; exit 2; }
. "$(dirname "$0")/paths.sh"
which=$1
R=$EX
T=$(mktemp -d)
$PEERS/tevent_echo_fd >$T/srv.out 2>$T/srv.err &
pid=$!
for i in $(seq 200); do grep -q '^LISTEN ' $T/srv.out 2>/dev/null && break; sleep 0.05; done
addr=$(awk '/^LISTEN /{print $2; exit}' $T/srv.out)
if [ $which = harness ]; then
  out=$(${HARNESS_CLIENT:?HARNESS_CLIENT: the harness client is not in this repository} $addr --impl tevent-c --conns 50 --msgs 10000 --warmup 100 2>/dev/null)
else
  out=$($R/echo_client $addr --conns 50 --msgs 10000 --warmup 100 | tr '\n' ' ')
fi
kill $pid; wait $pid 2>/dev/null
echo "client=$which :: $out"
rm -rf $T
