#!/usr/bin/env bash
# The contracts' whole check, from a fresh clone after `npm ci`:
# build, unit + fuzz + invariant tests, the gas snapshot, and the committed artifacts.
source "$(dirname "$0")/lib.sh"

"$FORGE" build
"$FORGE" test
# Gas figures: only the dedicated GasTest cases are snapshotted (see test/Gas.t.sol).
"$FORGE" snapshot --match-contract GasTest --check .gas-snapshot
"$ROOT/scripts/check-artifacts.sh"
