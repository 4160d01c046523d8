# Sourced by the checks that compile C against mingw-w64's DDK headers
# (scripts/check-ntoskrnl.sh, scripts/check-provider-header.sh). Installs
# gcc-mingw-w64-x86-64 and mingw-w64-x86-64-dev if missing (Debian), idempotently, and sets
# GCC (the compiler) and DDK (the directory of ddk/wdm.h). $1: the caller's name, for messages.
mingw_ddk_setup() {
    local name="$1" package missing=() sudo="" wdm
    GCC=x86_64-w64-mingw32-gcc
    for package in gcc-mingw-w64-x86-64 mingw-w64-x86-64-dev; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$name: installing ${missing[*]}"
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        apt_install() {
            $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${missing[@]}" >/dev/null
        }
        # The package lists are refreshed only if the install cannot proceed without it.
        apt_install 2>/dev/null || { $sudo apt-get update -qq && apt_install; }
    fi
    # The DDK headers' directory (wdm.h includes its siblings by bare name).
    wdm="$(dpkg -L mingw-w64-x86-64-dev | grep '/ddk/wdm\.h$' | head -n 1 || true)"
    if [ -z "$wdm" ]; then
        echo "$name: mingw-w64-x86-64-dev installs no ddk/wdm.h" >&2
        return 1
    fi
    DDK="$(dirname "$wdm")"
}
