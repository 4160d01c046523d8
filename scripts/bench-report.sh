#!/usr/bin/env bash
# The dump path's speed next to its references, measured in one run on this machine.
#
# Runs the criterion benchmarks (benches/transform.rs, benches/dump_path.rs) with AES-NI, the
# transform again with the `aes` crate's software backend forced (RUSTFLAGS="--cfg
# aes_force_soft", in a separate target directory), `openssl speed -evp aes-256-xts` for each
# size (encrypt and -decrypt, then again with OpenSSL's assembly off), and memcpy of the same
# sizes (libc's, measured in benches/transform.rs).
#
# OpenSSL's assembly is turned off with OPENSSL_ia32cap=0:0 (every capability bit clear: its
# portable C AES runs). Note that the often quoted OPENSSL_ia32cap=~0 changes nothing when
# passed literally ("~" means "clear these bits", and ~0 clears none); typed unquoted in a
# shell it only works because the shell expands ~0 to the current directory, which OpenSSL
# reads as 0.
#
# Prints a table of throughputs and ratios and ends with one line:
#   RATIOS encrypt64k_vs_openssl=<x> decrypt64k_vs_openssl=<x> copy64k_vs_memcpy=<x> soft64k_vs_openssl_noasm=<x>
#
# Usage: scripts/bench-report.sh            (about 4 minutes; not for CI)
#   REPEAT=n            openssl runs per number; the median is kept (default 3)
#   OPENSSL_SECONDS=s   seconds per openssl run (default 1)
# Ours are criterion's median estimates, openssl's the median of its runs, all in wall-clock
# time; the ratio column compares those. The "best" columns are criterion's fastest sample
# (ours, and memcpy's), which show what the code does when no other process takes the core. The machine's other load moves
# both sides; run it on a quiet machine for numbers to publish. Installs what it needs
# (openssl, python3) with apt when missing; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPEAT=${REPEAT:-3}
OPENSSL_SECONDS=${OPENSSL_SECONDS:-1}
SIZES=(4096 65536 262144 1048576)
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
SOFT_TARGET_DIR=$TARGET_DIR/bench-soft

