//! The simulated machine: memory to dump, a disk holding a fragmented crash dump file and
//! hibernation file, and the dump port that writes them through a filter.
//!
//! Every write goes through Dump_Write in one of the MDL shapes the real stacks use, is then
//! moved both by PFN (as DMA would) and by MappedSystemVa (as a CPU copy would), and must
//! give the same bytes both ways. After every write the simulator checks that the filter kept
//! the caller's ByteCount, MdlFlags, Size, offset and source buffer, and that the new StartVa
//! is page aligned. The same data, unfiltered, goes to a reference image.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::disk_template::DiskTemplate;
use crate::dump_format::{self, CrashDump, DumpKind, PageMap, PhysicalMemory, System};
use crate::layout::PAGE_SIZE;
use crate::mdl::{Shape, SimMdl, DECOY_BYTE};
use crate::memory::{self, Pages};
use crate::stack::{Call, LoadedFilter, SimError};

/// What the machine is.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// Bytes of memory to dump (rounded up to pages).
    pub memory: usize,
    /// What the stack tells the filter: the largest write or read, in pages.
    pub max_pages_per_write: u32,
    /// The disk's sector size (512 or 4096): every transfer is a multiple, aligned to it.
    pub sector_size: u32,
    /// Where the dump partition starts on the disk.
    pub partition_offset: u64,
    /// Seeds the memory contents, the file layout and the transfer sizes.
    pub seed: u64,
    /// Lays the crash dump file out in one extent (as a freshly created dedicated dump file
    /// often is), so that tools without file-system knowledge can extract it from the disk.
    pub contiguous_crash_file: bool,
    /// The crash dump's kind and format.
    pub dump_kind: DumpKind,
    /// A raw disk image to start from, and the extents of the crash dump file on it, instead
    /// of the simulator's own disk and layout (no hibernation file is laid out then).
    pub disk_template: Option<DiskTemplate>,
    /// The Windows build the dump headers name (26100: Windows 11 24H2; 7601: Windows 7 SP1).
    pub build: u32,
}

impl Default for MachineConfig {
    fn default() -> Self {
        Self {
            memory: 256 << 20,
            max_pages_per_write: 16,
            sector_size: 512,
            partition_offset: 0x10_0000,
            seed: 1,
            contiguous_crash_file: false,
            dump_kind: DumpKind::Full,
            disk_template: None,
            build: System::default().build,
        }
    }
}

/// One run of a file on the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub file_offset: u64,
    pub partition_offset: u64,
    pub len: u64,
}

/// Where a file lies on the partition.
#[derive(Debug, Clone)]
pub struct FileLayout {
    pub extents: Vec<Extent>,
    pub len: u64,
}

/// Which file a dump goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFile {
    /// The crash dump file (the page file or a dedicated dump file): a 64-bit dump header
    /// then the pages of memory its kind holds ([`dump_format`]).
    Crash,
    /// hiberfil.sys: a hibernation header page then every page of memory.
    Hibernation,
}

/// What a dump did.
#[derive(Debug, Clone, Default)]
pub struct DumpReport {
    /// Whether Dump_Start let the dump proceed.
    pub written: bool,
    pub start_status: i32,
    pub writes: u64,
    pub bytes: u64,
    /// Bytes, in whole sectors, that reached the disk different from the source.
    pub bytes_changed: u64,
    /// Writes whose Dump_Write returned an error status (the real stack writes anyway).
    pub error_statuses: u64,
    pub filter_time: Duration,
    pub elapsed: Duration,
}

/// What a resume read back.
#[derive(Debug, Clone, Default)]
pub struct ResumeReport {
    /// False when the filter has no Dump_Read (before Windows 8): nothing was read through it.
    pub filtered: bool,
    pub reads: u64,
    pub bytes: u64,
    pub filter_time: Duration,
}

/// Where the simulated DumpStack.log lies: the crash dump driver's log of the dump stack,
/// which it writes and reads through the dump stack at boot, before any Dump_Start. It is in
/// the room at the start of the partition, outside both dump files.
pub const DUMP_STACK_LOG_OFFSET: u64 = 0x8_0000;
/// Its length: two pages (whole sectors of either size).
pub const DUMP_STACK_LOG_LEN: usize = 2 * PAGE_SIZE;

