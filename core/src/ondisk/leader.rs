//! The leader record (200 bytes): a delta lease's per-host record in a lockspace, and a paxos
//! lease's first sector (ondisk.md §3; sanlock 3.8.5 leader.h, ondisk.c).
//!
//! Two views of the same bytes:
//! - [`RawLeader`]: every field as read, trusted for nothing. `direct dump` and `read_leader`
//!   print it, and sanlock's own probes look only at its magic and sizes.
//! - [`LeaderRecord`]: a record that passed [`RawLeader::verify`] (magic, major version,
//!   checksum, geometry, ranges). The lease algorithms work only with this one.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::checksum::sanlock_crc32c;
use super::error::{DecodeError, Problem, RecordKind};
use super::geometry::{Geometry, SectorSize};
use super::name::{Name, NAME_LEN};
use crate::ids::{Generation, HostId, Lver};

/// Bytes of a leader record.
pub const LEADER_RECORD_SIZE: usize = 200;
/// A leader must fit in this many bytes; the delta bitmap starts right after.
pub const LEADER_RECORD_MAX: usize = 256;
/// Bytes covered by the checksum: everything before `checksum`.
pub const LEADER_CHECKSUM_LEN: usize = 168;
/// Bytes two disks' leaders must share to count as the same (everything before `timestamp`).
pub const LEADER_COMPARE_LEN: usize = 152;

/// DELTA_DISK_MAGIC.
pub const DELTA_DISK_MAGIC: u32 = 0x1221_2010;
/// PAXOS_DISK_MAGIC.
pub const PAXOS_DISK_MAGIC: u32 = 0x0615_2010;
/// PAXOS_DISK_CLEAR: a paxos lease erased by init with the clear flag.
pub const PAXOS_DISK_CLEAR: u32 = 0x1128_2016;
/// Version a delta leader is written with: major 3, minor 4 (align flags exist).
pub const DELTA_DISK_VERSION: u32 = 0x0003_0004;
/// Version a paxos leader is written with: major 6, minor 4.
pub const PAXOS_DISK_VERSION: u32 = 0x0006_0004;
/// Readers compare only this half of a version.
pub const VERSION_MAJOR_MASK: u32 = 0xFFFF_0000;
/// `leader.flags`: held exclusively as a step of a shared acquire.
pub const LFL_SHORT_HOLD: u32 = 0x1;
/// io_timeout written into delta leases when the caller gives none (DEFAULT_IO_TIMEOUT).
pub const DEFAULT_IO_TIMEOUT_S: u16 = 10;

/// Which lease a leader belongs to; decides the magic and version a reader demands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaderKind {
    /// A lockspace's delta lease.
    Delta,
    /// A resource's paxos lease.
    Paxos,
}

impl LeaderKind {
    /// The magic a live leader of this kind carries.
    pub const fn magic(self) -> u32 {
        match self {
            LeaderKind::Delta => DELTA_DISK_MAGIC,
            LeaderKind::Paxos => PAXOS_DISK_MAGIC,
        }
    }

    /// The version this kind is written with.
    pub const fn version(self) -> u32 {
        match self {
            LeaderKind::Delta => DELTA_DISK_VERSION,
            LeaderKind::Paxos => PAXOS_DISK_VERSION,
        }
    }

    const fn record(self) -> RecordKind {
        match self {
            LeaderKind::Delta => RecordKind::DeltaLeader,
            LeaderKind::Paxos => RecordKind::PaxosLeader,
        }
    }
}

/// The three magics a trusted leader may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaderMagic {
    /// A delta lease.
    Delta,
    /// A live paxos lease.
    Paxos,
    /// A cleared paxos lease; it reads as "does not exist".
    PaxosClear,
}

impl LeaderMagic {
    /// The number on disk.
    pub const fn value(self) -> u32 {
        match self {
            LeaderMagic::Delta => DELTA_DISK_MAGIC,
            LeaderMagic::Paxos => PAXOS_DISK_MAGIC,
            LeaderMagic::PaxosClear => PAXOS_DISK_CLEAR,
        }
    }
}

