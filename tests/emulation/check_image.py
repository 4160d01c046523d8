"""Checks a built dumpcrypt.sys as Windows' loader and a driver reviewer would.

Usage: check_image.py IMAGE.sys [IMAGE.sys ...]
For each image: PE32+ for AMD64, subsystem NATIVE, the entry point is the exported DriverEntry
(and nothing else is exported), imports only from ntoskrnl.exe and only routines on the allow
list, no section both writable and executable, NX compatible, a valid checksum, and the
placement of the vector code:

- the code sections are exactly .text, .aesni (the XMM backend's kernels) and .vaes (the VAES
  backends' kernels, each of which saves and restores the extended state it touches itself);
- no VEX- or EVEX-encoded instruction (found by its prefix byte, C4, C5 or 62, as well as by
  its mnemonic), no YMM, ZMM or opmask register, no XSAVE/XRSTOR outside .vaes: the OS saves
  no YMM/ZMM state for the dump path, so nothing else may touch it;
- in .vaes, every XRSTOR comes right after a VZEROUPPER, with two saves per restore (each kernel: an XSAVEC and an XSAVE, of which one runs, and an XRSTOR); .aesni
  holds AES-NI code and .vaes VAES code.

Prints the size, the import list and the vector code per section; exits 1 on any deviation.

HVCI (Memory Integrity) compatibility, as far as the image shows it (check_hvci): no section
both writable and executable; section alignment a multiple of the 4 KiB page, every section
page aligned; the import address table outside executable sections; no executable pool
requested: every call of a pool or contiguous-memory allocator is found in the code, and the
pool type it passes (traced through the instructions before the call) is NonPagedPoolNx, or
NonPagedPool only as the alternative to it (Windows 7, which has no NX pool and no HVCI), and
every page protection it passes is non-executable; no discardable section holding code (code
that may run after DriverEntry must never be discarded). Each image is then broken in memory
in each of these ways, and each broken copy must be rejected, so that the check is shown to
be able to fail.
"""

import os
import sys

import capstone
import pefile

ALLOWED_IMPORTS = {
    # HAL.dll would be allowed here too; dumpcrypt imports nothing from it.
    "ntoskrnl.exe": {
        "RtlGetVersion", "ExAllocatePoolWithTag", "ExFreePoolWithTag",
        "MmAllocateContiguousNodeMemory", "MmFreeContiguousMemory", "IoAllocateMdl",
        "MmBuildMdlForNonPagedPool", "IoFreeMdl", "ZwOpenKey", "ZwQueryValueKey", "ZwClose",
        "KeInitializeEvent", "IoBuildDeviceIoControlRequest", "IofCallDriver",
        "KeWaitForSingleObject", "KeBugCheckEx",
        # The provider interface's callback object (docs/provider.md).
        "ExCreateCallback", "ExNotifyCallback", "ObfDereferenceObject",
        # The sealed key source's ring in Parameters\SealedKeys (docs/design.md). All exported
        # by ntoskrnl since Windows 2000; the time is read from KUSER_SHARED_DATA, no import.
        "ZwCreateKey", "ZwEnumerateValueKey", "ZwSetValueKey", "ZwDeleteValueKey", "ZwFlushKey",
        # The stack probe LLVM calls in frames over a page (ntoskrnl.lib binds it too).
        "__chkstk",
    },
}

IMAGE_SUBSYSTEM_NATIVE = 1
IMAGE_DLLCHARACTERISTICS_NX_COMPAT = 0x0100
IMAGE_SCN_MEM_EXECUTE = 0x20000000
IMAGE_SCN_MEM_WRITE = 0x80000000
IMAGE_SCN_MEM_DISCARDABLE = 0x02000000

# The code sections, and the one where VEX/EVEX code (and the state save around it) belongs.
CODE_SECTIONS = {".text", ".aesni", ".vaes"}
VEX_SECTION = ".vaes"
LEGACY_PREFIXES = {0x66, 0x67, 0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65}


def vex_or_evex(code):
    """Whether the instruction bytes start (after legacy prefixes and REX) with a VEX (C4, C5)
    or EVEX (62) prefix: in 64-bit mode those bytes are nothing else."""
    for byte in code:
        if byte in LEGACY_PREFIXES or 0x40 <= byte <= 0x4F:
            continue
        return byte in (0xC4, 0xC5, 0x62)
    return False


