#!/usr/bin/env bash
# Drives the real server's token endpoint (the fixture provider returning a cached token) and a
# bare axum route serving the same JSON through the same connection handling
# (`plughost::api::server::serve`), with the same load generator (wrk) in the same run, at 64
# connections on loopback, and reports requests/s, p99 and the ratios. Both print their bound
# address on stdout (`serve --print-addr`), which is how this script learns the ports.
#
#   bash host/benches/token_endpoint.sh                 # 5 rounds of 5 s per target
#   ROUNDS=3 DURATION=10s CONNECTIONS=64 THREADS=2 ROUTE=workspace bash host/benches/token_endpoint.sh
#
# The two targets are measured in alternating rounds and each figure is the median of its
# rounds: on a shared machine, load from elsewhere then hits both alike instead of one.
#
# Targets: the token endpoint at >= 85% of the bare route's requests/s, p99 <= 1.25x bare.
# ROUTE=workspace measures the workspace route, which also checks the workspace token in SQLite
# on every request (so that a revocation by any process counts at once); expect it lower.
# Builds release binaries (CARGO_TARGET_DIR honoured). Installs wrk from Debian if missing.
set -euo pipefail

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUTE=${ROUTE:-admin}   # admin: /admin/github-installation-token; workspace: /workspaces/bench/github-installation-token

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

cargo build --release --quiet -p plughost --bin plughost --example bare_route
cargo build --release --quiet -p test-token-provider
plughost="$target_dir/release/plughost"
bare="$target_dir/release/examples/bare_route"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -m 0755 "$work/plugins"
install -m 0755 "$target_dir/release/libtest_token_provider.so" "$work/plugins/"
echo 'token = "ghs_benchmark0123456789abcdefghijklmnopq"' >"$work/plugins/libtest_token_provider.toml"
chmod 0644 "$work/plugins/libtest_token_provider.toml"

wait_addr() { # file whose first line will be IP:PORT (serve --print-addr, bare_route) -> IP:PORT
    for _ in $(seq 200); do
        addr=$(head -n1 "$1" 2>/dev/null)
        [ -n "$addr" ] && { echo "$addr"; return; }
        sleep 0.05
    done
    echo "no address in $1" >&2; cat "$work"/*.log >&2; exit 1
}

admin=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
PLUGHOST_ADMIN_TOKEN=$admin RUST_LOG=warn \
    "$plughost" serve --listen 127.0.0.1:0 --print-addr --plugin-dir "$work/plugins" --state-dir "$work/state" \
    >"$work/server.addr" 2>"$work/server.log" &
pids+=($!)
server=$(wait_addr "$work/server.addr")
until curl -sf "http://$server/readyz" >/dev/null; do sleep 0.05; done

"$bare" 127.0.0.1:0 >"$work/bare.addr" 2>"$work/bare.log" &
pids+=($!)
bare_addr=$(wait_addr "$work/bare.addr")

if [ "$ROUTE" = workspace ]; then
    bearer=$(curl -sf -X POST -H "Authorization: Bearer $admin" "http://$server/admin/workspaces/bench/tokens" | sed 's/.*"token":"\([^"]*\)".*/\1/')
    token_url="http://$server/workspaces/bench/github-installation-token"
else
    bearer=$admin
    token_url="http://$server/admin/github-installation-token"
fi
curl -sf -H "Authorization: Bearer $bearer" "$token_url" | grep -q '"expires_at"'

run() { # name url [bearer]
    local args=(-t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency)
    [ $# -ge 3 ] && args+=(-H "Authorization: Bearer $3")
    wrk "${args[@]}" "$2" >"$work/$1.wrk"
    local rps p99 errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/$1.wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$work/$1.wrk")
    errors=$(grep -E 'Non-2xx|Socket errors' "$work/$1.wrk" || true)
    [ -z "$errors" ] || { echo "$1: $errors" >&2; exit 1; }
    echo "$rps $p99"
}

to_ms() { # wrk latency (e.g. 812.00us, 1.20ms, 2.1s) -> milliseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Warm both up, then alternate rounds.
wrk -t "$THREADS" -c "$CONNECTIONS" -d 2s "http://$bare_addr/token" >/dev/null
wrk -t "$THREADS" -c "$CONNECTIONS" -d 2s -H "Authorization: Bearer $bearer" "$token_url" >/dev/null
: >"$work/bare.rounds"
: >"$work/token.rounds"
for round in $(seq "$ROUNDS"); do
    read -r rps p99 < <(run bare "http://$bare_addr/token")
    echo "$rps $(to_ms "$p99")" >>"$work/bare.rounds"
    read -r rps p99 < <(run token "$token_url" "$bearer")
    echo "$rps $(to_ms "$p99")" >>"$work/token.rounds"
    echo "round $round: bare $(tail -1 "$work/bare.rounds"), token $(tail -1 "$work/token.rounds") (requests/s p99-ms)" >&2
done
bare_rps=$(cut -d' ' -f1 "$work/bare.rounds" | median)
bare_p99_ms=$(cut -d' ' -f2 "$work/bare.rounds" | median)
tok_rps=$(cut -d' ' -f1 "$work/token.rounds" | median)
tok_p99_ms=$(cut -d' ' -f2 "$work/token.rounds" | median)

printf '%-34s %12s %10s\n' "median of $ROUNDS x $DURATION, $CONNECTIONS conns" "requests/s" "p99 ms"
printf '%-34s %12.0f %10s\n' "bare axum route" "$bare_rps" "$bare_p99_ms"
printf '%-34s %12.0f %10s\n' "token endpoint ($ROUTE)" "$tok_rps" "$tok_p99_ms"
awk -v tr="$tok_rps" -v br="$bare_rps" -v tp="$tok_p99_ms" -v bp="$bare_p99_ms" 'BEGIN {
    r = tr / br; p = tp / bp
    printf "throughput ratio %.3f (target >= 0.85): %s\n", r, (r >= 0.85 ? "met" : "MISSED")
    printf "p99 ratio        %.3f (target <= 1.25): %s\n", p, (p <= 1.25 ? "met" : "MISSED")
}'
