"""Checks a built dumpcrypt.sys as Windows' loader and a driver reviewer would.

Usage: check_image.py IMAGE.sys [IMAGE.sys ...]
For each image: PE32+ for AMD64, subsystem NATIVE, the entry point is the exported DriverEntry
(and nothing else is exported), imports only from ntoskrnl.exe and only routines on the allow
list, no section both writable and executable, NX compatible, a valid checksum, and no
AVX/VEX-encoded instruction or YMM/ZMM register in executable code (their state is not saved
in the dump path). Prints the size and the import list; exits 1 on any deviation.
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
        # The stack probe LLVM calls in frames over a page (ntoskrnl.lib binds it too).
        "__chkstk",
    },
}

IMAGE_SUBSYSTEM_NATIVE = 1
IMAGE_DLLCHARACTERISTICS_NX_COMPAT = 0x0100
IMAGE_SCN_MEM_EXECUTE = 0x20000000
IMAGE_SCN_MEM_WRITE = 0x80000000
IMAGE_SCN_MEM_DISCARDABLE = 0x02000000


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
    wide = []
    for section in pe.sections:
        if not section.Characteristics & IMAGE_SCN_MEM_EXECUTE:
            continue
        code = section.get_data()[:section.Misc_VirtualSize]
        address = pe.OPTIONAL_HEADER.ImageBase + section.VirtualAddress
        for instruction in disassembler.disasm_lite(code, address):
            _, _, mnemonic, operands = instruction
            if mnemonic.startswith("v") or "ymm" in operands or "zmm" in operands:
                wide.append("%#x %s %s" % (instruction[0], mnemonic, operands))
    expect(not wide, "AVX (VEX/EVEX) instructions in code: %s" % wide[:5])

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
