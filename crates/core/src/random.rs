//! Drawing fresh secrets from the processor's random instructions, RDSEED then RDRAND, with
//! the retries of Intel's DRNG guide and the checks against known broken parts; failing closed.
//!
//! The instructions themselves are the driver's (`src/kernel/random.rs`: CPUID, RDSEED,
//! RDRAND); this module decides how to use them, through [`Instructions`], so that the policy
//! is tested here against sources that fail in every way.
//!
//! - **RDSEED first** (CPUID.(EAX=7,ECX=0):EBX bit 18): the conditioner's output, seeded
//!   afresh for each value. It may run dry under load (CF = 0): retried after a `pause`, up to
//!   [`RDSEED_RETRIES`] times per word, as the guide recommends.
//! - **RDRAND as the fallback** (CPUID.1:ECX bit 30): the DRBG's output, reseeded by the same
//!   source. CF = 0 is retried up to [`RDRAND_RETRIES`] (10) times per word: the guide counts
//!   10 failures in a row as a failed part.
//! - **Sanity checks**, for parts that set CF = 1 and return garbage: some AMD processors
//!   (families 15h and 16h) return all ones after a resume from suspend, and a microcode bug
//!   of family 17h returned all ones always. A word of all ones or all zeros, and a word equal
//!   to the one before it, disqualify the instruction for the whole draw (the chance that a
//!   working source produces one in a draw of a few words is about 2^-60).
//! - **Fail closed**: when neither instruction passes, [`fill`] returns [`NoSource`] with the
//!   output wiped, and the driver loads an instance that refuses every dump.

use core::fmt;

use zeroize::Zeroize;

/// Tries of RDRAND per word: Intel's DRNG guide, "retry up to 10 times".
pub const RDRAND_RETRIES: u32 = 10;
/// Tries of RDSEED per word, with a `pause` between them. The guide leaves the bound to the
/// caller; RDSEED can run dry for a while under contention, and DriverEntry can wait a little.
pub const RDSEED_RETRIES: u32 = 1024;

/// One of the processor's random instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instruction {
    /// RDSEED (64-bit form).
    Rdseed,
    /// RDRAND (64-bit form).
    Rdrand,
}

/// The processor's random instructions, as the driver runs them.
pub trait Instructions {
    /// Whether CPUID reports the instruction.
    fn has(&self, instruction: Instruction) -> bool;
    /// Runs the instruction once: the word when it set CF, `None` when it did not. Called
    /// only after [`Instructions::has`] said yes.
    fn step(&mut self, instruction: Instruction) -> Option<u64>;
    /// The `pause` between two RDSEED tries.
    fn pause(&mut self);
}

/// Neither instruction gave words that pass: no secret can be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSource;

impl fmt::Display for NoSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("neither RDSEED nor RDRAND gives random words that pass the checks")
    }
}

/// Fills `out` from RDSEED, or from RDRAND when RDSEED is absent or fails; which one served
/// is returned. On [`NoSource`], `out` is all zeros.
pub fn fill(source: &mut impl Instructions, out: &mut [u8]) -> Result<Instruction, NoSource> {
    for instruction in [Instruction::Rdseed, Instruction::Rdrand] {
        if source.has(instruction) && fill_with(source, instruction, out) {
            return Ok(instruction);
        }
        out.zeroize();
    }
    Err(NoSource)
}

/// Fills `out` with words of one instruction; `false` when a word cannot be had or fails a
/// check.
fn fill_with(source: &mut impl Instructions, instruction: Instruction, out: &mut [u8]) -> bool {
    let mut previous: Option<u64> = None;
    for chunk in out.chunks_mut(8) {
        let Some(word) = word(source, instruction) else {
            return false;
        };
        if word == 0 || word == u64::MAX || previous == Some(word) {
            return false;
        }
        let bytes = word.to_le_bytes();
        chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or_default());
        previous = Some(word);
    }
    // `previous` is a copy of key material: a plain u64 the compiler may keep in a register;
    // it is overwritten here for the stack's sake.
    previous.zeroize();
    true
}

