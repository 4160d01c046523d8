//! A Dump_Write or Dump_Read, adopted once and checked once into a typed request.
//!
//! | Rust               | Windows                                              |
//! |--------------------|------------------------------------------------------|
//! | [`RawRequest`]     | the `(PLARGE_INTEGER DiskByteOffset, PMDL)` pair      |
//! | [`CheckedWrite`]   | a Dump_Write every rule of the dump path holds for    |
//! | [`CheckedRead`]    | a Dump_Read every rule of the dump path holds for     |
//!
//! Parse, don't validate: each rule is checked in exactly one place, in `parse`, and what
//! comes out carries the proof. A [`CheckedWrite`] holds the caller's data as `&[u8]` (no
//! safe code can write into a Dump_Write caller's buffer), the secondary buffer's bytes to
//! fill, and PFNs that fit the caller's MDL; committing it cannot fail.
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
use core::ptr::NonNull;

use crate::abi::{MDL, PFN_NUMBER};
use crate::mdl::{Mdl, SecondaryBuffer, Source, Target};
use dumpcrypt_core::fault::Fault;
use dumpcrypt_core::geometry::{Area, Geometry, KeyedArea, Transfer};

/// The offset and MDL of one Dump_Write (`K` = [`Source`]) or Dump_Read (`K` = [`Target`]),
/// not yet checked.
///
/// # Invariants
/// `offset`, if non-null, is readable; `mdl`, if non-null, meets [`Mdl`]'s invariant for
/// `'a`, with the access `K` names.
#[derive(Debug)]
pub struct RawRequest<'a, K> {
    offset: *const i64,
    mdl: *mut MDL,
    _borrow: PhantomData<(&'a mut MDL, K)>,
}

impl<K> RawRequest<'_, K> {
    /// Runs `body` with the request the dump stack passed; the request cannot outlive it.
    ///
    /// # Safety
    /// `offset`, if non-null, is readable, and `mdl`, if non-null, meets [`Mdl`]'s invariant
    /// with the access `K` names, until `body` returns.
    pub(crate) unsafe fn scope<R>(
        offset: *const i64,
        mdl: *mut MDL,
        body: impl for<'b> FnOnce(RawRequest<'b, K>) -> R,
    ) -> R {
        // INVARIANT: the caller's contract, for the length of `body`.
        body(RawRequest {
            offset,
            mdl,
            _borrow: PhantomData,
        })
    }

    /// DiskByteOffset: the byte offset on the dump partition.
    pub(crate) fn offset(&self) -> Result<i64, Fault> {
        if self.offset.is_null() {
            return Err(Fault::NullArgument { argument: 2 });
        }
        // SAFETY: non-null, and readable by the type invariant.
        Ok(unsafe { self.offset.read_unaligned() })
    }
}

impl<'a, K> RawRequest<'a, K> {
    fn into_mdl(self) -> Result<Mdl<'a, K>, Fault> {
        let mdl = NonNull::new(self.mdl).ok_or(Fault::NullArgument { argument: 3 })?;
        // SAFETY: non-null, and valid and exclusive for `'a` by the type invariant; `self`
        // is consumed, so no second `Mdl` can be made.
        Ok(unsafe { Mdl::from_raw(mdl) })
    }
}

/// A Dump_Write that keeps every rule: ready to be encrypted into the secondary buffer.
///
/// # Invariants
/// `source` and `destination` are `transfer.len()` bytes; `pfns` are the PFNs of the pages
/// `destination` spans from the buffer's start, and the caller's MDL has a slot for each.
#[derive(Debug)]
pub struct CheckedWrite<'a> {
    transfer: Transfer,
    mdl: Mdl<'a, Source>,
    source: &'a [u8],
    destination: &'a mut [u8],
    buffer: NonNull<u8>,
    pfns: &'a [PFN_NUMBER],
}

impl<'a> CheckedWrite<'a> {
    /// Checks a Dump_Write against the geometry and the secondary buffer.
    pub(crate) fn parse(
        request: RawRequest<'a, Source>,
        geometry: &Geometry,
        buffer: &'a mut SecondaryBuffer,
    ) -> Result<Self, Fault> {
        let offset = request.offset()?;
        let mdl = request.into_mdl()?;
        let byte_count = mdl.byte_count();
        let transfer = geometry.check_transfer(offset, byte_count, buffer.len())?;
        let source = mdl.data()?;
        if buffer.overlaps(source.as_ptr() as usize, source.len()) {
            return Err(Fault::SourceInSecondaryBuffer {
                source: source.as_ptr() as usize,
            });
        }
        let address = buffer.address();
        // `check_transfer` bounded the length by the buffer's: this always fits.
        let (destination, pfns) = buffer
            .prefix(transfer.len())
            .ok_or(Fault::TransferTooLarge {
                byte_count,
                capacity: transfer.len(),
            })?;
        if pfns.len() > mdl.pfn_capacity() {
            return Err(Fault::PfnArrayTooSmall {
                needed: pfns.len(),
                capacity: mdl.pfn_capacity(),
            });
        }
        // INVARIANT: the MDL maps ByteCount = `transfer.len()` bytes, `prefix` returned that
        // many and the PFNs of their pages, and the MDL has room for them (checked above).
        Ok(Self {
            transfer,
            mdl,
            source,
            destination,
            buffer: address,
            pfns,
        })
    }

    /// Copies the data into the secondary buffer with zeros inside each area, and points the
    /// caller's MDL at the buffer (the crash dump copy after its keys were wiped).
    pub(crate) fn blank(self, areas: impl IntoIterator<Item = Area>) -> Result<(), Fault> {
        self.transfer.blank(areas, self.source, self.destination)?;
        // SAFETY: by the type invariant the MDL has a slot for each of `pfns`.
        unsafe { self.mdl.retarget(self.buffer, self.pfns) };
        Ok(())
    }

    /// Encrypts what lies inside each area with its key into the secondary buffer, copies
    /// the rest, and points the caller's MDL at the buffer.
    pub(crate) fn encrypt<'k>(
        self,
        keys: impl IntoIterator<Item = KeyedArea<'k>>,
    ) -> Result<(), Fault> {
        self.transfer.encrypt(keys, self.source, self.destination)?;
        // SAFETY: by the type invariant the MDL has a slot for each of `pfns`.
        unsafe { self.mdl.retarget(self.buffer, self.pfns) };
        Ok(())
    }
}

/// A Dump_Read that keeps every rule: ready to be decrypted in place.
///
/// # Invariants
/// `data` is `transfer.len()` bytes.
#[derive(Debug)]
pub struct CheckedRead<'a> {
    transfer: Transfer,
    data: &'a mut [u8],
}

impl<'a> CheckedRead<'a> {
    /// Checks a Dump_Read against the geometry and the largest transfer, `capacity` bytes.
    pub(crate) fn parse(
        request: RawRequest<'a, Target>,
        geometry: &Geometry,
        capacity: usize,
    ) -> Result<Self, Fault> {
        let offset = request.offset()?;
        let mdl = request.into_mdl()?;
        let transfer = geometry.check_transfer(offset, mdl.byte_count(), capacity)?;
        // INVARIANT: the MDL maps ByteCount = `transfer.len()` bytes.
        Ok(Self {
            transfer,
            data: mdl.into_data()?,
        })
    }

    /// Decrypts in place what lies inside each area, with its key.
    pub(crate) fn decrypt<'k>(
        self,
        keys: impl IntoIterator<Item = KeyedArea<'k>>,
    ) -> Result<(), Fault> {
        self.transfer.decrypt_in_place(keys, self.data)
    }
}