/// The host event a delta lease carries in its write_* fields (ondisk.md §4.4; sanlock's
/// `sanlk_host_event`). The target host is not stored here; the bitmap bit names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HostEvent {
    /// `write_id`: the target host's generation, or 0.
    pub generation: u64,
    /// `write_generation`: the event; non-zero means an event is present.
    pub event: u64,
    /// `write_timestamp`: the event's data.
    pub data: u64,
}

/// Every field of a leader record as it is on disk, checked for nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the fields are sanlock's, documented in ondisk.md §3
pub struct RawLeader {
    pub magic: u32,
    pub version: u32,
    pub flags: u32,
    pub sector_size: u32,
    pub num_hosts: u64,
    pub max_hosts: u64,
    pub owner_id: u64,
    pub owner_generation: u64,
    pub lver: u64,
    pub space_name: Name,
    pub resource_name: Name,
    pub timestamp: u64,
    pub unused1: u64,
    pub checksum: u32,
    pub unused2: u16,
    pub io_timeout: u16,
    pub write_id: u64,
    pub write_generation: u64,
    pub write_timestamp: u64,
}

impl RawLeader {
    /// Reads the first 200 bytes of `bytes`; fails only when there are fewer.
    pub fn parse(bytes: &[u8]) -> Result<Self, Problem> {
        // A view of the bytes (the fields are unaligned little-endian): nothing copied twice.
        let (disk, _) = LeaderDisk::ref_from_prefix(bytes).map_err(|_| Problem::Short {
            len: bytes.len(),
            need: LEADER_RECORD_SIZE,
        })?;
        Ok(RawLeader {
            magic: disk.magic.get(),
            version: disk.version.get(),
            flags: disk.flags.get(),
            sector_size: disk.sector_size.get(),
            num_hosts: disk.num_hosts.get(),
            max_hosts: disk.max_hosts.get(),
            owner_id: disk.owner_id.get(),
            owner_generation: disk.owner_generation.get(),
            lver: disk.lver.get(),
            space_name: Name::from_field(disk.space_name),
            resource_name: Name::from_field(disk.resource_name),
            timestamp: disk.timestamp.get(),
            unused1: disk.unused1.get(),
            checksum: disk.checksum.get(),
            unused2: disk.unused2.get(),
            io_timeout: disk.io_timeout.get(),
            write_id: disk.write_id.get(),
            write_generation: disk.write_generation.get(),
            write_timestamp: disk.write_timestamp.get(),
        })
    }

    /// What a delta lease sector says about its host_id's use, read in place without parsing
    /// the record: `None` for a sector too short or without the delta magic, else whether it
    /// was ever used (an owner or a timestamp) and the io_timeout it carries.
    pub fn delta_use(bytes: &[u8]) -> Option<(bool, u16)> {
        let (disk, _) = LeaderDisk::ref_from_prefix(bytes).ok()?;
        (disk.magic.get() == DELTA_DISK_MAGIC).then(|| {
            (
                disk.owner_id.get() != 0 || disk.timestamp.get() != 0,
                disk.io_timeout.get(),
            )
        })
    }

    /// Whether a delta lease sector still says what a scan saw last: the delta magic, the
    /// lockspace's name (byte for byte) and the same owner, generation and timestamp. Read in
    /// place: a renewal asks this of every one of 2000 sectors.
    pub fn delta_unchanged(
        bytes: &[u8],
        space_name: &Name,
        owner_id: u64,
        owner_generation: u64,
        timestamp: u64,
    ) -> bool {
        LeaderDisk::ref_from_prefix(bytes).is_ok_and(|(disk, _)| {
            disk.magic.get() == DELTA_DISK_MAGIC
                && disk.timestamp.get() == timestamp
                && disk.owner_id.get() == owner_id
                && disk.owner_generation.get() == owner_generation
                && disk.space_name == *space_name.field()
        })
    }

