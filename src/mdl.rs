//! MDLs: the caller's data through its system mapping, and the filter's own buffer.
//!
//! | Rust                 | Windows                                                  |
//! |----------------------|----------------------------------------------------------|
//! | [`Mdl`]              | `MDL` handed to Dump_Write ([`Source`]) or Dump_Read ([`Target`]) |
//! | [`SecondaryBuffer`]  | the filter's page-aligned buffer and its prebuilt `MDL`  |
//!
//! `MmGetSystemAddressForMdlSafe` and `MmGetMdlPfnArray` are macros in wdm.h; their fast
//! paths are written out here (MappedSystemVa when the MDL is mapped, the PFN array right
//! after the header). The slow path, mapping the pages, is not allowed at HIGH_LEVEL.
// The dump path: no indexing that could panic, no panics, no unwraps (tests aside).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used
    )
)]

use core::marker::PhantomData;
use core::mem::size_of;
use core::ptr::NonNull;

use crate::abi::{
    MDL, MDL_MAPPED_TO_SYSTEM_VA, MDL_SOURCE_IS_NONPAGED_POOL, NTSTATUS, PAGE_SIZE, PFN_NUMBER,
    STATUS_INSUFFICIENT_RESOURCES,
};
use crate::kernel::{self, Passive};
use dumpcrypt_core::fault::Fault;

/// The MDL of a Dump_Write: its data may be read, never written.
#[derive(Debug)]
pub enum Source {}

/// The MDL of a Dump_Read: its data is decrypted in place.
#[derive(Debug)]
pub enum Target {}

/// An MDL the dump stack handed over, borrowed for one callback; `K` says whether its data
/// may be written ([`Target`]) or only read ([`Source`]).
///
/// Kept as the raw pointer the stack passed, not a reference to the header, so that the PFN
/// slots after the header stay reachable through it.
///
/// # Invariants
/// `raw` points to an MDL header followed by as many writable PFN slots as `Size` declares.
/// When MDL_MAPPED_TO_SYSTEM_VA or MDL_SOURCE_IS_NONPAGED_POOL is set, the data is mapped in
/// system space: at a non-null MappedSystemVa, or, for nonpaged pool, at StartVa +
/// ByteOffset; `ByteCount` bytes there are readable (and writable, for [`Target`]). Nothing
/// else touches the MDL or its data for `'a`.
#[derive(Debug)]
pub struct Mdl<'a, K> {
    raw: NonNull<MDL>,
    _borrow: PhantomData<(&'a mut MDL, K)>,
}

impl<'a, K> Mdl<'a, K> {
    /// Adopts the dump stack's MDL.
    ///
    /// # Safety
    /// `raw` meets the type invariant for `'a` (the dump stack waits for the callback).
    pub(crate) unsafe fn from_raw(raw: NonNull<MDL>) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            raw,
            _borrow: PhantomData,
        }
    }

    fn header(&self) -> &MDL {
        // SAFETY: by the type invariant the header is valid and not written by others.
        unsafe { self.raw.as_ref() }
    }

    /// ByteCount.
    pub(crate) fn byte_count(&self) -> u32 {
        self.header().ByteCount
    }

    /// PFN slots after the header, from `Size`.
    pub(crate) fn pfn_capacity(&self) -> usize {
        let size = self.header().Size as u16 as usize;
        size.saturating_sub(size_of::<MDL>()) / size_of::<PFN_NUMBER>()
    }

    /// Where the data is mapped in system space: MappedSystemVa when the MDL says it is
    /// mapped (never StartVa + ByteOffset then: recent Windows hands over mapped MDLs where
    /// the two differ), or StartVa + ByteOffset for nonpaged pool without a MappedSystemVa
    /// (nonpaged pool lives in system space at its own address).
    fn mapped_address(&self) -> Result<NonNull<u8>, Fault> {
        let header = self.header();
        let mapped = header.MdlFlags & MDL_MAPPED_TO_SYSTEM_VA != 0;
        let nonpaged = header.MdlFlags & MDL_SOURCE_IS_NONPAGED_POOL != 0;
        let not_mapped = Fault::NotMapped {
            flags: header.MdlFlags as u16,
            mapped_system_va: header.MappedSystemVa as usize,
        };
        match NonNull::new(header.MappedSystemVa.cast::<u8>()) {
            Some(address) if mapped || nonpaged => Ok(address),
            None if nonpaged => {
                let address = header
                    .StartVa
                    .cast::<u8>()
                    .wrapping_add(header.ByteOffset as usize);
                NonNull::new(address).ok_or(not_mapped)
            }
            _ => Err(not_mapped),
        }
    }
}

