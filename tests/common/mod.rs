//! What the integration tests share: a simulated machine with dumpcrypt's configuration.
#![allow(
    dead_code,
    reason = "shared by every test binary; each uses a different part of it"
)]

use crashdmp_sim::machine::{Machine, MachineConfig};
use crashdmp_sim::ntoskrnl::{self, Environment, RegistryValue};
use crashdmp_sim::stack::{self, DiskInfo, Load, LoadedFilter, SimError};
use dumpcrypt_core::geometry::{Area, Geometry, TweakBase};
use dumpcrypt_xts::DataUnit;

pub const REG_BINARY: u32 = 3;
pub const REG_DWORD: u32 = 4;
pub const REG_QWORD: u32 = 11;

pub fn key() -> [u8; 64] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(7))
}

/// The Parameters values of a configuration, as the registry holds them.
#[derive(Debug, Clone, Default)]
pub struct Parameters(pub Vec<RegistryValue>);

impl Parameters {
    /// Sets a value, replacing one of the same name (a key holds each name once).
    pub fn set(mut self, name: &str, value_type: u32, data: &[u8]) -> Self {
        self.0
            .retain(|value| !value.name.eq_ignore_ascii_case(name));
        self.0.push(RegistryValue {
            name: name.into(),
            value_type,
            data: data.to_vec(),
        });
        self
    }
    pub fn dword(self, name: &str, value: u32) -> Self {
        self.set(name, REG_DWORD, &value.to_le_bytes())
    }
    pub fn qword(self, name: &str, value: u64) -> Self {
        self.set(name, REG_QWORD, &value.to_le_bytes())
    }
    pub fn binary(self, name: &str, data: &[u8]) -> Self {
        self.set(name, REG_BINARY, data)
    }
    /// Both stacks encrypt with [`key`].
    pub fn encrypt_both() -> Self {
        Self::default()
            .dword("CrashDumpPolicy", 1)
            .dword("HibernationPolicy", 1)
            .binary("Key", &key())
    }
}

/// Boots the simulated kernel with these Parameters (None: no Parameters key at all).
pub fn boot(parameters: Option<Parameters>, os_version: (u32, u32, u32)) {
    ntoskrnl::boot(environment(parameters, os_version));
}

/// What [`boot`] boots: for tests that change more of the machine before booting it.
pub fn environment(parameters: Option<Parameters>, os_version: (u32, u32, u32)) -> Environment {
    let mut environment = Environment {
        os_version,
        ..Environment::default()
    };
    if let Some(parameters) = parameters {
        environment
            .registry
            .insert(dumpcrypt::kernel::PARAMETERS_PATH.into(), parameters.0);
    }
    let key = key();
    environment.secrets = vec![key[..32].to_vec(), key[32..].to_vec()];
    environment
}

/// The independent XTS-AES-256 (the `xts-mode` crate) with [`key`].
pub fn oracle() -> xts_mode::Xts128<aes::Aes256> {
    use aes::cipher::KeyInit;
    let key = key();
    xts_mode::Xts128::new(
        aes::Aes256::new_from_slice(&key[..32]).unwrap(),
        aes::Aes256::new_from_slice(&key[32..]).unwrap(),
    )
}

/// Pages of pattern bytes (different in every 512-byte unit).
pub fn pattern(len: usize, seed: u8) -> crashdmp_sim::memory::Pages {
    let mut pages = crashdmp_sim::memory::Pages::new(len);
    pages
        .as_mut_slice()
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i * 7 % 251) as u8 ^ (i >> 9) as u8 ^ seed);
    pages
}

pub const WINDOWS_11: (u32, u32, u32) = (10, 0, 26100);
pub const WINDOWS_7: (u32, u32, u32) = (6, 1, 7601);

/// The dump device as the booted environment has it (its sector size: 512 unless a test
/// set another).
pub fn disk() -> DiskInfo {
    DiskInfo {
        bytes_per_sector: ntoskrnl::environment().bytes_per_sector,
        disk_size: 1 << 34,
    }
}

pub fn load(dump_type: u32, max_pages_per_write: u32) -> Result<Load, SimError> {
    stack::load(
        dumpcrypt::DriverEntry,
        dump_type,
        max_pages_per_write,
        disk(),
    )
}