    /// The 200 bytes of these fields, the stored checksum as it is.
    pub fn to_bytes(&self) -> [u8; LEADER_RECORD_SIZE] {
        let disk = LeaderDisk {
            magic: self.magic.into(),
            version: self.version.into(),
            flags: self.flags.into(),
            sector_size: self.sector_size.into(),
            num_hosts: self.num_hosts.into(),
            max_hosts: self.max_hosts.into(),
            owner_id: self.owner_id.into(),
            owner_generation: self.owner_generation.into(),
            lver: self.lver.into(),
            space_name: *self.space_name.field(),
            resource_name: *self.resource_name.field(),
            timestamp: self.timestamp.into(),
            unused1: self.unused1.into(),
            checksum: self.checksum.into(),
            unused2: self.unused2.into(),
            io_timeout: self.io_timeout.into(),
            write_id: self.write_id.into(),
            write_generation: self.write_generation.into(),
            write_timestamp: self.write_timestamp.into(),
        };
        let mut out = [0u8; LEADER_RECORD_SIZE];
        out.copy_from_slice(disk.as_bytes());
        out
    }

    /// The checksum these fields should carry: sanlock's CRC over the first 168 bytes.
    pub fn computed_checksum(&self) -> u32 {
        sanlock_crc32c(&self.to_bytes()[..LEADER_CHECKSUM_LEN])
    }

    /// The same fields with `checksum` set to [`RawLeader::computed_checksum`].
    pub fn sealed(mut self) -> Self {
        self.checksum = self.computed_checksum();
        self
    }

    /// The geometry the record claims, if its sector size and flags make one.
    pub fn geometry(&self) -> Result<Geometry, Problem> {
        Ok(Geometry::from_leader(self.sector_size, self.flags)?)
    }

    /// Checks the record the way a sanlock reader does before acting on it, in sanlock's order
    /// (paxos_lease.c / delta_lease.c `verify_leader`: cleared, magic, major version, checksum),
    /// then what sanlock leaves unchecked but no sanlock host writes: a valid geometry and
    /// in-range host counts. Names are the caller's to compare ([`LeaderRecord::space_name`]).
    pub fn verify(&self, kind: LeaderKind) -> Result<LeaderRecord, Problem> {
        let magic = match (kind, self.magic) {
            (LeaderKind::Paxos, PAXOS_DISK_CLEAR) => return Err(Problem::Cleared),
            (LeaderKind::Paxos, PAXOS_DISK_MAGIC) => LeaderMagic::Paxos,
            (LeaderKind::Delta, DELTA_DISK_MAGIC) => LeaderMagic::Delta,
            (_, found) => {
                return Err(Problem::Magic {
                    found,
                    expected: kind.magic(),
                })
            }
        };
        let expected_major = kind.version() & VERSION_MAJOR_MASK;
        if self.version & VERSION_MAJOR_MASK != expected_major {
            return Err(Problem::Version {
                found: self.version,
                expected_major,
            });
        }
        let computed = self.computed_checksum();
        if self.checksum != computed {
            return Err(Problem::Checksum {
                stored: self.checksum,
                computed,
            });
        }
        let record = self.trusting_magic(magic)?;
        debug_assert_eq!(record.to_raw(), *self);
        Ok(record)
    }

