"""An emulated Windows x64 kernel for the real dumpcrypt.sys: speakeasy runs the image, this
module plays ntoskrnl, the registry and the crash dump stack around it.

The dump stack's structures are laid out here from this file's own reading of ntdddump.h and
wdm.h (docs/design.md, "The ABI"), independently of the driver's abi.rs and of crashdmp-sim. Every
ntoskrnl routine the image imports is served by a hook of ours, so that what the driver
calls, with what, and from which callback, is recorded; nothing is left to speakeasy's
stand-ins. Conventions of this emulated machine:

- A PFN is the emulated virtual address of the page >> 12, so "DMA" follows the PFN array by
  reading emulated memory at PFN << 12.
- The kernel stack is 24 KiB (KERNEL_STACK_SIZE on x64) with a painted zone below it; the stack
  is painted before each call, so its depth is measured and a use past 24 KiB is reported.
- KeBugCheckEx records its code and parameters and ends the call; the call returns BugCheck.
- CPUID is answered by the harness, from a `Cpu` model (unicorn's own answers are fixed and,
  past its highest leaf, 4, are another leaf's data): every CPUID instruction of the image is
  found by disassembly and hooked. The default model has AES-NI and no AVX, VAES or XSAVE,
  which is also all this emulator can run (it has no PCLMULQDQ, no AVX, no XGETBV).
- RDSEED and RDRAND, which unicorn 1.0.2 cannot run (UC_ERR_INSN_INVALID), are the harness's
  too, played as the instructions the SDM describes: every one in the image is found by the
  same disassembly and hooked; where the `Cpu` model has it, it writes a fresh word from
  os.urandom (or, for a broken part, all ones) into its destination register, sets CF and
  clears OF, SF, ZF, AF and PF, and steps over the instruction. Running one that the model's
  CPUID denies is an error (#UD on a real processor), as is one the disassembly missed.
- The code run in the transform's image sections is counted (`.aesni`, the XMM backend;
  `.vaes`, the VAES backends), by basic blocks.
"""

import copy
import ctypes
import json
import os
import struct
from collections import Counter, defaultdict
from dataclasses import dataclass

import capstone
import pefile
import speakeasy
import speakeasy.winenv.arch as arch
from unicorn import UC_HOOK_BLOCK

PAGE = 0x1000
KERNEL_STACK_SIZE = 0x6000
# Below the 24 KiB, a zone where a deeper stack is still measured (and then reported).
STACK_GUARD = 0x12000
STACK_PAINT = 0xA5

# NTSTATUS values the harness produces or expects.
STATUS_SUCCESS = 0
STATUS_BUFFER_OVERFLOW = 0x80000005
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_BUFFER_TOO_SMALL = 0xC0000023
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_BAD_CONFIGURATION = 0xC0000346

REG_BINARY, REG_DWORD, REG_QWORD = 3, 4, 11
PARAMETERS_KEY = r"\Registry\Machine\SYSTEM\CurrentControlSet\Services\dumpcrypt\Parameters"
SEALED_KEYS_KEY = PARAMETERS_KEY + r"\SealedKeys"
KEY_VALUE_BASIC_INFORMATION, KEY_VALUE_PARTIAL_INFORMATION = 0, 2
STATUS_NO_MORE_ENTRIES = 0x8000001A
REG_OPTION_NON_VOLATILE = 0
# KUSER_SHARED_DATA on x64 (wdm.h KI_USER_SHARED_DATA), and its SystemTime (a KSYSTEM_TIME).
KUSER_SHARED_DATA = 0xFFFFF78000000000
SYSTEM_TIME = KUSER_SHARED_DATA + 0x14
IOCTL_DISK_GET_PARTITION_INFO_EX = 0x00070048
NON_PAGED_POOL, NON_PAGED_POOL_NX = 0, 512

# The provider interface (include/dumpcrypt_provider.h), from this harness's own reading.
PROVIDER_CALLBACK = r"\Callback\DumpCryptProvider"
CALLBACK_OBJECT = 0xFFFFC000CA11BAC0  # what ExCreateCallback hands out
QUERY_SIZE, ANSWER_SIZE = 0x38, 0x190
# The emulated dump disk's GPT disk GUID, in FILTER_EXTENSION.PartitionInfo.
DISK_GUID = bytes.fromhex("00112233445566778899aabbccddeeff")

# MDL flags (wdm.h).
MDL_MAPPED_TO_SYSTEM_VA = 0x1
MDL_PAGES_LOCKED = 0x2
MDL_SOURCE_IS_NONPAGED_POOL = 0x4
MDL_PARTIAL = 0x10


# ---------------------------------------------------------------------------------------------
# The ABI, x64 (LLP64): our own layout, checked against the offsets docs/design.md lists.


class DISK_GEOMETRY(ctypes.Structure):
    _fields_ = [
        ("Cylinders", ctypes.c_int64),
        ("MediaType", ctypes.c_uint32),
        ("TracksPerCylinder", ctypes.c_uint32),
        ("SectorsPerTrack", ctypes.c_uint32),
        ("BytesPerSector", ctypes.c_uint32),
    ]


class DISK_PARTITION_INFO(ctypes.Structure):
    _fields_ = [
        ("SizeOfPartitionInfo", ctypes.c_uint32),
        ("PartitionStyle", ctypes.c_uint32),
        ("Union", ctypes.c_uint32 * 4),  # Mbr {Signature, CheckSum} | Gpt {DiskId}
    ]


class FILTER_EXTENSION(ctypes.Structure):
    _fields_ = [
        ("DumpType", ctypes.c_uint32),
        ("DeviceObject", ctypes.c_uint64),
        ("Geometry", DISK_GEOMETRY),
        ("DiskSize", ctypes.c_int64),
        ("PartitionInfo", DISK_PARTITION_INFO),
        ("DumpData", ctypes.c_uint64),
        ("Size", ctypes.c_uint32),  # Windows 8+
        ("Flags", ctypes.c_uint32),  # Windows 8+
    ]


assert FILTER_EXTENSION.Geometry.offset == 0x10
assert DISK_GEOMETRY.BytesPerSector.offset == 0x14


class FILTER_INITIALIZATION_DATA(ctypes.Structure):
    _fields_ = [
        ("MajorVersion", ctypes.c_uint32),
        ("MinorVersion", ctypes.c_uint32),
        ("DumpStart", ctypes.c_uint64),
        ("DumpWrite", ctypes.c_uint64),
        ("DumpFinish", ctypes.c_uint64),
        ("DumpUnload", ctypes.c_uint64),
        ("DumpData", ctypes.c_uint64),
        ("MaxPagesPerWrite", ctypes.c_uint32),
        ("Flags", ctypes.c_uint32),
        ("DumpRead", ctypes.c_uint64),  # Windows 8+
    ]


