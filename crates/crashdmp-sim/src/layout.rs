//! The simulator's own reading of ntdddump.h and wdm.h (x64): byte offsets, not Rust structs.
//!
//! The driver mirrors these structures as `repr(C)` types; the simulator deliberately does
//! not share them. It reads and writes fields at the offsets below, which are checked here
//! against sizes derived independently (field sizes and the C alignment rules), so that a
//! mistake in one reading shows up as a disagreement with the other.

/// `FILTER_EXTENSION`.
pub mod extension {
    pub const DUMP_TYPE: usize = 0x00;
    pub const DEVICE_OBJECT: usize = 0x08;
    pub const GEOMETRY: usize = 0x10;
    pub const GEOMETRY_BYTES_PER_SECTOR: usize = GEOMETRY + 0x14;
    pub const DISK_SIZE: usize = 0x28;
    pub const PARTITION_INFO: usize = 0x30;
    /// DISK_PARTITION_INFO.PartitionStyle (after SizeOfPartitionInfo).
    pub const PARTITION_STYLE: usize = PARTITION_INFO + 4;
    /// DISK_PARTITION_INFO's union: Mbr { Signature, CheckSum } or Gpt { DiskId }.
    pub const PARTITION_UNION: usize = PARTITION_INFO + 8;
    pub const DUMP_DATA: usize = 0x48;
    pub const SIZE_FIELD: usize = 0x50;
    pub const FLAGS: usize = 0x54;
    /// `sizeof(FILTER_EXTENSION)` from Windows 8 on.
    pub const SIZE: usize = 0x58;
    /// `DUMP_FILTER_EXTENSION_SIZE_V1`: before Windows 8.
    pub const SIZE_V1: usize = 0x50;
}

/// `FILTER_INITIALIZATION_DATA`.
pub mod init {
    pub const MAJOR_VERSION: usize = 0x00;
    pub const MINOR_VERSION: usize = 0x04;
    pub const DUMP_START: usize = 0x08;
    pub const DUMP_WRITE: usize = 0x10;
    pub const DUMP_FINISH: usize = 0x18;
    pub const DUMP_UNLOAD: usize = 0x20;
    pub const DUMP_DATA: usize = 0x28;
    pub const MAX_PAGES_PER_WRITE: usize = 0x30;
    pub const FLAGS: usize = 0x34;
    pub const DUMP_READ: usize = 0x38;
    pub const SIZE: usize = 0x40;
    pub const SIZE_V1: usize = 0x38;

    pub const DUMP_FILTER_MAJOR_VERSION_1: u32 = 1;
    pub const DUMP_FILTER_MAJOR_VERSION: u32 = 2;
    pub const DUMP_FILTER_CRITICAL: u32 = 0x1;
    pub const DUMP_FILTER_FLAG_SYSTEM_SUPPORT_READ: u32 = 0x1;
}

/// `MDL` and its trailing PFN array.
pub mod mdl {
    pub const NEXT: usize = 0x00;
    pub const SIZE: usize = 0x08;
    pub const MDL_FLAGS: usize = 0x0A;
    pub const PROCESS: usize = 0x10;
    pub const MAPPED_SYSTEM_VA: usize = 0x18;
    pub const START_VA: usize = 0x20;
    pub const BYTE_COUNT: usize = 0x28;
    pub const BYTE_OFFSET: usize = 0x2C;
    /// `sizeof(MDL)`: the PFN array starts here.
    pub const HEADER: usize = 0x30;
    pub const PFN_SIZE: usize = 8;

    pub const MAPPED_TO_SYSTEM_VA: u16 = 0x0001;
    pub const PAGES_LOCKED: u16 = 0x0002;
    pub const SOURCE_IS_NONPAGED_POOL: u16 = 0x0004;
    pub const PARTIAL: u16 = 0x0010;
}

pub const PAGE_SIZE: usize = 4096;
pub const PAGE_SHIFT: u32 = 12;

pub const DUMP_TYPE_UNDEFINED: u32 = 0;
pub const DUMP_TYPE_CRASHDUMP: u32 = 1;
pub const DUMP_TYPE_HIBERNATION: u32 = 2;

// The offsets follow from the field sizes and C alignment: check the arithmetic.
const _: () = {
    // DumpType (4) is padded to the pointer that follows.
    assert!(extension::DEVICE_OBJECT == 8);
    // DISK_GEOMETRY: i64 + 4 × u32 = 24 bytes.
    assert!(extension::DISK_SIZE == extension::GEOMETRY + 8 + 4 * 4);
    assert!(extension::PARTITION_INFO == extension::DISK_SIZE + 8);
    // DISK_PARTITION_INFO: two u32 and a 16-byte union (a GUID), alignment 4.
    assert!(extension::DUMP_DATA == extension::PARTITION_INFO + 4 + 4 + 16);
    assert!(extension::SIZE_FIELD == extension::DUMP_DATA + 8);
    assert!(extension::SIZE == extension::FLAGS + 4);
    assert!(extension::SIZE_V1 == extension::SIZE_FIELD);

    assert!(init::DUMP_START == 2 * 4);
    assert!(init::DUMP_DATA == init::DUMP_START + 4 * 8);
    assert!(init::MAX_PAGES_PER_WRITE == init::DUMP_DATA + 8);
    assert!(init::DUMP_READ == init::FLAGS + 4);
    assert!(init::SIZE == init::DUMP_READ + 8);
    assert!(init::SIZE_V1 == init::DUMP_READ);

    // Next (8), Size (2), MdlFlags (2), AllocationProcessorNumber (2), Reserved (2).
    assert!(mdl::PROCESS == 8 + 2 + 2 + 2 + 2);
    assert!(mdl::BYTE_COUNT == mdl::START_VA + 8);
    assert!(mdl::HEADER == mdl::BYTE_OFFSET + 4);
    assert!(1 << PAGE_SHIFT == PAGE_SIZE);
};

/// A little-endian field of a laid-out structure.
pub trait Field: Copy {
    const SIZE: usize;
    fn read(bytes: &[u8]) -> Self;
    fn write(self, bytes: &mut [u8]);
}

macro_rules! field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn read(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes[..Self::SIZE].try_into().expect("field width"))
            }
            fn write(self, bytes: &mut [u8]) {
                bytes[..Self::SIZE].copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
field!(u8, u16, i16, u32, i32, u64, i64);

/// Reads the field at `offset` of a structure held in `bytes` (panics if out of bounds).
pub fn get<T: Field>(bytes: &[u8], offset: usize) -> T {
    T::read(&bytes[offset..offset + T::SIZE])
}

/// Writes the field at `offset` of a structure held in `bytes` (panics if out of bounds).
pub fn put<T: Field>(bytes: &mut [u8], offset: usize, value: T) {
    value.write(&mut bytes[offset..offset + T::SIZE]);
}