    /// The checks a sanlock reader makes before acting on a leader, in sanlock's order, with its
    /// result codes (delta_lease.c / paxos_lease.c `verify_leader`): cleared (paxos), magic,
    /// major version, lockspace name, resource name (when given), num_hosts ≥ the reader's
    /// host id (paxos, when given), checksum. Use it where sanlock's result must be reproduced;
    /// [`RawLeader::verify`] then adds the checks sanlock leaves out.
    pub fn check_as_sanlock(
        &self,
        kind: LeaderKind,
        space_name: &Name,
        resource_name: Option<&Name>,
        reader: Option<HostId>,
    ) -> Result<(), i32> {
        use super::error::{
            SANLK_LEADER_CHECKSUM, SANLK_LEADER_LOCKSPACE, SANLK_LEADER_MAGIC,
            SANLK_LEADER_NUMHOSTS, SANLK_LEADER_RESOURCE, SANLK_LEADER_VERSION,
        };
        if kind == LeaderKind::Paxos && self.magic == PAXOS_DISK_CLEAR {
            return Err(SANLK_LEADER_MAGIC);
        }
        if self.magic != kind.magic() {
            return Err(SANLK_LEADER_MAGIC);
        }
        if self.version & VERSION_MAJOR_MASK != kind.version() & VERSION_MAJOR_MASK {
            return Err(SANLK_LEADER_VERSION);
        }
        if !self.space_name.matches(space_name) {
            return Err(SANLK_LEADER_LOCKSPACE);
        }
        if resource_name.is_some_and(|r| !self.resource_name.matches(r)) {
            return Err(SANLK_LEADER_RESOURCE);
        }
        if kind == LeaderKind::Paxos && reader.is_some_and(|h| self.num_hosts < h.get()) {
            return Err(SANLK_LEADER_NUMHOSTS);
        }
        if self.checksum != self.computed_checksum() {
            return Err(SANLK_LEADER_CHECKSUM);
        }
        Ok(())
    }

    /// Converts a cleared paxos leader (after its checksum was checked by the caller) so that
    /// tools can show it; [`RawLeader::verify`] refuses it as "does not exist".
    pub fn verify_cleared(&self) -> Result<LeaderRecord, Problem> {
        if self.magic != PAXOS_DISK_CLEAR {
            return Err(Problem::Magic {
                found: self.magic,
                expected: PAXOS_DISK_CLEAR,
            });
        }
        let computed = self.computed_checksum();
        if self.checksum != computed {
            return Err(Problem::Checksum {
                stored: self.checksum,
                computed,
            });
        }
        self.trusting_magic(LeaderMagic::PaxosClear)
    }

    fn trusting_magic(&self, magic: LeaderMagic) -> Result<LeaderRecord, Problem> {
        let geometry = self.geometry()?;
        let max_hosts = u64::from(geometry.max_hosts());
        if magic != LeaderMagic::Delta {
            // The dblocks of num_hosts hosts must fit in the area (sanlock reads them blindly).
            for (field, value) in [("num_hosts", self.num_hosts), ("max_hosts", self.max_hosts)] {
                if value > max_hosts {
                    return Err(Problem::OutOfRange {
                        field,
                        value,
                        allowed: format!("at most {max_hosts} for geometry {geometry}"),
                    });
                }
            }
        }
        let owner_id = match self.owner_id {
            0 => None,
            id => Some(HostId::new(id).ok_or_else(|| Problem::OutOfRange {
                field: "owner_id",
                value: id,
                allowed: "0 (no owner) or a host_id from 1 to 2000".to_string(),
            })?),
        };
        Ok(LeaderRecord {
            magic,
            version: self.version,
            flags: self.flags,
            geometry,
            num_hosts: self.num_hosts,
            max_hosts: self.max_hosts,
            owner_id,
            owner_generation: Generation(self.owner_generation),
            lver: Lver(self.lver),
            space_name: self.space_name,
            resource_name: self.resource_name,
            timestamp: self.timestamp,
            unused1: self.unused1,
            unused2: self.unused2,
            io_timeout: self.io_timeout,
            write_id: self.write_id,
            write_generation: self.write_generation,
            write_timestamp: self.write_timestamp,
        })
    }
}

