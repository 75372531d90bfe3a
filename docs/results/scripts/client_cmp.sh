#!/usr/bin/env bash
# client_cmp.sh CLIENT(harness|ours): against C tevent's echo server, 50 conns x 10000 x 64 B
which=$1
R=/work/main/target/release/examples
T=$(mktemp -d)
/tmp/peers/build/tevent_echo_server >$T/srv.out 2>$T/srv.err &
pid=$!
for i in $(seq 200); do grep -q '^LISTEN ' $T/srv.out 2>/dev/null && break; sleep 0.05; done
addr=$(awk '/^LISTEN /{print $2; exit}' $T/srv.out)
if [ $which = harness ]; then
  out=$(/tmp/peers/echo-client/target/release/echo_client $addr --impl tevent-c --conns 50 --msgs 10000 --warmup 100 2>/dev/null)
else
  out=$($R/echo_client $addr --conns 50 --msgs 10000 --warmup 100 | tr '\n' ' ')
fi
kill $pid; wait $pid 2>/dev/null
echo "client=$which :: $out"
rm -rf $T
