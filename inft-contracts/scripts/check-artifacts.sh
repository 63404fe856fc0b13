#!/usr/bin/env bash
# Verify that the committed artifacts match a fresh build of the sources (and the npm Uniswap
# artifacts), and that Router02's hard-coded pair init code hash matches the npm UniswapV2Pair.
source "$(dirname "$0")/lib.sh"

"$FORGE" build
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
write_artifacts "$tmp"
if ! diff -r -q "$tmp" artifacts >/dev/null; then
    diff -r -q "$tmp" artifacts || true
    echo "error: committed artifacts are stale; run scripts/export-artifacts.sh and commit artifacts/" >&2
    exit 1
fi
pair_code="$(node -p "require('./node_modules/@uniswap/v2-core/build/UniswapV2Pair.json').bytecode")"
init_hash="$("$CAST" keccak "0x${pair_code#0x}")"
if ! grep -q "${init_hash#0x}" node_modules/@uniswap/v2-periphery/build/UniswapV2Router02.json; then
    echo "error: Router02 does not embed the pair init code hash $init_hash" >&2
    exit 1
fi
echo "pair init code hash $init_hash matches Router02"
echo "artifacts match the sources ($(ls artifacts/*.json | wc -l) files)"
