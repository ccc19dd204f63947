#!/usr/bin/env bash
# Smoke-runs the safetensors header fuzzer (fuzz/safetensors_fuzz.cpp) for about a minute;
# fails if clang++ is missing, the target does not build, or the fuzzer finds a crash.
# Usage: scripts/test.d/10-fuzz-safetensors.sh [seconds]
set -euo pipefail
exec bash "$(dirname "$0")/../fuzz_smoke.sh" safetensors_fuzz "${1:-60}" fuzz/corpus/safetensors -max_len=65536
