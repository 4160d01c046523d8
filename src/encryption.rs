//! What the encrypt policy needs, prepared at DriverEntry from either key source, and used
//! by the dump path: the geometry, the encrypted ranges with their expanded keys, the
//! secondary buffer, and a provider's live-state block.
//!
//! | Rust               | Windows / the provider interface          |
//! |--------------------|-------------------------------------------|
//! | [`Encryption`]     | the context of an encrypting instance     |
//! | `LiveStateBlock`   | the provider's `DUMPCRYPT_LIVE_STATE`     |
//!
//! With `KeySource` = registry there is one range: the configured area under the `Key`. With
//! `KeySource` = sealed, the same range under a key drawn at this load and stored only sealed
//! (src/sealed.rs). With a provider there are the ranges of its answer (docs/provider.md),
//! each under its own key.
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

use core::ffi::c_void;
use core::mem::{offset_of, MaybeUninit};
use core::ptr::NonNull;

use crate::abi::{NTSTATUS, STATUS_BAD_CONFIGURATION, STATUS_INSUFFICIENT_RESOURCES};
use crate::kernel::{self, AlignedBlock, Passive, PoolBox};
use crate::mdl::{SecondaryBuffer, Source, Target};
use crate::request::{CheckedRead, CheckedWrite, RawRequest};
use crate::sealed::{self, Drawn};
use dumpcrypt_core::config::Config;
use dumpcrypt_core::fault::Fault;
use dumpcrypt_core::geometry::{Area, Geometry, KeyedArea, TweakBase};
use dumpcrypt_core::instance::DumpType;
use dumpcrypt_core::provider::{check_answer, same_disk, Accepted, LiveView};
use dumpcrypt_core::xts::{Backend, DataUnit, XtsAes256, STATE_AREA_ALIGN};
use dumpcrypt_provider::{Answer, DiskIdentity, LiveState, Query, MAX_RANGES};

/// One encrypted range: where it is, and its expanded key in a pool block of its own (the
/// key schedules are most of an instance's size).
#[derive(Debug)]
struct KeyedRange {
    area: Area,
    cipher: PoolBox<XtsAes256>,
    /// Where a VAES backend saves the extended state around each call (none for the
    /// others), attached to `cipher`; declared after it, so dropped after it.
    _state: Option<AlignedBlock>,
}

/// What the encrypt policy needs, all prepared at DriverEntry.
#[derive(Debug)]
pub(crate) struct Encryption {
    geometry: Geometry,
    /// Sorted by start, disjoint.
    ranges: [Option<KeyedRange>; MAX_RANGES],
    live: Option<LiveStateBlock>,
    buffer: SecondaryBuffer,
}

/// Why an encrypting instance cannot be prepared. Either way DriverEntry loads the instance
/// refusing (no dump, on every Windows version); the two are kept apart so that the reason
/// can be told in a debugger, and so that a key source may tell a failure from a refusal.
#[derive(Debug)]
pub(crate) enum Unprepared {
    /// A service or an allocation failed with this status.
    Failed(
        #[expect(
            dead_code,
            reason = "read only in a debugger: the outcome is the same refusal"
        )]
        NTSTATUS,
    ),
    /// The instance refuses every dump (the reason is not kept: every refusal has the same
    /// outcome, no dump).
    Refused,
}

impl From<NTSTATUS> for Unprepared {
    fn from(status: NTSTATUS) -> Self {
        Self::Failed(status)
    }
}

