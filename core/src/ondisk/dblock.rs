//! A host's paxos dblock (56 bytes at the start of its sector) and mode block (16 bytes at byte
//! 128 of the same sector) (ondisk.md §5.4-5.5; sanlock 3.8.5 paxos_dblock.h, mode_block.h).

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::checksum::sanlock_crc32c;
use super::error::{DecodeError, Problem, RecordKind};
use super::geometry::SectorSize;
use crate::ids::{Generation, Lver};

/// Bytes of a dblock.
pub const PAXOS_DBLOCK_SIZE: usize = 56;
/// Bytes covered by the dblock checksum (mbal … lver).
pub const DBLOCK_CHECKSUM_LEN: usize = 48;
/// `dblock.flags`: the host released the lease it got with these values.
pub const DBLOCK_FL_RELEASED: u32 = 0x1;
/// Where the mode block sits in the dblock's sector (MBLOCK_OFFSET).
pub const MBLOCK_OFFSET: usize = 128;
/// Bytes of a mode block, padding included.
pub const MODE_BLOCK_SIZE: usize = 16;
/// `mode_block.flags`: the host holds the lease shared.
pub const MBLOCK_SHARED: u32 = 0x1;

/// A paxos ballot number. `mbal mod max_hosts` equals the host's id mod max_hosts, so hosts
/// never share one (ondisk.md §5.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mbal(pub u64);

/// Every field of a dblock as read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // sanlock's fields, ondisk.md §5.4
pub struct RawDblock {
    pub mbal: u64,
    pub bal: u64,
    pub inp: u64,
    pub inp2: u64,
    pub inp3: u64,
    pub lver: u64,
    pub checksum: u32,
    pub flags: u32,
}

impl RawDblock {
    /// Reads the first 56 bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, Problem> {
        let (disk, _) = DblockDisk::read_from_prefix(bytes).map_err(|_| Problem::Short {
            len: bytes.len(),
            need: PAXOS_DBLOCK_SIZE,
        })?;
        Ok(RawDblock {
            mbal: disk.mbal.get(),
            bal: disk.bal.get(),
            inp: disk.inp.get(),
            inp2: disk.inp2.get(),
            inp3: disk.inp3.get(),
            lver: disk.lver.get(),
            checksum: disk.checksum.get(),
            flags: disk.flags.get(),
        })
    }

    /// The 56 bytes of these fields, checksum as stored.
    pub fn to_bytes(&self) -> [u8; PAXOS_DBLOCK_SIZE] {
        let disk = DblockDisk {
            mbal: self.mbal.into(),
            bal: self.bal.into(),
            inp: self.inp.into(),
            inp2: self.inp2.into(),
            inp3: self.inp3.into(),
            lver: self.lver.into(),
            checksum: self.checksum.into(),
            flags: self.flags.into(),
        };
        let mut out = [0u8; PAXOS_DBLOCK_SIZE];
        out.copy_from_slice(disk.as_bytes());
        out
    }

    /// sanlock's CRC over mbal … lver.
    pub fn computed_checksum(&self) -> u32 {
        sanlock_crc32c(&self.to_bytes()[..DBLOCK_CHECKSUM_LEN])
    }

    /// Whether this is a dblock no host has written: checksum, mbal, bal, inp and lver zero.
    /// sanlock accepts it without a checksum match (paxos_lease.c `verify_dblock`).
    pub fn is_unwritten(&self) -> bool {
        self.checksum == 0 && self.mbal == 0 && self.bal == 0 && self.inp == 0 && self.lver == 0
    }
}

/// A dblock that passed the checksum (or was never written).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PaxosDblock {
    /// Highest ballot this host has started.
    pub mbal: Mbal,
    /// Ballot of the value in inp/inp2/inp3 (0 = none).
    pub bal: Mbal,
    /// Proposed owner host_id.
    pub inp: u64,
    /// Proposed owner generation.
    pub inp2: u64,
    /// Proposed owner timestamp (the proposer's monotonic seconds).
    pub inp3: u64,
    /// Lease version this ballot is for.
    pub lver: Lver,
    /// DBLOCK_FL_* bits (outside the checksum).
    pub flags: u32,
}

