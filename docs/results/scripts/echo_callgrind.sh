#!/usr/bin/env bash
# echo_callgrind.sh SERVER -> callgrind instructions of the whole server run, 50 x 4000 round trips (no warm-up)
# SERVER takes --peer-harness --bufsize 16384 (echo_server). Programs: paths.sh.
# (benches/run.sh measures every server by the difference of two run lengths instead.)
[ $# -eq 1 ] || { echo "usage: $0 SERVER" >&2; exit 2; }
. "$(dirname "$0")/paths.sh"
srv=$1; T=$(mktemp -d)
valgrind --tool=callgrind --callgrind-out-file=$T/cg.out $srv --peer-harness --bufsize 16384 >$T/srv.out 2>$T/srv.err &
pid=$!
for i in $(seq 400); do grep -q '^LISTEN ' $T/srv.out 2>/dev/null && break; sleep 0.1; done
addr=$(awk '/^LISTEN /{print $2; exit}' $T/srv.out)
$CLIENT $addr --conns 50 --msgs 4000 --warmup 0 >/dev/null 2>&1
kill -TERM $pid; wait $pid
ir=$(awk '/Collected :/{print $NF}' $T/srv.err)
echo "echo $srv ir=$ir per_round_trip=$(echo "scale=1; $ir/200000" | bc)"
rm -rf $T
