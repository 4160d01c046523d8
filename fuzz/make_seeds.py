#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/seeds/: inputs that reach the dump path at once.

The fuzz targets decode their input with the `arbitrary` crate (1.x): integers little-endian,
a bool is a byte's low bit, an Option a bool then the value, an enum a u32 `d` choosing
variant (d * count) >> 32, fields in declaration order, and the last field's Vec an element
per "keep going" byte. The encoders below follow the Input structures of the targets; if a
structure changes, regenerate (a stale seed is still a valid input, only a less useful one).

    python3 fuzz/make_seeds.py
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def u8(v):
    return struct.pack("<B", v & 0xFF)


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def i16(v):
    return struct.pack("<h", v)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def i64(v):
    return struct.pack("<q", v)


def boolean(v):
    return u8(1 if v else 0)


def variant(index, count):
    d = (index * 2**32 + count - 1) // count
    assert (d * count) >> 32 == index
    return u32(d)


def option(value):
    return boolean(False) if value is None else boolean(True) + value


def rest(elements):
    return b"".join(boolean(True) + e for e in elements) + boolean(False)


# --- dump_protocol ---------------------------------------------------------------------

def os_(name):
    return {"7": variant(0, 4), "8": variant(1, 4), "11": variant(2, 4)}[name]


def structured(crash=None, hibernation=None, key="seeded", unit=None, start=None, end=None,
               tweak=None, allow_plaintext_hibernation=None):
    keys = {"absent": variant(0, 5), "seeded": variant(1, 5), "equal": variant(2, 5)}
    allow = allow_plaintext_hibernation
    return (variant(1, 3) + option(None if crash is None else u8(crash))
            + option(None if hibernation is None else u8(hibernation)) + keys[key]
            + option(None if unit is None else boolean(unit == 4096) + boolean(False))
            + option(start) + option(end) + option(None if tweak is None else u8(tweak))
            + option(None if allow is None else u8(allow)))


def units(n):
    return variant(0, 3) + u16(n)


def pages(n):
    return variant(1, 3) + u16(n)


def partition_sectors(n):
    return variant(0, 4) + u32(n)


def partition_near_top(n):
    return variant(2, 4) + u16(n)


def partition_fails(n):
    return variant(3, 4) + u16(n)


# FILTER_EXTENSION.Geometry.BytesPerSector: SectorSpec.
SECTORS = {512: variant(0, 4), 4096: variant(1, 4), 0: variant(2, 4)}


def load(dump_type, max_pages):
    kinds = {"crash": variant(0, 3), "hibernation": variant(1, 3)}
    return variant(0, 8) + kinds[dump_type] + variant(0, 2) + u8(max_pages)


def load_huge(dump_type):
    """MaxPagesPerWrite 2^20: a secondary buffer of 4 GiB, refused without an allocation."""
    kinds = {"crash": variant(0, 3), "hibernation": variant(1, 3)}
    return variant(0, 8) + kinds[dump_type] + variant(1, 2) + boolean(False)


def start(i=0):
    return variant(1, 8) + u8(i)


def finish(i=0):
    return variant(4, 8) + u8(i)


def unload(i=0):
    return variant(5, 8) + u8(i)


def offset_units(n):
    return variant(0, 5) + u16(n)


def offset_near_top(n):
    return variant(2, 5) + u16(n)


def mdl(flags=0, count_units=8, data_offset=0, start_va=0, size=0, size_arg=b""):
    # flags: 0 nonpaged, 1 mapped, 2 mapped partial, 3 unmapped; start_va: 0 consistent,
    # 1 decoy; size: 0 exact, 1 extra, 2 fewer.
    return (variant(flags, 5) + variant(0, 3) + u8(count_units) + u16(data_offset)
            + variant(0, 3) + variant(start_va, 3) + option(None) + variant(size, 4) + size_arg
            + boolean(False) + u8(0) + u8(0))


def write(i, offset, transfer_mdl, nulls=0):
    return variant(2, 8) + u8(i) + offset + u8(nulls) + transfer_mdl


def read(i, offset, transfer_mdl, nulls=0):
    return variant(3, 8) + u8(i) + offset + u8(nulls) + transfer_mdl


def resend(i, offset):
    return variant(6, 8) + u8(i) + offset


def foreign(i):
    return variant(7, 8) + u8(i) + u32(0)


def protocol(os_name, parameters, partition, seed, ops, sectors=512):
    return os_(os_name) + parameters + partition + SECTORS[sectors] + u64(seed) + rest(ops)