def uses_wide_state(mnemonic, operands):
    return (mnemonic.startswith("v") or mnemonic.startswith("k") and " k" in " " + operands
            or any(register in operands for register in ("ymm", "zmm"))
            or any(" k%d" % i in " " + operands.replace(",", " ") for i in range(8)))


def check(path):
    failures = []

    def expect(condition, message):
        if not condition:
            failures.append(message)
        return condition

    pe = pefile.PE(path)
    size = os.path.getsize(path)
    print("%s: %d bytes" % (path, size))

    expect(pe.OPTIONAL_HEADER.Magic == pefile.OPTIONAL_HEADER_MAGIC_PE_PLUS,
           "not PE32+ (magic %#x)" % pe.OPTIONAL_HEADER.Magic)
    expect(pe.FILE_HEADER.Machine == pefile.MACHINE_TYPE["IMAGE_FILE_MACHINE_AMD64"],
           "machine %#x, not AMD64" % pe.FILE_HEADER.Machine)
    expect(pe.OPTIONAL_HEADER.Subsystem == IMAGE_SUBSYSTEM_NATIVE,
           "subsystem %d, not NATIVE" % pe.OPTIONAL_HEADER.Subsystem)
    expect(pe.OPTIONAL_HEADER.DllCharacteristics & IMAGE_DLLCHARACTERISTICS_NX_COMPAT,
           "not NX compatible (DllCharacteristics %#x)" % pe.OPTIONAL_HEADER.DllCharacteristics)

    exports = {}
    if hasattr(pe, "DIRECTORY_ENTRY_EXPORT"):
        exports = {e.name.decode(): e.address for e in pe.DIRECTORY_ENTRY_EXPORT.symbols
                   if e.name}
    expect(set(exports) == {"DriverEntry"}, "exports %s, expected only DriverEntry"
           % sorted(exports))
    entry = pe.OPTIONAL_HEADER.AddressOfEntryPoint
    expect(exports.get("DriverEntry") == entry,
           "entry point %#x is not the exported DriverEntry (%s)"
           % (entry, hex(exports["DriverEntry"]) if "DriverEntry" in exports else "none"))

    imports = {}
    for descriptor in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        names = [i.name.decode() if i.name else "#%d" % i.ordinal for i in descriptor.imports]
        imports[descriptor.dll.decode()] = names
    for dll, names in sorted(imports.items()):
        print("%s: imports from %s: %s" % (path, dll, ", ".join(sorted(names))))
        allowed = {k.lower(): v for k, v in ALLOWED_IMPORTS.items()}.get(dll.lower())
        if expect(allowed is not None, "imports from %s, which is not allowed" % dll):
            expect(set(names) <= allowed, "imports from %s not on the allow list: %s"
                   % (dll, sorted(set(names) - allowed)))
    if hasattr(pe, "DIRECTORY_ENTRY_DELAY_IMPORT"):
        failures.append("has delay-load imports")

    for section in pe.sections:
        name = section.Name.rstrip(b"\0").decode(errors="replace")
        flags = section.Characteristics
        expect(not (flags & IMAGE_SCN_MEM_WRITE and flags & IMAGE_SCN_MEM_EXECUTE),
               "section %s is both writable and executable (%#x)" % (name, flags))
        # A dump filter runs when nothing can be paged in: no pageable or discardable code.
        expect(not (flags & IMAGE_SCN_MEM_EXECUTE and flags & IMAGE_SCN_MEM_DISCARDABLE),
               "code section %s is discardable" % name)
        expect(not name.upper().startswith("PAGE"), "pageable section %s" % name)

    expect(pe.OPTIONAL_HEADER.CheckSum != 0, "no checksum set")
    expect(pe.verify_checksum(), "checksum %#x is wrong (computed %#x)"
           % (pe.OPTIONAL_HEADER.CheckSum, pe.generate_checksum()))

    disassembler = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    code_sections = {}
    for section in pe.sections:
        if section.Characteristics & IMAGE_SCN_MEM_EXECUTE:
            code_sections[section.Name.rstrip(b"\0").decode(errors="replace")] = section
    expect(set(code_sections) == CODE_SECTIONS, "code sections %s, expected %s"
           % (sorted(code_sections), sorted(CODE_SECTIONS)))
    summary = []
    for name, section in sorted(code_sections.items()):
        data = section.get_data()[:section.Misc_VirtualSize]
        address = pe.OPTIONAL_HEADER.ImageBase + section.VirtualAddress
        wide, saves, restores, aes, vaes = [], 0, 0, 0, 0
        previous = None
        for offset, size, mnemonic, operands in disassembler.disasm_lite(data, 0):
            where = "%#x %s %s" % (address + offset, mnemonic, operands)
            is_wide = (vex_or_evex(data[offset:offset + size])
                       or uses_wide_state(mnemonic, operands))
            if is_wide or mnemonic.startswith(("xsave", "xrstor")):
                wide.append(where)
            if mnemonic.startswith("xsave"):
                saves += 1
            if mnemonic.startswith("xrstor"):
                restores += 1
                expect(previous == "vzeroupper",
                       "%s: XRSTOR not right after VZEROUPPER: %s" % (name, where))
            if mnemonic.startswith("aes"):
                aes += 1
            if mnemonic.startswith("vaes"):
                vaes += 1
            previous = mnemonic
        summary.append("%s: %d VEX/EVEX or state-save instructions, %d XSAVE, %d XRSTOR, "
                       "%d AES-NI, %d VAES" % (name, len(wide), saves, restores, aes, vaes))
        if name == VEX_SECTION:
            # Each kernel saves with XSAVEC or XSAVE (two instructions, one runs) and restores.
            expect(vaes > 0 and restores > 0 and saves == 2 * restores,
                   "%s: %d VAES instructions, %d saves, %d restores" % (name, vaes, saves,
                                                                       restores))
        else:
            expect(not wide, "VEX/EVEX or extended-state instructions outside %s, in %s: %s"
                   % (VEX_SECTION, name, wide[:5]))
        if name == ".aesni":
            expect(aes > 0, ".aesni holds no AES-NI instruction")
    print("%s: vector code per section: %s" % (path, "; ".join(summary)))

    failures.extend(check_hvci(pe))

    print("%s: checksum %#x, DllCharacteristics %#x, entry %#x, sections %s" % (
        path, pe.OPTIONAL_HEADER.CheckSum, pe.OPTIONAL_HEADER.DllCharacteristics, entry,
        ", ".join("%s %#x" % (s.Name.rstrip(b"\0").decode(), s.Characteristics)
                  for s in pe.sections)))
    for failure in failures:
        print("FAILED %s: %s" % (path, failure))
    if not failures:
        print("ok     %s: image checks" % path)
    return not failures


