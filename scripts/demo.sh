#!/usr/bin/env bash
# The main job on a fresh machine: a local chain with everything deployed, a generated model
# minted as an agent, the agent run with every action logged on chain, and the chain stopped.
# Safe to run twice: each run uses a fresh state directory under .inft-demo/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

scripts/setup.sh
log "cargo build -p inft"
cargo build --locked -p inft
inft="${CARGO_TARGET_DIR:-$root/target}/debug/inft"

export INFT_HOME="$root/.inft-demo/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$INFT_HOME"
# Dev keystores only: anvil's well-known test keys, encrypted under a demo passphrase.
export INFT_PASSPHRASE="inft-demo-passphrase"
trap '"$inft" dev down >/dev/null 2>&1 || true' EXIT

log "inft dev up: anvil + AgentNFT, verifier, action log, splitter, Uniswap V2 market"
"$inft" dev up

log "inft dev make-model: a deterministic 8 MiB llama GGUF"
"$inft" dev make-model --size 8MiB --out "$INFT_HOME/model.gguf"

log "inft mint (alice): seal model + agent key + config, mint the INFT"
token=$("$inft" --json mint --account alice --model "$INFT_HOME/model.gguf" --name poet \
  --prompt "Write a short poem about the sea." | sed -n 's/.*"token_id":"\([0-9]*\)".*/\1/p')
[ -n "$token" ] || { echo "mint did not return a token id" >&2; exit 1; }
echo "token $token"

log "inft run (alice): 5 creative actions, each signed by the agent and logged on chain"
"$inft" run "$token" --account alice --steps 5

log "inft run (carol, not authorized): refused before anything is decrypted"
if "$inft" run "$token" --account carol --steps 1; then
  echo "carol should have been refused" >&2; exit 1
fi

log "done: state in $INFT_HOME"
