//! The resource index: an optional header and entry table naming the resource leases that follow
//! it (ondisk.md §6; sanlock 3.8.5 rindex_disk.h, rindex.c). No checksums.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::error::{DecodeError, Problem, RecordKind};
use super::geometry::{AlignSize, Geometry, SectorSize};
use super::leader::VERSION_MAJOR_MASK;
use super::name::{Name, NAME_LEN};

/// RINDEX_DISK_MAGIC.
pub const RINDEX_DISK_MAGIC: u32 = 0x0104_2018;
/// Version written: major 1, minor 2 (align flags).
pub const RINDEX_DISK_VERSION: u32 = 0x0001_0002;
/// Bytes of the header.
pub const RINDEX_HEADER_SIZE: usize = 80;
/// Bytes of one entry.
pub const RINDEX_ENTRY_SIZE: usize = 64;
/// max_resources when the caller asks for 0 (rindex.c format).
pub const DEFAULT_MAX_RESOURCES: u32 = 4096;

/// Every field of an rindex header as read (what `direct dump` prints).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // sanlock's fields, ondisk.md §6.1
pub struct RawRindexHeader {
    pub magic: u32,
    pub version: u32,
    pub flags: u32,
    pub sector_size: u32,
    pub max_resources: u32,
    pub unused: u32,
    pub rx_offset: u64,
    pub lockspace_name: Name,
}

impl RawRindexHeader {
    /// Reads the first 80 bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, Problem> {
        let (disk, _) = HeaderDisk::read_from_prefix(bytes).map_err(|_| Problem::Short {
            len: bytes.len(),
            need: RINDEX_HEADER_SIZE,
        })?;
        Ok(RawRindexHeader {
            magic: disk.magic.get(),
            version: disk.version.get(),
            flags: disk.flags.get(),
            sector_size: disk.sector_size.get(),
            max_resources: disk.max_resources.get(),
            unused: disk.unused.get(),
            rx_offset: disk.rx_offset.get(),
            lockspace_name: Name::from_field(disk.lockspace_name),
        })
    }
}

/// An rindex header with the right magic and version and a valid geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RindexHeader {
    /// The version stored.
    pub version: u32,
    /// The geometry of the index and of its leases.
    pub geometry: Geometry,
    /// How many entries are searched.
    pub max_resources: u32,
    /// The header's own offset from the start of the disk; readers require it to match.
    pub rx_offset: u64,
    /// The lockspace the indexed leases belong to.
    pub lockspace_name: Name,
}

impl RindexHeader {
    /// The header `format` writes. `max_resources` 0 means the default 4096; anything is capped
    /// to the geometry's limit (rindex.c).
    pub fn format(
        geometry: Geometry,
        lockspace_name: Name,
        max_resources: u32,
        rx_offset: u64,
    ) -> Self {
        let wanted = if max_resources == 0 {
            DEFAULT_MAX_RESOURCES
        } else {
            max_resources
        };
        RindexHeader {
            version: RINDEX_DISK_VERSION,
            geometry,
            max_resources: wanted.min(geometry.max_rindex_entries()),
            rx_offset,
            lockspace_name,
        }
    }

