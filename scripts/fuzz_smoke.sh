#!/usr/bin/env bash
# Builds one libFuzzer target of the `fuzz` preset (clang) and runs it for SECONDS from the
# seed corpus in CORPUS_DIR. Exits non-zero if clang++ is missing, the target does not build,
# or the fuzzer finds a crash; reproducers are copied to build/fuzz/artifacts/.
# Build parallelism follows CMAKE_BUILD_PARALLEL_LEVEL (ninja's default when unset).
# Usage: scripts/fuzz_smoke.sh TARGET SECONDS CORPUS_DIR [extra libFuzzer args...]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 3 ]; then
  echo "usage: $0 TARGET SECONDS CORPUS_DIR [extra libFuzzer args...]" >&2
  exit 2
fi
target="$1" seconds="$2" corpus="$3"
shift 3

# install_deps.sh always installs clang, so a missing clang++ is a broken setup, not a reason
# to skip: skipping would report a fuzz stage that never ran as passed.
if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz: clang++ not found in PATH; cannot build $target (run scripts/install_deps.sh)" >&2
  exit 1
fi
if [ ! -d "$corpus" ]; then
  echo "fuzz: seed corpus $corpus not found" >&2
  exit 1
fi

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "$target"

# libFuzzer writes new inputs only into its first corpus dir: a scratch dir there, and the
# seeds as a second, read-only dir, so the run does not dirty the tree.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
echo "=== $target: ${seconds} s"
status=0
"build/fuzz/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$@" \
  "$work/corpus" "$corpus" || status=$?
# Any artifact counts as a failure, even if libFuzzer exited 0.
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
  echo "fuzz: $target failed (exit $status); reproducer(s):" >&2
  mkdir -p build/fuzz/artifacts
  for f in "$work"/artifacts/*; do
    [ -e "$f" ] || continue
    cp "$f" build/fuzz/artifacts/ && echo "  build/fuzz/artifacts/$(basename "$f")" >&2
  done
  exit 1
fi
echo "fuzz: $target ran ${seconds} s without crashes"