/// What the boot-time DumpStack.log traffic did.
#[derive(Debug, Clone, Default)]
pub struct BootLogReport {
    /// Bytes, in whole sectors, that reached the disk different from the log's text.
    pub bytes_changed: u64,
    /// Whether the log was read back through Dump_Read (Windows 8 and later).
    pub read_filtered: bool,
}

/// A small deterministic generator (SplitMix64): layouts, sizes and contents from `--seed`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// A disk image file.
#[derive(Debug)]
struct Disk {
    file: File,
    _temporary: Option<tempfile::TempPath>,
}

impl Disk {
    fn create(
        path: Option<&Path>,
        size: u64,
        template: Option<&DiskTemplate>,
    ) -> std::io::Result<Self> {
        let (mut file, temporary) = match path {
            Some(path) => (
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(path)?,
                None,
            ),
            None => {
                let (file, path) = tempfile::NamedTempFile::new()?.into_parts();
                (file, Some(path))
            }
        };
        file.set_len(size)?;
        if let Some(template) = template {
            template.copy_into(&mut file)?;
        }
        Ok(Self {
            file,
            _temporary: temporary,
        })
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.write_all(data)
    }

    fn read_at(&mut self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(out)
    }
}

/// The simulated machine.
pub struct Machine {
    config: MachineConfig,
    ram: Pages,
    physical: PhysicalMemory,
    crash_dump: CrashDump,
    hibernation_header: Vec<u8>,
    pub crash_file: FileLayout,
    pub hibernation_file: FileLayout,
    disk: Disk,
    /// The unfiltered image, kept only when asked for; otherwise [`Machine::read_reference`]
    /// rebuilds it from the file layout and contents.
    reference: Option<Disk>,
    /// Which files have been written (the reference holds only those).
    written: [bool; 2],
    /// Whether the boot-time DumpStack.log was written (the reference then holds it too).
    boot_log_written: bool,
    disk_size: u64,
    staging: Pages,
    decoy: Pages,
    rng: Rng,
    progress: Option<Box<dyn FnMut(u64)>>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("config", &self.config)
            .field("disk_size", &self.disk_size)
            .finish_non_exhaustive()
    }
}

/// Size of the 64-bit crash dump header (DUMP_HEADER64).
pub const CRASH_HEADER_LEN: usize = dump_format::HEADER_LEN;
/// DUMP_HEADER64 offsets.
pub use dump_format::header as dump_header;

impl Machine {
    /// Builds the machine: fills memory, lays out the two files on the partition, and
    /// creates the disk image (at `image` if given, a temporary file otherwise) and, if
    /// `reference` is given, the unfiltered reference image there.
    pub fn new(
        config: MachineConfig,
        image: Option<&Path>,
        reference: Option<&Path>,
    ) -> std::io::Result<Self> {
        assert!(
            config.sector_size == 512 || config.sector_size == 4096,
            "sector size 512 or 4096"
        );
        let mut rng = Rng::new(config.seed);
        let mut ram = Pages::new(config.memory.max(PAGE_SIZE));
        fill_memory(ram.as_mut_slice(), &mut rng);
        let memory = ram.len() as u64;
        let physical = PhysicalMemory::pc(memory / PAGE_SIZE as u64);
        let system = System {
            build: config.build,
            ..System::default()
        };
        let crash_dump = dump_format::crash_dump(
            config.dump_kind,
            &physical,
            ram.as_mut_slice(),
            system,
            config.seed,
        );

        let crash_len = crash_dump.len();
        let hibernation_len = PAGE_SIZE as u64 + memory;
        let (mut crash_file, mut hibernation_file, partition_len) = lay_out_files(
            &mut rng,
            crash_len,
            hibernation_len,
            config.contiguous_crash_file,
        );
        let hibernation_header = dump_format::hibernation_header(memory / PAGE_SIZE as u64, system);
        let mut disk_size = config.partition_offset + partition_len;
        if let Some(template) = &config.disk_template {
            crash_file =
                template.crash_layout(config.partition_offset, config.sector_size, crash_len)?;
            hibernation_file = FileLayout {
                extents: Vec::new(),
                len: 0,
            };
            disk_size = template.len()?;
        }
        let max_bytes = config.max_pages_per_write as usize * PAGE_SIZE;
        let mut decoy = Pages::new(max_bytes + PAGE_SIZE);
        decoy.as_mut_slice().fill(DECOY_BYTE);
        let template = config.disk_template.as_ref();
        Ok(Self {
            ram,
            physical,
            crash_dump,
            hibernation_header,
            crash_file,
            hibernation_file,
            disk: Disk::create(image, disk_size, template)?,
            reference: reference
                .map(|path| Disk::create(Some(path), disk_size, template))
                .transpose()?,
            written: [false; 2],
            boot_log_written: false,
            disk_size,
            staging: Pages::new(max_bytes + 2 * PAGE_SIZE),
            decoy,
            rng,
            progress: None,
            config,
        })
    }

