#!/usr/bin/env bash
# Fuzz smoke run of dsv4 serve's request parsing and response mapping
# (fuzz/server_request_fuzz.cpp), about 30 s; fails if clang++ is missing, the target does not
# build, or the fuzzer finds a crash.
# Usage: scripts/test.d/13-fuzz-server.sh [seconds]
set -euo pipefail
exec bash "$(dirname "$0")/../fuzz_smoke.sh" server_request_fuzz "${1:-30}" fuzz/corpus/server -max_len=16384
