#!/usr/bin/env bash
# The scoped workspace route against the unscoped one, in the same run, on one real server with
# the `scoped-provider` fixture (SDK 1.1): `GET /workspaces/plain/github-installation-token` (a
# workspace token issued without a scope: the provider's unscoped token, cached per route) and
# `GET /workspaces/scoped/github-installation-token` (issued with a scope: a token minted for
# that scope, cached per workspace and scope). Alternating rounds, medians, requests/s and p99.
# Then a cold herd: 1,000 connections open at once on a fresh scoped workspace whose mint takes
# 500 ms, and the number of mints the fixture logged for it (target: 1).
#
#   bash host/benches/scoped_endpoint.sh
#   ROUNDS=3 DURATION=10s CONNECTIONS=64 THREADS=2 bash host/benches/scoped_endpoint.sh
#
# Builds release binaries (CARGO_TARGET_DIR honoured). Installs wrk from Debian if missing.
set -euo pipefail

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
HERD=${HERD:-1000}

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

cargo build --release --quiet -p plughost --bin plughost
cargo build --release --quiet -p abi-fixture-scoped-provider
plughost="$target_dir/release/plughost"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -m 0755 "$work/plugins"
install -m 0755 "$target_dir/release/libabi_fixture_scoped_provider.so" "$work/plugins/"
printf 'mint_log = "%s"\nmint_delay_ms = 500\n' "$work/mints.log" >"$work/plugins/libabi_fixture_scoped_provider.toml"
chmod 0644 "$work/plugins/libabi_fixture_scoped_provider.toml"

admin=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
PLUGHOST_ADMIN_TOKEN=$admin RUST_LOG=warn \
    "$plughost" serve --listen 127.0.0.1:0 --print-addr --plugin-dir "$work/plugins" --state-dir "$work/state" \
    >"$work/server.addr" 2>"$work/server.log" &
pids+=($!)
for _ in $(seq 200); do server=$(head -n1 "$work/server.addr" 2>/dev/null) && [ -n "$server" ] && break; sleep 0.05; done
until curl -sf "http://$server/readyz" >/dev/null; do sleep 0.05; done

issue() { # workspace [json body] -> workspace bearer token
    curl -sf -X POST -H "Authorization: Bearer $admin" ${2:+-d "$2"} "http://$server/admin/workspaces/$1/tokens" |
        sed 's/.*"token":"\([^"]*\)".*/\1/'
}
scope='{"scope":{"repositories":["acme/api"],"permissions":{"contents":"read"}}}'
plain=$(issue plain)
scoped=$(issue scoped "$scope")
plain_url="http://$server/workspaces/plain/github-installation-token"
scoped_url="http://$server/workspaces/scoped/github-installation-token"
curl -sf -H "Authorization: Bearer $plain" "$plain_url" | grep -q '"token":"unscoped'
curl -sf -H "Authorization: Bearer $scoped" "$scoped_url" | grep -q '"token":"scoped'

run() { # name url bearer
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency -H "Authorization: Bearer $3" "$2" >"$work/$1.wrk"
    local rps p99 errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/$1.wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$work/$1.wrk")
    errors=$(grep -E 'Non-2xx|Socket errors' "$work/$1.wrk" || true)
    [ -z "$errors" ] || { echo "$1: $errors" >&2; exit 1; }
    echo "$rps $p99"
}
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

wrk -t "$THREADS" -c "$CONNECTIONS" -d 2s -H "Authorization: Bearer $plain" "$plain_url" >/dev/null
wrk -t "$THREADS" -c "$CONNECTIONS" -d 2s -H "Authorization: Bearer $scoped" "$scoped_url" >/dev/null
: >"$work/plain.rounds"
: >"$work/scoped.rounds"
for round in $(seq "$ROUNDS"); do
    read -r rps p99 < <(run plain "$plain_url" "$plain")
    echo "$rps $(to_ms "$p99")" >>"$work/plain.rounds"
    read -r rps p99 < <(run scoped "$scoped_url" "$scoped")
    echo "$rps $(to_ms "$p99")" >>"$work/scoped.rounds"
    echo "round $round: unscoped $(tail -1 "$work/plain.rounds"), scoped $(tail -1 "$work/scoped.rounds") (requests/s p99-ms)" >&2
done
plain_rps=$(cut -d' ' -f1 "$work/plain.rounds" | median)
plain_p99=$(cut -d' ' -f2 "$work/plain.rounds" | median)
scoped_rps=$(cut -d' ' -f1 "$work/scoped.rounds" | median)
scoped_p99=$(cut -d' ' -f2 "$work/scoped.rounds" | median)

# The cold herd: every connection's first request arrives before the 500 ms mint ends.
herd=$(issue herd "$scope")
wrk -t "$THREADS" -c "$HERD" -d 2s -H "Authorization: Bearer $herd" \
    "http://$server/workspaces/herd/github-installation-token" >"$work/herd.wrk"
herd_errors=$(grep -E 'Non-2xx|Socket errors' "$work/herd.wrk" || true)
herd_mints=$(grep -c '^scoped\.[0-9]*\.herd\.' "$work/mints.log" || true)

printf '%-40s %12s %10s\n' "median of $ROUNDS x $DURATION, $CONNECTIONS conns" "requests/s" "p99 ms"
printf '%-40s %12.0f %10s\n' "workspace route, unscoped token" "$plain_rps" "$plain_p99"
printf '%-40s %12.0f %10s\n' "workspace route, scoped token" "$scoped_rps" "$scoped_p99"
awk -v s="$scoped_rps" -v p="$plain_rps" 'BEGIN { printf "scoped / unscoped throughput: %.3f\n", s / p }'
echo "cold herd of $HERD connections: $herd_mints mint(s) (target 1)${herd_errors:+; $herd_errors}"