    pub fn config(&self) -> &MachineConfig {
        &self.config
    }

    pub fn disk_size(&self) -> u64 {
        self.disk_size
    }

    /// Called with the bytes moved so far (writes and reads).
    pub fn set_progress(&mut self, progress: Box<dyn FnMut(u64)>) {
        self.progress = Some(progress);
    }

    pub fn file(&self, which: DumpFile) -> &FileLayout {
        match which {
            DumpFile::Crash => &self.crash_file,
            DumpFile::Hibernation => &self.hibernation_file,
        }
    }

    /// The crash dump file's headers, and which pages of memory follow them.
    pub fn crash_dump(&self) -> &CrashDump {
        &self.crash_dump
    }

    /// The physical memory map: the runs of pages the simulated memory holds.
    pub fn physical_memory(&self) -> &PhysicalMemory {
        &self.physical
    }

    /// The simulated memory's physical page `pfn`; `None` in a hole of the memory map.
    pub fn physical_page(&self, pfn: u64) -> Option<&[u8]> {
        let index = self.physical.index_of(pfn)? as usize;
        Some(&self.ram.as_slice()[index * PAGE_SIZE..(index + 1) * PAGE_SIZE])
    }

    /// A file's header, and where the pages after it come from.
    fn header_and_pages(&self, which: DumpFile) -> (&[u8], std::borrow::Cow<'_, PageMap>) {
        match which {
            DumpFile::Crash => (
                &self.crash_dump.header,
                std::borrow::Cow::Borrowed(&self.crash_dump.pages),
            ),
            DumpFile::Hibernation => (
                &self.hibernation_header,
                std::borrow::Cow::Owned(PageMap::all(self.physical.pages())),
            ),
        }
    }

    /// The file's content as the system means it: header, then the pages of memory.
    pub fn file_content(&self, which: DumpFile, offset: u64, out: &mut [u8]) {
        let (header, pages) = self.header_and_pages(which);
        let mut position = offset as usize;
        let mut done = 0;
        if position < header.len() {
            let take = (header.len() - position).min(out.len());
            out[..take].copy_from_slice(&header[position..position + take]);
            done = take;
            position += take;
        }
        if done == out.len() {
            return;
        }
        pages.read(
            self.ram.as_slice(),
            (position - header.len()) as u64,
            &mut out[done..],
        );
    }

    /// Reads the filtered disk image.
    pub fn read_disk(&mut self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.disk.read_at(offset, out)
    }

