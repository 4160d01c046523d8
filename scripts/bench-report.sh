#!/usr/bin/env bash
# The dump path's speed next to its references, measured in one run on this machine.
#
# Runs the criterion benchmarks (benches/transform.rs, benches/dump_path.rs): every backend
# this processor runs (vaes512, vaes256, aesni, portable), through the real Dump_Write and
# Dump_Read with the Backend value forcing each and with DriverEntry's automatic choice, and
# the transform alone; the transform again with the `aes` crate's software backend forced
# (RUSTFLAGS="--cfg aes_force_soft", in a separate target directory); `openssl speed -evp
# aes-256-xts` for each size (encrypt and -decrypt, then again with OpenSSL's assembly off),
# before and after the benchmarks (interleaved with them: the median of all its runs is
# kept); and memcpy of the same sizes (libc's, measured in benches/transform.rs).
#
# OpenSSL's assembly is turned off with OPENSSL_ia32cap=0:0 (every capability bit clear: its
# portable C AES runs). Note that the often quoted OPENSSL_ia32cap=~0 changes nothing when
# passed literally ("~" means "clear these bits", and ~0 clears none); typed unquoted in a
# shell it only works because the shell expands ~0 to the current directory, which OpenSSL
# reads as 0.
#
# Clocks: by default (CLOCK=cpu) both sides are timed in CPU time, ours by the thread's
# CLOCK_THREAD_CPUTIME_ID (benches/common/clock.rs) and openssl's by its own default (user CPU
# time, no -elapsed): on a machine shared with other jobs, wall-clock ratios swing by a third
# from run to run with the time each side waits for a processor, CPU-time ratios do not.
# CLOCK=wall times both in wall-clock time (criterion's default, `openssl speed -elapsed`).
#
# Prints a table of throughputs and ratios and ends with one line:
#   RATIOS encrypt64k_vs_openssl=<x> decrypt64k_vs_openssl=<x> xmm64k_vs_openssl=<x> vaes64k_vs_openssl=<x|n/a> copy64k_vs_memcpy=<x> soft64k_vs_openssl_noasm=<x>
# where, all at 64 KiB in data units of 512 bytes against `openssl speed -evp aes-256-xts
# -bytes 65536` (one 64 KiB data unit):
#   encrypt64k, decrypt64k: Dump_Write / Dump_Read with DriverEntry's automatic choice;
#   xmm64k: the XMM backend (Backend aesni) through Dump_Write and Dump_Read, the smaller
#           of the two ratios;
#   vaes64k: the YMM backend (Backend vaes256: VAES without AVX-512) the same way; n/a where
#            the processor has no VAES;
#   copy64k: Dump_Write of a write wholly outside the encrypted area, against memcpy;
#   soft64k: the transform (encrypt) on the software AES, against OpenSSL without assembly.
#
# Usage: scripts/bench-report.sh            (about 6 minutes; not for CI)
#   REPEAT=n            openssl runs per number and per round (two rounds); median kept (3)
#   OPENSSL_SECONDS=s   seconds per openssl run (default 1)
#   CLOCK=cpu|wall      see above (default cpu)
# The "best" columns are criterion's fastest sample (ours, and memcpy's). Installs what it
# needs (openssl, python3) with apt when missing; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPEAT=${REPEAT:-3}
OPENSSL_SECONDS=${OPENSSL_SECONDS:-1}
CLOCK=${CLOCK:-cpu}
SIZES=(4096 65536 262144 1048576)
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
SOFT_TARGET_DIR=$TARGET_DIR/bench-soft
case "$CLOCK" in
    cpu | wall) ;;
    *) echo "bench-report: CLOCK is cpu or wall" >&2; exit 2 ;;
esac
export DUMPCRYPT_BENCH_CLOCK=$CLOCK

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

# openssl_speed SIZE asm|noasm encrypt|decrypt: bytes per second, one number per run.
openssl_speed() {
    local size=$1 asm=$2 direction=$3
    local flags=(-seconds "$OPENSSL_SECONDS" -evp aes-256-xts -bytes "$size")
    [[ $CLOCK == wall ]] && flags=(-elapsed "${flags[@]}")
    [[ $direction == decrypt ]] && flags=(-decrypt "${flags[@]}")
    local capability=()
    [[ $asm == noasm ]] && capability=(OPENSSL_ia32cap=0:0)
    for ((i = 0; i < REPEAT; i++)); do
        # Its last line: "AES-256-XTS  <thousands of bytes per second>k".
        env "${capability[@]}" openssl speed "${flags[@]}" 2>/dev/null |
            awk '/^AES-256-XTS/ { v = $NF; sub(/k$/, "", v); printf "%.0f\n", v * 1000 }' | tail -1
    done
}

openssl_round() {
    echo "== openssl speed: $(openssl version), $REPEAT runs of ${OPENSSL_SECONDS}s per number ($CLOCK time)" >&2
    for size in "${SIZES[@]}"; do
        for asm in asm noasm; do
            for direction in encrypt decrypt; do
                openssl_speed "$size" "$asm" "$direction" | sed "s/^/$asm $direction $size /"
            done
        done
    done >>"$work/openssl"
}