/// A leader record that passed verification: right magic and major version, a checksum that
/// matches, a valid geometry, in-range host counts. Encoding computes the checksum.
///
/// `flags` keeps every bit as read; its align bit always agrees with `geometry` (or is absent,
/// for a leader written before align flags existed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the fields are sanlock's, documented in ondisk.md §3
pub struct LeaderRecord {
    pub magic: LeaderMagic,
    pub version: u32,
    pub flags: u32,
    pub geometry: Geometry,
    pub num_hosts: u64,
    pub max_hosts: u64,
    pub owner_id: Option<HostId>,
    pub owner_generation: Generation,
    pub lver: Lver,
    pub space_name: Name,
    pub resource_name: Name,
    pub timestamp: u64,
    pub unused1: u64,
    pub unused2: u16,
    pub io_timeout: u16,
    pub write_id: u64,
    pub write_generation: u64,
    pub write_timestamp: u64,
}

impl LeaderRecord {
    /// Decodes and verifies a leader of `kind` from the start of `bytes`, read at `offset`.
    pub fn decode(bytes: &[u8], kind: LeaderKind, offset: u64) -> Result<Self, DecodeError> {
        RawLeader::parse(bytes)
            .and_then(|raw| raw.verify(kind))
            .map_err(|problem| DecodeError::new(kind.record(), offset, problem))
    }

    /// The record every host's sector of a freshly initialised lockspace holds
    /// (delta_lease.c `delta_lease_init`): no owner, timestamp 0, max_hosts 1 (a historical
    /// value every init writes), the given io_timeout.
    pub fn delta_init(geometry: Geometry, space_name: Name, io_timeout: u16) -> Self {
        LeaderRecord {
            magic: LeaderMagic::Delta,
            version: DELTA_DISK_VERSION,
            flags: geometry.align_size().leader_flag(),
            geometry,
            num_hosts: 0,
            max_hosts: 1,
            owner_id: None,
            owner_generation: Generation(0),
            lver: Lver(0),
            space_name,
            resource_name: Name::EMPTY,
            timestamp: 0,
            unused1: 0,
            unused2: 0,
            io_timeout,
            write_id: 0,
            write_generation: 0,
            write_timestamp: 0,
        }
    }

    /// The leader of a freshly initialised resource (paxos_lease.c `paxos_lease_init`):
    /// num_hosts is the requested count when 1 ≤ n ≤ max_hosts, else max_hosts; io_timeout 0.
    pub fn paxos_init(
        geometry: Geometry,
        space_name: Name,
        resource_name: Name,
        num_hosts: u64,
    ) -> Self {
        let max_hosts = u64::from(geometry.max_hosts());
        let num_hosts = if num_hosts == 0 || num_hosts > max_hosts {
            max_hosts
        } else {
            num_hosts
        };
        LeaderRecord {
            magic: LeaderMagic::Paxos,
            version: PAXOS_DISK_VERSION,
            flags: geometry.align_size().leader_flag(),
            geometry,
            num_hosts,
            max_hosts,
            owner_id: None,
            owner_generation: Generation(0),
            lver: Lver(0),
            space_name,
            resource_name,
            timestamp: 0,
            unused1: 0,
            unused2: 0,
            io_timeout: 0,
            write_id: 0,
            write_generation: 0,
            write_timestamp: 0,
        }
    }

    /// The same record turned into a cleared lease: CLEAR magic, `write_timestamp` = the
    /// writer's monotonic seconds at the clear (ondisk.md §5.8).
    pub fn cleared(mut self, now_s: u64) -> Self {
        assert_eq!(
            self.magic,
            LeaderMagic::Paxos,
            "only paxos leases are cleared"
        );
        self.magic = LeaderMagic::PaxosClear;
        self.write_timestamp = now_s;
        self
    }

    /// The delta lease's event fields.
    pub fn event(&self) -> HostEvent {
        HostEvent {
            generation: self.write_id,
            event: self.write_generation,
            data: self.write_timestamp,
        }
    }

