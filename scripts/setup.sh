#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install dependencies, build, write a tiny
# random DeepSeek-V4 checkpoint and generate from it. No downloads of model weights.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"

DSV4=build/release/apps/cli/dsv4
MODEL=demo-model
if [ ! -f "$MODEL/config.json" ]; then
  "$DSV4" make-tiny --out "$MODEL" --seed 1
fi
"$DSV4" inspect --model "$MODEL"
"$DSV4" generate --model "$MODEL" --prompt-ids 0,17,42,99,7 --max-tokens 16
