//! The lock value block: one raw sector of application bytes at sector 2002 of a resource area
//! (ondisk.md §5.6). No header, no checksum, no length.

use super::geometry::SectorSize;

/// Application bytes to store in a lease's LVB sector: at most one sector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lvb(Vec<u8>);

/// More bytes than the LVB sector holds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("LVB of {len} bytes does not fit in one {sector_size}-byte sector")]
pub struct LvbTooLong {
    /// Bytes offered.
    pub len: usize,
    /// The lease's sector size.
    pub sector_size: u32,
}

impl Lvb {
    /// Use when the holder sets a value; fails when it is longer than a sector.
    pub fn new(data: &[u8], sector_size: SectorSize) -> Result<Self, LvbTooLong> {
        if data.len() > sector_size.as_usize() {
            return Err(LvbTooLong {
                len: data.len(),
                sector_size: sector_size.bytes(),
            });
        }
        Ok(Lvb(data.to_vec()))
    }

    /// What a reader gets: the whole sector as read (the LVB has no length of its own).
    pub fn from_sector(sector: &[u8]) -> Self {
        Lvb(sector.to_vec())
    }

    /// The bytes held.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The sector to write: the bytes, then zeros.
    pub fn encode(&self, sector_size: SectorSize) -> Vec<u8> {
        assert!(
            self.0.len() <= sector_size.as_usize(),
            "LVB longer than its sector"
        );
        let mut sector = vec![0u8; sector_size.as_usize()];
        sector[..self.0.len()].copy_from_slice(&self.0);
        sector
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvb_is_raw_bytes_zero_padded_to_a_sector() {
        // ondisk.md §5.6 [run]: set_lvb(b"hello-lvb-data") → those bytes then zeros.
        let lvb = Lvb::new(b"hello-lvb-data", SectorSize::Bytes512).unwrap();
        let sector = lvb.encode(SectorSize::Bytes512);
        assert_eq!(&sector[..14], b"hello-lvb-data");
        assert!(sector[14..].iter().all(|&b| b == 0));
        assert_eq!(sector.len(), 512);
        assert_eq!(Lvb::from_sector(&sector).bytes(), &sector[..]);
    }

    #[test]
    fn lvb_longer_than_a_sector_is_refused() {
        let err = Lvb::new(&[0u8; 513], SectorSize::Bytes512).unwrap_err();
        assert_eq!(
            err.to_string(),
            "LVB of 513 bytes does not fit in one 512-byte sector"
        );
        assert!(Lvb::new(&[0u8; 4096], SectorSize::Bytes4096).is_ok());
    }
}
