#!/usr/bin/env bash
# Soak of the release build: mixed requests (installation token, workspace token route, env
# chain) against `plughost serve` in process mode while its plugins are reloaded, swapped and
# their workers replaced; a row per window with requests/s, errors, host RSS, threads and
# descriptors, and each worker's RSS. The generator is the test kit's (`plughost-soak`), the
# same code as the short soak test (`cargo test -p plughost --test api soak`).
#
#   bash host/benches/soak.sh                                  # 1,000,000 requests, 16 threads, reload step every 2 s
#   REQUESTS=200000 CONCURRENCY=8 RELOAD_EVERY_MS=500 bash host/benches/soak.sh
#   bash host/benches/soak.sh --token-cache-ms 1000            # further arguments go to plughost-soak (--help)
#
# Targets: 0 errors (every answer 200 with what it should hold, every reload as expected), and
# host RSS drift below 5 % between the second window and the last. Exits 1 if one is missed.
# Builds release binaries of plughost, the two plugins and plughost-soak (CARGO_TARGET_DIR honoured).
set -euo pipefail

REQUESTS=${REQUESTS:-1000000}
CONCURRENCY=${CONCURRENCY:-16}
RELOAD_EVERY_MS=${RELOAD_EVERY_MS:-2000}
WINDOW=${WINDOW:-100000}

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}

cargo build --release --quiet -p plughost --bin plughost -p plughost-testkit --bin plughost-soak
cargo build --release --quiet -p test-token-provider -p static-env
release="$target_dir/release"
exec "$release/plughost-soak" --plughost "$release/plughost" \
    --token-provider "$release/libtest_token_provider.so" --static-env "$release/libstatic_env.so" \
    --requests "$REQUESTS" --concurrency "$CONCURRENCY" --reload-every-ms "$RELOAD_EVERY_MS" --window "$WINDOW" "$@"
