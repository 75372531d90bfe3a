#!/usr/bin/env bash
# idle_one.sh LABEL "SERVER CMD" N
label=$1; srv=$2; n=${3:-1000}
ulimit -n 4096
T=$(mktemp -d)
$srv >$T/srv.out 2>$T/srv.err &
pid=$!
for i in $(seq 200); do grep -q '^LISTEN ' $T/srv.out 2>/dev/null && break; sleep 0.05; done
addr=$(awk '/^LISTEN /{print $2; exit}' $T/srv.out)
echo "impl=$label $(python3 "$(dirname "$0")/idle_clients.py" ${addr%:*} ${addr##*:} $n $pid)"
kill $pid; wait $pid 2>/dev/null
rm -rf $T
