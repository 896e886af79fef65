//! The request record (24 bytes, sector 1 of a resource): how another host asks the holder to
//! give a lease up (ondisk.md §5.3; sanlock 3.8.5 leader.h `struct request_record`).

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::error::{DecodeError, Problem, RecordKind};
use super::leader::VERSION_MAJOR_MASK;
use crate::ids::Lver;

/// REQ_DISK_MAGIC.
pub const REQ_DISK_MAGIC: u32 = 0x0829_2011;
/// Version written: major 1, minor 1.
pub const REQ_DISK_VERSION: u32 = 0x0001_0001;
/// Bytes of the record, padding included.
pub const REQUEST_RECORD_SIZE: usize = 24;

/// What the holder is asked to do (SANLK_REQ_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForceMode {
    /// No request (0).
    None,
    /// SANLK_REQ_FORCE (1): kill the holder with SIGKILL.
    Force,
    /// SANLK_REQ_GRACEFUL (2): run the killpath, or SIGTERM.
    Graceful,
}

impl ForceMode {
    /// The number on disk.
    pub const fn value(self) -> u32 {
        match self {
            ForceMode::None => 0,
            ForceMode::Force => 1,
            ForceMode::Graceful => 2,
        }
    }

    /// The mode for a number on disk; `None` for one no sanlock writes.
    pub fn from_value(value: u32) -> Option<Self> {
        match value {
            0 => Some(ForceMode::None),
            1 => Some(ForceMode::Force),
            2 => Some(ForceMode::Graceful),
            _ => None,
        }
    }
}

/// Every field of a request record as read (what `direct dump -f 1` prints).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // sanlock's fields, ondisk.md §5.3
pub struct RawRequest {
    pub magic: u32,
    pub version: u32,
    pub lver: u64,
    pub force_mode: u32,
}

impl RawRequest {
    /// Reads the first 24 bytes of `bytes`; padding is ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, Problem> {
        let (disk, _) = RequestDisk::read_from_prefix(bytes).map_err(|_| Problem::Short {
            len: bytes.len(),
            need: REQUEST_RECORD_SIZE,
        })?;
        Ok(RawRequest {
            magic: disk.magic.get(),
            version: disk.version.get(),
            lver: disk.lver.get(),
            force_mode: disk.force_mode.get(),
        })
    }
}

/// A request record with the right magic and version and a known force mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestRecord {
    /// The version stored (minor half informational).
    pub version: u32,
    /// The lease version requested; 0 = no request.
    pub lver: Lver,
    /// What the holder is asked to do.
    pub force_mode: ForceMode,
}

impl RequestRecord {
    /// What init writes: no request.
    pub const INIT: RequestRecord = RequestRecord {
        version: REQ_DISK_VERSION,
        lver: Lver(0),
        force_mode: ForceMode::None,
    };

    /// Decodes the record at the start of `bytes`, read at `offset`.
    pub fn decode(bytes: &[u8], offset: u64) -> Result<Self, DecodeError> {
        let fail = |problem| DecodeError::new(RecordKind::RequestRecord, offset, problem);
        let raw = RawRequest::parse(bytes).map_err(fail)?;
        if raw.magic != REQ_DISK_MAGIC {
            return Err(fail(Problem::Magic {
                found: raw.magic,
                expected: REQ_DISK_MAGIC,
            }));
        }
        if raw.version & VERSION_MAJOR_MASK != REQ_DISK_VERSION & VERSION_MAJOR_MASK {
            return Err(fail(Problem::Version {
                found: raw.version,
                expected_major: REQ_DISK_VERSION & VERSION_MAJOR_MASK,
            }));
        }
        let force_mode = ForceMode::from_value(raw.force_mode).ok_or_else(|| {
            fail(Problem::OutOfRange {
                field: "force_mode",
                value: u64::from(raw.force_mode),
                allowed: "0, 1 (FORCE) or 2 (GRACEFUL)".to_string(),
            })
        })?;
        Ok(RequestRecord {
            version: raw.version,
            lver: Lver(raw.lver),
            force_mode,
        })
    }

    /// The 24 bytes to write (padding zero).
    pub fn encode(&self) -> [u8; REQUEST_RECORD_SIZE] {
        let disk = RequestDisk {
            magic: REQ_DISK_MAGIC.into(),
            version: self.version.into(),
            lver: self.lver.0.into(),
            force_mode: self.force_mode.value().into(),
            pad: 0.into(),
        };
        let mut out = [0u8; REQUEST_RECORD_SIZE];
        out.copy_from_slice(disk.as_bytes());
        out
    }
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct RequestDisk {
    magic: U32,
    version: U32,
    lver: U64,
    force_mode: U32,
    pad: U32,
}

const _: () = assert!(std::mem::size_of::<RequestDisk>() == REQUEST_RECORD_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_record_bytes() {
        // ondisk.md §7.2: "1120 2908 0100 0100 0000 0000 0000 0000" then force_mode 0.
        let bytes = RequestRecord::INIT.encode();
        assert_eq!(
            bytes,
            [
                0x11, 0x20, 0x29, 0x08, 0x01, 0x00, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn fields_sit_at_their_offsets() {
        // leader.h: magic 0, version 4, lver 8, force_mode 16, padding 20.
        let rec = RequestRecord {
            version: 0x0001_0007,
            lver: Lver(0x0102_0304_0506_0708),
            force_mode: ForceMode::Graceful,
        };
        let bytes = rec.encode();
        assert_eq!(&bytes[4..8], &0x0001_0007u32.to_le_bytes());
        assert_eq!(&bytes[8..16], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&bytes[16..20], &2u32.to_le_bytes());
        assert_eq!(RequestRecord::decode(&bytes, 512).unwrap(), rec);
    }

    #[test]
    fn padding_is_ignored_and_unknown_force_modes_are_rejected() {
        // ondisk.md §9: a reader must ignore padding bytes.
        let mut bytes = RequestRecord::INIT.encode();
        bytes[20..24].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(
            RequestRecord::decode(&bytes, 0).unwrap(),
            RequestRecord::INIT
        );
        bytes[16] = 3;
        let err = RequestRecord::decode(&bytes, 512).unwrap_err();
        assert_eq!(err.record, RecordKind::RequestRecord);
        assert_eq!(err.offset, 512);
        assert!(err.to_string().contains("force_mode is 3"), "{err}");
    }
}