impl PaxosDblock {
    /// Decodes the dblock at the start of `bytes`, read at `offset`.
    pub fn decode(bytes: &[u8], offset: u64) -> Result<Self, DecodeError> {
        let fail = |problem| DecodeError::new(RecordKind::PaxosDblock, offset, problem);
        let raw = RawDblock::parse(bytes).map_err(fail)?;
        let computed = raw.computed_checksum();
        if !raw.is_unwritten() && raw.checksum != computed {
            return Err(fail(Problem::Checksum {
                stored: raw.checksum,
                computed,
            }));
        }
        Ok(PaxosDblock {
            mbal: Mbal(raw.mbal),
            bal: Mbal(raw.bal),
            inp: raw.inp,
            inp2: raw.inp2,
            inp3: raw.inp3,
            lver: Lver(raw.lver),
            flags: raw.flags,
        })
    }

    /// Whether DBLOCK_FL_RELEASED is set.
    pub fn released(&self) -> bool {
        self.flags & DBLOCK_FL_RELEASED != 0
    }

    /// The fields as written, checksum computed.
    pub fn to_raw(&self) -> RawDblock {
        let mut raw = RawDblock {
            mbal: self.mbal.0,
            bal: self.bal.0,
            inp: self.inp,
            inp2: self.inp2,
            inp3: self.inp3,
            lver: self.lver.0,
            checksum: 0,
            flags: self.flags,
        };
        raw.checksum = raw.computed_checksum();
        raw
    }

    /// The 56 bytes to write.
    pub fn encode(&self) -> [u8; PAXOS_DBLOCK_SIZE] {
        self.to_raw().to_bytes()
    }
}

/// Every field of a mode block as read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // sanlock's fields, ondisk.md §5.5
pub struct RawModeBlock {
    pub flags: u32,
    pub generation: u64,
}

impl RawModeBlock {
    /// Reads the first 16 bytes of `bytes`; padding is ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, Problem> {
        let (disk, _) = ModeBlockDisk::read_from_prefix(bytes).map_err(|_| Problem::Short {
            len: bytes.len(),
            need: MODE_BLOCK_SIZE,
        })?;
        Ok(RawModeBlock {
            flags: disk.flags.get(),
            generation: disk.generation.get(),
        })
    }
}

/// A host's mode block: whether it holds the lease shared, and with which generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ModeBlock {
    /// The host holds the lease in shared mode.
    pub shared: bool,
    /// The holder's lockspace generation when it took the shared lease.
    pub generation: Generation,
}

impl ModeBlock {
    /// Decodes the mode block at the start of `bytes`, read at `offset`. No checksum; flag bits
    /// other than MBLOCK_SHARED are refused, since no sanlock writes them.
    pub fn decode(bytes: &[u8], offset: u64) -> Result<Self, DecodeError> {
        let fail = |problem| DecodeError::new(RecordKind::ModeBlock, offset, problem);
        let raw = RawModeBlock::parse(bytes).map_err(fail)?;
        if raw.flags & !MBLOCK_SHARED != 0 {
            return Err(fail(Problem::OutOfRange {
                field: "mode_block.flags",
                value: u64::from(raw.flags),
                allowed: "0 or 0x1 (MBLOCK_SHARED)".to_string(),
            }));
        }
        Ok(ModeBlock {
            shared: raw.flags & MBLOCK_SHARED != 0,
            generation: Generation(raw.generation),
        })
    }

    /// The 16 bytes to write (padding zero).
    pub fn encode(&self) -> [u8; MODE_BLOCK_SIZE] {
        let disk = ModeBlockDisk {
            flags: (if self.shared { MBLOCK_SHARED } else { 0 }).into(),
            pad: 0.into(),
            generation: self.generation.0.into(),
        };
        let mut out = [0u8; MODE_BLOCK_SIZE];
        out.copy_from_slice(disk.as_bytes());
        out
    }
}

/// A host's whole dblock sector: dblock at byte 0, mode block at 128, zeros elsewhere. Writing a
/// dblock always writes this whole sector, so a plain ballot write clears the mode block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DblockSector {
    /// The ballot state.
    pub dblock: PaxosDblock,
    /// The shared-mode state.
    pub mode: ModeBlock,
}

impl DblockSector {
    /// Decodes a dblock sector read at `offset`.
    pub fn decode(sector: &[u8], offset: u64) -> Result<Self, DecodeError> {
        let dblock = PaxosDblock::decode(sector, offset)?;
        let mode_bytes = sector.get(MBLOCK_OFFSET..).unwrap_or(&[]);
        let mode = ModeBlock::decode(mode_bytes, offset + MBLOCK_OFFSET as u64)?;
        Ok(DblockSector { dblock, mode })
    }

