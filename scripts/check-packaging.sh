#!/usr/bin/env bash
# Checks the Windows packaging on Linux: the INF (scripts/check_inf.py, standard library only),
# the PowerShell scripts (scripts/check_ps.py, tree-sitter PowerShell grammar from PyPI,
# installed into a venv under target/ on first use) and the GitHub Actions workflow that builds
# the package on Windows (.github/workflows/windows.yml: it parses, and it builds what the
# kit expects; it cannot be run here). Each checker also runs its self-test: broken copies of
# the files, made in memory, must be rejected.
#
# Usage: scripts/check-packaging.sh        (from anywhere; exits non-zero on any failure)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/target/packaging-venv"
# Pinned: a new grammar release may parse differently.
parser_packages=(tree-sitter==0.26.1 tree-sitter-powershell==0.26.4 pyyaml==6.0.3)

python=""
for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python="$(command -v "$candidate")"
        break
    fi
done
if [[ -z "$python" ]]; then
    echo "check-packaging: no Python 3.11 or later found (tomllib)" >&2
    exit 1
fi

passed=0
failed=0
run() {
    local name="$1"
    shift
    echo "== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        echo "check-packaging: FAILED: $name" >&2
        failed=$((failed + 1))
    fi
}

run "INF: inf/dumpcrypt.inx" \
    "$python" "$repo/scripts/check_inf.py" "$repo/inf/dumpcrypt.inx" --cargo-toml "$repo/Cargo.toml" --self-test

# The PowerShell parser: a venv under target/, created and filled once, reused afterwards.
if ! "$venv/bin/python" -c 'import tree_sitter, tree_sitter_powershell, yaml' >/dev/null 2>&1; then
    echo "== installing the PowerShell parser into $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${parser_packages[@]}"
