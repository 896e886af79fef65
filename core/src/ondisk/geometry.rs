//! Lease geometry: the sector size, the align size (the size of one lease area), and where in an
//! area each host's record lives (ondisk.md §1, §4.1, §5.1; sanlock 3.8.5 sizeflags.c).

use std::fmt;

use crate::ids::HostId;

/// A disk's logical sector size. sanlock knows no other two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SectorSize {
    /// 512-byte sectors (files are always treated as 512).
    Bytes512,
    /// 4096-byte sectors (4K-native devices).
    Bytes4096,
}

impl SectorSize {
    /// Use when a size comes from the disk, the user or the wire; `None` for anything else.
    pub fn from_bytes(bytes: u64) -> Option<Self> {
        match bytes {
            512 => Some(SectorSize::Bytes512),
            4096 => Some(SectorSize::Bytes4096),
            _ => None,
        }
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u32 {
        match self {
            SectorSize::Bytes512 => 512,
            SectorSize::Bytes4096 => 4096,
        }
    }

    /// The bytes as a buffer length.
    pub const fn as_usize(self) -> usize {
        self.bytes() as usize
    }

    /// The API flag (SANLK_LSF_/RES_/RIF_SECTOR512 or 4K) a caller passes for this size.
    pub const fn api_flag(self) -> u32 {
        match self {
            SectorSize::Bytes512 => 0x100,
            SectorSize::Bytes4096 => 0x200,
        }
    }

    /// Reads the SECTOR bit of an API flags word; 512 wins if both are set, as in sanlock.
    pub fn from_api_flags(flags: u32) -> Option<Self> {
        if flags & 0x100 != 0 {
            Some(SectorSize::Bytes512)
        } else if flags & 0x200 != 0 {
            Some(SectorSize::Bytes4096)
        } else {
            None
        }
    }
}

/// The size of one lease area; lockspaces and resources start on multiples of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlignSize {
    /// 1 MiB.
    Align1M,
    /// 2 MiB.
    Align2M,
    /// 4 MiB.
    Align4M,
    /// 8 MiB.
    Align8M,
}

const MIB: u64 = 1024 * 1024;

impl AlignSize {
    /// All four, smallest first: the order in which sanlock tests flag bits.
    pub const ALL: [AlignSize; 4] = [
        AlignSize::Align1M,
        AlignSize::Align2M,
        AlignSize::Align4M,
        AlignSize::Align8M,
    ];

    /// Use when a size in bytes comes from the user or the wire; `None` for anything else.
    pub fn from_bytes(bytes: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.bytes() == bytes)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            AlignSize::Align1M => MIB,
            AlignSize::Align2M => 2 * MIB,
            AlignSize::Align4M => 4 * MIB,
            AlignSize::Align8M => 8 * MIB,
        }
    }

    /// The `LFL_ALIGN_*` bit recorded in a leader's flags.
    pub const fn leader_flag(self) -> u32 {
        match self {
            AlignSize::Align1M => 0x10,
            AlignSize::Align2M => 0x20,
            AlignSize::Align4M => 0x40,
            AlignSize::Align8M => 0x80,
        }
    }

    /// The first `LFL_ALIGN_*` bit set, testing 1M, 2M, 4M, 8M in that order (sizeflags.c);
    /// `None` for a leader written before the flags existed.
    pub fn from_leader_flags(flags: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|a| flags & a.leader_flag() != 0)
    }

    /// The `RHF_ALIGN_*` bit of an rindex header; not the same values as the leader's.
    pub const fn rindex_flag(self) -> u32 {
        match self {
            AlignSize::Align1M => 0x1,
            AlignSize::Align2M => 0x2,
            AlignSize::Align4M => 0x4,
            AlignSize::Align8M => 0x8,
        }
    }

    /// The first `RHF_ALIGN_*` bit set, in sanlock's order.
    pub fn from_rindex_flags(flags: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|a| flags & a.rindex_flag() != 0)
    }

    /// The API flag (SANLK_LSF_/RES_/RIF_ALIGN*); the same values as the leader's bits.
    pub const fn api_flag(self) -> u32 {
        self.leader_flag()
    }

    /// Reads the ALIGN bits of an API flags word, in sanlock's order.
    pub fn from_api_flags(flags: u32) -> Option<Self> {
        Self::from_leader_flags(flags)
    }

    /// The `-A` spelling: `1M`, `2M`, `4M`, `8M`.
    pub const fn label(self) -> &'static str {
        match self {
            AlignSize::Align1M => "1M",
            AlignSize::Align2M => "2M",
            AlignSize::Align4M => "4M",
            AlignSize::Align8M => "8M",
        }
    }
}

