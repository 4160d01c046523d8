//! `KeySource` = sealed at DriverEntry: a fresh XTS key from the processor's random source,
//! sealed to the configured recipient as an age file, stored in the ring of
//! `Parameters\SealedKeys`; the key itself lives on only as its schedule.
//!
//! | Rust            | Windows                                                         |
//! |-----------------|-----------------------------------------------------------------|
//! | [`Drawn`]       | the secrets of one load and their sealed form, in nonpaged pool |
//! | [`store`]       | ZwCreateKey, ZwEnumerateValueKey, ZwSetValueKey, ZwDeleteValueKey, ZwFlushKey, ZwClose |
//!
//! Every failure before the value is flushed loads a refusing instance (no dump, no
//! plaintext): no random source that passes the checks, equal key halves, a refused seal, a
//! registry key that cannot be created, enumerated or written, a flush that fails. A failed
//! delete of an old value is not one: the new key is stored, and the ring is longer until a
//! later load deletes again.

use dumpcrypt_core::random;
use dumpcrypt_core::sealed_keys::{Name, Ring, Stamp};
use dumpcrypt_seal::{Randomness, Recipient, PAYLOAD_LEN, RANDOMNESS_LEN, SEALED_LEN};
use zeroize::Zeroize;

use crate::abi::{NTSTATUS, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER};
use crate::kernel::{self, Enumerated, Passive, PoolBox, VALUE_NAME_CAPACITY};

/// What one load draws (the XTS key, then the sealing randomness) and the sealed key, in a
/// pool block of their own, so that neither crosses DriverEntry's stack by value; the block
/// is wiped when dropped ([`PoolBox`]).
#[derive(Debug)]
pub(crate) struct Drawn {
    /// The XTS key (data key ‖ tweak key), then the randomness of [`dumpcrypt_seal::seal`].
    secrets: [u8; PAYLOAD_LEN + RANDOMNESS_LEN],
    /// The age file sealing the key.
    sealed: [u8; SEALED_LEN],
}

/// Why no sealed key could be made: every reason refuses the dump the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotSealed {
    /// No pool for the block.
    OutOfMemory,
    /// Neither RDSEED nor RDRAND gave words that pass.
    NoRandomSource,
    /// The two halves of the drawn key are equal (only a broken source does that).
    EqualHalves,
    /// `seal` refused (a part of the randomness all zero, a small-order recipient).
    Seal,
}

impl Drawn {
    /// Draws a key and the sealing randomness from the processor and seals the key to
    /// `recipient`. PASSIVE_LEVEL.
    pub(crate) fn new(
        passive: &Passive,
        recipient: &Recipient,
    ) -> Result<PoolBox<Drawn>, NotSealed> {
        let mut drawn = PoolBox::try_new_in(passive, NotSealed::OutOfMemory, |slot| {
            Ok(slot.write(Drawn {
                secrets: [0; PAYLOAD_LEN + RANDOMNESS_LEN],
                sealed: [0; SEALED_LEN],
            }))
        })?;
        let mut source = kernel::random_instructions(passive);
        random::fill(&mut source, &mut drawn.secrets).map_err(|_| NotSealed::NoRandomSource)?;
        let (data_key, tweak_key) = drawn.key().split_at(PAYLOAD_LEN / 2);
        if data_key == tweak_key {
            return Err(NotSealed::EqualHalves);
        }
        seal_drawn(recipient, &mut drawn)?;
        // The sealing randomness has served; only the key is left, until it is expanded.
        drawn.secrets[PAYLOAD_LEN..].zeroize();
        Ok(drawn)
    }

    /// The XTS key.
    pub(crate) fn key(&self) -> &[u8; PAYLOAD_LEN] {
        self.secrets.first_chunk().unwrap_or(&[0; PAYLOAD_LEN])
    }

    /// Wipes the key and the randomness, once the key is expanded.
    pub(crate) fn wipe_secrets(&mut self) {
        self.secrets.zeroize();
    }

    /// The sealed key: an age file of [`SEALED_LEN`] bytes.
    pub(crate) fn sealed(&self) -> &[u8; SEALED_LEN] {
        &self.sealed
    }
}

