#!/usr/bin/env bash
# threads_one.sh SERVER_THREADS CLIENT(harness|ours) CLIENT_THREADS
st=$1; which=$2; ct=$3
R=/work/main/target/release/examples
T=$(mktemp -d)
$R/echo_server --peer-harness --bufsize 16384 --threads $st >$T/srv.out 2>$T/srv.err &
pid=$!
for i in $(seq 200); do grep -q '^LISTEN ' $T/srv.out 2>/dev/null && break; sleep 0.05; done
addr=$(awk '/^LISTEN /{print $2; exit}' $T/srv.out)
if [ $which = harness ]; then
  out=$(/tmp/peers/echo-client/target/release/echo_client $addr --impl tevent-rs --conns 50 --msgs 10000 --warmup 100 --threads $ct 2>/dev/null)
else
  out=$($R/echo_client $addr --conns 50 --msgs 10000 --warmup 100 --threads $ct | tr '\n' ' ')
fi
kill $pid; wait $pid 2>/dev/null
echo "server_threads=$st client=$which client_threads=$ct :: $out :: $(grep served $T/srv.err | tr '\n' ' ')"
rm -rf $T