fi
run "PowerShell: scripts/windows/*.ps1" \
    "$venv/bin/python" "$repo/scripts/check_ps.py" "$repo"/scripts/windows/*.ps1 --inf "$repo/inf/dumpcrypt.inx" --self-test

run "GitHub Actions: .github/workflows/windows.yml" "$venv/bin/python" - "$repo" <<'PY'
import re, sys
from pathlib import Path
import yaml

repo = Path(sys.argv[1])
text = (repo / ".github/workflows/windows.yml").read_text()


def check(workflow):
    errors = []
    # YAML 1.1 reads the key `on` as True.
    triggers = workflow.get("on", workflow.get(True)) or {}
    for trigger in ("push", "pull_request", "workflow_dispatch"):
        if trigger not in triggers:
            errors.append(f"not triggered by {trigger}")
    jobs = workflow.get("jobs") or {}
    package = jobs.get("package") or {}
    if not str(package.get("runs-on", "")).startswith("windows"):
        errors.append("the package job does not run on a Windows runner")
    steps = package.get("steps") or []
    runs = "\n".join(str(step.get("run", "")) for step in steps)
    uses = [str(step.get("uses", "")) for step in steps]
    for needle, what in [
        ("cargo make default", "builds the package with cargo make"),
        ("nuget install", "installs the WDK from NuGet"),
        ("LLVM.LLVM", "installs LLVM through WinGet"),
        ("/rulever 10.0.26100", "runs infverif with Makefile.toml's ruleset"),
        ("-p dumpcrypt-cli", "builds dumpcrypt.exe into the package"),
        ("check_inf.py", "checks the stamped INF"),
    ]:
        if needle not in runs:
            errors.append(f"no step {what} ({needle!r})")
    if not any(use.startswith("actions/upload-artifact@") for use in uses):
        errors.append("the package is not uploaded (actions/upload-artifact)")
    for use in uses:
        if use and not re.search(r"@v?\d|@stable|@[0-9a-f]{40}$", use):
            errors.append(f"action {use!r} is not pinned to a version")
    for step in steps:
        script = str(step.get("run", ""))
        for line in script.splitlines():
            native = re.match(r"\s*(cargo|nuget|clang|winget|python|&)\b", line)
            if native and "$LASTEXITCODE -ne 0" not in script:
                errors.append(f"step {step.get('name')!r} runs {native.group(1)} without checking $LASTEXITCODE")
                break
    makefile = (repo / "Makefile.toml").read_text()
    if "/rulever 10.0.26100" not in makefile:
        errors.append("Makefile.toml's infverif ruleset differs from the workflow's")
    if "powershell" not in jobs:
        errors.append("no job parses the PowerShell kit with Windows PowerShell 5.1")
    return errors


errors = check(yaml.safe_load(text))
for message in errors:
    print(f"error: {message}", file=sys.stderr)
if errors:
    sys.exit(1)
# Self-test: broken copies must be rejected.
mutations = [
    ("no upload", text.replace("actions/upload-artifact@v4", "actions/cache@v4")),
    ("no cargo make", text.replace("cargo make default", "cargo build")),
    ("exit code not checked", text.replace("if ($LASTEXITCODE -ne 0) { throw \"cargo make failed", "if ($false) { throw \"cargo make failed")),
    ("unpinned action", text.replace("actions/checkout@v4", "actions/checkout@main", 1)),
    ("Linux runner", text.replace("runs-on: windows-2022", "runs-on: ubuntu-latest", 1)),
]
failed = 0
for description, broken in mutations:
    if broken == text:
        print(f"self-test: mutation {description!r} did not change the workflow", file=sys.stderr)
        failed += 1
    elif not check(yaml.safe_load(broken)):
        print(f"FAIL: accepted a broken workflow ({description})", file=sys.stderr)
        failed += 1
    else:
        print(f"ok: rejected {description}")
print(f".github/workflows/windows.yml: ok; self-test: {len(mutations) - failed} of {len(mutations)} broken copies rejected")
sys.exit(1 if failed else 0)
PY

run "Makefile.toml and .cargo/config.toml" "$python" - "$repo" <<'PY'
import sys, tomllib
from pathlib import Path

repo = Path(sys.argv[1])
errors = []
makefile = tomllib.loads((repo / "Makefile.toml").read_text())
if makefile.get("extend") != "target/rust-driver-makefile.toml":
    errors.append("Makefile.toml must extend target/rust-driver-makefile.toml (wdk-build's flow)")
if "load_script" not in makefile.get("config", {}):
    errors.append("Makefile.toml has no [config] load_script")
if makefile.get("config", {}).get("default_to_workspace") is not False:
    errors.append("Makefile.toml must set default_to_workspace = false (the other members are host crates)")
flags = makefile.get("env", {}).get("DUMPCRYPT_DRIVER_BUILD_FLAGS", "").split()
for flag in ("--no-default-features", "--features", "wdk", "--package", "dumpcrypt"):
    if flag not in flags:
        errors.append(f"DUMPCRYPT_DRIVER_BUILD_FLAGS lacks {flag}")
if "@@split(DUMPCRYPT_DRIVER_BUILD_FLAGS, ,remove-empty)" not in makefile.get("tasks", {}).get("build", {}).get("args", []):
    errors.append("[tasks.build] does not pass DUMPCRYPT_DRIVER_BUILD_FLAGS")
infverif = makefile.get("env", {}).get("DUMPCRYPT_INFVERIF_FLAGS", {})
if "/h" not in str(infverif).split():
    errors.append("infverif must run in /h mode (the INF writes outside HKR)")
config = tomllib.loads((repo / ".cargo" / "config.toml").read_text())
if "build" in config and "rustflags" in config["build"]:
    errors.append(".cargo/config.toml: no [build] rustflags (it breaks proc-macros on Linux)")
for triple in ("x86_64-pc-windows-msvc", "aarch64-pc-windows-msvc"):
    if "target-feature=+crt-static" not in config.get("target", {}).get(triple, {}).get("rustflags", []):
        errors.append(f".cargo/config.toml: [target.{triple}] lacks +crt-static")
for message in errors:
    print(f"error: {message}", file=sys.stderr)
if not errors:
    print("Makefile.toml, .cargo/config.toml: ok")
sys.exit(1 if errors else 0)
PY

echo "check-packaging: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
