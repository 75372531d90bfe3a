#!/usr/bin/env bash
# idle_one.sh LABEL "SERVER CMD" N -> the server's RSS before and with N idle
# clients (idle_clients.py), and per client. The server must print
# `LISTEN host:port PID=pid`.
[ $# -ge 2 ] || { echo "usage: $0 LABEL \"SERVER CMD\" [N]" >&2; exit 2; }
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
