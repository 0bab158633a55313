#!/usr/bin/env bash
# The token endpoint served by the real GitHub App plugin (against the bundled GitHub API
# emulator, on loopback), with the plugin in process mode and in-process, in the same run:
# requests/s and p99 with wrk at 64 connections, alternating rounds, medians.
#
#   bash host/benches/isolation_endpoint.sh            # 5 rounds of 5 s per mode, both cache settings
#   ROUNDS=3 DURATION=10s CONNECTIONS=64 THREADS=2 bash host/benches/isolation_endpoint.sh
#
# Two settings of the host's answer reuse (`token_cache_ms`):
#   1000 (the default): what workspaces see; the plugin is called about once a second;
#   0: every request crosses to the plugin, the worst case for process mode.
# Target: with the default, process mode within noise of in-process (ratio >= 0.95).
# Builds release binaries (CARGO_TARGET_DIR honoured). Installs wrk from Debian if missing.
set -euo pipefail

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

cargo build --release --quiet -p plughost --bin plughost -p github-emulator --bin github-emulator
cargo build --release --quiet -p github-app-auth --lib
plughost="$target_dir/release/plughost"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$target_dir/release/github-emulator" --listen 127.0.0.1:0 --app-id 4242 --installation-id 99 \
    --generate-key-to "$work/app-key.pem" >"$work/emulator.out" 2>&1 &
pids+=($!)
for _ in $(seq 200); do
    api_url=$(awk '/api_url \(github.com style\)/ {print $NF}' "$work/emulator.out")
    [ -n "$api_url" ] && break
    sleep 0.05
done
[ -n "$api_url" ] || { cat "$work/emulator.out" >&2; exit 1; }
chmod 0600 "$work/app-key.pem"

admin=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')

start_host() { # name mode cache_ms -> prints host:port
    local dir="$work/$1"
    mkdir -p -m 0755 "$dir/plugins"
    install -m 0755 "$target_dir/release/libgithub_app_auth.so" "$dir/plugins/"
    printf 'app_id = 4242\ninstallation_id = 99\nprivate_key_path = "%s"\napi_url = "%s"\n' \
        "$work/app-key.pem" "$api_url" >"$dir/plugins/libgithub_app_auth.toml"
    chmod 0644 "$dir/plugins/libgithub_app_auth.toml"
    printf 'token_cache_ms = %s\n[isolation]\nmode = "%s"\n' "$3" "$2" >"$dir/host.toml"
    PLUGHOST_ADMIN_TOKEN=$admin RUST_LOG=warn "$plughost" --config "$dir/host.toml" serve --listen 127.0.0.1:0 \
        --plugin-dir "$dir/plugins" --state-dir "$dir/state" --print-addr >"$dir/addr" 2>"$dir/server.log" &
    pids+=($!)
    for _ in $(seq 200); do [ -s "$dir/addr" ] && break; sleep 0.05; done
    local addr
    addr=$(head -1 "$dir/addr")
    until curl -sf "http://$addr/readyz" >/dev/null; do sleep 0.05; done
    curl -sf -H "Authorization: Bearer $admin" "http://$addr/admin/github-installation-token" | grep -q '"expires_at"' \
        || { echo "$1: no token" >&2; cat "$dir/server.log" >&2; exit 1; }
    echo "$addr"
}

run() { # name url
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency -H "Authorization: Bearer $admin" "$2" >"$work/$1.wrk"
    local rps p99 errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/$1.wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$work/$1.wrk")
    errors=$(grep -E 'Non-2xx|Socket errors' "$work/$1.wrk" || true)
    [ -z "$errors" ] || { echo "$1: $errors" >&2; exit 1; }
    echo "$rps $p99"
}

to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; printf "%.3f", n }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for cache_ms in 1000 0; do
    process=$(start_host "process-$cache_ms" process "$cache_ms")
    inproc=$(start_host "inproc-$cache_ms" in-process "$cache_ms")
    : >"$work/process.rounds"
    : >"$work/inproc.rounds"
    for url in "http://$process" "http://$inproc"; do
        wrk -t "$THREADS" -c "$CONNECTIONS" -d 2s -H "Authorization: Bearer $admin" "$url/admin/github-installation-token" >/dev/null
    done
    for round in $(seq "$ROUNDS"); do
        read -r rps p99 < <(run process "http://$process/admin/github-installation-token")
        echo "$rps $(to_ms "$p99")" >>"$work/process.rounds"
        read -r rps p99 < <(run inproc "http://$inproc/admin/github-installation-token")
        echo "$rps $(to_ms "$p99")" >>"$work/inproc.rounds"
        echo "token_cache_ms=$cache_ms round $round: process $(tail -1 "$work/process.rounds"), in-process $(tail -1 "$work/inproc.rounds")" >&2
    done
    p_rps=$(cut -d' ' -f1 "$work/process.rounds" | median)
    p_p99=$(cut -d' ' -f2 "$work/process.rounds" | median)
    i_rps=$(cut -d' ' -f1 "$work/inproc.rounds" | median)
    i_p99=$(cut -d' ' -f2 "$work/inproc.rounds" | median)
    printf '\ntoken_cache_ms = %s: median of %s x %s, %s connections\n' "$cache_ms" "$ROUNDS" "$DURATION" "$CONNECTIONS"
    printf '  %-22s %12s %10s\n' "github-app-auth" "requests/s" "p99 ms"
    printf '  %-22s %12.0f %10s\n' "process mode" "$p_rps" "$p_p99"
    printf '  %-22s %12.0f %10s\n' "in-process" "$i_rps" "$i_p99"
    awk -v p="$p_rps" -v i="$i_rps" 'BEGIN { printf "  process / in-process requests/s: %.3f\n", p / i }'
done
