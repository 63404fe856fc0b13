#!/usr/bin/env bash
# Runs every sealing fuzz target for SECONDS each (default 20), installing cargo-fuzz first if
# needed. Stable Rust: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags (sanitizer, sancov).
# Usage: sealing/fuzz/run.sh [SECONDS]
set -euo pipefail
secs="${1:-20}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."   # cargo fuzz runs from the crate that owns fuzz/

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (about a minute)..." >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# cargo-fuzz builds into fuzz/target (gitignored): the instrumented build is not shared.
cargo fuzz build
targets=$(cargo fuzz list)

# Seed the corpora with the test vectors (their blob key is the one the blob targets use).
hex_to_file() { printf "$(sed 's/../\\x&/g')" > "$1"; }
mkdir -p fuzz/corpus/open_blob fuzz/corpus/sealed_key
for f in tests/vectors/blob_*.txt; do
    if h=$(grep -m1 '^blob: ' "$f"); then
        echo "${h#blob: }" | hex_to_file "fuzz/corpus/open_blob/seed-$(basename "$f" .txt)"
    fi
done
for f in tests/vectors/sealed_key_*.txt; do
    h=$(grep -m1 '^sealed_key: ' "$f")
    echo "${h#sealed_key: }" | hex_to_file "fuzz/corpus/sealed_key/seed-$(basename "$f" .txt)"
done
for t in $targets; do
    mkdir -p "fuzz/corpus/$t"
    echo "fuzzing $t for ${secs}s" >&2
    cargo fuzz run "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1
done
echo "fuzz: all targets ran ${secs}s without a crash"
