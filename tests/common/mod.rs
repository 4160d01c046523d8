//! What the integration tests share: a simulated machine with dumpcrypt's configuration.
#![allow(dead_code)]

use crashdmp_sim::machine::{Machine, MachineConfig};
use crashdmp_sim::ntoskrnl::{self, Environment, RegistryValue};
use crashdmp_sim::stack::{self, DiskInfo, Load, LoadedFilter, SimError};

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
    pub fn dword(mut self, name: &str, value: u32) -> Self {
        self.0.push(RegistryValue {
            name: name.into(),
            value_type: REG_DWORD,
            data: value.to_le_bytes().to_vec(),
        });
        self
    }
    pub fn qword(mut self, name: &str, value: u64) -> Self {
        self.0.push(RegistryValue {
            name: name.into(),
            value_type: REG_QWORD,
            data: value.to_le_bytes().to_vec(),
        });
        self
    }
    pub fn binary(mut self, name: &str, data: &[u8]) -> Self {
        self.0.push(RegistryValue {
            name: name.into(),
            value_type: REG_BINARY,
            data: data.to_vec(),
        });
        self
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
    ntoskrnl::boot(environment);
}

pub const WINDOWS_11: (u32, u32, u32) = (10, 0, 26100);
pub const WINDOWS_7: (u32, u32, u32) = (6, 1, 7601);

pub fn disk() -> DiskInfo {
    DiskInfo {
        bytes_per_sector: 512,
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
