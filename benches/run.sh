#!/usr/bin/env bash
# run.sh: builds this project's benchmarks and its peers (C tevent, tokio),
# runs them side by side on this machine, and prints the ratios.
#
# Usage: benches/run.sh [--quick] [--no-build] [--no-callgrind] [--out DIR]
#   --quick         small sizes and one round: a smoke test (about 2 minutes
#                   with callgrind), not figures to quote
#   --no-build      use the binaries already built
#   --no-callgrind  leave out the instruction counts
#   --out DIR       keep the raw result lines and the summary in DIR
#                   (default: a fresh directory under /tmp, printed at the end)
# Sizes can be changed through the environment (defaults in brackets):
#   ROUNDS [3]: alternating rounds of every timed run (the median is shown);
#   N_IMMEDIATE N_IMMEDIATE_ALLOC N_REQ N_REQ_BATCH N_NESTED [2000000],
#   N_FD [200000], N_TIMERS [10000]: the micro-benchmarks' N;
#   ECHO_CONNS [50], ECHO_MSGS [10000], ECHO_WARMUP [100], ECHO_SIZE [64];
#   CG_N1 CG_N2 [20000 220000], CG_FD_N1 CG_FD_N2 [2000 22000]: the two
#   run lengths of each instruction count; CG_ECHO_MSGS1 CG_ECHO_MSGS2
#   [200 1200]: round trips per connection of the two echo runs under
#   callgrind.
#
# What it measures (benches/README.md has the details):
#   1. micro-benchmarks: ns per op of examples/bench.rs (tevent-rs), C
#      tevent's c/tevent_bench.c and tokio's tokio_bench, ROUNDS alternating
#      rounds, the median;
#   2. instructions per op (valgrind --tool=callgrind): the difference of a
#      run with CG_N2 and one with CG_N1 over the difference of their ops,
#      which cancels start-up and exit;
#   3. echo servers: user CPU per round trip (the server's utime from
#      /proc/PID/stat over ECHO_CONNS x (ECHO_WARMUP + ECHO_MSGS) round trips
#      of ECHO_SIZE bytes, driven by examples/echo_client), ROUNDS
#      alternating rounds, the median; the client's round trips per second;
#      and instructions per round trip (callgrind, the difference of two
#      client runs of CG_ECHO_MSGS1 and CG_ECHO_MSGS2 round trips per
#      connection against a server under callgrind).
#
# Output: progress on stderr; on stdout, the machine, any SKIPPED parts with
# the reason, then markdown tables of the figures and of the ratios
# (tevent-rs / peer: below 1 means tevent-rs needs less). The same summary
# and every raw result line are written to DIR (summary.md, raw.txt).
#
# Needs: cargo and a C compiler. C tevent's columns need libtevent-dev,
# libtalloc-dev and pkg-config (Debian: apt-get install libtevent-dev
# libtalloc-dev pkg-config); tokio's need crates.io, once, to fetch tokio;
# instruction counts need valgrind. What is missing is SKIPPED, and said so.
#
# Exit status: 0 when every run that was not skipped succeeded; 1 when a run
# failed (its output is shown); 2 for a bad command line.
set -uo pipefail

usage() {
  echo "usage: benches/run.sh [--quick] [--no-build] [--no-callgrind] [--out DIR]" >&2
  echo "(sizes through the environment: see the comment at the top of $0)" >&2
  exit 2
}

ARGS="$*"
QUICK=0 BUILD=1 CALLGRIND=1 OUT=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    --no-callgrind) CALLGRIND=0 ;;
    --out)
      [ $# -ge 2 ] || usage
      OUT=$2
      shift ;;
    -h | --help) usage ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"

if [ "$QUICK" = 1 ]; then
  d_big=200000 d_fd=20000 d_rounds=1 d_msgs=1000
else
  d_big=2000000 d_fd=200000 d_rounds=3 d_msgs=10000
