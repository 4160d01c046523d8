//! `PoolBox<T>`: one value in its own nonpaged pool block, built in place, wiped when freed.
//!
//! The kernel stack is 24 KiB and DriverEntry shares it with the loader. The cipher's key
//! schedules are about 2 KB, so building them on the stack and moving them through the
//! layers that assemble an instance cost DriverEntry 14 KB of stack (measured in the
//! emulator). A `PoolBox` takes its pool block first and moves the value into it once, so the
//! value crosses no further layers by value.

use core::mem::{align_of, size_of, MaybeUninit};
use core::ptr::NonNull;

use super::{allocate_context, free_context, Passive};

/// A `T` in nonpaged pool, owned.
///
/// # Invariants
/// `value` points to an initialized `T` in a block from [`allocate_context`] of at least
/// `size_of::<T>()` bytes, owned by this box.
#[derive(Debug)]
pub struct PoolBox<T> {
    value: NonNull<T>,
}

impl<T> PoolBox<T> {
    /// Allocates a block and moves the value `init` returns into it; `init` runs only once
    /// the block is there, so a failed allocation computes nothing. PASSIVE_LEVEL.
    pub fn try_new<E>(
        passive: &Passive,
        out_of_memory: E,
        init: impl FnOnce() -> Result<T, E>,
    ) -> Result<Self, E> {
        const {
            assert!(
                align_of::<T>() <= 16,
                "pool blocks are 16-byte aligned on x64"
            );
        };
        let Some(block) = allocate_context(passive, size_of::<T>()) else {
            return Err(out_of_memory);
        };
        match init() {
            Ok(value) => {
                let slot = block.cast::<T>();
                // SAFETY: the block is fresh, at least `size_of::<T>()` bytes, aligned
                // (asserted above), and ours alone.
                unsafe { slot.as_ptr().write(value) };
                // INVARIANT: the slot now holds an initialized `T`.
                Ok(Self { value: slot })
            }
            Err(error) => {
                // SAFETY: allocated above, holding no value.
                unsafe { wipe_and_free(block, size_of::<T>()) };
                Err(error)
            }
        }
    }

    /// Allocates a block and has `init` build the value in it (`init` returns the slot it
    /// was given, written): for values too large to pass by value on DriverEntry's stack.
    /// `init` runs only once the block is there. PASSIVE_LEVEL.
    pub fn try_new_in<E>(
        passive: &Passive,
        out_of_memory: E,
        init: impl FnOnce(&mut MaybeUninit<T>) -> Result<&mut T, E>,
    ) -> Result<Self, E> {
        const {
            assert!(
                align_of::<T>() <= 16,
                "pool blocks are 16-byte aligned on x64"
            );
        };
        let Some(block) = allocate_context(passive, size_of::<T>()) else {
            return Err(out_of_memory);
        };
        let slot = block.cast::<MaybeUninit<T>>();
        // SAFETY: the block is fresh, at least `size_of::<T>()` bytes, aligned (asserted
        // above), and ours alone; an uninitialized `MaybeUninit<T>` is valid at any bytes.
        let slot = unsafe { &mut *slot.as_ptr() };
        let slot_address = slot.as_ptr();
        match init(slot) {
            // INVARIANT: `init` wrote the slot: the reference it returned, the only safe way
            // to have one from `&mut MaybeUninit<T>`, points to it.
            Ok(value) if core::ptr::eq(value, slot_address) => Ok(Self {
                value: block.cast(),
            }),
            result => {
                // SAFETY: allocated above; no live value is left in it (a value written but
                // not handed back is leaked, never dropped twice).
                unsafe { wipe_and_free(block, size_of::<T>()) };
                Err(result.err().unwrap_or(out_of_memory))
            }
        }
    }

    /// Gives up ownership: the pointer must come back through [`PoolBox::from_raw`].
    pub fn into_raw(self) -> NonNull<T> {
        let value = self.value;
        core::mem::forget(self);
        value
    }

    /// Takes ownership back.
    ///
    /// # Safety
    /// `value` came from [`PoolBox::into_raw`] and is not used through other pointers.
    pub unsafe fn from_raw(value: NonNull<T>) -> Self {
        // INVARIANT: by the caller's contract, as established by `try_new_with`.
        Self { value }
    }
}