class MDL_HEADER(ctypes.Structure):
    _fields_ = [
        ("Next", ctypes.c_uint64),
        ("Size", ctypes.c_int16),
        ("MdlFlags", ctypes.c_int16),
        ("AllocationProcessorNumber", ctypes.c_uint16),
        ("Reserved", ctypes.c_uint16),
        ("Process", ctypes.c_uint64),
        ("MappedSystemVa", ctypes.c_uint64),
        ("StartVa", ctypes.c_uint64),
        ("ByteCount", ctypes.c_uint32),
        ("ByteOffset", ctypes.c_uint32),
    ]


FILTER_EXTENSION_SIZE = 0x58
FILTER_INITIALIZATION_DATA_SIZE = 0x40
FILTER_INITIALIZATION_DATA_SIZE_V1 = 0x38
MDL_HEADER_SIZE = 0x30


def _check_layout():
    expected = {
        FILTER_EXTENSION: (0x58, {"DumpType": 0, "DeviceObject": 8, "Geometry": 0x10,
                                  "DiskSize": 0x28, "PartitionInfo": 0x30, "DumpData": 0x48,
                                  "Size": 0x50, "Flags": 0x54}),
        FILTER_INITIALIZATION_DATA: (0x40, {"MajorVersion": 0, "MinorVersion": 4,
                                            "DumpStart": 8, "DumpWrite": 0x10,
                                            "DumpFinish": 0x18, "DumpUnload": 0x20,
                                            "DumpData": 0x28, "MaxPagesPerWrite": 0x30,
                                            "Flags": 0x34, "DumpRead": 0x38}),
        MDL_HEADER: (0x30, {"Next": 0, "Size": 8, "MdlFlags": 0xA, "Process": 0x10,
                            "MappedSystemVa": 0x18, "StartVa": 0x20, "ByteCount": 0x28,
                            "ByteOffset": 0x2C}),
        DISK_GEOMETRY: (0x18, {"MediaType": 8, "BytesPerSector": 0x14}),
        DISK_PARTITION_INFO: (0x18, {}),
    }
    for structure, (size, offsets) in expected.items():
        assert ctypes.sizeof(structure) == size, structure.__name__
        for field, offset in offsets.items():
            assert getattr(structure, field).offset == offset, (structure.__name__, field)


_check_layout()


# ---------------------------------------------------------------------------------------------


@dataclass
class BugCheck:
    code: int
    p1: int
    p2: int
    p3: int
    p4: int

    def __str__(self):
        return "KeBugCheckEx(0x%X, %#x, %#x, %#x, %#x)" % (
            self.code, self.p1, self.p2, self.p3, self.p4)


class EmulationError(Exception):
    """The emulated code did something the emulator could not carry on from."""


@dataclass
class Allocation:
    kind: str  # pool | contiguous | mdl
    address: int
    size: int
    detail: dict


