#!/usr/bin/env bash
# strace_one.sh LABEL "SERVER CMD" CONNS MSGS -> syscalls per round trip of the server
# (strace -c -f attached to it during CONNS x MSGS round trips). Programs: paths.sh.
[ $# -ge 2 ] || { echo "usage: $0 LABEL \"SERVER CMD\" [CONNS MSGS]" >&2; exit 2; }
. "$(dirname "$0")/paths.sh"
label=$1; srv=$2; conns=${3:-50}; msgs=${4:-2000}
T=$(mktemp -d)
$srv >$T/srv.out 2>$T/srv.err &
pid=$!
for i in $(seq 200); do grep -q '^LISTEN ' $T/srv.out 2>/dev/null && break; sleep 0.05; done
addr=$(awk '/^LISTEN /{print $2; exit}' $T/srv.out)
strace -c -f -p $pid -o $T/strace.txt &
spid=$!
sleep 1
$CLIENT $addr --conns $conns --msgs $msgs --warmup 0 > /dev/null 2>&1
sleep 0.5
kill -INT $spid; wait $spid 2>/dev/null
kill $pid; wait $pid 2>/dev/null
n=$((conns*msgs))
echo "== $label: $n round trips, $conns connections"
cat $T/strace.txt
awk -v n=$n -v l=$label '/^[ 0-9.]+ +[0-9.]+ +[0-9]+ +[0-9]+/ {calls=$4; name=$NF; if ($5 ~ /^[0-9]+$/) name=$6; printf "%s %s %.3f\n", l, name, calls/n}' $T/strace.txt
rm -rf $T
