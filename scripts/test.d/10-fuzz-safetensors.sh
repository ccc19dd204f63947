#!/usr/bin/env bash
# Smoke-runs the safetensors header fuzzer for about a minute (clang + libFuzzer).
# Exits non-zero if the target does not build or the fuzzer finds a crash.
# Usage: scripts/test.d/10-fuzz-safetensors.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${1:-60}"
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found; skipping"
  exit 0
fi

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target safetensors_fuzz -j"$(nproc)"

# Work on a copy of the checked-in seeds so new corpus entries do not dirty the tree.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
cp fuzz/corpus/safetensors/* "$work/corpus/"

status=0
build/fuzz/fuzz/safetensors_fuzz "$work/corpus" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
  -rss_limit_mb=2048 -artifact_prefix="$work/artifacts/" -print_final_stats=1 || status=$?
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
  mkdir -p build/fuzz/crashes
  cp "$work/artifacts"/* build/fuzz/crashes/ 2>/dev/null || true
  echo "fuzz: safetensors_fuzz failed (exit $status); reproducers in build/fuzz/crashes/" >&2
  exit 1
fi
echo "fuzz: safetensors_fuzz ran ${seconds}s without crashes"
