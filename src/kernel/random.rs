//! The processor's random instructions: CPUID for whether they exist, RDSEED, RDRAND, PAUSE.
//!
//! | Rust           | x86_64                                                      |
//! |----------------|-------------------------------------------------------------|
//! | [`Cpu::detect`]| CPUID.(EAX=7,ECX=0):EBX bit 18 (RDSEED), CPUID.1:ECX bit 30 (RDRAND) |
//! | `Cpu::step`    | `rdseed r64` / `rdrand r64`, CF: whether the word is random |
//! | `Cpu::pause`   | `pause`                                                     |
//!
//! How they are used (retries, the checks against broken parts, failing closed) is
//! `dumpcrypt_core::random`'s. They need no import and run at any IRQL, which is why the
//! sealed key source draws from them (docs/design.md, "Sealed keys: the driver"). The same
//! code runs in the host build, on the host's processor; the simulated Windows can hide or
//! break them there (`host.rs`).

use core::arch::asm;

use dumpcrypt_core::random::{Instruction, Instructions};

/// The random instructions this processor has.
///
/// # Invariants
/// `rdseed` (`rdrand`) is true only if CPUID reports RDSEED (RDRAND) on this processor.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    rdseed: bool,
    rdrand: bool,
}

/// CPUID of `leaf`, `subleaf`: (eax, ebx, ecx).
fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32) {
    let (eax, ebx, ecx): (u32, u64, u32);
    // SAFETY: CPUID exists on every x86_64 processor and only writes eax, ebx, ecx and edx.
    // rbx is reserved by the compiler, so it is kept in a scratch register and given back;
    // no memory is touched, the stack is not used and the flags are left as they were.
    unsafe {
        asm!(
            "mov {rbx_copy}, rbx",
            "cpuid",
            "xchg {rbx_copy}, rbx",
            rbx_copy = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") subleaf => ecx,
            out("edx") _,
            options(nomem, nostack, preserves_flags),
        );
    }
    (eax, ebx as u32, ecx)
}

impl Cpu {
    /// What CPUID reports. Any IRQL.
    pub fn detect() -> Cpu {
        let (max_leaf, _, _) = cpuid(0, 0);
        let (_, _, ecx1) = cpuid(1, 0);
        let rdseed = max_leaf >= 7 && cpuid(7, 0).1 & (1 << 18) != 0;
        // INVARIANT: each flag is the CPUID bit of its instruction.
        Cpu {
            rdseed,
            rdrand: ecx1 & (1 << 30) != 0,
        }
    }

    /// Whether CPUID reported the instruction.
    pub fn has(&self, instruction: Instruction) -> bool {
        match instruction {
            Instruction::Rdseed => self.rdseed,
            Instruction::Rdrand => self.rdrand,
        }
    }

    /// One RDSEED or RDRAND; `None` when the processor lacks it or cleared CF. Any IRQL.
    pub fn step(&self, instruction: Instruction) -> Option<u64> {
        if !self.has(instruction) {
            return None;
        }
        let (word, carry): (u64, u8);
        match instruction {
            // SAFETY: by the type invariant the processor has RDSEED; it writes only the
            // output register and the flags (declared clobbered by leaving out
            // `preserves_flags`), touches no memory and no stack.
            Instruction::Rdseed => unsafe {
                asm!(
                    "rdseed {word}",
                    "setc {carry}",
                    word = out(reg) word,
                    carry = out(reg_byte) carry,
                    options(nomem, nostack),
                );
            },
            // SAFETY: as above, for RDRAND.
            Instruction::Rdrand => unsafe {
                asm!(
                    "rdrand {word}",
                    "setc {carry}",
                    word = out(reg) word,
                    carry = out(reg_byte) carry,
                    options(nomem, nostack),
                );
            },
        }
        (carry != 0).then_some(word)
    }

    /// PAUSE: the spin-loop hint between RDSEED tries. Any IRQL.
    pub fn pause(&self) {
        core::hint::spin_loop();
    }
}

impl Instructions for Cpu {
    fn has(&self, instruction: Instruction) -> bool {
        Cpu::has(self, instruction)
    }
    fn step(&mut self, instruction: Instruction) -> Option<u64> {
        Cpu::step(self, instruction)
    }
    fn pause(&mut self) {
        Cpu::pause(self);
    }
}