    /// Reads the reference image: the disk as it would be with the same dumps written
    /// without the filter.
    pub fn read_reference(&mut self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        if let Some(reference) = self.reference.as_mut() {
            return reference.read_at(offset, out);
        }
        match &self.config.disk_template {
            Some(template) => template.read_at(offset, out)?,
            None => out.fill(0),
        }
        let end = offset + out.len() as u64;
        if self.boot_log_written {
            let start = self.config.partition_offset + DUMP_STACK_LOG_OFFSET;
            let (lo, hi) = (
                start.max(offset),
                (start + DUMP_STACK_LOG_LEN as u64).min(end),
            );
            if lo < hi {
                let text = dump_stack_log();
                out[(lo - offset) as usize..(hi - offset) as usize]
                    .copy_from_slice(&text[(lo - start) as usize..(hi - start) as usize]);
            }
        }
        for which in [DumpFile::Crash, DumpFile::Hibernation] {
            if !self.written[which as usize] {
                continue;
            }
            for extent in self.file(which).extents.clone() {
                let start = self.config.partition_offset + extent.partition_offset;
                let (lo, hi) = (start.max(offset), (start + extent.len).min(end));
                if lo < hi {
                    let slice = &mut out[(lo - offset) as usize..(hi - offset) as usize];
                    self.file_content(which, extent.file_offset + (lo - start), slice);
                }
            }
        }
        Ok(())
    }

    /// Transfers for one file: runs of its extents, each at most MaxPagesPerWrite pages, some
    /// shortened by whole sectors so that their last page is short.
    fn plan(&mut self, which: DumpFile) -> Vec<(u64, u64, usize)> {
        let max_bytes = u64::from(self.config.max_pages_per_write) * PAGE_SIZE as u64;
        let sector = u64::from(self.config.sector_size);
        let extents = self.file(which).extents.clone();
        let mut transfers = Vec::new();
        for extent in extents {
            let mut done = 0;
            while done < extent.len {
                let mut len = max_bytes.min(extent.len - done);
                if len > sector && self.rng.below(4) == 0 {
                    len -= self.rng.below(len / sector) * sector;
                }
                transfers.push((
                    extent.file_offset + done,
                    extent.partition_offset + done,
                    len as usize,
                ));
                done += len;
            }
        }
        transfers
    }

