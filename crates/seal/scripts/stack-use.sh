#!/usr/bin/env bash
# Measures how much stack `dumpcrypt_seal::seal` uses, and that it leaves no secret behind
# in the stack it used: the release build of the tests runs under gdb (stack-use.py), which
# stops at `seal`, paints the 64 KiB below the stack pointer and reads the region back when
# the work is done and when `seal` has returned (its wipe included). Prints, for each
# backend choice, how deep the stack was written each time (return address included) and
# which secrets of the call are there (16-byte pieces of the Randomness, the payload, the
# shared secret and the three HKDF outputs). Fails unless the wipe reaches beyond the work
# and no piece is left when `seal` has returned.
#
# Usage: crates/seal/scripts/stack-use.sh [soft|auto]...   (default: both)
#   soft: the backends a Windows kernel build needs (no AVX): chacha20 and poly1305 "soft",
#         curve25519-dalek "serial";  auto: each crate's run-time choice on this machine.
# Installs gdb if missing (Debian). Builds into target/seal-stack-<backend>.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"

if ! command -v gdb >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gdb >/dev/null
fi

measure() {
    local backend="$1" flags="" binary
    case "$backend" in
        soft) flags='--cfg chacha20_backend="soft" --cfg poly1305_backend="soft" --cfg curve25519_dalek_backend="serial"' ;;
        auto) flags="" ;;
        *) echo "stack-use: unknown backend choice $backend" >&2; return 2 ;;
    esac
    binary="$(cd "$ROOT" && CARGO_TARGET_DIR="$ROOT/target/seal-stack-$backend" RUSTFLAGS="$flags" \
        cargo test -p dumpcrypt-seal --release --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "main" and m.get("executable"):
        print(m["executable"])')"
    [ -n "$binary" ] || { echo "stack-use: no test binary built" >&2; return 1; }
    # gdb's own messages are dropped; the script's lines start with "stack-use".
    BACKEND="$backend" gdb -q -batch -nx -x "$HERE/stack-use.py" \
        --args "$binary" --exact stack::a_seal_for_scripts_stack_use --test-threads=1 \
        2>&1 | grep '^stack-use'
}

[ $# -gt 0 ] || set -- soft auto
for backend in "$@"; do
    measure "$backend"
done
