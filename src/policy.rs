//! One loaded instance and what its policy does in each callback, in safe Rust.
//!
//! The trampolines in `filter.rs` find the instance and hand over the request; everything that
//! decides what reaches the disk is here. The dump path (start, write, read, finish) calls
//! nothing of the kernel boundary: no allocation, no mapping, no locks, only copies, AES on
//! XMM registers, and arithmetic. A broken rule comes back as a [`Fault`].
#![forbid(unsafe_code)]

use crate::abi::{NTSTATUS, STATUS_ACCESS_DENIED, STATUS_SUCCESS};
use crate::config::{Area, Policy};
use crate::fault::Fault;
use crate::kernel::PoolBox;
use crate::mdl::{IoRequest, SecondaryBuffer};
use crate::xts::{DataUnit, XtsAes256};

/// The stack an instance was loaded into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpType {
    CrashDump,
    Hibernation,
}

impl DumpType {
    pub fn from_raw(value: u32) -> Option<Self> {
        match value {
            crate::abi::DumpTypeCrashdump => Some(Self::CrashDump),
            crate::abi::DumpTypeHibernation => Some(Self::Hibernation),
            _ => None,
        }
    }

    pub fn raw(self) -> u32 {
        match self {
            Self::CrashDump => crate::abi::DumpTypeCrashdump,
            Self::Hibernation => crate::abi::DumpTypeHibernation,
        }
    }
}

/// Where an instance is in the protocol: Loaded → Started → Finished (→ Started again for a
/// new dump). Unloading ends the instance itself, so there is no Unloaded state to check:
/// a callback with an unloaded context fails the context lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Loaded = 0,
    Started = 1,
    Finished = 2,
}

/// What the encrypt policy needs, all prepared at DriverEntry.
#[derive(Debug)]
pub struct Encryption {
    /// In its own pool block: the key schedules are most of the instance's size, and are
    /// built in place there to keep DriverEntry's stack small.
    pub cipher: PoolBox<XtsAes256>,
    pub data_unit: DataUnit,
    pub area: Area,
    /// Added to every disk offset before data unit numbers and the area are computed: 0 for
    /// partition-relative tweaks, the partition's starting offset for disk-absolute ones.
    pub tweak_offset: u64,
    pub buffer: SecondaryBuffer,
}

/// One loaded copy of the filter: the context handed over through DumpData.
#[derive(Debug)]
pub struct Instance {
    pub dump_type: DumpType,
    state: State,
    action: Action,
}

/// The policy, with what it needs.
#[derive(Debug)]
pub enum Action {
    Passthrough,
    Encrypt(Encryption),
    Refuse,
}

impl Action {
    pub fn policy(&self) -> Policy {
        match self {
            Self::Passthrough => Policy::Passthrough,
            Self::Encrypt(_) => Policy::Encrypt,
            Self::Refuse => Policy::Refuse,
        }
    }
}

impl Instance {
    pub fn new(dump_type: DumpType, action: Action) -> Self {
        Self {
            dump_type,
            state: State::Loaded,
            action,
        }
    }

