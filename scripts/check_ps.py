#!/usr/bin/env python3
"""Checks the Windows PowerShell scripts (scripts/windows/*.ps1) on a machine without PowerShell.

Parses each script with the tree-sitter PowerShell grammar (PyPI: tree-sitter,
tree-sitter-powershell) and fails on:

* any syntax error (ERROR or MISSING node), with its line;
* what Windows PowerShell 5.1 cannot run: the 7.x pipeline chain operators && and ||
  (the 7.x ternary and null operators are not in the grammar, so they show as syntax errors);
* "$name:" followed by a non-name character inside a double-quoted string: PowerShell reads
  it as a drive-qualified variable and refuses the script ("Variable reference is not
  valid"); write "${name}:" instead;
* a call of a command that is neither defined in these scripts nor in the list of cmdlets and
  programs they are known to use (catches misspelt helper names);
* non-ASCII bytes (5.1 reads a BOM-less script as the ANSI code page);
* a script (not the dot-sourced DumpCryptCommon.ps1) without `#Requires -Version 5.1`,
  comment-based help (.SYNOPSIS, .DESCRIPTION, .EXAMPLE), `SupportsShouldProcess` or a
  failure exit code (`exit 1`).

`--self-test` breaks a script in each of these ways, in memory, and fails unless every
broken copy is rejected.

The tree-sitter grammar is not PowerShell's own parser: it is stricter in places (a param
block must end its line) and can miss a semantic error PowerShell would report when it
compiles the script. docs/windows.md says what is only checked on Windows.

Exit status: 0 all checks pass, 1 a check failed, 2 the parser is not installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import tree_sitter
    import tree_sitter_powershell
except ImportError:  # pragma: no cover - reported to the caller
    tree_sitter = None

# Cmdlets, aliases and programs the scripts call directly. A call of anything else must be
# a function defined in one of the scripts.
KNOWN_COMMANDS = {
    name.lower()
    for name in """
    Add-Type ConvertFrom-Json ConvertTo-Json Dispose ForEach-Object Get-Acl Get-AuthenticodeSignature
    Get-ChildItem Get-CimInstance Get-Content Get-Date Get-Item Get-ItemProperty Get-WinEvent
    Import-Certificate Join-Path New-Item New-Object Out-Null Remove-Item Resolve-Path Restart-Computer
    Select-Object Set-Acl Set-Content Set-ItemProperty Set-StrictMode Sort-Object Start-Process
    Start-Sleep Test-Path Where-Object Write-Error Write-Host Write-Verbose Write-Warning
    """.split()
}
REQUIRED_HELP = (".SYNOPSIS", ".DESCRIPTION", ".EXAMPLE")
SHARED_FILES = {"dumpcryptcommon.ps1"}
BAD_DRIVE_VARIABLE = re.compile(r"(?<!`)\$[A-Za-z_][A-Za-z0-9_]*:(?![A-Za-z0-9_{])")


def parser() -> "tree_sitter.Parser":
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def walk(node):
    yield node
    for child in node.children:
        yield from walk(child)


def line_of(node) -> int:
    return node.start_point[0] + 1


def defined_functions(sources: dict[str, bytes]) -> set[str]:
    names = set()
    for source in sources.values():
        for match in re.finditer(rb"(?im)^\s*function\s+([A-Za-z][\w-]*)", source):
            names.add(match.group(1).decode("ascii", "replace").lower())
    return names


def check_script(name: str, source: bytes, functions: set[str]) -> list[str]:
    errors: list[str] = []
    try:
        text = source.decode("ascii")
    except UnicodeDecodeError as error:
        line = source[: error.start].count(b"\n") + 1
        return [f"line {line}: not ASCII (Windows PowerShell 5.1 reads BOM-less scripts as ANSI)"]

    tree = parser().parse(source)
    for node in walk(tree.root_node):
        snippet = source[node.start_byte : node.end_byte][:60].decode("ascii", "replace").replace("\n", "\\n")
        if node.is_missing:
            errors.append(f"line {line_of(node)}: syntax error, missing {node.type!r}")
        elif node.type == "ERROR":
            errors.append(f"line {line_of(node)}: syntax error near {snippet!r}")
        elif node.type in ("&&", "||"):
            errors.append(f"line {line_of(node)}: {node.type} is PowerShell 7 only")
        elif node.type in ("expandable_string_literal", "expandable_here_string_literal"):
            for match in BAD_DRIVE_VARIABLE.finditer(source[node.start_byte : node.end_byte].decode("ascii")):
                errors.append(f"line {line_of(node)}: {match.group(0)!r} in a double-quoted string is read as a drive-qualified variable; write ${{{match.group(0)[1:-1]}}}:")
        elif node.type == "command_name":
            command = snippet.lower()
            if command not in KNOWN_COMMANDS and command not in functions and not command.endswith(".exe"):
                errors.append(f"line {line_of(node)}: unknown command {snippet!r} (not defined here, not a known cmdlet)")

    if name.lower() not in SHARED_FILES:
        if not re.search(r"(?m)^#Requires -Version 5\.1\s*$", text):
            errors.append("no '#Requires -Version 5.1' line")
        help_match = re.search(r"<#(.*?)#>", text, re.S)
        if help_match is None:
            errors.append("no comment-based help block")
        else:
            for keyword in REQUIRED_HELP:
                if keyword not in help_match.group(1):
                    errors.append(f"comment-based help has no {keyword}")
        if not re.search(r"\[CmdletBinding\([^)]*SupportsShouldProcess\s*=\s*\$true", text):
            errors.append("no [CmdletBinding(SupportsShouldProcess = $true)] (-WhatIf)")
        if not re.search(r"(?m)^\s*exit 1\s*$", text):
            errors.append("never exits with a failure code (exit 1)")
    return errors


def check_all(sources: dict[str, bytes]) -> dict[str, list[str]]:
    functions = defined_functions(sources)
    return {name: check_script(name, source, functions) for name, source in sources.items()}


MUTATIONS = [
    ("unclosed brace", "Install-DumpCrypt.ps1", lambda s: s.replace("try {", "try {{", 1)),
    ("unterminated string", "Install-DumpCrypt.ps1", lambda s: s.replace("'Passthrough', 'Encrypt', 'Refuse')]", "'Passthrough', 'Encrypt', 'Refuse)]", 1)),
    ("PowerShell 7 &&", "Uninstall-DumpCrypt.ps1", lambda s: s.replace("    Assert-Administrator\n", "    Assert-Administrator && Write-Host ok\n", 1)),
    ("PowerShell 7 ternary", "Get-DumpCryptStatus.ps1", lambda s: s.replace("$problems = @()", "$problems = $true ? @() : $null", 1)),
    ("PowerShell 7 null-coalescing", "Get-DumpCryptStatus.ps1", lambda s: s.replace("$problems = @()", "$problems = $null ?? @()", 1)),
    ("$name: in a string", "Test-Hibernate.ps1", lambda s: s.replace("${policy}: DriverEntry", "$policy: DriverEntry", 1)),
    ("misspelt helper", "Test-CrashDump.ps1", lambda s: s.replace("Get-DumpFilters\n", "Get-DumpFilter\n", 1)),
    ("non-ASCII dash", "Install-DumpCrypt.ps1", lambda s: s.replace("Installs the dumpcrypt", "Installs \u2014 the dumpcrypt", 1)),
    ("no #Requires", "Test-Hibernate.ps1", lambda s: s.replace("#Requires -Version 5.1\n", "", 1)),
    ("no SupportsShouldProcess", "Uninstall-DumpCrypt.ps1", lambda s: s.replace("SupportsShouldProcess = $true", "PositionalBinding = $true", 1)),
    ("no .EXAMPLE", "Get-DumpCryptStatus.ps1", lambda s: s.replace(".EXAMPLE", ".NOTES", 1)),
    ("no failure exit", "Test-CrashDump.ps1", lambda s: re.sub(r"(?m)^(\s*)exit 1\s*$", r"\1exit 0", s)),
]


def self_test(sources: dict[str, bytes]) -> int:
    failures = 0
    for description, file_name, mutate in MUTATIONS:
        if file_name not in sources:
            print(f"self-test: {file_name} is missing (update the test)", file=sys.stderr)
            failures += 1
            continue
        good = sources[file_name].decode("ascii")
        broken = mutate(good)
        if broken == good:
            print(f"self-test: mutation {description!r} did not change {file_name} (update the test)", file=sys.stderr)
            failures += 1
            continue
        changed = dict(sources)
        changed[file_name] = broken.encode("utf-8")
        errors = check_all(changed)[file_name]
        if errors:
            print(f"ok: rejected {description}: {errors[0]}")
        else:
            print(f"FAIL: accepted a broken script ({description})", file=sys.stderr)
            failures += 1
    print(f"self-test: {len(MUTATIONS) - failures} of {len(MUTATIONS)} broken copies rejected")
    return 1 if failures else 0


def main() -> int:
    argument_parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    argument_parser.add_argument("scripts", type=Path, nargs="+", help="the .ps1 files")
    argument_parser.add_argument("--self-test", action="store_true", help="also check that broken copies are rejected")
    args = argument_parser.parse_args()
    if tree_sitter is None:
        print("error: the tree-sitter PowerShell parser is not installed (pip install tree-sitter tree-sitter-powershell)", file=sys.stderr)
        return 2

    sources = {path.name: path.read_bytes() for path in args.scripts}
    results = check_all(sources)
    failed = 0
    for name, errors in results.items():
        for message in errors:
            print(f"{name}: {message}", file=sys.stderr)
        if errors:
            failed += 1
        else:
            print(f"{name}: ok")
    if failed:
        return 1
    if args.self_test:
        return self_test(sources)
    return 0


if __name__ == "__main__":
    sys.exit(main())