    /// Decodes the header at the start of `bytes`, read at `offset`.
    pub fn decode(bytes: &[u8], offset: u64) -> Result<Self, DecodeError> {
        let fail = |problem| DecodeError::new(RecordKind::RindexHeader, offset, problem);
        let raw = RawRindexHeader::parse(bytes).map_err(fail)?;
        if raw.magic != RINDEX_DISK_MAGIC {
            return Err(fail(Problem::Magic {
                found: raw.magic,
                expected: RINDEX_DISK_MAGIC,
            }));
        }
        if raw.version & VERSION_MAJOR_MASK != RINDEX_DISK_VERSION & VERSION_MAJOR_MASK {
            return Err(fail(Problem::Version {
                found: raw.version,
                expected_major: RINDEX_DISK_VERSION & VERSION_MAJOR_MASK,
            }));
        }
        let sector = SectorSize::from_bytes(u64::from(raw.sector_size)).ok_or_else(|| {
            fail(Problem::Geometry(
                super::geometry::GeometryError::SectorSize(u64::from(raw.sector_size)),
            ))
        })?;
        let geometry = match AlignSize::from_rindex_flags(raw.flags) {
            Some(align) => Geometry::new(sector, align).map_err(|e| fail(e.into()))?,
            None => Geometry::legacy(sector),
        };
        let limit = geometry.max_rindex_entries();
        if raw.max_resources > limit {
            return Err(fail(Problem::OutOfRange {
                field: "max_resources",
                value: u64::from(raw.max_resources),
                allowed: format!("at most {limit} for geometry {geometry}"),
            }));
        }
        Ok(RindexHeader {
            version: raw.version,
            geometry,
            max_resources: raw.max_resources,
            rx_offset: raw.rx_offset,
            lockspace_name: raw.lockspace_name,
        })
    }

    /// The 80 bytes to write.
    pub fn encode(&self) -> [u8; RINDEX_HEADER_SIZE] {
        let disk = HeaderDisk {
            magic: RINDEX_DISK_MAGIC.into(),
            version: self.version.into(),
            flags: self.geometry.align_size().rindex_flag().into(),
            sector_size: self.geometry.sector_size().bytes().into(),
            max_resources: self.max_resources.into(),
            unused: 0.into(),
            rx_offset: self.rx_offset.into(),
            lockspace_name: *self.lockspace_name.field(),
        };
        let mut out = [0u8; RINDEX_HEADER_SIZE];
        out.copy_from_slice(disk.as_bytes());
        out
    }

    /// Byte offset, from the start of the disk, of entry `i`: entries start in sector 1.
    pub fn entry_offset(&self, i: u32) -> u64 {
        self.rx_offset
            + u64::from(self.geometry.sector_size().bytes())
            + u64::from(i) * RINDEX_ENTRY_SIZE as u64
    }

    /// Byte offset, from the start of the disk, of the lease entry `i` describes: after the
    /// index area and the internal `rindex_lease` area.
    pub fn lease_offset(&self, i: u32) -> u64 {
        self.rx_offset + (2 + u64::from(i)) * self.geometry.area_bytes()
    }

    /// Byte offset of the internal `rindex_lease` that guards changes to the index.
    pub fn rindex_lease_offset(&self) -> u64 {
        self.rx_offset + self.geometry.area_bytes()
    }

    /// How many entries searches look at: max_resources, or the geometry's limit for 0.
    pub fn searched(&self) -> u32 {
        match self.max_resources {
            0 => self.geometry.max_rindex_entries(),
            n => n,
        }
    }

    /// Entry `i` in `area` (the index area as read from `rx_offset`).
    pub fn entry(&self, area: &[u8], i: u32) -> RindexEntry {
        let at = (self.entry_offset(i) - self.rx_offset) as usize;
        RindexEntry::decode(&area[at..at + RINDEX_ENTRY_SIZE], self.entry_offset(i))
            .expect("an entry inside the area")
    }

    /// The first free entry among those searched.
    pub fn find_free(&self, area: &[u8]) -> Option<u32> {
        (0..self.searched()).find(|&i| self.entry(area, i).is_free())
    }

    /// The first entry naming `name`.
    pub fn find_name(&self, area: &[u8], name: &Name) -> Option<u32> {
        (0..self.searched()).find(|&i| {
            let e = self.entry(area, i);
            !e.name.is_empty() && e.name.matches(name)
        })
    }

    /// The entry that describes the lease at byte `lease_offset`, if it is one of this
    /// index's lease slots (sanlock computes the index without checking, and reads past its
    /// buffer for an offset before the first slot).
    pub fn index_of_lease(&self, lease_offset: u64) -> Option<u32> {
        let area = self.geometry.area_bytes();
        let first = self.lease_offset(0);
        if lease_offset < first || lease_offset % area != 0 {
            return None;
        }
        let i = (lease_offset - first) / area;
        u32::try_from(i)
            .ok()
            .filter(|&i| i < self.geometry.max_rindex_entries())
    }

