#!/usr/bin/env bash
# Cross-builds the kernel-mode driver image, dumpcrypt.sys, on Linux (docs/design.md, "Three builds").
#
#   scripts/build-sys.sh [release|debug ...]     (default: release debug)
#
# Out: target/sys/{release,debug}/dumpcrypt.sys (+ .pdb). The same kernel-mode source as the
# shipping WDK build; only the ntoskrnl binding differs (feature `cross`: raw-dylib).
#
# Toolchain: Debian's rustc-web/cargo-web with rust-web-src, so that core, alloc and
# compiler_builtins are built from source for x86_64-pc-windows-msvc (-Zbuild-std; no target
# download outside the package registries), and lld-19's lld-link, which also writes the PE
# checksum (/RELEASE; the lld-link of Debian's default `lld`, 14, cannot). Installs what is
# missing, idempotently. Host builds are untouched: their own target dir, flags given here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGES=(rustc-web cargo-web rust-web-src lld-19)
LLD_LINK=/usr/lib/llvm-19/bin/lld-link
TARGET=x86_64-pc-windows-msvc

profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(release debug)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "build-sys: installing ${missing[*]}"
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# rustup's cargo and rustc come first on PATH: call Debian's by path.
export RUSTC=/usr/bin/rustc
CARGO=/usr/bin/cargo
# -Zbuild-std on a stable compiler.
export RUSTC_BOOTSTRAP=1
# These flags replace .cargo/config.toml's target rustflags (+crt-static, for the WDK build):
# the kernel image links no C runtime at all.
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
# The --cfg flags fix the sealing code's backends (crates/seal, "Kernel builds"): chacha20 and
# poly1305 would otherwise choose AVX2/AVX-512 code from CPUID at run time, YMM/ZMM state a
# driver must not touch unsaved; curve25519-dalek's serial backend is its portable one.
export RUSTFLAGS="-C linker=$LLD_LINK \
-C link-arg=/DRIVER -C link-arg=/SUBSYSTEM:NATIVE -C link-arg=/ENTRY:DriverEntry \
-C link-arg=/NODEFAULTLIB -C link-arg=/RELEASE \
--cfg chacha20_backend=\"soft\" --cfg poly1305_backend=\"soft\" \
--cfg curve25519_dalek_backend=\"serial\""
export CARGO_TARGET_DIR="$ROOT/target/sys-build"

for profile in "${profiles[@]}"; do
    case "$profile" in
        release | debug) ;;
        *) echo "build-sys: unknown profile '$profile' (release or debug)" >&2; exit 2 ;;
    esac
    started=$SECONDS
    # sys-release / sys-debug: release / dev with panic = "abort" (Cargo.toml). Unoptimized
    # compiler_builtins does not link into the image (its mem* routines call themselves),
    # hence opt-level 2 for it in the debug build.
    log="$(mktemp)"
    status=0
    (cd "$ROOT" && "$CARGO" build --quiet --lib --target "$TARGET" \
        --no-default-features --features cross --profile "sys-$profile" \
        --config "profile.sys-debug.package.compiler_builtins.opt-level=2" \
        -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem) >"$log" 2>&1 ||
        status=$?
    # Cargo checks profile overrides against the workspace, not the build-std crates.
    grep -v "profile package spec .compiler_builtins. in profile .sys-debug. did not match" \
        "$log" >&2 || true
    rm -f "$log"
    if [ "$status" -ne 0 ]; then
        echo "build-sys: the $profile build failed" >&2
        exit "$status"
    fi
    built="$CARGO_TARGET_DIR/$TARGET/sys-$profile/dumpcrypt.dll"
    out="$ROOT/target/sys/$profile"
    mkdir -p "$out"
    cp "$built" "$out/dumpcrypt.sys"
    cp "${built%.dll}.pdb" "$out/dumpcrypt.pdb" 2>/dev/null || true
    echo "build-sys: $out/dumpcrypt.sys ($(stat -c %s "$out/dumpcrypt.sys") bytes, $((SECONDS - started)) s)"
done
