#!/usr/bin/env python3
"""Checks inf/dumpcrypt.inx: that it parses as an INF and is the primitive driver INF of a dump filter.

Standard library only. What it checks (each failure is printed with the line it is about):

* the file is plain ASCII (an INF is ASCII or UTF-16; we keep ASCII), every line belongs to a
  section, no section appears twice, every %token% is a DIRID or is defined in [Strings];
* [Version]: Signature "$WINDOWS NT$", Class/ClassGuid of an existing system-defined class
  that agree, Provider, CatalogFile <package>.cat, DriverVer, PnpLockdown=1;
* primitive driver rules: no [Manufacturer], [DefaultInstall]/[DefaultUninstall] only
  architecture-decorated, each [DefaultUninstall.*] says LegacyUninstall=1;
* the install: copies <package>.sys to DIRID 12, creates the service <package>
  (kernel driver, start type 4, binary %12%\\<package>.sys) whose AddReg writes the
  CrashDumpPolicy and HibernationPolicy DWORD defaults 0 under HKR\\Parameters (and no Key),
  appends <package>.sys to CrashControl\\DumpFilters with 0x00010008;
* the legacy uninstall deletes exactly that string (0x00018002);
* nothing anywhere replaces or deletes the whole DumpFilters value;
* every section named by CopyFiles/AddReg/DelReg/DelFiles/AddService/DelService exists;
* the package name and driver model come from Cargo.toml ([package] name, cdylib,
  [package.metadata.wdk.driver-model] driver-type = "WDM").

`--stamped` checks a stampinf output (.inf) instead of the .inx: $ARCH$ must be gone and
DriverVer must be filled in. `--self-test` breaks the file in many ways, in memory, and fails
unless every broken copy is rejected.

Exit status: 0 all checks pass, 1 a check failed, 2 usage or I/O error.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # pragma: no cover - older Pythons
    tomllib = None

# System-defined device setup classes a non-device driver may name (devguid.h).
KNOWN_CLASSES = {
    "system": "4d36e97d-e325-11ce-bfc1-08002be10318",
    "softwarecomponent": "5c4c3332-344d-483c-8739-259e934c9cc8",
    "legacydriver": "8ecc055d-047f-11d1-a537-0000f8753ed1",
    "diskdrive": "4d36e967-e325-11ce-bfc1-08002be10318",
    "volume": "71a27cdd-812a-11d0-bec7-08002be2092f",
    "scsiadapter": "4d36e97b-e325-11ce-bfc1-08002be10318",
}
ARCHES = ("amd64", "arm64")
CRASH_CONTROL = r"system\currentcontrolset\control\crashcontrol"
FLG_ADDREG_TYPE_MULTI_SZ = 0x00010000
FLG_ADDREG_APPEND = 0x00000008
FLG_ADDREG_NOCLOBBER = 0x00000002
FLG_ADDREG_TYPE_DWORD = 0x00010001
FLG_DELREG_MULTI_SZ_DELSTRING = 0x00018002
SPSVCINST_STOPSERVICE = 0x00000200
SERVICE_KERNEL_DRIVER = 1
SERVICE_DISABLED = 4


@dataclass
class Line:
    number: int
    key: str | None  # None for a line that is not "key = value"
    fields: list[str]  # the value (or the whole line) split at commas, quotes removed
    raw: str


@dataclass
class Section:
    name: str
    number: int
    lines: list[Line] = field(default_factory=list)

    def values(self, key: str) -> list[Line]:
        return [line for line in self.lines if line.key is not None and line.key.lower() == key.lower()]


class Inf:
    """An INF file: sections (case-insensitive names) of lines, tokens resolved from [Strings]."""

    def __init__(self, text: str, arch: str | None, errors: list[str]):
        self.errors = errors
        self.sections: dict[str, Section] = {}
        self.strings: dict[str, str] = {}
        self._parse(text, arch)

    def error(self, number: int, message: str) -> None:
        self.errors.append(f"line {number}: {message}")

    @staticmethod
    def _strip_comment(line: str) -> str:
        in_quotes = False
        for index, char in enumerate(line):
            if char == '"':
                in_quotes = not in_quotes
            elif char == ";" and not in_quotes:
                return line[:index]
        return line

    @staticmethod
    def _split_fields(value: str) -> list[str]:
        fields, current, in_quotes, index = [], [], False, 0
        while index < len(value):
            char = value[index]
            if char == '"':
                if in_quotes and value[index + 1 : index + 2] == '"':  # "" inside quotes
                    current.append('"')
                    index += 1
                else:
                    in_quotes = not in_quotes
            elif char == "," and not in_quotes:
                fields.append("".join(current).strip())
                current = []
            else:
                current.append(char)
            index += 1
        fields.append("".join(current).strip())
        return fields

    def _parse(self, text: str, arch: str | None) -> None:
        logical: list[tuple[int, str]] = []
        pending, pending_number = "", 0
        for number, raw in enumerate(text.splitlines(), start=1):
            line = self._strip_comment(raw).rstrip()
            if not pending:
                pending_number = number
            if line.endswith("\\") and not line.lstrip().startswith("["):
                # A trailing backslash continues the line (paths end in "\" only inside quotes
                # or in the middle of a value).
                pending += line[:-1]
                continue
            logical.append((pending_number, pending + line))
            pending = ""
        if pending:
            self.error(pending_number, "line continuation at the end of the file")

        current: Section | None = None
        for number, line in logical:
            stripped = line.strip()
            if not stripped:
                continue
            if arch is not None:
                stripped = stripped.replace("$ARCH$", arch)
            if stripped.startswith("["):
                match = re.fullmatch(r"\[([^\]]+)\]", stripped)
                if not match:
                    self.error(number, f"malformed section header {stripped!r}")
                    current = None
                    continue
                name = match.group(1).strip()
                if name.lower() in self.sections:
                    self.error(number, f"section [{name}] appears twice")
                current = self.sections.setdefault(name.lower(), Section(name, number))
                continue
            if current is None:
                self.error(number, "a line outside any section")
                continue
            match = re.match(r'^([^=",]+?)\s*=\s*(.*)$', stripped)
            if match:
                key, value = match.group(1).strip(), match.group(2)
                current.lines.append(Line(number, key, self._split_fields(value), stripped))
            else:
                current.lines.append(Line(number, None, self._split_fields(stripped), stripped))

        strings = self.sections.get("strings")
        if strings is None:
            self.errors.append("no [Strings] section")
        else:
            for line in strings.lines:
                if line.key is None or len(line.fields) != 1:
                    self.error(line.number, "a [Strings] line must be token = \"value\"")
                    continue
                self.strings[line.key.lower()] = line.fields[0]

    def section(self, name: str) -> Section | None:
        return self.sections.get(name.lower())

    def resolve(self, value: str, number: int) -> str:
        """Replaces %token% with its [Strings] value; %N% (a DIRID) and %% stay as they are."""

        def substitute(match: re.Match[str]) -> str:
            token = match.group(1)
            if token == "" or token.isdigit():
                return match.group(0)
            if token.lower() not in self.strings:
                self.error(number, f"%{token}% is not defined in [Strings]")
                return match.group(0)
            return self.strings[token.lower()]

        return re.sub(r"%([^%]*)%", substitute, value)

    def check_tokens(self) -> None:
        for section in self.sections.values():
            if section.name.lower() == "strings":
                continue
            for line in section.lines:
                self.resolve(line.raw, line.number)
                if line.raw.count("%") % 2:
                    self.error(line.number, "unbalanced % in line")


def parse_int(text: str) -> int | None:
    try:
        return int(text.strip(), 0)
    except ValueError:
        return None


def read_cargo(cargo_toml: Path) -> tuple[str, list[str], str | None]:
    """Returns the package name, the lib crate types and the WDK driver type of Cargo.toml."""
    text = cargo_toml.read_text(encoding="utf-8")
    if tomllib is not None:
        data = tomllib.loads(text)
        package = data.get("package", {})
        name = package.get("name")
        crate_types = data.get("lib", {}).get("crate-type", [])
        driver_type = package.get("metadata", {}).get("wdk", {}).get("driver-model", {}).get("driver-type")
    else:  # pragma: no cover - a rough reading for Python < 3.11
        name = re.search(r'(?ms)^\[package\].*?^name\s*=\s*"([^"]+)"', text).group(1)
        crate_match = re.search(r'(?ms)^\[lib\].*?^crate-type\s*=\s*\[([^\]]*)\]', text)
        crate_types = re.findall(r'"([^"]+)"', crate_match.group(1)) if crate_match else []
        driver_match = re.search(r'(?ms)^\[package\.metadata\.wdk\.driver-model\].*?^driver-type\s*=\s*"([^"]+)"', text)
        driver_type = driver_match.group(1) if driver_match else None
    if not name:
        raise ValueError(f"{cargo_toml}: no [package] name")
    return name, crate_types, driver_type


def check_text(text_bytes: bytes, package: str, stamped: bool) -> list[str]:
    """All checks on one INF; returns the list of failures (empty when it passes)."""
    errors: list[str] = []
    try:
        text = text_bytes.decode("ascii")
    except UnicodeDecodeError as error:
        return [f"byte {error.start}: not ASCII; keep the INF plain ASCII"]

    arches: list[str]
    if stamped:
        if "$ARCH$" in text:
            errors.append("$ARCH$ left in a stamped INF")
        arches = sorted({match.lower() for match in re.findall(r"(?i)\[DefaultInstall\.NT(amd64|arm64)\]", text)})
        if not arches:
            errors.append("no [DefaultInstall.NTamd64] or [DefaultInstall.NTarm64] section")
            return errors
    else:
        if "[DefaultInstall.NT$ARCH$]" not in text:
            errors.append("no [DefaultInstall.NT$ARCH$] section (stampinf fills in the architecture)")
        arches = list(ARCHES)

    for arch in arches:
        inf = Inf(text, arch if not stamped else None, errors)
        prefix = f"[{arch}] " if len(arches) > 1 else ""
        before = len(errors)
        check_inf(inf, package, arch, stamped)
        inf.check_tokens()
        errors[before:] = [prefix + message for message in errors[before:]]
    # The same message for each architecture once is enough.
    return list(dict.fromkeys(errors))


def check_inf(inf: Inf, package: str, arch: str, stamped: bool) -> None:
    fail = inf.errors.append
    driver_file = f"{package}.sys".lower()

    # [Version]
    version = inf.section("Version")
    if version is None:
        fail("no [Version] section")
        return

    def one(section: Section, key: str) -> Line | None:
        lines = section.values(key)
        if len(lines) != 1:
            fail(f"[{section.name}] must have exactly one {key}= (has {len(lines)})")
            return None
        return lines[0]

    signature = one(version, "Signature")
    if signature and signature.fields[0].lower() != "$windows nt$":
        inf.error(signature.number, 'Signature must be "$WINDOWS NT$"')
    class_line, guid_line = one(version, "Class"), one(version, "ClassGuid")
    if class_line and guid_line:
        class_name = inf.resolve(class_line.fields[0], class_line.number).lower()
        guid = guid_line.fields[0].lower()
        if not re.fullmatch(r"\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}", guid):
            inf.error(guid_line.number, f"ClassGuid {guid_line.fields[0]!r} is not a {{GUID}}")
        elif class_name not in KNOWN_CLASSES:
            inf.error(class_line.number, f"Class {class_name!r} is not a known system-defined class")
        elif KNOWN_CLASSES[class_name] != guid.strip("{}"):
            inf.error(guid_line.number, f"ClassGuid is not the GUID of class {class_name!r}")
    provider = one(version, "Provider")
    if provider and not inf.resolve(provider.fields[0], provider.number).strip():
        inf.error(provider.number, "Provider is empty")
    catalog = one(version, "CatalogFile")
    if catalog and catalog.fields[0].lower() != f"{package}.cat".lower():
        inf.error(catalog.number, f"CatalogFile must be {package}.cat")
    driver_ver = one(version, "DriverVer")
    if driver_ver and stamped:
        if not re.fullmatch(r"\d{2}/\d{2}/\d{4}", driver_ver.fields[0]) or len(driver_ver.fields) < 2 or not re.fullmatch(
            r"\d+\.\d+\.\d+\.\d+", driver_ver.fields[1]
        ):
            inf.error(driver_ver.number, "DriverVer is not stamped as mm/dd/yyyy,w.x.y.z")
    lockdown = one(version, "PnpLockdown")
    if lockdown and lockdown.fields[0] != "1":
        inf.error(lockdown.number, "PnpLockdown must be 1")

    # Primitive driver rules.
    if inf.section("Manufacturer") is not None:
        fail("a primitive driver INF has no [Manufacturer] section")
    for name in inf.sections:
        for base in ("defaultinstall", "defaultuninstall"):
            if name == base or name.startswith(base + ".") and not re.match(rf"{base}\.nt(amd64|arm64|x86|arm)(\.|$)", name):
                proper = "DefaultInstall" if base == "defaultinstall" else "DefaultUninstall"
                fail(f"[{inf.sections[name].name}] is not architecture-decorated (use [{proper}.NT$ARCH$...])")

    install = inf.section(f"DefaultInstall.NT{arch}")
    services = inf.section(f"DefaultInstall.NT{arch}.Services")
    uninstall = inf.section(f"DefaultUninstall.NT{arch}")
    uninstall_services = inf.section(f"DefaultUninstall.NT{arch}.Services")
    if install is None:
        fail(f"no [DefaultInstall.NT{arch}] section")
        return

    def referenced(section: Section, key: str) -> list[Section]:
        found = []
        for line in section.values(key):
            for name in line.fields:
                if not name or name.startswith("@"):
                    continue
                target = inf.section(name)
                if target is None:
                    inf.error(line.number, f"{key}= names [{name}], which does not exist")
                else:
                    found.append(target)
        return found

    # Files: <package>.sys to DIRID 12.
    copy_sections = referenced(install, "CopyFiles")
    direct_copies = [name[1:].lower() for line in install.values("CopyFiles") for name in line.fields if name.startswith("@")]
    copied = {line.fields[0].lower() for section in copy_sections for line in section.lines} | set(direct_copies)
    if driver_file not in copied:
        fail(f"[{install.name}] does not copy {driver_file}")
    destination_dirs = inf.section("DestinationDirs")
    if destination_dirs is None:
        fail("no [DestinationDirs] section")
    else:
        default_dir = destination_dirs.values("DefaultDestDir")
        for section in copy_sections:
            lines = destination_dirs.values(section.name) or default_dir
            if not lines:
                fail(f"no destination directory for [{section.name}]")
            elif lines[0].fields[0] != "12" or len(lines[0].fields) > 1 and lines[0].fields[1]:
                inf.error(lines[0].number, f"[{section.name}] must go to DIRID 12 (System32\\drivers), where the dump stack loads filters from")
    source_files = inf.section("SourceDisksFiles") or inf.section(f"SourceDisksFiles.{arch}")
    if source_files is None or driver_file not in {(line.key or line.fields[0]).lower() for line in source_files.lines}:
        fail(f"{driver_file} is not listed in [SourceDisksFiles]")
    if inf.section("SourceDisksNames") is None and inf.section(f"SourceDisksNames.{arch}") is None:
        fail("no [SourceDisksNames] section")

    # DumpFilters: appended, never replaced or deleted whole.
    def dump_filter_lines(kind: str) -> list[tuple[Line, int | None, str]]:
        out = []
        for section in inf.sections.values():
            for line in section.lines:
                fields = [inf.resolve(value, line.number) for value in line.fields]
                if line.key is None and len(fields) >= 3 and fields[0].lower() == "hklm" and fields[1].lower() == CRASH_CONTROL and fields[2].lower() == "dumpfilters":
                    out.append((line, parse_int(fields[3]) if len(fields) > 3 and fields[3] else None, fields[4] if len(fields) > 4 else ""))
        return out

    add_sections = referenced(install, "AddReg")
    appends = 0
    for line, flags, value in dump_filter_lines("any"):
        owner = next(section for section in inf.sections.values() if line in section.lines)
        if owner in add_sections:
            if flags != FLG_ADDREG_TYPE_MULTI_SZ | FLG_ADDREG_APPEND:
                inf.error(line.number, "DumpFilters must be written with FLG_ADDREG_TYPE_MULTI_SZ | FLG_ADDREG_APPEND (0x00010008), which keeps the other filters")
            elif value.lower() != driver_file:
                inf.error(line.number, f"DumpFilters must get {driver_file}, not {value!r}")
            else:
                appends += 1
        elif flags != FLG_DELREG_MULTI_SZ_DELSTRING and not (flags is not None and flags & FLG_ADDREG_APPEND and flags & FLG_ADDREG_TYPE_MULTI_SZ == FLG_ADDREG_TYPE_MULTI_SZ):
            inf.error(line.number, "this line would replace or delete the whole DumpFilters value (other filters, e.g. dumpfve.sys, would be lost)")
    if appends != 1:
        fail(f"[{install.name}] must append {driver_file} to CrashControl\\DumpFilters exactly once (found {appends})")

    # The service that owns Parameters.
    service_section = None
    if services is None:
        fail(f"no [DefaultInstall.NT{arch}.Services] section")
    else:
        add_service = services.values("AddService")
        if len(add_service) != 1:
            fail(f"[{services.name}] must have exactly one AddService")
        else:
            line = add_service[0]
            name = inf.resolve(line.fields[0], line.number)
            if name.lower() != package.lower():
                inf.error(line.number, f"the service must be named {package!r} (Cargo.toml), not {name!r}")
            if len(line.fields) < 3 or not line.fields[2]:
                inf.error(line.number, "AddService needs a service-install section")
            else:
                service_section = inf.section(line.fields[2])
                if service_section is None:
                    inf.error(line.number, f"AddService names [{line.fields[2]}], which does not exist")
    if service_section is not None:
        expected = {"ServiceType": SERVICE_KERNEL_DRIVER, "StartType": SERVICE_DISABLED}
        for key, want in expected.items():
            lines = service_section.values(key)
            if len(lines) != 1 or parse_int(lines[0].fields[0]) != want:
                fail(f"[{service_section.name}] must set {key} = {want}")
        if len(service_section.values("ErrorControl")) != 1:
            fail(f"[{service_section.name}] must set ErrorControl")
        binary = service_section.values("ServiceBinary")
        if len(binary) != 1 or inf.resolve(binary[0].fields[0], binary[0].number).lower() != f"%12%\\{driver_file}":
            fail(f"[{service_section.name}] must set ServiceBinary = %12%\\{driver_file}")
        parameters: dict[str, tuple[Line, int | None, str]] = {}
        for section in referenced(service_section, "AddReg"):
            for line in section.lines:
                fields = [inf.resolve(value, line.number) for value in line.fields]
                if line.key is None and len(fields) >= 3 and fields[0].lower() == "hkr" and fields[1].lower() == "parameters":
                    parameters[fields[2].lower()] = (line, parse_int(fields[3]) if len(fields) > 3 else None, fields[4] if len(fields) > 4 else "")
        for value_name in ("CrashDumpPolicy", "HibernationPolicy"):
            entry = parameters.get(value_name.lower())
            if entry is None:
                fail(f"the service's AddReg must write HKR,Parameters,{value_name}")
                continue
            line, flags, value = entry
            if flags is None or flags & ~FLG_ADDREG_NOCLOBBER != FLG_ADDREG_TYPE_DWORD:
                inf.error(line.number, f"{value_name} must be a DWORD (0x00010001, optionally | 0x2 no-clobber)")
            if parse_int(value) != 0:
                inf.error(line.number, f"{value_name} must default to 0 (passthrough)")
        if "key" in parameters:
            inf.error(parameters["key"][0].number, "the INF must never carry a Key value")

    # The legacy uninstall.
    if uninstall is None:
        fail(f"no [DefaultUninstall.NT{arch}] section (LegacyUninstall=1, for systems before 1903)")
    else:
        legacy = uninstall.values("LegacyUninstall")
        if len(legacy) != 1 or legacy[0].fields[0] != "1":
            fail(f"[{uninstall.name}] must say LegacyUninstall=1")
        deletes = 0
        del_sections = referenced(uninstall, "DelReg")
        for line, flags, value in dump_filter_lines("any"):
            owner = next(section for section in inf.sections.values() if line in section.lines)
            if owner in del_sections:
                if flags != FLG_DELREG_MULTI_SZ_DELSTRING:
                    inf.error(line.number, "DumpFilters must be cleaned with FLG_DELREG_MULTI_SZ_DELSTRING (0x00018002)")
                elif value.lower() != driver_file:
                    inf.error(line.number, f"the uninstall must delete {driver_file} from DumpFilters, not {value!r}")
                else:
                    deletes += 1
        if deletes != 1:
            fail(f"[{uninstall.name}] must delete {driver_file} from DumpFilters exactly once (found {deletes})")
        referenced(uninstall, "DelFiles")
    if uninstall_services is not None:
        for line in uninstall_services.values("DelService"):
            if inf.resolve(line.fields[0], line.number).lower() != package.lower():
                inf.error(line.number, f"DelService must name the service {package!r}")


# Each mutation: a description, and a function from the good text to a broken one.
MUTATIONS = [
    ("Manufacturer section added", lambda t: t + "\n[Manufacturer]\n%ProviderName% = Models,NT$ARCH$\n"),
    ("undecorated DefaultInstall", lambda t: t.replace("[DefaultInstall.NT$ARCH$]", "[DefaultInstall]", 1)),
    ("PnpLockdown 0", lambda t: re.sub(r"(?m)^PnpLockdown\s*=\s*1", "PnpLockdown = 0", t)),
    ("no CatalogFile", lambda t: re.sub(r"(?m)^CatalogFile.*$", "", t)),
    ("no DriverVer", lambda t: re.sub(r"(?m)^DriverVer.*$", "", t)),
    ("wrong ClassGuid", lambda t: t.replace("4d36e97d-e325-11ce-bfc1-08002be10318", "4d36e97d-e325-11ce-bfc1-08002be10319")),
    ("no Provider", lambda t: re.sub(r"(?m)^Provider\s*=.*$", "", t)),
    ("DumpFilters replaced, not appended", lambda t: t.replace(",DumpFilters,0x00010008,", ",DumpFilters,0x00010000,", 1)),
    ("uninstall deletes the whole DumpFilters value", lambda t: t.replace(",DumpFilters,0x00018002,", ",DumpFilters,0x00000004,", 1)),
    ("no LegacyUninstall", lambda t: re.sub(r"(?m)^LegacyUninstall.*$", "", t)),
    ("copied to the driver store", lambda t: re.sub(r"(?m)^(dumpcrypt\.CopyFiles\s*=\s*)12", r"\g<1>13", t)),
    ("default destination wrong too", lambda t: re.sub(r"(?m)^(DefaultDestDir\s*=\s*)12", r"\g<1>11", re.sub(r"(?m)^dumpcrypt\.CopyFiles\s*=\s*12\s*$", "", t))),
    ("undefined string token", lambda t: t.replace("%ServiceDisplayName%", "%NoSuchString%", 1)),
    ("service renamed", lambda t: re.sub(r'(?m)^ServiceName\s*=.*$', 'ServiceName        = "dumpcrypt2"', t)),
    ("driver file renamed", lambda t: re.sub(r'(?m)^DriverFile\s*=.*$', 'DriverFile         = "other.sys"', t)),
    ("service started at boot", lambda t: re.sub(r"(?m)^StartType\s*=\s*4", "StartType     = 0", t)),
    ("user-mode service type", lambda t: re.sub(r"(?m)^ServiceType\s*=\s*1", "ServiceType   = 16", t)),
    ("CrashDumpPolicy default 1", lambda t: t.replace("CrashDumpPolicy,0x00010003,0", "CrashDumpPolicy,0x00010003,1")),
    ("HibernationPolicy missing", lambda t: re.sub(r"(?m)^HKR,Parameters,HibernationPolicy.*$", "", t)),
    ("key in the INF", lambda t: t.replace("[dumpcrypt.AddReg.Parameters]\n", "[dumpcrypt.AddReg.Parameters]\nHKR,Parameters,Key,0x00000001,00,01\n", 1)),
    ("missing AddReg section", lambda t: t.replace("[dumpcrypt.AddReg.DumpFilters]", "[dumpcrypt.AddReg.Renamed]", 1)),
    ("duplicate section", lambda t: t + "\n[Version]\nSignature = \"$WINDOWS NT$\"\n"),
    ("non-ASCII character", lambda t: t.replace("dumpcrypt project", "dumpcrypt proj\u00e9ct", 1)),
    ("line outside any section", lambda t: "stray line\n" + t),
    ("second DumpFilters writer elsewhere", lambda t: t.replace("[dumpcrypt.AddReg.Parameters]\n", "[dumpcrypt.AddReg.Parameters]\nHKLM,\"SYSTEM\\CurrentControlSet\\Control\\CrashControl\",DumpFilters,0x00010000,dumpcrypt.sys\n", 1)),
]


def self_test(good: str, package: str) -> int:
    failures = 0
    if check_text(good.encode("ascii"), package, stamped=False):
        print("self-test: the unmodified INF does not pass", file=sys.stderr)
        return 1
    for description, mutate in MUTATIONS:
        broken = mutate(good)
        if broken == good:
            print(f"self-test: mutation {description!r} did not change the file (update the test)", file=sys.stderr)
            failures += 1
            continue
        errors = check_text(broken.encode("utf-8"), package, stamped=False)
        if errors:
            print(f"ok: rejected {description}: {errors[0]}")
        else:
            print(f"FAIL: accepted a broken INF ({description})", file=sys.stderr)
            failures += 1
    print(f"self-test: {len(MUTATIONS) - failures} of {len(MUTATIONS)} broken copies rejected")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("inf", type=Path, help="the .inx (or, with --stamped, the stamped .inf)")
    parser.add_argument("--cargo-toml", type=Path, required=True, help="the driver package's Cargo.toml")
    parser.add_argument("--stamped", action="store_true", help="check a stampinf output")
    parser.add_argument("--self-test", action="store_true", help="also check that broken copies are rejected")
    args = parser.parse_args()

    try:
        package, crate_types, driver_type = read_cargo(args.cargo_toml)
        data = args.inf.read_bytes()
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    errors = []
    if "cdylib" not in crate_types:
        errors.append(f"{args.cargo_toml}: [lib] crate-type has no cdylib (the driver image)")
    if driver_type != "WDM":
        errors.append(f"{args.cargo_toml}: [package.metadata.wdk.driver-model] driver-type must be \"WDM\", is {driver_type!r}")
    expected_name = f"{package}.inf" if args.stamped else f"{package}.inx"
    if args.inf.name.lower() != expected_name.lower():
        errors.append(f"{args.inf}: must be named {expected_name} (wdk-build and stampinf use the package name)")
    errors += check_text(data, package, args.stamped)
    for message in errors:
        print(f"{args.inf}: {message}", file=sys.stderr)
    if errors:
        return 1
    print(f"{args.inf}: ok (package {package!r}, service {package!r}, {package}.sys)")
    if args.self_test:
        return self_test(data.decode("ascii"), package)
    return 0


if __name__ == "__main__":
    sys.exit(main())