/// A valid (sector size, align size) pair: one of the five sanlock accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Geometry {
    sector_size: SectorSize,
    align_size: AlignSize,
}

/// Why a sector/align pair, or a leader's record of one, is not a geometry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// Neither 512 nor 4096.
    #[error("sector_size {0} is neither 512 nor 4096")]
    SectorSize(u64),
    /// Not one of 1M, 2M, 4M, 8M.
    #[error("align size {0} is not one of 1M, 2M, 4M, 8M")]
    AlignSize(u64),
    /// Both valid alone, but not together (e.g. 512 with 2M).
    #[error(
        "invalid sector_size/align_size combination {sector}/{align}: \
         use one of 512/1M, 4096/1M, 4096/2M, 4096/4M, 4096/8M"
    )]
    Combination {
        /// Sector size in bytes.
        sector: u32,
        /// Align size in bytes.
        align: u64,
    },
    /// Exactly one of the SECTOR and ALIGN API flags was given.
    #[error("the SECTOR and ALIGN flags must be given together (flags 0x{0:x})")]
    HalfGiven(u32),
}

impl Geometry {
    /// The five geometries, in the order of ondisk.md §1.1.
    pub const ALL: [Geometry; 5] = [
        Geometry::const_pair(SectorSize::Bytes512, AlignSize::Align1M),
        Geometry::const_pair(SectorSize::Bytes4096, AlignSize::Align1M),
        Geometry::const_pair(SectorSize::Bytes4096, AlignSize::Align2M),
        Geometry::const_pair(SectorSize::Bytes4096, AlignSize::Align4M),
        Geometry::const_pair(SectorSize::Bytes4096, AlignSize::Align8M),
    ];

    const fn const_pair(sector_size: SectorSize, align_size: AlignSize) -> Self {
        Geometry {
            sector_size,
            align_size,
        }
    }

    /// Use when both sizes are known; rejects 512 with anything but 1M.
    pub fn new(sector_size: SectorSize, align_size: AlignSize) -> Result<Self, GeometryError> {
        match (sector_size, align_size) {
            (SectorSize::Bytes512, AlignSize::Align1M) | (SectorSize::Bytes4096, _) => {
                Ok(Geometry::const_pair(sector_size, align_size))
            }
            _ => Err(GeometryError::Combination {
                sector: sector_size.bytes(),
                align: align_size.bytes(),
            }),
        }
    }

    /// The geometry implied by a sector size alone, for leaders written before align flags and
    /// for init without flags: 512 → 1M, 4096 → 8M (sizeflags.c `sector_size_to_align_size_old`).
    pub const fn legacy(sector_size: SectorSize) -> Self {
        match sector_size {
            SectorSize::Bytes512 => Geometry::const_pair(sector_size, AlignSize::Align1M),
            SectorSize::Bytes4096 => Geometry::const_pair(sector_size, AlignSize::Align8M),
        }
    }

    /// The geometry a leader record describes: its `sector_size` and the first align bit of its
    /// flags, or the legacy align when there is none.
    pub fn from_leader(sector_size: u32, flags: u32) -> Result<Self, GeometryError> {
        let sector = SectorSize::from_bytes(u64::from(sector_size))
            .ok_or(GeometryError::SectorSize(u64::from(sector_size)))?;
        match AlignSize::from_leader_flags(flags) {
            Some(align) => Geometry::new(sector, align),
            None => Ok(Geometry::legacy(sector)),
        }
    }

    /// The geometry an API flags word asks for: `Ok(None)` when it names neither size, an error
    /// when it names only one or an invalid pair (sizeflags.c `sizes_from_flags`).
    pub fn from_api_flags(flags: u32) -> Result<Option<Self>, GeometryError> {
        match (
            SectorSize::from_api_flags(flags),
            AlignSize::from_api_flags(flags),
        ) {
            (None, None) => Ok(None),
            (Some(sector), Some(align)) => Geometry::new(sector, align).map(Some),
            _ => Err(GeometryError::HalfGiven(flags)),
        }
    }

    /// The sector size.
    pub const fn sector_size(self) -> SectorSize {
        self.sector_size
    }

    /// The align size: the bytes of one lease area.
    pub const fn align_size(self) -> AlignSize {
        self.align_size
    }

    /// The bytes of one lease area.
    pub const fn area_bytes(self) -> u64 {
        self.align_size.bytes()
    }

    /// Sectors in one lease area.
    pub const fn sectors_per_area(self) -> u32 {
        (self.align_size.bytes() / self.sector_size.bytes() as u64) as u32
    }