    /// The sector of the index holding entry `i`, with that entry replaced by `entry`: what
    /// create, delete and update write. Returns (byte offset on disk, sector bytes).
    pub fn sector_with(&self, area: &[u8], i: u32, entry: &RindexEntry) -> (u64, Vec<u8>) {
        let ss = self.geometry.sector_size().as_usize();
        let at = (self.entry_offset(i) - self.rx_offset) as usize;
        let start = at / ss * ss;
        let mut sector = area[start..start + ss].to_vec();
        sector[at - start..at - start + RINDEX_ENTRY_SIZE].copy_from_slice(&entry.encode());
        (self.rx_offset + start as u64, sector)
    }
}

/// One rindex entry: a resource name and its lease's offset; free when both are zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RindexEntry {
    /// Offset of the resource lease from the start of the disk.
    pub res_offset: u64,
    /// Unused by 3.8.5 (always 0), kept as read.
    pub flags: u32,
    /// Unused, kept as read.
    pub unused: u32,
    /// The resource name.
    pub name: Name,
}

impl RindexEntry {
    /// Decodes the entry at the start of `bytes`, read at `offset`. No magic, no checksum: only
    /// the length can be wrong.
    pub fn decode(bytes: &[u8], offset: u64) -> Result<Self, DecodeError> {
        let (disk, _) = EntryDisk::read_from_prefix(bytes).map_err(|_| {
            DecodeError::new(
                RecordKind::RindexEntry,
                offset,
                Problem::Short {
                    len: bytes.len(),
                    need: RINDEX_ENTRY_SIZE,
                },
            )
        })?;
        Ok(RindexEntry {
            res_offset: disk.res_offset.get(),
            flags: disk.flags.get(),
            unused: disk.unused.get(),
            name: Name::from_field(disk.name),
        })
    }

    /// The 64 bytes to write.
    pub fn encode(&self) -> [u8; RINDEX_ENTRY_SIZE] {
        let disk = EntryDisk {
            res_offset: self.res_offset.into(),
            flags: self.flags.into(),
            unused: self.unused.into(),
            name: *self.name.field(),
        };
        let mut out = [0u8; RINDEX_ENTRY_SIZE];
        out.copy_from_slice(disk.as_bytes());
        out
    }