def dump_protocol_seeds():
    # A whole dump, then what the crash dump copy does after its Dump_Finish: a second
    # Dump_Start refused, a write blanked (the crash dump driver's log), a read untouched.
    whole_dump = [
        start(), write(0, offset_units(0), mdl(0, 64)),
        write(0, offset_units(256), mdl(1, 64, data_offset=0x200, start_va=1)),
        write(0, offset_units(512), mdl(2, 7, data_offset=0x600, size=1, size_arg=u8(3))),
        resend(0, offset_units(1024)), finish(), start(), write(0, offset_units(8), mdl(0, 8)),
        read(0, offset_units(8), mdl(0, 8)), resend(0, offset_units(16)), finish(), unload(),
    ]
    yield "crash_encrypt", protocol("11", structured(crash=1, hibernation=1), partition_sectors(2048),
                                    1, [load("crash", 8)] + whole_dump)
    yield "hibernate_resume", protocol(
        "11", structured(crash=1, hibernation=1), partition_sectors(2048), 2,
        [load("hibernation", 8), start(), write(0, offset_units(16), mdl(1, 64, start_va=1)),
         finish(), read(0, offset_units(16), mdl(0, 64)),
         read(0, offset_units(40), mdl(2, 16, data_offset=0x400)),
         # After Dump_Finish the hibernation copy keeps its keys: a write is encrypted, and a
         # second hibernation starts.
         write(0, offset_units(64), mdl(0, 8)), start(), write(0, offset_units(16), mdl(0, 16)),
         finish(), unload()])
    # The partition starts at 1 MiB (page 256) and the area is in disk coordinates (pages 259
    # to 265): the first two writes cut its start, the third lies inside, the fourth cuts its
    # end; the last is misaligned for the 4096-byte unit.
    yield "area_4096_disk_tweaks", protocol(
        "11", structured(crash=1, hibernation=2, unit=4096, start=pages(259), end=pages(265), tweak=1),
        partition_sectors(2048), 3,
        [load("crash", 4), start(), write(0, offset_units(0), mdl(0, 32)),
         write(0, offset_units(16), mdl(0, 32)), write(0, offset_units(40), mdl(1, 24)),
         write(0, offset_units(56), mdl(0, 32)), write(0, offset_units(4), mdl(0, 8)), finish(),
         unload()], sectors=4096)
    # The same 4096-byte unit on 512-byte sectors, and on sectors of unknown size: refused at
    # load (Dump_Start STATUS_ACCESS_DENIED, a write 0x06), not misaligned mid-dump.
    for sectors, name in ((512, "unit_4096_on_512_sectors"), (0, "unit_4096_unknown_sectors")):
        yield name, protocol(
            "11", structured(crash=1, hibernation=1, unit=4096, tweak=1), partition_sectors(2048),
            8, [load("crash", 4), load("hibernation", 4), start(0), write(0, offset_units(0),
                                                                          mdl(0, 8)),
                start(1), write(1, offset_units(0), mdl(0, 8)), unload(0), unload(1)],
            sectors=sectors)
    # The boot-time DumpStack.log: written and read back before any Dump_Start, encrypted and
    # decrypted; then a dump.
    yield "before_dump_start", protocol(
        "11", structured(crash=1, hibernation=1), partition_sectors(2048), 9,
        [load("crash", 8), write(0, offset_units(1024), mdl(0, 16)),
         read(0, offset_units(1024), mdl(0, 16)), finish(), write(0, offset_units(8), mdl(1, 8)),
         start(), write(0, offset_units(0), mdl(0, 8)), finish(), unload()])
    yield "windows7", protocol(
        "7", structured(crash=1, hibernation=1), partition_sectors(0), 4,
        [load("crash", 8), load("hibernation", 8), start(0), start(1),
         write(0, offset_units(64), mdl(0, 64)), write(1, offset_units(64), mdl(1, 16)),
         read(1, offset_units(64), mdl(0, 16)), finish(0), finish(1), unload(0), unload(1)])
    yield "refuse_and_passthrough", protocol(
        "11", structured(crash=2, hibernation=0), partition_sectors(0), 5,
        [load("crash", 8), load("hibernation", 8), start(0), write(0, offset_units(8), mdl(0, 8)),
         start(1), write(1, offset_units(8), mdl(0, 8)), read(1, offset_units(8), mdl(0, 8)),
         foreign(0), unload(0), unload(1), start(1)])
    yield "top_of_range", protocol(
        "11", structured(crash=1, hibernation=2, tweak=1), partition_near_top(4), 6,
        [load("crash", 8), start(), write(0, offset_units(0), mdl(0, 8)),
         write(0, offset_near_top(1), mdl(0, 8)), write(0, offset_units(8), mdl(0, 1)),
         write(0, offset_units(8), mdl(3, 8)), write(0, offset_units(8), mdl(0, 24, size=2,
                                                                            size_arg=u8(0))),
         unload()])
    # An invalid configuration loads a refusing instance; only the system's own arguments
    # (MaxPagesPerWrite 0) fail DriverEntry.
    yield "bad_configurations", protocol(
        "11", structured(crash=1, hibernation=1, key="equal"), partition_sectors(0), 7,
        [load("crash", 8), load("hibernation", 0), load("crash", 9), start(0),
         write(0, offset_units(8), mdl(0, 8)), read(0, offset_units(8), mdl(0, 8)), finish(0),
         unload(0)])
    yield "bad_configuration_windows7", protocol(
        "7", structured(crash=1, hibernation=1, key="absent"), partition_sectors(0), 10,
        [load("crash", 8), start(), write(0, offset_units(8), mdl(0, 8))])
    # A key in memory beside a plaintext hibernation file: refused by the parser unless
    # AllowPlaintextHibernation is 1.
    for allow, name in ((None, "plaintext_hibernation"), (1, "plaintext_hibernation_allowed"),
                        (2, "plaintext_hibernation_2")):
        yield name, protocol(
            "11", structured(crash=1, allow_plaintext_hibernation=allow), partition_sectors(0),
            11, [load("crash", 8), load("hibernation", 8), start(0),
                 write(0, offset_units(8), mdl(0, 8)), start(1), write(1, offset_units(8), mdl(0, 8)),
                 finish(0), unload(0), unload(1)])
    # The encrypt policy's preparation failing: the partition query (disk-absolute tweaks),
    # a secondary buffer of 4 GiB. Refusing instances, both.
    yield "preparation_fails", protocol(
        "11", structured(crash=1, hibernation=1, tweak=1), partition_fails(0x10), 12,
        [load("crash", 8), start(0), write(0, offset_units(8), mdl(0, 8))])
    yield "buffer_too_large", protocol(
        "11", structured(crash=1, hibernation=1), partition_sectors(0), 13,
        [load_huge("crash"), load_huge("hibernation"), start(0), start(1),
         write(1, offset_units(8), mdl(0, 8))])


