//! A minimal provider: a volume-encryption driver's side of dumpcrypt's provider interface
//! (docs/provider.md), over the simulated kernel of `crashdmp-sim`.
//!
//! It does what the C provider in docs/provider.md does: when "its volume is mounted" it
//! prepares the answer, creates the callback object `\Callback\DumpCryptProvider`, and
//! registers a function that hands the answer over when the query names its volume's disk
//! and partition. It owns a live-state block for as long as the system runs, and can move
//! the end of a range's encrypted part (as in-place encryption does) with the sequence
//! lock the interface asks for. The tests and `dumpcrypt simulate --key-source provider` use
//! it; [`SampleProvider::two_keys`] is the answer they use by default: two ranges under two
//! keys and a plaintext rest.

use core::ffi::c_void;
use core::sync::atomic::{fence, Ordering};

use crashdmp_sim::ntoskrnl::{self, NtStatus};
use dumpcrypt_provider::{
    Answer, DiskIdentity, LiveState, Query, Range, ALLOW_CRASH_DUMP, ALLOW_HIBERNATION,
    ANSWER_SIZE_V1, CALLBACK_NAME, KEY_LEN, LIVE_ACTIVE, MAGIC, MAJOR_VERSION, MAX_RANGES,
    MINOR_VERSION, STYLE_GPT,
};

/// What the provider answers, and how: the test's knobs.
#[derive(Debug, Clone)]
pub struct Volume {
    /// The answer handed over (its Magic, version and Size as the provider sets them).
    pub answer: Answer,
    /// Whether to give dumpcrypt the live-state block.
    pub live_state: bool,
}

/// A registered provider. Dropping it unregisters the callback (its live-state block stays
/// allocated until the process ends, as a driver that does not unload keeps it).
#[derive(Debug)]
pub struct SampleProvider {
    object: usize,
    registration: usize,
    state: &'static mut State,
}

/// The provider's own memory: "nonpaged", at a fixed address for as long as the system runs.
#[derive(Debug)]
struct State {
    answer: Answer,
    live: LiveState,
    /// Queries answered, and queries seen.
    answered: u32,
    seen: u32,
}

impl Volume {
    /// A volume on the simulated GPT disk at `partition_start`, `partition_length` bytes,
    /// with the given ranges (tweak positions, partition-relative unless changed) and keys.
    pub fn new(partition_start: u64, partition_length: u64, ranges: &[Range]) -> Self {
        let mut answer = Answer::EMPTY;
        answer.magic = MAGIC;
        answer.major_version = MAJOR_VERSION;
        answer.minor_version = MINOR_VERSION;
        answer.size = ANSWER_SIZE_V1;
        answer.flags = ALLOW_CRASH_DUMP | ALLOW_HIBERNATION;
        answer.volume = DiskIdentity {
            style: STYLE_GPT,
            mbr_signature: 0,
            gpt_disk_id: ntoskrnl::SIMULATED_DISK_GUID,
        };
        answer.partition_start = partition_start;
        answer.partition_length = partition_length;
        answer.data_unit = 512;
        answer.tweak_base = 0;
        answer.range_count = ranges.len().min(MAX_RANGES) as u32;
        for (slot, range) in answer.ranges.iter_mut().zip(ranges) {
            *slot = *range;
        }
        Self {
            answer,
            live_state: false,
        }
    }

    /// Two ranges under two keys and a plaintext rest, splitting the first two thirds of a
    /// partition of `partition_length` bytes (each bound on a 4096-byte boundary, so that
    /// both data units work).
    pub fn two_keys(partition_start: u64, partition_length: u64) -> Self {
        let third = partition_length / 3 / 4096 * 4096;
        Self::new(
            partition_start,
            partition_length,
            &[
                Range {
                    start: 0,
                    end: third,
                    key: key(0x11),
                },
                Range {
                    start: third,
                    end: 2 * third,
                    key: key(0x22),
                },
            ],
        )
    }

    /// The ranges handed over.
    pub fn ranges(&self) -> &[Range] {
        self.answer
            .ranges
            .get(..self.answer.range_count as usize)
            .unwrap_or(&[])
    }
}

/// A key whose halves differ, made from `seed`.
pub fn key(seed: u8) -> [u8; KEY_LEN] {
    core::array::from_fn(|i| {
        seed.wrapping_mul(31)
            .wrapping_add((i as u8).wrapping_mul(13))
    })
}

