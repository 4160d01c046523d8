//! `KeySource` = sealed, end to end through the simulated Windows: each load of the crash
//! dump stack draws a fresh key from the processor (the host's RDSEED/RDRAND), seals it to
//! the configured recipient and stores it in the ring of `Parameters\SealedKeys`; the dump is
//! encrypted under exactly that key, which the `age` crate unseals with the identity. Every
//! failure (no random source, a broken one, the registry) refuses the dump.

mod common;

use age::x25519::Identity;
use common::*;
use crashdmp_sim::machine::DumpFile;
use crashdmp_sim::mdl::{Shape, SimMdl};
use crashdmp_sim::memory::Pages;
use crashdmp_sim::ntoskrnl::{self, RandomSource, RegistryValue, Service, SEALED_KEYS_PATH};
use crashdmp_sim::stack::{CRASHDUMP, HIBERNATION};
use dumpcrypt_core::geometry::{Area, Geometry, TweakBase};
use dumpcrypt_core::sealed_keys::{Name, Stamp, RING_LEN};
use dumpcrypt_xts::DataUnit;

const MIB: usize = 1 << 20;
const REG_SZ: u32 = 1;
const STATUS_ACCESS_DENIED: i32 = 0xC000_0022_u32 as i32;
const STATUS_UNSUCCESSFUL: i32 = 0xC000_0001_u32 as i32;
/// One second in system-time ticks.
const SECOND: u64 = 10_000_000;

