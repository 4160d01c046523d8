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
  failure exit code (`exit 1`);
* `ConfirmImpact = 'High'`: with the default $ConfirmPreference (High) every ShouldProcess
  call then prompts, a prompt storm in an unattended run;
* native commands whose exit code can be lost (the scripts run under
  `$ErrorActionPreference = 'Stop'`):
  - a native command (`& $exe`, `name.exe`) with its standard error redirected (`2>&1`,
    `2>`, `*>`) outside a function that sets `$ErrorActionPreference = 'Continue'`
    (Invoke-Native): Windows PowerShell 5.1 turns the first line on standard error into a
    terminating error before the exit code is read;
  - a native command outside Invoke-Native whose `$LASTEXITCODE` is never read after it in
    the same block;
  - an `Invoke-Native` or `Start-Process` call whose result is not assigned to a variable
    whose `.ExitCode` is read afterwards in the same block (`| Out-Null` discards it);
    `Start-Process` also needs `-Wait -PassThru`;
* `InstallHinfSection` with a mode other than 128 (the INF's folder as source, never
  reboot: the scripts say when), in the scripts or, with `--inf`, in the INF's comments.

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
    Get-ChildItem Get-CimInstance Get-Command Get-Content Get-Date Get-Item Get-ItemProperty
    Get-Partition Get-WinEvent Import-Certificate Join-Path New-Item New-Object Out-Null Remove-Item
    Remove-ItemProperty Resolve-Path Restart-Computer Select-Object Set-Acl Set-Content Set-ItemProperty
    Set-StrictMode Sort-Object Split-Path Start-Process Start-Sleep Test-Path Where-Object Write-Error
    Write-Host Write-Verbose Write-Warning
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


def text_of(source: bytes, node) -> str:
    return source[node.start_byte : node.end_byte].decode("ascii", "replace")


def enclosing(node, types: tuple[str, ...]):
    node = node.parent
    while node is not None and node.type not in types:
        node = node.parent
    return node


def enclosing_function_text(source: bytes, node) -> str:
    function = enclosing(node, ("function_statement",))
    return "" if function is None else text_of(source, function)


def is_native(source: bytes, command) -> bool:
    """`& <expression>` or a command name ending in .exe."""
    for child in command.children:
        if child.type == "command_invokation_operator" and text_of(source, child).strip() == "&":
            return True
        if child.type == "command_name" and text_of(source, child).lower().endswith(".exe"):
            return True
    return False


def command_name(source: bytes, command) -> str:
    for child in command.children:
        if child.type == "command_name":
            return text_of(source, child).lower()
    return ""


def rest_of_block(source: bytes, node) -> str:
    """The text after `node` to the end of the block (function body or script) holding it."""
    block = enclosing(node, ("script_block", "program"))
    end = block.end_byte if block is not None else len(source)
    return source[node.end_byte : end].decode("ascii", "replace")


LOCAL_CONTINUE = re.compile(r"\$ErrorActionPreference\s*=\s*'(Silently)?Continue'", re.I)
STDERR_REDIRECT = re.compile(r"^(2>&1|2>>?|\*>&1|\*>>?)$")


