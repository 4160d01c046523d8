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

    print("%s: checksum %#x, DllCharacteristics %#x, entry %#x, sections %s" % (
        path, pe.OPTIONAL_HEADER.CheckSum, pe.OPTIONAL_HEADER.DllCharacteristics, entry,
        ", ".join("%s %#x" % (s.Name.rstrip(b"\0").decode(), s.Characteristics)
                  for s in pe.sections)))
    for failure in failures:
        print("FAILED %s: %s" % (path, failure))
    if not failures:
        print("ok     %s: image checks" % path)
    return not failures


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    results = [check(path) for path in sys.argv[1:]]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
