//! What this processor and the OS let the transform use: CPUID and XGETBV, read once when a
//! key is expanded (at DriverEntry), never on the dump path.
//!
//! The only `unsafe` here is the two instructions themselves, in `asm!`: CPUID exists on every
//! x86_64 processor; XGETBV only where CPUID says the OS enabled XSAVE (OSXSAVE), which is
//! checked first. Leaves above the processor's highest basic leaf are not read (some
//! processors, and the emulator the driver image is tested in, answer them with another
//! leaf's data).
// The dump path's rules hold here too: no indexing that could panic, no panics, no unwraps.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used
    )
)]

use core::arch::asm;

/// XSAVE state components (the bits of XCR0 and of the XSAVE masks).
pub(crate) mod component {
    /// x87 state: never touched, never saved.
    #[cfg(test)]
    pub(crate) const X87: u64 = 1 << 0;
    /// XMM0–15 and MXCSR.
    pub(crate) const SSE: u64 = 1 << 1;
    /// The upper halves of YMM0–15.
    pub(crate) const AVX: u64 = 1 << 2;
    /// k0–k7.
    pub(crate) const OPMASK: u64 = 1 << 5;
    /// The upper halves of ZMM0–15.
    pub(crate) const ZMM_HI256: u64 = 1 << 6;
    /// ZMM16–31.
    pub(crate) const HI16_ZMM: u64 = 1 << 7;
    /// AMX tile configuration and data (17, 18): never saved by the transform.
    #[cfg(test)]
    pub(crate) const AMX: u64 = (1 << 17) | (1 << 18);
}

/// One CPUID leaf's registers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Leaf {
    pub(crate) eax: u32,
    pub(crate) ebx: u32,
    pub(crate) ecx: u32,
}

/// CPUID of `leaf`, `subleaf` (eax, ebx and ecx: edx is not needed).
pub(crate) fn cpuid(leaf: u32, subleaf: u32) -> Leaf {
    let (eax, ebx, ecx): (u32, u64, u32);
    // SAFETY: CPUID exists on every x86_64 processor and writes only eax, ebx, ecx, edx; rbx
    // (reserved by the compiler) is saved in a scratch register and given back; no memory,
    // stack or flags are touched.
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
    Leaf {
        eax,
        ebx: ebx as u32,
        ecx,
    }
}

/// XCR0: the state components the OS saves and lets code use. Only to be called where CPUID
/// reports OSXSAVE.
fn xcr0() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: the caller checked CPUID.1:ECX.OSXSAVE, so XGETBV exists and XCR0 is readable
    // at any privilege level; it only writes eax and edx.
    unsafe {
        asm!(
            "xgetbv",
            in("ecx") 0u32,
            out("eax") low,
            out("edx") high,
            options(nomem, nostack, preserves_flags),
        );
    }
    (u64::from(high) << 32) | u64::from(low)
}

/// What the transform may use here, as CPUID and XGETBV report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Features {
    /// AES-NI.
    pub(crate) aes: bool,
    /// PCLMULQDQ (reported; the XMM backend does not need it).
    pub(crate) pclmulqdq: bool,
    /// AVX2 with the YMM state enabled by the OS.
    pub(crate) avx2: bool,
    /// VAES and VPCLMULQDQ (their 256-bit forms need `avx2`, their 512-bit forms `avx512`).
    pub(crate) vaes: bool,
    /// AVX-512 F, BW and VL with the opmask and ZMM state enabled by the OS.
    pub(crate) avx512: bool,
    /// XSAVEC (the compacted form): otherwise XSAVE saves in the standard form.
    pub(crate) xsavec: bool,
    /// XCR0, or 0 where the OS did not enable XSAVE.
    pub(crate) xcr0: u64,
}