PAGE_SIZE = 0x1000
# POOL_TYPE: the NX bit (NonPagedPoolNx = 0x200, NonPagedPoolNxCacheAligned = 0x204,
# NonPagedPoolSessionNx = 0x220); NonPagedPool (0) is executable.
POOL_NX_BIT = 0x200
NON_PAGED_POOL = 0
# PAGE_EXECUTE, PAGE_EXECUTE_READ, PAGE_EXECUTE_READWRITE, PAGE_EXECUTE_WRITECOPY.
PAGE_EXECUTE_BITS = 0x10 | 0x20 | 0x40 | 0x80
# Allocators and where their executable-or-not argument is at the call (x64 convention:
# rcx, rdx, r8, r9, then [rsp + 0x20], [rsp + 0x28], ...).
POOL_TYPE_ARGUMENT = {
    "ExAllocatePoolWithTag": "rcx",
    "ExAllocatePoolWithQuotaTag": "rcx",
    "ExAllocatePool": "rcx",
}
PROTECT_ARGUMENT = {
    "MmAllocateContiguousNodeMemory": "[rsp+0x20]",  # the 5th parameter, Protect
}
# Allocators whose memory is executable with no argument to say otherwise.
EXECUTABLE_ALLOCATORS = {
    "MmAllocateContiguousMemory", "MmAllocateContiguousMemorySpecifyCache",
    "MmAllocateNonCachedMemory", "MmMapIoSpace", "MmMapLockedPages",
}
# How far back from a call the argument is traced (within straight-line code).
WINDOW = 24