    /// The highest host_id of a lockspace, and the most dblocks a resource can have. A fixed
    /// table, not a division: 512/1M has 2048 sectors but 2000 hosts (sizeflags.c).
    pub const fn max_hosts(self) -> u16 {
        match (self.sector_size, self.align_size) {
            (SectorSize::Bytes512, _) => 2000,
            (SectorSize::Bytes4096, AlignSize::Align1M) => 250,
            (SectorSize::Bytes4096, AlignSize::Align2M) => 500,
            (SectorSize::Bytes4096, AlignSize::Align4M) => 1000,
            (SectorSize::Bytes4096, AlignSize::Align8M) => 2000,
        }
    }

    /// Whether `host` may join a lockspace of this geometry or hold a dblock in its resources.
    pub fn contains_host(self, host: HostId) -> bool {
        host.get() <= u64::from(self.max_hosts())
    }

    /// The most rindex entries this geometry's index may describe (ondisk.md §6.2).
    pub const fn max_rindex_entries(self) -> u32 {
        match (self.sector_size, self.align_size) {
            (SectorSize::Bytes512, _) => 16000,
            (SectorSize::Bytes4096, AlignSize::Align1M) => 16000,
            (SectorSize::Bytes4096, AlignSize::Align2M) => 32000,
            (SectorSize::Bytes4096, AlignSize::Align4M) => 64000,
            (SectorSize::Bytes4096, AlignSize::Align8M) => 128000,
        }
    }

    /// Byte offset of a sector from the start of its lease area.
    pub const fn sector_offset(self, sector: SectorNr) -> u64 {
        sector.0 as u64 * self.sector_size.bytes() as u64
    }

    /// The sector of `host`'s delta lease in a lockspace area: host N is sector N − 1.
    pub fn delta_sector(self, host: HostId) -> SectorNr {
        debug_assert!(self.contains_host(host), "host {host} outside {self}");
        SectorNr(host.index() as u32)
    }

    /// The sector of `host`'s paxos dblock (with its mode block at byte 128): host N is
    /// sector N + 1, after the leader and the request record.
    pub fn dblock_sector(self, host: HostId) -> SectorNr {
        debug_assert!(self.contains_host(host), "host {host} outside {self}");
        SectorNr(host.index() as u32 + 2)
    }

    /// The LVB sector, measured from the resource area's start. A constant sector number, so it
    /// lies outside the area for 4K with 1M/2M/4M alignment (ondisk.md §5.1, a 3.8.5 quirk).
    pub const fn lvb_sector(self) -> SectorNr {
        SectorNr::LVB
    }

    /// Whether the LVB sector lies inside this geometry's lease area.
    pub const fn lvb_inside_area(self) -> bool {
        SectorNr::LVB.0 < self.sectors_per_area()
    }
}

impl fmt::Display for Geometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.sector_size.bytes(),
            self.align_size.label()
        )
    }
}

/// A sector number counted from the start of a lease area. Multiply by the sector size with
/// [`Geometry::sector_offset`]; never by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SectorNr(pub u32);

impl SectorNr {
    /// A paxos lease's leader record.
    pub const LEADER: SectorNr = SectorNr(0);
    /// A paxos lease's request record.
    pub const REQUEST: SectorNr = SectorNr(1);
    /// A paxos lease's lock value block (sanlock 3.8.5 resource.c `LVB_SECTOR`).
    pub const LVB: SectorNr = SectorNr(2002);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(n: u64) -> HostId {
        HostId::new(n).unwrap()
    }

    #[test]
    fn the_five_geometries_and_their_max_hosts() {
        // ondisk.md §1.1 table, sizeflags.c size_to_max_hosts.
        let table: Vec<(u32, u64, u32, u16)> = Geometry::ALL
            .iter()
            .map(|g| {
                (
                    g.sector_size().bytes(),
                    g.area_bytes(),
                    g.sectors_per_area(),
                    g.max_hosts(),
                )
            })
            .collect();
        assert_eq!(
            table,
            vec![
                (512, 1 << 20, 2048, 2000),
                (4096, 1 << 20, 256, 250),
                (4096, 2 << 20, 512, 500),
                (4096, 4 << 20, 1024, 1000),
                (4096, 8 << 20, 2048, 2000),
            ]
        );
    }

    #[test]
    fn sector_512_rejects_align_larger_than_1m() {
        // ondisk.md §1.1: "512-byte sectors with 2M/4M/8M alignment are invalid".
        for align in [AlignSize::Align2M, AlignSize::Align4M, AlignSize::Align8M] {
            assert!(Geometry::new(SectorSize::Bytes512, align).is_err());
        }
    }