fi
ROUNDS=${ROUNDS:-$d_rounds}
N_IMMEDIATE=${N_IMMEDIATE:-$d_big}
N_IMMEDIATE_ALLOC=${N_IMMEDIATE_ALLOC:-$d_big}
N_REQ=${N_REQ:-$d_big}
N_REQ_BATCH=${N_REQ_BATCH:-$d_big}
N_NESTED=${N_NESTED:-$d_big}
N_FD=${N_FD:-$d_fd}
N_TIMERS=${N_TIMERS:-10000}
ECHO_CONNS=${ECHO_CONNS:-50}
ECHO_MSGS=${ECHO_MSGS:-$d_msgs}
ECHO_WARMUP=${ECHO_WARMUP:-100}
ECHO_SIZE=${ECHO_SIZE:-64}
CG_N1=${CG_N1:-20000}
CG_N2=${CG_N2:-220000}
CG_FD_N1=${CG_FD_N1:-2000}
CG_FD_N2=${CG_FD_N2:-22000}
CG_ECHO_MSGS1=${CG_ECHO_MSGS1:-200}
CG_ECHO_MSGS2=${CG_ECHO_MSGS2:-1200}

[ -n "$OUT" ] || OUT=$(mktemp -d /tmp/tevent-benches.XXXXXX)
mkdir -p "$OUT" || exit 1
RAW=$OUT/raw.txt
: >"$RAW"
TMP=$(mktemp -d)
SRV_PID=""
cleanup() {
  stop_server >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FAILED=0
SKIPS=()
say() { echo "# $*" >&2; }
skip() { SKIPS+=("$*"); say "SKIPPED: $*"; }

BUILD_DIR=$HERE/build
RS_TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$RS_TARGET" ] || RS_TARGET=$ROOT/target
RS=$RS_TARGET/release/examples
RS_BENCH=$RS/bench
C_BENCH=$BUILD_DIR/c/tevent_bench
TOKIO_BIN=$BUILD_DIR/tokio-target/release
HAVE_RS=1 HAVE_C=1 HAVE_TOKIO=1 HAVE_VG=1

# ---- build -----------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  say "building tevent-rs (release): bench, echo_server, echo_raw, echo_client"
  if ! (cd "$ROOT" && cargo build --release --quiet -p examples --example bench \
    --example echo_server --example echo_raw --example echo_client); then
    echo "run.sh: the project's own binaries do not build" >&2
    exit 1
  fi
  if ! command -v pkg-config >/dev/null || ! pkg-config --exists tevent talloc; then
    HAVE_C=0
    skip "C tevent: libtevent/libtalloc not found by pkg-config" \
      "(Debian: apt-get install libtevent-dev libtalloc-dev pkg-config)"
  elif ! command -v "${CC:-cc}" >/dev/null; then
    HAVE_C=0
    skip "C tevent: no C compiler (${CC:-cc})"
  else
    say "building the C tevent peers (${CC:-cc} -O2, tevent $(pkg-config --modversion tevent))"
    mkdir -p "$BUILD_DIR/c"
    for p in tevent_bench tevent_echo_fd tevent_echo_req; do
      # shellcheck disable=SC2046 # pkg-config's flags are words
      if ! "${CC:-cc}" -O2 -g -Wall -Wextra -std=gnu11 $(pkg-config --cflags tevent talloc) \
        -o "$BUILD_DIR/c/$p" "$HERE/c/$p.c" $(pkg-config --libs tevent talloc); then
        echo "run.sh: $HERE/c/$p.c does not build" >&2
        exit 1
      fi
    done
  fi
  say "building the tokio peers (benches/tokio, its own Cargo.lock)"
  if ! cargo build --release --quiet --locked --manifest-path "$HERE/tokio/Cargo.toml" \
    --target-dir "$BUILD_DIR/tokio-target" 2>"$TMP/tokio-build.log"; then
    HAVE_TOKIO=0
    skip "tokio: benches/tokio did not build (offline, without tokio in cargo's cache?):" \
      "$(grep -m1 -E '^(error|warning: spurious)' "$TMP/tokio-build.log")"
  fi
fi
[ -x "$RS_BENCH" ] && [ -x "$RS/echo_client" ] || {
  echo "run.sh: $RS_BENCH or echo_client missing (run without --no-build)" >&2
  exit 1
}
if [ "$HAVE_C" = 1 ] && [ ! -x "$C_BENCH" ]; then
  HAVE_C=0
  skip "C tevent: $C_BENCH not built (run without --no-build)"
fi
if [ "$HAVE_TOKIO" = 1 ] && [ ! -x "$TOKIO_BIN/tokio_bench" ]; then
  HAVE_TOKIO=0
  skip "tokio: $TOKIO_BIN/tokio_bench not built (run without --no-build)"
fi
if [ "$CALLGRIND" = 0 ]; then
  HAVE_VG=0
  skip "instruction counts: --no-callgrind"
elif ! command -v valgrind >/dev/null; then
  HAVE_VG=0
  skip "instruction counts: valgrind not installed (Debian: apt-get install valgrind)"
fi

# impls: label, bench binary, availability
IMPLS=(c tokio rs)
declare -A BIN=([c]=$C_BENCH [tokio]=$TOKIO_BIN/tokio_bench [rs]=$RS_BENCH)
declare -A HAVE=([c]=$HAVE_C [tokio]=$HAVE_TOKIO [rs]=$HAVE_RS)
declare -A NAME=([c]="C tevent" [tokio]=tokio [rs]=tevent-rs)

MACHINE="$(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)),"
MACHINE+=" Linux $(uname -r), $(rustc --version | awk '{ print $1, $2 }')"
[ "$HAVE_C" = 1 ] && MACHINE+=", C tevent $(pkg-config --modversion tevent) with $(${CC:-cc} --version | head -1)"
[ "$HAVE_TOKIO" = 1 ] && MACHINE+=", tokio $(awk '/^name = "tokio"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$HERE/tokio/Cargo.lock")"
[ "$HAVE_VG" = 1 ] && MACHINE+=", $(valgrind --version)"
echo "# machine: $MACHINE" >>"$RAW"
echo "# commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')" >>"$RAW"

