//! MDLs as the dump stack builds them, in every shape it produces, and the dump port's view.

use crate::layout::{get, mdl, put, PAGE_SHIFT, PAGE_SIZE};
use crate::memory;

/// The shapes of MDL the real stacks hand a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Built by MmBuildMdlForNonPagedPool: MDL_SOURCE_IS_NONPAGED_POOL, MappedSystemVa =
    /// StartVa + ByteOffset.
    NonpagedPool,
    /// MDL_MAPPED_TO_SYSTEM_VA with a StartVa that is not the mapping (recent Windows 11):
    /// StartVa + ByteOffset points at a decoy page a filter must not read.
    MappedElsewhere,
    /// The data starts inside its first page (ByteOffset ≠ 0), mapped.
    OffsetInPage,
    /// Neither flag: the pages are not mapped (a filter cannot read them at HIGH_LEVEL).
    Unmapped,
    /// MDL_SOURCE_IS_NONPAGED_POOL with MappedSystemVa null: nonpaged pool is mapped in
    /// system space, so the data is at StartVa + ByteOffset.
    NonpagedPoolNullVa,
}

impl Shape {
    /// The shapes a well-formed dump uses, in the order the simulator rotates through them.
    pub const WELL_FORMED: [Shape; 4] = [
        Shape::NonpagedPool,
        Shape::MappedElsewhere,
        Shape::OffsetInPage,
        Shape::NonpagedPoolNullVa,
    ];
}

/// A decoy page: what StartVa points at in [`Shape::MappedElsewhere`].
pub const DECOY_BYTE: u8 = 0xDC;

/// An MDL in memory the simulator owns: header and PFN slots, 8-byte aligned.
#[derive(Debug)]
pub struct SimMdl {
    storage: Vec<u64>,
}

/// The header fields a filter may read and the ones it may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub next: u64,
    pub size: i16,
    pub flags: u16,
    pub process: u64,
    pub mapped_system_va: u64,
    pub start_va: u64,
    pub byte_count: u32,
    pub byte_offset: u32,
}

impl SimMdl {
    /// An MDL for `byte_count` bytes at `data` (mapped at that address), shaped as `shape`,
    /// with `extra_slots` PFN slots beyond those the data spans. `decoy` is a page-aligned
    /// address for [`Shape::MappedElsewhere`].
    pub fn describe(
        data: *const u8,
        byte_count: u32,
        shape: Shape,
        extra_slots: usize,
        decoy: *const u8,
    ) -> Self {
        let address = data as usize;
        let byte_offset = address & (PAGE_SIZE - 1);
        let first_page = address >> PAGE_SHIFT;
        let pages = (byte_offset + byte_count as usize).div_ceil(PAGE_SIZE);
        let slots = pages + extra_slots;
        let mut this = Self::with_slots(slots);
        let (flags, start_va) = match shape {
            Shape::NonpagedPool | Shape::NonpagedPoolNullVa => {
                (mdl::SOURCE_IS_NONPAGED_POOL, address & !(PAGE_SIZE - 1))
            }
            Shape::MappedElsewhere => {
                (mdl::MAPPED_TO_SYSTEM_VA | mdl::PAGES_LOCKED, decoy as usize)
            }
            Shape::OffsetInPage => (
                mdl::MAPPED_TO_SYSTEM_VA | mdl::PAGES_LOCKED,
                address & !(PAGE_SIZE - 1),
            ),
            Shape::Unmapped => (mdl::PAGES_LOCKED, address & !(PAGE_SIZE - 1)),
        };
        this.set_header(Header {
            next: 0,
            size: (mdl::HEADER + slots * mdl::PFN_SIZE) as i16,
            flags,
            process: 0,
            mapped_system_va: if matches!(shape, Shape::Unmapped | Shape::NonpagedPoolNullVa) {
                0
            } else {
                address as u64
            },
            start_va: start_va as u64,
            byte_count,
            byte_offset: byte_offset as u32,
        });
        for page in 0..pages {
            this.set_pfn(page, (first_page + page) as u64);
        }
        for slot in pages..slots {
            this.set_pfn(slot, 0x5A5A_5A5A);
        }
        this
    }

    /// An MDL with `slots` PFN slots and a zero header.
    pub fn with_slots(slots: usize) -> Self {
        Self {
            storage: vec![0u64; mdl::HEADER / 8 + slots],
        }
    }

