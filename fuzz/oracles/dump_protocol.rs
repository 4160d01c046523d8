//! Fuzz target: arbitrary sequences of loads and Dump_Start/Write/Read/Finish/Unload calls,
//! driven through the simulated dump stack in process.
//!
//! The input chooses the OS version, the Parameters values (well-formed, or raw registry
//! values), the partition offset, the dump device's sector size (FILTER_EXTENSION.Geometry.
//! BytesPerSector: 512, 4096, unknown or any), and a list of operations: loads into either stack (or an
//! undefined one) with any MaxPagesPerWrite, the five callbacks on any loaded instance, writes
//! and reads with MDLs of arbitrary shape (flags, ByteOffset, ByteCount, Size, StartVa,
//! MappedSystemVa, PFNs, Next, Process) and arbitrary disk offsets, a retargeted MDL sent
//! again, and callbacks with an extension of the wrong dump type.
//!
//! The harness keeps the dump stack's side of the contract (src/mdl.rs, `Mdl`'s invariant):
//! when an MDL claims to be mapped, ByteCount bytes really exist at a non-null MappedSystemVa,
//! and as many PFN slots as Size declares are really there. Everything else is arbitrary.
//!
//! Oracle, for every call: it returns normally with the simulator's checks passing, or it
//! stops in bug check 0x44435259 whose P1 is one of the rules the call really broke (computed
//! here from the inputs, independently of the driver) and whose P4 is the callback; never a
//! panic, never another bug check (the retired 0x07 OutOfOrder included: a transfer is never
//! refused for its order), never a status other than the documented ones.
//!
//! The protocol modelled: an encrypting instance encrypts writes and decrypts reads in every
//! state, before Dump_Start (the boot-time DumpStack.log) and after Dump_Finish alike. The
//! hibernation copy keeps its keys at Dump_Finish and may start again; the crash dump copy
//! that finishes a dump it started wipes its keys (state KeysWiped): Dump_Start is then
//! STATUS_ACCESS_DENIED, a write is blanked (zeros inside the area, the source outside it,
//! the MDL retargeted as for any write, no bug check) and a read is handed on untouched.
//! DriverEntry fails only for the system's own arguments (MaxPagesPerWrite 0, an unknown dump
//! type); an invalid configuration, an encrypt policy whose keys cannot be had or prepared
//! (another DiskId, a key source other than the registry, the partition query failing, a
//! secondary buffer too large to allocate), and a data unit the sector size is not a whole
//! multiple of (with the sector size unknown: anything but 512) load a refusing instance:
//! Dump_Start STATUS_ACCESS_DENIED, a write bug check 0x06 WriteRefused.
//!
//! After a successful encrypting write, both the PFN array and MappedSystemVa describe
//! exactly the `xts-mode` encryption of the source inside the area (zeros, when blanked) and
//! the source outside it, every data unit inside the area differs from the plaintext, the
//! source and the StartVa decoy are untouched, and the MDL keeps ByteCount, MdlFlags, Size,
//! Next and Process. A successful read decrypts in place inside the area only. Passthrough
//! never touches an MDL. Dump_Finish leaves the secondary buffer wiped; Dump_Unload frees
//! everything DriverEntry took, with no key bytes left in freed memory; a failed DriverEntry
//! frees everything and leaves no callback and no context.
//!
//! Shared by the cargo-fuzz target (`fuzz/fuzz_targets/dump_protocol.rs`) and `cargo test`
//! (`tests/fuzz_seeds.rs`, which replays the committed seeds in `fuzz/seeds/dump_protocol`):
//! both call [`run`] with the raw input bytes.

use aes::cipher::KeyInit;
use arbitrary::{Arbitrary, Unstructured};
use crashdmp_sim::layout::{extension, mdl as mdl_layout, PAGE_SIZE};
use crashdmp_sim::machine::check_write;
use crashdmp_sim::mdl::{Header, SimMdl};
use crashdmp_sim::memory::{self, Pages};
use crashdmp_sim::ntoskrnl::{self, BugCheck, Environment, RegistryValue};
use crashdmp_sim::stack::{self, Call, DiskInfo, Load, LoadedFilter, SimError};
use dumpcrypt_core::config::{Config, KeySource, Policy, RawValue, RegistryValues, ValueName};
use dumpcrypt_core::fault::{Rule, BUGCHECK_CODE};
use dumpcrypt_core::geometry::{Area, TweakBase};

const REG_BINARY: u32 = 3;
const REG_DWORD: u32 = 4;
const REG_QWORD: u32 = 11;

const STATUS_INVALID_PARAMETER: i32 = 0xC000_000D_u32 as i32;
const STATUS_ACCESS_DENIED: i32 = 0xC000_0022_u32 as i32;

/// Largest MaxPagesPerWrite an encrypting load may succeed with here (larger ones are refused
/// without an allocation, or would allocate gigabytes: a refusing instance).
const MAX_SMALL_PAGES: u32 = 9;
/// The source and read regions: room for a transfer larger than any secondary buffer,
/// starting anywhere in the first two pages.
const REGION_PAGES: usize = MAX_SMALL_PAGES as usize + 4;
const REGION_LEN: usize = REGION_PAGES * PAGE_SIZE;
/// Instances alive at once (the driver holds at most 64 contexts).
const MAX_LIVE: usize = 6;
const MAX_OPS: usize = 48;

// Rules (bug check P1), from the README's table.
const TRANSFER_TOO_LARGE: u64 = 0x01;
const OFFSET_MISALIGNED: u64 = 0x02;
const LENGTH_MISALIGNED: u64 = 0x03;
const NOT_MAPPED: u64 = 0x04;
const PFN_ARRAY_TOO_SMALL: u64 = 0x05;
const WRITE_REFUSED: u64 = 0x06;
/// Retired: never raised since transfers outside a dump are handled like any other.
const OUT_OF_ORDER: u64 = 0x07;
const NULL_ARGUMENT: u64 = 0x08;
const UNKNOWN_CONTEXT: u64 = 0x09;
const OFFSET_OUT_OF_RANGE: u64 = 0x0A;
const SOURCE_IN_SECONDARY_BUFFER: u64 = 0x0B;
const DUMP_TYPE_MISMATCH: u64 = 0x0C;

