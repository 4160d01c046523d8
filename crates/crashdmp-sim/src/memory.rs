//! Simulated physical memory: page-aligned host allocations whose page numbers serve as PFNs.
//!
//! On the host a PFN is the host virtual address of the page shifted right by 12. Every
//! allocation the simulated system makes (its RAM, its buffers, the pool and contiguous
//! memory it gives the filter) is recorded here, so that the dump port can follow a PFN the
//! way DMA would and refuse one that points at no memory the system knows.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::Mutex;

use crate::layout::{PAGE_SHIFT, PAGE_SIZE};

/// Start address → end address of every live region.
static REGIONS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

pub(crate) fn register(start: usize, len: usize) {
    REGIONS.lock().unwrap().insert(start, start + len);
}

pub(crate) fn unregister(start: usize) {
    REGIONS.lock().unwrap().remove(&start);
}

/// Whether `[address, address + len)` lies inside one live region.
pub fn is_mapped(address: usize, len: usize) -> bool {
    let regions = REGIONS.lock().unwrap();
    regions
        .range(..=address)
        .next_back()
        .is_some_and(|(_, &end)| address.checked_add(len).is_some_and(|last| last <= end))
}

/// A page-aligned, zeroed block of simulated physical memory.
///
/// # Invariants
/// `ptr` points to `len` bytes allocated with `layout`, page aligned and registered.
#[derive(Debug)]
pub struct Pages {
    ptr: NonNull<u8>,
    len: usize,
    layout: Layout,
}

// SAFETY: `Pages` owns its memory exclusively, like a `Box<[u8]>`.
unsafe impl Send for Pages {}

impl Pages {
    /// `len` bytes (rounded up to whole pages), zeroed.
    pub fn new(len: usize) -> Self {
        let rounded = len.div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE;
        let layout = Layout::from_size_align(rounded, PAGE_SIZE).expect("page layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        register(ptr.as_ptr() as usize, rounded);
        // INVARIANT: allocated with `layout`, page aligned, registered above.
        Self {
            ptr,
            len: rounded,
            layout,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: by the type invariant `ptr` is valid for `len` bytes; `&self` keeps the
        // simulator from writing through `as_mut_slice` meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: by the type invariant `ptr` is valid for `len` bytes, and `&mut self` is
        // exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The PFN of the page that holds byte `offset`.
    pub fn pfn(&self, offset: usize) -> u64 {
        ((self.ptr.as_ptr() as usize + offset) >> PAGE_SHIFT) as u64
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        unregister(self.ptr.as_ptr() as usize);
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// Copies the page `pfn`, from byte `offset` of it, into `out`, as a DMA engine would.
/// `None` when the page is not memory the simulated system knows.
pub fn read_physical(pfn: u64, offset: usize, out: &mut [u8]) -> Option<()> {
    let address = usize::try_from(pfn).ok()?.checked_shl(PAGE_SHIFT)?;
    let start = address.checked_add(offset)?;
    if offset + out.len() > PAGE_SIZE || !is_mapped(start, out.len()) {
        return None;
    }
    // SAFETY: `is_mapped` found `[start, start + len)` inside a live registered region, which
    // stays allocated while its owner lives; the simulator runs the filter on this thread
    // only, so nothing frees it during the copy.
    unsafe { std::ptr::copy_nonoverlapping(start as *const u8, out.as_mut_ptr(), out.len()) };
    Some(())
}

/// Copies `out.len()` bytes at virtual `address` of simulated memory into `out`, as a storage
/// driver that moves data by CPU would. `None` when the range is not memory the system knows.
pub fn read_virtual(address: usize, out: &mut [u8]) -> Option<()> {
    if out.is_empty() {
        return Some(());
    }
    if !is_mapped(address, out.len()) {
        return None;
    }
    // SAFETY: `is_mapped` found the range inside a live registered region (see
    // `read_physical`).
    unsafe { std::ptr::copy_nonoverlapping(address as *const u8, out.as_mut_ptr(), out.len()) };
    Some(())
}