impl<'a> Mdl<'a, Source> {
    /// The data, read-only, for `'a`.
    pub(crate) fn data(&self) -> Result<&'a [u8], Fault> {
        let address = self.mapped_address()?;
        // SAFETY: by the type invariant the mapping holds ByteCount readable bytes that
        // nothing else touches for `'a`; only shared references to them are ever made.
        Ok(unsafe { core::slice::from_raw_parts(address.as_ptr(), self.byte_count() as usize) })
    }

    /// Points the MDL at the pages `pfns` of the filter's buffer at `buffer`: its PFNs,
    /// StartVa, ByteOffset 0 and MappedSystemVa. ByteCount, MdlFlags and Size stay as they
    /// are (some storage drivers test MDL_MAPPED_TO_SYSTEM_VA directly).
    ///
    /// # Safety
    /// `pfns.len() <= self.pfn_capacity()`.
    pub(crate) unsafe fn retarget(self, buffer: NonNull<u8>, pfns: &[PFN_NUMBER]) {
        let first_slot = self.raw.as_ptr().wrapping_add(1).cast::<PFN_NUMBER>();
        // SAFETY: by the type invariant `pfn_capacity()` writable PFN slots follow the
        // header, and by the caller's contract `pfns.len()` of them exist; `raw` carries the
        // provenance of the whole MDL, which is ours alone for `'a`.
        let slots = unsafe { core::slice::from_raw_parts_mut(first_slot, pfns.len()) };
        slots.copy_from_slice(pfns);
        let mut raw = self.raw;
        // SAFETY: by the type invariant the header is valid and exclusively ours for `'a`;
        // `slots` lies after it and is not used again.
        let header = unsafe { raw.as_mut() };
        header.StartVa = buffer.as_ptr().cast();
        header.ByteOffset = 0;
        header.MappedSystemVa = buffer.as_ptr().cast();
    }
}

impl<'a> Mdl<'a, Target> {
    /// The data, writable, for `'a`.
    pub(crate) fn into_data(self) -> Result<&'a mut [u8], Fault> {
        let address = self.mapped_address()?;
        // SAFETY: by the type invariant the mapping holds ByteCount writable bytes that
        // nothing else touches for `'a`; `self` is consumed, so this is the one reference.
        Ok(
            unsafe {
                core::slice::from_raw_parts_mut(address.as_ptr(), self.byte_count() as usize)
            },
        )
    }
}

/// The filter's own page-aligned buffer, and an MDL built for it at DriverEntry.
///
/// # Invariants
/// `memory` points to `len` bytes (a whole number of pages) of page-aligned, nonpaged,
/// non-executable memory owned by this value; `mdl` is owned by this value and describes
/// exactly that memory, PFNs filled.
#[derive(Debug)]
pub struct SecondaryBuffer {
    memory: NonNull<u8>,
    len: usize,
    mdl: NonNull<MDL>,
}

impl SecondaryBuffer {
    /// Allocates `pages` pages and builds their MDL. PASSIVE_LEVEL.
    pub(crate) fn allocate(passive: &Passive, pages: u32) -> Result<Self, NTSTATUS> {
        let len = (pages as usize)
            .checked_mul(PAGE_SIZE)
            .filter(|&len| len > 0 && u32::try_from(len).is_ok())
            .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        let memory =
            kernel::allocate_contiguous(passive, len).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        // SAFETY: `memory` is `len` bytes of nonpaged memory that lives until `drop`, after
        // the MDL is freed. `len` fits in u32 (checked above).
        let Some(mdl) = (unsafe { kernel::build_mdl(passive, memory, len as u32) }) else {
            // SAFETY: allocated above, not used again; DriverEntry runs at PASSIVE_LEVEL.
            unsafe { kernel::free_contiguous(memory) };
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        };
        // INVARIANT: both allocated above for exactly this memory.
        Ok(Self { memory, len, mdl })
    }

    /// Its size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Its first byte.
    pub(crate) fn address(&self) -> NonNull<u8> {
        self.memory
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: by the type invariant `memory` holds `len` bytes owned by `self`.
        unsafe { core::slice::from_raw_parts_mut(self.memory.as_ptr(), self.len) }
    }

