//! The crash dump and hibernation files in the formats Windows writes them.
//!
//! | Rust                    | Windows                                                   |
//! |-------------------------|-----------------------------------------------------------|
//! | [`crash_dump`]          | `DUMP_HEADER64`, then the pages (full) or a `_SUMMARY_DUMP` and its bitmap, then the pages (bitmap) |
//! | [`PhysicalMemory`]      | `PHYSICAL_MEMORY_DESCRIPTOR64` and its `PHYSICAL_MEMORY_RUN64`s |
//! | [`DumpKind`]            | the CrashControl dump kinds, and `DumpType` 1 or 5        |
//! | [`hibernation_header`]  | `PO_MEMORY_IMAGE`, the first page of hiberfil.sys         |
//!
//! Layouts, from public sources: DUMP_HEADER64 as the `kdmp-parser` crate's `Header64` and
//! Volatility 3's `crash64.json` give it (0x2000 bytes; every offset in [`header`]);
//! `_SUMMARY_DUMP` as Volatility 3's `crash_common.json` and kdmp-parser's `BmpHeader64`
//! give it (HeaderSize, the file offset of the first page, @0x20; Pages, the pages present,
//! @0x28; BitmapSize, the bits of the bitmap, @0x30; the bitmap, of 32-bit words, @0x38);
//! the AMD64 `CONTEXT` as winnt.h declares it (0x4D0 bytes; MxCsr @0x34 and its copy in
//! FltSave @0x118 agree, as kdmp-parser's `Context` reads both); `PO_MEMORY_IMAGE` as
//! Volatility 3's hibernation `header.json` gives its fields.
//!
//! The simulated memory is the source of truth: a dump maps each physical page it holds to
//! the bytes of the simulated memory at that page, and [`PageMap`] says where they lie.

use crate::layout::{put, PAGE_SIZE};
use crate::machine::Rng;

/// Size of the 64-bit crash dump header (DUMP_HEADER64).
pub const HEADER_LEN: usize = 0x2000;

/// DUMP_HEADER64 offsets.
pub mod header {
    pub const SIGNATURE: usize = 0x00; // "PAGE"
    pub const VALID_DUMP: usize = 0x04; // "DU64"
    pub const MAJOR_VERSION: usize = 0x08;
    pub const MINOR_VERSION: usize = 0x0C;
    pub const DIRECTORY_TABLE_BASE: usize = 0x10;
    pub const PFN_DATA_BASE: usize = 0x18;
    pub const PS_LOADED_MODULE_LIST: usize = 0x20;
    pub const PS_ACTIVE_PROCESS_HEAD: usize = 0x28;
    pub const MACHINE_IMAGE_TYPE: usize = 0x30;
    pub const NUMBER_PROCESSORS: usize = 0x34;
    pub const BUGCHECK_CODE: usize = 0x38;
    pub const BUGCHECK_PARAMETER1: usize = 0x40;
    pub const VERSION_USER: usize = 0x60; // 32 bytes
    pub const KD_DEBUGGER_DATA_BLOCK: usize = 0x80;
    pub const PHYSICAL_MEMORY_BLOCK: usize = 0x88; // 700 bytes
    pub const PHYSICAL_MEMORY_BLOCK_LEN: usize = 700;
    pub const CONTEXT_RECORD: usize = 0x348; // 3000 bytes
    pub const EXCEPTION: usize = 0xF00; // EXCEPTION_RECORD64, 0x98 bytes
    pub const DUMP_TYPE: usize = 0xF98;
    pub const REQUIRED_DUMP_SPACE: usize = 0xFA0;
    pub const SYSTEM_TIME: usize = 0xFA8;
    pub const COMMENT: usize = 0xFB0; // 128 bytes
    pub const SYSTEM_UP_TIME: usize = 0x1030;
    pub const MINI_DUMP_FIELDS: usize = 0x1038;
    pub const SECONDARY_DATA_STATE: usize = 0x103C;
    pub const PRODUCT_TYPE: usize = 0x1040;
    pub const SUITE_MASK: usize = 0x1044;
    pub const WRITER_STATUS: usize = 0x1048;
    pub const KD_SECONDARY_VERSION: usize = 0x104D;
    pub const ATTRIBUTES: usize = 0x1050;
    pub const BOOT_ID: usize = 0x1054;
}

