#!/usr/bin/env bash
# Soak: the crash dump stack loads and unloads the filter 10,000 times, and the hibernation
# stack runs 1,000 hibernate/resume cycles (256 KiB of memory each, every image read back
# and verified), checking after every round that nothing leaks (tests/soak.rs, #[ignore]d in
# the ordinary test run).
#
# Usage: scripts/soak.sh [--release]
#   Without --release it reuses the test build of `cargo test --workspace` and takes about
#   70 s on the two-core machines (the two soaks run side by side); --release builds the
#   optimized test binary first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=()
if [[ "${1:-}" == "--release" ]]; then
    profile=(--release)
fi
began=$(date +%s)
cargo test "${profile[@]}" --features host --test soak -- --ignored --nocapture
echo "soak.sh: passed in $(($(date +%s) - began)) s"
