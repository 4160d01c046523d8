#!/usr/bin/env bash
# Mutation testing of the three trust crates: dumpcrypt-xts, dumpcrypt-core and the driver
# (docs/reliability.md, "Mutation testing"). Installs cargo-mutants itself; prints the score
# over every viable mutant of those crates; too slow for .ci/run.
#
# Usage: scripts/mutants.sh [--iterate]
#   --iterate   test again only the mutants not caught by the last run (after new tests)
# Environment: MUTANTS_JOBS (default: the number of processors), MUTANTS_OUT (default
# target/mutants).
#
# How it is made fast without sampling:
# - two runs, each testing only what can see its mutants: the transform with its own tests
#   (IEEE 1619 vectors, the differential test against xts-mode); the core and the driver
#   with the core's tests and the driver's tests (the simulator end to end, the fuzz seeds,
#   fault injection, bad input);
# - the `mutants` profile (Cargo.toml) skips debug information, and .cargo/mutants.toml
#   leaves out the benches and doc tests;
# - a per-mutant timeout, and as many jobs as processors.
# .cargo/mutants.toml leaves out src/kernel/windows.rs and src/kernel/ntoskrnl.rs: compiled
# only in kernel mode, they are exercised by the emulator (scripts/test-sys.sh), which no
# `cargo test` run sees.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSION=27.1.0
if [[ "$(cargo mutants --version 2>/dev/null)" != "cargo-mutants $VERSION" ]]; then
    echo "mutants.sh: installing cargo-mutants $VERSION" >&2
    cargo install --locked cargo-mutants --version "$VERSION"
fi

jobs="${MUTANTS_JOBS:-$(nproc)}"
# The tests as CI runs them: a test that finds a processor feature missing (or its detection
# broken) fails instead of skipping.
export CI=true
out="${MUTANTS_OUT:-target/mutants}"
iterate=()
[[ "${1:-}" == "--iterate" ]] && iterate=(--iterate)
mkdir -p "$out"

run() {
    local name="$1"
    shift
    echo "== mutants: $name ($(date +%T))" >&2
    # Exit status 2 (mutants missed) and 3 (timeouts) are results, not failures.
    local status=0
    cargo mutants "$@" "${iterate[@]}" --jobs "$jobs" --timeout 120 --build-timeout 600 \
        --output "$out/$name" --no-shuffle || status=$?
    if [[ $status -ne 0 && $status -ne 2 && $status -ne 3 ]]; then
        echo "mutants.sh: cargo mutants failed for $name (status $status)" >&2
        exit "$status"
    fi
}

run xts -p dumpcrypt-xts --test-package dumpcrypt-xts
# The driver's tests need its host build.
run driver -p dumpcrypt-core -p dumpcrypt --test-package dumpcrypt-core,dumpcrypt \
    --features dumpcrypt/host

# The score over every viable mutant. With --iterate, cargo-mutants tests only what the last
# run did not catch, so the mutants caught or unviable in earlier runs are kept in
# $out/NAME/history and counted with the new results.
python3 - "$out" <<'EOF'
import sys
from pathlib import Path

out = Path(sys.argv[1])

def lines(path):
    return set(path.read_text().splitlines()) if path.is_file() else set()

totals = {"caught": 0, "missed": 0, "timeout": 0, "unviable": 0}
missed = []
for name in ("xts", "driver"):
    results = out / name / "mutants.out"
    history = out / name / "history"
    history.mkdir(exist_ok=True)
    again = lines(results / "missed.txt") | lines(results / "timeout.txt")
    caught = (lines(history / "caught.txt") | lines(results / "caught.txt")) - again
    unviable = (lines(history / "unviable.txt") | lines(results / "unviable.txt")) - again
    (history / "caught.txt").write_text("".join(f"{line}\n" for line in sorted(caught)))
    (history / "unviable.txt").write_text("".join(f"{line}\n" for line in sorted(unviable)))
    totals["caught"] += len(caught)
    totals["unviable"] += len(unviable)
    totals["missed"] += len(lines(results / "missed.txt"))
    totals["timeout"] += len(lines(results / "timeout.txt"))
    missed += sorted(lines(results / "missed.txt"))
viable = totals["caught"] + totals["missed"] + totals["timeout"]
killed = totals["caught"] + totals["timeout"]
print(f"mutants: {viable + totals['unviable']} in all; {viable} viable: {totals['caught']} caught, "
      f"{totals['missed']} missed, {totals['timeout']} timed out; {totals['unviable']} unviable")
for line in missed:
    print(f"  missed: {line}")
print(f"MUTATION SCORE {100 * killed / viable:.1f}% ({killed} of {viable} viable mutants killed; "
      f"a timeout counts as killed)")
EOF
