#!/usr/bin/env bash
# Checks include/dumpcrypt_provider.h with mingw-w64's compiler and DDK headers: the header
# compiles after <ntddk.h> with every _Static_assert on its layout holding, and so does the
# C provider in docs/provider.md (its ```c blocks, in order). The Rust side asserts the same
# offsets (crates/provider), and crates/provider/tests/header.rs compares the two lists.
#
# Self-test: a copy of the header with one offset changed, and one with a field removed,
# must fail to compile.
#
#   scripts/check-provider-header.sh   (exits non-zero on any failure)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
started=$SECONDS
# shellcheck source=scripts/mingw-ddk.sh
source "$ROOT/scripts/mingw-ddk.sh"
mingw_ddk_setup check-provider-header

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The translation unit: the kernel headers, ours, and the documentation's example.
unit() {
    local header_dir="$1"
    printf '#include <ntddk.h>\n#include "dumpcrypt_provider.h"\n'
    awk '/^```c$/ { inside = 1; next } /^```/ { inside = 0 } inside' "$ROOT/docs/provider.md"
    printf '\n/* Every entry point of the example is referenced. */\nPVOID DcEntryPoints[] = { (PVOID)DcRegister, (PVOID)DcUnregister };\n'
}
compile() { LC_ALL=C "$GCC" -isystem "$DDK" -I "$1" -std=gnu11 -c -Wall -Wextra -Werror -o /dev/null "$2"; }

unit "$ROOT/include" >"$work/provider.c"
if ! grep -q "DcAnswer" "$work/provider.c"; then
    echo "check-provider-header: FAILED: no C example found in docs/provider.md" >&2
    exit 1
fi
if ! compile "$ROOT/include" "$work/provider.c" 2>"$work/provider.log"; then
    cat "$work/provider.log" >&2
    echo "check-provider-header: FAILED: the header or the example in docs/provider.md does not compile" >&2
    exit 1
fi
echo "check-provider-header: the header and docs/provider.md's provider compile; every layout assertion holds"

# Self-test.
mkdir -p "$work/shifted" "$work/removed"
sed 's/FIELD_OFFSET(DUMPCRYPT_ANSWER, LiveState) == 0x188/FIELD_OFFSET(DUMPCRYPT_ANSWER, LiveState) == 0x180/' \
    "$ROOT/include/dumpcrypt_provider.h" >"$work/shifted/dumpcrypt_provider.h"
sed '/^    ULONG Reserved;$/d' "$ROOT/include/dumpcrypt_provider.h" >"$work/removed/dumpcrypt_provider.h"
for variant in shifted removed; do
    if cmp -s "$ROOT/include/dumpcrypt_provider.h" "$work/$variant/dumpcrypt_provider.h"; then
        echo "check-provider-header: self-test FAILED: the $variant variant is not different" >&2
        exit 1
    fi
    if compile "$work/$variant" "$work/provider.c" >/dev/null 2>&1; then
        echo "check-provider-header: self-test FAILED: the $variant header compiled" >&2
        exit 1
    fi
done
echo "check-provider-header: self-test: a shifted offset and a removed field are rejected"
echo "check-provider-header: ok ($((SECONDS - started)) s)"