/// Seals the key of `drawn` with its randomness. In a frame of its own: `seal`'s deep stack
/// (the X25519 ladder, HKDF) is not part of DriverEntry's for the rest of its run, and `seal`
/// wipes what its work leaves below its frame ([`dumpcrypt_seal::STACK_WIPE_LEN`]); the copy
/// of the randomness made here is wiped when it drops.
#[inline(never)]
fn seal_drawn(recipient: &Recipient, drawn: &mut Drawn) -> Result<(), NotSealed> {
    let Drawn { secrets, sealed } = drawn;
    let (key, randomness) = secrets.split_at(PAYLOAD_LEN);
    let (Ok(key), Ok(randomness)) = (
        <&[u8; PAYLOAD_LEN]>::try_from(key),
        <&[u8; RANDOMNESS_LEN]>::try_from(randomness),
    ) else {
        return Err(NotSealed::Seal);
    };
    let randomness = Randomness::from_bytes(randomness);
    dumpcrypt_seal::seal(recipient, &randomness, key, sealed).map_err(|_| NotSealed::Seal)
    // `randomness` zeroizes itself here.
}

/// Stores a sealed key in the ring of `Parameters\SealedKeys` (creating the key if absent),
/// named after the load's UTC time `now` (100 ns ticks since 1601): enumerates the values,
/// writes the new one, deletes the oldest time-stamped ones so that
/// [`dumpcrypt_core::sealed_keys::RING_LEN`] remain, flushes the key and closes it. A value
/// whose name is not a time stamp is never touched. PASSIVE_LEVEL.
#[inline(never)]
pub(crate) fn store(
    passive: &Passive,
    now: u64,
    sealed: &[u8; SEALED_LEN],
) -> Result<(), NTSTATUS> {
    let key = kernel::create_sealed_keys(passive)?;
    let mut ring = Ring::new();
    for_each_value(&key, |stamp| ring.observe(stamp))?;
    let name = ring
        .new_name(Stamp(now))
        .map_err(|_| STATUS_INVALID_PARAMETER)?;
    key.set_binary(&name.utf16(), sealed)?;
    if ring.deleting() > 0 {
        delete_old(&key, &ring);
    }
    key.flush()
    // `key` is closed here.
}

/// Deletes every value the ring plan drops. Deleting shifts the indices of the values after
/// it, so the names are gathered first, a few at a time, and the enumeration starts over after
/// each batch. A delete that fails is skipped: it does not fail the load (the new key is
/// written), and a later load tries again; the passes are bounded, so a value that cannot be
/// deleted cannot hold the load.
fn delete_old(key: &kernel::RegistryKey<'_>, ring: &Ring) {
    const BATCH: usize = 8;
    const PASSES: usize = 8;
    for _ in 0..PASSES {
        let mut batch: [Option<Stamp>; BATCH] = [None; BATCH];
        let mut found = 0;
        let listed = for_each_value(key, |stamp| {
            if ring.deletes(stamp) {
                if let Some(slot) = batch.get_mut(found) {
                    *slot = stamp;
                }
                found += 1;
            }
        });
        if listed.is_err() {
            return;
        }
        let mut deleted = 0;
        for name in batch.iter().flatten().filter_map(|stamp| stamp.name()) {
            if key.delete_value(&name.utf16()).is_ok() {
                deleted += 1;
            }
        }
        if found <= BATCH || deleted == 0 {
            return;
        }
    }
}

/// Calls `each` with every value of `key`: the stamp its name stands for, or `None` for a
/// name that is not one. PASSIVE_LEVEL.
fn for_each_value(
    key: &kernel::RegistryKey<'_>,
    mut each: impl FnMut(Option<Stamp>),
) -> Result<(), NTSTATUS> {
    let mut name = [0u16; VALUE_NAME_CAPACITY];
    // The registry has at most a few million values per key; the bound only ends a loop a
    // misbehaving registry would not end.
    for index in 0..u32::MAX {
        match key.value_name(index, &mut name)? {
            Enumerated::End => return Ok(()),
            Enumerated::Name(len) => each(name.get(..len).and_then(Name::parse_utf16)),
            Enumerated::Other => each(None),
        }
    }
    Err(STATUS_INSUFFICIENT_RESOURCES)
}