pub fn loaded(dump_type: u32, max_pages_per_write: u32) -> LoadedFilter {
    match load(dump_type, max_pages_per_write).expect("DriverEntry") {
        Load::Loaded(filter) => filter,
        Load::Failed { status, .. } => panic!("DriverEntry failed with {status:#x}"),
    }
}

pub fn machine(memory: usize, max_pages_per_write: u32, seed: u64) -> Machine {
    Machine::new(
        MachineConfig {
            memory,
            max_pages_per_write,
            seed,
            ..MachineConfig::default()
        },
        None,
        None,
    )
    .expect("disk images")
}

/// Checks a dump file on the image against the reference with an independent XTS-AES-256
/// (the `xts-mode` crate): inside the area the image decrypts to the reference under
/// [`key`], outside it equals the reference. Returns the bytes checked inside the area.
///
/// `tweak_offset` is the origin of the tweak positions: 0 for partition-relative tweaks, the
/// partition's start for disk-absolute ones.
pub fn check_image(
    machine: &mut Machine,
    which: crashdmp_sim::machine::DumpFile,
    area: std::ops::Range<u64>,
    tweak_offset: u64,
    data_unit: usize,
) -> u64 {
    let partition = machine.config().partition_offset;
    let tweak_base = if tweak_offset == 0 {
        TweakBase::Partition
    } else {
        assert_eq!(
            tweak_offset, partition,
            "disk-absolute tweaks count from the partition"
        );
        TweakBase::Disk
    };
    let area = Area {
        start: area.start,
        end: area.end,
    };
    let data_unit = DataUnit::from_bytes(data_unit as u32).expect("512 or 4096");
    let geometry = Geometry::new(data_unit, area, tweak_base, partition);
    check_keyed_image(machine, which, &geometry, &[(area, key())])
}

/// [`check_image`] with several areas, each under its own key (a provider's ranges, sorted
/// and disjoint), in the placement of `geometry` (whose own area is not used). Bytes outside
/// every area must equal the reference. Returns the bytes checked inside the areas.
pub fn check_keyed_image(
    machine: &mut Machine,
    which: crashdmp_sim::machine::DumpFile,
    geometry: &Geometry,
    ranges: &[(Area, [u8; 64])],
) -> u64 {
    use aes::cipher::KeyInit;
    let partition = machine.config().partition_offset;
    let extents = machine.file(which).extents.clone();
    let mut inside_bytes = 0;
    for extent in extents {
        let len = extent.len as usize;
        let disk_offset = partition + extent.partition_offset;
        let mut image = vec![0u8; len];
        let mut reference = vec![0u8; len];
        machine.read_disk(disk_offset, &mut image).unwrap();
        machine.read_reference(disk_offset, &mut reference).unwrap();
        let mut plain = vec![true; len];
        for (area, key) in ranges {
            let placed = Geometry::new(
                geometry.data_unit(),
                *area,
                geometry.tweak_base(),
                geometry.partition_start(),
            );
            let Some(span) = placed.encrypted_span_on_disk(disk_offset, len) else {
                continue;
            };
            let (start, end) = (span.start, span.end);
            assert_ne!(
                image[start..end],
                reference[start..end],
                "plaintext inside the area {area:?} at {disk_offset:#x}"
            );
            let oracle = xts_mode::Xts128::<aes::Aes256>::new(
                aes::Aes256::new_from_slice(&key[..32]).unwrap(),
                aes::Aes256::new_from_slice(&key[32..]).unwrap(),
            );
            let mut decrypted = image[start..end].to_vec();
            oracle.decrypt_area(
                &mut decrypted,
                geometry.data_unit().bytes(),
                span.first_unit.into(),
                |n: u128| n.to_le_bytes(),
            );
            assert_eq!(
                decrypted,
                reference[start..end],
                "decrypted area {area:?} at {disk_offset:#x}"
            );
            plain[start..end].iter_mut().for_each(|byte| *byte = false);
            inside_bytes += (end - start) as u64;
        }
        let outside = (0..len).filter(|&i| plain[i]);
        for i in outside {
            assert_eq!(
                image[i],
                reference[i],
                "outside the areas at {:#x}",
                disk_offset + i as u64
            );
        }
    }
    inside_bytes
}