impl Features {
    /// Reads them from this processor.
    pub(crate) fn detect() -> Self {
        let max_leaf = cpuid(0, 0).eax;
        let leaf1 = cpuid(1, 0);
        let bit = |register: u32, index: u32| register >> index & 1 == 1;
        let aes = bit(leaf1.ecx, 25);
        let pclmulqdq = bit(leaf1.ecx, 1);
        let osxsave = bit(leaf1.ecx, 27) && bit(leaf1.ecx, 26);
        let avx = bit(leaf1.ecx, 28);
        let xcr0 = if osxsave { xcr0() } else { 0 };
        let leaf7 = if max_leaf >= 7 {
            cpuid(7, 0)
        } else {
            Leaf::default()
        };
        let xsavec = osxsave && max_leaf >= 0xD && bit(cpuid(0xD, 1).eax, 1);
        use component::*;
        let ymm_state = xcr0 & (SSE | AVX) == SSE | AVX;
        let zmm_state =
            ymm_state && xcr0 & (OPMASK | ZMM_HI256 | HI16_ZMM) == OPMASK | ZMM_HI256 | HI16_ZMM;
        let avx2 = avx && ymm_state && bit(leaf7.ebx, 5);
        let avx512 = avx2
            && zmm_state
            && bit(leaf7.ebx, 16) // AVX512F
            && bit(leaf7.ebx, 30) // AVX512BW
            && bit(leaf7.ebx, 31); // AVX512VL
        let vaes = bit(leaf7.ecx, 9) && bit(leaf7.ecx, 10);
        Self {
            aes,
            pclmulqdq,
            avx2,
            vaes,
            avx512,
            xsavec,
            xcr0,
        }
    }
}

/// Bytes an XSAVE area needs for the components in `mask`: the compacted form (XSAVEC) when
/// `compacted`, the standard form (XSAVE) otherwise; from CPUID leaf 0xD. At least the legacy
/// region and the header (576 bytes).
pub(crate) fn state_len(mask: u64, compacted: bool) -> usize {
    const LEGACY_AND_HEADER: usize = 512 + 64;
    let mut len = LEGACY_AND_HEADER;
    // Components 0 and 1 live in the legacy region; the others have a CPUID sub-leaf each.
    for index in 2..63u32 {
        if mask >> index & 1 == 0 {
            continue;
        }
        let leaf = cpuid(0xD, index);
        let size = leaf.eax as usize;
        if compacted {
            // Compacted: in ascending order, each 64-byte aligned if ECX bit 1 says so.
            if leaf.ecx & 2 != 0 {
                len = len.next_multiple_of(64);
            }
            len += size;
        } else {
            // Standard: at the fixed offset in EBX.
            len = len.max(leaf.ebx as usize + size);
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::component::*;
    use super::*;

    #[test]
    fn detection_agrees_with_std() {
        let features = Features::detect();
        assert_eq!(features.aes, std::is_x86_feature_detected!("aes"));
        assert_eq!(
            features.pclmulqdq,
            std::is_x86_feature_detected!("pclmulqdq")
        );
        assert_eq!(features.avx2, std::is_x86_feature_detected!("avx2"));
        assert_eq!(
            features.vaes,
            std::is_x86_feature_detected!("vaes") && std::is_x86_feature_detected!("vpclmulqdq")
        );
        assert_eq!(
            features.avx512,
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
        );
        assert_eq!(features.xsavec, std::is_x86_feature_detected!("xsavec"));
        if features.avx2 {
            assert_eq!(features.xcr0 & (X87 | SSE | AVX), X87 | SSE | AVX);
        }
    }

    /// The sizes against what the processor reports for its whole enabled state
    /// (CPUID.(0xD,0).EBX: the standard form's size for everything XCR0 enables), and
    /// against the components' architectural sizes (AVX 256 bytes, opmask 64, ZMM_Hi256 512,
    /// Hi16_ZMM 1024). The standard form's offsets differ between vendors: Intel's leave room
    /// for MPX (opmask at 1088, 2688 bytes in all), AMD's do not (opmask at 832, 2432).
    #[test]
    fn state_sizes_agree_with_the_processor() {
        let features = Features::detect();
        assert_eq!(state_len(SSE, false), 576);
        assert_eq!(state_len(SSE, true), 576);
        if features.xcr0 != 0 {
            assert_eq!(
                state_len(features.xcr0, false),
                cpuid(0xD, 0).ebx as usize,
                "XCR0 {:#x}",
                features.xcr0
            );
        }
        if features.avx2 {
            assert_eq!(state_len(SSE | AVX, false), 832);
            assert_eq!(state_len(SSE | AVX, true), 832);
        }
        if features.avx512 {
            let zmm = SSE | AVX | OPMASK | ZMM_HI256 | HI16_ZMM;
            assert!([2432, 2688].contains(&state_len(zmm, false)));
            assert_eq!(state_len(zmm, true), 576 + 256 + 64 + 512 + 1024);
            assert_eq!(state_len(SSE | AVX | ZMM_HI256, true), 576 + 256 + 512);
        }
        // AMX is never part of a mask the transform uses.
        assert_eq!(AMX & (SSE | AVX | OPMASK | ZMM_HI256 | HI16_ZMM), 0);
    }
}
