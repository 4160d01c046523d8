"""Runs the real dumpcrypt.sys under the speakeasy kernel emulator and checks it as the crash
dump and hibernation stacks would: DriverEntry, Dump_Start, Dump_Write with every MDL shape,
Dump_Finish, Dump_Read, Dump_Unload, the bug checks, and what each callback imports.

Usage: run_sys.py IMAGE.sys [IMAGE.sys ...] [--report FILE]
Prints one line per check and closes with 'N passed, N failed'; exits 1 on any failure.
The expected ciphertext is computed here with `cryptography`'s XTS-AES-256, independently of
the driver's code.
"""

import argparse
import base64
import json
import os
import random
import struct
import sys
import time
import traceback

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import (  # noqa: E402
    ANSWER_SIZE, CPU_NO_AES_NI, CPU_NO_VAES, CPU_RANDOM_ALL_ONES, CPU_RDRAND_ONLY,
    CPU_RDSEED_RDRAND, CPU_VAES_WITHOUT_OS_SUPPORT, DISK_GUID, KERNEL_STACK_SIZE, PAGE,
    BugCheck, CallerMdl, DumpStack, EmulationError, Machine, MDL_MAPPED_TO_SYSTEM_VA,
    REG_BINARY, REG_DWORD, SEALED_KEYS_KEY,
    MDL_PAGES_LOCKED, MDL_PARTIAL, MDL_SOURCE_IS_NONPAGED_POOL, STATUS_ACCESS_DENIED,
    STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
    registry_values)

# DriverEntry expands the AES-256 key schedules: 5.7 KiB measured with the hardware backends'
# (AES-NI's, shared by the VAES backends; 2026-12-02, the raw Parameters values in a pool
# block of their own: 9.1 KiB while they were returned on the stack), 10 KiB with the
# portable backend's (the `aes` crate's two schedules, about 1 KiB each, and their
# temporaries), which only processors without AES-NI, or Backend 4, take. Every other
# callback: under 2.3 KiB measured.
# The sealed key source's DriverEntry (draw, seal, store) is measured under its own name
# against the same 8 KiB.
RELEASE_STACK_BUDGET = {"DriverEntry": 8 * 1024, "DriverEntry, sealed key": 8 * 1024,
                        "DriverEntry, portable backend": 10752}
DUMP_PATH_STACK_BUDGET = 4 * 1024

BUGCHECK_CODE = 0x44435259  # 'DCRY'
CRASH, HIBERNATION = 1, 2
WIN10 = (10, 0, 19045)
WIN7 = (6, 1, 7601)
DUMP_PATH = ("Dump_Start", "Dump_Write", "Dump_Read", "Dump_Finish")
MASK64 = (1 << 64) - 1


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.prefix = ""
        self.machines = []

    def check(self, name, condition, detail=""):
        if condition:
            self.passed += 1
            print("ok     %s%s" % (self.prefix, name))
        else:
            self.failed += 1
            print("FAILED %s%s%s" % (self.prefix, name, (": " + str(detail)) if detail else ""))
        return condition

    def equal(self, name, actual, expected):
        def show(value):
            if isinstance(value, int) and not isinstance(value, bool):
                return hex(value)
            if isinstance(value, bytes):
                return "%d bytes %s..." % (len(value), value[:16].hex())
            return repr(value)
        return self.check(name, actual == expected,
                          "got %s, expected %s" % (show(actual), show(expected)))


# ---------------------------------------------------------------------------------------------
# The oracle.