class Tracer:
    """Traces the values a register or stack slot holds at a call: forward over the
    straight-line instructions before it, through direct calls into the image (the values
    the callee can return) and through a callee's stack slots (flow-insensitively: every
    immediate ever stored there). Unoptimized code keeps a selected value in a stack slot
    and returns it from a function of its own; optimized code computes it in registers."""

    def __init__(self, pe, depth=0):
        import capstone
        self.pe = pe
        self.depth = depth
        self.base = pe.OPTIONAL_HEADER.ImageBase
        self.disassembler = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self.disassembler.detail = True
        self.slots = None  # the current function's instructions, for stack slots

    def function(self, address):
        """The instructions of the function at `address` (its extent from .pdata)."""
        rva = address - self.base
        for entry in getattr(self.pe, "DIRECTORY_ENTRY_EXCEPTION", []):
            if entry.struct.BeginAddress == rva:
                code = self.pe.get_data(rva, entry.struct.EndAddress - rva)
                return list(self.disassembler.disasm(code, address))
        return None

    def returns(self, address):
        """The values the function at `address` can return in eax; None when unknown."""
        if self.depth >= 2:
            return None
        instructions = self.function(address)
        if not instructions:
            return None
        inner = Tracer(self.pe, self.depth + 1)
        inner.slots = instructions
        values = set()
        for index, instruction in enumerate(instructions):
            if instruction.mnemonic == "ret":
                found = inner.at(instructions, index, "rax")
                if found is None:
                    return None
                values |= found
        return values or None

    def slot(self, displacement):
        """Every value the current function stores at [rsp + displacement]; None if any
        store is not an immediate or the slot's address is taken."""
        import capstone.x86 as x86
        if self.slots is None:
            return None
        values = set()
        for instruction in self.slots:
            for number, operand in enumerate(instruction.operands):
                if (operand.type == x86.X86_OP_MEM and operand.mem.base == x86.X86_REG_RSP
                        and operand.mem.index == 0 and operand.mem.disp == displacement):
                    if instruction.mnemonic == "lea":
                        return None
                    if number == 0 and instruction.mnemonic != "cmp" and instruction.mnemonic != "test":
                        source = instruction.operands[1] if len(instruction.operands) > 1 else None
                        if instruction.mnemonic != "mov" or source is None or source.type != x86.X86_OP_IMM:
                            return None
                        values.add(source.imm & 0xFFFFFFFF)
        return values or None

    _targets = {}

    def branch_targets(self, instructions):
        """The addresses some jump in `instructions` goes to (cached per list)."""
        import capstone.x86 as x86
        key = id(instructions)
        if key not in Tracer._targets:
            Tracer._targets[key] = (instructions, {
                instruction.operands[0].imm
                for instruction in instructions
                if instruction.mnemonic.startswith("j") and instruction.operands
                and instruction.operands[0].type == x86.X86_OP_IMM})
        return Tracer._targets[key][1]

    def at(self, instructions, index, wanted):
        """The set of values `wanted` ("rcx", "rax", "[rsp+0x20]") can hold at
        instructions[index]; None when it cannot be told."""
        import capstone.x86 as x86

        def name(register):
            families = {
                "rcx": {"rcx", "ecx", "cx", "cl"}, "rdx": {"rdx", "edx", "dx", "dl"},
                "rax": {"rax", "eax", "ax", "al"}, "r8": {"r8", "r8d", "r8w", "r8b"},
                "r9": {"r9", "r9d", "r9w", "r9b"},
            }
            for family, members in families.items():
                if register in members:
                    return family
            return register

        targets = self.branch_targets(instructions)
        state = {}
        for instruction in instructions[max(0, index - WINDOW):index]:
            mnemonic = instruction.mnemonic
            operands = instruction.operands
            if instruction.address in targets:
                state = {}  # a join: control may come from elsewhere
            if mnemonic == "call":
                state = {}  # the callee may change every volatile register
                if operands and operands[0].type == x86.X86_OP_IMM:
                    state["rax"] = self.returns(operands[0].imm)
                continue
            if mnemonic in ("jmp", "ret") or mnemonic.startswith("j"):
                state = {}  # a branch: what came before is not straight-line
                continue
            if not operands:
                continue
            destination = operands[0]
            if destination.type == x86.X86_OP_REG:
                target = name(instruction.reg_name(destination.reg))
            elif (destination.type == x86.X86_OP_MEM and destination.mem.base == x86.X86_REG_RSP
                  and destination.mem.index == 0):
                target = "[rsp+%#x]" % destination.mem.disp
            else:
                continue
            if mnemonic in ("cmp", "test"):
                continue
            source = operands[1] if len(operands) > 1 else None

            def value_of(operand):
                if operand is None:
                    return None
                if operand.type == x86.X86_OP_IMM:
                    return {operand.imm & 0xFFFFFFFF}
                if operand.type == x86.X86_OP_REG:
                    return state.get(name(instruction.reg_name(operand.reg)))
                if (operand.type == x86.X86_OP_MEM and operand.mem.base == x86.X86_REG_RSP
                        and operand.mem.index == 0):
                    key = "[rsp+%#x]" % operand.mem.disp
                    return state[key] if key in state else self.slot(operand.mem.disp)
                return None

            if mnemonic == "xor" and source is not None and source.type == x86.X86_OP_REG and \
                    name(instruction.reg_name(source.reg)) == target:
                state[target] = {0}
            elif mnemonic in ("mov", "movzx"):
                state[target] = value_of(source)
            elif mnemonic.startswith("set"):
                state[target] = {0, 1}
            elif mnemonic.startswith("cmov"):
                known, other = state.get(target), value_of(source)
                state[target] = None if known is None or other is None else known | other
            elif mnemonic == "shl" and source is not None and source.type == x86.X86_OP_IMM:
                known = state.get(target)
                state[target] = None if known is None else {v << source.imm for v in known}
            elif mnemonic == "or" and source is not None and source.type == x86.X86_OP_IMM:
                known = state.get(target)
                state[target] = None if known is None else {v | source.imm for v in known}
            else:
                state[target] = None  # written in a way not followed here
        return state.get(wanted)