    /// Writes a whole dump through the filter: Dump_Start, the writes, Dump_Finish.
    pub fn dump(
        &mut self,
        filter: &mut LoadedFilter,
        which: DumpFile,
    ) -> Result<DumpReport, SimError> {
        let began = Instant::now();
        let filter_time = filter.filter_time;
        let mut report = DumpReport {
            start_status: filter.start()?,
            ..DumpReport::default()
        };
        if report.start_status != 0 {
            // The stack writes no dump when Dump_Start fails.
            return Ok(report);
        }
        report.written = true;
        self.written[which as usize] = true;
        let header_len = self.header_and_pages(which).0.len() as u64;
        let mut secondary: Option<(u64, usize)> = None;
        // Buffers for every transfer of this dump: a snapshot of the source, and the data as
        // DMA and as a CPU copy would move it.
        let max_bytes = self.config.max_pages_per_write as usize * PAGE_SIZE;
        let (mut snapshot, mut by_pfn, mut by_va) = (
            vec![0u8; max_bytes],
            vec![0u8; max_bytes],
            vec![0u8; max_bytes],
        );
        for (number, (file_offset, partition_offset, len)) in
            self.plan(which).into_iter().enumerate()
        {
            let number = number as u64;
            let shape = Shape::WELL_FORMED[number as usize % Shape::WELL_FORMED.len()];
            let extra_slots = if number % 5 == 4 { 3 } else { 0 };
            // Data from memory is described where it lies; the header, and the in-page shape,
            // come from a staging buffer, as crashdmp copies some pages into its own.
            // (when the transfer's pages lie together in memory).
            let in_memory = (file_offset >= header_len && shape != Shape::OffsetInPage)
                .then(|| {
                    let (_, pages) = self.header_and_pages(which);
                    pages.locate(file_offset - header_len, len as u64)
                })
                .flatten();
            let from_ram = in_memory.is_some();
            let (in_ram, in_page) = if let Some(in_ram) = in_memory {
                (in_ram as usize, 0)
            } else {
                let in_page = if shape == Shape::OffsetInPage {
                    0x200 * (1 + number as usize % 7)
                } else {
                    0
                };
                let staged = &mut snapshot[..len];
                self.file_content(which, file_offset, staged);
                self.staging.as_mut_slice()[in_page..in_page + len].copy_from_slice(staged);
                (0, in_page)
            };
            let source = |machine: &Machine| {
                let (memory, at) = if from_ram {
                    (&machine.ram, in_ram)
                } else {
                    (&machine.staging, in_page)
                };
                memory.as_slice()[at..at + len].as_ptr()
            };
            let data_ptr = source(self);
            // A snapshot of the source, to show it unchanged after the call.
            let snapshot = &mut snapshot[..len];
            memory::read_virtual(data_ptr as usize, snapshot).expect("simulator memory");
            let mut mdl = SimMdl::describe(
                data_ptr,
                len as u32,
                shape,
                extra_slots,
                self.decoy.as_ptr(),
            );
            let before = mdl.header();
            let mut offset = partition_offset as i64;
            let status = filter.write(number, &mut offset, &mut mdl)?;
            let call = Call::Write(number);
            if status != 0 {
                report.error_statuses += 1;
            }
            let after = mdl.header();
            check_write(call, &before, &after, offset, partition_offset)?;
            let unchanged = if from_ram {
                &self.ram.as_slice()[in_ram..in_ram + len]
            } else {
                &self.staging.as_slice()[in_page..in_page + len]
            } == &*snapshot;
            if !unchanged {
                return Err(SimError::rule(
                    call,
                    "wrote into the caller's source buffer",
                ));
            }
            if shape == Shape::MappedElsewhere
                && self.decoy.as_slice().iter().any(|&b| b != DECOY_BYTE)
            {
                return Err(SimError::rule(call, "wrote to the page at StartVa"));
            }
            let by_pfn = &mut by_pfn[..len];
            let by_va = &mut by_va[..len];
            mdl.gather_by_pfn_into(by_pfn)
                .map_err(|rule| SimError::rule(call, rule))?;
            mdl.gather_by_va_into(by_va)
                .map_err(|rule| SimError::rule(call, rule))?;
            if by_pfn != by_va {
                return Err(SimError::rule(
                    call,
                    "the PFN array and MappedSystemVa describe different data",
                ));
            }
            if after.mapped_system_va != before.mapped_system_va {
                let (_, longest) = secondary.unwrap_or((0, 0));
                secondary = Some((after.mapped_system_va, longest.max(len)));
            }
            let disk_offset = self.config.partition_offset + partition_offset;
            self.disk.write_at(disk_offset, by_va)?;
            if let Some(reference) = self.reference.as_mut() {
                reference.write_at(disk_offset, snapshot)?;
            }
            report.writes += 1;
            report.bytes += len as u64;
            report.bytes_changed += by_va
                .chunks(512)
                .zip(snapshot.chunks(512))
                .filter(|(a, b)| a != b)
                .map(|(a, _)| a.len() as u64)
                .sum::<u64>();
            if let Some(progress) = self.progress.as_mut() {
                progress(report.bytes);
            }
        }
        filter.finish()?;
        if let Some((address, len)) = secondary {
            let mut buffer = vec![0u8; len];
            memory::read_virtual(address as usize, &mut buffer)
                .ok_or_else(|| SimError::rule(Call::Finish, "the secondary buffer is gone"))?;
            if buffer.iter().any(|&b| b != 0) {
                return Err(SimError::rule(
                    Call::Finish,
                    "did not wipe the secondary buffer",
                ));
            }
        }
        report.filter_time = filter.filter_time - filter_time;
        report.elapsed = began.elapsed();
        Ok(report)
    }

