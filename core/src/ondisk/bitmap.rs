//! The host_id bitmap in a delta-lease sector, and the sector as a whole (ondisk.md §4.1-4.2;
//! sanlock 3.8.5 lockspace.c `set_id_bit`, `test_id_bit`).

use super::error::DecodeError;
use super::geometry::SectorSize;
use super::leader::{LeaderKind, LeaderRecord, LEADER_RECORD_MAX};
use super::mailbox::MailboxBlock;
use crate::ids::HostId;

/// Where the bitmap starts in a delta-lease sector (HOSTID_BITMAP_OFFSET).
pub const HOSTID_BITMAP_OFFSET: usize = LEADER_RECORD_MAX;
/// Bytes of the bitmap: 2048 bits, one per possible host_id (HOSTID_BITMAP_SIZE).
pub const HOSTID_BITMAP_SIZE: usize = 256;

/// The "look at me" bits a delta lease's owner sets for other hosts: bit H−1 for host H.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostBitmap([u8; HOSTID_BITMAP_SIZE]);

impl HostBitmap {
    /// No bits set.
    pub const EMPTY: HostBitmap = HostBitmap([0; HOSTID_BITMAP_SIZE]);

    /// The bitmap exactly as read.
    pub const fn from_bytes(bytes: [u8; HOSTID_BITMAP_SIZE]) -> Self {
        HostBitmap(bytes)
    }

    /// The 256 bytes to write.
    pub const fn bytes(&self) -> &[u8; HOSTID_BITMAP_SIZE] {
        &self.0
    }

    /// Sets host's bit: byte (H−1)/8, bit (H−1)%8, least significant first.
    pub fn set(&mut self, host: HostId) {
        let (byte, mask) = Self::position(host);
        self.0[byte] |= mask;
    }

    /// Clears host's bit.
    pub fn clear(&mut self, host: HostId) {
        let (byte, mask) = Self::position(host);
        self.0[byte] &= !mask;
    }

    /// Whether host's bit is set.
    pub fn test(&self, host: HostId) -> bool {
        let (byte, mask) = Self::position(host);
        self.0[byte] & mask != 0
    }

    /// The hosts whose bits are set, lowest first, up to `max_hosts` (bits past it are ignored,
    /// as sanlock's scans stop there).
    pub fn hosts(&self, max_hosts: u16) -> impl Iterator<Item = HostId> + '_ {
        (1..=u64::from(max_hosts))
            .filter_map(HostId::new)
            .filter(|&h| self.test(h))
    }

    fn position(host: HostId) -> (usize, u8) {
        (host.index() / 8, 1 << (host.index() % 8))
    }
}

impl Default for HostBitmap {
    fn default() -> Self {
        HostBitmap::EMPTY
    }
}

impl std::fmt::Debug for HostBitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.hosts(HostId::MAX)).finish()
    }
}

/// A whole delta-lease sector: the leader, then zeros, the bitmap at byte 256, zeros to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeltaSector {
    /// The host's delta lease.
    pub leader: LeaderRecord,
    /// The owner's requests for other hosts' attention.
    pub bitmap: HostBitmap,
    /// Our extension at byte 200 (messages and acks); `None` in a C host's sector.
    pub mailbox: Option<MailboxBlock>,
}

impl DeltaSector {
    /// Decodes a delta-lease sector read at `offset`: a verified delta leader and the bitmap.
    pub fn decode(sector: &[u8], offset: u64) -> Result<Self, DecodeError> {
        let leader = LeaderRecord::decode(sector, LeaderKind::Delta, offset)?;
        let mut bitmap = [0u8; HOSTID_BITMAP_SIZE];
        let end = HOSTID_BITMAP_OFFSET + HOSTID_BITMAP_SIZE;
        if sector.len() < end {
            return Err(DecodeError::new(
                super::error::RecordKind::DeltaLeader,
                offset,
                super::error::Problem::Short {
                    len: sector.len(),
                    need: end,
                },
            ));
        }
        bitmap.copy_from_slice(&sector[HOSTID_BITMAP_OFFSET..end]);
        Ok(DeltaSector {
            leader,
            bitmap: HostBitmap(bitmap),
            mailbox: MailboxBlock::decode(sector),
        })
    }

    /// The whole sector to write; every byte outside the leader, the bitmap and the mailbox
    /// block (when there is one) is zero.
    pub fn encode(&self) -> Vec<u8> {
        let mut sector = vec![0u8; self.leader.sector_size().as_usize()];
        self.encode_into(&mut sector);
        sector
    }

    /// Writes the sector into `sector`, which must be exactly one sector long.
    pub fn encode_into(&self, sector: &mut [u8]) {
        assert_eq!(sector.len(), self.leader.sector_size().as_usize());
        sector.fill(0);
        let leader = self.leader.encode();
        sector[..leader.len()].copy_from_slice(&leader);
        sector[HOSTID_BITMAP_OFFSET..HOSTID_BITMAP_OFFSET + HOSTID_BITMAP_SIZE]
            .copy_from_slice(self.bitmap.bytes());
        if let Some(block) = &self.mailbox {
            block.encode_into(sector);
        }
    }

    /// The sector size of this lockspace.
    pub fn sector_size(&self) -> SectorSize {
        self.leader.sector_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(n: u64) -> HostId {
        HostId::new(n).unwrap()
    }

    #[test]
    fn bit_positions_match_what_sanlock_wrote() {
        // ondisk.md §4.2 [run]: host 1 → byte 256 = 0x01; host 10 → byte 257 = 0x02;
        // host 1000 → byte 380 = 0x80 (offsets in the sector; the bitmap starts at 256).
        for (h, byte, value) in [(1, 0, 0x01), (10, 1, 0x02), (1000, 124, 0x80)] {
            let mut bitmap = HostBitmap::EMPTY;
            bitmap.set(host(h));
            let mut expected = [0u8; HOSTID_BITMAP_SIZE];
            expected[byte] = value;
            assert_eq!(bitmap.bytes(), &expected, "host {h}");
            assert!(bitmap.test(host(h)));
            assert_eq!(bitmap.hosts(2000).collect::<Vec<_>>(), vec![host(h)]);
            bitmap.clear(host(h));
            assert_eq!(bitmap, HostBitmap::EMPTY);
        }
    }

    #[test]
    fn hosts_stop_at_max_hosts() {
        let mut bitmap = HostBitmap::EMPTY;
        bitmap.set(host(3));
        bitmap.set(host(251));
        assert_eq!(bitmap.hosts(250).collect::<Vec<_>>(), vec![host(3)]);
    }
}
