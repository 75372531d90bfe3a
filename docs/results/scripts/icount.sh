#!/usr/bin/env bash
# icount.sh BIN WORKLOAD N1 N2 -> instructions per op, docs/performance.md's method:
# (I(N2) - I(N1)) / (1.1 * (N2 - N1)); each run also does a warm-up of N/10 ops.
bin=$1; w=$2; n1=$3; n2=$4
ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$w" "$1" 2>&1 >/dev/null | awk '/Collected :/{print $NF}'; }
a=$(ir $n1); b=$(ir $n2)
echo "$w $bin n1=$n1 ir=$a n2=$n2 ir=$b per_op=$(echo "scale=1; ($b-$a)/(1.1*($n2-$n1))" | bc)"
