#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, the Rust test suite (real anvil chain, real
# contracts, real llama.cpp; the database tests once more on PostgreSQL), the four runnable
# examples, the Foundry suite with gas snapshot and artifact checks, and a short fuzzing pass over
# the sealing parsers, then the main job (scripts/demo.sh) once, so a change that breaks it cannot
# land. Installs what it needs first (scripts/setup.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
start=$(date +%s)
step() { log "$* (+$(( $(date +%s) - start ))s)"; }

step setup
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "forge tests, gas snapshot, artifact check"
inft-contracts/scripts/test.sh

step "the engine-free inft: no llama.cpp in its graph; it audits, verifies provenance, serves a gateway"
# Built first and copied aside: the full build below puts its own binary at target/debug/inft.
# `cargo tree -i` fails with "did not match any packages" when the crate is not in the graph.
if tree=$(cargo tree --locked -p inft --no-default-features -e normal,build -i llama-cpp-sys-2 2>&1) \
  || ! grep -q "did not match any packages" <<<"$tree"; then
  echo "llama-cpp-sys-2 is in the graph of inft --no-default-features (or cargo tree failed):" >&2
  echo "$tree" >&2
  exit 1
fi
cargo build --locked -p inft --no-default-features
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
lite_bin="$target_dir/inft-lite"
cp -f "$target_dir/debug/inft" "$lite_bin"

step "cargo test"
cargo test --workspace --locked

step "the engine-free inft on a real chain (tools/tests/lite.rs)"
INFT_LITE_BIN="$lite_bin" cargo test --locked -p inft --test lite -- --ignored

step "the examples (examples/README.md): mint, transfer, trade, audit"
# Each asserts what it shows and exits non-zero otherwise; cargo test built them already.
for example in mint transfer trade audit; do
  cargo run --locked --quiet -p inft-examples --example "$example"
done

step "database tests again, on PostgreSQL (scripts/postgres.sh)"
trap 'scripts/postgres.sh stop || true' EXIT
INFT_TEST_DATABASE_URL=$(scripts/postgres.sh start)
export INFT_TEST_DATABASE_URL
cargo test --locked -p agent-runtime --test db --test outbox
cargo test --locked -p agent-runtime --lib db::
scripts/postgres.sh stop
trap - EXIT
unset INFT_TEST_DATABASE_URL

step "fuzz the sealing parsers"
sealing/fuzz/run.sh "${INFT_FUZZ_SECONDS:-20}"

step "the main job (scripts/demo.sh)"
scripts/demo.sh

step "all checks passed"