class Cpu:
    """What CPUID tells the driver, and what RDSEED and RDRAND give. `aes`: AES-NI; `avx`:
    AVX, AVX2, AVX-512 F/BW/VL, VAES and VPCLMULQDQ reported by the processor; `osxsave`: XSAVE
    enabled by the OS (XGETBV usable), which this emulator cannot do (it has no XGETBV), so a
    driver that believed it would stop the emulation. `rdseed` (CPUID.(7,0):EBX[18]) and
    `rdrand` (CPUID.1:ECX[30]): the instructions exist; `random`: what each gives, "fresh"
    (8 bytes of os.urandom, CF = 1) or "all ones" (0xFF..FF with CF = 1, every time: the AMD
    parts after a resume, the Zen 2 firmware bug)."""

    RANDOM_SOURCES = ("fresh", "all ones")

    def __init__(self, name, aes=True, avx=False, osxsave=False, rdseed=False, rdrand=False,
                 random="fresh"):
        assert random in self.RANDOM_SOURCES, random
        self.name = name
        self.aes, self.avx, self.osxsave = aes, avx, osxsave
        self.rdseed, self.rdrand, self.random = rdseed, rdrand, random

    def has(self, mnemonic):
        return {"rdseed": self.rdseed, "rdrand": self.rdrand}[mnemonic]

    def random_word(self, bits):
        """One value of RDSEED or RDRAND of `bits` bits: (value, CF)."""
        if self.random == "all ones":
            return (1 << bits) - 1, 1
        return int.from_bytes(os.urandom(bits // 8), "little"), 1

    def leaf(self, eax, ecx):
        if eax == 0:
            return 0xD, 0x68747541, 0x444D4163, 0x69746E65  # AuthenticAMD
        if eax == 1:
            # SSE3, SSSE3, CX16, SSE4.1, SSE4.2 (unicorn's own), and the model's bits.
            ecx1 = 0x00182201 | (1 << 25 if self.aes else 0)
            if self.avx:
                ecx1 |= 1 << 28 | 1 << 26  # AVX, XSAVE
            if self.osxsave:
                ecx1 |= 1 << 27
            if self.rdrand:
                ecx1 |= 1 << 30
            return 0x663, 0x800, ecx1, 0x07088100
        if eax == 7 and ecx == 0:
            ebx7 = ecx7 = 0
            if self.avx:
                ebx7 |= 1 << 5 | 1 << 16 | 1 << 30 | 1 << 31  # AVX2, AVX512F, AVX512BW, AVX512VL
                ecx7 |= 1 << 9 | 1 << 10  # VAES, VPCLMULQDQ
            if self.rdseed:
                ebx7 |= 1 << 18
            return 0, ebx7, ecx7, 0
        return 0, 0, 0, 0


# The emulator's processor: AES-NI, no AVX, no VAES (the transform must take its XMM backend).
CPU_NO_VAES = Cpu("AES-NI, no VAES")
# A processor that reports VAES and AVX-512 where the OS did not enable XSAVE (OSXSAVE clear):
# the driver must not use them, nor even read XCR0.
CPU_VAES_WITHOUT_OS_SUPPORT = Cpu("VAES and AVX-512 reported, XSAVE not enabled", avx=True)
# No AES-NI at all: the portable backend.
CPU_NO_AES_NI = Cpu("no AES-NI", aes=False)
# The random instructions (the default processors have neither, as unicorn itself has not):
# both, RDRAND only, and both broken (all ones with CF set, every time).
CPU_RDSEED_RDRAND = Cpu("AES-NI, RDSEED and RDRAND", rdseed=True, rdrand=True)
CPU_RDRAND_ONLY = Cpu("AES-NI, RDRAND only", rdrand=True)
CPU_RANDOM_ALL_ONES = Cpu("AES-NI, RDSEED and RDRAND returning all ones with CF set",
                          rdseed=True, rdrand=True, random="all ones")

# The destination registers of RDSEED and RDRAND (ModRM.rm, with REX.B): the 64-bit register
# each lives in, and its width. A 32-bit write zero-extends; a 16-bit one keeps bits 16..63.
_GPR64 = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
          "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
_GPR32 = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
          "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d")
_GPR16 = ("ax", "cx", "dx", "bx", "sp", "bp", "si", "di",
          "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w")
DESTINATIONS = {name: (_GPR64[i], bits) for names, bits in ((_GPR64, 64), (_GPR32, 32),
                                                            (_GPR16, 16))
                for i, name in enumerate(names)}
# EFLAGS bits RDSEED and RDRAND write: CF set on success; OF, SF, ZF, AF, PF cleared.
CF, PF, AF, ZF, SF, OF = 1 << 0, 1 << 2, 1 << 4, 1 << 6, 1 << 7, 1 << 11


def registry_values(crash=None, hibernation=None, key=None, data_unit=None, area_start=None,
                    area_end=None, tweak_base=None, backend=None,
                    allow_plaintext_hibernation=None, extra=None):
    """The Parameters key's values as {name: (type, bytes)}; None leaves a value out."""
    values = {}
    for name, value in (("CrashDumpPolicy", crash), ("HibernationPolicy", hibernation),
                        ("DataUnitSize", data_unit), ("TweakBase", tweak_base),
                        ("Backend", backend),
                        ("AllowPlaintextHibernation", allow_plaintext_hibernation)):
        if value is not None:
            values[name] = (REG_DWORD, struct.pack("<I", value))
    for name, value in (("EncryptedAreaStart", area_start), ("EncryptedAreaEnd", area_end)):
        if value is not None:
            values[name] = (REG_QWORD, struct.pack("<Q", value))
    if key is not None:
        values["Key"] = (REG_BINARY, bytes(key))
    values.update(extra or {})
    return values


class Machine:
    """One emulated machine with dumpcrypt.sys loaded (one image copy)."""

    # What each callback may call (docs/design.md): the dump path runs at HIGH_LEVEL, where only
    # KeBugCheckEx is allowed; Dump_Unload runs below DISPATCH_LEVEL and only frees.
    ALLOWED = {
        "DriverEntry": {"RtlGetVersion", "ExAllocatePoolWithTag", "ExFreePoolWithTag",
                        "MmAllocateContiguousNodeMemory", "MmFreeContiguousMemory",
                        "IoAllocateMdl", "MmBuildMdlForNonPagedPool", "IoFreeMdl", "ZwOpenKey",
                        "ZwQueryValueKey", "ZwClose", "KeInitializeEvent",
                        "IoBuildDeviceIoControlRequest", "IofCallDriver",
                        "KeWaitForSingleObject", "__chkstk", "ExCreateCallback",
                        "ExNotifyCallback", "ObfDereferenceObject", "ZwCreateKey",
                        "ZwEnumerateValueKey", "ZwSetValueKey", "ZwDeleteValueKey",
                        "ZwFlushKey"},
        "Dump_Start": {"KeBugCheckEx"},
        "Dump_Write": {"KeBugCheckEx"},
        "Dump_Read": {"KeBugCheckEx"},
        "Dump_Finish": {"KeBugCheckEx"},
        "Dump_Unload": {"ExFreePoolWithTag", "MmFreeContiguousMemory", "IoFreeMdl",
                        "RtlGetVersion", "KeBugCheckEx"},
    }

    # The image sections of the transform's backends, whose code runs are counted.
    COUNTED_SECTIONS = (".aesni", ".vaes")

    def __init__(self, image, os_version=(10, 0, 19045), registry=None, partition_offset=0,
                 provider=None, cpu=CPU_NO_VAES, system_time=134406425801234567):
        self.os_version = os_version
        self.cpu = cpu
        # The provider (docs/provider.md), played by the harness: a function from the query's
        # bytes to the answer's, or None for no provider (no callback object).
        self.provider = provider
        self.callback_references = 0
        self.provider_queries = []
        # None: no Parameters key at all.
        self.registry = registry
        self.partition_offset = partition_offset
        # Parameters\SealedKeys: None until created; then [(name, type, data)] in the order
        # written. Enumerated newest-written first: the registry promises no order.
        self.sealed_keys = None
        self.flushes = []  # the values of SealedKeys at each ZwFlushKey
        # What was done to SealedKeys, in order: (callback, routine, detail), detail the value
        # name and (ZwSetValueKey) its type and size, or the handle (ZwCreateKey, ZwClose).
        self.sealed_log = []
        self.system_time = system_time
        config_path = os.path.join(os.path.dirname(speakeasy.__file__), "configs",
                                   "default.json")
        with open(config_path) as f:
            config = json.load(f)
        config = copy.deepcopy(config)
        config["os_ver"] = {"name": "windows", "major": os_version[0],
                            "minor": os_version[1], "build": os_version[2]}
        config["timeout"] = 600
        config["max_api_count"] = 1_000_000
        config["analysis"] = {"memory_tracing": False, "strings": False}
        config["exceptions"] = {"dispatch_handlers": False}
        self.se = speakeasy.Speakeasy(config=config)
        self.image = image
        self.module = self.se.load_module(path=image)
        self.emu = self.se.emu
        self.base = self.module.base
        self.entry = self.module.base + self.module.ep

        # The call being emulated, and everything it imported.
        self.current = None
        self.calls = defaultdict(Counter)  # callback -> Counter of imports
        self.call_log = []  # (callback, import, args)
        self.bugcheck = None
        self.allocations = {}  # address -> Allocation (live)
        self.freed = []  # (Allocation, bytes at the time it was freed)
        self.handles = {}
        self.next_handle = 0x80000100
        self.irps = {}
        self.stack_depth = defaultdict(int)  # callback -> deepest use in bytes
        self.stack_label = {}  # callback -> the name its stack use is recorded under
        self.hook_errors = []
        self.served = set()

        self._set_up_stack()
        # Each routine with the width of each argument (Q pointer or 64-bit, I 32-bit, B 8-bit):
        # above its width a register argument's bits are undefined in the x64 convention.
        for name, widths in (("RtlGetVersion", "Q"), ("ExAllocatePoolWithTag", "IQI"),
                             ("ExFreePoolWithTag", "QI"),
                             ("MmAllocateContiguousNodeMemory", "QQQQII"),
                             ("MmFreeContiguousMemory", "Q"), ("IoAllocateMdl", "QIBBQ"),
                             ("MmBuildMdlForNonPagedPool", "Q"), ("IoFreeMdl", "Q"),
                             ("ZwOpenKey", "QIQ"), ("ZwQueryValueKey", "QQIQIQ"),
                             ("ZwClose", "Q"), ("KeInitializeEvent", "QIB"),
                             ("IoBuildDeviceIoControlRequest", "IQQIQIBQQ"),
                             ("IofCallDriver", "QQ"), ("KeWaitForSingleObject", "QIBBQ"),
                             ("KeBugCheckEx", "IQQQQ"), ("__chkstk", ""),
                             ("ExCreateCallback", "QQBB"), ("ExNotifyCallback", "QQQ"),
                             ("ObfDereferenceObject", "Q"), ("ZwCreateKey", "QIQIQIQ"),
                             ("ZwEnumerateValueKey", "QIIQIQ"), ("ZwSetValueKey", "QQIIQI"),
                             ("ZwDeleteValueKey", "QQ"), ("ZwFlushKey", "Q")):
            self._hook(name, widths)
        self._map_shared_user_data()
        self.cpuid_calls = Counter()  # (leaf, subleaf) -> count
        # RDSEED and RDRAND as run: mnemonic -> count, and every value given, in order, as
        # (mnemonic, address, value, CF).
        self.random_calls = Counter()
        self.random_log = []
        # probe_frames: function entry -> label; label -> deepest use inside it.
        self.probe_entries = {}
        self.frame_depth = defaultdict(int)
        self.depth_before_probe = 0
        self.probes_running = []
        self.blocks_run = Counter()  # section name -> basic blocks run there
        self._hook_cpuid_and_sections(image)
        # Every import is served by a hook of ours (a wildcard hook cannot do it: speakeasy
        # calls every matching hook and keeps the last one's result).
        unserved = {f"{module}.{name}" for module, name in self.module.import_table.values()
                    if module.lower() != "ntoskrnl" or name not in self.served}
        if unserved:
            raise EmulationError("imports this machine does not serve: %s" % sorted(unserved))

    def _hook_cpuid_and_sections(self, image):
        pe = pefile.PE(image, fast_load=True)
        disassembler = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self.cpuid_sites = []
        self.random_sites = {}  # address -> (mnemonic, destination register, size)
        for section in pe.sections:
            name = section.Name.rstrip(b"\0").decode(errors="replace")
            if not section.Characteristics & 0x20000000:  # IMAGE_SCN_MEM_EXECUTE
                continue
            start = self.base + section.VirtualAddress
            code = section.get_data()[:section.Misc_VirtualSize]
            swept = start
            for address, size, mnemonic, operands in disassembler.disasm_lite(code, start):
                swept = address + size
                if mnemonic == "cpuid":
                    self.cpuid_sites.append(address)
                    self.se.add_code_hook(self._cpuid, begin=address, end=address)
                elif mnemonic in ("rdseed", "rdrand"):
                    if operands not in DESTINATIONS:
                        raise EmulationError("%s %s at %#x: no such destination"
                                             % (mnemonic, operands, address))
                    self.random_sites[address] = (mnemonic, operands, size)
                    self.se.add_code_hook(self._random, begin=address, end=address)
            # The linear sweep stops at the first byte it cannot decode: an instruction past
            # it would not be hooked (the run-time check in `call` would still name it).
            if swept != start + len(code):
                raise EmulationError("the disassembly of %s stopped at %#x of %#x"
                                     % (name, swept - start, len(code)))
            if name in self.COUNTED_SECTIONS:
                end = start + max(section.Misc_VirtualSize, 1) - 1
                self.emu.emu_eng.emu.hook_add(
                    UC_HOOK_BLOCK, lambda uc, address, size, user, name=name:
                    self.blocks_run.update([name]), None, start, end)
        if not self.cpuid_sites:
            raise EmulationError("no CPUID instruction found in the image")

    def _cpuid(self, se, address, size, ctx):
        """Serves one CPUID from the model and steps over the instruction."""
        leaf = se.reg_read("rax") & 0xFFFFFFFF
        subleaf = se.reg_read("rcx") & 0xFFFFFFFF
        self.cpuid_calls[(leaf, subleaf)] += 1
        for register, value in zip(("rax", "rbx", "rcx", "rdx"), self.cpu.leaf(leaf, subleaf)):
            se.reg_write(register, value)
        se.reg_write("rip", address + 2)
        return True

    def _random(self, se, address, size, ctx):
        """Runs one RDSEED or RDRAND as the processor of the model would: #UD (an error here)
        where its CPUID bit is clear; else the word in the destination register (a 32-bit
        destination zero-extended, a 16-bit one merged), CF from the model, OF, SF, ZF, AF and
        PF cleared, and RIP past the instruction."""
        mnemonic, destination, length = self.random_sites[address]
        if not self.cpu.has(mnemonic):
            message = ("%s at %#x on a processor whose CPUID reports no %s (#UD)"
                       % (mnemonic.upper(), address, mnemonic.upper()))
            self.hook_errors.append(message)
            self.emu.on_run_complete()
            return True
        register, bits = DESTINATIONS[destination]
        value, carry = self.cpu.random_word(bits)
        if bits == 16:
            merged = se.reg_read(register) & ~0xFFFF | value
        else:
            merged = value  # 64-bit, or 32-bit zero-extended
        se.reg_write(register, merged)
        flags = se.reg_read("eflags") & ~(CF | PF | AF | ZF | SF | OF)
        se.reg_write("eflags", flags | (CF if carry else 0))
        se.reg_write("rip", address + length)
        self.random_calls[mnemonic] += 1
        self.random_log.append((mnemonic, address, value, carry))
        return True

    def random_bytes_given(self, mnemonic=None):
        """The words RDSEED and RDRAND gave that set CF (of `mnemonic` only, if given), as
        little-endian bytes in the order given."""
        return b"".join(value.to_bytes(8, "little") for name, _, value, carry in self.random_log
                        if carry and (mnemonic is None or name == mnemonic))

    # -- stack use of single functions ----------------------------------------------------------

    def probe_frames(self, pdb, functions):
        """Measures how deep the stack gets inside each of `functions` ({label: a piece of the
        function's mangled name in the PDB's publics}), counted like a callback's depth, from
        the top of the stack: at the function's entry the stack below RSP is painted afresh
        (what was measured there before is kept for the callback), and at every return
        address of a direct call to it the paint is read. Needs `llvm-pdbutil` (LLVM) for the
        publics; returns the labels it could not place (all of them without it)."""
        import re
        import shutil
        import subprocess
        tool = shutil.which("llvm-pdbutil") or shutil.which("llvm-pdbutil-19")
        if tool is None or not os.path.exists(pdb):
            return sorted(functions)
        publics = subprocess.run([tool, "dump", "--publics", pdb], check=True,
                                 capture_output=True, text=True).stdout
        text = [s for s in pefile.PE(self.image, fast_load=True).sections
                if s.Name.rstrip(b"\0") == b".text"][0]
        entries = {}
        for name, offset in re.findall(r"S_PUB32 \[size = \d+\] `([^`]+)`\s+flags = "
                                       r"function, addr = 0001:(\d+)", publics):
            for label, piece in functions.items():
                if piece in name:
                    entries[self.base + text.VirtualAddress + int(offset)] = label
        self.probe_entries.update(entries)
        for address in entries:
            self.se.add_code_hook(self._probe_entry, begin=address, end=address)
        start = self.base + text.VirtualAddress
        disassembler = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        for address, size, mnemonic, operands in disassembler.disasm_lite(
                text.get_data()[:text.Misc_VirtualSize], start):
            if mnemonic == "call" and operands.startswith("0x") and int(operands, 16) in entries:
                label = entries[int(operands, 16)]
                self.se.add_code_hook(lambda se, at, size, ctx, label=label:
                                      self._probe_return(label),
                                      begin=address + size, end=address + size)
        return sorted(set(functions) - set(entries.values()))

    def _stack_depth_now(self):
        """Bytes of the stack used so far, from its top down to the lowest one written."""
        painted = self.read(self.stack_low, STACK_GUARD + KERNEL_STACK_SIZE)
        return len(painted.lstrip(bytes([STACK_PAINT])))

    def _probe_note(self):
        """The depth now counts for the call and for every probed function still running."""
        depth = self._stack_depth_now()
        for label in self.probes_running:
            self.frame_depth[label] = max(self.frame_depth[label], depth)
        self.depth_before_probe = max(self.depth_before_probe, depth)

    def _probe_entry(self, se, address, size, ctx):
        self._probe_note()
        rsp = se.reg_read("rsp")
        self.write(self.stack_low, bytes([STACK_PAINT]) * (rsp - self.stack_low))
        self.probes_running.append(self.probe_entries[address])
        return True

    def _probe_return(self, label):
        self._probe_note()
        if label in self.probes_running:
            del self.probes_running[len(self.probes_running) - 1 -
                                    self.probes_running[::-1].index(label)]
        return True

    def _map_shared_user_data(self):
        """KUSER_SHARED_DATA at its x64 kernel address, with SystemTime (a KSYSTEM_TIME:
        LowPart, High1Time, High2Time) set to this machine's clock."""
        try:
            self.read(SYSTEM_TIME, 12)
        except Exception:
            self.emu.emu_eng.emu.mem_map(KUSER_SHARED_DATA, PAGE)
        high, low = self.system_time >> 32, self.system_time & 0xFFFFFFFF
        self.write(SYSTEM_TIME, struct.pack("<Iii", low, high, high))

    # -- memory -------------------------------------------------------------------------------

    def alloc(self, size, tag="dumpcrypt.harness"):
        """Page-aligned, zeroed emulated memory of whole pages."""
        size = (size + PAGE - 1) & ~(PAGE - 1)
        address = self.se.mem_alloc(size, tag=tag)
        assert address % PAGE == 0, hex(address)
        self.write(address, bytes(size))
        return address

    def read(self, address, size):
        return bytes(self.se.mem_read(address, size))

    def write(self, address, data):
        self.se.mem_write(address, bytes(data))

    def u16(self, address):
        return struct.unpack("<H", self.read(address, 2))[0]

    def u32(self, address):
        return struct.unpack("<I", self.read(address, 4))[0]

    def u64(self, address):
        return struct.unpack("<Q", self.read(address, 8))[0]

    def put(self, address, structure):
        self.write(address, bytes(structure))

    def get(self, address, structure_type):
        return structure_type.from_buffer_copy(self.read(address, ctypes.sizeof(structure_type)))

    def _set_up_stack(self):
        """A 24 KiB kernel stack with a painted guard zone below it."""
        self.stack_low = self.alloc(STACK_GUARD + KERNEL_STACK_SIZE, tag="dumpcrypt.stack")
        self.stack_top = self.stack_low + STACK_GUARD + KERNEL_STACK_SIZE
        # speakeasy's call() puts the return address at stack_base - 0x50 (0x28 it keeps, then
        # the 0x20 home space and the slot itself). The x64 convention wants RSP = 8 (mod 16)
        # at a function's first instruction, as after a `call` from an aligned frame: from a
        # page-aligned base it would be 0 (mod 16), and 16-byte stack slots would be misaligned.
        self.emu.stack_base = self.stack_top - 8
        assert (self.emu.stack_base - 0x50) % 16 == 8

    # -- calling into the image ---------------------------------------------------------------

    def call(self, callback, address, *args):
        """Calls `address` with the Windows x64 convention; returns its NTSTATUS (as u32) or
        the BugCheck that ended it."""
        self.current = callback
        self.bugcheck = None
        self.write(self.stack_low, bytes([STACK_PAINT]) * (STACK_GUARD + KERNEL_STACK_SIZE))
        self.depth_before_probe = 0
        self.probes_running = []
        self.se.call(address, list(args))
        run = self.emu.runs[-1]
        error = getattr(run, "error", None)
        self.current = None
        painted = self.read(self.stack_low, STACK_GUARD + KERNEL_STACK_SIZE)
        untouched = len(painted) - len(painted.lstrip(bytes([STACK_PAINT])))
        # A probe (probe_frames) repainted the stack on the way: what it found counts too.
        depth = max(STACK_GUARD + KERNEL_STACK_SIZE - untouched, self.depth_before_probe)
        label = self.stack_label.get(callback, callback)
        self.stack_depth[label] = max(self.stack_depth[label], depth)
        if depth >= STACK_GUARD + KERNEL_STACK_SIZE:
            raise EmulationError("%s used all %d bytes of the emulated stack and its guard zone"
                                 % (callback, depth))
        if self.hook_errors:
            raise EmulationError(self.hook_errors.pop())
        if self.bugcheck is not None:
            return self.bugcheck
        if error and str(error.get("instr", "")).split(" ")[0] in ("rdseed", "rdrand"):
            # unicorn stopped on one (UC_ERR_INSN_INVALID): the disassembly missed it.
            raise EmulationError("%s: %s at %s, not found by the image's disassembly"
                                 % (callback, error["instr"], error.get("pc")))
        if error:
            raise EmulationError("%s: %s" % (callback, {k: error[k] for k in error
                                                       if k != "traceback"}))
        return run.ret_val & 0xFFFFFFFF

    def imported(self, callback):
        return set(self.calls[callback])

    # -- the ntoskrnl routines ----------------------------------------------------------------

    def arg(self, index):
        if index < 4:
            return self.se.reg_read(("rcx", "rdx", "r8", "r9")[index])
        rsp = self.se.reg_read("rsp")
        return self.u64(rsp + 8 + 8 * index)

    def _hook(self, name, widths):
        handler = getattr(self, "_" + name.lstrip("_"))
        masks = [{"Q": (1 << 64) - 1, "I": (1 << 32) - 1, "B": 0xFF}[w] for w in widths]
        argc = len(widths)

        def hook(emu, api_name, func, params):
            callback = self.current or "(outside any call)"
            args = [self.arg(i) & mask for i, mask in enumerate(masks)]
            self.calls[callback][name] += 1
            self.call_log.append((callback, name, args))
            try:
                return handler(*args)
            except Exception as error:  # speakeasy would swallow it: keep it for the report
                self.hook_errors.append("%s: %s: %r" % (callback, name, error))
                raise

        self.served.add(name)
        self.se.add_api_hook(hook, "ntoskrnl", name, argc=argc,
                             call_conv=arch.CALL_CONV_STDCALL)

    def _chkstk(self):
        # Only probes the stack pages and must leave every register as it was, rax included.
        return self.se.reg_read("rax")

    def _RtlGetVersion(self, info):
        size = self.u32(info)
        if size not in (0x114, 0x11C):
            raise EmulationError("RtlGetVersion: dwOSVersionInfoSize %#x" % size)
        major, minor, build = self.os_version
        self.write(info + 4, struct.pack("<IIII", major, minor, build, 2))
        return STATUS_SUCCESS

    def _pool_type_expected(self):
        return NON_PAGED_POOL_NX if self.os_version[:2] >= (6, 2) else NON_PAGED_POOL

    def _ExAllocatePoolWithTag(self, pool_type, size, tag):
        if pool_type != self._pool_type_expected():
            raise EmulationError("ExAllocatePoolWithTag: pool type %d on %s" %
                                 (pool_type, self.os_version))
        address = self.alloc(size, tag="dumpcrypt.pool")
        self.allocations[address] = Allocation("pool", address, size, {"tag": tag})
        return address

    def _free(self, kind, address, **detail):
        allocation = self.allocations.get(address)
        if allocation is None or allocation.kind != kind:
            raise EmulationError("%s free of %#x, which is no live %s allocation"
                                 % (kind, address, kind))
        for key, value in detail.items():
            if allocation.detail.get(key) != value:
                raise EmulationError("%s free of %#x with %s %r, allocated with %r"
                                     % (kind, address, key, value, allocation.detail.get(key)))
        del self.allocations[address]
        # Memory is kept mapped (a use after free would read stale data, not fault), and what
        # it held at the free is recorded for the wipe checks.
        self.freed.append((allocation, self.read(address, allocation.size)))

    def _ExFreePoolWithTag(self, address, tag):
        self._free("pool", address, tag=tag & 0xFFFFFFFF)
        return None

    def _MmAllocateContiguousNodeMemory(self, size, lowest, highest, boundary, protect, node):
        if protect != 0x04:  # PAGE_READWRITE: non-executable
            raise EmulationError("MmAllocateContiguousNodeMemory: protection %#x" % protect)
        address = self.alloc(size, tag="dumpcrypt.contiguous")
        self.allocations[address] = Allocation("contiguous", address, size, {})
        return address

    def _MmFreeContiguousMemory(self, address):
        self._free("contiguous", address)
        return None

    def _IoAllocateMdl(self, va, length, secondary, charge_quota, irp):
        pages = ((va & (PAGE - 1)) + length + PAGE - 1) // PAGE
        size = MDL_HEADER_SIZE + 8 * pages
        address = self.alloc(size, tag="dumpcrypt.mdl")
        header = MDL_HEADER(Size=size, MdlFlags=0, StartVa=va & ~(PAGE - 1),
                            ByteOffset=va & (PAGE - 1), ByteCount=length)
        self.put(address, header)
        self.allocations[address] = Allocation("mdl", address, size, {})
        return address

    def _MmBuildMdlForNonPagedPool(self, mdl):
        if self.allocations.get(mdl, Allocation("", 0, 0, {})).kind != "mdl":
            raise EmulationError("MmBuildMdlForNonPagedPool on %#x, no MDL of IoAllocateMdl" % mdl)
        header = self.get(mdl, MDL_HEADER)
        pages = (header.ByteOffset + header.ByteCount + PAGE - 1) // PAGE
        pfns = [(header.StartVa >> 12) + i for i in range(pages)]
        self.write(mdl + MDL_HEADER_SIZE, struct.pack("<%dQ" % pages, *pfns))
        header.MappedSystemVa = header.StartVa + header.ByteOffset
        header.MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL
        self.put(mdl, header)
        return None

    def _IoFreeMdl(self, mdl):
        self._free("mdl", mdl)
        return None

    def _read_unicode_string(self, address):
        length, _maximum, buffer = struct.unpack("<HHxxxxQ", self.read(address, 16))
        return self.read(buffer, length).decode("utf-16-le")

    def _ZwOpenKey(self, handle_out, access, attributes):
        name = self._read_unicode_string(self.u64(attributes + 0x10))
        if self.registry is None or name.lower() != PARAMETERS_KEY.lower():
            return STATUS_OBJECT_NAME_NOT_FOUND
        handle = self.next_handle
        self.next_handle += 4
        self.handles[handle] = name
        self.write(handle_out, struct.pack("<Q", handle))
        return STATUS_SUCCESS

    def _ZwQueryValueKey(self, handle, name, information_class, buffer, length, result_length):
        if handle not in self.handles:
            raise EmulationError("ZwQueryValueKey on handle %#x, not open" % handle)
        if information_class != KEY_VALUE_PARTIAL_INFORMATION:
            raise EmulationError("ZwQueryValueKey class %d" % information_class)
        value_name = self._read_unicode_string(name)
        found = {k.lower(): v for k, v in self.registry.items()}.get(value_name.lower())
        if found is None:
            return STATUS_OBJECT_NAME_NOT_FOUND
        value_type, data = found
        needed = 12 + len(data)
        self.write(result_length, struct.pack("<I", needed))
        if length < 12:
            return STATUS_BUFFER_TOO_SMALL
        self.write(buffer, struct.pack("<III", 0, value_type, len(data)))
        if length < needed:
            return STATUS_BUFFER_OVERFLOW
        self.write(buffer + 12, data)
        return STATUS_SUCCESS

    def _sealed_event(self, routine, *detail):
        self.sealed_log.append((self.current, routine) + detail)

    def _ZwClose(self, handle):
        name = self.handles.pop(handle, None)
        if name is None:
            raise EmulationError("ZwClose of handle %#x, not open" % handle)
        if name.lower() == SEALED_KEYS_KEY.lower():
            self._sealed_event("ZwClose", handle)
        return STATUS_SUCCESS

    def _ZwCreateKey(self, handle_out, access, attributes, title_index, class_, options,
                     disposition):
        name = self._read_unicode_string(self.u64(attributes + 0x10))
        flags = self.u32(attributes + 0x18)
        if name.lower() != SEALED_KEYS_KEY.lower():
            raise EmulationError("ZwCreateKey of %r" % name)
        if flags & 0x240 != 0x240 or options != REG_OPTION_NON_VOLATILE:
            raise EmulationError("ZwCreateKey: attributes %#x, options %#x" % (flags, options))
        if self.registry is None:
            return STATUS_OBJECT_NAME_NOT_FOUND  # no Parameters key to create it under
        created = self.sealed_keys is None
        if created:
            self.sealed_keys = []
        if disposition:
            self.write(disposition, struct.pack("<I", 1 if created else 2))
        handle = self.next_handle
        self.next_handle += 4
        self.handles[handle] = name
        self.write(handle_out, struct.pack("<Q", handle))
        self._sealed_event("ZwCreateKey", handle, name, "created" if created else "opened")
        return STATUS_SUCCESS

    def _sealed_handle(self, handle, routine):
        if self.handles.get(handle, "").lower() != SEALED_KEYS_KEY.lower():
            raise EmulationError("%s on handle %#x, not SealedKeys" % (routine, handle))

    def _ZwEnumerateValueKey(self, handle, index, information_class, buffer, length,
                             result_length):
        self._sealed_handle(handle, "ZwEnumerateValueKey")
        if information_class != KEY_VALUE_BASIC_INFORMATION:
            raise EmulationError("ZwEnumerateValueKey class %d" % information_class)
        values = list(reversed(self.sealed_keys))
        self._sealed_event("ZwEnumerateValueKey", index)
        if index >= len(values):
            return STATUS_NO_MORE_ENTRIES
        name, value_type, _ = values[index]
        encoded = name.encode("utf-16-le")
        needed = 12 + len(encoded)
        self.write(result_length, struct.pack("<I", needed))
        if length < 12:
            return STATUS_BUFFER_TOO_SMALL
        self.write(buffer, struct.pack("<III", 0, value_type, len(encoded)))
        if length < needed:
            return STATUS_BUFFER_OVERFLOW
        self.write(buffer + 12, encoded)
        return STATUS_SUCCESS

    def _ZwSetValueKey(self, handle, name, title_index, value_type, data, size):
        self._sealed_handle(handle, "ZwSetValueKey")
        value_name = self._read_unicode_string(name)
        payload = self.read(data, size)
        self._sealed_event("ZwSetValueKey", value_name, value_type, size)
        self.sealed_keys = [v for v in self.sealed_keys if v[0].lower() != value_name.lower()]
        self.sealed_keys.append((value_name, value_type, payload))
        return STATUS_SUCCESS

    def _ZwDeleteValueKey(self, handle, name):
        self._sealed_handle(handle, "ZwDeleteValueKey")
        value_name = self._read_unicode_string(name)
        self._sealed_event("ZwDeleteValueKey", value_name)
        kept = [v for v in self.sealed_keys if v[0].lower() != value_name.lower()]
        if len(kept) == len(self.sealed_keys):
            return STATUS_OBJECT_NAME_NOT_FOUND
        self.sealed_keys = kept
        return STATUS_SUCCESS

    def _ZwFlushKey(self, handle):
        self._sealed_handle(handle, "ZwFlushKey")
        self.flushes.append(list(self.sealed_keys))
        self._sealed_event("ZwFlushKey", handle)
        return STATUS_SUCCESS

    def _KeInitializeEvent(self, event, event_type, state):
        self.write(event, bytes(0x18))
        return None

    def _IoBuildDeviceIoControlRequest(self, code, device, input_buffer, input_length,
                                       output_buffer, output_length, internal, event, io_status):
        irp = self.alloc(0x100, tag="dumpcrypt.irp")
        self.irps[irp] = dict(code=code, device=device, output=output_buffer,
                              output_length=output_length, io_status=io_status)
        return irp

    def _IofCallDriver(self, device, irp):
        request = self.irps.pop(irp, None)
        if request is None or request["device"] != device:
            raise EmulationError("IofCallDriver with an IRP not built for this device")
        if request["code"] != IOCTL_DISK_GET_PARTITION_INFO_EX or request["output_length"] < 0x90:
            raise EmulationError("unexpected IOCTL %#x" % request["code"])
        # PARTITION_INFORMATION_EX: PartitionStyle 1 (GPT), StartingOffset at 8.
        self.write(request["output"], struct.pack("<Iiq", 1, 0, self.partition_offset))
        self.write(request["io_status"], struct.pack("<QQ", 0, 0x90))
        return STATUS_SUCCESS

    def _KeWaitForSingleObject(self, *args):
        return STATUS_SUCCESS

    def _ExCreateCallback(self, object_out, attributes, create, allow_multiple):
        name = self._read_unicode_string(self.u64(attributes + 0x10))
        if name.lower() != PROVIDER_CALLBACK.lower():
            raise EmulationError("ExCreateCallback of %r" % name)
        if create:
            raise EmulationError("dumpcrypt created the provider's callback object")
        if self.provider is None:
            return STATUS_OBJECT_NAME_NOT_FOUND
        self.callback_references += 1
        self.write(object_out, struct.pack("<Q", CALLBACK_OBJECT))
        return STATUS_SUCCESS

    def _ExNotifyCallback(self, callback_object, argument1, argument2):
        if callback_object != CALLBACK_OBJECT or self.callback_references <= 0:
            raise EmulationError("ExNotifyCallback on %#x, not opened" % callback_object)
        query = self.read(argument1, QUERY_SIZE)
        answer_size = struct.unpack_from("<I", query, 0x30)[0]
        self.provider_queries.append(query)
        answer = self.provider(query)
        if answer is not None:
            if len(answer) > answer_size:
                raise EmulationError("the answer is larger than the query's AnswerSize")
            self.write(argument2, answer)
        return None

    def _ObfDereferenceObject(self, callback_object):
        if callback_object != CALLBACK_OBJECT or self.callback_references <= 0:
            raise EmulationError("ObfDereferenceObject of %#x, not referenced" % callback_object)
        self.callback_references -= 1
        return 0

    def _KeBugCheckEx(self, code, p1, p2, p3, p4):
        self.bugcheck = BugCheck(code & 0xFFFFFFFF, p1, p2, p3, p4)
        # KeBugCheckEx does not return: end the call here.
        self.emu.on_run_complete()
        return 0


# ---------------------------------------------------------------------------------------------
# The dump stack's side: structures handed to the filter, guard bytes after them.

GUARD = bytes(range(0xE0, 0x100)) * 2  # 64 recognizable bytes


class DumpStack:
    """Plays crashdmp.sys for one instance of the filter."""

    def __init__(self, machine, dump_type, max_pages_per_write=16, windows8=True,
                 device_object=0, bytes_per_sector=512):
        self.m = machine
        self.dump_type = dump_type
        self.windows8 = windows8
        self.extension_size = FILTER_EXTENSION_SIZE if windows8 else 0x50
        self.init_size = (FILTER_INITIALIZATION_DATA_SIZE if windows8
                          else FILTER_INITIALIZATION_DATA_SIZE_V1)
        page = machine.alloc(PAGE, tag="dumpcrypt.dumpstack")
        self.extension = page
        self.init = page + 0x400
        self.device = device_object or machine.alloc(PAGE, tag="dumpcrypt.device")
        extension = FILTER_EXTENSION(DumpType=dump_type, DeviceObject=self.device,
                                     DiskSize=64 << 30)
        # FILTER_EXTENSION.Geometry (+0x10), DISK_GEOMETRY.BytesPerSector (+0x14 in it).
        extension.Geometry.BytesPerSector = bytes_per_sector
        extension.Geometry.MediaType = 12  # FixedMedia
        extension.PartitionInfo.SizeOfPartitionInfo = 0x18
        extension.PartitionInfo.PartitionStyle = 1
        machine.write(self.extension, bytes(extension)[:self.extension_size] + GUARD)
        # DISK_PARTITION_INFO.Gpt.DiskId, after SizeOfPartitionInfo and PartitionStyle.
        machine.write(self.extension + 0x38, DISK_GUID)
        if windows8:
            machine.write(self.extension + 0x50, struct.pack("<II", 0x58, 0))
        init = FILTER_INITIALIZATION_DATA(MaxPagesPerWrite=max_pages_per_write)
        machine.write(self.init, bytes(init)[:self.init_size] + GUARD)
        self.max_pages_per_write = max_pages_per_write

    def guards_intact(self):
        return (self.m.read(self.extension + self.extension_size, len(GUARD)) == GUARD and
                self.m.read(self.init + self.init_size, len(GUARD)) == GUARD)

    def init_data(self):
        raw = self.m.read(self.init, self.init_size) + bytes(0x40 - self.init_size)
        return FILTER_INITIALIZATION_DATA.from_buffer_copy(raw)

    def set_dump_data(self, value):
        self.m.write(self.extension + 0x48, struct.pack("<Q", value))

    def driver_entry(self):
        status = self.m.call("DriverEntry", self.m.entry, self.extension, self.init)
        if not isinstance(status, BugCheck) and status == STATUS_SUCCESS:
            # The system hands DumpData back in the extension.
            self.set_dump_data(self.init_data().DumpData)
        return status

    def start(self):
        return self.m.call("Dump_Start", self.init_data().DumpStart, self.extension)

    def finish(self):
        return self.m.call("Dump_Finish", self.init_data().DumpFinish, self.extension)

    def unload(self):
        return self.m.call("Dump_Unload", self.init_data().DumpUnload, self.extension)

    def write(self, offset, mdl):
        return self._io("Dump_Write", self.init_data().DumpWrite, offset, mdl)

    def read_back(self, offset, mdl):
        return self._io("Dump_Read", self.init_data().DumpRead, offset, mdl)

    def _io(self, callback, function, offset, mdl):
        offset_address = self.m.alloc(PAGE, tag="dumpcrypt.offset") if offset is not None else 0
        if offset is not None:
            self.m.write(offset_address, struct.pack("<q", offset))
        return self.m.call(callback, function, self.extension, offset_address,
                           mdl.address if mdl is not None else 0)


class CallerMdl:
    """An MDL of the dump stack, in one of the shapes the real stack hands over, describing
    `data` (written at a fresh page-aligned place, `byte_offset` into its first page)."""

    def __init__(self, machine, data, byte_offset=0, flags=MDL_SOURCE_IS_NONPAGED_POOL,
                 extra_slots=0, slots=None, mapped_elsewhere=False):
        self.m = machine
        self.data = bytes(data)
        pages = (byte_offset + len(data) + PAGE - 1) // PAGE
        self.slots = pages + extra_slots if slots is None else slots
        region = machine.alloc(byte_offset + len(data) + 2 * PAGE, tag="dumpcrypt.source")
        machine.write(region + byte_offset, data)
        self.source = region + byte_offset
        start_va = region
        mapped = region + byte_offset
        if mapped_elsewhere:
            # Recent Windows 11: a mapped MDL whose StartVa + ByteOffset is not the mapping.
            # StartVa points to pages holding other data, so reading it gives wrong bytes.
            decoy = machine.alloc(byte_offset + len(data) + PAGE, tag="dumpcrypt.decoy")
            machine.write(decoy, bytes([0xDE, 0xC0]) * ((byte_offset + len(data)) // 2 + 1))
            start_va = decoy
        self.address = machine.alloc(MDL_HEADER_SIZE + 8 * self.slots + len(GUARD),
                                     tag="dumpcrypt.callermdl")
        header = MDL_HEADER(Next=0, Size=MDL_HEADER_SIZE + 8 * self.slots, MdlFlags=flags,
                            Process=0, MappedSystemVa=mapped, StartVa=start_va,
                            ByteCount=len(data), ByteOffset=byte_offset)
        pfns = [(region >> 12) + i for i in range(pages)]
        # Unused slots hold a recognizable value: the filter may not touch those past what
        # it needs.
        pfns += [0x5A5A5A5A5A5A5A5A] * (self.slots - len(pfns))
        self.raw_before = bytes(header) + struct.pack("<%dQ" % self.slots, *pfns[:self.slots])
        machine.write(self.address, self.raw_before + GUARD)

    def header(self):
        return self.m.get(self.address, MDL_HEADER)

    def pfns(self, count=None):
        count = self.slots if count is None else count
        return list(struct.unpack("<%dQ" % count,
                                  self.m.read(self.address + MDL_HEADER_SIZE, 8 * count)))

    def raw(self):
        return self.m.read(self.address, len(self.raw_before))

    def guard_intact(self):
        return self.m.read(self.address + len(self.raw_before), len(GUARD)) == GUARD

    def by_dma(self):
        """The bytes a DMA engine would move: pages from the PFN array, ByteOffset and
        ByteCount applied."""
        header = self.header()
        pages = (header.ByteOffset + header.ByteCount + PAGE - 1) // PAGE
        data = b"".join(self.m.read(pfn << 12, PAGE) for pfn in self.pfns(pages))
        return data[header.ByteOffset:header.ByteOffset + header.ByteCount]

    def by_cpu(self):
        """The bytes a PIO driver would move: from MappedSystemVa."""
        header = self.header()
        return self.m.read(header.MappedSystemVa, header.ByteCount)

    def source_now(self):
        return self.m.read(self.source, len(self.data))