openssl_round

echo "== criterion, every backend this processor runs ($CLOCK time)" >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo bench --features host --bench transform --bench dump_path -- --noplot >&2

echo "== criterion, software AES forced (--cfg aes_force_soft)" >&2
CARGO_TARGET_DIR=$SOFT_TARGET_DIR RUSTFLAGS="--cfg aes_force_soft" \
    cargo bench --features host --bench transform -- --noplot --sample-size 20 \
    '^transform_(encrypt|decrypt_in_place)_portable/' >&2

openssl_round

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
family=$(awk -F': ' '/^cpu family/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo "?")
model=$(awk -F': ' '/^model\t/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo "?")
stepping=$(awk -F': ' '/^stepping/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo "?")
flags=$(awk -F': ' '/^flags/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
features=$(for f in aes pclmulqdq avx2 avx512f avx512bw avx512vl vaes vpclmulqdq xsavec; do
    [[ " $flags " == *" $f "* ]] && printf '%s ' "$f"; done)
python3 - "$TARGET_DIR/criterion" "$SOFT_TARGET_DIR/criterion" "$work/openssl" \
    "$cpu (family $family, model $model, stepping $stepping; ${features% })" "$CLOCK" \
    "$(nproc) processors, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" <<'PY'
import json, os, statistics, sys

criterion, soft_criterion, openssl_file, cpu, clock, machine = sys.argv[1:7]
SIZES = [(4096, "4KiB"), (65536, "64KiB"), (262144, "256KiB"), (1048576, "1MiB")]
LABEL = dict(SIZES)
BACKENDS = ["vaes512", "vaes256", "aesni", "portable"]

def estimates(root, group, label, kind="median"):
    path = os.path.join(root, group, label, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)[kind]["point_estimate"]
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

def gbps(root, group, size):
    t = estimates(root, group, LABEL[size])
    return size / t if t else None  # bytes per ns = GB/s

runs = {}
with open(openssl_file) as f:
    for line in f:
        parts = line.split()
        if len(parts) == 4 and parts[3]:
            runs.setdefault((parts[0], parts[1], int(parts[2])), []).append(float(parts[3]))
openssl = {key: statistics.median(values) / 1e9 for key, values in runs.items()}
openssl_best = {key: max(values) / 1e9 for key, values in runs.items()}

def ossl(asm, direction):
    return lambda s: openssl.get((asm, direction, s))

def ratio(a, b):
    return a / b if a and b else None

def fmt(x, digits=2):
    return f"{x:.{digits}f}" if x is not None else "n/a"

C, S = criterion, soft_criterion
rows = [
    # (what, criterion root, group, reference name, reference function)
    ("Dump_Write encrypt, auto", C, "dump_write_encrypt", "openssl enc", ossl("asm", "encrypt")),
    ("Dump_Read decrypt, auto", C, "dump_read_decrypt", "openssl dec", ossl("asm", "decrypt")),
]
for backend in BACKENDS:
    rows.append((f"Dump_Write encrypt, {backend}", C, f"dump_write_encrypt_{backend}", "openssl enc", ossl("asm", "encrypt")))
    rows.append((f"Dump_Read decrypt, {backend}", C, f"dump_read_decrypt_{backend}", "openssl dec", ossl("asm", "decrypt")))
rows += [
    ("Dump_Write copy only", C, "dump_write_copy_only", "memcpy", lambda s: gbps(C, "memcpy", s)),
    ("Dump_Write passthrough", C, "dump_write_passthrough", None, None),
]
for backend in BACKENDS:
    rows.append((f"transform encrypt, {backend}", C, f"transform_encrypt_{backend}", "openssl enc", ossl("asm", "encrypt")))
    rows.append((f"transform decrypt in place, {backend}", C, f"transform_decrypt_in_place_{backend}", "openssl dec", ossl("asm", "decrypt")))
    rows.append((f"transform encrypt 4096-unit, {backend}", C, f"transform_encrypt_unit4096_{backend}", "openssl enc", ossl("asm", "encrypt")))
rows += [
    ("soft transform encrypt", S, "transform_encrypt_portable", "openssl no-asm enc", ossl("noasm", "encrypt")),
    ("soft transform decrypt", S, "transform_decrypt_in_place_portable", "openssl no-asm dec", ossl("noasm", "decrypt")),
    ("checked Dump_Write (sim checks)", C, "checked_dump_write_encrypt", "lean Dump_Write", lambda s: gbps(C, "dump_write_encrypt", s)),
    ("checked Dump_Read (sim checks)", C, "checked_dump_read_decrypt", "lean Dump_Read", lambda s: gbps(C, "dump_read_decrypt", s)),
]
ref_group = {
    "dump_write_copy_only": "memcpy",
    "checked_dump_write_encrypt": "dump_write_encrypt",
    "checked_dump_read_decrypt": "dump_read_decrypt",
}

print(f"CPU: {cpu}")
print(f"Machine: {machine}; clock: {clock} time (ours and openssl's alike)")
print("Throughput in GB/s (10^9 bytes/s), single thread; data unit 512 unless noted; openssl: "
      "one data unit of the size.")
print(f"{'path':40} {'size':>7} {'ours':>8} {'best':>8} {'reference':>19} {'ref':>8} {'ratio':>6} {'ref best':>8}")
results = {}
for what, root, group, ref_name, ref in rows:
    printed = False
    for size, label in SIZES:
        ours = gbps(root, group, size)
        if ours is None:
            continue
        printed = True
        reference = ref(size) if ref else None
        results[(root, group, size)] = (ours, reference)
        best = best_ns(root, group, label)
        best = size / best if best else None
        extra = f"  ({fmt(estimates(root, group, label), 0)} ns/call)" if ref is None else ""
        ref_best = ""
        if ref_group.get(group):
            t = best_ns(C, ref_group[group], label)
            ref_best = fmt(size / t if t else None)
        print(f"{what:40} {label:>7} {fmt(ours):>8} {fmt(best):>8} {ref_name or '':>19} "
              f"{fmt(reference):>8} {fmt(ratio(ours, reference)):>6} {ref_best:>8}{extra}")
    if printed:
        print()

print("State save per call (XSAVEC/XSAVE + VZEROUPPER + XRSTOR of the backend's components, "
      "back to back; _dirty: every register in use first, which costs dirty_only), and one "
      "512-byte data unit per call:")
for name in ["save_restore_vaes512", "save_restore_vaes512_dirty", "save_restore_vaes256",
             "save_restore_vaes256_dirty", "dirty_only", "one_unit_vaes512", "one_unit_vaes256",
             "one_unit_aesni"]:
    t = estimates(C, "state_save", name)
    if t is not None:
        print(f"  {name:24} {t:8.1f} ns")
print()

def r(root, group, size=65536):
    ours, reference = results.get((root, group, size), (None, None))
    return ratio(ours, reference)

def smaller(*values):
    values = [v for v in values if v is not None]
    return min(values) if len(values) == 2 else None

encrypt = r(C, "dump_write_encrypt")
decrypt = r(C, "dump_read_decrypt")
xmm = smaller(r(C, "dump_write_encrypt_aesni"), r(C, "dump_read_decrypt_aesni"))
vaes = smaller(r(C, "dump_write_encrypt_vaes256"), r(C, "dump_read_decrypt_vaes256"))
copy = r(C, "dump_write_copy_only")
soft = r(S, "transform_encrypt_portable")

auto = gbps(C, "dump_write_encrypt", 65536)
if auto:
    print(f"What the filter adds to a dump (Dump_Write is synchronous: its time adds to the "
          f"disk's), at {auto:.2f} GB/s:")
    for disk in (3.0, 7.0):
        print(f"  {disk:.0f} GB/s disk: the dump takes {1 + disk / auto:.2f} x as long "
              f"({disk * auto / (disk + auto):.2f} GB/s overall)")
    print()

def best_ratio(root, group, reference):
    t = best_ns(root, group, "64KiB")
    return ratio(65536 / t if t else None, reference)

def best_smaller(*values):
    return smaller(*values)

enc_best, dec_best = openssl_best.get(("asm", "encrypt", 65536)), openssl_best.get(("asm", "decrypt", 65536))
t = best_ns(C, "memcpy", "64KiB")
print("The same at their best (our fastest sample, openssl's fastest run, memcpy's fastest "
      "sample), for a machine shared with other jobs: "
      f"encrypt64k={fmt(best_ratio(C, 'dump_write_encrypt', enc_best))} "
      f"decrypt64k={fmt(best_ratio(C, 'dump_read_decrypt', dec_best))} "
      f"xmm64k={fmt(best_smaller(best_ratio(C, 'dump_write_encrypt_aesni', enc_best), best_ratio(C, 'dump_read_decrypt_aesni', dec_best)))} "
      f"vaes64k={fmt(best_smaller(best_ratio(C, 'dump_write_encrypt_vaes256', enc_best), best_ratio(C, 'dump_read_decrypt_vaes256', dec_best)))} "
      f"copy64k={fmt(best_ratio(C, 'dump_write_copy_only', 65536 / t if t else None))} "
      f"soft64k={fmt(best_ratio(S, 'transform_encrypt_portable', openssl_best.get(('noasm', 'encrypt', 65536))))}")
print()

print(f"RATIOS encrypt64k_vs_openssl={fmt(encrypt)} "
      f"decrypt64k_vs_openssl={fmt(decrypt)} "
      f"xmm64k_vs_openssl={fmt(xmm)} "
      f"vaes64k_vs_openssl={fmt(vaes)} "
      f"copy64k_vs_memcpy={fmt(copy)} "
      f"soft64k_vs_openssl_noasm={fmt(soft)}")
PY
