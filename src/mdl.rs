//! MDLs: the caller's data through MappedSystemVa, and retargeting to the secondary buffer.
//!
//! | Rust                 | Windows                                            |
//! |----------------------|----------------------------------------------------|
//! | [`Mdl`]              | `MDL` handed to Dump_Write / Dump_Read              |
//! | [`IoRequest`]        | the `(PLARGE_INTEGER DiskByteOffset, PMDL)` pair    |
//! | [`SecondaryBuffer`]  | the filter's page-aligned buffer and its prebuilt `MDL` |
//!
//! `MmGetSystemAddressForMdlSafe` and `MmGetMdlPfnArray` are macros in wdm.h; their fast
//! paths are written out here (reading MappedSystemVa when the MDL is mapped, the PFN array
//! right after the header). The slow path, mapping the pages, is not allowed at HIGH_LEVEL.

use core::marker::PhantomData;
use core::mem::size_of;
use core::ptr::NonNull;

use crate::abi::{
    MDL, MDL_MAPPED_TO_SYSTEM_VA, MDL_SOURCE_IS_NONPAGED_POOL, NTSTATUS, PAGE_SIZE, PFN_NUMBER,
    STATUS_INSUFFICIENT_RESOURCES,
};
use crate::fault::Fault;
use crate::kernel;

/// Pages spanned by `len` bytes starting `byte_offset` bytes into a page.
pub fn pages_spanned(byte_offset: usize, len: usize) -> usize {
    (byte_offset + len).div_ceil(PAGE_SIZE)
}

/// An MDL the dump stack handed over, borrowed for one callback.
///
/// Kept as the raw pointer the stack passed, not a reference to the header, so that the PFN
/// slots after the header stay reachable through it.
///
/// # Invariants
/// `raw` points to an MDL header followed by as many writable PFN slots as `Size` declares.
/// When MDL_MAPPED_TO_SYSTEM_VA or MDL_SOURCE_IS_NONPAGED_POOL is set, a non-null
/// MappedSystemVa maps `ByteCount` bytes of the described data. Nothing else touches the MDL
/// or its data for `'a`.
#[derive(Debug)]
pub struct Mdl<'a> {
    raw: NonNull<MDL>,
    _borrow: PhantomData<&'a mut MDL>,
}

impl<'a> Mdl<'a> {
    /// Adopts the dump stack's MDL.
    ///
    /// # Safety
    /// `raw` meets the type invariant for `'a` (the dump stack waits for the callback).
    pub unsafe fn from_raw(raw: NonNull<MDL>) -> Self {
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

    fn header_mut(&mut self) -> &mut MDL {
        // SAFETY: by the type invariant the header is valid and exclusively ours for `'a`.
        unsafe { self.raw.as_mut() }
    }

    pub fn byte_count(&self) -> u32 {
        self.header().ByteCount
    }

    pub fn flags(&self) -> u16 {
        self.header().MdlFlags as u16
    }

    /// PFN slots after the header, from `Size`.
    pub fn pfn_capacity(&self) -> usize {
        let size = self.header().Size as u16 as usize;
        size.saturating_sub(size_of::<MDL>()) / size_of::<PFN_NUMBER>()
    }

    fn mapped_address(&self) -> Result<NonNull<u8>, Fault> {
        let header = self.header();
        let mapped = header.MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0;
        match NonNull::new(header.MappedSystemVa.cast::<u8>()) {
            Some(address) if mapped => Ok(address),
            _ => Err(Fault::NotMapped {
                flags: header.MdlFlags as u16,
                mapped_system_va: header.MappedSystemVa as usize,
            }),
        }
    }

    /// The described data, read through MappedSystemVa (never StartVa + ByteOffset: recent
    /// Windows hands over mapped MDLs where the two differ).
    pub fn data(&self) -> Result<&[u8], Fault> {
        let address = self.mapped_address()?;
        // SAFETY: by the type invariant a mapped MDL's MappedSystemVa maps ByteCount bytes
        // that nothing else touches for `'a`.
        Ok(unsafe { core::slice::from_raw_parts(address.as_ptr(), self.byte_count() as usize) })
    }

    /// The described data, writable (Dump_Read decrypts what was read in place).
    pub fn data_mut(&mut self) -> Result<&mut [u8], Fault> {
        let address = self.mapped_address()?;
        // SAFETY: as in `data`; `&mut self` is exclusive.
        Ok(
            unsafe {
                core::slice::from_raw_parts_mut(address.as_ptr(), self.byte_count() as usize)
            },
        )
    }

    /// Points the MDL at `buffer`: its PFNs, StartVa, ByteOffset 0 and MappedSystemVa.
    /// ByteCount, MdlFlags and Size stay as they are (some storage drivers test
    /// MDL_MAPPED_TO_SYSTEM_VA directly).
    pub fn retarget_to(&mut self, buffer: &SecondaryBuffer) -> Result<(), Fault> {
        let needed = pages_spanned(0, self.byte_count() as usize);
        let capacity = self.pfn_capacity();
        if needed > capacity {
            return Err(Fault::PfnArrayTooSmall { needed, capacity });
        }
        let source = buffer.pfns();
        if needed > source.len() {
            return Err(Fault::TransferTooLarge {
                byte_count: self.byte_count(),
                capacity: buffer.len(),
            });
        }
        let first_slot = self.raw.as_ptr().wrapping_add(1).cast::<PFN_NUMBER>();
        // SAFETY: by the type invariant `capacity` writable PFN slots follow the header, and
        // `needed <= capacity`; `raw` carries the provenance of the whole MDL.
        let pfns = unsafe { core::slice::from_raw_parts_mut(first_slot, needed) };
        pfns.copy_from_slice(&source[..needed]);
        let header = self.header_mut();
        header.StartVa = buffer.as_ptr().cast();
        header.ByteOffset = 0;
        header.MappedSystemVa = buffer.as_ptr().cast();
        Ok(())
    }
}

/// The offset and MDL of one Dump_Write or Dump_Read, checked on use.
#[derive(Debug)]
pub struct IoRequest<'a> {
    offset: *const i64,
    mdl: *mut MDL,
    _borrow: PhantomData<&'a mut MDL>,
}