/// AMD64 CONTEXT offsets (winnt.h).
pub mod context {
    pub const LEN: usize = 0x4D0;
    pub const CONTEXT_FLAGS: usize = 0x30;
    pub const MX_CSR: usize = 0x34;
    pub const SEG_CS: usize = 0x38;
    pub const SEG_DS: usize = 0x3A;
    pub const SEG_ES: usize = 0x3C;
    pub const SEG_FS: usize = 0x3E;
    pub const SEG_GS: usize = 0x40;
    pub const SEG_SS: usize = 0x42;
    pub const EFLAGS: usize = 0x44;
    pub const RAX: usize = 0x78;
    pub const RCX: usize = 0x80;
    pub const RSP: usize = 0x98;
    pub const RIP: usize = 0xF8;
    /// FltSave (XMM_SAVE_AREA32) starts at 0x100: ControlWord, then MxCsr at +0x18.
    pub const FLT_CONTROL_WORD: usize = 0x100;
    pub const FLT_MX_CSR: usize = 0x118;
    pub const FLT_MX_CSR_MASK: usize = 0x11C;
    /// CONTEXT_AMD64 | CONTROL | INTEGER | SEGMENTS | FLOATING_POINT | DEBUG_REGISTERS.
    pub const CONTEXT_ALL: u32 = 0x0010_001F;
    /// MXCSR after reset: every exception masked.
    pub const MX_CSR_DEFAULT: u32 = 0x1F80;
}

/// `_SUMMARY_DUMP` offsets, from the start of the second page of the file.
pub mod summary {
    pub const SIGNATURE: usize = 0x00; // "SDMP" or "FDMP"
    pub const VALID_DUMP: usize = 0x04; // "DUMP"
    pub const DUMP_OPTIONS: usize = 0x08;
    pub const HEADER_SIZE: usize = 0x20;
    pub const PAGES: usize = 0x28;
    pub const BITMAP_SIZE: usize = 0x30;
    pub const BITMAP: usize = 0x38;
}

/// `PO_MEMORY_IMAGE` offsets (the fields Volatility 3 names, and the ones before them).
pub mod hibernation {
    pub const SIGNATURE: usize = 0x00; // "HIBR", "WAKE" after a resume, "RSTR"
    pub const IMAGE_TYPE: usize = 0x04;
    pub const CHECKSUM: usize = 0x08;
    pub const LENGTH_SELF: usize = 0x0C;
    pub const PAGE_SELF: usize = 0x10;
    pub const PAGE_SIZE: usize = 0x18;
    pub const SYSTEM_TIME: usize = 0x20;
    pub const INTERRUPT_TIME: usize = 0x28;
    pub const NUM_PAGES_FOR_LOADER: usize = 0x58;
    pub const FIRST_BOOT_RESTORE_PAGE: usize = 0x68;
    pub const FIRST_KERNEL_RESTORE_PAGE: usize = 0x70;
    /// What the simulator writes of it.
    pub const LENGTH: usize = 0xA8;
}

/// Which crash dump Windows writes (CrashControl\CrashDumpEnabled), and in which format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DumpKind {
    /// A complete memory dump in the run-list format (DumpType 1): every page of every run,
    /// in run order, after the header. What Windows 7 writes and every parser reads.
    Full,
    /// A kernel memory dump: a bitmap dump (DumpType 5, "SDMP") of the kernel's pages only.
    Kernel,
    /// An automatic memory dump, Windows' default: the same content and format as a kernel
    /// memory dump (Microsoft: "the difference is not in the dump file itself, but in the
    /// way that Windows sets the size of the system paging file").
    #[default]
    Automatic,
    /// A complete memory dump as Windows 8 and later write it: a bitmap dump (DumpType 5,
    /// "FDMP") of every page.
    Complete,
}

impl DumpKind {
    /// The DUMP_HEADER64 DumpType.
    pub fn dump_type(self) -> u32 {
        match self {
            Self::Full => DUMP_TYPE_FULL,
            Self::Kernel | Self::Automatic | Self::Complete => DUMP_TYPE_BITMAP,
        }
    }

