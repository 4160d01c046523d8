#!/bin/sh
# Measures `dumpcrypt decrypt` throughput on an image cached in memory (tmpfs), against `cp`
# of the same file as the I/O ceiling. Not a test: numbers depend on the machine and its load.
#   crates/dumpcrypt-cli/scripts/bench-decrypt.sh [SIZE_MIB] [RUNS]
set -eu
size_mib=${1:-1024}
runs=${2:-3}
dir=$(mktemp -d "${BENCH_DIR:-/dev/shm}/dumpcrypt-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cargo build --release -q -p dumpcrypt-cli
bin=${CARGO_TARGET_DIR:-target}/release/dumpcrypt
"$bin" keygen --out "$dir/key" >/dev/null
head -c "${size_mib}M" /dev/urandom >"$dir/image"
echo "image: $size_mib MiB in $dir; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
seconds() { /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -1; }
rate() { awk -v m="$size_mib" -v s="$1" 'BEGIN { printf "%.2f GB/s (%.2f s)", m * 1048576 / s / 1e9, s }'; }
i=0
while [ "$i" -lt "$runs" ]; do
    i=$((i + 1))
    rm -f "$dir/copy" "$dir/out"
    echo "run $i: cp $(rate "$(seconds cp "$dir/image" "$dir/copy")")," \
        "decrypt to a file $(rate "$(seconds "$bin" decrypt --key "$dir/key" --in "$dir/image" --out "$dir/out")")," \
        "decrypt to a pipe $(rate "$(seconds sh -c "\"$bin\" decrypt --key \"$dir/key\" --in \"$dir/image\" --out - | cat >/dev/null")")"
done