impl Encryption {
    /// Prepares the encrypt policy for an instance of `dump_type` on the disk `disk` (from
    /// FILTER_EXTENSION's partition information; `None` for a RAW disk) whose volume device
    /// is `device`. PASSIVE_LEVEL.
    ///
    /// # Safety
    /// `device` is null or FILTER_EXTENSION.DeviceObject, as the system passed it.
    pub(crate) unsafe fn prepare(
        passive: &Passive,
        config: &Config,
        dump_type: DumpType,
        disk: Option<DiskIdentity>,
        device: *mut c_void,
        max_pages_per_write: u32,
    ) -> Result<Self, Unprepared> {
        if let Some(wanted) = &config.disk_id {
            if !disk.is_some_and(|disk| same_disk(&disk, wanted)) {
                return Err(Unprepared::Refused);
            }
        }
        let mut ranges: [Option<KeyedRange>; MAX_RANGES] = Default::default();
        let (geometry, live) = match config.key_source {
            dumpcrypt_core::config::KeySource::Registry => {
                // Config::parse refuses the registry source with encrypt and no valid key.
                let key = config.key.as_ref().ok_or(STATUS_BAD_CONFIGURATION)?;
                let partition_start = match config.tweak_base {
                    TweakBase::Partition => 0,
                    // SAFETY: `device` is as the caller's contract says.
                    TweakBase::Disk => unsafe { kernel::partition_offset(passive, device) }?,
                };
                if let Some(slot) = ranges.first_mut() {
                    *slot = Some(expand(passive, config.area, key, config.backend)?);
                }
                (config.geometry(partition_start), None)
            }
            dumpcrypt_core::config::KeySource::Sealed => {
                // Config::parse refuses the sealed source without a valid Recipient.
                let recipient = config.recipient.as_ref().ok_or(STATUS_BAD_CONFIGURATION)?;
                let partition_start = match config.tweak_base {
                    TweakBase::Partition => 0,
                    // SAFETY: `device` is as the caller's contract says.
                    TweakBase::Disk => unsafe { kernel::partition_offset(passive, device) }?,
                };
                // A fresh key for this load, drawn from the processor and sealed to the
                // recipient (src/sealed.rs): expanded here, as the registry's key is (so that
                // the expansion's deep stack starts from the same frame), then wiped; its
                // sealed form is stored in Parameters\SealedKeys. No random source, a refused
                // seal, a registry failure or no pool for the cipher refuses the dump, as
                // every failure of the other sources does.
                let mut drawn = Drawn::new(passive, recipient).map_err(|_| Unprepared::Refused)?;
                let range = expand(passive, config.area, drawn.key(), config.backend);
                drawn.wipe_secrets();
                if let Some(slot) = ranges.first_mut() {
                    *slot = Some(range?);
                }
                sealed::store(passive, kernel::system_time(passive), drawn.sealed())
                    .map_err(|_| Unprepared::Refused)?;
                // `drawn` is wiped and freed here: the key lives on only as its schedule.
                (config.geometry(partition_start), None)
            }
            dumpcrypt_core::config::KeySource::Provider => {
                // SAFETY: `device` is as the caller's contract says.
                let answer = unsafe { ask_provider(passive, dump_type, disk, device) }?;
                let (accepted, answer) = answer;
                let given = accepted.areas.iter().zip(&answer.ranges);
                for (slot, (area, range)) in ranges.iter_mut().zip(given) {
                    if let Some(area) = area {
                        *slot = Some(expand(passive, *area, &range.key, config.backend)?);
                    }
                }
                // INVARIANT (LiveStateBlock): the provider's side of the interface keeps the
                // block valid for as long as the system runs.
                (accepted.geometry, accepted.live_state.map(LiveStateBlock))
                // `answer` is wiped and freed here: the keys live on only as schedules.
            }
        };
        Ok(Self {
            geometry,
            ranges,
            live,
            buffer: SecondaryBuffer::allocate(passive, max_pages_per_write)?,
        })
    }

    /// Whether a dump may start: not when a provider's live state says its keys no longer
    /// describe the volume. HIGH_LEVEL.
    pub(crate) fn may_start(&self) -> bool {
        self.live
            .as_ref()
            .is_none_or(|live| live.read().allows_dump())
    }

    /// Dump_Write. HIGH_LEVEL.
    pub(crate) fn write(&mut self, request: RawRequest<'_, Source>) -> Result<(), Fault> {
        let keys = keys(&self.ranges, self.live.as_ref());
        CheckedWrite::parse(request, &self.geometry, &mut self.buffer)?.encrypt(keys)
    }

    /// Dump_Write after the crash dump copy's keys were wiped at Dump_Finish (the crash dump
    /// driver may still write its log): the write goes out with zeros inside every range, its
    /// full extent (there is no live state to trust any more). HIGH_LEVEL.
    pub(crate) fn blank(&mut self, request: RawRequest<'_, Source>) -> Result<(), Fault> {
        let areas = self.ranges.iter().flatten().map(|range| range.area);
        CheckedWrite::parse(request, &self.geometry, &mut self.buffer)?.blank(areas)
    }

    /// Dump_Read. HIGH_LEVEL.
    pub(crate) fn read(&mut self, request: RawRequest<'_, Target>) -> Result<(), Fault> {
        let keys = keys(&self.ranges, self.live.as_ref());
        CheckedRead::parse(request, &self.geometry, self.buffer.len())?.decrypt(keys)
    }

    /// Dump_Finish: wipes the secondary buffer. HIGH_LEVEL.
    pub(crate) fn finish(&mut self) {
        self.buffer.wipe();
    }

    /// The data unit the transfers are checked against (configured, or the provider's).
    pub(crate) fn data_unit(&self) -> DataUnit {
        self.geometry.data_unit()
    }

    /// Dump_Finish of the crash dump stack: overwrites every range's key schedules in their
    /// pool blocks, freeing nothing (HIGH_LEVEL). Every transform afterwards fails; the
    /// instance refuses Dump_Start, blanks writes ([`Encryption::blank`]) and hands reads on.
    pub(crate) fn wipe_keys(&mut self) {
        for range in self.ranges.iter_mut().flatten() {
            range.cipher.wipe();
        }
    }
}

/// The ranges with their keys, as they are now: a provider's live state may have moved the
/// end of a range's encrypted part. HIGH_LEVEL.
fn keys<'a>(
    ranges: &'a [Option<KeyedRange>; MAX_RANGES],
    live: Option<&LiveStateBlock>,
) -> impl Iterator<Item = KeyedArea<'a>> {
    let view = live.map(LiveStateBlock::read);
    ranges.iter().enumerate().filter_map(move |(index, range)| {
        let range = range.as_ref()?;
        let area = view.map_or(range.area, |view| view.area(index, range.area));
        Some((area, &*range.cipher))
    })
}