    /// The boot-time DumpStack.log traffic, as the crash dump driver sends it when it loads
    /// the dump stack at boot: one write of the log through Dump_Write and a read of it back
    /// through Dump_Read (where the OS has it), **without Dump_Start** and without
    /// Dump_Finish. The write is checked as a dump's are (MDL, source, PFNs against
    /// MappedSystemVa) and goes to the disk; the read must hand back the log's text.
    pub fn boot_log(&mut self, filter: &mut LoadedFilter) -> Result<BootLogReport, SimError> {
        let mut report = BootLogReport::default();
        let text = dump_stack_log();
        let len = DUMP_STACK_LOG_LEN;
        self.staging.as_mut_slice()[..len].copy_from_slice(&text);
        let data_ptr = self.staging.as_slice().as_ptr();
        let mut mdl = SimMdl::describe(
            data_ptr,
            len as u32,
            Shape::NonpagedPool,
            0,
            self.decoy.as_ptr(),
        );
        let before = mdl.header();
        let mut offset = DUMP_STACK_LOG_OFFSET as i64;
        let call = Call::Write(0);
        filter.write(0, &mut offset, &mut mdl)?;
        let after = mdl.header();
        check_write(call, &before, &after, offset, DUMP_STACK_LOG_OFFSET)?;
        if self.staging.as_slice()[..len] != text[..] {
            return Err(SimError::rule(
                call,
                "wrote into the caller's source buffer",
            ));
        }
        let (mut by_pfn, mut by_va) = (vec![0u8; len], vec![0u8; len]);
        mdl.gather_by_pfn_into(&mut by_pfn)
            .map_err(|rule| SimError::rule(call, rule))?;
        mdl.gather_by_va_into(&mut by_va)
            .map_err(|rule| SimError::rule(call, rule))?;
        if by_pfn != by_va {
            return Err(SimError::rule(
                call,
                "the PFN array and MappedSystemVa describe different data",
            ));
        }
        let disk_offset = self.config.partition_offset + DUMP_STACK_LOG_OFFSET;
        self.disk.write_at(disk_offset, &by_va)?;
        if let Some(reference) = self.reference.as_mut() {
            reference.write_at(disk_offset, &text)?;
        }
        self.boot_log_written = true;
        report.bytes_changed = by_va
            .chunks(512)
            .zip(text.chunks(512))
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.len() as u64)
            .sum();

        report.read_filtered = filter.supports_read();
        if !report.read_filtered {
            return Ok(report);
        }
        let call = Call::Read(0);
        let mut buffer = Pages::new(len);
        self.disk.read_at(disk_offset, buffer.as_mut_slice())?;
        let mut mdl = SimMdl::describe(
            buffer.as_slice().as_ptr(),
            len as u32,
            Shape::MappedElsewhere,
            0,
            self.decoy.as_ptr(),
        );
        let before = mdl.header();
        let mut offset = DUMP_STACK_LOG_OFFSET as i64;
        filter
            .read(0, &mut offset, &mut mdl)
            .expect("the filter has Dump_Read")?;
        if mdl.header() != before || offset != DUMP_STACK_LOG_OFFSET as i64 {
            return Err(SimError::rule(
                call,
                "changed the MDL or the offset of a read",
            ));
        }
        if buffer.as_slice() != &text[..] {
            return Err(SimError::rule(
                call,
                "the DumpStack.log read back at boot is not what was written",
            ));
        }
        Ok(report)
    }

    /// Resume from hibernation: reads the hibernation file back through Dump_Read and checks
    /// that what the filter hands on is what was hibernated.
    pub fn resume(&mut self, filter: &mut LoadedFilter) -> Result<ResumeReport, SimError> {
        let mut report = ResumeReport {
            filtered: filter.supports_read(),
            ..ResumeReport::default()
        };
        if !report.filtered {
            return Ok(report);
        }
        let filter_time = filter.filter_time;
        let max_bytes = self.config.max_pages_per_write as usize * PAGE_SIZE;
        let mut buffer = Pages::new(max_bytes + 2 * PAGE_SIZE);
        let mut expected = vec![0u8; max_bytes];
        for (number, (file_offset, partition_offset, len)) in
            self.plan(DumpFile::Hibernation).into_iter().enumerate()
        {
            let number = number as u64;
            let call = Call::Read(number);
            let shape = Shape::WELL_FORMED[(number as usize + 1) % Shape::WELL_FORMED.len()];
            let in_page = if shape == Shape::OffsetInPage {
                0x200 * (1 + number as usize % 7)
            } else {
                0
            };
            let disk_offset = self.config.partition_offset + partition_offset;
            self.disk.read_at(
                disk_offset,
                &mut buffer.as_mut_slice()[in_page..in_page + len],
            )?;
            let data_ptr = buffer.as_slice()[in_page..].as_ptr();
            let mut mdl = SimMdl::describe(data_ptr, len as u32, shape, 0, self.decoy.as_ptr());
            let before = mdl.header();
            let mut offset = partition_offset as i64;
            filter
                .read(number, &mut offset, &mut mdl)
                .expect("the filter has Dump_Read")?;
            if mdl.header() != before || offset != partition_offset as i64 {
                return Err(SimError::rule(
                    call,
                    "changed the MDL or the offset of a read",
                ));
            }
            self.file_content(DumpFile::Hibernation, file_offset, &mut expected[..len]);
            let got = &buffer.as_slice()[in_page..in_page + len];
            let differing = got
                .iter()
                .zip(&expected[..len])
                .filter(|(a, b)| a != b)
                .count();
            if differing != 0 {
                return Err(SimError::rule(
                    call,
                    format!(
                        "{differing} of {len} bytes read at partition offset {partition_offset:#x} \
                         differ from what was hibernated"
                    ),
                ));
            }
            report.reads += 1;
            report.bytes += len as u64;
        }
        report.filter_time = filter.filter_time - filter_time;
        Ok(report)
    }
}