    /// Free: no offset and no name (rindex.c).
    pub fn is_free(&self) -> bool {
        self.res_offset == 0 && self.name.is_empty()
    }
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct HeaderDisk {
    magic: U32,
    version: U32,
    flags: U32,
    sector_size: U32,
    max_resources: U32,
    unused: U32,
    rx_offset: U64,
    lockspace_name: [u8; NAME_LEN],
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct EntryDisk {
    res_offset: U64,
    flags: U32,
    unused: U32,
    name: [u8; NAME_LEN],
}

const _: () = assert!(std::mem::size_of::<HeaderDisk>() == RINDEX_HEADER_SIZE);
const _: () = assert!(std::mem::size_of::<EntryDisk>() == RINDEX_ENTRY_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_header_matches_the_bytes_sanlock_wrote() {
        // ondisk.md §6.3 [run]: header "18 20 04 01 02 00 01 00 01 00 00 00 00 02 00 00
        // 00 10 00 00 …" for 512/1M with the default max_resources 4096.
        let h = RindexHeader::format(Geometry::ALL[0], Name::new(b"LS").unwrap(), 0, 0);
        let bytes = h.encode();
        assert_eq!(
            &bytes[..20],
            &[
                0x18, 0x20, 0x04, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x02,
                0x00, 0x00, 0x00, 0x10, 0x00, 0x00
            ]
        );
        assert_eq!(&bytes[32..34], b"LS");
        assert_eq!(RindexHeader::decode(&bytes, 0).unwrap(), h);
    }

    #[test]
    fn max_resources_is_capped_to_the_geometry() {
        let h = RindexHeader::format(Geometry::ALL[0], Name::EMPTY, 1_000_000, 0);
        assert_eq!(h.max_resources, 16000);
    }

    #[test]
    fn entries_and_leases_are_where_sanlock_puts_them() {
        // ondisk.md §6: entry i at rx_offset + sector + 64 i; lease i at rx_offset + (2+i) align.
        let h = RindexHeader::format(Geometry::ALL[0], Name::EMPTY, 0, 1 << 20);
        assert_eq!(h.entry_offset(0), (1 << 20) + 512);
        assert_eq!(h.entry_offset(9), (1 << 20) + 512 + 9 * 64);
        assert_eq!(h.lease_offset(0), 3 << 20);
    }

    #[test]
    fn entry_fields_sit_at_their_offsets() {
        // rindex_disk.h: res_offset 0, flags 8, unused 12, name 16.
        let e = RindexEntry {
            res_offset: 0x20_0000,
            flags: 0,
            unused: 0,
            name: Name::new(b"vmlease1").unwrap(),
        };
        let bytes = e.encode();
        assert_eq!(&bytes[..8], &0x20_0000u64.to_le_bytes());
        assert_eq!(&bytes[16..24], b"vmlease1");
        assert_eq!(RindexEntry::decode(&bytes, 0).unwrap(), e);
        assert!(RindexEntry::default().is_free());
    }

    #[test]
    fn header_rejects_bad_magic_and_bad_geometry() {
        let good = RindexHeader::format(Geometry::ALL[2], Name::EMPTY, 0, 0).encode();
        let mut bad = good;
        bad[0] ^= 1;
        assert!(RindexHeader::decode(&bad, 0).is_err());
        let mut bad = good;
        bad[12..16].copy_from_slice(&512u32.to_le_bytes()); // 512 with the 2M flag
        let err = RindexHeader::decode(&bad, 4096).unwrap_err();
        assert!(err.to_string().contains("combination"), "{err}");
    }
}

#[cfg(test)]
mod search_tests {
    use super::*;

    fn header() -> RindexHeader {
        let g = Geometry::legacy(SectorSize::Bytes512);
        RindexHeader::format(g, Name::new(b"LS").unwrap(), 0, 1 << 20)
    }

    #[test]
    fn entries_are_found_by_name_and_by_lease_offset_as_rindex_c_does() {
        // ondisk.md §6: entry i at rx_offset + sector + 64 i; its lease at rx + (2 + i) align.
        let h = header();
        let mut area = vec![0u8; (1 << 20) as usize];
        assert_eq!(h.find_free(&area), Some(0));
        let e = RindexEntry {
            res_offset: h.lease_offset(0),
            name: Name::new(b"r1").unwrap(),
            ..RindexEntry::default()
        };
        let (at, sector) = h.sector_with(&area, 0, &e);
        assert_eq!(at, (1 << 20) + 512, "entry 0 is in sector 1 of the index");
        area[512..1024].copy_from_slice(&sector);
        assert_eq!(h.find_free(&area), Some(1));
        assert_eq!(h.find_name(&area, &Name::new(b"r1").unwrap()), Some(0));
        assert_eq!(h.find_name(&area, &Name::new(b"r2").unwrap()), None);
        assert_eq!(h.lease_offset(0), 3 << 20);
        assert_eq!(h.index_of_lease(3 << 20), Some(0));
        assert_eq!(h.index_of_lease(5 << 20), Some(2));
        // Before the first lease slot, or off the align: not an entry (3.8.5 reads garbage).
        assert_eq!(h.index_of_lease(2 << 20), None);
        assert_eq!(h.index_of_lease((3 << 20) + 512), None);
        // Entry 8 is the first of sector 2.
        let (at, _) = h.sector_with(&area, 8, &e);
        assert_eq!(at, (1 << 20) + 1024);
        assert_eq!(h.rindex_lease_offset(), 2 << 20);
        assert_eq!(h.searched(), 4096);
    }
}
