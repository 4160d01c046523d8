#!/usr/bin/env python3
"""Translates src/kernel/ntoskrnl.rs into C that mingw-w64's DDK headers must accept.

Standard library only; scripts/check-ntoskrnl.sh compiles the output with
x86_64-w64-mingw32-gcc. The C includes <ntddk.h> (which includes <wdm.h>) and <ntdddisk.h>,
then, for what ntoskrnl.rs declares (and for the names it imports from src/abi.rs):

* each routine of the `unsafe extern "system"` block is redeclared with the C types its Rust
  parameter and return types name, so that a different parameter count, parameter type or
  return type is gcc's "conflicting types"; the header must declare the routine (a
  `__typeof__` of it comes first), and must mark it noreturn exactly when ours returns `!`;
* each `#[repr(C)]` structure is translated field by field into a C structure of our own
  layout, whose size and alignment must equal the header's type's, and each field's offset and
  size the header's field of the same name; a field the header does not name (NOT_IN_HEADERS)
  must lie in the header's padding or past its last named field, within its size;
* each `pub type` alias must have the size and alignment of the C type of the same name, and
  its signedness, or (when its doc names a C `enum _TAG` or `union _TAG`) be that type;
* each `pub const`, and src/abi.rs's STATUS_* and MDL_* constants, must have the value of the
  C constant of the same name, or of the one its doc comment starts with (`ENUM::Name`).

How a Rust type in a signature maps to C, one way only: u8 UCHAR, i8 CHAR, u16 USHORT,
i16 SHORT, u32 ULONG, i32 LONG, u64 ULONGLONG, i64 LONGLONG, usize ULONG_PTR, isize LONG_PTR,
c_void VOID, `*mut T` `T *`, `*const T` `const T *`, any other name the C type of that name
(our aliases and structures are named after the header's types), `!` a noreturn VOID.

Usage: check_ntoskrnl.py [--repo DIR] --out DIR

Writes DIR/check.c, which must compile, and DIR/must-fail/*.c with DIR/must-fail.tsv (file,
what gcc must say, what it is): the self-test's broken variants (the Rust edited, in memory,
in ways the check must reject) and one probe per NOT_IN_HEADERS entry that the headers still
lack it. Prints a summary. Exit status: 0 written, 2 the Rust holds something this script
cannot translate (it says what).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

NTOSKRNL = "src/kernel/ntoskrnl.rs"
ABI = "src/abi.rs"
# The constants of src/abi.rs that are checked too (besides the names ntoskrnl.rs imports).
ABI_CONSTANT_PREFIXES = ("STATUS_", "MDL_")


@dataclass
class Absent:
    """Something mingw-w64's headers do not declare: why, and what is checked instead."""

    reason: str
    # A routine: a sibling the headers do declare, whose parameters equal ours except those
    # given here (index: the sibling's C type), per Microsoft's documentation.
    sibling: str = ""
    sibling_params: dict[int, str] = field(default_factory=dict)


NOT_IN_HEADERS: dict[str, Absent] = {
    "MmAllocateContiguousNodeMemory": Absent(
        reason="mingw-w64's wdm.h and ntddk.h do not declare it",
        sibling="MmAllocateContiguousMemorySpecifyCacheNode",
        # Microsoft documents the same parameters but the fifth: ULONG Protect there,
        # MEMORY_CACHING_TYPE CacheType here.
        sibling_params={4: "MEMORY_CACHING_TYPE"},
    ),
    "MDL.AllocationProcessorNumber": Absent(
        reason="mingw-w64's MDL does not name it (it is in ntoskrnl's public symbols); "
        "checked to lie in the header's padding after MdlFlags"
    ),
    "MDL.Reserved": Absent(
        reason="as AllocationProcessorNumber; checked to lie in the header's padding before Process"
    ),
    "STATUS_BAD_CONFIGURATION": Absent(reason="mingw-w64's ntstatus.h does not define it"),
    "PARTITION_INFORMATION_EX.Rest": Absent(
        reason="our opaque tail (PartitionLength onwards): checked to lie after "
        "StartingOffset and within the header's size"
    ),
}


