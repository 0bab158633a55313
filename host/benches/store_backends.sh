#!/usr/bin/env bash
# The workspace route (`GET /workspaces/bench/github-installation-token`: a workspace token check
# in the store on every request, then the fixture provider's cached token) on the two store
# backends, with wrk on loopback, in the same run:
#
#   sqlite x1    one `plughost serve`, SQLite in its state directory (the default)
#   sqlite x3    three processes sharing that state directory (one host only: SQLite's limit)
#   postgres x1  one `plughost serve` on a throwaway PostgreSQL cluster (PLUGHOST_STORE_URL)
#   postgres x3  three replicas on that cluster; the connections are split between them and
#                their requests/s added up
#
# then p99 (and how many answers were 503) on one PostgreSQL replica while the database is
# restarted (`pg_ctl restart -m fast`) in the middle of the run, beside the same run without.
#
#   bash host/benches/store_backends.sh              # 3 rounds of 5 s per set-up
#   ROUNDS=5 DURATION=10s CONNECTIONS=48 THREADS=2 bash host/benches/store_backends.sh
#
# Set-ups are measured in alternating rounds and each figure is the median of its rounds. Every
# process (wrk, the hosts, PostgreSQL) shares the machine's cores: on a small machine the x3
# figures show the cost of more processes, not the gain of more machines.
# Needs Debian's postgresql (server binaries under /usr/lib/postgresql/<version>/bin); run as
# root, the cluster runs as the postgres user. Builds release binaries (CARGO_TARGET_DIR
# honoured). Installs wrk from Debian if missing.
set -euo pipefail

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-48}
THREADS=${THREADS:-2}
RESTART_RUN=${RESTART_RUN:-10}   # seconds of the restart run; the restart starts at a third

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg_bin/initdb" ] || { echo "no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 1; }

cargo build --release --quiet -p plughost --bin plughost
cargo build --release --quiet -p test-token-provider
plughost="$target_dir/release/plughost"

work=$(mktemp -d)
chmod 0755 "$work"
pids=()
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "${as_pg[@]}" "$pg_bin/pg_ctl" stop -m immediate -D "$work/pg/data" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# The cluster: a unix socket in $work/pg/socket, no TCP.
mkdir -p "$work/pg/socket"
[ "$(id -u)" = 0 ] && chown -R postgres "$work/pg"
pg_user=$([ "$(id -u)" = 0 ] && echo postgres || id -un)
"${as_pg[@]}" "$pg_bin/initdb" --auth=trust --username "$pg_user" -D "$work/pg/data" >"$work/initdb.log"
pg_opts="-c listen_addresses='' -c unix_socket_directories='$work/pg/socket' -c max_connections=200"
pg_start() { "${as_pg[@]}" "$pg_bin/pg_ctl" start -w -D "$work/pg/data" -l "$work/pg/server.log" -o "$pg_opts" >/dev/null; }
pg_start
"${as_pg[@]}" "$pg_bin/psql" -X -q -h "$work/pg/socket" -U "$pg_user" -d postgres -c 'CREATE DATABASE bench'
store_url="postgres://$pg_user@/bench?host=$work/pg/socket"

mkdir -m 0755 "$work/plugins"
install -m 0755 "$target_dir/release/libtest_token_provider.so" "$work/plugins/"
echo 'token = "ghs_benchmark0123456789abcdefghijklmnopq"' >"$work/plugins/libtest_token_provider.toml"
chmod 0644 "$work/plugins/libtest_token_provider.toml"
admin=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')

wait_addr() { # file whose first line will be IP:PORT (serve --print-addr) -> IP:PORT
    for _ in $(seq 200); do
        addr=$(head -n1 "$1" 2>/dev/null)
        [ -n "$addr" ] && { echo "$addr"; return; }
        sleep 0.05
    done
    echo "no address in $1" >&2; cat "$work"/*.log >&2; exit 1
}

start_host() { # name store-url-or-empty -> IP:PORT
    local env=(PLUGHOST_ADMIN_TOKEN="$admin" RUST_LOG=warn)
    [ -n "$2" ] && env+=(PLUGHOST_STORE_URL="$2")
    env "${env[@]}" "$plughost" serve --listen 127.0.0.1:0 --print-addr --plugin-dir "$work/plugins" \
        --state-dir "$work/state" >"$work/$1.addr" 2>"$work/$1.log" &
    pids+=($!)
    local addr
    addr=$(wait_addr "$work/$1.addr")
    until curl -sf "http://$addr/readyz" >/dev/null; do sleep 0.05; done
    echo "$addr"
}

issue() { # addr -> token
    curl -sf -X POST -H "Authorization: Bearer $admin" "http://$1/admin/workspaces/bench/tokens" |
        sed 's/.*"token":"\([^"]*\)".*/\1/'
}