def allocator_calls(pe):
    """(name, instructions, index) of every call or tail jump through an allocator's IAT slot."""
    import capstone
    import capstone.x86 as x86

    slots = {}
    for descriptor in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        for imported in descriptor.imports:
            if imported.name:
                slots[imported.address] = imported.name.decode()
    disassembler = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    disassembler.detail = True
    calls = []
    for section in pe.sections:
        if not section.Characteristics & IMAGE_SCN_MEM_EXECUTE:
            continue
        code = section.get_data()[:section.Misc_VirtualSize]
        address = pe.OPTIONAL_HEADER.ImageBase + section.VirtualAddress
        instructions = list(disassembler.disasm(code, address))
        for index, instruction in enumerate(instructions):
            if instruction.mnemonic not in ("call", "jmp"):
                continue
            for operand in instruction.operands:
                if operand.type == x86.X86_OP_MEM and operand.mem.base == x86.X86_REG_RIP:
                    target = instruction.address + instruction.size + operand.mem.disp
                    if target in slots:
                        calls.append((slots[target], instructions, index))
    return calls


def check_hvci(pe, quiet=False):
    """HVCI's rules that the image shows; returns the failures."""
    failures = []
    alignment = pe.OPTIONAL_HEADER.SectionAlignment
    if alignment % PAGE_SIZE:
        failures.append("HVCI: section alignment %#x is not a multiple of the page size" % alignment)
    executable_ranges = []
    for section in pe.sections:
        name = section.Name.rstrip(b"\0").decode(errors="replace")
        flags = section.Characteristics
        if section.VirtualAddress % PAGE_SIZE:
            failures.append("HVCI: section %s starts at %#x, not on a page" % (name, section.VirtualAddress))
        if flags & IMAGE_SCN_MEM_WRITE and flags & IMAGE_SCN_MEM_EXECUTE:
            failures.append("HVCI: section %s is writable and executable" % name)
        if flags & IMAGE_SCN_MEM_EXECUTE and flags & IMAGE_SCN_MEM_DISCARDABLE:
            failures.append("HVCI: section %s holds code and is discardable" % name)
        if flags & IMAGE_SCN_MEM_EXECUTE:
            executable_ranges.append((section.VirtualAddress,
                                      section.VirtualAddress + max(section.Misc_VirtualSize, section.SizeOfRawData)))
    iat = pe.OPTIONAL_HEADER.DATA_DIRECTORY[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IAT"]]
    if iat.Size and any(start <= iat.VirtualAddress < end for start, end in executable_ranges):
        failures.append("HVCI: the import address table (%#x) lies in an executable section" % iat.VirtualAddress)

    imported = {imported.name.decode()
                for descriptor in getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])
                for imported in descriptor.imports if imported.name}
    for name in sorted(imported & EXECUTABLE_ALLOCATORS):
        failures.append("HVCI: imports %s, whose memory is executable" % name)
    calls = allocator_calls(pe)
    for name in sorted(imported & (set(POOL_TYPE_ARGUMENT) | set(PROTECT_ARGUMENT))):
        if not any(call[0] == name for call in calls):
            failures.append("HVCI: %s is imported but no call of it was found to check its arguments" % name)
    for name, instructions, index in calls:
        at = instructions[index].address
        if name in POOL_TYPE_ARGUMENT:
            values = Tracer(pe).at(instructions, index, POOL_TYPE_ARGUMENT[name])
            nx = values is not None and any(value & POOL_NX_BIT for value in values)
            allowed = values is not None and all(
                value & POOL_NX_BIT or (value == NON_PAGED_POOL and nx) for value in values)
            if not allowed:
                failures.append("HVCI: %s at %#x may request an executable pool type (%s)" % (
                    name, at, "cannot tell" if values is None else sorted(hex(v) for v in values)))
            elif not quiet:
                print("HVCI: %s at %#x: pool type %s" % (name, at, " or ".join(
                    "%#x" % v for v in sorted(values))))
        if name in PROTECT_ARGUMENT:
            values = Tracer(pe).at(instructions, index, PROTECT_ARGUMENT[name])
            if values is None or any(value & PAGE_EXECUTE_BITS for value in values):
                failures.append("HVCI: %s at %#x may request an executable page protection (%s)" % (
                    name, at, "cannot tell" if values is None else sorted(hex(v) for v in values)))
            elif not quiet:
                print("HVCI: %s at %#x: protection %s" % (name, at, " or ".join(
                    "%#x" % v for v in sorted(values))))
    return failures


