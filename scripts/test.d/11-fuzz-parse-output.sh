#!/usr/bin/env bash
# Fuzz smoke run of the chat output parser (fuzz/parse_output_fuzz.cpp), about 45 s; fails if
# clang++ is missing, the target does not build, or the fuzzer finds a crash or a
# chunked/one-shot mismatch.
# Usage: scripts/test.d/11-fuzz-parse-output.sh [seconds]
set -euo pipefail
exec bash "$(dirname "$0")/../fuzz_smoke.sh" parse_output_fuzz "${1:-45}" fuzz/corpus/parse_output -max_len=16384
