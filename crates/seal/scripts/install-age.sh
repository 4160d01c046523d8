#!/usr/bin/env bash
# Installs the reference age implementation (Debian package `age`: `age`, `age-keygen`),
# which dumpcrypt-seal's tests decrypt sealed keys with (tests/seal/reference_cli.rs; under
# CI they fail without it). Idempotent: does nothing when both tools already run.
set -euo pipefail

if command -v age >/dev/null 2>&1 && command -v age-keygen >/dev/null 2>&1; then
    echo "install-age: $(command -v age) $(age --version) already installed"
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
apt_install() {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends age \
        >/dev/null
}
echo "install-age: installing the Debian package age"
# The package lists are refreshed only if the install cannot proceed without them.
apt_install 2>/dev/null || { $sudo apt-get update -qq && apt_install; }
echo "install-age: $(command -v age) $(age --version)"