    /// Its first `len` bytes, writable, and the PFNs of the pages they span; `None` when
    /// `len` exceeds the buffer.
    pub(crate) fn prefix(&mut self, len: usize) -> Option<(&mut [u8], &[PFN_NUMBER])> {
        if len > self.len {
            return None;
        }
        let pages = len.div_ceil(PAGE_SIZE);
        let first_slot = self.mdl.as_ptr().wrapping_add(1).cast::<PFN_NUMBER>();
        // SAFETY: by the type invariant the MDL describes the `self.len` page-aligned bytes,
        // so `self.len / PAGE_SIZE` >= `pages` PFN slots follow its header, filled at build
        // time and never written since; they are not part of `bytes`.
        let pfns = unsafe { core::slice::from_raw_parts(first_slot, pages) };
        let bytes = self.bytes().get_mut(..len)?;
        Some((bytes, pfns))
    }

    /// Whether `[address, address + len)` touches the buffer.
    pub(crate) fn overlaps(&self, address: usize, len: usize) -> bool {
        let start = self.memory.as_ptr() as usize;
        address < start + self.len && start < address.saturating_add(len)
    }

    /// Overwrites the buffer with zeros. Any IRQL.
    pub(crate) fn wipe(&mut self) {
        zeroize::Zeroize::zeroize(self.bytes());
    }
}

impl Drop for SecondaryBuffer {
    /// Wipes and frees. At PASSIVE_LEVEL: a buffer is owned by its instance, which only
    /// DriverEntry (on failure) and Dump_Unload drop; the dump path only borrows it.
    fn drop(&mut self) {
        self.wipe();
        // SAFETY: by the type invariant both are owned by `self`, which is going away; the
        // MDL goes first, as it describes the memory. The IRQL is as said above.
        unsafe { kernel::free_mdl(self.mdl) };
        // SAFETY: as above.
        unsafe { kernel::free_contiguous(self.memory) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crashdmp_sim::ntoskrnl::{self, Environment};

    fn buffer(pages: u32) -> SecondaryBuffer {
        ntoskrnl::boot(Environment::default());
        // SAFETY: a test at PASSIVE_LEVEL: the simulated kernel holds no raised IRQL.
        unsafe { Passive::scope(|passive| SecondaryBuffer::allocate(passive, pages)) }.unwrap()
    }

    #[test]
    fn overlap_is_any_shared_byte() {
        let buffer = buffer(2);
        let start = buffer.address().as_ptr() as usize;
        let end = start + buffer.len();
        assert_eq!(buffer.len(), 2 * PAGE_SIZE);
        assert!(!buffer.overlaps(start - 16, 16), "just before");
        assert!(buffer.overlaps(start - 16, 17), "its first byte");
        assert!(buffer.overlaps(end - 1, 1), "its last byte");
        assert!(!buffer.overlaps(end, 16), "just after");
        assert!(buffer.overlaps(start - 16, 3 * PAGE_SIZE), "around it");
        assert!(
            !buffer.overlaps(usize::MAX - 1, 16),
            "at the top, saturating"
        );
    }

    #[test]
    fn no_pages_and_too_many_pages_are_refused() {
        ntoskrnl::boot(Environment::default());
        for pages in [0, 0x10_0000] {
            // SAFETY: a test at PASSIVE_LEVEL: the simulated kernel holds no raised IRQL.
            let buffer =
                unsafe { Passive::scope(|passive| SecondaryBuffer::allocate(passive, pages)) };
            assert_eq!(
                buffer.err(),
                Some(STATUS_INSUFFICIENT_RESOURCES),
                "{pages} pages"
            );
        }
        assert_eq!(
            ntoskrnl::counters().allocations,
            0,
            "refused before allocating"
        );
    }

    #[test]
    fn a_prefix_spans_its_pages() {
        let mut buffer = buffer(3);
        let (bytes, pfns) = buffer.prefix(PAGE_SIZE + 1).unwrap();
        assert_eq!((bytes.len(), pfns.len()), (PAGE_SIZE + 1, 2));
        let first = pfns[0];
        assert_eq!(pfns[1], first + 1, "contiguous memory");
        let (bytes, pfns) = buffer.prefix(3 * PAGE_SIZE).unwrap();
        assert_eq!((bytes.len(), pfns.len()), (3 * PAGE_SIZE, 3));
        assert_eq!(
            buffer.prefix(0).map(|(b, p)| (b.len(), p.len())),
            Some((0, 0))
        );
        assert!(buffer.prefix(3 * PAGE_SIZE + 1).is_none());
        assert_eq!(
            buffer.address().as_ptr() as usize >> 12,
            first as usize,
            "host PFNs are addresses >> 12"
        );
    }
}