need() {
    local command=$1 package=$2
    command -v "$command" >/dev/null 2>&1 && return 0
    echo "bench-report: installing $package" >&2
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$package" >&2
}
need openssl openssl
need python3 python3
command -v cargo >/dev/null || { echo "bench-report: cargo (Rust) is needed: https://rustup.rs" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Stale estimates from an earlier run must not stand in for a benchmark that failed.
rm -rf "$TARGET_DIR/criterion" "$SOFT_TARGET_DIR/criterion"

echo "== criterion, AES-NI (runtime-detected)" >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo bench --features host --bench transform --bench dump_path -- --noplot >&2

echo "== criterion, software AES forced (--cfg aes_force_soft)" >&2
CARGO_TARGET_DIR=$SOFT_TARGET_DIR RUSTFLAGS="--cfg aes_force_soft" \
    cargo bench --features host --bench transform -- --noplot --sample-size 20 \
    '^transform_(encrypt|decrypt_in_place)/' >&2

# openssl_speed SIZE asm|noasm encrypt|decrypt: bytes per second, the median of REPEAT runs.
openssl_speed() {
    local size=$1 asm=$2 direction=$3
    # -elapsed: wall-clock time, as criterion measures ours (by default openssl speed divides
    # by its user CPU time, which a busy machine does not slow down).
    local flags=(-elapsed -seconds "$OPENSSL_SECONDS" -evp aes-256-xts -bytes "$size")
    [[ $direction == decrypt ]] && flags=(-decrypt "${flags[@]}")
    local capability=()
    [[ $asm == noasm ]] && capability=(OPENSSL_ia32cap=0:0)
    for ((i = 0; i < REPEAT; i++)); do
        # Its last line: "AES-256-XTS  <thousands of bytes per second>k".
        env "${capability[@]}" openssl speed "${flags[@]}" 2>/dev/null |
            awk '/^AES-256-XTS/ { v = $NF; sub(/k$/, "", v); printf "%.0f\n", v * 1000 }' | tail -1
    done | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

echo "== openssl speed: $(openssl version), $REPEAT runs of ${OPENSSL_SECONDS}s per number" >&2
for size in "${SIZES[@]}"; do
    for asm in asm noasm; do
        for direction in encrypt decrypt; do
            echo "$asm $direction $size $(openssl_speed "$size" "$asm" "$direction")"
        done
    done
done >"$work/openssl"

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
python3 - "$TARGET_DIR/criterion" "$SOFT_TARGET_DIR/criterion" "$work/openssl" "$cpu" <<'PY'
import json, os, sys

criterion, soft_criterion, openssl_file, cpu = sys.argv[1:5]
SIZES = [(4096, "4KiB"), (65536, "64KiB"), (262144, "256KiB"), (1048576, "1MiB")]

def ns(root, group, label):
    """Criterion's median estimate (ns per iteration), or None."""
    path = os.path.join(root, group, label, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None

def best_ns(root, group, label):
    """The fastest sample's time per iteration (ns), or None."""
    path = os.path.join(root, group, label, "new", "sample.json")
    try:
        with open(path) as f:
            sample = json.load(f)
        return min(t / n for t, n in zip(sample["times"], sample["iters"]))
    except (OSError, KeyError, ValueError):
        return None

def gbps(root, group, size, label):
    t = ns(root, group, label)
    return size / t if t else None  # bytes per ns = GB/s

openssl = {}
with open(openssl_file) as f:
    for line in f:
        asm, direction, size, value = line.split()
        openssl[(asm, direction, int(size))] = float(value) / 1e9 if value else None

def ratio(a, b):
    return a / b if a and b else None

def fmt(x, digits=2):
    return f"{x:.{digits}f}" if x is not None else "n/a"

rows = [
    # (what, criterion root, group, reference name, reference function)
    ("Dump_Write encrypt", criterion, "dump_write_encrypt", "openssl enc", lambda s: openssl.get(("asm", "encrypt", s))),
    ("Dump_Read decrypt", criterion, "dump_read_decrypt", "openssl dec", lambda s: openssl.get(("asm", "decrypt", s))),
    ("Dump_Write copy only", criterion, "dump_write_copy_only", "memcpy", lambda s: gbps(criterion, "memcpy", s, label_of[s])),
    ("Dump_Write passthrough", criterion, "dump_write_passthrough", None, None),
    ("transform encrypt", criterion, "transform_encrypt", "openssl enc", lambda s: openssl.get(("asm", "encrypt", s))),
    ("transform decrypt in place", criterion, "transform_decrypt_in_place", "openssl dec", lambda s: openssl.get(("asm", "decrypt", s))),
    ("transform encrypt, unit 4096", criterion, "transform_encrypt_unit4096", "openssl enc", lambda s: openssl.get(("asm", "encrypt", s))),
    ("soft transform encrypt", soft_criterion, "transform_encrypt", "openssl no-asm enc", lambda s: openssl.get(("noasm", "encrypt", s))),
    ("soft transform decrypt", soft_criterion, "transform_decrypt_in_place", "openssl no-asm dec", lambda s: openssl.get(("noasm", "decrypt", s))),
    ("checked Dump_Write (sim checks)", criterion, "checked_dump_write_encrypt", "lean Dump_Write", lambda s: gbps(criterion, "dump_write_encrypt", s, label_of[s])),
    ("checked Dump_Read (sim checks)", criterion, "checked_dump_read_decrypt", "lean Dump_Read", lambda s: gbps(criterion, "dump_read_decrypt", s, label_of[s])),
]
label_of = dict(SIZES)
# References that are criterion benchmarks themselves (they have a fastest sample too).
ref_group = {
    "dump_write_copy_only": "memcpy",
    "checked_dump_write_encrypt": "dump_write_encrypt",
    "checked_dump_read_decrypt": "dump_read_decrypt",
}

print(f"CPU: {cpu}")
print("Throughput in GB/s (10^9 bytes/s), single thread; data unit 512 unless noted.")
print(f"{'path':34} {'size':>7} {'ours':>8} {'best':>8} {'reference':>19} {'ref':>8} {'ratio':>6} {'ref best':>8}")
results = {}
for what, root, group, ref_name, ref in rows:
    for size, label in SIZES:
        ours = gbps(root, group, size, label)
        reference = ref(size) if ref else None
        results[(group if root == criterion else "soft_" + group, size)] = (ours, reference)
        best = best_ns(root, group, label)
        best = size / best if best else None
        extra = f"  ({fmt(ns(root, group, label), 0)} ns/call)" if ref is None else ""
        ref_best = ""
        if ref_group.get(group):
            t = best_ns(criterion, ref_group[group], label)
            ref_best = fmt(size / t if t else None)
        print(f"{what:34} {label:>7} {fmt(ours):>8} {fmt(best):>8} {ref_name or '':>19} {fmt(reference):>8} {fmt(ratio(ours, reference)):>6} {ref_best:>8}{extra}")
    print()

def r(key):
    ours, reference = results[(key, 65536)]
    return fmt(ratio(ours, reference))

print(f"RATIOS encrypt64k_vs_openssl={r('dump_write_encrypt')} "
      f"decrypt64k_vs_openssl={r('dump_read_decrypt')} "
      f"copy64k_vs_memcpy={r('dump_write_copy_only')} "
      f"soft64k_vs_openssl_noasm={r('soft_transform_encrypt')}")
PY