/// UTF-16LE with a terminating NUL, as REG_SZ holds it.
fn reg_sz(text: &str) -> Vec<u8> {
    text.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// Crash dumps encrypt under a sealed key; hibernation (which the parser does not let a sealed
/// key encrypt) refuses.
fn sealed_parameters(identity: &Identity) -> Parameters {
    Parameters::default()
        .dword("CrashDumpPolicy", 1)
        .dword("HibernationPolicy", 2)
        .dword("KeySource", 2)
        .set(
            "Recipient",
            REG_SZ,
            &reg_sz(&identity.to_public().to_string()),
        )
}

/// Boots with the sealed configuration; the simulated environment's own secrets (the fixed
/// test key) do not apply.
fn boot_sealed(identity: &Identity) {
    let mut environment = environment(Some(sealed_parameters(identity)), WINDOWS_11);
    environment.secrets.clear();
    environment.keep_freed_pool = true;
    ntoskrnl::boot(environment);
}

fn unseal(identity: &Identity, blob: &[u8]) -> [u8; 64] {
    let plain = age::decrypt(identity, blob).expect("age decrypts the sealed key");
    plain.try_into().expect("64 bytes")
}

fn stamps(blobs: &[(String, Vec<u8>)]) -> Vec<u64> {
    blobs
        .iter()
        .map(|(name, _)| Name::parse(name.as_bytes()).expect("a time-stamp name").0)
        .collect()
}

/// Whether any 16-byte piece of `key` is in `bytes`.
fn holds_key_material(bytes: &[u8], key: &[u8; 64]) -> bool {
    key.chunks(16)
        .any(|piece| bytes.windows(16).any(|window| window == piece))
}

fn all_registry_bytes() -> Vec<u8> {
    ntoskrnl::environment()
        .registry
        .values()
        .flatten()
        .flat_map(|value| value.data.clone())
        .collect()
}

#[test]
fn the_paths_agree() {
    assert_eq!(dumpcrypt::kernel::SEALED_KEYS_PATH, SEALED_KEYS_PATH);
    assert_eq!(
        format!("{}\\SealedKeys", dumpcrypt::kernel::PARAMETERS_PATH),
        SEALED_KEYS_PATH
    );
}

#[test]
fn a_crash_dump_decrypts_under_the_key_unsealed_from_the_registry() {
    let identity = Identity::generate();
    boot_sealed(&identity);
    let mut machine = machine(4 * MIB, 16, 21);
    let mut filter = loaded(CRASHDUMP, 16);

    let blobs = ntoskrnl::sealed_keys();
    assert_eq!(blobs.len(), 1, "one sealed key per load");
    let (name, blob) = &blobs[0];
    assert_eq!(
        name, "20261201T234940.1234567Z",
        "named after the load's UTC time"
    );
    assert_eq!(blob.len(), dumpcrypt_seal::SEALED_LEN);
    assert!(blob.starts_with(b"age-encryption.org/v1\n-> X25519 "));
    let key = unseal(&identity, blob);
    assert_ne!(key[..32], key[32..]);

    // Written, then flushed, then closed, all within DriverEntry.
    let counters = ntoskrnl::counters();
    let order: Vec<Service> = counters.calls.iter().map(|(service, _)| *service).collect();
    let set = order
        .iter()
        .position(|s| *s == Service::ZwSetValueKey)
        .unwrap();
    let flush = order
        .iter()
        .position(|s| *s == Service::ZwFlushKey)
        .unwrap();
    assert!(set < flush, "flushed after the write");
    assert_eq!(counters.flushes, 1);
    assert_eq!(counters.open_keys, 0, "the key's handle closed");
    assert!(
        counters.random_steps >= 16,
        "the key and the randomness were drawn"
    );

    let report = machine.dump(&mut filter, DumpFile::Crash).unwrap();
    assert!(report.written);
    assert_eq!(
        report.bytes_changed, report.bytes,
        "every sector ciphertext"
    );
    filter.unload().unwrap();
    let whole = Area {
        start: 0,
        end: u64::MAX,
    };
    let partition = machine.config().partition_offset;
    let geometry = Geometry::new(
        DataUnit::from_bytes(512).unwrap(),
        whole,
        TweakBase::Partition,
        partition,
    );
    let checked = check_keyed_image(&mut machine, DumpFile::Crash, &geometry, &[(whole, key)]);
    assert_eq!(checked, machine.crash_file.len);

    // The key itself is nowhere: not in the registry, not in any pool block freed.
    assert!(!holds_key_material(&all_registry_bytes(), &key));
    let counters = ntoskrnl::counters();
    assert!(!counters.freed_pool.is_empty());
    for block in &counters.freed_pool {
        assert!(!holds_key_material(block, &key), "key bytes in freed pool");
    }
    assert_eq!(counters.outstanding, 0);
    assert!(counters.violations.is_empty(), "{:?}", counters.violations);
}

#[test]
fn every_load_seals_a_new_key() {
    let identity = Identity::generate();
    boot_sealed(&identity);
    let mut keys = Vec::new();
    for load in 0..3 {
        ntoskrnl::set_system_time(ntoskrnl::DEFAULT_SYSTEM_TIME + load * SECOND);
        loaded(CRASHDUMP, 4).unload().unwrap();
        let blobs = ntoskrnl::sealed_keys();
        keys.push(unseal(&identity, &blobs.last().unwrap().1));
    }
    assert_ne!(keys[0], keys[1]);
    assert_ne!(keys[1], keys[2]);
    assert_ne!(keys[0], keys[2]);
}

#[test]
fn the_ring_keeps_the_sixteen_newest_in_load_order_whatever_the_clock_does() {
    let identity = Identity::generate();
    boot_sealed(&identity);
    // Values the ring must never touch: a note, a near-miss of the name format, a long name.
    let others = [
        ("Notes", REG_SZ, reg_sz("kept by the administrator")),
        (
            "20261201t234940.1234567z",
            REG_SZ,
            reg_sz("lowercase: not a stamp"),
        ),
        ("20261201T234940.1234567Z.old", 3, vec![1, 2, 3]),
    ];
    // Two stamps of an earlier life of the machine, in an order that is not theirs.
    let start = ntoskrnl::DEFAULT_SYSTEM_TIME;
    let older = [start - 5 * SECOND, start - 9 * SECOND];
    let mut values: Vec<RegistryValue> = others
        .iter()
        .map(|(name, value_type, data)| RegistryValue {
            name: name.to_string(),
            value_type: *value_type,
            data: data.clone(),
        })
        .collect();
    for stamp in older {
        values.push(RegistryValue {
            name: Stamp(stamp).name().unwrap().as_str().into(),
            value_type: 3,
            data: vec![0xAB; 8],
        });
    }
    let mut environment = ntoskrnl::environment();
    environment.registry.insert(SEALED_KEYS_PATH.into(), values);
    ntoskrnl::boot(environment);

    // 20 reloads: the clock runs for 8, stands still for 6, goes back for 6.
    let mut now = start;
    let mut written: Vec<u64> = Vec::new();
    for load in 0..20 {
        now = match load {
            0..8 => now + SECOND,
            8..14 => now,
            _ => now - 60 * SECOND,
        };
        ntoskrnl::set_system_time(now);
        loaded(CRASHDUMP, 4).unload().unwrap();
        let blobs = ntoskrnl::sealed_keys();
        let stamped: Vec<(String, Vec<u8>)> = blobs
            .iter()
            .filter(|(name, _)| Name::parse(name.as_bytes()).is_some())
            .cloned()
            .collect();
        let stamps = stamps(&stamped);
        let new = *stamps.last().unwrap();
        if let Some(&previous) = written.last() {
            assert!(new > previous, "load {load}: names in load order");
            if load >= 8 {
                assert_eq!(
                    new,
                    previous + 1,
                    "load {load}: the clock stood still or went back"
                );
            } else {
                assert_eq!(new, now);
            }
        }
        written.push(new);
        let mut expected: Vec<u64> = older
            .iter()
            .rev()
            .copied()
            .chain(written.iter().copied())
            .collect();
        let drop = expected.len().saturating_sub(RING_LEN);
        expected.drain(..drop);
        assert_eq!(stamps, expected, "load {load}: the newest {RING_LEN}");
        // The newest blob unseals; the names sort as the loads happened.
        unseal(&identity, &stamped.last().unwrap().1);
        let values = ntoskrnl::registry_key(SEALED_KEYS_PATH).unwrap();
        for (name, value_type, data) in &others {
            let value = values
                .iter()
                .find(|value| value.name == *name)
                .expect("kept");
            assert_eq!((value.value_type, &value.data), (*value_type, data));
        }
    }
    assert_eq!(written.len(), 20);
    let counters = ntoskrnl::counters();
    assert_eq!(counters.flushes, 20);
    assert_eq!(counters.open_keys, 0);
}

#[test]
fn the_key_is_created_when_absent_and_only_under_parameters() {
    let identity = Identity::generate();
    boot_sealed(&identity);
    assert!(ntoskrnl::registry_key(SEALED_KEYS_PATH).is_none());
    loaded(CRASHDUMP, 4).unload().unwrap();
    assert_eq!(ntoskrnl::registry_key(SEALED_KEYS_PATH).unwrap().len(), 1);
}

/// A crash-stack load whose sealed key cannot be had: it loads, refuses the dump at
/// Dump_Start, and bug checks a write anyway (no plaintext).
fn assert_refuses() {
    let mut filter = loaded(CRASHDUMP, 16);
    assert_eq!(filter.start().unwrap(), STATUS_ACCESS_DENIED);
    let source = Pages::new(4096);
    let mut mdl = SimMdl::describe(
        source.as_ptr(),
        4096,
        Shape::NonpagedPool,
        0,
        source.as_ptr(),
    );
    let mut offset = 0x8000;
    let stop = filter.write(0, &mut offset, &mut mdl).unwrap_err();
    let bug_check = stop.bug_check().expect("a bug check");
    assert_eq!(bug_check.code, dumpcrypt_core::fault::BUGCHECK_CODE);
    assert_eq!(bug_check.parameters[0], 0x06, "WriteRefused");
    filter.unload().unwrap();
    let counters = ntoskrnl::counters();
    assert_eq!(counters.outstanding, 0);
    assert_eq!(counters.open_keys, 0);
}

#[test]
fn each_registry_failure_refuses_the_dump() {
    for service in [
        Service::ZwCreateKey,
        Service::ZwEnumerateValueKey,
        Service::ZwSetValueKey,
        Service::ZwFlushKey,
    ] {
        let identity = Identity::generate();
        boot_sealed(&identity);
        ntoskrnl::set_failing_service(Some((service, STATUS_UNSUCCESSFUL)));
        assert_refuses();
        let stored = ntoskrnl::sealed_keys();
        if service == Service::ZwFlushKey {
            // The value was written but not flushed: it may or may not survive a crash, and
            // the instance refuses; a sealed key that is never used leaks nothing.
            assert_eq!(stored.len(), 1, "{service:?}");
        } else {
            assert!(stored.is_empty(), "{service:?}: nothing stored");
        }
    }
}

#[test]
fn a_failed_delete_does_not_fail_the_load() {
    let identity = Identity::generate();
    boot_sealed(&identity);
    for load in 0..RING_LEN as u64 {
        ntoskrnl::set_system_time(ntoskrnl::DEFAULT_SYSTEM_TIME + load * SECOND);
        loaded(CRASHDUMP, 4).unload().unwrap();
    }
    assert_eq!(ntoskrnl::sealed_keys().len(), RING_LEN);
    ntoskrnl::set_failing_service(Some((Service::ZwDeleteValueKey, STATUS_UNSUCCESSFUL)));
    ntoskrnl::set_system_time(ntoskrnl::DEFAULT_SYSTEM_TIME + 100 * SECOND);
    let mut machine = machine(MIB, 16, 3);
    let mut filter = loaded(CRASHDUMP, 16);
    let report = machine.dump(&mut filter, DumpFile::Crash).unwrap();
    assert!(report.written, "the dump is encrypted");
    filter.unload().unwrap();
    let blobs = ntoskrnl::sealed_keys();
    assert_eq!(blobs.len(), RING_LEN + 1, "the oldest could not be deleted");
    // The next load, with deletes working again, brings the ring back to 16.
    ntoskrnl::set_failing_service(None);
    ntoskrnl::set_system_time(ntoskrnl::DEFAULT_SYSTEM_TIME + 101 * SECOND);
    loaded(CRASHDUMP, 4).unload().unwrap();
    let after = ntoskrnl::sealed_keys();
    assert_eq!(after.len(), RING_LEN);
    assert_eq!(after[0].0, blobs[2].0, "the two oldest went");
}

#[test]
fn no_random_source_or_a_broken_one_refuses_the_dump() {
    for source in [
        RandomSource::Absent,
        RandomSource::Stuck(u64::MAX),
        RandomSource::Stuck(0),
        RandomSource::Stuck(0x0123_4567_89AB_CDEF),
        RandomSource::Dry,
    ] {
        let identity = Identity::generate();
        boot_sealed(&identity);
        ntoskrnl::set_random_source(source);
        assert_refuses();
        assert!(
            ntoskrnl::registry_key(SEALED_KEYS_PATH).is_none(),
            "{source:?}: nothing written"
        );
    }
}

#[test]
fn rdrand_serves_when_rdseed_is_absent() {
    let identity = Identity::generate();
    boot_sealed(&identity);
    ntoskrnl::set_random_source(RandomSource::RdrandOnly);
    let mut machine = machine(MIB, 16, 5);
    let mut filter = loaded(CRASHDUMP, 16);
    let report = machine.dump(&mut filter, DumpFile::Crash).unwrap();
    assert!(report.written);
    filter.unload().unwrap();
    let blobs = ntoskrnl::sealed_keys();
    let key = unseal(&identity, &blobs[0].1);
    let whole = Area {
        start: 0,
        end: u64::MAX,
    };
    let partition = machine.config().partition_offset;
    let geometry = Geometry::new(
        DataUnit::from_bytes(512).unwrap(),
        whole,
        TweakBase::Partition,
        partition,
    );
    check_keyed_image(&mut machine, DumpFile::Crash, &geometry, &[(whole, key)]);
}

#[test]
fn a_hibernation_copy_draws_and_writes_nothing() {
    for policy in [2, 0] {
        let identity = Identity::generate();
        // Passthrough leaves the crash dump key in hiberfil.sys: the parser wants it said.
        let parameters = sealed_parameters(&identity)
            .dword("HibernationPolicy", policy)
            .dword("AllowPlaintextHibernation", 1);
        let mut environment = environment(Some(parameters), WINDOWS_11);
        environment.secrets.clear();
        ntoskrnl::boot(environment);
        let mut filter = loaded(HIBERNATION, 16);
        let status = filter.start().unwrap();
        assert_eq!(status, if policy == 2 { STATUS_ACCESS_DENIED } else { 0 });
        filter.finish().unwrap();
        filter.unload().unwrap();
        let counters = ntoskrnl::counters();
        assert_eq!(counters.random_steps, 0, "policy {policy}: nothing drawn");
        assert!(
            !counters.calls.iter().any(|(service, _)| matches!(
                service,
                Service::ZwCreateKey | Service::ZwSetValueKey | Service::ZwFlushKey
            )),
            "policy {policy}: no registry write"
        );
        assert!(ntoskrnl::registry_key(SEALED_KEYS_PATH).is_none());
    }
}
