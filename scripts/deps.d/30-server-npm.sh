#!/usr/bin/env bash
# dsv4 serve test dependencies: the official npm clients (openai, @anthropic-ai/sdk, ollama)
# and playwright-core into tests/server/node_modules (gitignored), and Debian's chromium for
# the chat-page screenshot test. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "[server] node and npm are required (apt-get install nodejs npm)" >&2
  exit 1
fi
if [ ! -d tests/server/node_modules/openai ] || [ ! -d tests/server/node_modules/@anthropic-ai/sdk ] ||
   [ ! -d tests/server/node_modules/ollama ] || [ ! -d tests/server/node_modules/playwright-core ] ||
   [ tests/server/package.json -nt tests/server/node_modules ]; then
  echo "[server] installing npm clients into tests/server/node_modules"
  npm install --prefix tests/server --no-audit --no-fund --no-package-lock
  touch tests/server/node_modules
fi
if ! command -v chromium >/dev/null; then
  echo "[server] installing chromium (headless page screenshot test)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends chromium >/dev/null ||
    { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
