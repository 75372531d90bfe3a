#!/usr/bin/env bash
# icount-guard.sh: fails when tevent-rs's instruction counts regress.
#
# Usage: benches/icount-guard.sh [--update] [--no-build] [--baseline FILE]
#   --update         measure and write the figures into the baseline file
#                    instead of comparing (after a deliberate change)
#   --no-build       use the release binaries already built
#   --baseline FILE  default: benches/icount-baseline.txt
# Environment: ICOUNT_TOLERANCE_PCT (default 3): the allowed growth, in %.
#
# Measures with valgrind --tool=callgrind, on the release build of
# examples/bench.rs and examples/echo_server.rs:
#   immediate, req_lifecycle, nested, and req_lifecycle_macro, nested_macro
#     (the same requests written with #[tevent_request]): instructions per
#     op, the difference of a run with N = 220 000 and one with N = 20 000
#     over the difference of their ops (start-up and exit cancel out);
#   echo_server_rt: instructions per echo round trip of echo_server
#     --peer-harness, one connection (so every round trip is one loop wait:
#     the count does not depend on how the scheduler batches clients), the
#     difference of a server run serving 2 500 round trips of 64 bytes and
#     one serving 500, driven by examples/echo_client.
# The counts are deterministic for a given binary on a given machine (two
# runs agree to the tenth of an instruction). The tolerance absorbs what
# moves them without a change in this code: a new rustc/LLVM (code layout,
# inlining), another glibc or another CPU model (glibc picks its memcpy and
# friends by CPU), another valgrind: 3% on the baseline's machine (the
# toolchain, valgrind and CPU of its header line), 10% elsewhere. A
# regression beyond it fails the run;
# an improvement beyond it passes with a note to update the baseline.
#
# Output: one line per figure (baseline, measured, change, verdict), then
# "icount guard: ok" or "icount guard: FAILED". Exit status: 0 ok (or
# SKIPPED: valgrind is not installed, said on stdout); 1 a regression or a
# failed run; 2 a bad command line. The callgrind runs take about 5 s on 2
# cores; building the bench example, when it is not built yet, about 10 s
# more after the other release examples.
set -uo pipefail

usage() {
  echo "usage: benches/icount-guard.sh [--update] [--no-build] [--baseline FILE]" >&2
  exit 2
}

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
UPDATE=0 BUILD=1 BASELINE=$HERE/icount-baseline.txt
while [ $# -gt 0 ]; do
  case $1 in
    --update) UPDATE=1 ;;
    --no-build) BUILD=0 ;;
    --baseline)
      [ $# -ge 2 ] || usage
      BASELINE=$2
      shift ;;
    -h | --help) usage ;;
    *) echo "icount-guard.sh: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done
TOL=${ICOUNT_TOLERANCE_PCT:-3}
case $TOL in '' | *[!0-9.]*) echo "ICOUNT_TOLERANCE_PCT must be a number" >&2; exit 2 ;; esac

# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"

if ! command -v valgrind >/dev/null; then
  echo "icount guard: SKIPPED (valgrind is not installed)"
  exit 0
fi
if [ "$UPDATE" = 0 ] && [ ! -r "$BASELINE" ]; then
  echo "icount-guard.sh: no baseline $BASELINE (make one with --update)" >&2
  exit 1
fi

TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
R=${TARGET:-$ROOT/target}/release/examples
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release --quiet -p examples --example bench \
    --example echo_server --example echo_client) || exit 1
fi
for b in bench echo_server echo_client; do
  [ -x "$R/$b" ] || { echo "icount-guard.sh: $R/$b missing" >&2; exit 1; }
done

TMP=$(mktemp -d)
SRV_PID=""
trap 'stop_server >/dev/null 2>&1; rm -rf "$TMP"' EXIT

# echo_rt: instructions per round trip of echo_server, one connection.
echo_rt() {
  local m irs=()
  for m in 500 2500; do
    start_server "$TMP/srv" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
      "$R/echo_server" --peer-harness --bufsize 16384 || return 0
    if ! timeout 300 "$R/echo_client" "$SRV_ADDR" --conns 1 --msgs "$m" --warmup 0 \
      >/dev/null 2>"$TMP/client.err"; then
      sed 's/^/#   /' "$TMP/client.err" >&2
      stop_server
      return 0
    fi
    stop_server || return 0
    irs+=("$(awk '/Collected :/ { print $NF }' "$TMP/srv.err")")
  done
  [ -n "${irs[0]}" ] && [ -n "${irs[1]}" ] || return 0
  awk -v a="${irs[0]}" -v b="${irs[1]}" 'BEGIN { printf "%.1f\n", (b - a) / 2000 }'
}

WORKLOADS="immediate req_lifecycle nested req_lifecycle_macro nested_macro echo_server_rt"
declare -A GOT
for w in $WORKLOADS; do
  if [ "$w" = echo_server_rt ]; then
    GOT[$w]=$(echo_rt)
  else
    GOT[$w]=$(icount_per_op "$R/bench" "$w" 20000 220000)
  fi
  if [ -z "${GOT[$w]}" ]; then
    echo "icount guard: FAILED (the $w run under callgrind failed)"
    exit 1
  fi
done

if [ "$UPDATE" = 1 ]; then
  {
    echo "# Instructions per op of tevent-rs, checked by benches/icount-guard.sh"
    echo "# (see its header for the method and the tolerance). Written by"
    echo "# 'benches/icount-guard.sh --update' at commit" \
      "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)" \
      "on $(date -u +%Y-%m-%d):"
    echo "# $(rustc --version), $(valgrind --version)," \
      "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)."
    echo "# workload instructions_per_op"
    for w in $WORKLOADS; do echo "$w ${GOT[$w]}"; done
  } >"$BASELINE"
  cat "$BASELINE"
  echo "icount guard: baseline written to $BASELINE"
  exit 0
fi

# The counts depend on the toolchain, valgrind and the CPU model (glibc
# picks its string functions by CPU): on another machine than the
# baseline's, the tolerance widens to 10% (a regression of the request core
# still shows; the layout noise of another compiler does not fail CI).
here_env="# $(rustc --version), $(valgrind --version), $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)."
if ! grep -qxF -- "$here_env" "$BASELINE"; then
  TOL=$(awk -v t="$TOL" 'BEGIN { print (t < 10 ? 10 : t) }')
  echo "note: this machine is not the baseline's (${here_env#\# }): tolerance ${TOL}%"
fi

bad=0
for w in $WORKLOADS; do
  base=$(awk -v w="$w" '$1 == w { print $2 }' "$BASELINE")
  if [ -z "$base" ]; then
    echo "$w: measured ${GOT[$w]}, not in $BASELINE: FAILED (add it with --update)"
    bad=1
    continue
  fi
  verdict=$(awk -v b="$base" -v g="${GOT[$w]}" -v t="$TOL" 'BEGIN {
    d = 100 * (g - b) / b
    printf "%+.2f%% ", d
    if (d > t) print "FAILED (more than +" t "%)"
    else if (d < -t) print "ok, better by more than " t "%: update the baseline (--update)"
    else print "ok"
  }')
  echo "$w: baseline $base, measured ${GOT[$w]}, $verdict"
  case $verdict in *FAILED*) bad=1 ;; esac
done
if [ "$bad" = 1 ]; then
  echo "icount guard: FAILED (if the growth is deliberate, run benches/icount-guard.sh --update and commit $(basename "$BASELINE"))"
  exit 1
fi
echo "icount guard: ok (tolerance ${TOL}%)"