/// The dump port's checks of an MDL after Dump_Write: the filter kept ByteCount, MdlFlags,
/// Size, Next, Process and the disk offset, and left a page-aligned StartVa and a ByteOffset
/// inside the first page. Public for harnesses that build their own MDLs (the fuzzer).
pub fn check_write(
    call: Call,
    before: &crate::mdl::Header,
    after: &crate::mdl::Header,
    offset: i64,
    expected_offset: u64,
) -> Result<(), SimError> {
    let broken = if after.byte_count != before.byte_count {
        "changed ByteCount"
    } else if after.flags != before.flags {
        "changed MdlFlags"
    } else if after.size != before.size {
        "changed the MDL's Size"
    } else if after.next != before.next || after.process != before.process {
        "changed the MDL's Next or Process"
    } else if after.start_va % PAGE_SIZE as u64 != 0 {
        "left a StartVa that is not page aligned"
    } else if after.byte_offset as usize >= PAGE_SIZE {
        "left a ByteOffset outside the first page"
    } else if offset != expected_offset as i64 {
        "changed the disk offset"
    } else {
        return Ok(());
    };
    Err(SimError::rule(call, broken))
}

/// Memory as a running system has it: zero pages, text, counters, and noise.
/// The simulated DumpStack.log: lines of text, [`DUMP_STACK_LOG_LEN`] bytes.
pub fn dump_stack_log() -> Vec<u8> {
    let mut text = Vec::with_capacity(DUMP_STACK_LOG_LEN);
    let mut line = 0;
    while text.len() < DUMP_STACK_LOG_LEN {
        text.extend_from_slice(
            format!("DumpStack.log: dump stack initialized, line {line}, crashdmp.sys\r\n")
                .as_bytes(),
        );
        line += 1;
    }
    text.truncate(DUMP_STACK_LOG_LEN);
    text
}

fn fill_memory(memory: &mut [u8], rng: &mut Rng) {
    const TEXT: &[u8] =
        b"The quick brown fox jumps over the lazy dog; C:\\Windows\\System32\\ntoskrnl.exe ";
    for (index, page) in memory.chunks_mut(PAGE_SIZE).enumerate() {
        match rng.below(8) {
            0 | 1 => page.fill(0),
            2 => page
                .iter_mut()
                .zip(TEXT.iter().cycle().skip(index % TEXT.len()))
                .for_each(|(b, t)| *b = *t),
            3 => page.chunks_mut(8).enumerate().for_each(|(i, word)| {
                word.copy_from_slice(&((index as u64) << 20 | i as u64).to_le_bytes());
            }),
            _ => page
                .chunks_mut(8)
                .for_each(|word| word.copy_from_slice(&rng.next_u64().to_le_bytes())),
        }
    }
}

