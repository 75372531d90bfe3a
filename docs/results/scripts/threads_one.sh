#!/usr/bin/env bash
# threads_one.sh SERVER_THREADS CLIENT_THREADS -> round trips per second of
# echo_server --threads SERVER_THREADS under echo_client --threads CLIENT_THREADS,
# 50 x 10000 round trips. Programs: paths.sh. (The 2026-11-29 figures also used
# the harness's tokio client, which is not in this repository.)
[ $# -eq 2 ] || { echo "usage: $0 SERVER_THREADS CLIENT_THREADS" >&2; exit 2; }
. "$(dirname "$0")/paths.sh"
st=$1; ct=$2
R=$EX
T=$(mktemp -d)
$R/echo_server --peer-harness --bufsize 16384 --threads $st >$T/srv.out 2>$T/srv.err &
pid=$!
for i in $(seq 200); do grep -q '^LISTEN ' $T/srv.out 2>/dev/null && break; sleep 0.05; done
addr=$(awk '/^LISTEN /{print $2; exit}' $T/srv.out)
out=$($CLIENT $addr --conns 50 --msgs 10000 --warmup 100 --threads $ct | tr '\n' ' ')
kill $pid; wait $pid 2>/dev/null
echo "server_threads=$st client_threads=$ct :: $out :: $(grep served $T/srv.err | tr '\n' ' ')"
rm -rf $T
