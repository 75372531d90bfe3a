#!/usr/bin/env bash
# echo_one.sh LABEL "SERVER CMD" [CONNS MSGS SIZE] -> one line of figures:
# the client's round trips per second and the server's CPU per round trip
# (schedstat: all CPU; utime/stime: ticks) over CONNS x (MSGS + 100) round
# trips. The server must print `LISTEN host:port PID=pid`. Programs: paths.sh.
# (benches/run.sh measures the same user CPU for every server, in rounds.)
[ $# -ge 2 ] || { echo "usage: $0 LABEL \"SERVER CMD\" [CONNS MSGS SIZE]" >&2; exit 2; }
. "$(dirname "$0")/paths.sh"
label=$1; srv=$2; conns=${3:-50}; msgs=${4:-10000}; size=${5:-64}
T=$(mktemp -d)
$srv >$T/srv.out 2>$T/srv.err &
pid=$!
for i in $(seq 200); do grep -q '^LISTEN ' $T/srv.out 2>/dev/null && break; sleep 0.05; done
addr=$(awk '/^LISTEN /{print $2; exit}' $T/srv.out)
cpu0=$(awk '{print $1}' /proc/$pid/schedstat)
read u0 s0 < <(sed 's/^.*) //' /proc/$pid/stat | awk '{print $12, $13}')
$CLIENT $addr --conns $conns --msgs $msgs --size $size --warmup 100 >$T/out 2>$T/err
rc=$?
cpu1=$(awk '{print $1}' /proc/$pid/schedstat)
read u1 s1 < <(sed 's/^.*) //' /proc/$pid/stat | awk '{print $12, $13}')
hwm=$(awk '/^VmHWM:/{print $2}' /proc/$pid/status)
kill $pid; wait $pid 2>/dev/null
n=$((conns*(msgs+100)))
tck=$(getconf CLK_TCK)
rts=$(awk '/^round trips per second:/{print $NF}' $T/out)
echo "impl=$label round_trips_per_s=$rts rc=$rc srv_cpu_ns_per_rt=$(( (cpu1-cpu0)/n )) srv_utime_ticks=$((u1-u0)) srv_stime_ticks=$((s1-s0)) srv_user_ns_per_rt=$(awk -v u=$((u1-u0)) -v n=$n -v t=$tck 'BEGIN{printf "%.0f", u/t*1e9/n}') srv_hwm_kb=$hwm"
rm -rf $T