def check_native(source: bytes, node) -> list[str]:
    """The exit-code rules for one `command` node."""
    errors: list[str] = []
    line = line_of(node)
    name = command_name(source, node)
    function = enclosing_function_text(source, node)
    if is_native(source, node):
        redirects = [
            text_of(source, op).strip()
            for element in node.children
            if element.type == "command_elements"
            for op in element.children
            if op.type == "redirection"
        ]
        operators = [r.split()[0] for r in redirects if r]
        if any(STDERR_REDIRECT.match(op) for op in operators) and not LOCAL_CONTINUE.search(function):
            errors.append(
                f"line {line}: a native command with its standard error redirected under $ErrorActionPreference = 'Stop': "
                "Windows PowerShell 5.1 turns the first line on stderr into a terminating error before the exit code is read; use Invoke-Native"
            )
        if not LOCAL_CONTINUE.search(function) and "$lastexitcode" not in rest_of_block(source, node).lower():
            errors.append(f"line {line}: the exit code of {text_of(source, node).strip()[:40]!r} is never examined ($LASTEXITCODE); use Invoke-Native")
    if name in ("invoke-native", "start-process"):
        if name == "start-process":
            arguments = text_of(source, node).lower()
            if "-wait" not in arguments or "-passthru" not in arguments:
                errors.append(f"line {line}: Start-Process without -Wait -PassThru: its exit code cannot be examined")
        chain = node.parent
        piped = chain is not None and chain.type == "pipeline_chain" and any(c.type == "|" for c in chain.children)
        assignment = enclosing(node, ("assignment_expression",))
        target = None
        if assignment is not None and not piped and assignment.children:
            target = text_of(source, assignment.children[0]).strip()
        if target is None or not re.match(r"^\$\w+$", target):
            errors.append(f"line {line}: the result of {name} is not kept in a variable: its exit code is never examined")
        elif f"{target.lower()}.exitcode" not in rest_of_block(source, assignment).lower():
            errors.append(f"line {line}: {target}.ExitCode is never examined after {name}")
    return errors


def hinf_modes(text: str) -> list[tuple[int, str]]:
    """(line, mode) of every InstallHinfSection call with a mode in `text`."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if "InstallHinfSection" not in line:
            continue
        match = re.search(r"InstallHinfSection\b.*?(?:,\s*|\s+)'?(\d{1,3})'?(?:\s*,|\s)", line)
        if match:
            found.append((number, match.group(1)))
    return found


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
        elif node.type == "command":
            errors.extend(check_native(source, node))

    for number, mode in hinf_modes(text):
        if mode != "128":
            errors.append(f"line {number}: InstallHinfSection mode {mode}: use 128 (the INF's folder as source, never reboot; the scripts say when)")
    if re.search(r"ConfirmImpact\s*=\s*'High'", text):
        errors.append("ConfirmImpact = 'High' prompts before every change in an unattended run; use 'Medium' (document -Confirm)")

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


def check_inf_comments(inf_text: str) -> list[str]:
    """The INF's install comments must name the mode the scripts use."""
    errors = []
    modes = hinf_modes(inf_text)
    if not modes:
        errors.append("the INF's comments name no InstallHinfSection mode (they should say 128, as the scripts use)")
    for number, mode in modes:
        if mode != "128":
            errors.append(f"line {number}: the INF's comment says InstallHinfSection mode {mode}; the scripts use 128")
    return errors


def check_all(sources: dict[str, bytes], inf_text: str | None = None) -> dict[str, list[str]]:
    functions = defined_functions(sources)
    results = {name: check_script(name, source, functions) for name, source in sources.items()}
    if inf_text is not None:
        results["dumpcrypt.inx"] = check_inf_comments(inf_text)
    return results