/// Splits each file into 3 to 6 pieces of whole clusters and scatters all the pieces over the
/// partition, in shuffled order, with gaps: two fragmented files. With `contiguous_crash`, the
/// crash dump file is one piece.
fn lay_out_files(
    rng: &mut Rng,
    crash_len: u64,
    hibernation_len: u64,
    contiguous_crash: bool,
) -> (FileLayout, FileLayout, u64) {
    const CLUSTER: u64 = 4096;
    let mut split = |len: u64, file: usize| -> Vec<(usize, u64, u64)> {
        let clusters = len / CLUSTER;
        let pieces = if file == 0 && contiguous_crash {
            1
        } else {
            (3 + rng.below(4)).min(clusters)
        };
        let mut cuts: Vec<u64> = (1..pieces).map(|_| 1 + rng.below(clusters - 1)).collect();
        cuts.push(0);
        cuts.push(clusters);
        cuts.sort_unstable();
        cuts.dedup();
        cuts.windows(2)
            .map(|w| (file, w[0] * CLUSTER, (w[1] - w[0]) * CLUSTER))
            .collect()
    };
    let mut pieces = split(crash_len, 0);
    pieces.extend(split(hibernation_len, 1));
    // Shuffle (Fisher–Yates).
    for i in (1..pieces.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        pieces.swap(i, j);
    }
    let mut files = [Vec::new(), Vec::new()];
    let mut position = 0x10_0000; // room at the start of the partition
    for (file, file_offset, len) in pieces {
        position += rng.below(64) * CLUSTER;
        files[file].push(Extent {
            file_offset,
            partition_offset: position,
            len,
        });
        position += len;
    }
    for extents in &mut files {
        extents.sort_by_key(|extent| extent.file_offset);
    }
    let [crash, hibernation] = files;
    (
        FileLayout {
            extents: crash,
            len: crash_len,
        },
        FileLayout {
            extents: hibernation,
            len: hibernation_len,
        },
        position + 0x10_0000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dump_header_names_the_build() {
        for build in [7601, 26100] {
            let machine = Machine::new(
                MachineConfig {
                    memory: 1 << 20,
                    build,
                    ..MachineConfig::default()
                },
                None,
                None,
            )
            .unwrap();
            let header = &machine.crash_dump().header;
            assert_eq!(
                crate::layout::get::<u32>(header, dump_format::header::MINOR_VERSION),
                build
            );
        }
    }

    #[test]
    fn files_are_fragmented_and_do_not_overlap() {
        for seed in 0..20 {
            let mut rng = Rng::new(seed);
            let (crash, hibernation, partition) =
                lay_out_files(&mut rng, 0x200_0000 + 0x2000, 0x200_1000, false);
            let mut all: Vec<Extent> = crash
                .extents
                .iter()
                .chain(&hibernation.extents)
                .copied()
                .collect();
            assert!(crash.extents.len() >= 3 && hibernation.extents.len() >= 3);
            for file in [&crash, &hibernation] {
                assert_eq!(file.extents.iter().map(|e| e.len).sum::<u64>(), file.len);
                let mut next = 0;
                for extent in &file.extents {
                    assert_eq!(extent.file_offset, next);
                    next += extent.len;
                }
            }
            all.sort_by_key(|e| e.partition_offset);
            for pair in all.windows(2) {
                assert!(pair[0].partition_offset + pair[0].len <= pair[1].partition_offset);
            }
            assert!(all.last().map(|e| e.partition_offset + e.len).unwrap() <= partition);
        }
    }

    #[test]
    fn a_contiguous_crash_file_is_one_extent() {
        let mut rng = Rng::new(7);
        let (crash, hibernation, _) = lay_out_files(&mut rng, 0x20_2000, 0x20_1000, true);
        assert_eq!(crash.extents.len(), 1);
        assert_eq!(crash.extents[0].len, 0x20_2000);
        assert!(hibernation.extents.len() >= 3);
    }
}
