# lib.sh: shell functions shared by benches/run.sh and benches/icount-guard.sh.
# Sourced, never run; defines functions and nothing else. Takes no
# arguments, prints nothing by itself.
#
# The bench programs (examples/bench.rs, c/tevent_bench.c,
# tokio/src/bin/tokio_bench.rs) take `<workload> <N>` and print one line
#   workload=W impl=I n=N ns_per_op=F ops_per_s=F [key=value ...]
# The echo servers print `LISTEN 127.0.0.1:<port> PID=<pid>` once they
# listen and stop on SIGTERM.

# kv LINE KEY: the value of KEY=... in LINE (empty if absent).
kv() {
  local k
  for k in $1; do
    case $k in "$2"=*) echo "${k#*=}"; return ;; esac
  done
}

# median V...: the median of the numbers given (the mean of the two middle
# ones for an even count); empty for none.
median() {
  [ $# -gt 0 ] || return 0
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B: A / B to two decimals, or "–" when either is not a number.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.2f\n", a / b; else print "–" }'
}

# total_ops WORKLOAD N: the ops a bench program runs for `WORKLOAD N`,
# warm-up included (every program runs the same warm-up), in the unit of
# its ns_per_op: used to turn a difference of instruction counts into
# instructions per op.
total_ops() {
  local w=$1 n=$2 per reps warm
  case $w in
    req_lifecycle_batch)
      per=$(((n + 999) / 1000)); warm=$((per / 10)); [ "$warm" -ge 1 ] || warm=1
      echo $((1000 * (per + warm))) ;;
    nested | nested_macro | nested_inline)
      reps=$((n / 16)); [ "$reps" -ge 1 ] || reps=1
      warm=$((reps / 10)); [ "$warm" -ge 1 ] || warm=1; [ "$warm" -le 200000 ] || warm=200000
      echo $((16 * (reps + warm))) ;;
    *)
      warm=$((n / 10)); [ "$warm" -ge 1 ] || warm=1; [ "$warm" -le 200000 ] || warm=200000
      echo $((n + warm)) ;;
  esac
}

# callgrind_ir CMD...: the instructions callgrind counted for one run of
# CMD (its "Collected" figure), or nothing if the run failed.
callgrind_ir() {
  local log rc
  log=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" >/dev/null 2>"$log"
  rc=$?
  if [ "$rc" = 0 ]; then
    awk '/Collected :/ { print $NF }' "$log"
  else
    sed 's/^/#   /' "$log" | tail -5 >&2
  fi
  rm -f "$log"
}

# icount_per_op BIN WORKLOAD N1 N2: instructions per op of WORKLOAD, the
# difference of a run with N2 and one with N1 over the difference of their
# ops (start-up, context creation and the program's exit cancel out).
# Prints the figure with one decimal, or nothing if a run failed.
icount_per_op() {
  local bin=$1 w=$2 n1=$3 n2=$4 a b
  a=$(callgrind_ir "$bin" "$w" "$n1")
  b=$(callgrind_ir "$bin" "$w" "$n2")
  [ -n "$a" ] && [ -n "$b" ] || return 0
  awk -v a="$a" -v b="$b" -v o1="$(total_ops "$w" "$n1")" -v o2="$(total_ops "$w" "$n2")" \
    'BEGIN { printf "%.1f\n", (b - a) / (o2 - o1) }'
}

# start_server OUTFILE CMD...: starts an echo server in the background with
# its stdout in OUTFILE and stderr in OUTFILE.err; sets SRV_PID and
# SRV_ADDR (host:port from its LISTEN line). Returns 1, the server stopped,
# if it did not listen within 60 s.
start_server() {
  local out=$1 i
  shift
  "$@" >"$out" 2>"$out.err" &
  SRV_PID=$!
  SRV_ADDR=""
  for i in $(seq 1200); do
    SRV_ADDR=$(awk '/^LISTEN / { print $2; exit }' "$out" 2>/dev/null)
    [ -n "$SRV_ADDR" ] && return 0
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
  done
  stop_server
  return 1
}

# stop_server: SIGTERM to SRV_PID, then waits for it; returns its status.
stop_server() {
  local rc=0
  [ -n "${SRV_PID:-}" ] || return 0
  kill -TERM "$SRV_PID" 2>/dev/null
  wait "$SRV_PID" 2>/dev/null || rc=$?
  SRV_PID=""
  return $rc
}

# utime_ticks PID: the user CPU time of PID so far, in clock ticks.
utime_ticks() {
  sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 }'
}
