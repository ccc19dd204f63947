#!/usr/bin/env bash
# Runs the whole test suite: the release build and the ASan+UBSan build, each with ctest.
# Usage: scripts/test.sh [--release-only]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh
jobs="$(nproc)"

run_preset() {
  local preset="$1"
  echo "=== [$preset] configure + build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j"$jobs"
  echo "=== [$preset] ctest"
  ctest --preset "$preset" -j"$jobs"
}

run_preset release
if [ "${1:-}" != "--release-only" ]; then
  run_preset asan
fi
# Extra test stages added by modules (fuzz smoke runs, node client tests) live in scripts/test.d/.
for f in scripts/test.d/*.sh; do
  [ -e "$f" ] || continue
  echo "=== $f"
  bash "$f"
done
echo "all test stages passed"