# ---- 1. micro-benchmarks ---------------------------------------------------
WORKLOADS=(immediate immediate_alloc timers fd req_lifecycle req_lifecycle_batch nested)
declare -A N=([immediate]=$N_IMMEDIATE [immediate_alloc]=$N_IMMEDIATE_ALLOC
  [timers]=$N_TIMERS [fd]=$N_FD [req_lifecycle]=$N_REQ [req_lifecycle_batch]=$N_REQ_BATCH
  [nested]=$N_NESTED)
declare -A NS   # NS[impl,workload]: space-separated ns_per_op of the rounds
declare -A IR   # IR[impl,workload]: instructions per op

run_bench() { # impl workload n -> appends ns_per_op to NS
  local i=$1 w=$2 n=$3 line
  if ! "${BIN[$i]}" "$w" "$n" >"$TMP/out" 2>"$TMP/err"; then
    echo "FAILED: ${BIN[$i]} $w $n" >&2
    sed 's/^/#   /' "$TMP/err" >&2
    FAILED=1
    return
  fi
  line=$(grep -m1 '^workload=' "$TMP/out")
  echo "$line" >>"$RAW"
  NS[$i,$w]="${NS[$i,$w]:-} $(kv "$line" ns_per_op)"
}

for r in $(seq "$ROUNDS"); do
  say "micro-benchmarks, round $r of $ROUNDS"
  for w in "${WORKLOADS[@]}"; do
    for i in "${IMPLS[@]}"; do
      [ "${HAVE[$i]}" = 1 ] && run_bench "$i" "$w" "${N[$w]}"
    done
    if [ "$w" = nested ] && [ "$HAVE_TOKIO" = 1 ]; then
      run_bench tokio nested_inline "$N_NESTED"
    fi
  done
done

