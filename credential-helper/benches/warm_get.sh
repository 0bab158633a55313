#!/usr/bin/env bash
# Warm `git-credential-plughost get` (a cache hit: what git runs on every fetch and push) against
# the shell helper it replaces, in one hyperfine run, with `/bin/true` as the floor (starting any
# process costs that much).
#
#   credential-helper/benches/warm_get.sh [runs]      (needs hyperfine: apt-get install hyperfine)
#
# The helper is built with the `helper` profile (how it ships; see the root Cargo.toml). The
# replaced script is read from ../shared/reference (the system this project replaces), not copied
# here. Both answer from a warm cache seeded the way each writes it; PLATFORM_URL points where
# nothing listens, so a miss would fail the run instead of being measured.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-1000}
command -v hyperfine >/dev/null || { echo "hyperfine is missing: apt-get install hyperfine" >&2; exit 1; }

export CARGO_INCREMENTAL=0
cargo build -q --profile helper -p git-credential-plughost
helper=$PWD/target/helper/git-credential-plughost

# shared/reference beside the repository (or beside a parent directory, for a git worktree).
dir=$PWD reference=
while [[ $dir != / && -z $reference ]]; do
  dir=$(dirname "$dir")
  [[ -d $dir/shared/reference ]] && reference=$(grep -l '^molecule-ai-workspace-runtime/.*/molecule-git-token-helper.sh$' "$dir"/shared/reference/*.txt | head -1)
done
[[ -n $reference ]] || { echo "the replaced script is not in ../shared/reference" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
awk 'found || /^#!\/bin\/bash/ { found = 1; print }' "$reference" >"$work/replaced-helper.sh"
printf 'protocol=https\nhost=github.com\n\n' >"$work/request"

platform=http://127.0.0.1:9 workspace=ws-bench host=github.com
token=ghs_$(head -c 27 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 36)
expires=$(($(date +%s) + 86400))
# The helper's cache file: token-<first 32 hex of SHA-256(platform NUL workspace NUL host)>.json.
mkdir -m 700 "$work/cache"
stem=$(printf '%s\0%s\0%s' "$platform" "$workspace" "$host" | sha256sum | cut -c1-32)
printf '{"platform_url":"%s","workspace_id":"%s","host":"%s","token":"%s","expires_at":%d,"fetched_at":%d}' \
  "$platform" "$workspace" "$host" "$token" "$expires" "$(date +%s)" >"$work/cache/token-$stem.json"
chmod 600 "$work/cache/token-$stem.json"
# The script's cache: $HOME/.molecule-token-cache/gh_installation_token{,_expiry}.
mkdir -p -m 700 "$work/home/.molecule-token-cache"
printf '%s' "$token" >"$work/home/.molecule-token-cache/gh_installation_token"
printf '%s' "$expires" >"$work/home/.molecule-token-cache/gh_installation_token_expiry"

export PLATFORM_URL=$platform WORKSPACE_ID=$workspace HOME=$work/home CONFIGS_DIR=$work
export PLUGHOST_CREDENTIAL_CACHE_DIR=$work/cache
for cmd in "$helper get" "bash $work/replaced-helper.sh get"; do
  $cmd <"$work/request" | grep -qx "password=$token" || { echo "$cmd did not answer from its cache" >&2; exit 1; }
done

# No shell of hyperfine's own (-N): its start-up correction is coarser than what is measured here.
# Each command is `sh -c 'exec ... <request'` (dash: one more exec, the same in every row), and
# `/bin/true` run the same way is the floor. Medians and minimums: on a busy machine the means
# carry other people's load.
hyperfine -N --warmup 50 --runs "$runs" --export-csv "$work/result.csv" \
  -n 'git-credential-plughost get (warm)' "sh -c 'exec $helper get <$work/request'" \
  -n 'replaced shell script get (warm)' "sh -c 'exec bash $work/replaced-helper.sh get <$work/request'" \
  -n 'floor: /bin/true' "sh -c 'exec /bin/true <$work/request'" >/dev/null
awk -F, 'NR > 1 { printf "%-36s median %7.3f ms  min %7.3f ms  mean %7.3f ms\n", $1, $4 * 1000, $7 * 1000, $2 * 1000; m[NR] = $4 }
         END { printf "warm get: the helper is %.1fx faster than the replaced script, %.3f ms above the floor (medians)\n", m[3] / m[2], (m[2] - m[4]) * 1000 }' "$work/result.csv"
