#!/usr/bin/env bash
# Runs the README fuzz target, seeded with the test fixtures.
# Usage: fuzz/scripts/run.sh [SECONDS]   (default 660)
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-660}"
mkdir -p corpus/readme
cp ../runtime/tests/fixtures/real/*.md ../runtime/tests/fixtures/malformed/*.md corpus/readme/ 2>/dev/null || true
for e in ../examples/*/README.md; do cp "$e" "corpus/readme/example-$(basename "$(dirname "$e")").md"; done
cargo +nightly fuzz run readme corpus/readme -- -max_total_time="$seconds" -max_len=8192 -print_final_stats=1