# --- config ----------------------------------------------------------------------------

# ValueType: Binary, Dword, Qword, String (REG_SZ), Other; Content: SmallDword, DataUnit,
# Dword, AlignedQword, Qword, Key, Bytes, Text.
VALUE_TYPES, CONTENTS = 5, 8
BINARY, DWORD, QWORD, STRING = 0, 1, 2, 3

# `age-keygen -y` of a fixed identity (crates/core's tests use the same pair).
RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"


def value(value_type, content, claimed_len=None):
    return (variant(value_type, VALUE_TYPES) + content
            + option(None if claimed_len is None else u16(claimed_len)))


def small_dword(n):
    return variant(0, CONTENTS) + u8(n)


def data_unit_content(large, delta=0):
    return variant(1, CONTENTS) + boolean(large) + u8(delta)


def dword_content(n):
    return variant(2, CONTENTS) + u32(n)


def aligned_qword(n, page=False):
    return variant(3, CONTENTS) + u32(n) + boolean(page)


def key_content(seed, equal=False):
    return variant(5, CONTENTS) + u8(seed) + boolean(equal)


# TextSpec: Recipient { nul }, Mistyped { at, with }, Identity, Upper, Any { text, nul }.
def recipient_text(nul=True):
    return variant(7, CONTENTS) + variant(0, 5) + boolean(nul)


def mistyped_recipient(at, with_):
    return variant(7, CONTENTS) + variant(1, 5) + u8(at) + u8(with_)


def identity_text():
    return variant(7, CONTENTS) + variant(2, 5)


def upper_recipient():
    return variant(7, CONTENTS) + variant(3, 5)


# ValueName::ALL: CrashDumpPolicy, HibernationPolicy, Key, DataUnitSize, EncryptedAreaStart,
# EncryptedAreaEnd, TweakBase, KeySource, DiskId, Backend, Recipient, AllowPlaintextHibernation.
NAMES = ["CrashDumpPolicy", "HibernationPolicy", "Key", "DataUnitSize", "EncryptedAreaStart",
         "EncryptedAreaEnd", "TweakBase", "KeySource", "DiskId", "Backend", "Recipient",
         "AllowPlaintextHibernation"]


def config_input(present=True, **values):
    """`Input { key_present, values: [Option<Value>; 12] }`, decoded with take_rest: arbitrary
    1.5 decodes the whole array, then decodes its last element again from the bytes after it,
    so the last value is written twice."""
    assert all(name in NAMES for name in values), values
    last = option(values.get(NAMES[-1]))
    return boolean(present) + b"".join(option(values.get(name)) for name in NAMES) + last