impl<'a> IoRequest<'a> {
    /// # Safety
    /// `offset`, if non-null, is readable; `mdl`, if non-null, meets [`Mdl::from_raw`]'s
    /// contract for `'a`.
    pub unsafe fn new(offset: *const i64, mdl: *mut MDL) -> Self {
        Self {
            offset,
            mdl,
            _borrow: PhantomData,
        }
    }

    /// DiskByteOffset: the byte offset on the dump partition.
    pub fn offset(&self) -> Result<i64, Fault> {
        if self.offset.is_null() {
            return Err(Fault::NullArgument { argument: 2 });
        }
        // SAFETY: non-null, and readable by `new`'s contract.
        Ok(unsafe { self.offset.read_unaligned() })
    }

    pub fn mdl(&mut self) -> Result<Mdl<'_>, Fault> {
        let mdl = NonNull::new(self.mdl).ok_or(Fault::NullArgument { argument: 3 })?;
        // SAFETY: non-null, and valid and exclusive for `'a` by `new`'s contract; the
        // `&mut self` borrow keeps a second `Mdl` from being made meanwhile.
        Ok(unsafe { Mdl::from_raw(mdl) })
    }
}

/// The filter's own page-aligned buffer, and an MDL built for it at DriverEntry.
///
/// # Invariants
/// `memory` points to `len` bytes of page-aligned, nonpaged, non-executable memory owned by
/// this value; `mdl` is owned by this value and describes exactly that memory, PFNs filled.
#[derive(Debug)]
pub struct SecondaryBuffer {
    memory: NonNull<u8>,
    len: usize,
    mdl: NonNull<MDL>,
}

impl SecondaryBuffer {
    /// Allocates `pages` pages and builds their MDL. PASSIVE_LEVEL.
    pub fn allocate(pages: u32) -> Result<Self, NTSTATUS> {
        let len = (pages as usize)
            .checked_mul(PAGE_SIZE)
            .filter(|&len| len > 0 && u32::try_from(len).is_ok())
            .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        let memory = kernel::allocate_contiguous(len).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        // SAFETY: `memory` is `len` bytes of nonpaged memory that lives until `drop`, after
        // the MDL is freed. `len` fits in u32 (checked above).
        let Some(mdl) = (unsafe { kernel::build_mdl(memory, len as u32) }) else {
            // SAFETY: allocated above, not used again.
            unsafe { kernel::free_contiguous(memory) };
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        };
        // INVARIANT: both allocated above for exactly this memory.
        Ok(Self { memory, len, mdl })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.memory.as_ptr()
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: by the type invariant `memory` holds `len` bytes owned by `self`.
        unsafe { core::slice::from_raw_parts_mut(self.memory.as_ptr(), self.len) }
    }

    /// Whether `[address, address + len)` touches the buffer.
    pub fn overlaps(&self, address: usize, len: usize) -> bool {
        let start = self.memory.as_ptr() as usize;
        address < start + self.len && start < address.saturating_add(len)
    }

    fn pfns(&self) -> &[PFN_NUMBER] {
        let pages = self.len / PAGE_SIZE;
        let first_slot = self.mdl.as_ptr().wrapping_add(1).cast::<PFN_NUMBER>();
        // SAFETY: by the type invariant the MDL describes the `len` page-aligned bytes, so
        // `pages` PFN slots follow its header, filled at build time and never written since.
        unsafe { core::slice::from_raw_parts(first_slot, pages) }
    }

    /// Overwrites the buffer with zeros. Any IRQL.
    pub fn wipe(&mut self) {
        zeroize::Zeroize::zeroize(self.as_mut_slice());
    }
}

impl Drop for SecondaryBuffer {
    /// Wipes and frees. Below DISPATCH_LEVEL (DriverEntry, Dump_Unload).
    fn drop(&mut self) {
        self.wipe();
        // SAFETY: by the type invariant both are owned by `self`, which is going away; the
        // MDL goes first, as it describes the memory.
        unsafe { kernel::free_mdl(self.mdl) };
        // SAFETY: as above.
        unsafe { kernel::free_contiguous(self.memory) };
    }
}