    /// The `_SUMMARY_DUMP` signature of a bitmap dump.
    pub fn summary_signature(self) -> Option<&'static [u8; 4]> {
        match self {
            Self::Full => None,
            Self::Kernel | Self::Automatic => Some(b"SDMP"),
            Self::Complete => Some(b"FDMP"),
        }
    }

    /// Whether only the kernel's pages are in the dump.
    fn kernel_only(self) -> bool {
        matches!(self, Self::Kernel | Self::Automatic)
    }
}

/// DumpType of a full dump (a physical memory run list).
pub const DUMP_TYPE_FULL: u32 = 1;
/// DumpType of a bitmap dump (a `_SUMMARY_DUMP` and its bitmap).
pub const DUMP_TYPE_BITMAP: u32 = 5;

/// One run of physical pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub base_page: u64,
    pub page_count: u64,
}

/// The machine's physical memory map: runs of pages with holes between them, as a PC's
/// firmware reports it. The simulated memory holds the pages of the runs one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhysicalMemory {
    pub runs: Vec<Run>,
}

impl PhysicalMemory {
    /// `pages` pages laid out as a PC's: page 0 reserved, the first run below 640 KiB, a hole
    /// up to 1 MiB (the legacy video and ROM area), then two runs split by a hole of 256
    /// pages (as the PCI hole below 4 GiB splits a larger machine's memory).
    pub fn pc(pages: u64) -> Self {
        let mut runs = Vec::new();
        let low = pages.min(0x9F);
        runs.push(Run {
            base_page: 1,
            page_count: low,
        });
        let rest = pages - low;
        if rest > 0 {
            let middle = rest.div_ceil(2);
            runs.push(Run {
                base_page: 0x100,
                page_count: middle,
            });
            if rest > middle {
                runs.push(Run {
                    base_page: 0x100 + middle + 0x100,
                    page_count: rest - middle,
                });
            }
        }
        Self { runs }
    }

    pub fn pages(&self) -> u64 {
        self.runs.iter().map(|run| run.page_count).sum()
    }

    /// One past the highest page number.
    pub fn end_page(&self) -> u64 {
        self.runs
            .last()
            .map_or(0, |run| run.base_page + run.page_count)
    }

    /// The index in the simulated memory of physical page `pfn`; `None` in a hole.
    pub fn index_of(&self, pfn: u64) -> Option<u64> {
        let mut index = 0;
        for run in &self.runs {
            if (run.base_page..run.base_page + run.page_count).contains(&pfn) {
                return Some(index + pfn - run.base_page);
            }
            index += run.page_count;
        }
        None
    }

    /// The physical page number of the simulated memory's page `index`.
    pub fn pfn_of(&self, index: u64) -> Option<u64> {
        let mut first = 0;
        for run in &self.runs {
            if index < first + run.page_count {
                return Some(run.base_page + index - first);
            }
            first += run.page_count;
        }
        None
    }
}

/// Where the pages after a file's header come from: stretches of the simulated memory, in
/// file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageMap {
    /// (first page in memory, pages), in file order.
    pub stretches: Vec<(u64, u64)>,
}

impl PageMap {
    /// Every page of memory, in order.
    pub fn all(pages: u64) -> Self {
        Self {
            stretches: vec![(0, pages)],
        }
    }

    pub fn pages(&self) -> u64 {
        self.stretches.iter().map(|(_, count)| count).sum()
    }

    /// The memory offset of the `len` bytes at `offset` of the data after the header, when
    /// they lie in one stretch.
    pub fn locate(&self, offset: u64, len: u64) -> Option<u64> {
        let page = PAGE_SIZE as u64;
        let mut first = 0;
        for &(start, count) in &self.stretches {
            let end = first + count * page;
            if offset < end {
                return (offset + len <= end).then_some(start * page + offset - first);
            }
            first = end;
        }
        None
    }

