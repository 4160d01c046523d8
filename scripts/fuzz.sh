#!/usr/bin/env bash
# Fuzzes dumpcrypt: each cargo-fuzz target in fuzz/ runs for a bounded time under
# AddressSanitizer, starting from the committed seeds (fuzz/seeds/TARGET) and the local working
# corpus (fuzz/corpus/TARGET, not committed). Fails on any finding: a panic, a failed oracle
# check, a sanitizer report, a leak, a timeout or running out of memory. The input that
# failed is left in fuzz/artifacts/TARGET/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...   (in fuzz/)
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  default 60
#   TARGET              default: every target (dump_protocol config xts)
#
# Wall time: the first build (cargo-fuzz's own install aside) takes about two minutes on the
# two-core machines; then each target runs its SECONDS, plus a few seconds to start and stop.
#
# cargo fuzz needs nightly-only flags (-Zsanitizer=address and the coverage instrumentation).
# The machines have one stable toolchain and can fetch no other, so the script sets
# RUSTC_BOOTSTRAP=1, which makes the stable compiler accept them (the sanitizer runtime ships
# with every toolchain). Set FUZZ_TOOLCHAIN=nightly to use a nightly toolchain instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

seconds="${1:-60}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(dump_protocol config xts)
fi

declare -A max_len=([dump_protocol]=4096 [config]=1024 [xts]=4096)

toolchain=()
if [[ -n "${FUZZ_TOOLCHAIN:-}" ]]; then
    toolchain=("+${FUZZ_TOOLCHAIN}")
else
    export RUSTC_BOOTSTRAP=1
fi

if ! cargo "${toolchain[@]}" fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

began=$(date +%s)
echo "fuzz.sh: building the targets (AddressSanitizer, debug assertions)"
cargo "${toolchain[@]}" fuzz build
built=$(date +%s)

summary=()
failed=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/${target}" "artifacts/${target}"
    log="artifacts/${target}/last-run.log"
    echo "fuzz.sh: ${target} for ${seconds} s"
    # The outer timeout catches a run that never reaches libFuzzer's own time limit.
    if timeout --kill-after=10 "$((seconds + 120))" \
        cargo "${toolchain[@]}" fuzz run "${target}" "corpus/${target}" "seeds/${target}" -- \
        -max_total_time="${seconds}" -timeout=10 -rss_limit_mb=2048 \
        -max_len="${max_len[${target}]:-4096}" -print_final_stats=1 >"${log}" 2>&1; then
        status=ok
    else
        status=FAILED
        failed=1
        tail -n 60 "${log}"
    fi
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "${log}" | tail -n 1 || true)
    runs=$(grep -E '^stat::number_of_executed_units:' "${log}" | awk '{print $2}' || true)
    summary+=("$(printf '%-14s %-7s runs %-10s %s' "${target}" "${status}" "${runs:-?}" \
        "$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' <<<"${done_line}" || true)")")
done

echo
echo "fuzz.sh: build $((built - began)) s, total $(($(date +%s) - began)) s"
printf '%s\n' "${summary[@]}"
if [[ ${failed} -ne 0 ]]; then
    echo "fuzz.sh: FINDINGS: see fuzz/artifacts/" >&2
    exit 1
fi
echo "fuzz.sh: no findings"
