#!/usr/bin/env bash
# Rebuild the contracts and write the committed artifacts (abi + bytecode) under artifacts/.
# Run after changing a contract, then commit artifacts/ together with the source change.
source "$(dirname "$0")/lib.sh"

"$FORGE" build
rm -f artifacts/*.json
write_artifacts artifacts
echo "wrote $(ls artifacts/*.json | wc -l) artifacts to $ROOT/artifacts"
