//! One loaded instance: the stack it serves, where it is in the protocol, and its policy.
//!
//! The driver keeps one [`Instance`] per loaded copy and asks it, at every callback, what the
//! callback may do. The instance is generic over what the encrypt policy needs (`E`: the
//! driver's key schedules and secondary buffer), so the decisions are made here, in safe code,
//! and the driver only carries them out.
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

use crate::config::Policy;
use crate::fault::Fault;

/// `DumpTypeCrashdump`.
pub const DUMP_TYPE_CRASHDUMP: u32 = 1;
/// `DumpTypeHibernation`.
pub const DUMP_TYPE_HIBERNATION: u32 = 2;

/// The stack an instance was loaded into (`FILTER_DUMP_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpType {
    /// The crash dump stack (`DumpTypeCrashdump`, 1).
    CrashDump,
    /// The hibernation stack (`DumpTypeHibernation`, 2).
    Hibernation,
}

impl DumpType {
    /// The dump type of a `FILTER_DUMP_TYPE` value; `None` for DumpTypeUndefined (0) and
    /// anything unknown.
    pub const fn from_raw(value: u32) -> Option<Self> {
        match value {
            DUMP_TYPE_CRASHDUMP => Some(Self::CrashDump),
            DUMP_TYPE_HIBERNATION => Some(Self::Hibernation),
            _ => None,
        }
    }

    /// The `FILTER_DUMP_TYPE` value.
    pub const fn raw(self) -> u32 {
        match self {
            Self::CrashDump => DUMP_TYPE_CRASHDUMP,
            Self::Hibernation => DUMP_TYPE_HIBERNATION,
        }
    }
}

/// Where an instance is in the protocol: Loaded → Started → Finished (→ Started again for a
/// new dump). The crash dump copy goes from Started to KeysWiped at Dump_Finish instead: the
/// machine is going down, and its keys go first. Unloading ends the instance itself, so there
/// is no Unloaded state to check: a callback with an unloaded context fails the driver's
/// context lookup.
///
/// The state orders dumps; it does not gate data. A write or read in any state is handled
/// like any other (Windows' crash dump driver writes and reads its DumpStack.log through the
/// dump stack, also after Dump_Finish), except that with the keys wiped a write's bytes
/// inside the area are blanked and a read is handed on untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// DriverEntry succeeded; no dump has started.
    Loaded = 0,
    /// Dump_Start succeeded.
    Started = 1,
    /// Dump_Finish came after a start (the hibernation copy: its keys stay for resume).
    Finished = 2,
    /// Dump_Finish came after a start on the crash dump copy and its key schedules are wiped:
    /// Dump_Start is refused; a write is blanked inside the area, a read handed on untouched.
    KeysWiped = 3,
}

/// What a Dump_Write goes through.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteWith<'a, E> {
    /// Nothing: the MDL and offset are left as they are (passthrough).
    Untouched,
    /// The encrypt policy: encrypted inside the area, copied outside it.
    Encrypt(&'a mut E),
    /// The crash dump copy after its dump, keys wiped (the crash dump driver may still write
    /// its log): zeros inside the area, copied outside it. Neither plaintext nor a bug check
    /// on a machine whose dump is already on the disk.
    Blank(&'a mut E),
}

/// The policy, with what it needs.
#[derive(Debug)]
pub enum Action<E> {
    /// Every callback succeeds; the MDL and offset are never touched.
    Passthrough,
    /// Blocks inside the area are written encrypted, and decrypted when read back.
    Encrypt(E),
    /// Dump_Start fails; a write anyway is a bug check.
    Refuse,
}

/// What Dump_Start answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// STATUS_SUCCESS: the dump may be written.
    Proceed,
    /// STATUS_ACCESS_DENIED: the policy refuses dumps of this stack (or its keys are gone).
    Refused,
}