MUTATIONS = [
    ("unclosed brace", "Install-DumpCrypt.ps1", lambda s: s.replace("try {", "try {{", 1)),
    ("unterminated string", "Install-DumpCrypt.ps1", lambda s: s.replace("'Passthrough', 'Encrypt', 'Refuse')]", "'Passthrough', 'Encrypt', 'Refuse)]", 1)),
    ("PowerShell 7 &&", "Uninstall-DumpCrypt.ps1", lambda s: s.replace("    Assert-Administrator\n", "    Assert-Administrator && Write-Host ok\n", 1)),
    ("PowerShell 7 ternary", "Get-DumpCryptStatus.ps1", lambda s: s.replace("$problems = @()", "$problems = $true ? @() : $null", 1)),
    ("PowerShell 7 null-coalescing", "Get-DumpCryptStatus.ps1", lambda s: s.replace("$problems = @()", "$problems = $null ?? @()", 1)),
    ("$name: in a string", "Test-Hibernate.ps1", lambda s: s.replace("${policy}: the filter", "$policy: the filter", 1)),
    ("misspelt helper", "Test-CrashDump.ps1", lambda s: s.replace("Get-DumpFilters\n", "Get-DumpFilter\n", 1)),
    ("non-ASCII dash", "Install-DumpCrypt.ps1", lambda s: s.replace("Installs the dumpcrypt", "Installs \u2014 the dumpcrypt", 1)),
    ("no #Requires", "Test-Hibernate.ps1", lambda s: s.replace("#Requires -Version 5.1\n", "", 1)),
    ("no SupportsShouldProcess", "Uninstall-DumpCrypt.ps1", lambda s: s.replace("SupportsShouldProcess = $true", "PositionalBinding = $true", 1)),
    ("no .EXAMPLE", "Get-DumpCryptStatus.ps1", lambda s: s.replace(".EXAMPLE", ".NOTES", 1)),
    ("no failure exit", "Test-CrashDump.ps1", lambda s: re.sub(r"(?m)^(\s*)exit 1\s*$", r"\1exit 0", s)),
    ("& exe 2>&1 under Stop", "Test-CrashDump.ps1", lambda s: s.replace("& $NotMyFaultPath /crash\n", "& $NotMyFaultPath /crash 2>&1\n", 1)),
    ("native exit code never read", "Test-CrashDump.ps1", lambda s: s.replace("$crashExit = $LASTEXITCODE", "$crashExit = 0", 1)),
    ("Invoke-Native | Out-Null", "Test-CrashDump.ps1", lambda s: s.replace("$reset = Invoke-Native 'verifier.exe' @('/reset')", "Invoke-Native 'verifier.exe' @('/reset') | Out-Null", 1)),
    ("ExitCode never examined", "Test-Hibernate.ps1", lambda s: re.sub(r"\n\s*if \(\$result\.ExitCode -ne 0\) \{\n\s*throw \(\"shutdown[^\n]*\n\s*\}", "", s, count=1)),
    ("Start-Process without -PassThru", "Install-DumpCrypt.ps1", lambda s: s.replace("-Wait -PassThru", "-Wait", 1)),
    ("stderr redirect outside Invoke-Native", "Get-DumpCryptStatus.ps1", lambda s: s.replace("$show = Invoke-Native $exe @('config', '--show')", "$show = & $exe config --show 2>&1; $x = $LASTEXITCODE", 1)),
    ("ConfirmImpact High", "Uninstall-DumpCrypt.ps1", lambda s: s.replace("ConfirmImpact = 'Medium'", "ConfirmImpact = 'High'", 1)),
    ("InstallHinfSection 132", "Install-DumpCrypt.ps1", lambda s: s.replace("$section, '128'", "$section, '132'", 1)),
]

INF_MUTATIONS = [
    ("INF comment says 132", lambda t: t.replace("DefaultInstall.NTamd64 128", "DefaultInstall.NTamd64 132", 1)),
]


def self_test(sources: dict[str, bytes], inf_text: str | None = None) -> int:
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
    total = len(MUTATIONS)
    if inf_text is not None:
        for description, mutate in INF_MUTATIONS:
            total += 1
            broken = mutate(inf_text)
            if broken == inf_text:
                print(f"self-test: mutation {description!r} did not change the INF (update the test)", file=sys.stderr)
                failures += 1
                continue
            errors = check_inf_comments(broken)
            if errors:
                print(f"ok: rejected {description}: {errors[0]}")
            else:
                print(f"FAIL: accepted a broken INF comment ({description})", file=sys.stderr)
                failures += 1
    print(f"self-test: {total - failures} of {total} broken copies rejected")
    return 1 if failures else 0


def main() -> int:
    argument_parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    argument_parser.add_argument("scripts", type=Path, nargs="+", help="the .ps1 files")
    argument_parser.add_argument("--self-test", action="store_true", help="also check that broken copies are rejected")
    argument_parser.add_argument("--inf", type=Path, help="the INF whose install comments must agree with the scripts")
    args = argument_parser.parse_args()
    if tree_sitter is None:
        print("error: the tree-sitter PowerShell parser is not installed (pip install tree-sitter tree-sitter-powershell)", file=sys.stderr)
        return 2

    sources = {path.name: path.read_bytes() for path in args.scripts}
    inf_text = args.inf.read_text(encoding="ascii") if args.inf else None
    results = check_all(sources, inf_text)
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
        return self_test(sources, inf_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