    /// Stores an event in a delta lease's write_* fields (outside the checksum).
    pub fn set_event(&mut self, event: HostEvent) {
        assert_eq!(
            self.magic,
            LeaderMagic::Delta,
            "events live in delta leases"
        );
        self.write_id = event.generation;
        self.write_generation = event.event;
        self.write_timestamp = event.data;
    }

    /// Whether `LFL_SHORT_HOLD` is set (a shared acquire's exclusive step).
    pub fn short_hold(&self) -> bool {
        self.flags & LFL_SHORT_HOLD != 0
    }

    /// The sector size.
    pub fn sector_size(&self) -> SectorSize {
        self.geometry.sector_size()
    }

    /// All fields as they will be written, with the checksum computed.
    pub fn to_raw(&self) -> RawLeader {
        debug_assert!(
            flags_agree_with(self.flags, self.geometry),
            "flags 0x{:x} disagree with geometry {}",
            self.flags,
            self.geometry
        );
        RawLeader {
            magic: self.magic.value(),
            version: self.version,
            flags: self.flags,
            sector_size: self.geometry.sector_size().bytes(),
            num_hosts: self.num_hosts,
            max_hosts: self.max_hosts,
            owner_id: self.owner_id.map_or(0, HostId::get),
            owner_generation: self.owner_generation.0,
            lver: self.lver.0,
            space_name: self.space_name,
            resource_name: self.resource_name,
            timestamp: self.timestamp,
            unused1: self.unused1,
            checksum: 0,
            unused2: self.unused2,
            io_timeout: self.io_timeout,
            write_id: self.write_id,
            write_generation: self.write_generation,
            write_timestamp: self.write_timestamp,
        }
        .sealed()
    }

    /// The 200 bytes to write, checksum included.
    pub fn encode(&self) -> [u8; LEADER_RECORD_SIZE] {
        self.to_raw().to_bytes()
    }
}

/// Whether `flags` carries `geometry`'s align bit first, or none (a legacy leader).
fn flags_agree_with(flags: u32, geometry: Geometry) -> bool {
    Geometry::from_leader(geometry.sector_size().bytes(), flags) == Ok(geometry)
}

/// The little-endian layout of `struct leader_record` (leader.h); 200 bytes, no padding.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct LeaderDisk {
    magic: U32,
    version: U32,
    flags: U32,
    sector_size: U32,
    num_hosts: U64,
    max_hosts: U64,
    owner_id: U64,
    owner_generation: U64,
    lver: U64,
    space_name: [u8; NAME_LEN],
    resource_name: [u8; NAME_LEN],
    timestamp: U64,
    unused1: U64,
    checksum: U32,
    unused2: U16,
    io_timeout: U16,
    write_id: U64,
    write_generation: U64,
    write_timestamp: U64,
}