# The self-test: each edit, made in memory, must make gcc fail with the given text.
# (file, old text, new text, what gcc must print, what the edit breaks)
MUTANTS: list[tuple[str, str, str, str, str]] = [
    (NTOSKRNL, "pub fn ExFreePoolWithTag(p: *mut c_void, tag: u32);",
     "pub fn ExFreePoolWithTag(p: *mut c_void, tag: u64);",
     "conflicting types for 'ExFreePoolWithTag'", "a parameter's type"),
    (NTOSKRNL, "pub fn KeInitializeEvent(event: *mut KEVENT, event_type: EVENT_TYPE, state: u8);",
     "pub fn KeInitializeEvent(event: *mut KEVENT, event_type: u32, state: u8);",
     "conflicting types for 'KeInitializeEvent'", "an enum parameter as a plain u32"),
    (NTOSKRNL, "pub fn ZwClose(handle: HANDLE) -> NTSTATUS;",
     "pub fn ZwClose(handle: HANDLE, extra: u32) -> NTSTATUS;",
     "conflicting types for 'ZwClose'", "the parameter count"),
    (NTOSKRNL, "pub fn ZwClose(handle: HANDLE) -> NTSTATUS;",
     "pub fn ZwClose(handle: HANDLE);",
     "conflicting types for 'ZwClose'", "the return type"),
    (NTOSKRNL, "        attributes: *mut OBJECT_ATTRIBUTES,\n    ) -> NTSTATUS;",
     "        attributes: *const OBJECT_ATTRIBUTES,\n    ) -> NTSTATUS;",
     "conflicting types for 'ZwOpenKey'", "a pointer's constness"),
    (NTOSKRNL, "pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;",
     "pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize);",
     "KeBugCheckEx: the header declares it noreturn", "noreturn"),
    (NTOSKRNL, "    pub fn IoFreeMdl(mdl: *mut MDL);",
     "    pub fn IoFreeMdl(mdl: *mut MDL);\n    pub fn IoFreeMdlTwice(mdl: *mut MDL);",
     "'IoFreeMdlTwice' undeclared", "a routine the headers do not declare"),
    (ABI, "    pub Size: i16,\n    pub MdlFlags: i16,",
     "    pub Size: i32,\n    pub MdlFlags: i16,",
     "MDL.MdlFlags: offset", "a field's offset (abi.rs)"),
    (NTOSKRNL, "    pub Attributes: u32,",
     "    pub Attributes: u64,",
     "OBJECT_ATTRIBUTES.Attributes: size", "a field's size within padding"),
    (NTOSKRNL, "    pub Rest: [u8; 0x80],",
     "    pub Rest: [u8; 0x88],",
     "PARTITION_INFORMATION_EX: size", "a structure's size"),
    (NTOSKRNL, "#[repr(C, align(8))]\npub struct KEVENT {",
     "#[repr(C)]\npub struct KEVENT {",
     "KEVENT: alignment", "a structure's alignment"),
    (NTOSKRNL, "pub const KEY_READ: ACCESS_MASK = 0x0002_0019;",
     "pub const KEY_READ: ACCESS_MASK = 0x0002_0018;",
     "KEY_READ: value", "a constant's value"),
    (NTOSKRNL, "pub const NOTIFICATION_EVENT: EVENT_TYPE = 0;",
     "pub const NOTIFICATION_EVENT: EVENT_TYPE = 1;",
     "NOTIFICATION_EVENT (NotificationEvent): value", "an enumerator's value"),
    (ABI, "pub const STATUS_ACCESS_DENIED: NTSTATUS = 0xC000_0022_u32 as i32;",
     "pub const STATUS_ACCESS_DENIED: NTSTATUS = 0xC000_0023_u32 as i32;",
     "STATUS_ACCESS_DENIED: value", "a status value (abi.rs)"),
    (NTOSKRNL, "pub type SIZE_T = u64;",
     "pub type SIZE_T = u32;",
     "SIZE_T: size", "an alias's size"),
    (NTOSKRNL, "pub fn ZwFlushKey(key: HANDLE) -> NTSTATUS;",
     "pub fn ZwFlushKey(key: *mut HANDLE) -> NTSTATUS;",
     "conflicting types for 'ZwFlushKey'", "a registry routine's parameter (sealed keys)"),
    (NTOSKRNL, "    pub NameLength: u32,\n    pub Name: [u16; 1],",
     "    pub NameLength: u16,\n    pub Name: [u16; 1],",
     "KEY_VALUE_BASIC_INFORMATION.Name: offset", "KEY_VALUE_BASIC_INFORMATION's layout"),
    (NTOSKRNL, "pub const SHARED_SYSTEM_TIME: usize = 0xFFFF_F780_0000_0014;",
     "pub const SHARED_SYSTEM_TIME: usize = 0xFFFF_F780_0000_0008;",
     "SHARED_SYSTEM_TIME (SharedSystemTime): value", "KUSER_SHARED_DATA.SystemTime's address"),
    (NTOSKRNL, "pub type KPROCESSOR_MODE = i8;",
     "pub type KPROCESSOR_MODE = u8;",
     "KPROCESSOR_MODE: signedness", "an alias's signedness"),
]