def config_seeds():
    every = dict(
        CrashDumpPolicy=value(DWORD, small_dword(1)), HibernationPolicy=value(DWORD, small_dword(2)),
        Key=value(BINARY, key_content(9)), DataUnitSize=value(DWORD, data_unit_content(True)),
        EncryptedAreaStart=value(QWORD, aligned_qword(8, True)),
        EncryptedAreaEnd=value(QWORD, aligned_qword(64, True)),
        TweakBase=value(DWORD, small_dword(1)), KeySource=value(DWORD, small_dword(0)),
        DiskId=value(BINARY, dword_content(0x12345678)), Backend=value(DWORD, small_dword(3)),
        Recipient=value(STRING, recipient_text()),
        AllowPlaintextHibernation=value(DWORD, small_dword(0)))
    yield "every_value", config_input(**every)
    crash = value(DWORD, small_dword(1))
    key = value(BINARY, key_content(9))
    yield "encrypt_needs_key", config_input(CrashDumpPolicy=crash)
    yield "equal_key_halves", config_input(Key=value(BINARY, key_content(3, True)))
    yield "long_value", config_input(Key=value(BINARY, key_content(3), 200))
    yield "absent", config_input(present=False)
    yield "provider_key_source", config_input(CrashDumpPolicy=crash,
                                              KeySource=value(DWORD, small_dword(1)))
    # A key in memory beside a plaintext hibernation file: refused, unless allowed.
    yield "plaintext_hibernation", config_input(CrashDumpPolicy=crash, Key=key)
    yield "plaintext_hibernation_allowed", config_input(
        CrashDumpPolicy=crash, Key=key, AllowPlaintextHibernation=value(DWORD, small_dword(1)))
    yield "allow_plaintext_hibernation_2", config_input(
        CrashDumpPolicy=crash, Key=key, AllowPlaintextHibernation=value(DWORD, small_dword(2)))
    sealed = dict(CrashDumpPolicy=crash, HibernationPolicy=value(DWORD, small_dword(2)),
                  KeySource=value(DWORD, small_dword(2)), Recipient=value(STRING, recipient_text()))
    yield "sealed", config_input(**sealed)
    yield "sealed_without_nul", config_input(
        **dict(sealed, Recipient=value(STRING, recipient_text(nul=False))))
    yield "sealed_with_key", config_input(**dict(sealed, Key=key))
    yield "sealed_without_recipient", config_input(
        **{k: v for k, v in sealed.items() if k != "Recipient"})
    yield "sealed_hibernation", config_input(
        **dict(sealed, HibernationPolicy=value(DWORD, small_dword(1))))
    yield "sealed_plaintext_hibernation", config_input(
        **{k: v for k, v in sealed.items() if k != "HibernationPolicy"})
    yield "recipient_identity", config_input(**dict(sealed, Recipient=value(STRING, identity_text())))
    yield "recipient_mistyped", config_input(
        **dict(sealed, Recipient=value(STRING, mistyped_recipient(10, 3))))
    yield "recipient_upper_case", config_input(
        **dict(sealed, Recipient=value(STRING, upper_recipient())))
    yield "recipient_as_binary", config_input(**dict(sealed, Recipient=value(BINARY, recipient_text())))
    # A Recipient longer (170 bytes) than the driver keeps (MAX_VALUE_LEN, 160): refused.
    yield "recipient_long", config_input(**dict(sealed, Recipient=value(STRING, recipient_text(), 170)))


# --- xts -------------------------------------------------------------------------------

def xts_input(key_seed, large, first_unit, units_, partial, data):
    key = bytes((i * 37 + key_seed) & 0xFF for i in range(64))
    return (key + boolean(False) + boolean(large) + first_unit + u8(units_) + u16(partial)
            + u8(0) + rest([u8(b) for b in data]))


def xts_seeds():
    yield "units_512", xts_input(1, False, variant(0, 3) + u16(5), 3, 0, b"dumpcrypt")
    yield "units_4096_near_top", xts_input(2, True, variant(1, 3) + u16(0), 2, 0, b"\x00\xff")
    yield "partial_unit", xts_input(3, False, variant(2, 3) + u64(2**63), 1, 17, b"x")


def main():
    for target, seeds in (("dump_protocol", dump_protocol_seeds()), ("config", config_seeds()),
                          ("xts", xts_seeds())):
        directory = os.path.join(HERE, "seeds", target)
        os.makedirs(directory, exist_ok=True)
        for name, data in seeds:
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