/// Expands a key into its own pool block for the fastest backend the processor runs, up to
/// `backend`, and gives a VAES backend the save area for the extended state, so that the
/// dump path allocates nothing. PASSIVE_LEVEL.
fn expand(
    passive: &Passive,
    area: Area,
    key: &[u8; 64],
    backend: Backend,
) -> Result<KeyedRange, NTSTATUS> {
    let mut cipher = PoolBox::try_new_in(passive, STATUS_INSUFFICIENT_RESOURCES, |slot| {
        expand_key(slot, key, backend)
    })?;
    let state = attach_state_area(passive, &mut cipher)?;
    Ok(KeyedRange {
        area,
        cipher,
        _state: state,
    })
}

/// Expands the key into `slot` (the cipher's pool block). Not inlined, so that the key
/// expansion's frame is not part of DriverEntry's for the rest of its run.
#[inline(never)]
fn expand_key<'a>(
    slot: &'a mut MaybeUninit<XtsAes256>,
    key: &[u8; 64],
    backend: Backend,
) -> Result<&'a mut XtsAes256, NTSTATUS> {
    XtsAes256::with_backend_in(slot, key, backend).map_err(|_| STATUS_BAD_CONFIGURATION)
}

/// Allocates the save area the cipher's backend needs for the extended state (a VAES
/// backend's, sized from CPUID leaf 0xD; none for the others) and attaches it. PASSIVE_LEVEL.
#[inline(never)]
fn attach_state_area(
    passive: &Passive,
    cipher: &mut XtsAes256,
) -> Result<Option<AlignedBlock>, NTSTATUS> {
    let len = cipher.state_len();
    if len == 0 {
        return Ok(None);
    }
    let area = AlignedBlock::try_new(passive, len, STATE_AREA_ALIGN)
        .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    // SAFETY: the block is `len` bytes of nonpaged pool, 64-byte aligned, ours alone; it is
    // kept in the same `KeyedRange` as the cipher and dropped after it.
    unsafe { cipher.attach_state_area(area.start(), area.len()) }
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    Ok(Some(area))
}

/// Asks the provider (docs/provider.md) and checks its answer: what was accepted, and the
/// answer itself, in a pool block of its own that is wiped when it is dropped (the keys are
/// expanded from there; no copy of them is made on the stack). PASSIVE_LEVEL.
///
/// # Safety
/// `device` is null or FILTER_EXTENSION.DeviceObject, as the system passed it.
#[inline(never)]
unsafe fn ask_provider(
    passive: &Passive,
    dump_type: DumpType,
    disk: Option<DiskIdentity>,
    device: *mut c_void,
) -> Result<(Accepted, PoolBox<Answer>), Unprepared> {
    // SAFETY: the caller's contract.
    let partition_start = unsafe { kernel::partition_offset(passive, device) }?;
    // A RAW disk has no identity: the query names none, and no provider's volume matches.
    let query = Query::new(
        dump_type.raw(),
        disk.unwrap_or(DiskIdentity {
            style: u32::MAX,
            ..DiskIdentity::default()
        }),
        partition_start,
    );
    let mut answer =
        PoolBox::try_new(passive, STATUS_INSUFFICIENT_RESOURCES, || Ok(Answer::EMPTY))?;
    let present = kernel::query_provider(passive, &query, &mut answer)?;
    match check_answer(present.then_some(&*answer), &query, dump_type) {
        Ok(accepted) => Ok((accepted, answer)),
        Err(_) => Err(Unprepared::Refused),
    }
}

/// A provider's `DUMPCRYPT_LIVE_STATE`, read with plain loads.
///
/// # Invariants
/// Points to a `LiveState` in nonpaged memory that stays valid, at this address, for as
/// long as the system runs (the provider's side of the interface, docs/provider.md).
#[derive(Debug)]
struct LiveStateBlock(NonNull<LiveState>);

impl LiveStateBlock {
    /// A consistent-or-torn copy: the sequence, the fields, the sequence again, each a
    /// volatile load, so that none is merged or moved across another. Any IRQL.
    fn read(&self) -> LiveView {
        let field = |offset: usize| self.0.as_ptr().cast::<u8>().wrapping_add(offset);
        let sequence = field(offset_of!(LiveState, sequence)).cast::<u32>();
        let flags = field(offset_of!(LiveState, flags)).cast::<u32>();
        let ends = field(offset_of!(LiveState, encrypted_end)).cast::<[u64; MAX_RANGES]>();
        // SAFETY: by the type invariant the block is valid to read; each field is read with
        // an aligned volatile load of its own type, at its offset in the block.
        let before = unsafe { sequence.read_volatile() };
        // SAFETY: as above.
        let flags = unsafe { flags.read_volatile() };
        // SAFETY: as above.
        let ends = unsafe { ends.read_volatile() };
        // SAFETY: as above.
        let after = unsafe { sequence.read_volatile() };
        LiveView::read(before, flags, ends, after)
    }
}
