//! The dump path leaves every vector register as it was: the OS saves no YMM/ZMM state for
//! the dump filter (and hibernation resumes the interrupted context), so the VAES backends
//! save and restore what they touch themselves (crates/xts/src/vaes.rs).
//!
//! Patterns go into zmm0–31 and k0–k7, Dump_Write (crash dump stack) or Dump_Read
//! (hibernation stack) runs through the real DriverEntry and callbacks with each VAES backend
//! (the `Backend` value) and with the XMM one, and the registers are read back, all in one
//! `asm!` block. Checked: bits 128–511 of zmm0–15, all of zmm16–31 and k0–7 (the low 128 bits
//! of xmm0–15 are the compiled code's to use: the host's System V ABI lets it; Windows' makes
//! xmm6–15 callee-saved, which the compiler honours).
//!
//! The test runs again in a child process whose C library uses no AVX (GLIBC_TUNABLES): in
//! an unoptimized build, moves of 64 bytes and more are calls to glibc's `memcpy`, which uses
//! those registers and would be blamed on the filter. In kernel mode there is no glibc.
use std::arch::asm;

use crashdmp_sim::mdl::{Shape, SimMdl};
use crashdmp_sim::ntoskrnl;
use crashdmp_sim::stack::{CRASHDUMP, HIBERNATION};

mod common;
use common::{boot, loaded, oracle, pattern, Parameters, WINDOWS_11};

const CHILD: &str = "DUMPCRYPT_REGISTER_TEST_CHILD";
const PAGES: u32 = 16;
/// Where the transfers go: any multiple of the data unit.
const OFFSET: i64 = 0x10_0000;

/// zmm0–31 (8 qwords each) and k0–k7, in memory.
#[repr(C, align(64))]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Registers {
    zmm: [[u64; 8]; 32],
    k: [u64; 8],
}

impl Registers {
    fn patterns(seed: u64) -> Self {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self {
            zmm: std::array::from_fn(|_| std::array::from_fn(|_| next())),
            k: std::array::from_fn(|_| next()),
        }
    }

    /// Those `found` differs from `self` in, of the registers checked (see the module docs).
    fn changed(&self, found: &Registers) -> Vec<String> {
        let mut changed = Vec::new();
        for (index, (expected, found)) in self.zmm.iter().zip(&found.zmm).enumerate() {
            let from = if index < 16 { 2 } else { 0 };
            for qword in from..8 {
                if expected[qword] != found[qword] {
                    changed.push(format!("zmm{index}[{qword}]"));
                }
            }
        }
        for (index, (expected, found)) in self.k.iter().zip(&found.k).enumerate() {
            if expected != found {
                changed.push(format!("k{index}"));
            }
        }
        changed
    }
}

struct Call<'a> {
    body: &'a mut dyn FnMut(),
}

extern "sysv64" fn trampoline(call: *mut Call<'_>) {
    // SAFETY: `around` passes a pointer to its live `Call`, used by nobody else meanwhile.
    let call = unsafe { &mut *call };
    (call.body)();
}

macro_rules! each_zmm {
    ($m:ident) => {
        concat!(
            $m!(0),
            $m!(1),
            $m!(2),
            $m!(3),
            $m!(4),
            $m!(5),
            $m!(6),
            $m!(7),
            $m!(8),
            $m!(9),
            $m!(10),
            $m!(11),
            $m!(12),
            $m!(13),
            $m!(14),
            $m!(15),
            $m!(16),
            $m!(17),
            $m!(18),
            $m!(19),
            $m!(20),
            $m!(21),
            $m!(22),
            $m!(23),
            $m!(24),
            $m!(25),
            $m!(26),
            $m!(27),
            $m!(28),
            $m!(29),
            $m!(30),
            $m!(31),
        )
    };
}
macro_rules! each_k {
    ($m:ident) => {
        concat!(
            $m!(0),
            $m!(1),
            $m!(2),
            $m!(3),
            $m!(4),
            $m!(5),
            $m!(6),
            $m!(7)
        )
    };
}
macro_rules! load_zmm {
    ($i:literal) => {
        concat!("vmovdqa64 zmm", $i, ", zmmword ptr [r12 + 64 * ", $i, "]\n")
    };
}
macro_rules! store_zmm {
    ($i:literal) => {
        concat!("vmovdqa64 zmmword ptr [r13 + 64 * ", $i, "], zmm", $i, "\n")
    };
}
macro_rules! load_k {
    ($i:literal) => {
        concat!("kmovq k", $i, ", qword ptr [r12 + 2048 + 8 * ", $i, "]\n")
    };
}
macro_rules! store_k {
    ($i:literal) => {
        concat!("kmovq qword ptr [r13 + 2048 + 8 * ", $i, "], k", $i, "\n")
    };
}

