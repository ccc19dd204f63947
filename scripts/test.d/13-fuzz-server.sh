#!/usr/bin/env bash
# Fuzz smoke run of dsv4 serve's request parsing and response mapping
# (fuzz/server_request_fuzz.cpp), about 30 s. Builds the `fuzz` preset (clang + libFuzzer) and
# runs from the committed seed corpus; exits non-zero if the fuzzer finds a crash.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v clang++ >/dev/null 2>&1; then
  echo "13-fuzz-server: clang++ not found; skipping"
  exit 0
fi

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target server_request_fuzz

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
echo "=== server_request_fuzz: 30 s"
if ! ./build/fuzz/fuzz/server_request_fuzz -max_total_time=30 -timeout=10 -rss_limit_mb=2048 \
      -max_len=16384 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
      "$work/corpus" fuzz/corpus/server; then
  echo "server_request_fuzz failed; reproducer(s):"
  for f in "$work"/artifacts/*; do
    [ -e "$f" ] || continue
    mkdir -p build/fuzz/artifacts && cp "$f" build/fuzz/artifacts/ && echo "  build/fuzz/artifacts/$(basename "$f")"
  done
  exit 1
fi
