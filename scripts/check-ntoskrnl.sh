#!/usr/bin/env bash
# Checks src/kernel/ntoskrnl.rs (routines, structures, constants) against mingw-w64's DDK headers.
#
#   scripts/check-ntoskrnl.sh        (from anywhere; exits non-zero on any mismatch)
#
# scripts/check_ntoskrnl.py translates the Rust declarations into C; x86_64-w64-mingw32-gcc
# must accept it alongside <ntddk.h>, <wdm.h> and <ntdddisk.h>: a routine whose parameters or
# return type differ from the header's is "conflicting types", a layout or constant that differs
# is a failed _Static_assert, each reported at the Rust line it comes from. mingw-w64's headers
# are an independent reading of Windows' interfaces, not Microsoft's; what they lack is listed
# in the output and in the generator (NOT_IN_HEADERS), with what is checked instead.
#
# Self-test: the generator also writes broken variants (the Rust edited in memory) and probes
# that what NOT_IN_HEADERS lists is still missing from the headers; each must fail to compile,
# with the error it is about.
#
# Installs gcc-mingw-w64-x86-64 and mingw-w64-x86-64-dev if missing (scripts/mingw-ddk.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
started=$SECONDS
# shellcheck source=scripts/mingw-ddk.sh
source "$ROOT/scripts/mingw-ddk.sh"
mingw_ddk_setup check-ntoskrnl
ddk="$DDK"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "check-ntoskrnl: mingw-w64 $(dpkg-query -W -f='${Version}' mingw-w64-x86-64-dev) headers ($ddk), $("$GCC" -dumpversion)"
python3 "$ROOT/scripts/check_ntoskrnl.py" --repo "$ROOT" --out "$work"

# C locale: ASCII quotes in gcc's messages, which the self-test matches.
compile() { (cd "$ROOT" && LC_ALL=C "$GCC" -isystem "$ddk" -std=gnu11 -fsyntax-only -Wall -Wextra -Werror "$1"); }

if ! compile "$work/check.c" >"$work/check.log" 2>&1; then
    cat "$work/check.log" >&2
    echo >&2
    echo "check-ntoskrnl: FAILED: src/kernel/ntoskrnl.rs (or src/abi.rs) disagrees with mingw-w64's headers." >&2
    echo "check-ntoskrnl: gcc's errors above name the Rust line; its notes show the header's declaration." >&2
    exit 1
fi
echo "check-ntoskrnl: the declarations agree with the headers"

failures=0
count=0
while IFS=$'\t' read -r file expected what; do
    count=$((count + 1))
    log="$work/must-fail/$file.log"
    if [ "$file" = "-" ]; then
        echo "check-ntoskrnl: self-test FAILED: $what" >&2
        failures=$((failures + 1))
    elif compile "$work/must-fail/$file" >"$log" 2>&1; then
        echo "check-ntoskrnl: self-test FAILED: $what: gcc accepted it" >&2
        if [[ "$what" == "still absent"* ]]; then
            echo "check-ntoskrnl:   the headers have it now: drop it from NOT_IN_HEADERS in scripts/check_ntoskrnl.py" >&2
        fi
        failures=$((failures + 1))
    elif ! grep -qF -- "$expected" "$log"; then
        echo "check-ntoskrnl: self-test FAILED: $what: rejected, but without \"$expected\":" >&2
        head -n 5 "$log" >&2
        failures=$((failures + 1))
    fi
done <"$work/must-fail.tsv"
if [ "$failures" -ne 0 ]; then
    echo "check-ntoskrnl: FAILED: $failures of $count self-test variants" >&2
    exit 1
fi
echo "check-ntoskrnl: self-test: all $count broken variants and absence probes rejected, each for its reason"
echo "check-ntoskrnl: ok ($((SECONDS - started)) s)"
