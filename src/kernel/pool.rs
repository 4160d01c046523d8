//! `PoolBox<T>`: one value in its own nonpaged pool block, built in place, wiped when freed.
//!
//! The kernel stack is 24 KiB and DriverEntry shares it with the loader. The cipher's key
//! schedules are about 2 KB, so building them on the stack and moving them through the
//! layers that assemble an instance cost DriverEntry 14 KB of stack (measured in the
//! emulator). A `PoolBox` takes its pool block first and lets the value be written straight
//! into it.

use core::mem::{align_of, size_of, MaybeUninit};
use core::ptr::NonNull;

use super::{allocate_context, free_context};

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
    /// Allocates a block and initializes it with `init`, which must fully initialize the
    /// slot when it returns `Ok`. PASSIVE_LEVEL.
    pub fn try_new_with<E>(
        out_of_memory: E,
        init: impl FnOnce(&mut MaybeUninit<T>) -> Result<(), E>,
    ) -> Result<Self, E> {
        const {
            assert!(
                align_of::<T>() <= 16,
                "pool blocks are 16-byte aligned on x64"
            )
        };
        let Some(block) = allocate_context(size_of::<T>()) else {
            return Err(out_of_memory);
        };
        let slot = block.cast::<MaybeUninit<T>>();
        // SAFETY: the block is fresh, at least `size_of::<T>()` bytes, aligned (asserted),
        // and ours alone; `MaybeUninit` needs no initialization.
        if let Err(error) = init(unsafe { &mut *slot.as_ptr() }) {
            // SAFETY: allocated above; `init` failed, so there is nothing to drop. The block
            // is wiped in case `init` wrote secrets before failing.
            unsafe { wipe_and_free(block, size_of::<T>()) };
            return Err(error);
        }
        // INVARIANT: `init` returned Ok, so the slot holds an initialized `T`.
        Ok(Self {
            value: block.cast(),
        })
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
    /// bytes copied in with the value), and frees it. Below DISPATCH_LEVEL.
    fn drop(&mut self) {
        // SAFETY: by the type invariant the value is initialized and owned; it is dropped
        // once, here.
        unsafe { core::ptr::drop_in_place(self.value.as_ptr()) };
        // SAFETY: the block came from `allocate_context` with `size_of::<T>()` bytes, its
        // value is dropped above, and nothing uses it afterwards.
        unsafe { wipe_and_free(self.value.cast(), size_of::<T>()) };
    }
}

/// # Safety
/// `block` came from [`allocate_context`] with at least `len` bytes, holds no live value,
/// and is not used afterwards.
unsafe fn wipe_and_free(block: NonNull<u8>, len: usize) {
    // SAFETY: `len` bytes of the block are ours to overwrite (the caller's contract).
    let bytes = unsafe { core::slice::from_raw_parts_mut(block.as_ptr(), len) };
    zeroize::Zeroize::zeroize(bytes);
    // SAFETY: the caller's contract.
    unsafe { free_context(block) };
}