/// Loads `before` into zmm0–31 and k0–7, runs `body`, and stores the registers into `after`,
/// in one `asm!` block. The processor has AVX-512 F and BW.
fn around(before: &Registers, after: &mut Registers, body: &mut dyn FnMut()) {
    assert!(std::is_x86_feature_detected!("avx512bw"));
    let mut call = Call { body };
    // SAFETY: AVX-512 F and BW are there (asserted); `before`/`after` are aligned 2112-byte
    // `Registers`, accessed inside; r12–r14 (callee-saved) keep the pointers; the stack is
    // aligned for the call; `clobber_abi` declares what the callee may change; the upper
    // state is cleared before compiled code resumes.
    unsafe {
        asm!(
            each_zmm!(load_zmm),
            each_k!(load_k),
            "call r14",
            each_zmm!(store_zmm),
            each_k!(store_k),
            "vzeroupper",
            in("r12") std::ptr::from_ref(before),
            in("r13") std::ptr::from_mut(after),
            in("r14") trampoline as extern "sysv64" fn(*mut Call<'_>),
            inout("rdi") &raw mut call => _,
            clobber_abi("sysv64"),
        );
    }
}

fn processor_runs_vaes512() -> bool {
    use std::is_x86_feature_detected as has;
    has!("aes")
        && has!("vaes")
        && has!("vpclmulqdq")
        && has!("avx2")
        && has!("avx512f")
        && has!("avx512bw")
        && has!("avx512vl")
}

/// The backends through the `Backend` value: the XMM one (the control: it touches no upper
/// half, so any change would be the harness's), then the two VAES ones.
const BACKENDS: [(&str, u32); 3] = [("aesni", 3), ("vaes256", 2), ("vaes512", 1)];

#[test]
fn dump_write_and_dump_read_leave_every_register_as_it_was() {
    if std::env::var_os(CHILD).is_none() {
        let name = "dump_write_and_dump_read_leave_every_register_as_it_was";
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(
                "GLIBC_TUNABLES",
                "glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,\
                 -AVX512CD,-ERMS,-FSRM,-AVX_Fast_Unaligned_Load",
            )
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        println!("{text}{}", String::from_utf8_lossy(&output.stderr));
        assert!(
            output.status.success(),
            "the test failed in the child process"
        );
        assert!(text.contains("1 passed"), "the child ran no test: {text}");
        return;
    }
    if !processor_runs_vaes512() {
        // The harness needs AVX-512 to see every register; CI's machines have it.
        assert!(
            std::env::var_os("CI").is_none()
                || std::env::var_os("DUMPCRYPT_ALLOW_NO_VAES512").is_some(),
            "no AVX-512 and VAES here: the register test would be skipped (set \
             DUMPCRYPT_ALLOW_NO_VAES512=1 to accept that)"
        );
        eprintln!("no AVX-512 and VAES on this processor: registers not checked");
        return;
    }
    let before = Registers::patterns(0xd0_c5_1a_7e);
    let len = PAGES as usize * 4096;
    let plain = pattern(len, 3);
    let mut expected = plain.as_slice().to_vec();
    oracle().encrypt_area(&mut expected, 512, (OFFSET as u128) / 512, |n: u128| {
        n.to_le_bytes()
    });
    let mut allocations = Vec::new();
    for (name, backend) in BACKENDS {
        boot(
            Some(Parameters::encrypt_both().dword("Backend", backend)),
            WINDOWS_11,
        );
        let mut writer = loaded(CRASHDUMP, PAGES);
        let mut reader = loaded(HIBERNATION, PAGES);
        allocations.push(ntoskrnl::counters().allocations);
        assert_eq!(writer.start_unchecked(), 0);
        assert_eq!(reader.start_unchecked(), 0);
        let _high = ntoskrnl::raise_to_high_level();

        let mut mdl = SimMdl::describe(
            plain.as_ptr(),
            len as u32,
            Shape::NonpagedPool,
            0,
            std::ptr::null(),
        );
        let mut after = Registers::patterns(0);
        let mut status = None;
        around(&before, &mut after, &mut || {
            let mut offset = OFFSET;
            status = Some(writer.write_unchecked(&mut offset, &mut mdl));
        });
        assert_eq!(status, Some(0), "{name}: Dump_Write");
        let mut written = vec![0u8; len];
        crashdmp_sim::memory::read_virtual(mdl.header().mapped_system_va as usize, &mut written)
            .unwrap();
        assert!(written == expected, "{name}: Dump_Write's ciphertext");
        assert_eq!(
            before.changed(&after),
            Vec::<String>::new(),
            "{name}: Dump_Write"
        );

        let mut target = pattern(len, 0);
        target.as_mut_slice().copy_from_slice(&expected);
        let mut mdl = SimMdl::describe(
            target.as_ptr(),
            len as u32,
            Shape::NonpagedPool,
            0,
            std::ptr::null(),
        );
        let mut after = Registers::patterns(0);
        let mut status = None;
        around(&before, &mut after, &mut || {
            let mut offset = OFFSET;
            status = reader.read_unchecked(&mut offset, &mut mdl);
        });
        assert_eq!(status, Some(0), "{name}: Dump_Read");
        assert!(
            target.as_slice() == plain.as_slice(),
            "{name}: Dump_Read's plaintext"
        );
        assert_eq!(
            before.changed(&after),
            Vec::<String>::new(),
            "{name}: Dump_Read"
        );
    }
    // Each VAES instance allocated its state save area at DriverEntry (one block per
    // instance, two instances), the XMM ones did not: the VAES backends really ran with a
    // state area of their own (crates/xts tests that an attached area is the one saved in).
    assert_eq!(allocations[1], allocations[0] + 2, "{allocations:?}");
    assert_eq!(allocations[2], allocations[0] + 2, "{allocations:?}");
}