impl<T> core::ops::Deref for PoolBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: by the type invariant the value is initialized and owned by `self`.
        unsafe { self.value.as_ref() }
    }
}

impl<T> core::ops::DerefMut for PoolBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` is exclusive.
        unsafe { self.value.as_mut() }
    }
}

impl<T> Drop for PoolBox<T> {
    /// Drops the value, wipes the whole block (padding included: it may hold stale stack
    /// bytes copied in with the value), and frees it. Below DISPATCH_LEVEL: a `PoolBox` is
    /// owned by DriverEntry while it builds an instance and by the live-instance table after;
    /// only Dump_Unload takes it back out, and the dump path only ever borrows it.
    fn drop(&mut self) {
        // SAFETY: by the type invariant the value is initialized and owned; it is dropped
        // once, here.
        unsafe { core::ptr::drop_in_place(self.value.as_ptr()) };
        // SAFETY: the block came from `allocate_context` with `size_of::<T>()` bytes, its
        // value is dropped above, and nothing uses it afterwards; the IRQL is below
        // DISPATCH_LEVEL (see above: only DriverEntry and Dump_Unload drop a `PoolBox`).
        unsafe { wipe_and_free(self.value.cast(), size_of::<T>()) };
    }
}

/// # Safety
/// `block` came from [`allocate_context`] with at least `len` bytes, holds no live value,
/// and is not used afterwards; the caller runs below DISPATCH_LEVEL.
unsafe fn wipe_and_free(block: NonNull<u8>, len: usize) {
    // SAFETY: `len` bytes of the block are ours to overwrite (the caller's contract).
    let bytes = unsafe { core::slice::from_raw_parts_mut(block.as_ptr(), len) };
    zeroize::Zeroize::zeroize(bytes);
    // SAFETY: the caller's contract.
    unsafe { free_context(block) };
}

/// `len` bytes of nonpaged pool at an address aligned to `align` (a power of two above the
/// pool's 16), for the transform's extended-state save area (64 bytes). Zeroed when made;
/// wiped and freed when dropped, below DISPATCH_LEVEL (it lives in an instance's context,
/// dropped only by DriverEntry's failure path and Dump_Unload).
///
/// # Invariants
/// `block` came from [`allocate_context`] with `size` bytes, owned by this value;
/// `offset + len ≤ size`, and `block + offset` is aligned to the requested alignment.
#[derive(Debug)]
pub struct AlignedBlock {
    block: NonNull<u8>,
    size: usize,
    offset: usize,
    len: usize,
}

impl AlignedBlock {
    /// Allocates the block, or `None` when the pool has no room. PASSIVE_LEVEL.
    pub fn try_new(passive: &Passive, len: usize, align: usize) -> Option<Self> {
        let size = len.checked_add(align)?;
        let block = allocate_context(passive, size)?;
        let offset = block.as_ptr().align_offset(align);
        if offset > align {
            // SAFETY: just allocated with `size` bytes, holding no value.
            unsafe { wipe_and_free(block, size) };
            return None;
        }
        // SAFETY: `size` bytes at `block` are ours; zeroing them all is in bounds.
        unsafe { core::ptr::write_bytes(block.as_ptr(), 0, size) };
        // INVARIANT: `offset ≤ align`, so `offset + len ≤ size`; aligned by `align_offset`.
        Some(Self {
            block,
            size,
            offset,
            len,
        })
    }

    /// The aligned start.
    pub fn start(&self) -> NonNull<u8> {
        // SAFETY: `offset + len ≤ size` bytes of the block are ours (the invariant), so the
        // aligned start is inside it and not null.
        unsafe { self.block.add(self.offset) }
    }

    /// The length from the aligned start.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for AlignedBlock {
    fn drop(&mut self) {
        // SAFETY: the block came from `allocate_context` with `size` bytes, holds no value,
        // and nothing uses it afterwards (its user, the cipher, is dropped before it); below
        // DISPATCH_LEVEL (see the type's documentation).
        unsafe { wipe_and_free(self.block, self.size) };
    }
}