declare -A hosts
hosts[sqlite]="$(start_host sqlite1 '') $(start_host sqlite2 '') $(start_host sqlite3 '')"
hosts[postgres]="$(start_host pg1 "$store_url") $(start_host pg2 "$store_url") $(start_host pg3 "$store_url")"
declare -A bearer
for store in sqlite postgres; do
    set -- ${hosts[$store]}
    bearer[$store]=$(issue "$1")
    for addr in "$@"; do   # the token works on every process of the set-up
        curl -sf -H "Authorization: Bearer ${bearer[$store]}" \
            "http://$addr/workspaces/bench/github-installation-token" | grep -q '"expires_at"'
    done
done

to_ms() { # wrk latency (e.g. 812.00us, 1.20ms, 2.1s) -> milliseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

wrk_one() { # out-file addr bearer connections duration
    wrk -t "$THREADS" -c "$4" -d "$5" --latency -H "Authorization: Bearer $3" \
        "http://$2/workspaces/bench/github-installation-token" >"$1"
}

measure() { # store replicas -> "requests/s p99-ms" (p99: the worst of the replicas)
    local store=$1 n=$2 addrs i
    read -r -a addrs <<<"${hosts[$store]}"
    local runs=()
    for ((i = 0; i < n; i++)); do
        wrk_one "$work/run.$i.wrk" "${addrs[$i]}" "${bearer[$store]}" $((CONNECTIONS / n)) "$DURATION" &
        runs+=($!)
    done
    wait "${runs[@]}"
    local rps=0 p99=0 r p
    for ((i = 0; i < n; i++)); do
        if grep -qE 'Non-2xx|Socket errors' "$work/run.$i.wrk"; then
            echo "$store x$n: $(grep -E 'Non-2xx|Socket errors' "$work/run.$i.wrk")" >&2; exit 1
        fi
        r=$(awk '/^Requests\/sec:/ {print $2}' "$work/run.$i.wrk")
        p=$(to_ms "$(awk '$1 == "99%" {print $2}' "$work/run.$i.wrk")")
        rps=$(awk -v a="$rps" -v b="$r" 'BEGIN {print a + b}')
        p99=$(awk -v a="$p99" -v b="$p" 'BEGIN {print (b > a) ? b : a}')
    done
    echo "$rps $p99"
}

setups=("sqlite 1" "sqlite 3" "postgres 1" "postgres 3")
for setup in "${setups[@]}"; do   # warm-up
    read -r store n <<<"$setup"
    DURATION=1s measure "$store" "$n" >/dev/null
    : >"$work/${store}x$n.rounds"
done
for round in $(seq "$ROUNDS"); do
    for setup in "${setups[@]}"; do
        read -r store n <<<"$setup"
        measure "$store" "$n" >>"$work/${store}x$n.rounds"
        echo "round $round: $store x$n $(tail -1 "$work/${store}x$n.rounds") (requests/s p99-ms)" >&2
    done
done

# p99 on one PostgreSQL replica across a database restart, beside the same run without one.
restart_run() { # name restart?(0|1)
    local addr
    read -r addr _ <<<"${hosts[postgres]}"
    wrk_one "$work/$1.wrk" "$addr" "${bearer[postgres]}" "$CONNECTIONS" "${RESTART_RUN}s" &
    local wrk_pid=$!
    if [ "$2" = 1 ]; then
        sleep $((RESTART_RUN / 3))
        local before=$SECONDS
        "${as_pg[@]}" "$pg_bin/pg_ctl" restart -m fast -w -D "$work/pg/data" -l "$work/pg/server.log" \
            -o "$pg_opts" >/dev/null
        echo "database restarted in $((SECONDS - before)) s (whole seconds)" >&2
    fi
    wait "$wrk_pid"
    local p99 non2xx total
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$work/$1.wrk")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/$1.wrk")
    total=$(awk '/requests in/ {print $1}' "$work/$1.wrk")
    echo "$p99 ${non2xx:-0} $total"
}
read -r steady_p99 steady_503 steady_total < <(restart_run steady 0)
read -r restart_p99 restart_503 restart_total < <(restart_run restart 1)
# After the restart the same processes answer again, with the token issued before it.
read -r addr _ <<<"${hosts[postgres]}"
curl -sf -H "Authorization: Bearer ${bearer[postgres]}" "http://$addr/workspaces/bench/github-installation-token" |
    grep -q '"expires_at"'

printf '%-40s %12s %10s\n' "median of $ROUNDS x $DURATION, $CONNECTIONS conns" "requests/s" "p99 ms"
for setup in "${setups[@]}"; do
    read -r store n <<<"$setup"
    rps=$(cut -d' ' -f1 "$work/${store}x$n.rounds" | median)
    p99=$(cut -d' ' -f2 "$work/${store}x$n.rounds" | median)
    printf '%-40s %12.0f %10s\n' "workspace route, $store x$n" "$rps" "$p99"
done
printf '%-40s %12s %10s %8s\n' "postgres x1, ${RESTART_RUN}s, $CONNECTIONS conns" "requests" "p99 ms" "503s"
printf '%-40s %12s %10s %8s\n' "no restart" "$steady_total" "$steady_p99" "$steady_503"
printf '%-40s %12s %10s %8s\n' "database restarted at $((RESTART_RUN / 3)) s" "$restart_total" "$restart_p99" "$restart_503"
