# paths.sh: sourced by the scripts in this folder; sets where the programs
# they run are, all in this repository (override any through the
# environment). Defines variables only, prints nothing.
#   EX      the project's release examples (echo_server, echo_raw, echo_client, bench)
#   PEERS   the C tevent peers built by benches/run.sh (tevent_echo_fd, tevent_echo_req)
#   TOKIO   the tokio peers built by benches/run.sh (tokio_echo, tokio_bench)
#   CLIENT  the load client: examples/echo_client
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
EX=${EX:-$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/examples}
PEERS=${PEERS:-$ROOT/benches/build/c}
TOKIO=${TOKIO:-$ROOT/benches/build/tokio-target/release}
CLIENT=${CLIENT:-$EX/echo_client}
