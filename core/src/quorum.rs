//! A resource lease on one to four disks (Disk Paxos with majorities): the disks' offsets,
//! sanlock's majority rule (src/diskio.c `majority_disks`), and the [`Round`] a paxos step runs
//! on every disk at once — decided as soon as the disks that answered settle it, so a hung or
//! failed minority costs nothing.

use crate::io::{IoBook, IoError, IoId, IoOp, Pending};
use crate::time::Time;

/// The most disks a resource lease may name (SANLK_MAX_DISKS).
pub const MAX_LEASE_DISKS: usize = 4;

/// One of a lease's disks, by its place in the lease's list (0 = the first named).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseDisk(u8);

impl LeaseDisk {
    /// The first disk: the only one of a single-disk lease.
    pub const FIRST: LeaseDisk = LeaseDisk(0);

    /// The disk at `index`, if a lease can have that many.
    pub fn new(index: usize) -> Option<LeaseDisk> {
        (index < MAX_LEASE_DISKS).then_some(LeaseDisk(index as u8))
    }

    /// Its place in the lease's list of disks.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Where a lease's area starts on each of its disks (the same records on every one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseDisks {
    offsets: [u64; MAX_LEASE_DISKS],
    count: u8,
}

impl LeaseDisks {
    /// A lease on one disk.
    pub fn one(offset: u64) -> LeaseDisks {
        LeaseDisks {
            offsets: [offset, 0, 0, 0],
            count: 1,
        }
    }

    /// A lease on these disks, in order; `None` for none or more than four.
    pub fn new(offsets: &[u64]) -> Option<LeaseDisks> {
        if offsets.is_empty() || offsets.len() > MAX_LEASE_DISKS {
            return None;
        }
        let mut all = [0; MAX_LEASE_DISKS];
        all[..offsets.len()].copy_from_slice(offsets);
        Some(LeaseDisks {
            offsets: all,
            count: offsets.len() as u8,
        })
    }

    /// How many disks.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// The lease area's offset on `disk`.
    pub fn offset(&self, disk: LeaseDisk) -> u64 {
        assert!(
            disk.index() < self.count(),
            "{disk:?} of {} disks",
            self.count
        );
        self.offsets[disk.index()]
    }

    /// The first disk's offset (a single-disk lease's only one).
    pub fn first_offset(&self) -> u64 {
        self.offsets[0]
    }

    /// Every disk with its offset, in order.
    pub fn iter(&self) -> impl Iterator<Item = (LeaseDisk, u64)> + '_ {
        self.offsets[..self.count()]
            .iter()
            .enumerate()
            .map(|(i, &o)| (LeaseDisk(i as u8), o))
    }
}

/// sanlock's rule for how many of `disks` must succeed: one of one, more than half otherwise
/// (two of two, two of three, three of four: exactly half is not enough).
pub const fn majority(disks: usize, succeeded: usize) -> bool {
    succeeded > disks / 2
}

/// One disk's part of a round.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Slot<D> {
    /// Writing; a read on the same disk follows if the write succeeds (a ballot phase: Disk
    /// Paxos reads a disk only after its own write there has landed).
    Writing(Pending),
    /// The (last) I/O on this disk is in flight.
    Waiting(Pending),
    /// What this disk's I/O came to.
    Done(D),
}

/// One step of a lease machine on each of its disks: what each disk's I/O came to so far.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Round<D> {
    slots: Vec<Slot<D>>,
}

impl<D> Round<D> {
    /// A round of these slots, one per disk in order.
    pub(crate) fn new(slots: Vec<Slot<D>>) -> Round<D> {
        Round { slots }
    }

    /// How many disks the round runs on.
    pub(crate) fn disks(&self) -> usize {
        self.slots.len()
    }

    /// Every slot, in disk order.
    pub(crate) fn slots(&self) -> &[Slot<D>] {
        &self.slots
    }

    /// The disk whose I/O in flight is `id`, with that I/O.
    pub(crate) fn find(&self, id: IoId) -> Option<(usize, Pending)> {
        self.in_flight().find(|(_, p)| p.id == id)
    }

