#!/usr/bin/env bash
# Installs everything a fresh Debian machine needs to build and test inft. Safe to run twice:
# each step checks first and does nothing when its work is already done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# System packages: a C/C++ toolchain with libclang (llama.cpp via llama-cpp-2, bindgen), cmake,
# openssl (the sealing benchmark's reference), Node.js + npm (Foundry and solc ship through npm).
apt_packages=(cmake clang libclang-dev pkg-config openssl nodejs npm)
missing=()
for p in "${apt_packages[@]}"; do
  # node/npm may come from elsewhere (nvm, a tarball): a working binary is enough.
  case $p in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }

# Foundry (forge, anvil, cast), solcjs, OpenZeppelin and Uniswap V2 artifacts, pinned by the lockfile.
# `npm ci` wipes node_modules, so run it only when the lockfile changed since the last install.
contracts="$root/inft-contracts"
if [ -f "$contracts/package-lock.json" ]; then
  stamp="$contracts/node_modules/.inft-lock.sha256"
  want=$(sha256sum "$contracts/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "npm ci (inft-contracts)"
    (cd "$contracts" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
  fi
fi