class RustError(Exception):
    """The Rust holds something this script does not translate."""


# --- Reading the Rust -----------------------------------------------------------------------

TOKEN = re.compile(
    r"""(?P<doc>///[^\n]*)
      | (?P<comment>//[^\n]*|/\*.*?\*/)
      | (?P<ws>\s+)
      | (?P<str>"(?:\\.|[^"\\])*")
      | (?P<num>\d\w*)
      | (?P<ident>[A-Za-z_]\w*)
      | (?P<punct>::|->|\#!\[|\#\[|[{}()\[\];:,=*!<>&|+.~#'?/-])""",
    re.S | re.X,
)


@dataclass
class Tok:
    kind: str
    text: str
    line: int


def tokenize(text: str, path: str) -> list[Tok]:
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise RustError(f"{path}:{line}: cannot read {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        if kind in ("doc", "num", "ident", "punct", "str"):
            tokens.append(Tok(kind, m.group(), line))
        line += m.group().count("\n")
        pos = m.end()
    return tokens


OPEN = {"(": ")", "[": "]", "{": "}", "#[": "]", "#![": "]"}


def close_of(tokens: list[Tok], i: int) -> int:
    """Index of the token closing the group opened at i."""
    depth = 0
    for j in range(i, len(tokens)):
        t = tokens[j].text
        if t in OPEN:
            depth += 1
        elif t in (")", "]", "}"):
            depth -= 1
            if depth == 0:
                return j
    raise RustError(f"line {tokens[i].line}: unbalanced {tokens[i].text}")


# Types: ("name", n) | ("ptr", mutable, inner) | ("array", inner, length) | ("never",)
# | ("other", text): a generic type, which no check translates
def parse_type(tokens: list[Tok], i: int) -> tuple[tuple, int]:
    t = tokens[i].text
    if t == "*":
        mutable = tokens[i + 1].text == "mut"
        if tokens[i + 1].text not in ("mut", "const"):
            raise RustError(f"line {tokens[i].line}: a raw pointer without mut or const")
        inner, j = parse_type(tokens, i + 2)
        return ("ptr", mutable, inner), j
    if t == "[":
        inner, j = parse_type(tokens, i + 1)
        if tokens[j].text != ";":
            raise RustError(f"line {tokens[i].line}: only arrays [T; N] are translated")
        length = rust_integer(tokens[j + 1].text)[0]
        if tokens[j + 2].text != "]":
            raise RustError(f"line {tokens[i].line}: an array length must be a literal")
        return ("array", inner, length), j + 3
    if t == "!":
        return ("never",), i + 1
    if tokens[i].kind == "ident":
        j = i
        while j + 2 < len(tokens) and tokens[j + 1].text == "::":
            j += 2
        if tokens[j + 1].text == "<":  # kept as text: an error only where it is translated
            depth, k = 0, j + 1
            while True:
                depth += {"<": 1, ">": -1}.get(tokens[k].text, 0)
                k += 1
                if depth == 0:
                    return ("other", " ".join(t.text for t in tokens[i:k])), k
        return ("name", tokens[j].text), j + 1
    raise RustError(f"line {tokens[i].line}: cannot read a type at {t!r}")


def type_text(ty: tuple) -> str:
    if ty[0] == "name":
        return ty[1]
    if ty[0] == "ptr":
        return ("*mut " if ty[1] else "*const ") + type_text(ty[2])
    if ty[0] == "array":
        return f"[{type_text(ty[1])}; {ty[2]:#x}]"
    if ty[0] == "other":
        return ty[1]
    return "!"


INTEGERS = {  # Rust primitive: (bytes, signed)
    "u8": (1, False), "i8": (1, True), "u16": (2, False), "i16": (2, True),
    "u32": (4, False), "i32": (4, True), "u64": (8, False), "i64": (8, True),
    "usize": (8, False), "isize": (8, True),
}


def rust_integer(text: str) -> tuple[int, str]:
    """The value and suffix of a Rust integer literal."""
    m = re.fullmatch(r"(0x[0-9a-fA-F_]+?|0o[0-7_]+?|0b[01_]+?|[0-9][0-9_]*?)_?([ui](?:8|16|32|64|size))?", text)
    if not m:
        raise RustError(f"not an integer literal: {text}")
    return int(m.group(1).replace("_", ""), 0), m.group(2) or ""


def wrap(value: int, prim: str) -> int:
    bits = INTEGERS[prim][0] * 8
    value &= (1 << bits) - 1
    if INTEGERS[prim][1] and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


@dataclass
class Item:
    path: str
    line: int
    docs: list[str]


@dataclass
class Alias(Item):
    name: str
    ty: tuple


@dataclass
class Struct(Item):
    name: str
    repr: list[str]
    fields: list[tuple[str, tuple, int]]

    @property
    def opaque(self) -> bool:
        return all(name.startswith("_") for name, _, _ in self.fields)

    @property
    def align(self) -> int | None:
        for part in self.repr:
            m = re.fullmatch(r"align\((\d+)\)", part)
            if m:
                return int(m.group(1))
        return None


@dataclass
class Const(Item):
    name: str
    ty: tuple
    expr: list[Tok]


@dataclass
class Routine(Item):
    name: str
    params: list[tuple[str, tuple]]
    ret: tuple | None


@dataclass
class Source:
    aliases: dict[str, Alias] = field(default_factory=dict)
    structs: dict[str, Struct] = field(default_factory=dict)
    consts: dict[str, Const] = field(default_factory=dict)
    routines: list[Routine] = field(default_factory=list)
    abi_imports: list[str] = field(default_factory=list)


def read_source(text: str, path: str) -> Source:
    tokens = tokenize(text, path)
    src = Source()
    i, docs, attrs = 0, [], []
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "doc":
            docs.append(tok.text[3:].strip())
            i += 1
            continue
        if tok.text in ("#[", "#!["):
            j = close_of(tokens, i)
            if tok.text == "#[":
                attrs.append(" ".join(t.text for t in tokens[i + 1:j]))
            i = j + 1
            continue
        # One item: up to a `;` at depth 0, or the `}` closing its block unless it has an `=`.
        start, j, has_eq = i, i, False
        while True:
            t = tokens[j].text
            if t == "=":
                has_eq = True
            if t == ";":
                break
            if t in OPEN:
                j = close_of(tokens, j)
                if t == "{" and not has_eq:
                    break
            j += 1
        read_item(tokens[start:j + 1], path, docs, attrs, src)
        docs, attrs, i = [], [], j + 1
    return src


def read_item(toks: list[Tok], path: str, docs: list[str], attrs: list[str], src: Source) -> None:
    words = [t.text for t in toks]
    k = 1 if words[0] == "pub" else 0
    line = toks[0].line
    if words[0] == "use" and words[1:5] == ["crate", "::", "abi", "::"]:
        src.abi_imports += [t.text for t in toks[5:] if t.kind == "ident"]
    elif words[k] == "type":
        ty, _ = parse_type(toks, k + 3) if words[k + 3] not in ("unsafe", "extern", "fn", "Option") else (None, 0)
        if ty is not None:
            src.aliases[words[k + 1]] = Alias(path, line, docs, words[k + 1], ty)
    elif words[k] == "struct":
        reprs = [a for a in attrs if a.startswith("repr")]
        repr_ = [p.strip().replace(" ", "") for p in re.sub(r"^repr \((.*)\)$", r"\1", reprs[0]).split(" , ")] if reprs else []
        fields, j = [], k + 3
        while toks[j].text != "}":
            while toks[j].kind == "doc" or toks[j].text == "#[":
                j = close_of(toks, j) + 1 if toks[j].text == "#[" else j + 1
            if toks[j].text == "pub":
                j += 1
            name, fline = toks[j].text, toks[j].line
            if toks[j + 1].text != ":":
                raise RustError(f"{path}:{fline}: cannot read the fields of {words[k + 1]}")
            ty, j = parse_type(toks, j + 2)
            fields.append((name, ty, fline))
            if toks[j].text == ",":
                j += 1
        src.structs[words[k + 1]] = Struct(path, line, docs, words[k + 1], repr_, fields)
    elif words[k] == "const" and words[k + 1] != "_":
        ty, j = parse_type(toks, k + 3)
        src.consts[words[k + 1]] = Const(path, line, docs, words[k + 1], ty, toks[j + 1:-1])
    elif words[:3] == ["unsafe", "extern", '"system"']:
        read_routines(toks[4:-1], path, src)


def read_routines(toks: list[Tok], path: str, src: Source) -> None:
    j, docs = 0, []
    while j < len(toks):
        if toks[j].kind == "doc":
            docs.append(toks[j].text[3:].strip())
            j += 1
            continue
        if toks[j].text == "#[":
            j = close_of(toks, j) + 1
            continue
        while toks[j].text in ("pub", "safe", "unsafe"):
            j += 1
        if toks[j].text != "fn":
            raise RustError(f"{path}:{toks[j].line}: only fns are read in the extern block")
        name, line = toks[j + 1].text, toks[j + 1].line
        end = close_of(toks, j + 2)
        params, p = [], j + 3
        while p < end:
            pname = toks[p].text
            ty, p = parse_type(toks, p + 2)
            params.append((pname, ty))
            if toks[p].text == ",":
                p += 1
        ret, p = (parse_type(toks, end + 2) if toks[end + 1].text == "->" else (None, end + 1))
        if toks[p].text != ";":
            raise RustError(f"{path}:{line}: {name}: expected `;`")
        src.routines.append(Routine(path, line, docs, name, params, ret))
        j, docs = p + 1, []


# --- Writing the C ----------------------------------------------------------------------------

SIGNATURE_C = {
    "u8": "UCHAR", "i8": "CHAR", "u16": "USHORT", "i16": "SHORT", "u32": "ULONG", "i32": "LONG",
    "u64": "ULONGLONG", "i64": "LONGLONG", "usize": "ULONG_PTR", "isize": "LONG_PTR",
    "c_void": "VOID",
}
LAYOUT_C = {
    "u8": "unsigned char", "i8": "signed char", "u16": "unsigned short", "i16": "short",
    "u32": "unsigned int", "i32": "int", "u64": "unsigned long long", "i64": "long long",
    "usize": "unsigned long long", "isize": "long long",
}

PRELUDE = r"""/* Generated by scripts/check_ntoskrnl.py from src/kernel/ntoskrnl.rs (and src/abi.rs):
 * our declarations, which mingw-w64's DDK headers must accept. Do not edit. */
#define _WIN32_WINNT 0x0A00
#include <ntddk.h>
#include <ntdddisk.h>
#include <stddef.h>

/* The header declares CALLBACK_OBJECT only by its tag (`struct _CALLBACK_OBJECT`, pointed to
 * by PCALLBACK_OBJECT); our opaque type of that name stands for it. */
typedef struct _CALLBACK_OBJECT CALLBACK_OBJECT;

/* 1 if T is a signed integer type, 0 an unsigned one (or an enum: gcc gives them unsigned int
 * when no enumerator is negative), 2 anything else. */
#define DC_SIGNED(T) _Generic(*(T *)0, signed char: 1, short: 1, int: 1, long: 1, long long: 1, \
    char: ((char)-1 < 0), unsigned char: 0, unsigned short: 0, unsigned int: 0, \
    unsigned long: 0, unsigned long long: 0, default: 2)
"""


def c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Writer:
    def __init__(self, sources: dict[str, Source]):
        self.nt = sources[NTOSKRNL]
        abi = sources[ABI]
        self.aliases: dict[str, Alias] = dict(self.nt.aliases)
        self.structs: dict[str, Struct] = dict(self.nt.structs)
        for name in self.nt.abi_imports:
            if name in abi.aliases:
                self.aliases[name] = abi.aliases[name]
            elif name in abi.structs:
                self.structs[name] = abi.structs[name]
            elif name not in abi.consts:
                raise RustError(f"{NTOSKRNL} imports {name} from {ABI}, which does not define it")
        self.consts = list(self.nt.consts.values()) + [
            c for c in abi.consts.values() if c.name.startswith(ABI_CONSTANT_PREFIXES)
        ]
        self.out: list[str] = [PRELUDE]
        self.summary: dict[str, list[str]] = {"routines": [], "structures": [], "constants": [], "aliases": []}
        self.unchecked: list[str] = []
        self.used_absent: set[str] = set()

    def emit(self, item: Item, *lines: str) -> None:
        self.out.append(f'#line {item.line} "{item.path}"')
        self.out.extend(lines)

    def assertion(self, item: Item, condition: str, message: str) -> None:
        self.emit(item, f"_Static_assert({condition}, {c_string(message)});")

    # Types.
    def resolve(self, ty: tuple) -> tuple:
        """An alias's Rust type, followed to a primitive, pointer, array or structure."""
        seen = set()
        while ty[0] == "name" and ty[1] in self.aliases:
            if ty[1] in seen:
                raise RustError(f"alias loop at {ty[1]}")
            seen.add(ty[1])
            ty = self.aliases[ty[1]].ty
        return ty

    def signature_c(self, ty: tuple, where: str) -> str:
        if ty[0] == "name":
            name = ty[1]
            if name in SIGNATURE_C:
                return SIGNATURE_C[name]
            if name in self.aliases:
                return name
            if name in self.structs:
                return name
            raise RustError(f"{where}: no C type for `{name}` (name an alias or structure after the header's type)")
        if ty[0] == "ptr":
            inner = self.signature_c(ty[2], where)
            return f"{inner} *" if ty[1] else f"const {inner} *"
        raise RustError(f"{where}: `{type_text(ty)}` cannot be a parameter or return type")

    def layout_c(self, ty: tuple, name: str, where: str) -> str:
        """A C declaration of `name` with the size and alignment of our Rust type."""
        ty = self.resolve(ty)
        if ty[0] == "ptr":
            return f"void *{name}"
        if ty[0] == "array":
            return self.layout_c(ty[1], f"{name}[{ty[2]:#x}]", where)
        if ty[0] == "name" and ty[1] in LAYOUT_C:
            return f"{LAYOUT_C[ty[1]]} {name}"
        if ty[0] == "name" and ty[1] in self.structs and not self.structs[ty[1]].opaque:
            return f"struct dc_rs_{ty[1]} {name}"
        raise RustError(f"{where}: no C layout for `{type_text(ty)}`")

    # Sections.
    def write_aliases(self) -> None:
        self.out.append("\n/* Type aliases: the C type of the same name has our size, alignment and signedness. */")
        for alias in self.aliases.values():
            ty = self.resolve(alias.ty)
            claim = next((m for d in alias.docs for m in re.findall(r"`(enum|union) (\w+)`", d)), None)
            n = alias.name
            if ty[0] == "ptr":
                pointee = self.signature_c(ty[2], n)
                pointer = f"{pointee} *" if ty[1] else f"const {pointee} *"
                self.assertion(alias, f"__builtin_types_compatible_p({n}, {pointer})", f"{n}: not {pointer} in the header")
            elif ty[0] == "name" and ty[1] in INTEGERS:
                size, signed = INTEGERS[ty[1]]
                self.assertion(alias, f"sizeof({n}) == {size}", f"{n}: size differs from the header (ours: {ty[1]})")
                self.assertion(alias, f"_Alignof({n}) == {size}", f"{n}: alignment differs from the header (ours: {ty[1]})")
                if claim:
                    self.assertion(alias, f"__builtin_types_compatible_p({n}, {claim[0]} {claim[1]})",
                                   f"{n}: not {claim[0]} {claim[1]} in the header, as its doc says")
                else:
                    self.assertion(alias, f"DC_SIGNED({n}) == {int(signed)}",
                                   f"{n}: signedness differs from the header (ours: {ty[1]})")
            else:
                raise RustError(f"{alias.path}:{alias.line}: alias {n} = {type_text(ty)} not translated")
            self.summary["aliases"].append(n)

    def write_constants(self) -> None:
        self.out.append("\n/* Constants: the header's value, read at our type's width, signed or unsigned. */")
        for const in self.consts:
            m = re.match(r"`(?:\w+::)?(\w+)`", const.docs[0]) if const.docs else None
            c_name = m.group(1) if m else const.name
            prim = self.resolve(const.ty)
            if prim[0] != "name" or prim[1] not in INTEGERS:
                raise RustError(f"{const.path}:{const.line}: {const.name}: not an integer constant")
            value = self.evaluate(const, prim[1])
            label = const.name if c_name == const.name else f"{const.name} ({c_name})"
            if c_name in NOT_IN_HEADERS:
                self.used_absent.add(c_name)
                self.unchecked.append(f"{label}: {NOT_IN_HEADERS[c_name].reason}")
                continue
            bits = INTEGERS[prim[1]][0] * 8
            unsigned = value % (1 << bits)
            if value > (1 << 63) - 1:
                # Above LONGLONG (an address such as SharedSystemTime): compared unsigned.
                condition = f"(unsigned long long)({c_name}) == {value}ULL"
            else:
                condition = f"(long long)({c_name}) == {value}LL"
            if unsigned != value:
                condition += f" || (long long)({c_name}) == {unsigned}LL"
            self.assertion(const, condition, f"{label}: value differs from the header (ours: {unsigned:#x})")
            self.summary["constants"].append(label)

    def evaluate(self, const: Const, prim: str) -> int:
        toks = [t.text for t in const.expr]
        negative = bool(toks) and toks[0] == "-"
        toks = toks[1:] if negative else toks
        if not toks:
            raise RustError(f"{const.path}:{const.line}: {const.name}: no value")
        value, suffix = rust_integer(toks[0])
        value = -value if negative else value
        if suffix:
            value = wrap(value, suffix)
        rest = toks[1:]
        while rest[:1] == ["as"] and len(rest) >= 2 and rest[1] in INTEGERS:
            value, rest = wrap(value, rest[1]), rest[2:]
        if rest:
            raise RustError(f"{const.path}:{const.line}: {const.name}: only `literal [as type]` values are read")
        if wrap(value, prim) != value:
            raise RustError(f"{const.path}:{const.line}: {const.name}: {value} does not fit {prim}")
        return value

    def write_structs(self) -> None:
        self.out.append("\n/* Structures: ours, translated, against the header's. */")
        for s in self.structs.values():
            if "C" not in s.repr or any(p.startswith("packed") for p in s.repr):
                raise RustError(f"{s.path}:{s.line}: {s.name} must be #[repr(C)] (not packed)")
            if s.opaque:
                self.emit(s, f"typedef {s.name} dc_opaque_{s.name}; /* opaque: only pointed to */")
                continue
            ours = f"struct dc_rs_{s.name}"
            aligned = f" __attribute__((aligned({s.align})))" if s.align else ""
            members = " ".join(self.layout_c(ty, f, f"{s.name}.{f}") + ";" for f, ty, _ in s.fields)
            self.emit(s, f"{ours} {{ {members} }}{aligned};")
            self.assertion(s, f"sizeof({ours}) == sizeof({s.name})", f"{s.name}: size differs from the header")
            self.assertion(s, f"_Alignof({ours}) == _Alignof({s.name})", f"{s.name}: alignment differs from the header")
            for index, (f, _, line) in enumerate(s.fields):
                at = Item(s.path, line, [])
                key = f"{s.name}.{f}"
                if key not in NOT_IN_HEADERS:
                    self.assertion(at, f"offsetof({ours}, {f}) == offsetof({s.name}, {f})",
                                   f"{key}: offset differs from the header")
                    self.assertion(at, f"sizeof((({ours} *)0)->{f}) == sizeof((({s.name} *)0)->{f})",
                                   f"{key}: size differs from the header")
                    continue
                self.used_absent.add(key)
                before = [g for g, _, _ in s.fields[:index] if f"{s.name}.{g}" not in NOT_IN_HEADERS]
                after = [g for g, _, _ in s.fields[index + 1:] if f"{s.name}.{g}" not in NOT_IN_HEADERS]
                low = f"offsetof({s.name}, {before[-1]}) + sizeof((({s.name} *)0)->{before[-1]})" if before else "0"
                high = f"offsetof({s.name}, {after[0]})" if after else f"sizeof({s.name})"
                self.assertion(at, f"offsetof({ours}, {f}) >= {low} && "
                               f"offsetof({ours}, {f}) + sizeof((({ours} *)0)->{f}) <= {high}",
                               f"{key}: not between the header fields around it")
                self.unchecked.append(f"{key}: {NOT_IN_HEADERS[key].reason}")
            self.summary["structures"].append(s.name)

    def write_routines(self) -> None:
        self.out.append("\n/* Routines: the header declares each (typeof), noreturn as ours is, with our types. */")
        for r in self.nt.routines:
            where = f"{r.path}:{r.line}: {r.name}"
            params = ", ".join(self.signature_c(ty, f"{where}({p})") + f" /* {p} */" for p, ty in r.params) or "VOID"
            noreturn = r.ret == ("never",)
            ret = "VOID" if r.ret is None or noreturn else self.signature_c(r.ret, f"{where} ->")
            attributes = "__declspec(dllimport)" + (" __declspec(noreturn)" if noreturn else "")
            absent = NOT_IN_HEADERS.get(r.name)
            if absent is None:
                self.emit(r, f"typedef __typeof__({r.name}) dc_header_{r.name};")
                if noreturn:
                    self.assertion(r, f"__builtin_has_attribute({r.name}, noreturn)",
                                   f"{r.name}: ours returns `!`, the header does not declare it noreturn")
                else:
                    self.assertion(r, f"!__builtin_has_attribute({r.name}, noreturn)",
                                   f"{r.name}: the header declares it noreturn, ours does not return `!`")
            self.emit(r, f"{attributes} {ret} NTAPI ({r.name})({params});")
            if absent is not None:
                self.used_absent.add(r.name)
                sibling_params = [
                    absent.sibling_params.get(k, self.signature_c(ty, where)) for k, (_, ty) in enumerate(r.params)
                ]
                self.emit(r, f"typedef __typeof__({absent.sibling}) dc_header_{absent.sibling};",
                          f"{attributes} {ret} NTAPI ({absent.sibling})({', '.join(sibling_params)});")
                changed = ", ".join(f"parameter {k + 1} as {t}" for k, t in absent.sibling_params.items())
                self.unchecked.append(
                    f"{r.name}: {absent.reason}; checked instead against {absent.sibling} "
                    f"({changed}), and our types exist under those names")
            self.summary["routines"].append(r.name)

    def write(self) -> str:
        self.write_aliases()
        self.write_constants()
        self.write_structs()
        self.write_routines()
        for key in NOT_IN_HEADERS:
            if key not in self.used_absent:
                raise RustError(f"NOT_IN_HEADERS names {key}, which the Rust no longer declares")
        return "\n".join(self.out) + "\n"


def generate(texts: dict[str, str]) -> tuple[str, Writer]:
    """The C for the Rust files' texts (by path), and the writer with its summary."""
    writer = Writer({path: read_source(text, path) for path, text in texts.items()})
    return writer.write(), writer


def absence_probe(key: str) -> tuple[str, str]:
    """C that compiles only if the headers have gained `key`; what gcc says while they lack it."""
    if "." in key:
        struct, member = key.split(".")
        return f"_Static_assert(offsetof({struct}, {member}) >= 0, \"\");\n", f"has no member named '{member}'"
    return f"typedef __typeof__({key}) dc_probe;\n", f"'{key}' undeclared"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    texts = {path: (args.repo / path).read_text(encoding="utf-8") for path in (NTOSKRNL, ABI)}
    try:
        text, writer = generate(texts)
        must_fail = []
        for n, (path, old, new, expected, what) in enumerate(MUTANTS, 1):
            if texts[path].count(old) != 1:
                # Reported by the self-test, after the check proper has run.
                must_fail.append(("-", "", "", f"edit {n} ({what}): {old!r} is not in {path} exactly once; update MUTANTS"))
                continue
            mutated = dict(texts, **{path: texts[path].replace(old, new)})
            must_fail.append((f"mutant-{n:02}.c", generate(mutated)[0], expected, f"broken: {what}"))
        for n, key in enumerate(NOT_IN_HEADERS, 1):
            body, expected = absence_probe(key)
            must_fail.append((f"absent-{n:02}.c", PRELUDE + body, expected, f"still absent from the headers: {key}"))
    except RustError as error:
        print(f"check_ntoskrnl: {error}", file=sys.stderr)
        return 2
    (args.out / "must-fail").mkdir(parents=True, exist_ok=True)
    (args.out / "check.c").write_text(text)
    with open(args.out / "must-fail.tsv", "w") as manifest:
        for name, c_text, expected, what in must_fail:
            if name != "-":
                (args.out / "must-fail" / name).write_text(c_text)
            manifest.write(f"{name}\t{expected}\t{what}\n")
    s = writer.summary
    print(f"check_ntoskrnl: {len(s['routines'])} routines, {len(s['structures'])} structures, "
          f"{len(s['constants'])} constants, {len(s['aliases'])} type aliases")
    for line in writer.unchecked:
        print(f"check_ntoskrnl: not in the headers: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