    /// Every I/O still in flight, with its disk.
    pub(crate) fn in_flight(&self) -> impl Iterator<Item = (usize, Pending)> + '_ {
        self.slots.iter().enumerate().filter_map(|(d, s)| match s {
            Slot::Writing(p) | Slot::Waiting(p) => Some((d, *p)),
            Slot::Done(_) => None,
        })
    }

    /// Disks still to answer that are not known to hang: those a step waits for.
    pub(crate) fn expected(&self, hung: &HungDisks) -> usize {
        self.in_flight().filter(|&(d, _)| !hung.has(d)).count()
    }

    /// The earliest deadline of the I/O in flight.
    pub(crate) fn deadline(&self) -> Option<Time> {
        self.in_flight().map(|(_, p)| p.deadline).min()
    }

    /// What the disks that have answered came to, with their disk.
    pub(crate) fn answers(&self) -> impl Iterator<Item = (usize, &D)> + '_ {
        self.slots.iter().enumerate().filter_map(|(d, s)| match s {
            Slot::Done(v) => Some((d, v)),
            _ => None,
        })
    }

    /// Disk `d` is now in this state.
    pub(crate) fn set(&mut self, d: usize, slot: Slot<D>) {
        self.slots[d] = slot;
    }

    /// Whether disk `d` is writing ahead of a read.
    pub(crate) fn is_writing(&self, d: usize) -> bool {
        matches!(self.slots[d], Slot::Writing(_))
    }
}

/// Disks on which an I/O of ours passed its deadline and has not come back: a step does not
/// wait for them (a hung disk costs one io_timeout per lease machine, not one per step),
/// until the late completion shows the disk answers again (a backend that timed the I/O out
/// itself drops it: for the rest of that machine's life).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct HungDisks {
    timed_out: Vec<(IoId, u8)>,
}

impl HungDisks {
    /// I/O `id` on disk `d` passed its deadline.
    pub(crate) fn timed_out(&mut self, id: IoId, d: usize) {
        self.timed_out.push((id, d as u8));
    }

    /// A late completion came: its disk answers again, if nothing else of ours hangs there.
    pub(crate) fn answered(&mut self, id: IoId) {
        self.timed_out.retain(|&(i, _)| i != id);
    }

    /// Whether disk `d` hangs.
    pub(crate) fn has(&self, d: usize) -> bool {
        self.timed_out.iter().any(|&(_, x)| usize::from(x) == d)
    }
}

/// The error a round of writes (or reads) that missed its majority reports: a timeout if any
/// disk timed out (sanlock's write_new_leader), else the first disk's error.
pub(crate) fn merged_error(errors: impl Iterator<Item = IoError>) -> IoError {
    let mut first = None;
    for e in errors {
        if e == IoError::TimedOut {
            return e;
        }
        first.get_or_insert(e);
    }
    first.unwrap_or(IoError::TimedOut)
}

/// The same I/O, one per disk (an op with its byte offset from the lease area's start).
pub(crate) fn every_disk<D>(
    book: &mut IoBook,
    now: Time,
    disks: &LeaseDisks,
    timeout: std::time::Duration,
    from_area: u64,
    op: &IoOp,
    write_then_read: bool,
) -> Round<D> {
    let slots = disks
        .iter()
        .map(|(disk, offset)| {
            let io = book.submit(
                now,
                crate::io::DiskRef::Lease(disk),
                offset + from_area,
                op.clone(),
                timeout,
            );
            if write_then_read {
                Slot::Writing(io)
            } else {
                Slot::Waiting(io)
            }
        })
        .collect();
    Round::new(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_is_sanlocks_one_of_one_then_more_than_half() {
        // src/diskio.c majority_disks: 1→1, 2→2, 3→2, 4→3.
        let need = |n| (1..=n).find(|&k| majority(n, k)).unwrap();
        assert_eq!(
            [need(1), need(2), need(3), need(4)],
            [1, 2, 2, 3],
            "disks needed for 1, 2, 3, 4 disks"
        );
        assert!(!majority(1, 0));
        assert!(
            !majority(4, 2),
            "exactly half of an even count is not enough"
        );
    }

    #[test]
    fn lease_disks_keep_their_order_and_refuse_none_or_five() {
        let d = LeaseDisks::new(&[0, 1 << 20, 7 << 20]).unwrap();
        assert_eq!(d.count(), 3);
        assert_eq!(
            d.iter()
                .map(|(disk, o)| (disk.index(), o))
                .collect::<Vec<_>>(),
            vec![(0, 0), (1, 1 << 20), (2, 7 << 20)]
        );
        assert_eq!(LeaseDisks::new(&[]), None);
        assert_eq!(LeaseDisks::new(&[0; 5]), None);
        assert_eq!(LeaseDisks::one(512), LeaseDisks::new(&[512]).unwrap());
        assert_eq!(LeaseDisk::new(4), None);
    }

    #[test]
    fn a_missed_majority_reports_a_timeout_before_any_other_error() {
        let e = |v: &[IoError]| merged_error(v.iter().copied());
        assert_eq!(
            e(&[IoError::Failed(5), IoError::TimedOut]),
            IoError::TimedOut
        );
        assert_eq!(e(&[IoError::Failed(5), IoError::Short]), IoError::Failed(5));
    }
}