def hvci_self_test(path):
    """Breaks the image in memory in each HVCI way; every broken copy must be rejected."""
    import capstone

    data = open(path, "rb").read()
    pe = pefile.PE(data=data)
    text = next(s for s in pe.sections if s.Characteristics & IMAGE_SCN_MEM_EXECUTE)
    header = text.get_file_offset()
    disassembler = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)

    def patched(offset, new):
        broken = bytearray(data)
        broken[offset:offset + len(new)] = new
        return bytes(broken)

    def code_offset(find):
        """The file offset of the first instruction in the code for which find() holds."""
        code = text.get_data()[:text.Misc_VirtualSize]
        for address, size, mnemonic, operands in disassembler.disasm_lite(code, 0):
            if find(mnemonic, operands, code[address:address + size]):
                return text.PointerToRawData + address, code[address:address + size]
        return None, None

    mutations = []
    flags = text.Characteristics
    mutations.append(("a writable code section", "writable and executable",
                      patched(header + 36, (flags | IMAGE_SCN_MEM_WRITE).to_bytes(4, "little"))))
    mutations.append(("a discardable code section", "holds code and is discardable",
                      patched(header + 36, (flags | IMAGE_SCN_MEM_DISCARDABLE).to_bytes(4, "little"))))
    alignment_at = pe.OPTIONAL_HEADER.get_file_offset() + 32
    mutations.append(("512-byte section alignment", "section alignment",
                      patched(alignment_at, (0x200).to_bytes(4, "little"))))
    offset, instruction = code_offset(lambda m, o, b: m == "mov" and o == "dword ptr [rsp + 0x20], 4")
    if offset is not None:
        mutations.append(("PAGE_EXECUTE_READWRITE for the contiguous buffer", "executable page protection",
                          patched(offset + len(instruction) - 4, (0x40).to_bytes(4, "little"))))
    offset, instruction = code_offset(lambda m, o, b: m == "shl" and o == "ecx, 9")
    if offset is not None:
        # {0, 1} << 8: 0x100 instead of NonPagedPoolNx (optimized code).
        mutations.append(("a pool type without the NX bit", "executable pool type",
                          patched(offset + len(instruction) - 1, bytes([8]))))
    else:
        offset, instruction = code_offset(lambda m, o, b: m == "mov" and o.endswith("], 0x200"))
        if offset is not None:
            # NonPagedPool (0) instead of NonPagedPoolNx in the slot (unoptimized code).
            mutations.append(("a pool type without the NX bit", "executable pool type",
                              patched(offset + len(instruction) - 4, (0).to_bytes(4, "little"))))
    failed = 0
    if len(mutations) < 5:
        print("FAILED %s: HVCI self-test could not find the instructions to break "
              "(the allocation code changed: update hvci_self_test)" % path)
        failed += 1
    for description, reason, broken in mutations:
        found = [f for f in check_hvci(pefile.PE(data=broken), quiet=True) if reason in f]
        if found:
            print("ok     %s: HVCI self-test rejected %s: %s" % (path, description, found[0]))
        else:
            print("FAILED %s: HVCI self-test accepted %s" % (path, description))
            failed += 1
    return failed == 0


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    results = [check(path) for path in sys.argv[1:]]
    results += [hvci_self_test(path) for path in sys.argv[1:]]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
