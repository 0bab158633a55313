#!/usr/bin/env bash
# The SIGKILL loop, long: the kill9 test of the API tests (`host/tests/api/kill9.rs`) with
# ITERATIONS kills instead of 10. The host is killed over and over while workspace tokens are
# issued, used and revoked over HTTP, restarted on the same state directory each time, and after
# every restart the store's integrity and every acknowledged issue and revocation are checked.
#
#   bash host/benches/kill9.sh            # 200 kills
#   bash host/benches/kill9.sh 1000
#
# Runs against the test (debug) build, like the test itself; prints the totals at the end.
set -euo pipefail

ITERATIONS=${1:-200}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
KILL9_ITERATIONS=$ITERATIONS exec cargo test -p plughost --test api -- --nocapture --exact \
    kill9::tokens_survive_sigkill_as_acknowledged_and_the_store_stays_consistent