def xts_units(key, data, first_unit, unit, decrypt=False):
    out = bytearray()
    for i in range(0, len(data), unit):
        tweak = (first_unit + i // unit).to_bytes(16, "little")
        cipher = Cipher(algorithms.AES(key), modes.XTS(tweak))
        worker = cipher.decryptor() if decrypt else cipher.encryptor()
        out += worker.update(data[i:i + unit]) + worker.finalize()
    return bytes(out)


def expected_ciphertext(key, plain, offset, unit=512, area=(0, MASK64), tweak_offset=0,
                        blanked=False):
    """What Dump_Write must hand down: the part inside the area encrypted (zeros, `blanked`:
    the crash dump copy after its keys were wiped), the rest as is."""
    position = offset + tweak_offset
    low, high = max(position, area[0]), min(position + len(plain), area[1])
    out = bytearray(plain)
    if low < high:
        start, end = low - position, high - position
        out[start:end] = (bytes(end - start) if blanked
                          else xts_units(key, plain[start:end], low // unit, unit))
    return bytes(out)


# ---------------------------------------------------------------------------------------------


class Scenario:
    def __init__(self, results, image, name, os_version=WIN10, registry=None,
                 partition_offset=0, provider=None, cpu=CPU_NO_VAES):
        self.r = results
        self.image = image
        self.m = Machine(image, os_version=os_version, registry=registry,
                         partition_offset=partition_offset, provider=provider, cpu=cpu)
        results.machines.append(self.m)
        results.prefix = "%s: %s: " % (os.path.basename(os.path.dirname(image)) or image, name)

    def load(self, dump_type, pages=16, expect=STATUS_SUCCESS, windows8=True,
             bytes_per_sector=512):
        stack = DumpStack(self.m, dump_type, max_pages_per_write=pages, windows8=windows8,
                          bytes_per_sector=bytes_per_sector)
        extension_before = self.m.read(stack.extension, 0x58)
        status = stack.driver_entry()
        self.r.equal("DriverEntry(%s) status" % dump_name(dump_type), status, expect)
        self.r.check("DriverEntry leaves the extension and the guard bytes alone",
                     self.m.read(stack.extension, stack.extension_size) ==
                     extension_before[:stack.extension_size] or status == STATUS_SUCCESS
                     and self.m.read(stack.extension, 0x48) == extension_before[:0x48])
        self.r.check("guard bytes after FILTER_EXTENSION and FILTER_INITIALIZATION_DATA intact",
                     stack.guards_intact())
        return stack

    def check_init(self, stack, windows8=True):
        init = stack.init_data()
        r = self.r
        r.equal("MajorVersion", init.MajorVersion, 2 if windows8 else 1)
        r.equal("MinorVersion", init.MinorVersion, 0)
        r.check("Flags has DUMP_FILTER_CRITICAL (0x1)", init.Flags & 1, hex(init.Flags))
        r.equal("MaxPagesPerWrite kept", init.MaxPagesPerWrite, stack.max_pages_per_write)
        text_low = self.m.base + 0x1000
        text_high = self.m.base + self.m.module.image_size
        callbacks = {"DumpStart": init.DumpStart, "DumpWrite": init.DumpWrite,
                     "DumpFinish": init.DumpFinish, "DumpUnload": init.DumpUnload}
        if windows8:
            callbacks["DumpRead"] = init.DumpRead
        for name, address in callbacks.items():
            r.check("%s points into the image" % name, text_low <= address < text_high,
                    hex(address))
        r.check("DumpData set", init.DumpData != 0)
        if not windows8:
            r.check("nothing written at 0x38 and after on Windows 7", stack.guards_intact())

    def buffers(self):
        return [a for a in self.m.allocations.values() if a.kind == "contiguous"]

    def expect_bugcheck(self, what, result, p1, p2=None, p3=None, p4=None):
        r = self.r
        if not r.check("%s ends in KeBugCheckEx" % what, isinstance(result, BugCheck),
                       "returned %r" % (result,)):
            return
        r.equal("%s: bug check code 'DCRY'" % what, result.code, BUGCHECK_CODE)
        r.equal("%s: P1 (rule)" % what, result.p1, p1)
        if p2 is not None:
            r.equal("%s: P2" % what, result.p2, p2 & MASK64)
        if p3 is not None:
            r.equal("%s: P3" % what, result.p3, p3 & MASK64)
        if p4 is not None:
            r.equal("%s: P4 (callback)" % what, result.p4, p4)

    def check_write(self, stack, what, offset, mdl, key, unit=512, area=(0, MASK64),
                    tweak_offset=0, blanked=False):
        """Dump_Write of `mdl` at `offset` in encrypt mode, and everything it must leave
        (`blanked`: zeros inside the area instead of ciphertext)."""
        r = self.r
        before = CallerMdlSnapshot(mdl)
        status = stack.write(offset, mdl)
        r.equal("%s: Dump_Write status" % what, status, STATUS_SUCCESS)
        if status != STATUS_SUCCESS:
            return None
        header = mdl.header()
        buffer = [a for a in self.buffers()
                  if a.address <= header.MappedSystemVa < a.address + a.size]
        r.check("%s: MappedSystemVa in the secondary buffer" % what, len(buffer) == 1,
                hex(header.MappedSystemVa))
        r.check("%s: buffer page aligned (StartVa = MappedSystemVa, ByteOffset 0)" % what,
                header.StartVa == header.MappedSystemVa and header.StartVa % PAGE == 0
                and header.ByteOffset == 0,
                "StartVa %#x MappedSystemVa %#x ByteOffset %#x" % (
                    header.StartVa, header.MappedSystemVa, header.ByteOffset))
        r.check("%s: ByteCount, MdlFlags, Size, Next, Process unchanged" % what,
                (header.ByteCount, header.MdlFlags, header.Size, header.Next, header.Process)
                == before.fixed)
        needed = (header.ByteCount + PAGE - 1) // PAGE
        pfns = mdl.pfns()
        r.equal("%s: PFNs describe the buffer" % what, pfns[:needed],
                [(header.StartVa >> 12) + i for i in range(needed)])
        r.equal("%s: PFN slots past the transfer untouched" % what, pfns[needed:],
                before.pfns[needed:])
        r.check("%s: bytes after the MDL untouched" % what, mdl.guard_intact())
        expected = expected_ciphertext(key, mdl.data, offset, unit, area, tweak_offset,
                                       blanked)
        r.equal("%s: data by PFN (DMA) is %s" % (
                    what, "zeros inside the area, the rest as is" if blanked
                    else "the XTS-AES-256 ciphertext"), mdl.by_dma(), expected)
        r.equal("%s: data by MappedSystemVa (PIO) is the same" % what, mdl.by_cpu(), expected)
        r.check("%s: caller's source buffer untouched" % what, mdl.source_now() == mdl.data)
        return expected

    def check_backend(self, xmm):
        """Which transform ran: the XMM backend's section (`xmm`) or neither of the two (the
        portable backend); never the VAES section, which this emulator could not run."""
        ran = self.m.blocks_run
        self.r.check("the VAES backends' code (.vaes) never ran", ran[".vaes"] == 0,
                     "%d blocks" % ran[".vaes"])
        if xmm:
            self.r.check("the XMM backend's code (.aesni) ran", ran[".aesni"] > 0)
        else:
            self.r.check("the XMM backend's code (.aesni) did not run (portable backend)",
                         ran[".aesni"] == 0, "%d blocks" % ran[".aesni"])

    def check_imports(self, allowed_extra=()):
        for callback, counter in self.m.calls.items():
            allowed = Machine.ALLOWED.get(callback, set()) | set(allowed_extra)
            self.r.check("imports called from %s are allowed there" % callback,
                         set(counter) <= allowed, sorted(set(counter) - allowed))

    def check_no_leaks(self, key=None):
        r = self.r
        r.equal("every allocation freed at unload", sorted(
            "%s@%#x" % (a.kind, a.address) for a in self.m.allocations.values()), [])
        for allocation, contents in self.m.freed:
            if allocation.kind == "contiguous":
                r.check("secondary buffer wiped before it was freed",
                        contents == bytes(len(contents)))
            if key is not None and allocation.kind == "pool":
                leaked = [i for i in range(0, len(key), 16) if key[i:i + 16] in contents]
                r.check("no key material left in the freed context", not leaked,
                        "key bytes %s found" % leaked)


class CallerMdlSnapshot:
    def __init__(self, mdl):
        header = mdl.header()
        self.fixed = (header.ByteCount, header.MdlFlags, header.Size, header.Next,
                      header.Process)
        self.pfns = mdl.pfns()


def dump_name(dump_type):
    return {CRASH: "crash dump", HIBERNATION: "hibernation"}.get(dump_type, str(dump_type))


def random_bytes(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def make_key(rng):
    return random_bytes(rng, 64)


# ---------------------------------------------------------------------------------------------
# The scenarios.


def encrypt_on_windows10(results, image, report):
    rng = random.Random(1)
    key = make_key(rng)
    s = Scenario(results, image, "encrypt, Windows 10",
                 registry=registry_values(crash=1, hibernation=1, key=key, data_unit=512))
    r, m = s.r, s.m
    crash = s.load(CRASH, pages=16)
    s.check_init(crash)
    r.check("DriverEntry allocated a page-aligned secondary buffer of MaxPagesPerWrite pages",
            any(a.size == 16 * PAGE and a.address % PAGE == 0 for a in s.buffers()))
    hibernation = s.load(HIBERNATION, pages=8)
    s.check_init(hibernation)

    # The crash dump driver writes and reads its DumpStack.log through the dump stack at boot,
    # before any Dump_Start: encrypted and decrypted like any other transfer (0x07 retired).
    plain = random_bytes(rng, 4 * PAGE)
    ciphertext = s.check_write(crash, "write before Dump_Start (DumpStack.log at boot)",
                               0x500000, CallerMdl(m, plain, flags=MDL_SOURCE_IS_NONPAGED_POOL),
                               key)
    if ciphertext is not None:
        mdl = CallerMdl(m, ciphertext, flags=MDL_MAPPED_TO_SYSTEM_VA)
        r.equal("read before Dump_Start: Dump_Read", crash.read_back(0x500000, mdl),
                STATUS_SUCCESS)
        r.equal("read before Dump_Start: the plaintext", mdl.by_cpu(), plain)

    r.equal("Dump_Start (crash)", crash.start(), STATUS_SUCCESS)
    shapes = [
        ("nonpaged pool, 8 pages", 0x100000,
         dict(data=random_bytes(rng, 8 * PAGE), flags=MDL_SOURCE_IS_NONPAGED_POOL)),
        ("mapped, StartVa != MappedSystemVa, ByteOffset 0x200", 0x200000,
         dict(data=random_bytes(rng, 3 * PAGE), byte_offset=0x200,
              flags=MDL_MAPPED_TO_SYSTEM_VA | MDL_PAGES_LOCKED, mapped_elsewhere=True)),
        ("short last page, ByteOffset 0x600", 0x300000,
         dict(data=random_bytes(rng, 2 * PAGE + 1024), byte_offset=0x600,
              flags=MDL_SOURCE_IS_NONPAGED_POOL)),
        ("13 extra PFN slots", 0x400000,
         dict(data=random_bytes(rng, 3 * PAGE), extra_slots=13,
              flags=MDL_MAPPED_TO_SYSTEM_VA | MDL_PAGES_LOCKED)),
        ("largest write, MaxPagesPerWrite pages", 0,
         dict(data=random_bytes(rng, 16 * PAGE), flags=MDL_SOURCE_IS_NONPAGED_POOL)),
        ("partial MDL, one data unit at ByteOffset 0xE00", 0x1200,
         dict(data=random_bytes(rng, 512), byte_offset=0xE00,
              flags=MDL_MAPPED_TO_SYSTEM_VA | MDL_PARTIAL)),
    ]
    for what, offset, shape in shapes:
        s.check_write(crash, what, offset, CallerMdl(m, **shape), key)
    r.equal("Dump_Finish (crash)", crash.finish(), STATUS_SUCCESS)
    crash_buffer = [a for a in s.buffers() if a.size == 16 * PAGE][0]
    r.check("Dump_Finish wiped the secondary buffer",
            m.read(crash_buffer.address, crash_buffer.size) == bytes(crash_buffer.size))
    # The crash dump copy wiped its keys at Dump_Finish: no second dump; a write (the crash
    # dump driver finalizing its log) is blanked; a second Dump_Finish is harmless.
    r.equal("Dump_Start again on the crash dump copy (keys wiped: refused)", crash.start(),
            STATUS_ACCESS_DENIED)
    s.check_write(crash, "write after the crash dump copy's Dump_Finish", 0x8000,
                  CallerMdl(m, random_bytes(rng, PAGE)), key, blanked=True)
    r.equal("Dump_Finish again", crash.finish(), STATUS_SUCCESS)

    # Hibernation: write, then read back on resume through Dump_Read.
    r.equal("Dump_Start (hibernation)", hibernation.start(), STATUS_SUCCESS)
    written = []
    for offset, data, flags in ((0x40000, random_bytes(rng, 8 * PAGE),
                                 MDL_SOURCE_IS_NONPAGED_POOL),
                                (0x90000, random_bytes(rng, 5 * PAGE + 512),
                                 MDL_MAPPED_TO_SYSTEM_VA)):
        mdl = CallerMdl(m, data, flags=flags)
        ciphertext = s.check_write(hibernation, "hibernation write at %#x" % offset, offset,
                                   mdl, key)
        written.append((offset, data, ciphertext))
    r.equal("Dump_Finish (hibernation)", hibernation.finish(), STATUS_SUCCESS)
    for offset, plain, ciphertext in written:
        if ciphertext is None:
            continue
        mdl = CallerMdl(m, ciphertext, byte_offset=0x400,
                        flags=MDL_MAPPED_TO_SYSTEM_VA | MDL_PAGES_LOCKED, mapped_elsewhere=True)
        status = hibernation.read_back(offset, mdl)
        r.equal("Dump_Read at %#x status" % offset, status, STATUS_SUCCESS)
        r.equal("Dump_Read at %#x restores the plaintext in place" % offset,
                mdl.by_cpu(), plain)
        r.equal("Dump_Read at %#x leaves the MDL as it was" % offset, mdl.raw(),
                mdl.raw_before)
    # The hibernation copy keeps its keys at Dump_Finish: a write afterwards is encrypted, and
    # a second hibernation starts.
    s.check_write(hibernation, "hibernation write after Dump_Finish", 0xC0000,
                  CallerMdl(m, random_bytes(rng, 2 * PAGE)), key)
    r.equal("Dump_Start again (a second hibernation)", hibernation.start(), STATUS_SUCCESS)
    s.check_write(hibernation, "second hibernation", 0x40000,
                  CallerMdl(m, random_bytes(rng, PAGE)), key)
    r.equal("Dump_Finish (second hibernation)", hibernation.finish(), STATUS_SUCCESS)

    r.equal("Dump_Unload (crash)", crash.unload(), STATUS_SUCCESS)
    r.equal("Dump_Unload (hibernation)", hibernation.unload(), STATUS_SUCCESS)
    s.check_no_leaks(key)
    s.check_imports()
    s.check_backend(xmm=True)
    report["blocks_run_per_section"] = dict(m.blocks_run)
    stale = CallerMdl(m, random_bytes(rng, PAGE))
    s.expect_bugcheck("Dump_Write after Dump_Unload", crash.write(0, stale), 0x09,
                      p4=2)
    report["per_callback_imports"] = {
        callback: dict(m.calls.get(callback, {}))
        for callback in ("DriverEntry",) + DUMP_PATH + ("Dump_Unload",)}


def windows7(results, image, report):
    rng = random.Random(7)
    key = make_key(rng)
    s = Scenario(results, image, "encrypt, Windows 7", os_version=WIN7,
                 registry=registry_values(crash=1, hibernation=1, key=key))
    r, m = s.r, s.m
    crash = s.load(CRASH, pages=4, windows8=False)
    s.check_init(crash, windows8=False)
    r.equal("Dump_Start", crash.start(), STATUS_SUCCESS)
    s.check_write(crash, "write", 0x6000, CallerMdl(m, random_bytes(rng, 3 * PAGE)), key)
    r.equal("Dump_Finish", crash.finish(), STATUS_SUCCESS)
    r.equal("Dump_Unload", crash.unload(), STATUS_SUCCESS)
    s.check_no_leaks(key)
    s.check_imports()
    r.check("guard bytes still intact at the end", crash.guards_intact())


def passthrough(results, image, report):
    rng = random.Random(3)
    for label, registry in (("no Parameters key", None),
                            ("policy 0", registry_values(crash=0, hibernation=0))):
        s = Scenario(results, image, "passthrough, " + label, registry=registry)
        r, m = s.r, s.m
        stack = s.load(HIBERNATION)
        s.check_init(stack)
        r.check("no secondary buffer for passthrough", not s.buffers())
        r.equal("Dump_Start", stack.start(), STATUS_SUCCESS)
        for flags, byte_offset in ((MDL_SOURCE_IS_NONPAGED_POOL, 0),
                                   (MDL_MAPPED_TO_SYSTEM_VA, 0x200), (0, 0x10)):
            mdl = CallerMdl(m, random_bytes(rng, 2 * PAGE), byte_offset=byte_offset,
                            flags=flags)
            r.equal("Dump_Write (flags %#x)" % flags, stack.write(0x1000, mdl), STATUS_SUCCESS)
            r.check("Dump_Write (flags %#x) leaves the MDL and data alone" % flags,
                    mdl.raw() == mdl.raw_before and mdl.source_now() == mdl.data)
            r.equal("Dump_Read (flags %#x)" % flags, stack.read_back(0x1000, mdl),
                    STATUS_SUCCESS)
            r.check("Dump_Read (flags %#x) leaves the MDL and data alone" % flags,
                    mdl.raw() == mdl.raw_before and mdl.source_now() == mdl.data)
        r.equal("Dump_Finish", stack.finish(), STATUS_SUCCESS)
        r.equal("Dump_Unload", stack.unload(), STATUS_SUCCESS)
        s.check_no_leaks()
        s.check_imports()


def refuse(results, image, report):
    rng = random.Random(4)
    s = Scenario(results, image, "refuse", registry=registry_values(crash=2, hibernation=0))
    r, m = s.r, s.m
    stack = s.load(CRASH)
    status = stack.start()
    r.equal("Dump_Start fails (STATUS_ACCESS_DENIED)", status, STATUS_ACCESS_DENIED)
    mdl = CallerMdl(m, random_bytes(rng, PAGE))
    s.expect_bugcheck("Dump_Write under refuse", stack.write(0x3000, mdl), 0x06, 0x3000, 0, 2)
    r.check("the refused write's MDL and data untouched",
            mdl.raw() == mdl.raw_before and mdl.source_now() == mdl.data)
    r.equal("Dump_Unload", stack.unload(), STATUS_SUCCESS)
    s.check_no_leaks()
    s.check_imports()


def faults(results, image, report):
    rng = random.Random(5)
    key = make_key(rng)
    s = Scenario(results, image, "faults",
                 registry=registry_values(crash=1, hibernation=1, key=key))
    r, m = s.r, s.m

    def instance(dump_type=CRASH, started=True):
        stack = DumpStack(m, dump_type, max_pages_per_write=16)
        assert stack.driver_entry() == STATUS_SUCCESS
        if started:
            assert stack.start() == STATUS_SUCCESS
        return stack

    def fault(what, p1, p2, p3, p4, call):
        result = call()
        s.expect_bugcheck(what, result, p1, p2, p3, p4)

    def write_case(what, p1, p2, p3, offset=0, started=True, **shape):
        stack = instance(started=started)
        data = shape.pop("data", None) or random_bytes(rng, 2 * PAGE)
        mdl = CallerMdl(m, data, **shape)
        fault(what, p1, p2, p3, 2, lambda: stack.write(offset, mdl))
        r.check("%s: the MDL and data left untouched" % what,
                mdl.raw() == mdl.raw_before and mdl.source_now() == mdl.data)
        return mdl

    write_case("misaligned offset", 0x02, 0x100, 512, offset=0x100)
    write_case("misaligned length", 0x03, 1000, 512, data=random_bytes(rng, 1000))
    write_case("oversize write", 0x01, 17 * PAGE, 16 * PAGE, data=random_bytes(rng, 17 * PAGE))
    mdl = write_case("unmapped MDL (flags 0)", 0x04, 0, None, flags=0)
    write_case("PFN array too small", 0x05, 3, 2, data=random_bytes(rng, 3 * PAGE), slots=2)
    write_case("negative offset", 0x0A, -512, 2 * PAGE, offset=-512)

    stack = instance()
    mdl = CallerMdl(m, random_bytes(rng, PAGE))
    fault("null MDL", 0x08, 3, 0, 2, lambda: stack.write(0, None))
    fault("null offset", 0x08, 2, 0, 2, lambda: stack._io("Dump_Write",
                                                          stack.init_data().DumpWrite,
                                                          None, mdl))
    assert stack.write(0x2000, mdl) == STATUS_SUCCESS
    buffer = mdl.header().MappedSystemVa
    fault("a retargeted MDL written again", 0x0B, buffer, 0, 2,
          lambda: stack.write(0x2000, mdl))

    stack = instance()
    stack.set_dump_data(0x1234000)
    fault("unknown context", 0x09, 0x1234000, 0, 1, stack.start)
    stack = instance()
    m.write(stack.extension, struct.pack("<I", HIBERNATION))
    fault("dump type mismatch", 0x0C, CRASH, HIBERNATION, 1, stack.start)

    hibernation = instance(HIBERNATION)
    mdl = CallerMdl(m, random_bytes(rng, PAGE), flags=MDL_MAPPED_TO_SYSTEM_VA)
    fault("Dump_Read at a misaligned offset", 0x02, 0x100, 512, 3,
          lambda: hibernation.read_back(0x100, mdl))
    r.check("the faulting read left the data alone", mdl.source_now() == mdl.data)

    stack = instance(started=False)
    context = stack.init_data().DumpData
    assert stack.unload() == STATUS_SUCCESS
    fault("Dump_Unload twice", 0x09, context, 0, 5, stack.unload)
    s.check_imports()
    r.check("the dump path called nothing but KeBugCheckEx",
            all(set(m.calls[c]) <= {"KeBugCheckEx"} for c in DUMP_PATH))


def expect_refusing(s, stack, what=""):
    """A refusing instance: loaded, Dump_Start STATUS_ACCESS_DENIED, a write anyway bug check
    0x06 WriteRefused with the MDL and data untouched, Dump_Unload frees everything."""
    r, m = s.r, s.m
    r.equal("%sDump_Start refused (STATUS_ACCESS_DENIED)" % what, stack.start(),
            STATUS_ACCESS_DENIED)
    mdl = CallerMdl(m, bytes(range(256)) * (PAGE // 256))
    s.expect_bugcheck("%sa write anyway" % what, stack.write(0x3000, mdl), 0x06, 0x3000, 0, 2)
    r.check("%sthe refused write's MDL and data untouched" % what,
            mdl.raw() == mdl.raw_before and mdl.source_now() == mdl.data)
    r.equal("%sDump_Unload" % what, stack.unload(), STATUS_SUCCESS)


def driver_entry_refusals(results, image, report):
    """DriverEntry fails only for the system's own arguments; an invalid configuration loads
    a refusing instance, on Windows 7 as on Windows 10 (a failed load gives no dump only where
    DUMP_FILTER_CRITICAL is honoured, documented from Windows 8)."""
    rng = random.Random(6)
    key = make_key(rng)
    good = registry_values(crash=1, hibernation=1, key=key)
    for what, registry, dump_type, pages in (
            ("MaxPagesPerWrite 0", good, CRASH, 0),
            ("DumpType undefined", good, 0, 16)):
        s = Scenario(results, image, "DriverEntry fails: " + what, registry=registry)
        r, m = s.r, s.m
        stack = DumpStack(m, dump_type, max_pages_per_write=pages)
        status = stack.driver_entry()
        r.equal("status STATUS_INVALID_PARAMETER", status, STATUS_INVALID_PARAMETER)
        init = stack.init_data()
        r.check("version and flags set before failing",
                init.MajorVersion == 2 and init.MinorVersion == 0 and init.Flags & 1)
        r.check("no callback or DumpData handed over",
                (init.DumpStart, init.DumpWrite, init.DumpFinish, init.DumpUnload,
                 init.DumpData, init.DumpRead) == (0,) * 6)
        r.check("guard bytes intact", stack.guards_intact())
        s.check_no_leaks()
        s.check_imports()

    # Each invalid for its own reason alone (hibernation refused where crash dumps encrypt,
    # so that no case is also a key beside plaintext hibernation).
    invalid = [
        ("key of 32 bytes", registry_values(crash=1, hibernation=2, key=key[:32])),
        ("equal key halves", registry_values(crash=1, hibernation=2, key=key[:32] * 2)),
        ("unknown policy", registry_values(crash=7)),
        ("encrypt without key", registry_values(crash=1, hibernation=2)),
        ("data unit 1000", registry_values(crash=1, hibernation=2, key=key, data_unit=1000)),
        ("area start >= end", registry_values(crash=1, hibernation=2, key=key,
                                              area_start=0x2000, area_end=0x1000)),
        ("Backend 5", registry_values(crash=1, hibernation=2, key=key, backend=5)),
        ("a key beside plaintext hibernation", registry_values(crash=1, key=key)),
        ("AllowPlaintextHibernation 2", registry_values(crash=1, key=key,
                                                        allow_plaintext_hibernation=2)),
    ]
    for what, registry in invalid:
        for os_name, os_version, windows8 in (("Windows 10", WIN10, True),
                                              ("Windows 7", WIN7, False)):
            s = Scenario(results, image, "invalid configuration (%s), %s: a refusing instance"
                         % (what, os_name), os_version=os_version, registry=registry)
            r, m = s.r, s.m
            stack = s.load(CRASH, windows8=windows8)
            s.check_init(stack, windows8=windows8)
            r.check("no secondary buffer for a refusing instance", not s.buffers())
            expect_refusing(s, stack)
            s.check_no_leaks(key)
            s.check_imports()

    # The same key beside plaintext hibernation, accepted with AllowPlaintextHibernation 1.
    s = Scenario(results, image, "AllowPlaintextHibernation 1: crash dumps encrypted",
                 registry=registry_values(crash=1, key=key, allow_plaintext_hibernation=1))
    r, m = s.r, s.m
    crash = s.load(CRASH)
    hibernation = s.load(HIBERNATION)
    r.equal("Dump_Start (crash)", crash.start(), STATUS_SUCCESS)
    s.check_write(crash, "write", 0x4000, CallerMdl(m, random_bytes(rng, 2 * PAGE)), key)
    r.equal("Dump_Start (hibernation, passthrough)", hibernation.start(), STATUS_SUCCESS)
    mdl = CallerMdl(m, random_bytes(rng, PAGE))
    r.equal("hibernation write passed through", hibernation.write(0x4000, mdl), STATUS_SUCCESS)
    r.check("the passthrough write's MDL and data untouched",
            mdl.raw() == mdl.raw_before and mdl.source_now() == mdl.data)
    r.equal("Dump_Unload (crash)", crash.unload(), STATUS_SUCCESS)
    r.equal("Dump_Unload (hibernation)", hibernation.unload(), STATUS_SUCCESS)
    s.check_no_leaks(key)
    s.check_imports()

    s = Scenario(results, image, "DriverEntry as an ordinary service", registry=good)
    r, m = s.r, s.m
    driver_object = m.alloc(PAGE)
    registry_path = m.alloc(PAGE)
    m.write(driver_object, struct.pack("<HH", 4, 0x150) + bytes(range(256)))
    m.write(registry_path, bytes(range(256)))
    status = m.call("DriverEntry", m.entry, driver_object, registry_path)
    r.equal("status STATUS_NOT_SUPPORTED", status, STATUS_NOT_SUPPORTED)
    r.check("DRIVER_OBJECT and registry path untouched",
            m.read(driver_object, 260) == struct.pack("<HH", 4, 0x150) + bytes(range(256))
            and m.read(registry_path, 256) == bytes(range(256)))
    r.check("nothing allocated, nothing imported but RtlGetVersion at most",
            not m.allocations and set(m.calls["DriverEntry"]) <= {"RtlGetVersion", "__chkstk"})


def disk_tweak_4096(results, image, report):
    rng = random.Random(8)
    key = make_key(rng)
    partition = 0x100000
    area = (0x180000, 0x1C0000)
    s = Scenario(results, image, "disk-absolute tweak, 4096-byte units, part of the disk",
                 registry=registry_values(crash=1, hibernation=1, key=key, data_unit=4096,
                                          tweak_base=1, area_start=area[0], area_end=area[1]),
                 partition_offset=partition)
    r, m = s.r, s.m
    # A 4Kn dump device: its sectors are whole 4096-byte units.
    stack = s.load(HIBERNATION, pages=16, bytes_per_sector=4096)
    r.check("DriverEntry asked the dump device for the partition's offset",
            {"IoBuildDeviceIoControlRequest", "IofCallDriver"} <= set(m.calls["DriverEntry"]))
    r.equal("Dump_Start", stack.start(), STATUS_SUCCESS)
    blocks = []
    for offset, pages in ((0x7E000, 8), (0xBC000, 8), (0x10000, 2)):
        mdl = CallerMdl(m, random_bytes(rng, pages * PAGE), flags=MDL_SOURCE_IS_NONPAGED_POOL)
        ciphertext = s.check_write(stack, "write at %#x (area edge)" % offset, offset, mdl, key,
                                   unit=4096, area=area, tweak_offset=partition)
        blocks.append((offset, mdl.data, ciphertext))
    r.check("some bytes of the first write stayed plaintext, some did not",
            blocks[0][2] is not None and blocks[0][2][:PAGE] == blocks[0][1][:PAGE]
            and blocks[0][2][3 * PAGE:] != blocks[0][1][3 * PAGE:])
    s.expect_bugcheck("512-aligned offset with 4096-byte units",
                      stack.write(0x200, CallerMdl(m, random_bytes(rng, PAGE))), 0x02,
                      0x200 + partition, 4096, 2)
    r.equal("Dump_Finish", stack.finish(), STATUS_SUCCESS)
    for offset, plain, ciphertext in blocks:
        if ciphertext is None:
            continue
        mdl = CallerMdl(m, ciphertext, flags=MDL_MAPPED_TO_SYSTEM_VA)
        r.equal("Dump_Read at %#x" % offset, stack.read_back(offset, mdl), STATUS_SUCCESS)
        r.equal("Dump_Read at %#x restores the plaintext" % offset, mdl.by_cpu(), plain)
    r.equal("Dump_Unload", stack.unload(), STATUS_SUCCESS)
    s.check_no_leaks(key)
    s.check_imports()


def crash_copy_after_finish(results, image, report):
    """The crash dump copy after the Dump_Finish of its dump: keys wiped; Dump_Start refused;
    a write (the crash dump driver finalizing its log) blanked inside the area, the rest as
    is, the MDL retargeted as usual, no bug check; a read handed on untouched."""
    rng = random.Random(10)
    key = make_key(rng)
    area = (0x20000, 0x40000)
    s = Scenario(results, image, "crash dump copy after its Dump_Finish",
                 registry=registry_values(crash=1, hibernation=2, key=key,
                                          area_start=area[0], area_end=area[1]))
    r, m = s.r, s.m
    stack = s.load(CRASH, pages=16)
    r.equal("Dump_Start", stack.start(), STATUS_SUCCESS)
    s.check_write(stack, "write during the dump, across the area's start", 0x1C000,
                  CallerMdl(m, random_bytes(rng, 8 * PAGE), flags=MDL_SOURCE_IS_NONPAGED_POOL),
                  key, area=area)
    r.equal("Dump_Finish", stack.finish(), STATUS_SUCCESS)
    r.equal("Dump_Start after it: STATUS_ACCESS_DENIED", stack.start(), STATUS_ACCESS_DENIED)
    for offset, what in ((0x1C000, "across the area's start"),
                         (0x3E000, "across the area's end"),
                         (0x50000, "outside the area")):
        plain = random_bytes(rng, 4 * PAGE)
        expected = s.check_write(stack, "write after Dump_Finish, %s" % what, offset,
                                 CallerMdl(m, plain, byte_offset=0x200,
                                           flags=MDL_MAPPED_TO_SYSTEM_VA | MDL_PAGES_LOCKED,
                                           mapped_elsewhere=True),
                                 key, area=area, blanked=True)
        if expected is not None and offset != 0x50000:
            low, high = max(offset, area[0]) - offset, min(offset + len(plain), area[1]) - offset
            r.check("write after Dump_Finish, %s: zeros inside, plaintext outside" % what,
                    expected[low:high] == bytes(high - low)
                    and expected[:low] + expected[high:] == plain[:low] + plain[high:])
    data = random_bytes(rng, 2 * PAGE)
    mdl = CallerMdl(m, data, flags=MDL_MAPPED_TO_SYSTEM_VA)
    r.equal("Dump_Read after Dump_Finish", stack.read_back(0x20000, mdl), STATUS_SUCCESS)
    r.check("Dump_Read after Dump_Finish: handed on untouched",
            mdl.by_cpu() == data and mdl.raw() == mdl.raw_before)
    r.equal("Dump_Finish again", stack.finish(), STATUS_SUCCESS)
    r.equal("Dump_Unload", stack.unload(), STATUS_SUCCESS)
    s.check_no_leaks(key)
    s.check_imports()
    r.check("the dump path called nothing but KeBugCheckEx",
            all(set(m.calls[c]) <= {"KeBugCheckEx"} for c in DUMP_PATH))


def data_unit_sectors(results, image, report):
    """A 4096-byte data unit needs a dump device whose FILTER_EXTENSION.Geometry.BytesPerSector
    is a whole multiple of it: refused at load (a refusing instance) on 512-byte sectors and
    on an unknown sector size (0), accepted on 4096."""
    rng = random.Random(11)
    key = make_key(rng)
    registry = registry_values(crash=1, hibernation=1, key=key, data_unit=4096)
    for sectors in (512, 0):
        s = Scenario(results, image, "4096-byte unit, BytesPerSector %d: refused at load"
                     % sectors, registry=registry)
        r = s.r
        stack = s.load(CRASH, bytes_per_sector=sectors)
        r.check("no secondary buffer kept", not s.buffers())
        expect_refusing(s, stack)
        s.check_no_leaks(key)
        s.check_imports()
    s = Scenario(results, image, "4096-byte unit, BytesPerSector 4096: accepted",
                 registry=registry)
    r, m = s.r, s.m
    stack = s.load(CRASH, bytes_per_sector=4096)
    r.equal("Dump_Start", stack.start(), STATUS_SUCCESS)
    s.check_write(stack, "write of 3 units", 0x3000,
                  CallerMdl(m, random_bytes(rng, 3 * PAGE)), key, unit=4096)
    r.equal("Dump_Finish", stack.finish(), STATUS_SUCCESS)
    r.equal("Dump_Unload", stack.unload(), STATUS_SUCCESS)
    s.check_no_leaks(key)
    s.check_imports()


def provider_answer(query, partition, ranges, data_unit=512, tweak_base=0, flags=0x3,
                    major=1, size=ANSWER_SIZE):
    """DUMPCRYPT_ANSWER for `query` (include/dumpcrypt_provider.h, read independently):
    `ranges` is [(start, end, key)]."""
    magic, query_major = struct.unpack_from("<IH", query, 0)
    style, _signature = struct.unpack_from("<II", query, 0x10)
    disk_id = query[0x18:0x28]
    dump_type, = struct.unpack_from("<I", query, 0x0C)
    query_partition, = struct.unpack_from("<Q", query, 0x28)
    if (magic != 0x56504344 or query_major != 1 or style != 1 or disk_id != DISK_GUID
            or query_partition != partition or dump_type not in (CRASH, HIBERNATION)):
        return None  # not this provider's volume: the answer stays empty
    answer = struct.pack("<IHHII", 0x56504344, major, 0, size, flags)
    answer += struct.pack("<II", 1, 0) + DISK_GUID  # the volume's disk: GPT, this GUID
    answer += struct.pack("<QQ", partition, 1 << 34)
    answer += struct.pack("<IIII", data_unit, tweak_base, len(ranges), 0)
    for start, end, key in ranges + [(0, 0, bytes(64))] * (4 - len(ranges)):
        answer += struct.pack("<QQ", start, end) + key
    answer += struct.pack("<Q", 0)  # no live state
    assert len(answer) == ANSWER_SIZE
    return answer


def provider(results, image, report):
    """KeySource = provider: the harness answers through ExNotifyCallback with two ranges
    under two keys and a plaintext rest; every write is checked per range with Python's
    cryptography; the dump path still calls nothing but KeBugCheckEx."""
    rng = random.Random(9)
    keys = [make_key(rng), make_key(rng)]
    partition = 0x100000
    ranges = [(0x20000, 0x40000, keys[0]), (0x40000, 0x60000, keys[1])]
    registry = registry_values(crash=1, hibernation=1,
                               extra={"KeySource": (REG_DWORD, struct.pack("<I", 1))})
    s = Scenario(results, image, "provider, two ranges and two keys", registry=registry,
                 partition_offset=partition,
                 provider=lambda query: provider_answer(query, partition, ranges))
    r, m = s.r, s.m
    stack = s.load(CRASH, pages=16)
    r.check("DriverEntry asked the provider through the callback object",
            {"ExCreateCallback", "ExNotifyCallback", "ObfDereferenceObject"}
            <= set(m.calls["DriverEntry"]))
    r.equal("one query", len(m.provider_queries), 1)
    r.equal("the callback object's reference given back", m.callback_references, 0)
    r.equal("Dump_Start", stack.start(), STATUS_SUCCESS)
    for offset, what in ((0x1C000, "before, across and into range 0"),
                         (0x3C000, "across ranges 0 and 1"),
                         (0x5C000, "across the end of range 1")):
        plain = random_bytes(rng, 8 * PAGE)
        mdl = CallerMdl(m, plain, flags=MDL_SOURCE_IS_NONPAGED_POOL)
        status = stack.write(offset, mdl)
        r.equal("%s: Dump_Write" % what, status, STATUS_SUCCESS)
        expected = bytearray(plain)
        for start, end, key in ranges:
            low, high = max(offset, start), min(offset + len(plain), end)
            if low < high:
                expected[low - offset:high - offset] = xts_units(
                    key, plain[low - offset:high - offset], low // 512, 512)
        r.equal("%s: each range under its own key, the rest as is (DMA)" % what,
                mdl.by_dma(), bytes(expected))
        r.equal("%s: the same by MappedSystemVa" % what, mdl.by_cpu(), bytes(expected))
    r.equal("Dump_Finish", stack.finish(), STATUS_SUCCESS)
    r.equal("Dump_Unload", stack.unload(), STATUS_SUCCESS)
    s.check_no_leaks(keys[0])
    s.check_no_leaks(keys[1])
    s.check_imports()

    # Without a provider, and with an answer of another major version: no dump.
    for name, answer_for in (("no provider", None),
                             ("major version 2", lambda query: provider_answer(
                                 query, partition, ranges, major=2))):
        s = Scenario(results, image, "provider: %s" % name, registry=registry,
                     partition_offset=partition, provider=answer_for)
        stack = s.load(CRASH, pages=16)
        s.r.equal("Dump_Start refuses the dump", stack.start(), STATUS_ACCESS_DENIED)
        s.expect_bugcheck("a write anyway", stack.write(0, CallerMdl(s.m, random_bytes(rng, PAGE))),
                          0x06, 0, 0, 2)
        s.r.equal("Dump_Unload", stack.unload(), STATUS_SUCCESS)
        s.check_no_leaks()
        s.check_imports()


def backends(results, image, report):
    """The backend DriverEntry takes from what CPUID says and the Backend value: the XMM one
    where VAES is absent or the OS did not enable XSAVE, or where Backend asks for VAES on a
    processor without it; the portable one without AES-NI or when Backend says so. Each
    writes the right ciphertext and reads it back."""
    rng = random.Random(9)
    cases = [
        (CPU_VAES_WITHOUT_OS_SUPPORT, None, True),
        (CPU_NO_VAES, 1, True),  # Backend vaes512: the fastest below it, XMM
        (CPU_NO_VAES, 2, True),  # Backend vaes256
        (CPU_NO_VAES, 3, True),  # Backend aesni
        (CPU_NO_VAES, 4, False),  # Backend portable
        (CPU_NO_AES_NI, None, False),
    ]
    for cpu, backend, xmm in cases:
        key = make_key(rng)
        s = Scenario(results, image, "CPUID %s, Backend %s" % (cpu.name, backend),
                     registry=registry_values(crash=0, hibernation=1, key=key,
                                              backend=backend), cpu=cpu)
        r, m = s.r, s.m
        if not xmm:
            # Its stack is measured against its own budget.
            m.stack_label["DriverEntry"] = "DriverEntry, portable backend"
        stack = s.load(HIBERNATION, pages=8)
        r.check("DriverEntry asked CPUID for the features (leaves 1 and 7)",
                m.cpuid_calls[(1, 0)] > 0 and m.cpuid_calls[(7, 0)] > 0,
                dict(m.cpuid_calls))
        r.equal("Dump_Start", stack.start(), STATUS_SUCCESS)
        data = random_bytes(rng, 5 * PAGE)
        ciphertext = s.check_write(stack, "write", 0x20000,
                                   CallerMdl(m, data, flags=MDL_SOURCE_IS_NONPAGED_POOL), key)
        r.equal("Dump_Finish", stack.finish(), STATUS_SUCCESS)
        if ciphertext is not None:
            mdl = CallerMdl(m, ciphertext, flags=MDL_MAPPED_TO_SYSTEM_VA)
            r.equal("Dump_Read", stack.read_back(0x20000, mdl), STATUS_SUCCESS)
            r.equal("Dump_Read restores the plaintext", mdl.by_cpu(), data)
        s.check_backend(xmm)
        r.equal("Dump_Unload", stack.unload(), STATUS_SUCCESS)
        s.check_no_leaks(key)
        s.check_imports()


def age_tools():
    """The reference `age` and `age-keygen`, installed by crates/seal/scripts/install-age.sh
    when missing."""
    import shutil
    import subprocess
    if not (shutil.which("age") and shutil.which("age-keygen")):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        subprocess.run(["bash", os.path.join(root, "crates", "seal", "scripts",
                                             "install-age.sh")], check=True)


def age_identity(directory):
    """A fresh identity made by `age-keygen -o` in `directory`: (its file, its recipient)."""
    import subprocess
    age_tools()
    path = os.path.join(directory, "identity.txt")
    subprocess.run(["age-keygen", "-o", path], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", path], check=True, capture_output=True,
                               text=True).stdout.strip()
    return path, recipient


def age_decrypt(identity, blob):
    """`age -d -i IDENTITY` of `blob`: the plaintext, or None when age refuses it."""
    import subprocess
    done = subprocess.run(["age", "-d", "-i", identity], input=blob, capture_output=True)
    return done.stdout if done.returncode == 0 else None


def sealed_registry(recipient):
    return registry_values(crash=1, hibernation=2, extra={
        "KeySource": (REG_DWORD, struct.pack("<I", 2)),
        "Recipient": (1, (recipient + "\0").encode("utf-16-le")),
    })


def time_stamp(system_time):
    """The value name of a load at `system_time` (100 ns units since 1601, UTC), computed
    here: YYYYMMDDTHHMMSS.fffffffZ."""
    import datetime
    seconds, ticks = divmod(system_time, 10**7)
    at = datetime.datetime(1601, 1, 1) + datetime.timedelta(seconds=seconds)
    return at.strftime("%Y%m%dT%H%M%S") + ".%07dZ" % ticks


SEALED_LEN = 264  # the age file of a 64-byte key to one X25519 recipient
# The functions of the sealed path whose own stack use is measured (Machine.probe_frames):
# pieces of their mangled names.
SEALED_FRAMES = {"seal (Drawn::new: draw and seal)": "6sealedNtB2_5Drawn3new",
                 "dumpcrypt_seal::seal": "14dumpcrypt_seal4seal",
                 "expand_key (the key's schedule)": "10encryption10expand_key",
                 "prepare (draw, seal, expand, store)": "10Encryption7prepare",
                 "store (the SealedKeys ring)": "6sealed5store"}


def sealed_fails_closed(results, image, report):
    """KeySource = sealed (2) where no key can be drawn, so the driver must fail closed: it
    loads, writes no sealed key (SealedKeys not even created), refuses Dump_Start and bug
    checks a write anyway. Two processors: one whose CPUID reports neither RDSEED nor RDRAND
    (unicorn's own: it decodes neither), where neither may run; and one whose RDSEED and
    RDRAND both set CF but always return all ones (the AMD parts after a resume, the Zen 2
    firmware bug), which the driver must refuse after trying each."""
    import tempfile
    rng = random.Random(12)
    with tempfile.TemporaryDirectory() as directory:
        _identity, recipient = age_identity(directory)
    registry = sealed_registry(recipient)
    for cpu, what in ((CPU_NO_VAES, "no RDSEED/RDRAND"),
                      (CPU_RANDOM_ALL_ONES, "RDSEED and RDRAND return all ones")):
        s = Scenario(results, image, "sealed key, %s: fails closed" % what, registry=registry,
                     cpu=cpu)
        r, m = s.r, s.m
        m.stack_label["DriverEntry"] = "DriverEntry, sealed key"
        stack = s.load(CRASH, pages=16)
        s.check_init(stack)
        r.check("DriverEntry asked CPUID for RDRAND (leaf 1) and RDSEED (leaf 7)",
                m.cpuid_calls[(1, 0)] > 0 and m.cpuid_calls[(7, 0)] > 0, dict(m.cpuid_calls))
        if cpu.rdseed:
            r.check("RDSEED tried, then RDRAND, and each refused",
                    m.random_calls["rdseed"] > 0 and m.random_calls["rdrand"] > 0,
                    dict(m.random_calls))
        else:
            r.equal("neither instruction run", dict(m.random_calls), {})
        r.check("no sealed key written: SealedKeys not even created",
                m.sealed_keys is None and not m.sealed_log, m.sealed_log)
        r.equal("Dump_Start refuses the dump", stack.start(), STATUS_ACCESS_DENIED)
        mdl = CallerMdl(m, random_bytes(rng, PAGE))
        s.expect_bugcheck("a write anyway", stack.write(0x4000, mdl), 0x06, 0x4000, 0, 2)
        r.check("the refused write's MDL and data untouched",
                mdl.raw() == mdl.raw_before and mdl.source_now() == mdl.data)
        r.equal("Dump_Unload", stack.unload(), STATUS_SUCCESS)
        s.check_no_leaks()
        s.check_imports()
        hibernation = s.load(HIBERNATION, pages=16)
        r.equal("the hibernation copy (policy refuse) refuses too", hibernation.start(),
                STATUS_ACCESS_DENIED)
        r.equal("Dump_Unload (hibernation)", hibernation.unload(), STATUS_SUCCESS)
        report.setdefault("sealed", {})[what] = "failed closed (%s)" % (
            ", ".join("%s run %d times" % item for item in sorted(m.random_calls.items()))
            or "no random instruction run")


def check_sealed_load(s, stack, log_from, identity, served, words, name):
    """The sealed key one crash dump DriverEntry made: drawn from `served` (`words` words),
    stored as one REG_BINARY value `name` of SealedKeys, flushed and closed before
    DriverEntry returned, and unsealed by the reference `age`. Returns the key (or None)."""
    r, m = s.r, s.m
    log = [event[1:] for event in m.sealed_log[log_from:]]
    r.check("every SealedKeys operation made by DriverEntry",
            all(event[0] == "DriverEntry" for event in m.sealed_log[log_from:]))
    r.equal("only %s ran, %d times (16 words: the key, then the sealing randomness)"
            % (served.upper(), words), dict(m.random_calls), {served: words})
    routines = [event[0] for event in log]
    r.equal("SealedKeys created or opened (ZwCreateKey) once, first",
            [event[2] for event in log if event[0] == "ZwCreateKey"], [SEALED_KEYS_KEY])
    sets = [event for event in log if event[0] == "ZwSetValueKey"]
    r.equal("one ZwSetValueKey: the load's UTC time (the harness's KUSER_SHARED_DATA."
            "SystemTime), REG_BINARY, %d bytes" % SEALED_LEN, [event[1:] for event in sets],
            [(name, REG_BINARY, SEALED_LEN)])
    r.equal("the name is 24 characters, YYYYMMDDTHHMMSS.fffffffZ", len(name), 24)
    order_ok = (routines[:1] == ["ZwCreateKey"] and "ZwSetValueKey" in routines
                and "ZwFlushKey" in routines[routines.index("ZwSetValueKey"):]
                and routines[-1] == "ZwClose"
                and routines.index("ZwFlushKey") < len(routines) - 1)
    r.check("ZwCreateKey, ..., ZwSetValueKey, ..., ZwFlushKey, ZwClose, in that order",
            order_ok, routines)
    created = [event[1] for event in log if event[0] == "ZwCreateKey"]
    r.check("the SealedKeys handle closed (ZwClose) before DriverEntry returned",
            created and [event[1] for event in log if event[0] == "ZwClose"] == created
            and created[0] not in m.handles, log)
    stored = {value[0]: value for value in m.sealed_keys or []}.get(name)
    r.check("the flush saw the new value", bool(m.flushes) and stored in m.flushes[-1])
    if stored is None:
        return None
    blob = stored[2]
    r.check("the value is an age file", blob.startswith(b"age-encryption.org/v1\n"),
            blob[:24])
    key = age_decrypt(identity, blob)
    if not r.check("`age -d -i IDENTITY` unseals it", key is not None):
        return None
    r.equal("the unsealed key is 64 bytes", len(key), 64)
    r.check("its halves (data key, tweak key) differ", key[:32] != key[32:])
    given = m.random_bytes_given()
    r.equal("it is the first 64 bytes %s gave" % served.upper(), key, given[:64])
    # The sealing randomness (dumpcrypt_seal::Randomness): the X25519 ephemeral secret (32
    # bytes), the file key (16), the payload nonce (16), which age stores in the clear.
    ephemeral, nonce = given[64:96], given[112:128]
    r.check("no 16-byte piece of the key, the ephemeral secret or the file key in the "
            "stored value", not any(given[i:i + 16] in blob for i in range(0, 112, 16)))
    share = X25519PrivateKey.from_private_bytes(ephemeral).public_key().public_bytes_raw()
    stanza = b"-> X25519 " + base64.b64encode(share).rstrip(b"=") + b"\n"
    r.check("the stanza's ephemeral share is X25519 of the drawn ephemeral secret", stanza in blob)
    r.check("the payload nonce after the header is the last 16 bytes drawn",
            b"\n" in blob and blob[blob.index(b"\n---"):].split(b"\n", 2)[2][:16] == nonce)
    return key


def sealed(results, image, report):
    """KeySource = sealed (2) with a Recipient made by age-keygen, on processors with RDSEED
    and RDRAND and with RDRAND only (the harness runs both instructions: unicorn 1.0.2 has
    neither): DriverEntry draws the key from the right instruction, seals it and stores it in
    Parameters\\SealedKeys (create, enumerate, set, flush, close); the reference `age`
    unseals the stored value; the crash dump copy then encrypts a write under exactly that
    key (against cryptography's XTS-AES-256); the hibernation copy (policy refuse) draws and
    stores nothing. Then the ring: a load with 16 values already there deletes the oldest."""
    import tempfile
    rng = random.Random(13)
    with tempfile.TemporaryDirectory() as directory:
        identity, recipient = age_identity(directory)
        registry = sealed_registry(recipient)
        for cpu, served in ((CPU_RDSEED_RDRAND, "rdseed"), (CPU_RDRAND_ONLY, "rdrand")):
            s = Scenario(results, image, "sealed key, %s" % cpu.name, registry=registry,
                         cpu=cpu)
            r, m = s.r, s.m
            m.stack_label["DriverEntry"] = "DriverEntry, sealed key"
            unplaced = m.probe_frames(os.path.splitext(image)[0] + ".pdb", SEALED_FRAMES)
            stack = s.load(CRASH, pages=16)
            s.check_init(stack)
            name = time_stamp(m.system_time)
            key = check_sealed_load(s, stack, 0, identity, served, 16, name)
            r.equal("Dump_Start", stack.start(), STATUS_SUCCESS)
            if key is not None:
                s.check_write(stack, "write under the unsealed key", 0x40000,
                              CallerMdl(m, random_bytes(rng, 6 * PAGE)), key)
            r.equal("Dump_Finish", stack.finish(), STATUS_SUCCESS)
            r.equal("Dump_Unload", stack.unload(), STATUS_SUCCESS)
            drawn = m.random_bytes_given()
            s.check_no_leaks(key)
            s.check_no_leaks(drawn[64:112])  # the ephemeral secret and the file key
            calls_before, values_before = dict(m.random_calls), list(m.sealed_keys)
            hibernation = s.load(HIBERNATION, pages=16)
            r.equal("the hibernation copy (policy refuse) refuses", hibernation.start(),
                    STATUS_ACCESS_DENIED)
            r.check("the hibernation copy drew nothing and stored nothing",
                    dict(m.random_calls) == calls_before and m.sealed_keys == values_before)
            r.equal("Dump_Unload (hibernation)", hibernation.unload(), STATUS_SUCCESS)
            s.check_imports()
            report.setdefault("sealed", {})[cpu.name] = "unsealed by age, write checked"
            if served == "rdseed":
                frames = dict(m.frame_depth)
                report.setdefault("stack_bytes_sealed_frames", {}).update(frames)
                print("%s: deepest stack inside the sealed path's functions, from the top of "
                      "the stack (bytes): %s%s" % (image, json.dumps(frames, sort_keys=True),
                                                   "; not placed (no llvm-pdbutil or PDB): %s"
                                                   % unplaced if unplaced else ""))

        # The ring: 16 time-stamped values already there (written oldest first), and a value
        # that is no time stamp, which must be left alone.
        s = Scenario(results, image, "sealed key, the ring full (16 values)", registry=registry,
                     cpu=CPU_RDSEED_RDRAND)
        r, m = s.r, s.m
        m.stack_label["DriverEntry"] = "DriverEntry, sealed key"
        old = [time_stamp(m.system_time - (16 - i) * 3600 * 10**7) for i in range(16)]
        m.sealed_keys = [(n, REG_BINARY, random_bytes(rng, SEALED_LEN)) for n in old]
        m.sealed_keys.insert(5, ("Comment", 1, "not a key\0".encode("utf-16-le")))
        foreign = m.sealed_keys[5]
        stack = s.load(CRASH, pages=16)
        name = time_stamp(m.system_time)
        key = check_sealed_load(s, stack, 0, identity, "rdseed", 16, name)
        deletes = [event[2] for event in m.sealed_log if event[1] == "ZwDeleteValueKey"]
        r.equal("the oldest value deleted (ZwDeleteValueKey), only it", deletes, [old[0]])
        routines = [event[1] for event in m.sealed_log]
        r.check("the delete before the flush",
                "ZwDeleteValueKey" in routines and "ZwFlushKey" in routines and
                routines.index("ZwDeleteValueKey") < routines.index("ZwFlushKey"), routines)
        stamped = sorted(v[0] for v in m.sealed_keys if v[0] != "Comment")
        r.equal("16 time-stamped values remain: the 15 newest before, and the new one",
                stamped, sorted(old[1:] + [name]))
        r.check("the value that is no time stamp untouched", foreign in m.sealed_keys)
        r.equal("Dump_Start", stack.start(), STATUS_SUCCESS)
        if key is not None:
            s.check_write(stack, "write under the new key", 0x8000,
                          CallerMdl(m, random_bytes(rng, 2 * PAGE)), key)
        r.equal("Dump_Unload", stack.unload(), STATUS_SUCCESS)
        s.check_no_leaks(key)
        s.check_imports()


SCENARIOS = [encrypt_on_windows10, windows7, passthrough, refuse, faults,
             driver_entry_refusals, crash_copy_after_finish, data_unit_sectors,
             disk_tweak_4096, provider, backends, sealed_fails_closed, sealed]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--report", help="write per-image facts (imports per callback, "
                        "stack use, timings) as JSON here")
    args = parser.parse_args()
    results = Results()
    report = {"emulated_cpu": CPU_NO_VAES.name}
    print("emulated CPU (CPUID as the harness answers it): %s, unless a scenario says otherwise"
          % CPU_NO_VAES.name)
    for image in args.images:
        facts = report.setdefault(image, {"seconds": {}})
        for scenario in SCENARIOS:
            started = time.monotonic()
            try:
                scenario(results, image, facts)
            except (EmulationError, AssertionError) as error:
                results.prefix = "%s: %s: " % (image, scenario.__name__)
                results.check("runs to the end", False,
                              "%s: %s" % (type(error).__name__, error or
                                          traceback.format_exc().splitlines()[-2]))
            facts["seconds"][scenario.__name__] = round(time.monotonic() - started, 2)
            deepest = facts.setdefault("stack_bytes", {})
            for machine in results.machines:
                for callback, depth in machine.stack_depth.items():
                    deepest[callback] = max(deepest.get(callback, 0), depth)
            results.machines = []
        for callback, depth in sorted(facts.get("stack_bytes", {}).items()):
            results.prefix = "%s: " % image
            results.check("%s fits the 24 KiB kernel stack (used %d bytes)" % (callback, depth),
                          depth <= KERNEL_STACK_SIZE)
            if "release" in str(image):
                # Budgets of the shipping build, so that stack use cannot creep up unseen:
                # the dump path runs on whatever stack the crashing thread has left.
                budget = RELEASE_STACK_BUDGET.get(callback, DUMP_PATH_STACK_BUDGET)
                results.check("%s within its release budget of %d bytes (used %d)"
                              % (callback, budget, depth), depth <= budget)
        per_callback = facts.get("per_callback_imports", {})
        print("%s: imports per callback: %s" % (image, json.dumps(per_callback, sort_keys=True)))
        print("%s: deepest stack use per callback (bytes): %s" % (
            image, json.dumps(facts.get("stack_bytes", {}), sort_keys=True)))
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=2, sort_keys=True)
    print("%d passed, %d failed" % (results.passed, results.failed))
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