    /// Copies the data at `offset` (after the header) out of `memory`.
    pub fn read(&self, memory: &[u8], offset: u64, out: &mut [u8]) {
        let page = PAGE_SIZE as u64;
        let (mut first, mut done) = (0u64, 0usize);
        for &(start, count) in &self.stretches {
            let end = first + count * page;
            let at = offset + done as u64;
            if at < end {
                let take = ((end - at) as usize).min(out.len() - done);
                let from = (start * page + at - first) as usize;
                out[done..done + take].copy_from_slice(&memory[from..from + take]);
                done += take;
                if done == out.len() {
                    return;
                }
            }
            first = end;
        }
        assert!(done == out.len(), "read past the end of the dump");
    }
}

/// A crash dump file: its headers (DUMP_HEADER64, and for a bitmap dump the summary and
/// bitmap up to the first page) and which pages of memory follow them.
#[derive(Debug, Clone)]
pub struct CrashDump {
    pub kind: DumpKind,
    pub header: Vec<u8>,
    pub pages: PageMap,
}

impl CrashDump {
    /// The file's length: what RequiredDumpSpace says.
    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.pages.pages() * PAGE_SIZE as u64
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The machine-level facts a crash dump header records.
#[derive(Debug, Clone, Copy)]
pub struct System {
    /// MajorVersion 0xF (a free build), MinorVersion the build number.
    pub build: u32,
    pub processors: u32,
    /// 100 ns units since 1601 (FILETIME).
    pub system_time: u64,
    /// 100 ns units since boot.
    pub up_time: u64,
}

impl Default for System {
    fn default() -> Self {
        Self {
            build: 26100,
            processors: 2,
            // 2026-12-01T12:00:00Z.
            system_time: 134_090_352_000_000_000,
            // 3 hours, 25 minutes.
            up_time: 123_000_000_000,
        }
    }
}

/// The bug check in the header: MANUALLY_INITIATED_CRASH1 (0xE2), as NotMyFault's
/// "Crash" button raises it through the keyboard driver.
pub const BUGCHECK_CODE: u32 = 0xE2;
/// Kernel addresses the header points at (in a 64-bit kernel's address range; with an empty
/// top-level page table, none of them translates).
const PS_LOADED_MODULE_LIST_VA: u64 = 0xFFFF_F805_7A81_A470;
const PS_ACTIVE_PROCESS_HEAD_VA: u64 = 0xFFFF_F805_7A81_F0C0;
const PFN_DATA_BASE_VA: u64 = 0xFFFF_C880_0000_0000;
const KD_DEBUGGER_DATA_BLOCK_VA: u64 = 0xFFFF_F805_7A80_0DF0;
const CONTEXT_RIP: u64 = 0xFFFF_F805_7A3F_5A10;
const CONTEXT_RSP: u64 = 0xFFFF_D08F_1C2A_6E88;

/// Builds the crash dump of `memory` (the pages of `physical`, one after another) as `kind`
/// says, and the page that DirectoryTableBase names: the kernel's top-level page table,
/// which it makes empty (zero) so that a parser walking virtual memory finds nothing present
/// rather than following random bytes. `seed` chooses the kernel's pages.
pub fn crash_dump(
    kind: DumpKind,
    physical: &PhysicalMemory,
    memory: &mut [u8],
    system: System,
    seed: u64,
) -> CrashDump {
    let pages_in_memory = physical.pages();
    assert_eq!(memory.len() as u64, pages_in_memory * PAGE_SIZE as u64);
    let pages = if kind.kernel_only() {
        kernel_pages(pages_in_memory, seed)
    } else {
        PageMap::all(pages_in_memory)
    };
    // The top-level page table: the first page of the dump's pages outside the first run
    // (the first 640 KiB are firmware and loader memory), or the very first page.
    let table_index = pages
        .stretches
        .iter()
        .find_map(|&(start, count)| {
            let first_run = physical.runs[0].page_count;
            (start + count > first_run).then(|| start.max(first_run))
        })
        .unwrap_or(pages.stretches[0].0);
    let table = table_index as usize * PAGE_SIZE;
    memory[table..table + PAGE_SIZE].fill(0);
    let directory_table_base = physical.pfn_of(table_index).expect("in memory") * PAGE_SIZE as u64;

    use header::*;
    // Windows fills the header with "PAGE" before it writes the fields.
    let mut bytes: Vec<u8> = b"PAGE".iter().copied().cycle().take(HEADER_LEN).collect();
    bytes[VALID_DUMP..VALID_DUMP + 4].copy_from_slice(b"DU64");
    put(&mut bytes, MAJOR_VERSION, 0xFu32);
    put(&mut bytes, MINOR_VERSION, system.build);
    put(&mut bytes, DIRECTORY_TABLE_BASE, directory_table_base);
    put(&mut bytes, PFN_DATA_BASE, PFN_DATA_BASE_VA);
    put(&mut bytes, PS_LOADED_MODULE_LIST, PS_LOADED_MODULE_LIST_VA);
    put(
        &mut bytes,
        PS_ACTIVE_PROCESS_HEAD,
        PS_ACTIVE_PROCESS_HEAD_VA,
    );
    put(&mut bytes, MACHINE_IMAGE_TYPE, 0x8664u32);
    put(&mut bytes, NUMBER_PROCESSORS, system.processors);
    put(&mut bytes, BUGCHECK_CODE, self::BUGCHECK_CODE);
    put(&mut bytes, BUGCHECK_CODE + 4, 0u32);
    for (index, parameter) in [0u64, 0, 0, 0].into_iter().enumerate() {
        put(&mut bytes, BUGCHECK_PARAMETER1 + 8 * index, parameter);
    }
    bytes[VERSION_USER..VERSION_USER + 32].fill(0);
    put(
        &mut bytes,
        KD_DEBUGGER_DATA_BLOCK,
        KD_DEBUGGER_DATA_BLOCK_VA,
    );
    // PHYSICAL_MEMORY_DESCRIPTOR64: NumberOfRuns (u32, padded), NumberOfPages, the runs.
    let block = PHYSICAL_MEMORY_BLOCK;
    assert!(16 + 16 * physical.runs.len() <= PHYSICAL_MEMORY_BLOCK_LEN);
    put(&mut bytes, block, physical.runs.len() as u32);
    put(&mut bytes, block + 4, 0u32);
    put(&mut bytes, block + 8, pages_in_memory);
    for (index, run) in physical.runs.iter().enumerate() {
        put(&mut bytes, block + 16 + 16 * index, run.base_page);
        put(&mut bytes, block + 24 + 16 * index, run.page_count);
    }
    write_context(&mut bytes[CONTEXT_RECORD..CONTEXT_RECORD + context::LEN]);
    // EXCEPTION_RECORD64: none (a bug check raised by KeBugCheckEx has no exception).
    bytes[EXCEPTION..EXCEPTION + 0x98].fill(0);
    put(&mut bytes, DUMP_TYPE, kind.dump_type());
    put(&mut bytes, DUMP_TYPE + 4, 0u32);
    put(&mut bytes, SYSTEM_TIME, system.system_time);
    bytes[COMMENT..COMMENT + 128].fill(0);
    put(&mut bytes, SYSTEM_UP_TIME, system.up_time);
    put(&mut bytes, MINI_DUMP_FIELDS, 0u32);
    put(&mut bytes, SECONDARY_DATA_STATE, 0u32);
    put(&mut bytes, PRODUCT_TYPE, 1u32); // VER_NT_WORKSTATION
    put(&mut bytes, SUITE_MASK, 0x100u32); // VER_SUITE_SINGLEUSERTS
    put(&mut bytes, WRITER_STATUS, 0u32);
    bytes[KD_SECONDARY_VERSION - 1..KD_SECONDARY_VERSION + 3].fill(0);
    put(&mut bytes, ATTRIBUTES, 0u32);
    put(&mut bytes, BOOT_ID, 0u32);

    if let Some(signature) = kind.summary_signature() {
        bytes.extend(summary_dump(signature, physical, &pages));
    }
    let len = bytes.len() as u64 + pages.pages() * PAGE_SIZE as u64;
    put(&mut bytes, REQUIRED_DUMP_SPACE, len);
    CrashDump {
        kind,
        pages,
        header: bytes,
    }
}

/// The CONTEXT of the processor that bug checked: kernel segments, a kernel RIP and RSP,
/// the reset MXCSR in both places it is kept.
fn write_context(record: &mut [u8]) {
    use context::*;
    record.fill(0);
    put(record, CONTEXT_FLAGS, CONTEXT_ALL);
    put(record, MX_CSR, MX_CSR_DEFAULT);
    put(record, SEG_CS, 0x10u16);
    put(record, SEG_DS, 0x2Bu16);
    put(record, SEG_ES, 0x2Bu16);
    put(record, SEG_FS, 0x53u16);
    put(record, SEG_GS, 0x2Bu16);
    put(record, SEG_SS, 0x18u16);
    put(record, EFLAGS, 0x0000_0082u32);
    put(record, RAX, 0u64);
    put(record, RCX, u64::from(BUGCHECK_CODE));
    put(record, RSP, CONTEXT_RSP);
    put(record, RIP, CONTEXT_RIP);
    put(record, FLT_CONTROL_WORD, 0x027Fu16);
    put(record, FLT_MX_CSR, MX_CSR_DEFAULT);
    put(record, FLT_MX_CSR_MASK, 0xFFFFu32);
}

/// `_SUMMARY_DUMP` and its bitmap (one bit a physical page, set for the pages in the dump),
/// padded with zeros up to HeaderSize, the first page's file offset (page aligned).
fn summary_dump(signature: &[u8; 4], physical: &PhysicalMemory, pages: &PageMap) -> Vec<u8> {
    let bits = physical.end_page();
    let words = bits.div_ceil(32) as usize;
    let end = HEADER_LEN + summary::BITMAP + 4 * words;
    let header_size = end.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let mut bytes = vec![0u8; header_size - HEADER_LEN];
    bytes[..4].copy_from_slice(signature);
    bytes[4..8].copy_from_slice(b"DUMP");
    put(&mut bytes, summary::DUMP_OPTIONS, 0u32);
    put(&mut bytes, summary::HEADER_SIZE, header_size as u64);
    put(&mut bytes, summary::PAGES, pages.pages());
    put(&mut bytes, summary::BITMAP_SIZE, bits);
    let bitmap = &mut bytes[summary::BITMAP..summary::BITMAP + 4 * words];
    let mut previous = None;
    for &(start, count) in &pages.stretches {
        for index in start..start + count {
            let pfn = physical.pfn_of(index).expect("in memory");
            // Pages appear in the file in ascending physical order, as the bitmap orders them.
            assert!(previous < Some(pfn), "pages in physical order");
            previous = Some(pfn);
            bitmap[(pfn / 8) as usize] |= 1 << (pfn % 8);
        }
    }
    bytes
}

/// The kernel's pages: stretches of 1 to 64 pages, about half of memory, chosen by `seed`
/// (never empty).
fn kernel_pages(pages: u64, seed: u64) -> PageMap {
    let mut rng = Rng::new(seed ^ 0x4B45_524E_454C_5047); // "KERNELPG"
    let mut stretches: Vec<(u64, u64)> = Vec::new();
    let mut at = 0;
    while at < pages {
        let count = (1 + rng.below(64)).min(pages - at);
        if rng.below(2) == 0 {
            match stretches.last_mut() {
                Some((start, length)) if *start + *length == at => *length += count,
                _ => stretches.push((at, count)),
            }
        }
        at += count;
    }
    if stretches.is_empty() {
        stretches.push((0, 1));
    }
    PageMap { stretches }
}

/// The first page of hiberfil.sys: PO_MEMORY_IMAGE. Signature "HIBR", ImageType 0,
/// LengthSelf, PageSelf 0, PageSize 4096, SystemTime, InterruptTime, NumPagesForLoader (the
/// pages that follow, all of memory, stored uncompressed: synthetic) and the restore pages.
pub fn hibernation_header(memory_pages: u64, system: System) -> Vec<u8> {
    use hibernation as field;
    let mut header = vec![0u8; PAGE_SIZE];
    header[field::SIGNATURE..field::SIGNATURE + 4].copy_from_slice(b"HIBR");
    put(&mut header, field::IMAGE_TYPE, 0u32);
    put(&mut header, field::LENGTH_SELF, field::LENGTH as u32);
    put(&mut header, field::PAGE_SELF, 0u64);
    put(&mut header, field::PAGE_SIZE, PAGE_SIZE as u32);
    put(&mut header, field::SYSTEM_TIME, system.system_time);
    put(&mut header, field::INTERRUPT_TIME, system.up_time);
    put(&mut header, field::NUM_PAGES_FOR_LOADER, memory_pages);
    put(&mut header, field::FIRST_BOOT_RESTORE_PAGE, 1u64);
    put(&mut header, field::FIRST_KERNEL_RESTORE_PAGE, 1u64);
    // CheckSum: the sum of the header's 32-bit words with the field itself zero (synthetic:
    // Windows' algorithm is not public).
    let sum = header[..field::LENGTH].chunks(4).fold(0u32, |sum, word| {
        sum.wrapping_add(u32::from_le_bytes(word.try_into().expect("4 bytes")))
    });
    put(&mut header, field::CHECKSUM, sum);
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::get;

    #[test]
    fn the_pc_map_has_holes_and_counts_every_page() {
        let map = PhysicalMemory::pc(0x1000);
        assert_eq!(map.pages(), 0x1000);
        assert_eq!(map.runs.len(), 3);
        for pair in map.runs.windows(2) {
            assert!(pair[0].base_page + pair[0].page_count < pair[1].base_page);
        }
        assert_eq!(map.index_of(0), None);
        assert_eq!(map.index_of(1), Some(0));
        assert_eq!(map.index_of(0xA0), None);
        for index in [0, 0x9E, 0x9F, 0x800, 0xFFF] {
            assert_eq!(map.index_of(map.pfn_of(index).unwrap()), Some(index));
        }
        assert_eq!(map.pfn_of(0x1000), None);
        assert_eq!(PhysicalMemory::pc(5).runs.len(), 1);
    }

    #[test]
    fn a_page_map_locates_only_contiguous_data() {
        let map = PageMap {
            stretches: vec![(3, 2), (10, 1)],
        };
        let page = PAGE_SIZE as u64;
        assert_eq!(map.locate(0, 2 * page), Some(3 * page));
        assert_eq!(map.locate(page, 2 * page), None);
        assert_eq!(map.locate(2 * page, page), Some(10 * page));
        let memory: Vec<u8> = (0..11 * PAGE_SIZE).map(|i| (i / PAGE_SIZE) as u8).collect();
        let mut out = vec![0u8; 2 * PAGE_SIZE];
        map.read(&memory, page, &mut out);
        assert!(out[..PAGE_SIZE].iter().all(|&b| b == 4));
        assert!(out[PAGE_SIZE..].iter().all(|&b| b == 10));
    }

    #[test]
    fn headers_carry_their_sizes_and_signatures() {
        let physical = PhysicalMemory::pc(0x400);
        for kind in [
            DumpKind::Full,
            DumpKind::Kernel,
            DumpKind::Automatic,
            DumpKind::Complete,
        ] {
            let mut memory = vec![0xAAu8; 0x400 * PAGE_SIZE];
            let dump = crash_dump(kind, &physical, &mut memory, System::default(), 3);
            assert_eq!(&dump.header[..8], b"PAGEDU64");
            assert_eq!(
                get::<u32>(&dump.header, header::DUMP_TYPE),
                kind.dump_type()
            );
            assert_eq!(
                get::<u64>(&dump.header, header::REQUIRED_DUMP_SPACE),
                dump.len()
            );
            let dtb = get::<u64>(&dump.header, header::DIRECTORY_TABLE_BASE);
            let table = physical.index_of(dtb / PAGE_SIZE as u64).unwrap() as usize;
            assert!(memory[table * PAGE_SIZE..][..PAGE_SIZE]
                .iter()
                .all(|&b| b == 0));
            match kind.summary_signature() {
                None => assert_eq!(dump.header.len(), HEADER_LEN),
                Some(signature) => {
                    let summary = &dump.header[HEADER_LEN..];
                    assert_eq!(&summary[..4], signature);
                    assert_eq!(
                        get::<u64>(summary, summary::HEADER_SIZE),
                        dump.header.len() as u64
                    );
                    assert_eq!(get::<u64>(summary, summary::PAGES), dump.pages.pages());
                    let bits: u32 = summary[summary::BITMAP..]
                        .iter()
                        .map(|byte| byte.count_ones())
                        .sum();
                    assert_eq!(u64::from(bits), dump.pages.pages());
                }
            }
        }
    }
}