    pub fn as_ptr(&mut self) -> *mut u8 {
        self.storage.as_mut_ptr().cast()
    }

    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.storage)
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.storage)
    }

    pub fn header(&self) -> Header {
        let bytes = self.bytes();
        Header {
            next: get(bytes, mdl::NEXT),
            size: get(bytes, mdl::SIZE),
            flags: get(bytes, mdl::MDL_FLAGS),
            process: get(bytes, mdl::PROCESS),
            mapped_system_va: get(bytes, mdl::MAPPED_SYSTEM_VA),
            start_va: get(bytes, mdl::START_VA),
            byte_count: get(bytes, mdl::BYTE_COUNT),
            byte_offset: get(bytes, mdl::BYTE_OFFSET),
        }
    }

    pub fn set_header(&mut self, header: Header) {
        let bytes = self.bytes_mut();
        put(bytes, mdl::NEXT, header.next);
        put(bytes, mdl::SIZE, header.size);
        put(bytes, mdl::MDL_FLAGS, header.flags);
        put(bytes, mdl::PROCESS, header.process);
        put(bytes, mdl::MAPPED_SYSTEM_VA, header.mapped_system_va);
        put(bytes, mdl::START_VA, header.start_va);
        put(bytes, mdl::BYTE_COUNT, header.byte_count);
        put(bytes, mdl::BYTE_OFFSET, header.byte_offset);
    }

    /// PFN slots actually allocated (the filter may claim more through Size; it must not).
    pub fn slots(&self) -> usize {
        self.storage.len() - mdl::HEADER / 8
    }

    pub fn pfn(&self, index: usize) -> u64 {
        self.storage[mdl::HEADER / 8 + index]
    }

    pub fn set_pfn(&mut self, index: usize, pfn: u64) {
        self.storage[mdl::HEADER / 8 + index] = pfn;
    }

    /// The data as a DMA engine sees it: page by page through the PFN array, from
    /// ByteOffset in the first page. `Err` says why it cannot be followed.
    pub fn gather_by_pfn(&self) -> Result<Vec<u8>, String> {
        let mut out = vec![0u8; self.header().byte_count as usize];
        self.gather_by_pfn_into(&mut out)?;
        Ok(out)
    }

    /// [`SimMdl::gather_by_pfn`] into `out`, which holds exactly ByteCount bytes.
    pub fn gather_by_pfn_into(&self, out: &mut [u8]) -> Result<(), String> {
        let header = self.header();
        assert_eq!(
            out.len(),
            header.byte_count as usize,
            "a buffer of ByteCount bytes"
        );
        let mut offset = header.byte_offset as usize;
        if offset >= PAGE_SIZE {
            return Err(format!("ByteOffset {offset:#x} is not inside a page"));
        }
        let mut done = 0;
        let mut page = 0;
        while done < out.len() {
            if page >= self.slots() {
                return Err(format!(
                    "the data spans more than the {} PFN slots",
                    self.slots()
                ));
            }
            let take = (PAGE_SIZE - offset).min(out.len() - done);
            let pfn = self.pfn(page);
            memory::read_physical(pfn, offset, &mut out[done..done + take]).ok_or_else(|| {
                format!("PFN {pfn:#x} (slot {page}) is not memory the system knows")
            })?;
            done += take;
            offset = 0;
            page += 1;
        }
        Ok(())
    }

    /// The data as a storage driver that copies by CPU sees it: ByteCount bytes at
    /// MappedSystemVa, or, for nonpaged pool without one, at StartVa + ByteOffset (nonpaged
    /// pool is mapped in system space at its own address).
    pub fn gather_by_va(&self) -> Result<Vec<u8>, String> {
        let mut out = vec![0u8; self.header().byte_count as usize];
        self.gather_by_va_into(&mut out)?;
        Ok(out)
    }

    /// [`SimMdl::gather_by_va`] into `out`, which holds exactly ByteCount bytes.
    pub fn gather_by_va_into(&self, out: &mut [u8]) -> Result<(), String> {
        let header = self.header();
        assert_eq!(
            out.len(),
            header.byte_count as usize,
            "a buffer of ByteCount bytes"
        );
        let nonpaged_without_va =
            header.mapped_system_va == 0 && header.flags & mdl::SOURCE_IS_NONPAGED_POOL != 0;
        let address = if nonpaged_without_va {
            (header.start_va + u64::from(header.byte_offset)) as usize
        } else {
            header.mapped_system_va as usize
        };
        let len = out.len();
        if !memory::is_mapped(address, len) {
            return Err(format!(
                "MappedSystemVa {address:#x} + {len:#x} is not mapped memory"
            ));
        }
        memory::read_virtual(address, out).ok_or("MappedSystemVa unreadable")?;
        Ok(())
    }
}