// Callbacks (bug check P4).
const START: u64 = 1;
const WRITE: u64 = 2;
const READ: u64 = 3;
const FINISH: u64 = 4;
const UNLOAD: u64 = 5;

#[derive(Debug, Arbitrary)]
enum Os {
    Windows7,
    Windows8,
    Windows11,
    Other(u8, u8, u16),
}

#[derive(Debug, Arbitrary)]
enum KeySpec {
    Absent,
    /// 64 pseudo-random bytes from the input's seed (watched for in freed memory).
    Seeded,
    EqualHalves,
    Truncated(u8),
    AsDword,
}

#[derive(Debug, Arbitrary)]
enum Bound {
    Units(u16),
    Pages(u16),
    Any(u64),
}

impl Bound {
    fn value(&self) -> u64 {
        match *self {
            Self::Units(n) => u64::from(n) * 512,
            Self::Pages(n) => u64::from(n) * 4096,
            Self::Any(n) => n,
        }
    }
}

/// A configuration in the schema's shape, with values near the valid ones.
#[derive(Debug, Arbitrary)]
struct Structured {
    crash_dump_policy: Option<u8>,
    hibernation_policy: Option<u8>,
    key: KeySpec,
    data_unit: Option<(bool, bool)>,
    area_start: Option<Bound>,
    area_end: Option<Bound>,
    tweak_base: Option<u8>,
    /// AllowPlaintextHibernation: 0, 1, or the invalid 2.
    allow_plaintext_hibernation: Option<u8>,
}