if [ "$HAVE_VG" = 1 ]; then
  for w in "${WORKLOADS[@]}" nested_inline; do
    [ "$w" = timers ] && continue # clock-driven: not a fixed instruction count
    for i in "${IMPLS[@]}"; do
      [ "${HAVE[$i]}" = 1 ] || continue
      [ "$w" = nested_inline ] && [ "$i" != tokio ] && continue
      n1=$CG_N1 n2=$CG_N2
      [ "$w" = fd ] && n1=$CG_FD_N1 n2=$CG_FD_N2
      say "callgrind: ${NAME[$i]} $w ($n1, $n2)"
      v=$(icount_per_op "${BIN[$i]}" "$w" "$n1" "$n2")
      if [ -z "$v" ]; then
        echo "FAILED: callgrind of ${BIN[$i]} $w" >&2
        FAILED=1
        continue
      fi
      IR[$i,$w]=$v
      echo "icount workload=$w impl=${NAME[$i]// /-} n1=$n1 n2=$n2 instructions_per_op=$v" >>"$RAW"
    done
  done
fi

# ---- 2. echo servers ---------------------------------------------------------
SERVERS=(c_fd c_req tokio rs_raw rs_req)
declare -A SCMD=([c_fd]=$BUILD_DIR/c/tevent_echo_fd [c_req]=$BUILD_DIR/c/tevent_echo_req
  [tokio]=$TOKIO_BIN/tokio_echo [rs_raw]=$RS/echo_raw
  [rs_req]="$RS/echo_server --peer-harness --bufsize 16384")
declare -A SHAVE=([c_fd]=$HAVE_C [c_req]=$HAVE_C [tokio]=$HAVE_TOKIO [rs_raw]=1 [rs_req]=1)
declare -A SNAME=([c_fd]="C tevent, fd events (c/tevent_echo_fd.c)"
  [c_req]="C tevent, requests (c/tevent_echo_req.c)"
  [tokio]="tokio, task per connection (tokio/src/bin/tokio_echo.rs)"
  [rs_raw]="tevent-rs, fd events (examples/echo_raw.rs)"
  [rs_req]="tevent-rs, requests (examples/echo_server.rs)")
declare -A UNS RTS EIR
TCK=$(getconf CLK_TCK)
TOTAL_RT=$((ECHO_CONNS * (ECHO_WARMUP + ECHO_MSGS)))

# run_client ADDR MSGS WARMUP: the load, every byte checked; 1 if it failed
run_client() {
  if ! timeout 600 "$RS/echo_client" "$1" --conns "$ECHO_CONNS" --msgs "$2" \
    --warmup "$3" --size "$ECHO_SIZE" >"$TMP/client.out" 2>"$TMP/client.err"; then
    sed 's/^/#   /' "$TMP/client.err" >&2
    return 1
  fi
}

for r in $(seq "$ROUNDS"); do
  say "echo servers: user CPU, round $r of $ROUNDS ($ECHO_CONNS x $((ECHO_WARMUP + ECHO_MSGS)) round trips each)"
  for s in "${SERVERS[@]}"; do
    [ "${SHAVE[$s]}" = 1 ] || continue
    # shellcheck disable=SC2086 # the command and its arguments
    if ! start_server "$TMP/srv" ${SCMD[$s]}; then
      echo "FAILED: ${SCMD[$s]} did not start" >&2
      sed 's/^/#   /' "$TMP/srv.err" >&2
      FAILED=1
      continue
    fi
    u0=$(utime_ticks "$SRV_PID")
    ok=1
    run_client "$SRV_ADDR" "$ECHO_MSGS" "$ECHO_WARMUP" || ok=0
    u1=$(utime_ticks "$SRV_PID")
    stop_server || { echo "FAILED: ${SCMD[$s]} exited non-zero on SIGTERM" >&2; ok=0; }
    if [ "$ok" = 0 ]; then
      echo "FAILED: echo round trips against ${SCMD[$s]}" >&2
      FAILED=1
      continue
    fi
    rts=$(awk '/^round trips per second:/ { print $NF }' "$TMP/client.out")
    uns=$(awk -v u=$((u1 - u0)) -v t="$TCK" -v n="$TOTAL_RT" 'BEGIN { printf "%.0f", u / t * 1e9 / n }')
    UNS[$s]="${UNS[$s]:-} $uns"
    RTS[$s]="${RTS[$s]:-} $rts"
    echo "echo server=$s round_trips=$TOTAL_RT utime_ticks=$((u1 - u0)) user_ns_per_rt=$uns round_trips_per_s=$rts" >>"$RAW"
  done
