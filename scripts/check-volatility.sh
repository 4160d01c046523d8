#!/usr/bin/env bash
# Opens crash dumps with Volatility 3's crash dump layer (WindowsCrashDump64Layer over a
# FileLayer): its header check must accept each, and pages read through it must equal the
# file's bytes where the header puts them (scripts/check_volatility.py). One line per dump.
#
#   scripts/check-volatility.sh DUMP...   check these dumps
#   scripts/check-volatility.sh           simulate one dump of each kind (full, kernel,
#                                         automatic, complete), recover each from the
#                                         encrypted image with decrypt and find-dump, and
#                                         check both the reference's and the recovered one;
#                                         and one written into a real NTFS pagefile and
#                                         taken back out with `recover`
#
# Volatility 3 comes from PyPI into a venv under target/volatility-venv, made once and kept
# (VOLATILITY_VENV overrides the place). Volatility is under the Volatility Software
# License; it is installed at check time, never vendored.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VOLATILITY_VENV:-$root/target/volatility-venv}"
started=$SECONDS

if ! "$venv/bin/python" -c 'import volatility3' 2>/dev/null; then
    echo "check-volatility: installing volatility3 from PyPI into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check volatility3
fi
echo "check-volatility: volatility3 $("$venv/bin/python" -c 'import volatility3.framework as f; print(f.constants.PACKAGE_VERSION)')"

dumps=("$@")
if [ ${#dumps[@]} -eq 0 ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    cargo build --quiet -p dumpcrypt-cli
    dumpcrypt="$root/target/debug/dumpcrypt"
    head -c 64 /dev/urandom >"$work/key"
    for kind in full kernel automatic complete; do
        "$dumpcrypt" simulate --key "$work/key" --dump-type crash --dump-kind "$kind" \
            --memory 16MiB --partition-offset 0 --contiguous-dump \
            --image "$work/$kind.image" --reference "$work/$kind.reference" >/dev/null
        "$dumpcrypt" find-dump "$work/$kind.reference" --extract "$work/$kind-reference.dmp" >/dev/null
        "$dumpcrypt" decrypt --key "$work/key" --in "$work/$kind.image" \
            --out "$work/$kind.decrypted" >/dev/null
        "$dumpcrypt" find-dump "$work/$kind.decrypted" --extract "$work/$kind-recovered.dmp" >/dev/null
        dumps+=("$work/$kind-reference.dmp" "$work/$kind-recovered.dmp")
    done
    # And what `recover` gives back from a real NTFS disk (scripts/make-disk-fixture.sh): the
    # driver's dump written into the fragmented pagefile's extents, then recovered through the
    # partition table and the file system.
    bash "$root/scripts/make-disk-fixture.sh" "$work/fixture" >/dev/null
    "$dumpcrypt" simulate --key "$work/key" --disk "$work/fixture/disk.img" \
        --dump-extents "$work/fixture/pagefile.extents" \
        --partition-offset "$(cat "$work/fixture/partition.offset")" --memory 1MiB \
        --image "$work/ntfs.image" >/dev/null
    "$dumpcrypt" recover "$work/ntfs.image" --key "$work/key" --out "$work/ntfs-recovered.dmp" >/dev/null
    dumps+=("$work/ntfs-recovered.dmp")
fi

status=0
"$venv/bin/python" "$root/scripts/check_volatility.py" "${dumps[@]}" || status=$?
echo "check-volatility: ${#dumps[@]} dumps in $((SECONDS - started)) s"
exit $status
