#!/usr/bin/env bash
# Builds the real dumpcrypt.sys on Linux, checks the image, and runs it under a Windows
# kernel emulator (docs/real-binary.md). Installs what it needs, idempotently; exits non-zero
# on any deviation.
#
#   scripts/test-sys.sh                       builds and checks both images, emulates release
#   SYS_PROFILES=release scripts/test-sys.sh  only the release image
#   SYS_EMULATE="release debug" scripts/test-sys.sh   emulate the debug image too
#
# The debug image is not emulated by default: unoptimized, its DriverEntry needs about 52 KB
# of stack, more than the 24 KiB kernel stack (the emulator reports it). It is for stepping
# through in a debugger on a test machine with a larger stack, not for shipping.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-sys"
REQUIREMENTS="$ROOT/tests/emulation/requirements.txt"
read -r -a profiles <<<"${SYS_PROFILES:-release debug}"

step() { echo "== test-sys: $*"; }
timed() {
    local name="$1" started=$SECONDS
    shift
    "$@"
    echo "== test-sys: $name took $((SECONDS - started)) s"
}

python_environment() {
    local python
    python="$(command -v python3.11 || true)"
    if [ -z "$python" ]; then
        echo "test-sys: Python 3.11 is needed (speakeasy-emulator 1.5.11 runs on it)" >&2
        return 1
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        "$python" -m venv "$VENV"
    fi
    # Reinstall only when the pinned requirements change.
    local stamp="$VENV/.requirements"
    if ! cmp -s "$REQUIREMENTS" "$stamp"; then
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r "$REQUIREMENTS"
        cp "$REQUIREMENTS" "$stamp"
    fi
}

read -r -a emulate <<<"${SYS_EMULATE:-release}"
images=()
emulated=()
for profile in "${profiles[@]}"; do
    images+=("$ROOT/target/sys/$profile/dumpcrypt.sys")
    if [[ " ${emulate[*]} " == *" $profile "* ]]; then
        emulated+=("$ROOT/target/sys/$profile/dumpcrypt.sys")
    fi
done

step "Python environment ($VENV)"
timed "python environment" python_environment
step "build (${profiles[*]})"
timed "build" "$ROOT/scripts/build-sys.sh" "${profiles[@]}"
step "image checks"
timed "image checks" "$VENV/bin/python" "$ROOT/tests/emulation/check_image.py" "${images[@]}"
step "emulation"
timed "emulation" "$VENV/bin/python" "$ROOT/tests/emulation/run_sys.py" "${emulated[@]}" \
    --report "$ROOT/target/sys/emulation-report.json"
