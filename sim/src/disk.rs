//! The shared disk every host sees: sectors that are each written atomically, and reads that see
//! every sector as it was at its own instant during the read (a read of many sectors is many
//! sector transfers, and a write to one of them may land between them).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use sanlock_core::rng::Rng;

/// One disk of the simulated world.
#[derive(Debug)]
pub struct SimDisk {
    data: Vec<u8>,
    sector: usize,
    /// Recent overwrites, oldest first: when, which sector, what it held before.
    history: VecDeque<(Duration, usize, Box<[u8]>)>,
    /// How long overwrites are remembered: the longest read that may still complete.
    window: Duration,
    sectors_written: u64,
    bytes_read: u64,
}

impl SimDisk {
    /// A disk holding `image`, in sectors of `sector` bytes; reads last at most `window`.
    pub fn new(image: Vec<u8>, sector: usize, window: Duration) -> Self {
        assert_eq!(image.len() % sector, 0, "the image is whole sectors");
        SimDisk {
            data: image,
            sector,
            history: VecDeque::new(),
            window,
            sectors_written: 0,
            bytes_read: 0,
        }
    }

    /// Sector size in bytes.
    pub fn sector_size(&self) -> usize {
        self.sector
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether it has no sectors.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The bytes as they are now (the checkers look at the disk directly).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Lands one sector at world time `at` (writes land in time order).
    pub fn land(&mut self, at: Duration, sector: usize, bytes: &[u8]) {
        assert_eq!(bytes.len(), self.sector);
        let range = sector * self.sector..(sector + 1) * self.sector;
        let old: Box<[u8]> = self.data[range.clone()].into();
        self.data[range].copy_from_slice(bytes);
        self.history.push_back((at, sector, old));
        self.sectors_written += 1;
        while self
            .history
            .front()
            .is_some_and(|(t, _, _)| at.saturating_sub(*t) > self.window)
        {
            self.history.pop_front();
        }
    }

    /// A read of `len` bytes at `offset` that started at `started` and completes `now`: each
    /// sector overwritten meanwhile is seen as it was at a random instant of the read. `None`
    /// when the range is not on the disk.
    pub fn read(
        &mut self,
        offset: u64,
        len: usize,
        started: Duration,
        now: Duration,
        rng: &mut Rng,
    ) -> Option<Bytes> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(len)?;
        if end > self.data.len() || start % self.sector != 0 || len % self.sector != 0 {
            return None;
        }
        self.bytes_read += len as u64;
        let mut out = self.data[start..end].to_vec();
        let (first, last) = (start / self.sector, end / self.sector);
        // Each overwritten sector gets one instant u; undoing its overwrites after u, newest
        // first, leaves the value it had at u.
        let span = now.saturating_sub(started).as_nanos() as u64;
        let mut instants: Vec<(usize, Duration)> = Vec::new();
        for (t, sector, old) in self.history.iter().rev() {
            if *t <= started {
                break;
            }
            if *sector < first || *sector >= last {
                continue;
            }
            let u = match instants.iter().find(|(s, _)| s == sector) {
                Some(&(_, u)) => u,
                None => {
                    let u = started + Duration::from_nanos(rng.below(span + 1));
                    instants.push((*sector, u));
                    u
                }
            };
            if *t > u {
                let at = (sector - first) * self.sector;
                out[at..at + self.sector].copy_from_slice(old);
            }
        }
        Some(Bytes::from(out))
    }

    /// Sectors landed so far.
    pub fn sectors_written(&self) -> u64 {
        self.sectors_written
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

/// A lease's leader as a reader of all its disks finds it: valid, and the same (its first 152
/// bytes, before the timestamp) on a majority of the `sectors`, one per disk.
pub fn agreed_leader<'a>(
    sectors: impl Iterator<Item = &'a [u8]>,
) -> Option<sanlock_core::ondisk::RawLeader> {
    use sanlock_core::ondisk::{leader::LEADER_COMPARE_LEN, LeaderKind, RawLeader};
    let mut disks = 0;
    let leaders: Vec<RawLeader> = sectors
        .filter_map(|s| {
            disks += 1;
            RawLeader::parse(s)
                .ok()
                .filter(|l| l.verify(LeaderKind::Paxos).is_ok())
        })
        .collect();
    let key = |l: &RawLeader| l.to_bytes()[..LEADER_COMPARE_LEN].to_vec();
    leaders.iter().copied().find(|l| {
        let same = leaders.iter().filter(|m| key(m) == key(l)).count();
        sanlock_core::quorum::majority(disks, same)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_sees_each_overwritten_sector_before_or_after_its_write() {
        let mut seen_old = false;
        let mut seen_new = false;
        let mut rng = Rng::new(5);
        for _ in 0..64 {
            let mut disk = SimDisk::new(vec![0; 4 * 512], 512, Duration::from_secs(10));
            disk.land(Duration::from_millis(5), 2, &[7; 512]);
            let out = disk
                .read(
                    0,
                    2048,
                    Duration::from_millis(1),
                    Duration::from_millis(9),
                    &mut rng,
                )
                .unwrap();
            assert!(out[..1024].iter().all(|&b| b == 0), "untouched sectors");
            match out[1024] {
                0 => seen_old = true,
                7 => seen_new = true,
                b => panic!("torn sector {b}"),
            }
            assert!(
                out[1024..1536].iter().all(|&b| b == out[1024]),
                "sectors are atomic"
            );
            // Written before the read started: always seen.
            let after = disk
                .read(
                    1024,
                    512,
                    Duration::from_millis(6),
                    Duration::from_millis(9),
                    &mut rng,
                )
                .unwrap();
            assert_eq!(after[0], 7);
        }
        assert!(seen_old && seen_new);
        let mut disk = SimDisk::new(vec![0; 1024], 512, Duration::from_secs(1));
        assert!(disk
            .read(1024, 512, Duration::ZERO, Duration::ZERO, &mut rng)
            .is_none());
        assert!(disk
            .read(100, 512, Duration::ZERO, Duration::ZERO, &mut rng)
            .is_none());
    }
}
