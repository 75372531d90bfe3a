#!/usr/bin/env bash
# ping_pong_icount.sh BIN N1 N2 -> ping_pong instructions per round trip = (I(N2) - I(N1)) / (N2 - N1)
bin=$1; n1=$2; n2=$3
ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" 2>&1 >/dev/null | awk '/Collected :/{print $NF}'; }
a=$(ir $n1); b=$(ir $n2)
echo "ping_pong $bin n1=$n1 ir=$a n2=$n2 ir=$b per_round_trip=$(echo "scale=1; ($b-$a)/($n2-$n1)" | bc)"