impl SampleProvider {
    /// Creates the callback object and registers the answer. The simulated kernel must be
    /// booted.
    pub fn register(volume: Volume) -> Result<Self, NtStatus> {
        let mut live = LiveState {
            sequence: 0,
            flags: LIVE_ACTIVE,
            encrypted_end: [0; MAX_RANGES],
        };
        for (end, range) in live.encrypted_end.iter_mut().zip(volume.ranges()) {
            *end = range.end;
        }
        // Leaked on purpose: the block must stay valid while any dump-stack copy may read it.
        let state: &'static mut State = Box::leak(Box::new(State {
            answer: volume.answer,
            live,
            answered: 0,
            seen: 0,
        }));
        if volume.live_state {
            state.answer.live_state = core::ptr::from_ref(&state.live);
        }
        let object = ntoskrnl::ex_create_callback(CALLBACK_NAME, true, true)?;
        let context = core::ptr::from_mut::<State>(state).cast::<c_void>();
        let Some(registration) = ntoskrnl::ex_register_callback(object, answer_query, context)
        else {
            ntoskrnl::ob_dereference_object(object);
            return Err(ntoskrnl::STATUS_INSUFFICIENT_RESOURCES);
        };
        Ok(Self {
            object,
            registration,
            state,
        })
    }

    /// Queries answered so far, and queries seen (answered or not).
    pub fn queries(&self) -> (u32, u32) {
        (self.state.answered, self.state.seen)
    }

    /// Moves the current end of range `index`'s encrypted part, as in-place encryption does,
    /// under the sequence lock.
    pub fn set_encrypted_end(&mut self, index: usize, end: u64) {
        self.update_live(|live| {
            if let Some(slot) = live.encrypted_end.get_mut(index) {
                *slot = end;
            }
        });
    }

    /// Sets or clears DUMPCRYPT_LIVE_ACTIVE.
    pub fn set_active(&mut self, active: bool) {
        self.update_live(|live| {
            live.flags = if active { LIVE_ACTIVE } else { 0 };
        });
    }

    /// Leaves the live state half-updated: the sequence odd, as if the machine stopped while
    /// the provider was writing it.
    pub fn tear_live_state(&mut self, index: usize, end: u64) {
        self.state.live.sequence = self.state.live.sequence.wrapping_add(1) | 1;
        fence(Ordering::Release);
        if let Some(slot) = self.state.live.encrypted_end.get_mut(index) {
            *slot = end;
        }
    }

    fn update_live(&mut self, change: impl FnOnce(&mut LiveState)) {
        let live = &mut self.state.live;
        live.sequence |= 1;
        fence(Ordering::Release);
        change(live);
        fence(Ordering::Release);
        live.sequence = live.sequence.wrapping_add(1);
    }
}

impl Drop for SampleProvider {
    fn drop(&mut self) {
        ntoskrnl::ex_unregister_callback(self.registration);
        ntoskrnl::ob_dereference_object(self.object);
        for range in &mut self.state.answer.ranges {
            range.key = [0; KEY_LEN];
        }
    }
}

/// The registered function (`PCALLBACK_FUNCTION`): answers a query for this volume.
///
/// # Safety
/// Called by `ExNotifyCallback` with the context registered above and, as the interface
/// says, a `DUMPCRYPT_QUERY` and a `DUMPCRYPT_ANSWER` of `AnswerSize` bytes (or nulls).
unsafe extern "C-unwind" fn answer_query(
    context: *mut c_void,
    argument1: *mut c_void,
    argument2: *mut c_void,
) {
    // SAFETY: the context is the `State` leaked in `register`, valid for as long as the
    // process runs; the simulated kernel calls one function at a time on this thread.
    let state = unsafe { &mut *context.cast::<State>() };
    state.seen += 1;
    if argument1.is_null() || argument2.is_null() {
        return;
    }
    // SAFETY: a non-null Argument1 is a DUMPCRYPT_QUERY (the interface), read only.
    let query = unsafe { &*argument1.cast::<Query>() };
    if query.magic != MAGIC
        || query.major_version != MAJOR_VERSION
        || (query.answer_size as usize) < size_of::<Answer>()
        || query.disk != state.answer.volume
        || query.partition_start != state.answer.partition_start
    {
        return;
    }
    // SAFETY: a non-null Argument2 is an answer of AnswerSize >= size_of::<Answer>() bytes
    // (checked above), dumpcrypt's, aligned as DUMPCRYPT_ANSWER.
    let answer = unsafe { &mut *argument2.cast::<Answer>() };
    if answer.magic != 0 {
        return;
    }
    *answer = state.answer;
    state.answered += 1;
}
