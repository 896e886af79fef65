//! What can be wrong with bytes read from disk. Another host, or corruption, wrote them, so
//! nothing here panics: every problem is a value naming the record, the offset and the fault.

use std::fmt;

use super::geometry::GeometryError;

pub use crate::rv::{
    SANLK_DBLOCK_CHECKSUM, SANLK_LEADER_CHECKSUM, SANLK_LEADER_LOCKSPACE, SANLK_LEADER_MAGIC,
    SANLK_LEADER_NUMHOSTS, SANLK_LEADER_READ, SANLK_LEADER_RESOURCE, SANLK_LEADER_VERSION,
};

/// A record read from disk that cannot be trusted, with where it was read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{record} at offset {offset}: {problem}")]
pub struct DecodeError {
    /// Which kind of record was expected.
    pub record: RecordKind,
    /// Byte offset of the record on its disk (or in the buffer, when the caller knows no more).
    pub offset: u64,
    /// What was wrong.
    pub problem: Problem,
}

impl DecodeError {
    /// Builds an error for `record` at `offset`.
    pub fn new(record: RecordKind, offset: u64, problem: Problem) -> Self {
        DecodeError {
            record,
            offset,
            problem,
        }
    }
}

/// The on-disk record kinds of ondisk.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A lockspace's per-host leader (delta lease).
    DeltaLeader,
    /// A resource's leader (paxos lease).
    PaxosLeader,
    /// A resource's request record (sector 1).
    RequestRecord,
    /// A host's paxos dblock.
    PaxosDblock,
    /// A host's mode block (byte 128 of its dblock sector).
    ModeBlock,
    /// The rindex header.
    RindexHeader,
    /// One rindex entry.
    RindexEntry,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::DeltaLeader => "delta lease leader",
            RecordKind::PaxosLeader => "paxos lease leader",
            RecordKind::RequestRecord => "request record",
            RecordKind::PaxosDblock => "paxos dblock",
            RecordKind::ModeBlock => "mode block",
            RecordKind::RindexHeader => "rindex header",
            RecordKind::RindexEntry => "rindex entry",
        })
    }
}

/// What was wrong with a record's bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The buffer is shorter than the record.
    #[error("{len} bytes given, the record needs {need}")]
    Short {
        /// Bytes given.
        len: usize,
        /// Bytes the record occupies.
        need: usize,
    },
    /// The magic number is not the record's.
    #[error("bad magic 0x{found:08x}, expected 0x{expected:08x}")]
    Magic {
        /// Magic read.
        found: u32,
        /// Magic of the expected record kind.
        expected: u32,
    },
    /// A paxos lease cleared by `init -z 1` or rindex delete: the lease does not exist.
    #[error("the lease was cleared (magic 0x11282016)")]
    Cleared,
    /// The major version is not the one sanlock 3.8.5 writes.
    #[error("bad version 0x{found:08x}, expected major 0x{expected_major:08x}")]
    Version {
        /// Version read.
        found: u32,
        /// Required major half.
        expected_major: u32,
    },
    /// The stored checksum does not match the bytes.
    #[error("checksum 0x{stored:08x} does not match the computed 0x{computed:08x}")]
    Checksum {
        /// Checksum stored in the record.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// The record's sector size / align flags describe no valid geometry.
    #[error("{0}")]
    Geometry(#[from] GeometryError),
    /// A field holds a value no sanlock host writes.
    #[error("{field} is {value}, {allowed}")]
    OutOfRange {
        /// The field's name, as in sanlock's structs.
        field: &'static str,
        /// The value read.
        value: u64,
        /// What would have been valid.
        allowed: String,
    },
}

impl Problem {
    /// The SANLK_* result sanlock reports for this problem in a leader (sanlock_rv.h), or for a
    /// dblock where the record is a dblock.
    pub fn sanlk_code(&self, record: RecordKind) -> i32 {
        match (self, record) {
            (Problem::Checksum { .. }, RecordKind::PaxosDblock) => SANLK_DBLOCK_CHECKSUM,
            (Problem::Magic { .. } | Problem::Cleared, _) => SANLK_LEADER_MAGIC,
            (Problem::Version { .. }, _) => SANLK_LEADER_VERSION,
            (Problem::Checksum { .. }, _) => SANLK_LEADER_CHECKSUM,
            (Problem::Short { .. }, _) => SANLK_LEADER_READ,
            (Problem::Geometry(_) | Problem::OutOfRange { .. }, _) => -libc_einval(),
        }
    }
}

const fn libc_einval() -> i32 {
    22
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_record_the_offset_and_the_fault() {
        let err = DecodeError::new(
            RecordKind::PaxosLeader,
            1_048_576,
            Problem::Magic {
                found: 0x1221_2010,
                expected: 0x0615_2010,
            },
        );
        assert_eq!(
            err.to_string(),
            "paxos lease leader at offset 1048576: bad magic 0x12212010, expected 0x06152010"
        );
    }

    #[test]
    fn problems_map_to_sanlock_result_codes() {
        // sanlock_rv.h values, as seen by read_leader (wire.md §5.1).
        let checksum = Problem::Checksum {
            stored: 1,
            computed: 2,
        };
        assert_eq!(checksum.sanlk_code(RecordKind::DeltaLeader), -229);
        assert_eq!(checksum.sanlk_code(RecordKind::PaxosDblock), -214);
        assert_eq!(Problem::Cleared.sanlk_code(RecordKind::PaxosLeader), -223);
    }
}