    #[test]
    fn legacy_align_is_1m_for_512_and_8m_for_4k() {
        // sizeflags.c sector_size_to_align_size_old.
        assert_eq!(
            Geometry::legacy(SectorSize::Bytes512).align_size(),
            AlignSize::Align1M
        );
        assert_eq!(
            Geometry::legacy(SectorSize::Bytes4096).align_size(),
            AlignSize::Align8M
        );
    }

    #[test]
    fn leader_flags_take_the_first_align_bit_in_1m_to_8m_order() {
        // sizeflags.c leader_align_size_from_flag tests 1M, 2M, 4M, 8M in order.
        assert_eq!(
            AlignSize::from_leader_flags(0x10 | 0x80),
            Some(AlignSize::Align1M)
        );
        assert_eq!(
            AlignSize::from_leader_flags(0x40 | 0x80),
            Some(AlignSize::Align4M)
        );
        assert_eq!(AlignSize::from_leader_flags(0x01), None);
        assert_eq!(
            Geometry::from_leader(4096, 0).unwrap(),
            Geometry::legacy(SectorSize::Bytes4096)
        );
        assert!(Geometry::from_leader(1024, 0x10).is_err());
        assert!(Geometry::from_leader(512, 0x20).is_err());
    }

    #[test]
    fn rindex_flags_use_their_own_bit_values() {
        // ondisk.md §6.1: RHF_ALIGN_* are 1, 2, 4, 8, not the leader's 0x10..0x80.
        let bits: Vec<u32> = AlignSize::ALL.iter().map(|a| a.rindex_flag()).collect();
        assert_eq!(bits, vec![1, 2, 4, 8]);
        assert_eq!(AlignSize::from_rindex_flags(0x2), Some(AlignSize::Align2M));
    }

    #[test]
    fn api_flags_need_both_sizes_or_neither() {
        // sizeflags.c sizes_from_flags: "ALIGN and SECTOR flags must both be set".
        assert_eq!(Geometry::from_api_flags(0), Ok(None));
        assert_eq!(
            Geometry::from_api_flags(0x200 | 0x20),
            Ok(Some(
                Geometry::new(SectorSize::Bytes4096, AlignSize::Align2M).unwrap()
            ))
        );
        assert_eq!(
            Geometry::from_api_flags(0x200),
            Err(GeometryError::HalfGiven(0x200))
        );
        assert!(Geometry::from_api_flags(0x100 | 0x80).is_err());
    }

    #[test]
    fn delta_sector_of_host_n_is_n_minus_1() {
        // ondisk.md §4.1: "The delta lease of host_id N occupies sector N−1".
        let g = Geometry::ALL[0];
        assert_eq!(g.sector_offset(g.delta_sector(host(1))), 0);
        assert_eq!(g.sector_offset(g.delta_sector(host(2))), 512);
        assert_eq!(g.sector_offset(g.delta_sector(host(2000))), 1999 * 512);
        let g4 = Geometry::ALL[1];
        assert_eq!(g4.sector_offset(g4.delta_sector(host(250))), 249 * 4096);
    }

    #[test]
    fn dblock_of_host_n_is_sector_n_plus_1() {
        // ondisk.md §5.1: leader, request record, then host 1's dblock in sector 2.
        let g = Geometry::ALL[0];
        assert_eq!(g.sector_offset(g.dblock_sector(host(1))), 2 * 512);
        assert_eq!(g.sector_offset(g.dblock_sector(host(2))), 3 * 512);
        assert_eq!(g.sector_offset(g.dblock_sector(host(2000))), 2001 * 512);
    }

    #[test]
    fn lvb_sector_2002_is_outside_the_area_for_4k_small_aligns() {
        // ondisk.md §5.1: LVB at 1,025,024 (512/1M) and 8,200,192 (any 4K).
        let offsets: Vec<(u64, bool)> = Geometry::ALL
            .iter()
            .map(|g| (g.sector_offset(g.lvb_sector()), g.lvb_inside_area()))
            .collect();
        assert_eq!(
            offsets,
            vec![
                (1_025_024, true),
                (8_200_192, false),
                (8_200_192, false),
                (8_200_192, false),
                (8_200_192, true),
            ]
        );
    }

    #[test]
    fn rindex_entry_limits_per_geometry() {
        // ondisk.md §6.2.
        let limits: Vec<u32> = Geometry::ALL
            .iter()
            .map(|g| g.max_rindex_entries())
            .collect();
        assert_eq!(limits, vec![16000, 16000, 32000, 64000, 128000]);
    }
}