const _: () = assert!(std::mem::size_of::<LeaderDisk>() == LEADER_RECORD_SIZE);
const _: () = assert!(LEADER_RECORD_SIZE <= LEADER_RECORD_MAX);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::geometry::AlignSize;

    fn name(s: &str) -> Name {
        Name::new(s.as_bytes()).unwrap()
    }

    fn g512() -> Geometry {
        Geometry::legacy(SectorSize::Bytes512)
    }

    #[test]
    fn free_delta_leader_is_byte_for_byte_ondisk_7_1() {
        // ondisk.md §7.1: `direct init -s LS:0:path:0` on a 512/1M file.
        let bytes = LeaderRecord::delta_init(g512(), name("LS"), 10).encode();
        let mut expected = [0u8; 200];
        expected[0..16].copy_from_slice(&[
            0x10, 0x20, 0x21, 0x12, 0x04, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x02,
            0x00, 0x00,
        ]);
        expected[24] = 0x01; // max_hosts 1
        expected[56..58].copy_from_slice(b"LS");
        expected[168..172].copy_from_slice(&[0xc0, 0x74, 0xf1, 0xb0]); // checksum
        expected[174] = 0x0a; // io_timeout 10
        assert_eq!(bytes, expected);
    }

    #[test]
    fn free_paxos_leader_checksum_is_ondisk_7_2() {
        // ondisk.md §7.2: `direct init -r LS:R:path:0`, CRC 0x078FB15E, num/max_hosts 2000.
        let leader = LeaderRecord::paxos_init(g512(), name("LS"), name("R"), 0);
        let bytes = leader.encode();
        assert_eq!(&bytes[0..4], &[0x10, 0x20, 0x15, 0x06]);
        assert_eq!(&bytes[16..24], &2000u64.to_le_bytes());
        assert_eq!(&bytes[24..32], &2000u64.to_le_bytes());
        assert_eq!(&bytes[104..105], b"R");
        assert_eq!(&bytes[168..172], &0x078F_B15Eu32.to_le_bytes());
        assert_eq!(&bytes[174..176], &[0, 0], "paxos leases carry io_timeout 0");
    }

    #[test]
    fn exclusive_hold_and_release_checksums_are_ondisk_7_4() {
        // ondisk.md §7.4: held at lver 1 by host 1 gen 1 at 764, then released (timestamp 0).
        let mut held = LeaderRecord::paxos_init(g512(), name("LS"), name("RES1"), 0);
        held.lver = Lver(1);
        held.owner_id = HostId::new(1);
        held.owner_generation = Generation(1);
        held.timestamp = 764;
        held.write_id = 1;
        held.write_generation = 1;
        held.write_timestamp = 764;
        // The spec's example used its own names; recompute over ours and check the invariant
        // the example shows: the write_* fields do not change the checksum.
        let sum = held.to_raw().checksum;
        let mut rewritten = held;
        rewritten.write_timestamp = 999;
        assert_eq!(rewritten.to_raw().checksum, sum);
        let mut released = held;
        released.timestamp = 0;
        assert_ne!(
            released.to_raw().checksum,
            sum,
            "timestamp is inside the checksum"
        );
    }

    #[test]
    fn event_fields_are_write_id_generation_timestamp_outside_the_checksum() {
        // ondisk.md §4.4 / §7.5: event 77, data 1234, target generation 1.
        let mut leader = LeaderRecord::delta_init(g512(), name("LS"), 10);
        let before = leader.to_raw().checksum;
        leader.set_event(HostEvent {
            generation: 1,
            event: 77,
            data: 1234,
        });
        let bytes = leader.encode();
        assert_eq!(&bytes[176..184], &1u64.to_le_bytes());
        assert_eq!(&bytes[184..192], &77u64.to_le_bytes());
        assert_eq!(&bytes[192..200], &1234u64.to_le_bytes());
        assert_eq!(leader.to_raw().checksum, before);
        assert_eq!(leader.event().event, 77);
    }

    #[test]
    fn every_field_sits_at_its_offset() {
        // leader.h offsets, checked in ondisk.md §3 with offsetof.
        let raw = RawLeader {
            magic: 0x0101_0101,
            version: 0x0202_0202,
            flags: 0x0303_0303,
            sector_size: 0x0404_0404,
            num_hosts: 0x0505_0505_0505_0505,
            max_hosts: 0x0606_0606_0606_0606,
            owner_id: 0x0707_0707_0707_0707,
            owner_generation: 0x0808_0808_0808_0808,
            lver: 0x0909_0909_0909_0909,
            space_name: Name::new(&[0x0a; 48]).unwrap(),
            resource_name: Name::new(&[0x0b; 48]).unwrap(),
            timestamp: 0x0c0c_0c0c_0c0c_0c0c,
            unused1: 0x0d0d_0d0d_0d0d_0d0d,
            checksum: 0x0e0e_0e0e,
            unused2: 0x0f0f,
            io_timeout: 0x1010,
            write_id: 0x1111_1111_1111_1111,
            write_generation: 0x1212_1212_1212_1212,
            write_timestamp: 0x1313_1313_1313_1313,
        };
        let bytes = raw.to_bytes();
        let spans: [(usize, usize, u8); 19] = [
            (0, 4, 1),
            (4, 8, 2),
            (8, 12, 3),
            (12, 16, 4),
            (16, 24, 5),
            (24, 32, 6),
            (32, 40, 7),
            (40, 48, 8),
            (48, 56, 9),
            (56, 104, 10),
            (104, 152, 11),
            (152, 160, 12),
            (160, 168, 13),
            (168, 172, 14),
            (172, 174, 15),
            (174, 176, 16),
            (176, 184, 17),
            (184, 192, 18),
            (192, 200, 19),
        ];
        for (start, end, value) in spans {
            assert!(
                bytes[start..end].iter().all(|&b| b == value),
                "bytes {start}..{end}"
            );
        }
        assert_eq!(RawLeader::parse(&bytes).unwrap(), raw);
    }

    #[test]
    fn verify_checks_cleared_then_magic_then_version_then_checksum() {
        // paxos_lease.c _verify_leader order; a cleared lease is "does not exist" (-223).
        let good = LeaderRecord::paxos_init(g512(), name("LS"), name("R"), 0).to_raw();
        let cleared = LeaderRecord::paxos_init(g512(), name("LS"), name("R"), 0)
            .cleared(707)
            .to_raw();
        assert_eq!(cleared.verify(LeaderKind::Paxos), Err(Problem::Cleared));
        assert_eq!(cleared.verify_cleared().unwrap().write_timestamp, 707);

        let mut bad = good;
        bad.version = 0x0007_0004;
        bad.checksum ^= 1;
        assert!(matches!(
            bad.verify(LeaderKind::Paxos),
            Err(Problem::Version { .. })
        ));
        assert!(matches!(
            good.verify(LeaderKind::Delta),
            Err(Problem::Magic { .. })
        ));

        let mut minor = good;
        minor.version = 0x0006_0009; // only the major half is compared
        assert!(minor.sealed().verify(LeaderKind::Paxos).is_ok());
    }

    #[test]
    fn verify_refuses_what_no_sanlock_host_writes() {
        let good = LeaderRecord::paxos_init(g512(), name("LS"), name("R"), 0).to_raw();
        type Mutation = fn(&mut RawLeader);
        let cases: [(&str, Mutation); 4] = [
            ("sector_size", |r| r.sector_size = 1024),
            ("combination", |r| {
                r.flags = AlignSize::Align2M.leader_flag()
            }),
            ("num_hosts", |r| r.num_hosts = 2001),
            ("owner_id", |r| r.owner_id = 5000),
        ];
        for (what, mutate) in cases {
            let mut raw = good;
            mutate(&mut raw);
            let err = raw.sealed().verify(LeaderKind::Paxos).unwrap_err();
            assert!(err.to_string().contains(what), "{what}: {err}");
        }
    }

    #[test]
    fn a_legacy_leader_without_align_flags_round_trips() {
        // Leaders from before minor version 4 carry no align bit: 4096 then means 8M.
        let mut raw = LeaderRecord::paxos_init(
            Geometry::legacy(SectorSize::Bytes4096),
            name("LS"),
            name("R"),
            0,
        )
        .to_raw();
        raw.flags = 0;
        raw.version = 0x0006_0003;
        let raw = raw.sealed();
        let leader = raw.verify(LeaderKind::Paxos).unwrap();
        assert_eq!(leader.geometry.align_size(), AlignSize::Align8M);
        assert_eq!(leader.to_raw(), raw);
    }

    #[test]
    fn decode_names_the_record_and_offset() {
        let err = LeaderRecord::decode(&[0u8; 100], LeaderKind::Delta, 4096).unwrap_err();
        assert_eq!(
            err.to_string(),
            "delta lease leader at offset 4096: 100 bytes given, the record needs 200"
        );
    }
}