#[derive(Debug, Arbitrary)]
struct RawEntry {
    /// One of the seven names (in some letter case) or another name.
    name: u8,
    upper_case: bool,
    value_type: u8,
    data: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
enum Parameters {
    Absent,
    Structured(Structured),
    Raw(Vec<RawEntry>),
}

#[derive(Debug, Arbitrary)]
enum Partition {
    Sectors(u32),
    Any(u64),
    NearTop(u16),
    Fails(u16),
}

/// FILTER_EXTENSION.Geometry.BytesPerSector of the dump device.
#[derive(Debug, Arbitrary)]
enum SectorSpec {
    Bytes512,
    Bytes4096,
    Unknown,
    Any(u32),
}

impl SectorSpec {
    fn value(&self) -> u32 {
        match *self {
            Self::Bytes512 => 512,
            Self::Bytes4096 => 4096,
            Self::Unknown => 0,
            Self::Any(n) => n,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum DumpTypeSpec {
    Crash,
    Hibernation,
    Other(u32),
}

#[derive(Debug, Arbitrary)]
enum MaxPages {
    Small(u8),
    /// 2^20 or u32::MAX pages: a buffer of 4 GiB or more, refused without an allocation.
    Huge(bool),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum OffsetSpec {
    Units(u16),
    Pages(u16),
    NearTop(u16),
    Negative(u16),
    Any(i64),
}

impl OffsetSpec {
    fn value(self) -> i64 {
        match self {
            Self::Units(n) => i64::from(n) * 512,
            Self::Pages(n) => i64::from(n) * 4096,
            Self::NearTop(n) => i64::MAX - i64::from(n) * 512 - i64::from(n % 2) * 511,
            Self::Negative(n) => -1 - i64::from(n) * 512,
            Self::Any(n) => n,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum FlagsSpec {
    Nonpaged,
    Mapped,
    MappedPartial,
    Unmapped,
    Any(u16),
}

#[derive(Debug, Arbitrary)]
enum CountSpec {
    Units(u8),
    Pages(u8),
    Any(u32),
}

#[derive(Debug, Arbitrary)]
enum VaSpec {
    Data,
    Null,
    /// Only when the flags say the MDL is not mapped (the filter must not read it then).
    Garbage(u64),
}

#[derive(Debug, Arbitrary)]
enum StartVaSpec {
    Consistent,
    Decoy,
    Any(u64),
}

#[derive(Debug, Arbitrary)]
enum SizeSpec {
    Exact,
    Extra(u8),
    Fewer(u8),
    Any(i16),
}

#[derive(Debug, Arbitrary)]
struct MdlSpec {
    flags: FlagsSpec,
    byte_count: CountSpec,
    data_offset: u16,
    mapped_va: VaSpec,
    start_va: StartVaSpec,
    byte_offset: Option<u32>,
    size: SizeSpec,
    garbage_pfns: bool,
    next: u8,
    process: u8,
}

#[derive(Debug, Arbitrary)]
struct Transfer {
    offset: OffsetSpec,
    /// 255: pass a null DiskByteOffset; 254: a null MDL.
    nulls: u8,
    mdl: MdlSpec,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Load {
        dump_type: DumpTypeSpec,
        max_pages: MaxPages,
    },
    Start(u8),
    Write(u8, Transfer),
    Read(u8, Transfer),
    Finish(u8),
    Unload(u8),
    /// The MDL of the instance's last successful write, sent again as it was left.
    Resend(u8, OffsetSpec),
    /// Dump_Finish with another dump type in the extension.
    ForeignDumpType(u8, u32),
}

#[derive(Debug, Arbitrary)]
struct Input {
    os: Os,
    parameters: Parameters,
    partition: Partition,
    bytes_per_sector: SectorSpec,
    seed: u64,
    ops: Vec<Op>,
}

/// SplitMix64: keys and memory contents from the input's seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

fn value(name: &str, value_type: u32, data: Vec<u8>) -> RegistryValue {
    RegistryValue {
        name: name.into(),
        value_type,
        data,
    }
}

/// The Parameters values the registry holds, and the key if it is one to watch for.
fn registry(parameters: &Parameters, key: &[u8; 64]) -> Option<Vec<RegistryValue>> {
    let mut values = Vec::new();
    match parameters {
        Parameters::Absent => return None,
        Parameters::Structured(s) => {
            let dword = |n: u8| (u32::from(n % 4) * (1 + u32::from(n / 128) * 1000)).to_le_bytes();
            if let Some(n) = s.crash_dump_policy {
                values.push(value("CrashDumpPolicy", REG_DWORD, dword(n).to_vec()));
            }
            if let Some(n) = s.hibernation_policy {
                values.push(value("HibernationPolicy", REG_DWORD, dword(n).to_vec()));
            }
            match s.key {
                KeySpec::Absent => {}
                KeySpec::Seeded => values.push(value("Key", REG_BINARY, key.to_vec())),
                KeySpec::EqualHalves => {
                    let mut equal = key.to_vec();
                    equal.copy_within(..32, 32);
                    values.push(value("Key", REG_BINARY, equal));
                }
                KeySpec::Truncated(n) => values.push(value(
                    "Key",
                    REG_BINARY,
                    key[..usize::from(n) % 64].to_vec(),
                )),
                KeySpec::AsDword => values.push(value("Key", REG_DWORD, vec![1, 0, 0, 0])),
            }
            if let Some((large, odd)) = s.data_unit {
                let unit: u32 = if large { 4096 } else { 512 } + u32::from(odd) * 512;
                values.push(value(
                    "DataUnitSize",
                    REG_DWORD,
                    unit.to_le_bytes().to_vec(),
                ));
            }
            if let Some(start) = &s.area_start {
                let bytes = start.value().to_le_bytes().to_vec();
                values.push(value("EncryptedAreaStart", REG_QWORD, bytes));
            }
            if let Some(end) = &s.area_end {
                let bytes = end.value().to_le_bytes().to_vec();
                values.push(value("EncryptedAreaEnd", REG_QWORD, bytes));
            }
            if let Some(n) = s.tweak_base {
                values.push(value(
                    "TweakBase",
                    REG_DWORD,
                    u32::from(n % 3).to_le_bytes().to_vec(),
                ));
            }
            if let Some(n) = s.allow_plaintext_hibernation {
                values.push(value(
                    "AllowPlaintextHibernation",
                    REG_DWORD,
                    u32::from(n % 3).to_le_bytes().to_vec(),
                ));
            }
        }
        Parameters::Raw(entries) => {
            for entry in entries.iter().take(12) {
                let index = usize::from(entry.name) % (ValueName::ALL.len() + 1);
                let mut name = ValueName::ALL
                    .get(index)
                    .map_or("SomethingNewer", |name| name.as_str())
                    .to_string();
                if entry.upper_case {
                    name.make_ascii_uppercase();
                }
                let value_type = match entry.value_type % 5 {
                    0 => REG_BINARY,
                    1 => REG_DWORD,
                    2 => REG_QWORD,
                    3 => 1, // REG_SZ
                    _ => u32::from(entry.value_type),
                };
                let mut data = entry.data.clone();
                data.truncate(100);
                // A key holds each name once.
                values.retain(|v: &RegistryValue| !v.name.eq_ignore_ascii_case(&name));
                values.push(value(&name, value_type, data));
            }
        }
    }
    Some(values)
}

/// What the driver's registry reading makes of the values (the host kernel boundary does
/// the same): the configuration DriverEntry will validate.
fn configuration(values: &Option<Vec<RegistryValue>>) -> Result<Config, ()> {
    let Some(values) = values else {
        return Config::parse(&RegistryValues::default()).map_err(|_| ());
    };
    let mut parameters = RegistryValues::present();
    for name in ValueName::ALL {
        if let Some(v) = values
            .iter()
            .find(|v| v.name.eq_ignore_ascii_case(name.as_str()))
        {
            parameters.set(name, RawValue::new(v.value_type, v.data.len(), &v.data));
        }
    }
    Config::parse(&parameters).map_err(|_| ())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Loaded,
    Started,
    /// After a started dump (the hibernation copy, and passthrough and refuse).
    Finished,
    /// The crash dump copy after the Dump_Finish of a dump it started: keys wiped.
    KeysWiped,
}

/// What the harness knows of an encrypting instance.
struct Encryption {
    oracle: xts_mode::Xts128<aes::Aes256>,
    unit: u64,
    area: Area,
    tweak_offset: u64,
    buffer_len: u64,
    /// Learned from the first retargeted MDL.
    buffer: Option<u64>,
}

struct Instance {
    filter: LoadedFilter,
    dump_type: u32,
    policy: Policy,
    encryption: Option<Encryption>,
    state: State,
    unloaded: bool,
    context: u64,
    last_retargeted: Option<SimMdl>,
}

/// The iteration's world: regions the MDLs point into, and what is expected of the driver.
struct World {
    source: Pages,
    source_copy: Vec<u8>,
    read_region: Pages,
    decoy: Pages,
    rng: Rng,
    config: Result<Config, ()>,
    partition: Result<u64, i32>,
    bytes_per_sector: u32,
    has_read: bool,
    instances: Vec<Instance>,
}

/// The outcome a call must have: a status, or a bug check with one of these P1s.
enum Expected {
    Status(i32),
    BugCheck(Vec<u64>),
}

fn check_outcome(call: Call, result: Result<i32, SimError>, expected: &Expected, callback: u64) {
    match (result, expected) {
        (Ok(status), Expected::Status(want)) => {
            assert_eq!(
                status, *want,
                "{call}: status {status:#x}, expected {want:#x}"
            );
        }
        (Ok(status), Expected::BugCheck(rules)) => {
            panic!("{call}: returned {status:#x} where a bug check ({rules:x?}) was due")
        }
        (Err(SimError::BugCheck { bug_check, .. }), expected) => {
            check_bug_check(call, bug_check, expected, callback);
        }
        (Err(error), _) => panic!("{error}"),
    }
}

fn check_bug_check(call: Call, bug_check: BugCheck, expected: &Expected, callback: u64) {
    record(|stats| *stats.bug_checks.entry(bug_check.parameters[0]).or_default() += 1);
    assert_eq!(bug_check.code, BUGCHECK_CODE, "{call}: {bug_check}");
    let [p1, _, _, p4] = bug_check.parameters;
    assert!(
        Rule::TABLE.iter().any(|(_, rule, ..)| *rule == p1),
        "{call}: {bug_check}: P1 not in the fault table"
    );
    assert!(
        Rule::TABLE
            .iter()
            .all(|(rule, code, ..)| *code != p1 || !Rule::RETIRED.contains(rule)),
        "{call}: {bug_check}: a retired rule"
    );
    assert_ne!(
        p1, OUT_OF_ORDER,
        "{call}: {bug_check}: refused for its order"
    );
    assert_eq!(p4, callback, "{call}: {bug_check}: wrong callback");
    match expected {
        Expected::BugCheck(rules) => assert!(
            rules.contains(&p1),
            "{call}: {bug_check}: rule {p1:#x} was not broken (broken: {rules:x?})"
        ),
        _ => panic!("{call}: {bug_check} where none was due"),
    }
}

/// An MDL built from `spec` over `region`, with the facts the oracle needs.
struct Built {
    mdl: SimMdl,
    /// MappedSystemVa and ByteCount of the data, when the MDL is mapped to real data.
    data: Option<(usize, usize)>,
    byte_count: u32,
    capacity: usize,
}

fn build_mdl(spec: &MdlSpec, region: &Pages, decoy: &Pages) -> Built {
    let flags = match spec.flags {
        FlagsSpec::Nonpaged => mdl_layout::SOURCE_IS_NONPAGED_POOL,
        FlagsSpec::Mapped => mdl_layout::MAPPED_TO_SYSTEM_VA | mdl_layout::PAGES_LOCKED,
        FlagsSpec::MappedPartial => {
            mdl_layout::MAPPED_TO_SYSTEM_VA | mdl_layout::PAGES_LOCKED | mdl_layout::PARTIAL
        }
        FlagsSpec::Unmapped => mdl_layout::PAGES_LOCKED,
        FlagsSpec::Any(flags) => flags,
    };
    let mapped =
        flags & (mdl_layout::MAPPED_TO_SYSTEM_VA | mdl_layout::SOURCE_IS_NONPAGED_POOL) != 0;
    let data_offset = usize::from(spec.data_offset) % (2 * PAGE_SIZE);
    let room = (REGION_LEN - data_offset) as u64;
    let byte_count = match spec.byte_count {
        CountSpec::Units(n) => u64::from(n) * 512,
        CountSpec::Pages(n) => u64::from(n % 40) * 4096,
        CountSpec::Any(n) => u64::from(n),
    }
    .min(room) as u32;
    let address = region.as_ptr() as usize + data_offset;
    let mapped_system_va = match spec.mapped_va {
        VaSpec::Data => address as u64,
        VaSpec::Null => 0,
        VaSpec::Garbage(_) if mapped => address as u64,
        VaSpec::Garbage(garbage) => garbage,
    };
    let in_page = data_offset % PAGE_SIZE;
    let pages = (in_page + byte_count as usize).div_ceil(PAGE_SIZE);
    let size = match spec.size {
        SizeSpec::Exact => (mdl_layout::HEADER + pages * 8) as i16,
        SizeSpec::Extra(n) => (mdl_layout::HEADER + (pages + usize::from(n % 8)) * 8) as i16,
        SizeSpec::Fewer(n) => {
            (mdl_layout::HEADER + pages.saturating_sub(1 + usize::from(n) % pages.max(1)) * 8)
                as i16
        }
        SizeSpec::Any(size) => size,
    };
    // As the filter reads Size: PFN slots after the header.
    let capacity = (size as u16 as usize).saturating_sub(mdl_layout::HEADER) / 8;
    let mut mdl = SimMdl::with_slots(capacity.max(pages));
    let page_base = (address & !(PAGE_SIZE - 1)) as u64;
    // Nonpaged pool without a MappedSystemVa is read at StartVa + ByteOffset: the harness
    // keeps its side of the contract (src/mdl.rs) by making that the data's address.
    let nonpaged_without_va =
        flags & mdl_layout::SOURCE_IS_NONPAGED_POOL != 0 && mapped_system_va == 0;
    let (start_va, byte_offset) = if nonpaged_without_va {
        (page_base, in_page as u32)
    } else {
        (
            match spec.start_va {
                StartVaSpec::Consistent => page_base,
                StartVaSpec::Decoy => decoy.as_ptr() as u64,
                StartVaSpec::Any(any) => any,
            },
            spec.byte_offset.unwrap_or(in_page as u32),
        )
    };
    mdl.set_header(Header {
        next: u64::from(spec.next) << 12,
        size,
        flags,
        process: u64::from(spec.process) << 12,
        mapped_system_va,
        start_va,
        byte_count,
        byte_offset,
    });
    for slot in 0..mdl.slots() {
        let pfn = if slot < pages && !spec.garbage_pfns {
            region.pfn(data_offset - in_page + slot * PAGE_SIZE)
        } else {
            0x5A5A_0000 + slot as u64
        };
        mdl.set_pfn(slot, pfn);
    }
    let data = (mapped && (mapped_system_va != 0 || nonpaged_without_va))
        .then_some((address, byte_count as usize));
    Built {
        mdl,
        data,
        byte_count,
        capacity,
    }
}

/// The MDL's header and PFN slots, to check a call left it alone.
fn snapshot(mdl: &SimMdl) -> (Header, Vec<u64>) {
    (
        mdl.header(),
        (0..mdl.slots()).map(|slot| mdl.pfn(slot)).collect(),
    )
}

fn read_bytes(address: usize, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    memory::read_virtual(address, &mut out).expect("harness memory");
    out
}

/// The rules an encrypting instance's transfer breaks, in tweak-base coordinates: the
/// position when it breaks none of the common ones.
fn transfer_rules(
    encryption: &Encryption,
    offset: Option<i64>,
    built: Option<&Built>,
    rules: &mut Vec<u64>,
) -> Option<u64> {
    let Some(offset) = offset else {
        rules.push(NULL_ARGUMENT);
        return None;
    };
    let Some(built) = built else {
        rules.push(NULL_ARGUMENT);
        return None;
    };
    let count = u64::from(built.byte_count);
    if count > encryption.buffer_len {
        rules.push(TRANSFER_TOO_LARGE);
    }
    let position = u64::try_from(offset)
        .ok()
        .and_then(|o| o.checked_add(encryption.tweak_offset))
        .filter(|p| p.checked_add(count).is_some());
    match position {
        None => rules.push(OFFSET_OUT_OF_RANGE),
        Some(position) if position % encryption.unit != 0 => rules.push(OFFSET_MISALIGNED),
        Some(_) => {}
    }
    if count % encryption.unit != 0 {
        rules.push(LENGTH_MISALIGNED);
    }
    if built.data.is_none() {
        rules.push(NOT_MAPPED);
    }
    position
}

/// The part of `[position, position + len)` inside the area, relative to `position`.
fn inside(area: Area, position: u64, len: u64) -> Option<(usize, usize)> {
    let lo = position.max(area.start);
    let hi = (u128::from(position) + u128::from(len)).min(u128::from(area.end)) as u64;
    (lo < hi).then(|| ((lo - position) as usize, (hi - position) as usize))
}

impl World {
    fn check_source(&self, call: Call) {
        assert!(
            self.source.as_slice() == self.source_copy.as_slice(),
            "{call}: wrote into the caller's source buffer"
        );
        assert!(
            self.decoy.as_slice().iter().all(|&b| b == 0xDC),
            "{call}: wrote to the page at StartVa"
        );
    }

    fn load(&mut self, dump_type: &DumpTypeSpec, max_pages: &MaxPages) {
        if self.instances.iter().filter(|i| !i.unloaded).count() >= MAX_LIVE {
            return;
        }
        let dump_type = match *dump_type {
            DumpTypeSpec::Crash => stack::CRASHDUMP,
            DumpTypeSpec::Hibernation => stack::HIBERNATION,
            // A first u16 of 4 (IO_TYPE_DRIVER) is how DriverEntry tells a service start
            // from a dump stack load (docs/design.md): such a "dump type" is a DRIVER_OBJECT to
            // it, refused untouched. No dump stack passes one; keep to the distinguishable.
            DumpTypeSpec::Other(other) if other & 0xFFFF == 4 => other ^ 0x10,
            DumpTypeSpec::Other(other) => other,
        };
        let max_pages = match *max_pages {
            MaxPages::Small(n) => u32::from(n) % (MAX_SMALL_PAGES + 1),
            MaxPages::Huge(false) => 0x10_0000,
            MaxPages::Huge(true) => u32::MAX,
        };
        // DriverEntry fails only for the system's own arguments. Everything else loads an
        // instance: an invalid configuration (or an unreadable Parameters key) a refusing one,
        // and so does the encrypt policy whose keys cannot be had or prepared: a DiskId that
        // is not the simulated disk, a key source other than the registry (no provider is
        // registered here; the sealed source fails closed), the partition query failing
        // (disk-absolute tweaks), a secondary buffer too large to allocate, or a data unit the
        // dump device's sectors are not whole multiples of.
        let (sim_style, sim_disk) = ntoskrnl::environment().partition_info;
        let original = match &self.config {
            Ok(config) => match dump_type {
                stack::HIBERNATION => config.hibernation_policy,
                _ => config.crash_dump_policy,
            },
            Err(()) => Policy::Refuse,
        };
        let tweak_offset = match &self.config {
            Ok(config) if config.tweak_base == TweakBase::Disk => self.partition,
            _ => Ok(0),
        };
        let unprepared = match &self.config {
            Ok(config) if original == Policy::Encrypt => {
                let disk_refuses = config.disk_id.is_some_and(|id| {
                    id.style != sim_style
                        || match id.style {
                            0 => id.mbr_signature.to_le_bytes() != sim_disk[..4],
                            _ => id.gpt_disk_id != sim_disk,
                        }
                });
                let unit = config.data_unit.bytes() as u32;
                let fits = match self.bytes_per_sector {
                    0 => unit == 512,
                    sector => sector % unit == 0,
                };
                disk_refuses
                    || config.key_source != KeySource::Registry
                    || tweak_offset.is_err()
                    || max_pages > MAX_SMALL_PAGES
                    || !fits
            }
            _ => false,
        };
        let policy = if unprepared { Policy::Refuse } else { original };
        let expected = if max_pages == 0
            || (dump_type != stack::CRASHDUMP && dump_type != stack::HIBERNATION)
        {
            Err(STATUS_INVALID_PARAMETER)
        } else {
            Ok(())
        };
        let outstanding = ntoskrnl::counters().outstanding;
        let disk = DiskInfo {
            bytes_per_sector: self.bytes_per_sector,
            disk_size: 1 << 40,
        };
        let load = match stack::load(dumpcrypt::DriverEntry, dump_type, max_pages, disk) {
            Ok(load) => load,
            Err(error) => panic!("{error}"),
        };
        let taken = ntoskrnl::counters().outstanding - outstanding;
        match (load, expected) {
            (Load::Failed { status, init }, Err(want)) => {
                assert_eq!(status, want, "DriverEntry failed with {status:#x}");
                assert_eq!(taken, 0, "a failed DriverEntry kept {taken} allocations");
                assert!(!(init.has_start || init.has_write || init.has_finish || init.has_unload));
                assert!(!init.has_read);
                assert_eq!(init.dump_data, 0, "a failed DriverEntry left a context");
                assert_eq!(init.major_version, if self.has_read { 2 } else { 1 });
            }
            (Load::Loaded(filter), Ok(())) => {
                // At least the context; the simulator checks that unload frees them all.
                assert!(taken >= 1, "DriverEntry allocated no context");
                let encryption = (policy == Policy::Encrypt).then(|| {
                    let config = self.config.as_ref().expect("loaded");
                    let key = config.key.expect("encrypt has a key");
                    Encryption {
                        oracle: xts_mode::Xts128::new(
                            aes::Aes256::new_from_slice(&key[..32]).expect("key"),
                            aes::Aes256::new_from_slice(&key[32..]).expect("key"),
                        ),
                        unit: config.data_unit.bytes() as u64,
                        area: config.area,
                        tweak_offset: tweak_offset.expect("loaded"),
                        buffer_len: u64::from(max_pages) * PAGE_SIZE as u64,
                        buffer: None,
                    }
                });
                assert_eq!(filter.supports_read(), self.has_read);
                record(|stats| {
                    stats.loads += 1;
                    stats.encrypting_loads += u64::from(encryption.is_some());
                });
                self.instances.push(Instance {
                    context: filter.view.dump_data,
                    filter,
                    dump_type,
                    policy,
                    encryption,
                    state: State::Loaded,
                    unloaded: false,
                    last_retargeted: None,
                });
            }
            (Load::Failed { status, .. }, Ok(_)) => {
                panic!("DriverEntry failed with {status:#x} where it must succeed")
            }
            (Load::Loaded(_), Err(want)) => {
                panic!("DriverEntry succeeded where it must fail with {want:#x}")
            }
        }
    }

    fn instance(&mut self, index: u8) -> Option<&mut Instance> {
        let count = self.instances.len();
        (count > 0).then(|| &mut self.instances[usize::from(index) % count])
    }

    fn start(&mut self, index: u8) {
        let Some(instance) = self.instance(index) else {
            return;
        };
        let expected = if instance.unloaded {
            Expected::BugCheck(vec![UNKNOWN_CONTEXT])
        } else if instance.policy == Policy::Refuse || instance.state == State::KeysWiped {
            // A refusing instance, or the crash dump copy whose keys are gone.
            Expected::Status(STATUS_ACCESS_DENIED)
        } else {
            Expected::Status(0)
        };
        let result = instance.filter.start();
        if let Err(SimError::BugCheck { bug_check, .. }) = &result {
            assert_eq!(bug_check.parameters[1], instance.context);
        }
        check_outcome(Call::Start, result, &expected, START);
        if matches!(expected, Expected::Status(0)) {
            instance.state = State::Started;
        }
    }

    fn finish(&mut self, index: u8) {
        let Some(instance) = self.instance(index) else {
            return;
        };
        let expected = if instance.unloaded {
            Expected::BugCheck(vec![UNKNOWN_CONTEXT])
        } else {
            Expected::Status(0)
        };
        let result = instance.filter.finish();
        check_outcome(Call::Finish, result, &expected, FINISH);
        if instance.unloaded {
            return;
        }
        let encrypts = instance.encryption.is_some();
        instance.state = match (instance.state, instance.dump_type) {
            (State::Started, stack::CRASHDUMP) if encrypts => State::KeysWiped,
            (State::Started, _) => State::Finished,
            (other, _) => other,
        };
        if let Some(Encryption {
            buffer: Some(buffer),
            buffer_len,
            ..
        }) = instance.encryption
        {
            let contents = read_bytes(buffer as usize, buffer_len as usize);
            assert!(
                contents.iter().all(|&b| b == 0),
                "Dump_Finish: did not wipe the secondary buffer"
            );
        }
    }

    fn unload(&mut self, index: u8) {
        let Some(instance) = self.instance(index) else {
            return;
        };
        let expected = if instance.unloaded {
            Expected::BugCheck(vec![UNKNOWN_CONTEXT])
        } else {
            Expected::Status(0)
        };
        // The simulator checks that everything DriverEntry took is freed, with no key bytes
        // left in it.
        let result = instance.filter.unload();
        check_outcome(Call::Unload, result, &expected, UNLOAD);
        instance.unloaded = true;
        instance.last_retargeted = None;
    }

    fn foreign_dump_type(&mut self, index: u8, other: u32) {
        let Some(instance) = self.instance(index) else {
            return;
        };
        let found = if other.is_multiple_of(2) {
            3 - instance.dump_type
        } else {
            other
        };
        if found == instance.dump_type {
            return;
        }
        instance
            .filter
            .set_extension_field_u64(extension::DUMP_TYPE, u64::from(found));
        let expected = Expected::BugCheck(vec![if instance.unloaded {
            UNKNOWN_CONTEXT
        } else {
            DUMP_TYPE_MISMATCH
        }]);
        let result = instance.filter.finish();
        if let Err(SimError::BugCheck { bug_check, .. }) = &result {
            if !instance.unloaded {
                assert_eq!(
                    bug_check.parameters[1..3],
                    [u64::from(instance.dump_type), u64::from(found)]
                );
            }
        }
        check_outcome(Call::Finish, result, &expected, FINISH);
        instance
            .filter
            .set_extension_field_u64(extension::DUMP_TYPE, u64::from(instance.dump_type));
    }

    fn write(&mut self, index: u8, transfer: &Transfer) {
        let built = build_mdl(&transfer.mdl, &self.source, &self.decoy);
        self.write_mdl(index, transfer.offset.value(), transfer.nulls, built, false);
    }

    fn resend(&mut self, index: u8, offset: OffsetSpec) {
        let Some(instance) = self.instance(index) else {
            return;
        };
        let Some(mdl) = instance.last_retargeted.take() else {
            return;
        };
        let header = mdl.header();
        let built = Built {
            data: Some((header.mapped_system_va as usize, header.byte_count as usize)),
            byte_count: header.byte_count,
            capacity: (header.size as u16 as usize).saturating_sub(mdl_layout::HEADER) / 8,
            mdl,
        };
        self.write_mdl(index, offset.value(), 0, built, true);
    }

    fn write_mdl(&mut self, index: u8, offset: i64, nulls: u8, mut built: Built, resent: bool) {
        let Some(instance) = self.instance(index) else {
            return;
        };
        let call = Call::Write(0);
        let (null_offset, null_mdl) = (nulls == 255, nulls == 254);
        let mut rules = Vec::new();
        let mut position = None;
        if instance.unloaded {
            rules.push(UNKNOWN_CONTEXT);
        } else {
            match (&instance.encryption, instance.policy) {
                (_, Policy::Passthrough) => {}
                (_, Policy::Refuse) => rules.push(if null_offset {
                    NULL_ARGUMENT
                } else {
                    WRITE_REFUSED
                }),
                // In every state, before Dump_Start and after Dump_Finish too; blanked or
                // encrypted, a write is checked alike.
                (Some(encryption), _) => {
                    position = transfer_rules(
                        encryption,
                        (!null_offset).then_some(offset),
                        (!null_mdl).then_some(&built),
                        &mut rules,
                    );
                    let needed = (built.byte_count as usize).div_ceil(PAGE_SIZE);
                    if !null_offset && !null_mdl && needed > built.capacity {
                        rules.push(PFN_ARRAY_TOO_SMALL);
                    }
                    if let (Some(buffer), Some((address, len)), false) =
                        (encryption.buffer, built.data, null_mdl)
                    {
                        let (start, end) =
                            (buffer as usize, (buffer + encryption.buffer_len) as usize);
                        if address < end && start < address.saturating_add(len) {
                            rules.push(SOURCE_IN_SECONDARY_BUFFER);
                        }
                    }
                }
                (None, Policy::Encrypt) => unreachable!("encrypt has its state"),
            }
        }
        // The crash dump copy whose keys were wiped at its Dump_Finish blanks the write.
        let blanked = instance.state == State::KeysWiped;
        let before = snapshot(&built.mdl);
        let data_before = built.data.map(|(address, len)| read_bytes(address, len));
        let mut offset_cell = offset;
        let offset_ptr: *mut i64 = if null_offset {
            std::ptr::null_mut()
        } else {
            &raw mut offset_cell
        };
        let mdl_ptr = if null_mdl {
            std::ptr::null_mut()
        } else {
            built.mdl.as_ptr()
        };
        // SAFETY: each pointer is null or live: the offset on this stack frame, the MDL with
        // as many PFN slots as its Size declares and, when it claims to be mapped, ByteCount
        // bytes at MappedSystemVa (the harness memory, or the instance's live buffer).
        let result = unsafe { instance.filter.write_raw(offset_ptr, mdl_ptr) };
        let expected = if rules.is_empty() {
            Expected::Status(0)
        } else {
            Expected::BugCheck(rules)
        };
        let succeeded = matches!(result, Ok(0));
        check_outcome(call, result, &expected, WRITE);
        self.check_source(call);
        let count = self.instances.len();
        let instance = &mut self.instances[usize::from(index) % count];
        let encrypting = instance.policy == Policy::Encrypt && !instance.unloaded;
        if !(succeeded && encrypting) {
            // Passthrough, and every refusal: the MDL is as it was.
            assert!(snapshot(&built.mdl) == before, "{call}: changed the MDL");
            if let (Some((address, len)), Some(data)) = (built.data, data_before) {
                assert!(read_bytes(address, len) == data, "{call}: changed the data");
            }
            return;
        }
        let encryption = instance.encryption.as_mut().expect("encrypting");
        let position = position.expect("a successful write had a position");
        let (address, len) = built.data.expect("a successful write read mapped data");
        let source = data_before.expect("mapped");
        let after = built.mdl.header();
        check_write(call, &before.0, &after, offset_cell, offset as u64)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(after.byte_offset, 0, "{call}: ByteOffset");
        assert_eq!(after.start_va, after.mapped_system_va, "{call}: StartVa");
        let buffer = *encryption.buffer.get_or_insert(after.mapped_system_va);
        assert_eq!(
            after.mapped_system_va, buffer,
            "{call}: another secondary buffer"
        );
        if len > 0 && !resent {
            assert_ne!(
                after.mapped_system_va as usize, address,
                "{call}: not retargeted"
            );
        }
        let by_pfn = built
            .mdl
            .gather_by_pfn()
            .unwrap_or_else(|e| panic!("{call}: {e}"));
        let by_va = built
            .mdl
            .gather_by_va()
            .unwrap_or_else(|e| panic!("{call}: {e}"));
        assert!(by_pfn == by_va, "{call}: PFNs and MappedSystemVa differ");
        let mut expected = source.clone();
        if let Some((lo, hi)) = inside(encryption.area, position, len as u64) {
            assert_eq!(
                (hi - lo) as u64 % encryption.unit,
                0,
                "{call}: partial unit in the area"
            );
            if blanked {
                // Keys wiped: zeros inside the area, never plaintext, never a bug check.
                expected[lo..hi].fill(0);
            } else {
                encryption.oracle.encrypt_area(
                    &mut expected[lo..hi],
                    encryption.unit as usize,
                    u128::from((position + lo as u64) / encryption.unit),
                    |n: u128| n.to_le_bytes(),
                );
            }
            for (plain, cipher) in source[lo..hi]
                .chunks(encryption.unit as usize)
                .zip(by_va[lo..hi].chunks(encryption.unit as usize))
            {
                assert!(plain != cipher, "{call}: plaintext inside the area");
            }
        }
        assert!(
            by_va == expected,
            "{call}: {}",
            if blanked {
                "not the source blanked inside the area"
            } else {
                "not the XTS-AES-256 of the source"
            }
        );
        record(|stats| {
            if blanked {
                stats.blanked_writes += 1;
            } else {
                stats.encrypted_writes += 1;
                stats.encrypted_bytes += len as u64;
            }
        });
        instance.last_retargeted = Some(built.mdl);
    }

    fn read(&mut self, index: u8, transfer: &Transfer) {
        let Some(instance) = self.instance(index) else {
            return;
        };
        if !instance.filter.supports_read() {
            return;
        }
        let mut built = build_mdl(&transfer.mdl, &self.read_region, &self.decoy);
        // Fresh "ciphertext" where the MDL points.
        if let Some((address, len)) = built.data {
            let start = address - self.read_region.as_ptr() as usize;
            self.rng
                .fill(&mut self.read_region.as_mut_slice()[start..start + len]);
        }
        let count = self.instances.len();
        let instance = &mut self.instances[usize::from(index) % count];
        let call = Call::Read(0);
        let offset = transfer.offset.value();
        let (null_offset, null_mdl) = (transfer.nulls == 255, transfer.nulls == 254);
        let mut rules = Vec::new();
        let mut position = None;
        if instance.unloaded {
            rules.push(UNKNOWN_CONTEXT);
        } else if let Some(encryption) = instance
            .encryption
            .as_ref()
            .filter(|_| instance.state != State::KeysWiped)
        {
            // In every state (a read before Dump_Start: the boot-time DumpStack.log), but
            // the crash dump copy's after its keys were wiped, handed on untouched.
            position = transfer_rules(
                encryption,
                (!null_offset).then_some(offset),
                (!null_mdl).then_some(&built),
                &mut rules,
            );
        }
        let before = snapshot(&built.mdl);
        let data_before = built.data.map(|(address, len)| read_bytes(address, len));
        let mut offset_cell = offset;
        let offset_ptr: *mut i64 = if null_offset {
            std::ptr::null_mut()
        } else {
            &raw mut offset_cell
        };
        let mdl_ptr = if null_mdl {
            std::ptr::null_mut()
        } else {
            built.mdl.as_ptr()
        };
        // SAFETY: each pointer is null or live, as for writes (`World::write_mdl`).
        let read = unsafe { instance.filter.read_raw(offset_ptr, mdl_ptr) }
            .expect("the filter has Dump_Read");
        let expected = if rules.is_empty() {
            Expected::Status(0)
        } else {
            Expected::BugCheck(rules)
        };
        let succeeded = matches!(read, Ok(0));
        check_outcome(call, read, &expected, READ);
        self.check_source(call);
        let instance = &self.instances[usize::from(index) % self.instances.len()];
        assert!(snapshot(&built.mdl) == before, "{call}: changed the MDL");
        assert_eq!(offset_cell, offset, "{call}: changed the offset");
        let (Some((address, len)), Some(mut expected)) = (built.data, data_before) else {
            return;
        };
        if succeeded && !instance.unloaded && instance.state != State::KeysWiped {
            if let (Some(encryption), Some(position)) = (&instance.encryption, position) {
                record(|stats| stats.decrypted_reads += 1);
                if let Some((lo, hi)) = inside(encryption.area, position, len as u64) {
                    encryption.oracle.decrypt_area(
                        &mut expected[lo..hi],
                        encryption.unit as usize,
                        u128::from((position + lo as u64) / encryption.unit),
                        |n: u128| n.to_le_bytes(),
                    );
                }
            }
        }
        assert!(
            read_bytes(address, len) == expected,
            "{call}: not decrypted in place inside the area only"
        );
    }
}

/// What the runs reached, printed every 10,000 runs every `DUMP_PROTOCOL_STATS` runs: to
/// see that the fuzzer gets past DriverEntry into the dump path.
#[derive(Debug, Default)]
struct Stats {
    runs: u64,
    loads: u64,
    encrypting_loads: u64,
    encrypted_writes: u64,
    encrypted_bytes: u64,
    blanked_writes: u64,
    decrypted_reads: u64,
    bug_checks: std::collections::BTreeMap<u64, u64>,
}

thread_local! {
    static STATS: std::cell::RefCell<Stats> = std::cell::RefCell::default();
}

fn record(f: impl FnOnce(&mut Stats)) {
    STATS.with(|stats| f(&mut stats.borrow_mut()));
}

/// Decodes `data` as libfuzzer-sys decodes the input of a typed target (too short for
/// `Input`'s size hint, or not decodable: rejected), then checks it. Returns whether `data`
/// was an input; panics when the oracle fails.
pub fn run(data: &[u8]) -> bool {
    if data.len() < <Input as Arbitrary>::size_hint(0).0 {
        return false;
    }
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return false;
    };
    check(input);
    record(|stats| {
        stats.runs += 1;
        let every = std::env::var("DUMP_PROTOCOL_STATS")
            .ok()
            .and_then(|every| every.parse::<u64>().ok());
        if every.is_some_and(|every| stats.runs % every.max(1) == 0) {
            eprintln!("{stats:?}");
        }
    });
    true
}

fn check(input: Input) {
    let mut rng = Rng(input.seed);
    let mut key = [0u8; 64];
    rng.fill(&mut key);
    let os_version = match input.os {
        Os::Windows7 => (6, 1, 7601),
        Os::Windows8 => (6, 2, 9200),
        Os::Windows11 => (10, 0, 26100),
        Os::Other(major, minor, build) => (u32::from(major), u32::from(minor), u32::from(build)),
    };
    let partition = match input.partition {
        Partition::Sectors(n) => Ok(u64::from(n) * 512),
        Partition::Any(n) => Ok(n),
        Partition::NearTop(n) => Ok(u64::MAX - u64::from(n) * 512 - 511),
        Partition::Fails(n) => Err(i32::from_ne_bytes(
            (0xC000_0000 | u32::from(n)).to_ne_bytes(),
        )),
    };
    let values = registry(&input.parameters, &key);
    let bytes_per_sector = input.bytes_per_sector.value();
    let mut environment = Environment {
        os_version,
        partition_offset: partition,
        bytes_per_sector,
        ..Environment::default()
    };
    if let Some(values) = &values {
        environment
            .registry
            .insert(dumpcrypt::kernel::PARAMETERS_PATH.into(), values.clone());
    }
    // The seeded key's halves are pseudo-random: they must not be found in freed memory.
    environment.secrets = vec![key[..32].to_vec(), key[32..].to_vec()];
    ntoskrnl::boot(environment);

    let mut source = Pages::new(REGION_LEN);
    rng.fill(source.as_mut_slice());
    let mut decoy = Pages::new(PAGE_SIZE);
    decoy.as_mut_slice().fill(0xDC);
    let mut world = World {
        source_copy: source.as_slice().to_vec(),
        source,
        read_region: Pages::new(REGION_LEN),
        decoy,
        rng,
        config: configuration(&values),
        partition,
        bytes_per_sector,
        has_read: stack::os_has_read(),
        instances: Vec::new(),
    };
    for op in input.ops.iter().take(MAX_OPS) {
        match op {
            Op::Load {
                dump_type,
                max_pages,
            } => world.load(dump_type, max_pages),
            Op::Start(i) => world.start(*i),
            Op::Write(i, transfer) => world.write(*i, transfer),
            Op::Read(i, transfer) => world.read(*i, transfer),
            Op::Finish(i) => world.finish(*i),
            Op::Unload(i) => world.unload(*i),
            Op::Resend(i, offset) => world.resend(*i, *offset),
            Op::ForeignDumpType(i, other) => world.foreign_dump_type(*i, *other),
        }
    }
    // The system unloads what is left; then nothing may be outstanding.
    for index in 0..world.instances.len() {
        if !world.instances[index].unloaded {
            world.unload(index as u8);
        }
    }
    let counters = ntoskrnl::counters();
    assert_eq!(
        counters.outstanding, 0,
        "allocations left after every unload"
    );
    assert!(counters.violations.is_empty(), "{:?}", counters.violations);
}