    /// The whole sector to write.
    pub fn encode(&self, sector_size: SectorSize) -> Vec<u8> {
        let mut sector = vec![0u8; sector_size.as_usize()];
        sector[..PAXOS_DBLOCK_SIZE].copy_from_slice(&self.dblock.encode());
        sector[MBLOCK_OFFSET..MBLOCK_OFFSET + MODE_BLOCK_SIZE].copy_from_slice(&self.mode.encode());
        sector
    }
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct DblockDisk {
    mbal: U64,
    bal: U64,
    inp: U64,
    inp2: U64,
    inp3: U64,
    lver: U64,
    checksum: U32,
    flags: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct ModeBlockDisk {
    flags: U32,
    pad: U32,
    generation: U64,
}

const _: () = assert!(std::mem::size_of::<DblockDisk>() == PAXOS_DBLOCK_SIZE);
const _: () = assert!(std::mem::size_of::<ModeBlockDisk>() == MODE_BLOCK_SIZE);
// The dblock must end before the mode block starts (paxos_dblock.h).
const _: () = assert!(PAXOS_DBLOCK_SIZE <= MBLOCK_OFFSET);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_holder_sector_from_ondisk_7_3() {
        // ondisk.md §7.3 [run]: host 2's sector after a shared acquire at lver 13.
        let sector = DblockSector {
            dblock: PaxosDblock {
                mbal: Mbal(24002),
                bal: Mbal(24002),
                inp: 2,
                inp2: 1,
                inp3: 1416,
                lver: Lver(13),
                flags: DBLOCK_FL_RELEASED,
            },
            mode: ModeBlock {
                shared: true,
                generation: Generation(1),
            },
        };
        let bytes = sector.encode(SectorSize::Bytes512);
        assert_eq!(&bytes[48..52], &0x095F_D7FAu32.to_le_bytes(), "checksum");
        assert_eq!(&bytes[52..56], &1u32.to_le_bytes(), "flags");
        assert_eq!(&bytes[128..132], &1u32.to_le_bytes(), "mode flags");
        assert_eq!(&bytes[136..144], &1u64.to_le_bytes(), "mode generation");
        assert!(bytes[56..128].iter().all(|&b| b == 0));
        assert!(bytes[144..].iter().all(|&b| b == 0));
        assert_eq!(DblockSector::decode(&bytes, 0x600).unwrap(), sector);
    }

    #[test]
    fn fields_sit_at_their_offsets() {
        // paxos_dblock.h: mbal 0, bal 8, inp 16, inp2 24, inp3 32, lver 40, checksum 48, flags 52.
        let d = PaxosDblock {
            mbal: Mbal(1),
            bal: Mbal(2),
            inp: 3,
            inp2: 4,
            inp3: 5,
            lver: Lver(6),
            flags: 7,
        };
        let bytes = d.encode();
        for (i, v) in [1u64, 2, 3, 4, 5, 6].into_iter().enumerate() {
            assert_eq!(&bytes[i * 8..i * 8 + 8], &v.to_le_bytes());
        }
        assert_eq!(&bytes[52..56], &7u32.to_le_bytes());
    }

    #[test]
    fn an_unwritten_dblock_needs_no_checksum_but_a_written_one_does() {
        // paxos_lease.c verify_dblock: zero checksum, mbal, bal, inp, lver is accepted.
        let zero = [0u8; PAXOS_DBLOCK_SIZE];
        assert_eq!(
            PaxosDblock::decode(&zero, 0).unwrap(),
            PaxosDblock::default()
        );
        let mut bytes = zero;
        bytes[0] = 1; // mbal 1, checksum still 0
        let err = PaxosDblock::decode(&bytes, 1024).unwrap_err();
        assert_eq!(err.problem.sanlk_code(err.record), -214);
    }

    #[test]
    fn flags_are_outside_the_checksum() {
        // ondisk.md §7.4: releasing sets flags 1 and leaves the checksum unchanged.
        let held = PaxosDblock {
            mbal: Mbal(1),
            bal: Mbal(1),
            inp: 1,
            inp2: 1,
            inp3: 764,
            lver: Lver(1),
            flags: 0,
        };
        let released = PaxosDblock {
            flags: DBLOCK_FL_RELEASED,
            ..held
        };
        assert_eq!(held.to_raw().checksum, 0x9759_5804);
        assert_eq!(released.to_raw().checksum, 0x9759_5804);
        assert!(released.released());
    }

    #[test]
    fn unknown_mode_flags_are_refused() {
        let mut bytes = [0u8; MODE_BLOCK_SIZE];
        bytes[0] = 0x3;
        assert!(ModeBlock::decode(&bytes, 128).is_err());
        bytes[0] = 0x1;
        bytes[4] = 0xff; // padding is ignored
        assert!(ModeBlock::decode(&bytes, 128).unwrap().shared);
    }
}