/// One word, with the instruction's retries.
fn word(source: &mut impl Instructions, instruction: Instruction) -> Option<u64> {
    let tries = match instruction {
        Instruction::Rdseed => RDSEED_RETRIES,
        Instruction::Rdrand => RDRAND_RETRIES,
    };
    for _ in 0..tries {
        if let Some(word) = source.step(instruction) {
            return Some(word);
        }
        if instruction == Instruction::Rdseed {
            source.pause();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// A scripted processor: for each instruction, whether it exists and what each try gives.
    struct Scripted {
        rdseed: Option<Vec<Option<u64>>>,
        rdrand: Option<Vec<Option<u64>>>,
        tries: [usize; 2],
        pauses: usize,
    }

    fn counter(start: u64) -> Vec<Option<u64>> {
        (0..64).map(|i| Some(start + i * 0x0101_0101)).collect()
    }

    impl Scripted {
        fn new(rdseed: Option<Vec<Option<u64>>>, rdrand: Option<Vec<Option<u64>>>) -> Self {
            Self {
                rdseed,
                rdrand,
                tries: [0; 2],
                pauses: 0,
            }
        }
    }

    impl Instructions for Scripted {
        fn has(&self, instruction: Instruction) -> bool {
            match instruction {
                Instruction::Rdseed => self.rdseed.is_some(),
                Instruction::Rdrand => self.rdrand.is_some(),
            }
        }
        fn step(&mut self, instruction: Instruction) -> Option<u64> {
            let (script, index) = match instruction {
                Instruction::Rdseed => (self.rdseed.as_ref().unwrap(), 0),
                Instruction::Rdrand => (self.rdrand.as_ref().unwrap(), 1),
            };
            let at = self.tries[index];
            self.tries[index] += 1;
            script.get(at).copied().flatten()
        }
        fn pause(&mut self) {
            self.pauses += 1;
        }
    }

    #[test]
    fn rdseed_first() {
        let mut cpu = Scripted::new(Some(counter(1)), Some(counter(1000)));
        let mut out = [0u8; 16];
        assert_eq!(fill(&mut cpu, &mut out), Ok(Instruction::Rdseed));
        assert_eq!(out[..8], 1u64.to_le_bytes());
        assert_eq!(cpu.tries, [2, 0]);
    }

    #[test]
    fn rdseed_retried_with_pause_then_rdrand() {
        // RDSEED dry for 5 tries, then fine.
        let mut script = vec![None; 5];
        script.extend(counter(7));
        let mut cpu = Scripted::new(Some(script), None);
        let mut out = [0u8; 8];
        assert_eq!(fill(&mut cpu, &mut out), Ok(Instruction::Rdseed));
        assert_eq!(cpu.pauses, 5);
        // RDSEED dry for good: bounded, then RDRAND.
        let mut cpu = Scripted::new(Some(vec![]), Some(counter(9)));
        assert_eq!(fill(&mut cpu, &mut out), Ok(Instruction::Rdrand));
        assert_eq!(cpu.tries[0], RDSEED_RETRIES as usize);
        assert_eq!(out, 9u64.to_le_bytes());
    }

    #[test]
    fn rdrand_ten_tries_per_word() {
        let mut script = vec![None; 9];
        script.extend(counter(3));
        let mut cpu = Scripted::new(None, Some(script));
        let mut out = [0u8; 64];
        assert_eq!(fill(&mut cpu, &mut out), Ok(Instruction::Rdrand));
        let mut cpu = Scripted::new(None, Some(vec![None; 10]));
        assert_eq!(fill(&mut cpu, &mut out), Err(NoSource));
        assert_eq!(cpu.tries[1], 10);
        assert_eq!(out, [0u8; 64]);
    }

    #[test]
    fn broken_words_fail_closed() {
        let all = |word: u64| vec![Some(word); 64];
        let mut repeated = counter(5);
        repeated[3] = repeated[2];
        for broken in [all(u64::MAX), all(0), repeated] {
            let mut cpu = Scripted::new(Some(broken.clone()), Some(broken));
            let mut out = [0x55u8; 128];
            assert_eq!(fill(&mut cpu, &mut out), Err(NoSource));
            assert_eq!(out, [0u8; 128], "nothing drawn is left");
        }
        // A broken RDSEED alone: RDRAND serves.
        let mut cpu = Scripted::new(Some(all(u64::MAX)), Some(counter(11)));
        let mut out = [0u8; 128];
        assert_eq!(fill(&mut cpu, &mut out), Ok(Instruction::Rdrand));
        assert_eq!(out[..8], 11u64.to_le_bytes());
        // Neither instruction at all.
        let mut cpu = Scripted::new(None, None);
        assert_eq!(fill(&mut cpu, &mut out), Err(NoSource));
    }

    /// One all-ones or all-zero word among good ones fails the instruction on its own (the
    /// AMD parts returned all ones with CF set), not only a word that repeats.
    #[test]
    fn a_single_all_ones_or_zero_word_fails_the_instruction() {
        for bad in [u64::MAX, 0] {
            for at in [0, 5] {
                let mut script = counter(21);
                script[at] = Some(bad);
                let mut cpu = Scripted::new(Some(script), Some(counter(31)));
                let mut out = [0u8; 64];
                assert_eq!(
                    fill(&mut cpu, &mut out),
                    Ok(Instruction::Rdrand),
                    "{bad:#x} at word {at}"
                );
                assert_eq!(out[..8], 31u64.to_le_bytes());
            }
        }
    }

    #[test]
    fn the_refusal_says_what_failed() {
        assert_eq!(
            std::format!("{NoSource}"),
            "neither RDSEED nor RDRAND gives random words that pass the checks"
        );
    }

    #[test]
    fn a_short_last_chunk_takes_the_low_bytes() {
        let mut cpu = Scripted::new(Some(counter(0x1122_3344_5566_7788)), None);
        let mut out = [0u8; 12];
        fill(&mut cpu, &mut out).unwrap();
        assert_eq!(
            out[8..],
            (0x1122_3344_5566_7788u64 + 0x0101_0101).to_le_bytes()[..4]
        );
    }
}