    pub fn policy(&self) -> Policy {
        self.action.policy()
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Dump_Start. HIGH_LEVEL.
    pub fn start(&mut self) -> Result<NTSTATUS, Fault> {
        if let Action::Refuse = self.action {
            return Ok(STATUS_ACCESS_DENIED);
        }
        self.state = State::Started;
        Ok(STATUS_SUCCESS)
    }

    /// Dump_Write. HIGH_LEVEL.
    pub fn write(&mut self, mut request: IoRequest<'_>) -> Result<NTSTATUS, Fault> {
        let encryption = match &mut self.action {
            Action::Passthrough => return Ok(STATUS_SUCCESS),
            Action::Refuse => {
                let offset = request.offset()?;
                return Err(Fault::WriteRefused {
                    offset: offset as u64,
                });
            }
            Action::Encrypt(encryption) => encryption,
        };
        if self.state != State::Started {
            return Err(Fault::OutOfOrder {
                state: self.state as u64,
            });
        }
        let offset = request.offset()?;
        let mut mdl = request.mdl()?;
        let byte_count = mdl.byte_count();
        let position = encryption.check_transfer(offset, byte_count)?;
        let needed = crate::mdl::pages_spanned(0, byte_count as usize);
        if needed > mdl.pfn_capacity() {
            return Err(Fault::PfnArrayTooSmall {
                needed,
                capacity: mdl.pfn_capacity(),
            });
        }
        let source = mdl.data()?;
        if encryption
            .buffer
            .overlaps(source.as_ptr() as usize, source.len())
        {
            return Err(Fault::SourceInSecondaryBuffer {
                source: source.as_ptr() as usize,
            });
        }
        let len = source.len();
        let destination = &mut encryption.buffer.as_mut_slice()[..len];
        match encryption.area.intersect(position, len as u64) {
            None => destination.copy_from_slice(source),
            Some(inside) => {
                let (start, end) = (inside.start as usize, inside.end as usize);
                destination[..start].copy_from_slice(&source[..start]);
                destination[end..].copy_from_slice(&source[end..]);
                let first_unit = (position + inside.start) / encryption.data_unit.bytes() as u64;
                encryption
                    .cipher
                    .encrypt_units(
                        encryption.data_unit,
                        first_unit,
                        &source[start..end],
                        &mut destination[start..end],
                    )
                    .map_err(|_| Fault::LengthMisaligned {
                        byte_count,
                        data_unit: encryption.data_unit.bytes(),
                    })?;
            }
        }
        mdl.retarget_to(&encryption.buffer)?;
        Ok(STATUS_SUCCESS)
    }

    /// Dump_Read: decrypts in place what the stack read back. HIGH_LEVEL.
    pub fn read(&mut self, mut request: IoRequest<'_>) -> Result<NTSTATUS, Fault> {
        let Action::Encrypt(encryption) = &mut self.action else {
            // Passthrough, and refuse (which let nothing of its own reach the disk): the
            // data read is handed on untouched.
            return Ok(STATUS_SUCCESS);
        };
        let offset = request.offset()?;
        let mut mdl = request.mdl()?;
        let byte_count = mdl.byte_count();
        let position = encryption.check_transfer(offset, byte_count)?;
        let data = mdl.data_mut()?;
        if let Some(inside) = encryption.area.intersect(position, data.len() as u64) {
            let first_unit = (position + inside.start) / encryption.data_unit.bytes() as u64;
            encryption
                .cipher
                .decrypt_units_in_place(
                    encryption.data_unit,
                    first_unit,
                    &mut data[inside.start as usize..inside.end as usize],
                )
                .map_err(|_| Fault::LengthMisaligned {
                    byte_count,
                    data_unit: encryption.data_unit.bytes(),
                })?;
        }
        Ok(STATUS_SUCCESS)
    }

    /// Dump_Finish: wipes the secondary buffer. HIGH_LEVEL.
    pub fn finish(&mut self) -> Result<NTSTATUS, Fault> {
        if let Action::Encrypt(encryption) = &mut self.action {
            encryption.buffer.wipe();
        }
        if self.state == State::Started {
            self.state = State::Finished;
        }
        Ok(STATUS_SUCCESS)
    }
}

impl Encryption {
    /// Checks a transfer's size and place; returns its offset in tweak-base coordinates.
    fn check_transfer(&self, offset: i64, byte_count: u32) -> Result<u64, Fault> {
        let unit = self.data_unit.bytes();
        if byte_count as usize > self.buffer.len() {
            return Err(Fault::TransferTooLarge {
                byte_count,
                capacity: self.buffer.len(),
            });
        }
        let position = u64::try_from(offset)
            .ok()
            .and_then(|offset| offset.checked_add(self.tweak_offset))
            .filter(|position| position.checked_add(byte_count.into()).is_some())
            .ok_or(Fault::OffsetOutOfRange {
                offset: offset as u64,
                byte_count,
            })?;
        if !position.is_multiple_of(unit as u64) {
            return Err(Fault::OffsetMisaligned {
                offset: position,
                data_unit: unit,
            });
        }
        if !(byte_count as usize).is_multiple_of(unit) {
            return Err(Fault::LengthMisaligned {
                byte_count,
                data_unit: unit,
            });
        }
        Ok(position)
    }
}
