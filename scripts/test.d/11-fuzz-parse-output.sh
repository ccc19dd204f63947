#!/usr/bin/env bash
# Fuzz smoke run of the chat output parser (fuzz/parse_output_fuzz.cpp), about 45 s.
# Builds the `fuzz` preset (clang + libFuzzer) and runs from the committed seed corpus;
# exits non-zero if the fuzzer finds a crash or a chunked/one-shot mismatch.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v clang++ >/dev/null 2>&1; then
  echo "11-fuzz-parse-output: clang++ not found; skipping"
  exit 0
fi

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target parse_output_fuzz

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
echo "=== parse_output_fuzz: 45 s"
if ! ./build/fuzz/fuzz/parse_output_fuzz -max_total_time=45 -timeout=10 -rss_limit_mb=2048 \
      -max_len=16384 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
      "$work/corpus" fuzz/corpus/parse_output; then
  echo "parse_output_fuzz failed; reproducer(s):"
  for f in "$work"/artifacts/*; do
    [ -e "$f" ] || continue
    mkdir -p build/fuzz/artifacts && cp "$f" build/fuzz/artifacts/ && echo "  build/fuzz/artifacts/$(basename "$f")"
  done
  exit 1
fi
