# Shared by the scripts: locate the Foundry binaries that npm installed (native, per platform).
# shellcheck shell=bash
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ ! -d node_modules/@foundry-rs ] || [ ! -d node_modules/solc ]; then
    echo "error: node_modules missing; run 'npm ci' in $ROOT first" >&2
    exit 1
fi

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) PLATFORM=linux-amd64 ;;
    Linux-aarch64 | Linux-arm64) PLATFORM=linux-arm64 ;;
    Darwin-x86_64) PLATFORM=darwin-amd64 ;;
    Darwin-arm64) PLATFORM=darwin-arm64 ;;
    *) echo "error: unsupported platform $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

FORGE="$ROOT/node_modules/@foundry-rs/forge-$PLATFORM/bin/forge"
if [ ! -x "$FORGE" ]; then
    echo "error: $FORGE not found; run 'npm ci' in $ROOT" >&2
    exit 1
fi
CAST="$ROOT/node_modules/@foundry-rs/cast-$PLATFORM/bin/cast"
export FORGE CAST

# Our contracts whose abi + bytecode are committed under artifacts/ (source file:contract).
OUR_CONTRACTS=(
    "AgentNFT.sol:AgentNFT"
    "TransferVerifier.sol:TransferVerifier"
    "ActionLog.sol:ActionLog"
    "AgentMetadata.sol:AgentMetadata"
    "EarningsSplitter.sol:EarningsSplitter"
    "AgentAccount.sol:AgentAccount"
    "AgentAccount.sol:AgentAccountFactory"
    "TestToken.sol:TestToken"
    "AgentMarket.sol:AgentMarket"
)
# Uniswap V2 as published on npm (compiled by Uniswap; deployed as is).
UNISWAP_ARTIFACTS=(
    "@uniswap/v2-core/build/UniswapV2Factory.json"
    "@uniswap/v2-core/build/UniswapV2Pair.json"
    "@uniswap/v2-periphery/build/UniswapV2Router02.json"
    "@uniswap/v2-periphery/build/WETH9.json"
)

# write_artifacts DIR: writes the minimal {abi, bytecode} JSON of every contract into DIR.
write_artifacts() {
    local dir="$1"
    mkdir -p "$dir"
    node - "$dir" "${OUR_CONTRACTS[@]}" -- "${UNISWAP_ARTIFACTS[@]}" <<'NODE'
const fs = require('fs');
const path = require('path');
const [dir, ...rest] = process.argv.slice(2);
const sep = rest.indexOf('--');
const ours = rest.slice(0, sep);
const uniswap = rest.slice(sep + 1);
const write = (name, abi, bytecode) => {
  if (!Array.isArray(abi) || !/^0x[0-9a-f]+$/i.test(bytecode) || bytecode.length < 4) {
    throw new Error(`bad artifact for ${name}`);
  }
  const text = JSON.stringify({ abi, bytecode: bytecode.toLowerCase() }, null, 1) + '\n';
  fs.writeFileSync(path.join(dir, name + '.json'), text);
};
for (const spec of ours) {
  const [file, name] = spec.split(':');
  const j = JSON.parse(fs.readFileSync(path.join('out', file, name + '.json'), 'utf8'));
  write(name, j.abi, j.bytecode.object);
}
for (const rel of uniswap) {
  const j = JSON.parse(fs.readFileSync(path.join('node_modules', rel), 'utf8'));
  const code = j.bytecode.startsWith('0x') ? j.bytecode : '0x' + j.bytecode;
  write(path.basename(rel, '.json'), j.abi, code);
}
NODE
}
