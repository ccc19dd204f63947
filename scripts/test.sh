#!/usr/bin/env bash
# Runs the whole test suite: the release build and the ASan+UBSan build, each with ctest.
# Usage: scripts/test.sh [--release-only]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh
jobs="$(nproc)"

# The stages need about 1 GB of disk (release ~50 MB, ASan ~550 MB, fuzz ~60 MB, npm clients,
# test scratch files in the temp dir). Say so up front instead of dying mid-build.
need_kb=$((1200 * 1024))
for dir in "$PWD" "${TMPDIR:-/tmp}"; do
  free_kb="$(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }' || true)"
  if [ -n "$free_kb" ] && [ "$free_kb" -lt "$need_kb" ]; then
    echo "test.sh: warning: only $((free_kb / 1024)) MB free under $dir; the test stages need about $((need_kb / 1024)) MB" >&2
  fi
done

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