done

if [ "$HAVE_VG" = 1 ]; then
  for s in "${SERVERS[@]}"; do
    [ "${SHAVE[$s]}" = 1 ] || continue
    say "callgrind: echo server $s"
    irs=()
    for m in "$CG_ECHO_MSGS1" "$CG_ECHO_MSGS2"; do
      # shellcheck disable=SC2086
      if ! start_server "$TMP/srv" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        ${SCMD[$s]}; then
        echo "FAILED: ${SCMD[$s]} did not start under callgrind" >&2
        FAILED=1
        break
      fi
      ok=1
      run_client "$SRV_ADDR" "$m" 0 || ok=0
      stop_server || ok=0
      ir=$(awk '/Collected :/ { print $NF }' "$TMP/srv.err")
      if [ "$ok" = 0 ] || [ -z "$ir" ]; then
        echo "FAILED: echo under callgrind against ${SCMD[$s]}" >&2
        FAILED=1
        break
      fi
      irs+=("$ir")
    done
    [ ${#irs[@]} = 2 ] || continue
    EIR[$s]=$(awk -v a="${irs[0]}" -v b="${irs[1]}" -v n=$((ECHO_CONNS * (CG_ECHO_MSGS2 - CG_ECHO_MSGS1))) \
      'BEGIN { printf "%.1f", (b - a) / n }')
    echo "icount echo server=$s msgs1=$CG_ECHO_MSGS1 msgs2=$CG_ECHO_MSGS2 conns=$ECHO_CONNS instructions_per_rt=${EIR[$s]}" >>"$RAW"
  done
fi

# ---- 3. the summary ----------------------------------------------------------
cell() { # a figure, or SKIPPED / – when there is none
  if [ -n "$1" ]; then echo "$1"; elif [ "$2" = 1 ]; then echo "–"; else echo SKIPPED; fi
}
{
  echo "Machine: $MACHINE."
  echo
  echo "Command: \`benches/run.sh${ARGS:+ $ARGS}\` (ROUNDS=$ROUNDS;" \
    "N: immediate $N_IMMEDIATE, immediate_alloc $N_IMMEDIATE_ALLOC, timers $N_TIMERS, fd $N_FD," \
    "req_lifecycle $N_REQ, req_lifecycle_batch $N_REQ_BATCH, nested $N_NESTED;" \
    "echo $ECHO_CONNS x ($ECHO_WARMUP + $ECHO_MSGS) x $ECHO_SIZE B;" \
    "callgrind N $CG_N1/$CG_N2, fd $CG_FD_N1/$CG_FD_N2, echo $ECHO_CONNS x $CG_ECHO_MSGS1/$CG_ECHO_MSGS2)"
  echo
  if [ ${#SKIPS[@]} -gt 0 ]; then
    for s in "${SKIPS[@]}"; do echo "SKIPPED: $s"; done
    echo
  fi
  echo "### Micro-benchmarks: ns per op (median of $ROUNDS round(s))"
  echo
  echo "| workload | C tevent | tokio | tevent-rs | tevent-rs / C | tevent-rs / tokio |"
  echo "|---|---:|---:|---:|---:|---:|"
  for w in "${WORKLOADS[@]}" nested_inline; do
    declare -A med=()
    for i in "${IMPLS[@]}"; do
      # shellcheck disable=SC2086
      med[$i]=$(median ${NS[$i,$w]:-})
      [ -z "${med[$i]}" ] || med[$i]=$(printf '%.1f' "${med[$i]}")
    done
    if [ "$w" = nested_inline ]; then
      [ "$HAVE_TOKIO" = 1 ] || continue
      echo "| nested_inline (tokio only) | | $(cell "${med[tokio]}" 1) | | | |"
      continue
    fi
    label=$w
    [ "$w" = timers ] && label="timers n=$N_TIMERS (CPU)"
    echo "| $label | $(cell "${med[c]}" "$HAVE_C") | $(cell "${med[tokio]}" "$HAVE_TOKIO")" \
      "| $(cell "${med[rs]}" 1) | $(ratio "${med[rs]}" "${med[c]}") | $(ratio "${med[rs]}" "${med[tokio]}") |"
  done
  echo
  echo "### Micro-benchmarks: instructions per op (callgrind)"
  echo
  if [ "$HAVE_VG" = 1 ]; then
    echo "| workload | C tevent | tokio | tevent-rs | tevent-rs / C | tevent-rs / tokio |"
    echo "|---|---:|---:|---:|---:|---:|"
    for w in "${WORKLOADS[@]}" nested_inline; do
      [ "$w" = timers ] && continue
      if [ "$w" = nested_inline ]; then
        [ "$HAVE_TOKIO" = 1 ] && echo "| nested_inline (tokio only) | | $(cell "${IR[tokio,$w]:-}" 1) | | | |"
        continue
      fi
      echo "| $w | $(cell "${IR[c,$w]:-}" "$HAVE_C") | $(cell "${IR[tokio,$w]:-}" "$HAVE_TOKIO")" \
        "| $(cell "${IR[rs,$w]:-}" 1) | $(ratio "${IR[rs,$w]:-}" "${IR[c,$w]:-}")" \
        "| $(ratio "${IR[rs,$w]:-}" "${IR[tokio,$w]:-}") |"
    done
  else
    echo "SKIPPED (see above)"
  fi
  echo
  echo "### Echo servers ($ECHO_CONNS connections, $ECHO_SIZE-byte round trips)"
  echo
  echo "| server | user ns / round trip, per round | median | round trips / s (median) | instructions / round trip |"
  echo "|---|---|---:|---:|---:|"
  declare -A umed=()
  for s in "${SERVERS[@]}"; do
    # shellcheck disable=SC2086
    umed[$s]=$(median ${UNS[$s]:-})
    # shellcheck disable=SC2086
    rmed=$(median ${RTS[$s]:-})
    if [ "$HAVE_VG" = 1 ]; then e=$(cell "${EIR[$s]:-}" "${SHAVE[$s]}"); else e=SKIPPED; fi
    echo "| ${SNAME[$s]} | $(cell "$(echo ${UNS[$s]:-} | sed 's/ /, /g')" "${SHAVE[$s]}")" \
      "| $(cell "${umed[$s]}" "${SHAVE[$s]}") | $(cell "$rmed" "${SHAVE[$s]}") | $e |"
  done
  echo
  echo "(user CPU: utime ticks of 1/$TCK s over $TOTAL_RT round trips, so ±$(awk -v t="$TCK" -v n="$TOTAL_RT" 'BEGIN { printf "%.0f", 1e9 / t / n }') ns per tick)"
  echo
  echo "### Echo ratios (tevent-rs / peer)"
  echo
  echo "| tevent-rs server | peer | user CPU | instructions |"
  echo "|---|---|---:|---:|"
  for pair in "rs_raw c_fd" "rs_req c_req" "rs_req tokio" "rs_raw tokio"; do
    set -- $pair
    echo "| ${SNAME[$1]%% (*} | ${SNAME[$2]%% (*} | $(ratio "${umed[$1]}" "${umed[$2]}")" \
      "| $(ratio "${EIR[$1]:-}" "${EIR[$2]:-}") |"
  done
} >"$OUT/summary.md"
cat "$OUT/summary.md"
say "raw result lines: $RAW; summary: $OUT/summary.md"
[ "$FAILED" = 0 ] || { echo "run.sh: some runs FAILED (see above)" >&2; exit 1; }
exit 0