/// What Dump_Finish must wipe.
#[derive(Debug, PartialEq, Eq)]
pub enum FinishOutcome<'a, E> {
    /// Nothing: passthrough and refuse hold no data.
    Nothing,
    /// The secondary buffer; the keys stay (the hibernation copy reads the image back at
    /// resume, and a Dump_Finish without a start ends no dump).
    Buffer(&'a mut E),
    /// The secondary buffer and the key schedules, in place (HIGH_LEVEL: nothing is freed):
    /// the crash dump copy after its dump.
    BufferAndKeys(&'a mut E),
}

/// One loaded copy of the filter.
#[derive(Debug)]
pub struct Instance<E> {
    dump_type: DumpType,
    state: State,
    action: Action<E>,
}

impl<E> Instance<E> {
    /// A freshly loaded instance.
    pub const fn new(dump_type: DumpType, action: Action<E>) -> Self {
        Self {
            dump_type,
            state: State::Loaded,
            action,
        }
    }

    /// The stack it was loaded into.
    pub const fn dump_type(&self) -> DumpType {
        self.dump_type
    }

    /// Where it is in the protocol.
    pub const fn state(&self) -> State {
        self.state
    }

    /// Its policy.
    pub const fn policy(&self) -> Policy {
        match self.action {
            Action::Passthrough => Policy::Passthrough,
            Action::Encrypt(_) => Policy::Encrypt,
            Action::Refuse => Policy::Refuse,
        }
    }

    /// Checks the dump type the system's extension names against the one loaded.
    pub fn check_dump_type(&self, found: u32) -> Result<(), Fault> {
        if found == self.dump_type.raw() {
            Ok(())
        } else {
            Err(Fault::DumpTypeMismatch {
                loaded: self.dump_type.raw(),
                found,
            })
        }
    }

    /// Dump_Start. `may_start` says whether the encrypt policy's keys still hold (a
    /// provider's live state may say they do not). HIGH_LEVEL.
    pub fn start(&mut self, may_start: impl FnOnce(&E) -> bool) -> StartOutcome {
        match &self.action {
            Action::Refuse => return StartOutcome::Refused,
            Action::Encrypt(_) if self.state == State::KeysWiped => return StartOutcome::Refused,
            Action::Encrypt(encryption) if !may_start(encryption) => return StartOutcome::Refused,
            Action::Encrypt(_) | Action::Passthrough => {}
        }
        self.state = State::Started;
        StartOutcome::Proceed
    }

    /// Dump_Write: what the write goes through. A write before Dump_Start or after
    /// Dump_Finish is encrypted like any other; the crash dump copy whose keys are wiped
    /// blanks it instead. `offset` reads DiskByteOffset, for the fault of a refused write.
    /// HIGH_LEVEL.
    pub fn write(
        &mut self,
        offset: impl FnOnce() -> Result<i64, Fault>,
    ) -> Result<WriteWith<'_, E>, Fault> {
        let wiped = self.state == State::KeysWiped;
        match &mut self.action {
            Action::Passthrough => Ok(WriteWith::Untouched),
            Action::Refuse => Err(Fault::WriteRefused {
                offset: offset()? as u64,
            }),
            Action::Encrypt(encryption) => Ok(if wiped {
                WriteWith::Blank(encryption)
            } else {
                WriteWith::Encrypt(encryption)
            }),
        }
    }

    /// Dump_Read: what decrypts the data read. `None`: hand it on untouched (passthrough,
    /// and refuse, which let nothing of its own reach the disk). A read before Dump_Start is
    /// decrypted like any other (what this instance's key source wrote earlier, a boot-time
    /// log included); the crash dump copy whose keys are wiped has nothing to decrypt with
    /// and hands the data on as it was read. HIGH_LEVEL.
    pub fn read(&mut self) -> Option<&mut E> {
        match &mut self.action {
            Action::Encrypt(encryption) if self.state != State::KeysWiped => Some(encryption),
            Action::Encrypt(_) | Action::Passthrough | Action::Refuse => None,
        }
    }

    /// Dump_Finish: what to wipe. The crash dump copy that finishes a dump it started wipes
    /// its keys too, and stays so. HIGH_LEVEL.
    pub fn finish(&mut self) -> FinishOutcome<'_, E> {
        let encrypts = matches!(self.action, Action::Encrypt(_));
        let wipe_keys = encrypts
            && match (self.state, self.dump_type) {
                (State::Started, DumpType::CrashDump) | (State::KeysWiped, _) => true,
                (State::Started, DumpType::Hibernation) | (State::Loaded | State::Finished, _) => {
                    false
                }
            };
        self.state = match self.state {
            _ if wipe_keys => State::KeysWiped,
            State::Started => State::Finished,
            other => other,
        };
        match &mut self.action {
            Action::Encrypt(encryption) => {
                if wipe_keys {
                    FinishOutcome::BufferAndKeys(encryption)
                } else {
                    FinishOutcome::Buffer(encryption)
                }
            }
            Action::Passthrough | Action::Refuse => FinishOutcome::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset() -> Result<i64, Fault> {
        Ok(0x4000)
    }

    fn null_offset() -> Result<i64, Fault> {
        Err(Fault::NullArgument { argument: 2 })
    }

    #[test]
    fn dump_types_are_the_filter_dump_type_values() {
        assert_eq!(DumpType::from_raw(0), None);
        assert_eq!(DumpType::from_raw(1), Some(DumpType::CrashDump));
        assert_eq!(DumpType::from_raw(2), Some(DumpType::Hibernation));
        assert_eq!(DumpType::from_raw(3), None);
        assert_eq!(DumpType::CrashDump.raw(), 1);
        assert_eq!(DumpType::Hibernation.raw(), 2);
    }

    #[test]
    fn encrypt_follows_the_protocol() {
        let mut instance = Instance::new(DumpType::Hibernation, Action::Encrypt(7u8));
        assert_eq!(instance.policy(), Policy::Encrypt);
        assert_eq!(instance.state(), State::Loaded);
        assert_eq!(
            instance.finish(),
            FinishOutcome::Buffer(&mut 7),
            "a finish without a start"
        );
        assert_eq!(instance.state(), State::Loaded, "a finish without a start");
        assert_eq!(instance.start(|_| true), StartOutcome::Proceed);
        assert_eq!(instance.state(), State::Started);
        assert_eq!(instance.write(offset).unwrap(), WriteWith::Encrypt(&mut 7));
        assert_eq!(instance.read().copied(), Some(7));
        assert_eq!(instance.finish(), FinishOutcome::Buffer(&mut 7));
        assert_eq!(instance.state(), State::Finished);
        assert_eq!(instance.read().copied(), Some(7), "resume");
        assert_eq!(
            instance.write(offset).unwrap(),
            WriteWith::Encrypt(&mut 7),
            "a write after the finish is encrypted"
        );
        assert_eq!(
            instance.start(|_| true),
            StartOutcome::Proceed,
            "a second hibernation"
        );
        assert_eq!(instance.state(), State::Started);
    }

    /// DumpStack.log: the crash dump driver writes and reads it through the dump stack at
    /// boot, before any Dump_Start. Encrypted and decrypted like any other transfer, never a
    /// bug check for order alone.
    #[test]
    fn transfers_before_dump_start_are_handled_like_any_other() {
        for dump_type in [DumpType::CrashDump, DumpType::Hibernation] {
            let mut instance = Instance::new(dump_type, Action::Encrypt(7u8));
            assert_eq!(instance.write(offset).unwrap(), WriteWith::Encrypt(&mut 7));
            assert_eq!(instance.read().copied(), Some(7));
            assert_eq!(instance.state(), State::Loaded);
            assert_eq!(instance.start(|_| true), StartOutcome::Proceed);
        }
        let mut refusing = Instance::new(DumpType::CrashDump, Action::<u8>::Refuse);
        assert_eq!(
            refusing.write(offset).unwrap_err(),
            Fault::WriteRefused { offset: 0x4000 },
            "a refusing instance still refuses"
        );
    }

    /// The crash dump copy wipes its keys at the Dump_Finish of a dump: no second dump; a
    /// write afterwards (the crash dump driver's log) is blanked, never plaintext, never a bug
    /// check; a read is handed on untouched.
    #[test]
    fn the_crash_dump_copy_is_spent_after_its_dump() {
        let mut instance = Instance::new(DumpType::CrashDump, Action::Encrypt(7u8));
        assert_eq!(instance.start(|_| true), StartOutcome::Proceed);
        assert_eq!(instance.write(offset).unwrap(), WriteWith::Encrypt(&mut 7));
        assert_eq!(instance.finish(), FinishOutcome::BufferAndKeys(&mut 7));
        assert_eq!(instance.state(), State::KeysWiped);
        assert_eq!(instance.start(|_| true), StartOutcome::Refused);
        assert_eq!(instance.state(), State::KeysWiped);
        assert_eq!(instance.write(offset).unwrap(), WriteWith::Blank(&mut 7));
        assert_eq!(instance.read(), None);
        assert_eq!(
            instance.finish(),
            FinishOutcome::BufferAndKeys(&mut 7),
            "a second finish wipes again"
        );
        // Passthrough and refuse hold no keys: nothing changes for them.
        let mut passthrough = Instance::new(DumpType::CrashDump, Action::<u8>::Passthrough);
        assert_eq!(passthrough.start(|_| true), StartOutcome::Proceed);
        assert_eq!(passthrough.finish(), FinishOutcome::Nothing);
        assert_eq!(passthrough.start(|_| true), StartOutcome::Proceed);
    }

    #[test]
    fn passthrough_touches_nothing_in_any_state() {
        let mut instance = Instance::new(DumpType::CrashDump, Action::<u8>::Passthrough);
        assert_eq!(instance.policy(), Policy::Passthrough);
        assert_eq!(instance.write(null_offset).unwrap(), WriteWith::Untouched);
        assert_eq!(instance.read(), None);
        assert_eq!(instance.start(|_| true), StartOutcome::Proceed);
        assert_eq!(instance.write(null_offset).unwrap(), WriteWith::Untouched);
        assert_eq!(instance.finish(), FinishOutcome::Nothing);
        assert_eq!(instance.state(), State::Finished);
    }

    #[test]
    fn refuse_fails_the_start_and_bug_checks_a_write() {
        let mut instance = Instance::new(DumpType::CrashDump, Action::<u8>::Refuse);
        assert_eq!(instance.policy(), Policy::Refuse);
        assert_eq!(instance.start(|_| true), StartOutcome::Refused);
        assert_eq!(instance.state(), State::Loaded);
        assert_eq!(
            instance.write(offset).unwrap_err(),
            Fault::WriteRefused { offset: 0x4000 }
        );
        assert_eq!(
            instance.write(null_offset).unwrap_err(),
            Fault::NullArgument { argument: 2 }
        );
        assert_eq!(instance.read(), None);
        assert_eq!(instance.finish(), FinishOutcome::Nothing);
    }

    #[test]
    fn keys_that_no_longer_hold_refuse_the_start() {
        let mut instance = Instance::new(DumpType::CrashDump, Action::Encrypt(7u8));
        assert_eq!(instance.start(|&e| e == 8), StartOutcome::Refused);
        assert_eq!(instance.state(), State::Loaded);
        assert_eq!(instance.start(|&e| e == 7), StartOutcome::Proceed);
        assert_eq!(instance.state(), State::Started);
        let mut passthrough = Instance::new(DumpType::CrashDump, Action::<u8>::Passthrough);
        assert_eq!(
            passthrough.start(|_| false),
            StartOutcome::Proceed,
            "no keys to ask about"
        );
    }

    #[test]
    fn the_dump_type_must_match() {
        let instance = Instance::new(DumpType::Hibernation, Action::<u8>::Passthrough);
        assert_eq!(instance.dump_type(), DumpType::Hibernation);
        assert_eq!(instance.check_dump_type(2), Ok(()));
        assert_eq!(
            instance.check_dump_type(1),
            Err(Fault::DumpTypeMismatch {
                loaded: 2,
                found: 1
            })
        );
    }
}
