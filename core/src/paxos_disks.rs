//! The paxos lease on several disks: what each disk's answer to a step comes to (its
//! [`Digest`]), and when the answers so far decide the step ([`Merged`]). sanlock 3.8.5's rules
//! (paxos_lease.c `run_ballot`, `_leader_read_num`, `_lease_read_num`, `write_new_leader`):
//! a step needs a majority of disks; a leader counts when the same leader (its first 152
//! bytes) was read on a majority (where a majority read disagrees, 3.8.5 fails with
//! LEADER_DIFF for good; we start from the newest); a later version or larger ballot on any
//! disk loses the ballot. Where 3.8.5 uses the first disk only (the owner's and holders' dblocks, the LVB) we
//! read every disk, so that losing the first one loses nothing. With one disk every rule
//! reduces to that disk's own answer.

use super::{Current, PaxosLease, Seen, Step};
use crate::ids::{HostId, Lver};
use crate::io::{IoError, IoResult};
use crate::mutants::Mutant;
use crate::ondisk::dblock::{Mbal, MBLOCK_OFFSET};
use crate::ondisk::{LeaderRecord, Lvb, ModeBlock, PaxosDblock};
use crate::quorum::{majority, merged_error, HungDisks, Round, Slot};
use crate::rv::{SANLK_DBLOCK_CHECKSUM, SANLK_DBLOCK_READ, SANLK_DBLOCK_WRITE, SANLK_LEADER_READ};

/// What one disk's I/O of a step came to, kept until the step is decided.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Digest {
    /// A write.
    Written(Result<(), IoError>),
    /// A leader sector, checked as sanlock does.
    Leader(Result<LeaderRecord, i32>),
    /// The whole lease, read at the start of an attempt.
    Lease(Result<LeaseRead, i32>),
    /// A ballot phase on this disk.
    Phase(Result<PhaseRead, PhaseFailure>),
    /// A ballot phase's read on a disk where its write failed (none: the read failed too):
    /// a later version or larger ballot, a value and the mode blocks there count against
    /// us; the disk does not count toward the majority.
    Unwritten(Option<PhaseRead>),
    /// The owner's sector.
    Dblock(Result<OwnerSector, i32>),
    /// A shared holder's sector (none: unreadable).
    Mode(Option<HolderSector>),
    /// The lock value block (none: unreadable).
    Lvb(Option<Lvb>),
    /// The mode blocks after another host committed our value (none: unreadable).
    Modes(Option<Modes>),
    /// A sector of the lockspace (an owner's delta lease): one disk, used as read.
    Raw(IoResult),
}

/// The lease as one disk holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct LeaseRead {
    pub(super) leader: LeaderRecord,
    /// What its dblocks show; none when the leader's sizes differ from those read with (the
    /// read is done again with its sizes).
    pub(super) dblocks: Option<LeaseDblocks>,
}

/// What the dblocks of a lease read show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct LeaseDblocks {
    /// The largest mbal.
    pub(super) max_mbal: u64,
    /// Our own dblock (of several disks, the most advanced).
    pub(super) ours: Option<PaxosDblock>,
    /// The leader's owner's sector, if the read reached it.
    pub(super) owner: Option<(HostId, OwnerSector)>,
}

/// A shared holder's sector as one disk holds it: its mode block, and where that sector
/// stands among the holder's own writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct HolderSector {
    /// (lver, mbal, stage): a holder's dblock only moves forward, and within one ballot it
    /// is written without a value (phase 1, stage 0), with one (phase 2, 1), RELEASED with
    /// SHARED (the shared hold, 2), then RELEASED without (the shared release, 3).
    newness: (u64, u64, u8),
    mode: ModeBlock,
}

impl HolderSector {
    fn decode(sector: &[u8]) -> Option<HolderSector> {
        // A holder never writes a zero sector; a host clearing a dead one does, on every disk.
        // On one disk it is a disk replaced by a zeroed one: no word of the holder's (seed 1326).
        if sector.iter().all(|&b| b == 0) {
            return None;
        }
        let mode = ModeBlock::decode(sector.get(MBLOCK_OFFSET..)?, 0).ok()?;
        let newness = PaxosDblock::decode(sector, 0).map_or((0, 0, 0), |d| {
            let stage = match (d.released(), mode.shared) {
                (false, _) if d.bal.0 == 0 => 0,
                (false, _) => 1,
                (true, true) => 2,
                (true, false) => 3,
            };
            (d.lver.0, d.mbal.0, stage)
        });
        Some(HolderSector { newness, mode })
    }

    fn shared(&self) -> bool {
        self.mode.shared && self.mode.generation.0 != 0
    }
}

/// The sector of a lease's owner: its dblock, and whether its mode block says SHARED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct OwnerSector {
    pub(super) dblock: PaxosDblock,
    pub(super) shared: bool,
}

impl OwnerSector {
    fn decode(sector: &[u8], at: u64) -> Result<OwnerSector, i32> {
        let dblock = PaxosDblock::decode(sector, at).map_err(|_| SANLK_DBLOCK_CHECKSUM)?;
        let shared = sector
            .get(MBLOCK_OFFSET..)
            .is_some_and(|m| ModeBlock::decode(m, 0).is_ok_and(|m| m.shared));
        Ok(OwnerSector { dblock, shared })
    }

    /// The owner's own word that it let version `lver` go: RELEASED at it or later (it
    /// writes nothing else there). With SHARED it still holds the lease shared.
    pub(super) fn let_go(&self, lver: Lver) -> bool {
        self.dblock.released() && self.dblock.lver >= lver
    }

    /// How far along the owner's writes this sector is: version, ballot, then a phase 2 past
    /// its phase 1, a release past both, SHARED last. Of the owner's sectors on several disks
    /// the newest is its word, as one disk's would be: a RELEASED that an earlier attempt (a
    /// retract, or a phase 1 carrying that attempt's value) left on a disk that missed the
    /// owner's winning ballot is stale — taken for a release, it let a second host in beside
    /// the holder (docs/SIMULATION.md, four disks).
    pub(super) fn newness(&self) -> ((Lver, Mbal, Mbal, bool), bool) {
        (progress(&self.dblock), self.shared)
    }
}

/// How far along one host's writes a dblock of its own is: version, ballot, then at one
/// ballot a phase 2 past its phase 1 and a RELEASED past both.
fn progress(d: &PaxosDblock) -> (Lver, Mbal, Mbal, bool) {
    (d.lver, d.mbal, d.bal, d.released())
}

/// The latest version among `dblocks` past `lver`, if any.
fn later_version(dblocks: &[PaxosDblock], lver: Lver) -> Option<Lver> {
    dblocks.iter().map(|d| d.lver).filter(|&l| l > lver).max()
}

/// What one disk's phase read showed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct PhaseRead {
    /// A later version or a larger ballot: the ballot is lost.
    pub(super) beaten: bool,
    /// The latest version a dblock showed past the ballot's, if any.
    pub(super) later: Option<Lver>,
    /// Phase 1: the value of the highest ballot among the contenders.
    pub(super) best: Option<PaxosDblock>,
    /// Phase 1: other hosts whose mode blocks say SHARED, ascending.
    pub(super) shared: Vec<HostId>,
}

/// Where a disk's part of a phase failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum PhaseFailure {
    Write,
    Read,
}

/// The mode blocks, as read after another host committed our value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Modes {
    /// Our dblock already says we let this version go.
    pub(super) ours_released: bool,
    /// Other hosts holding it shared, ascending.
    pub(super) shared: Vec<HostId>,
}

/// A decided step.
#[derive(Debug)]
pub(super) enum Merged {
    Written(Result<(), IoError>),
    /// A write waited for on every disk not known to hang: as `Written`, and whether a
    /// disk that answered failed.
    Everywhere {
        written: Result<(), IoError>,
        missed: bool,
    },
    Leader(Result<LeaderRecord, i32>),
    Lease(Result<LeaseRead, i32>),
    Phase(Result<PhaseRead, i32>),
    /// The owner's sector if it says it let the version the leader names go (none: it did
    /// not).
    OwnerReleased(Result<Option<OwnerSector>, i32>),
    Mode(Option<ModeBlock>),
    Lvb(Option<Lvb>),
    Modes(Option<Modes>),
    Raw(IoResult),
}

impl Merged {
    pub(super) fn written(self) -> Result<(), IoError> {
        match self {
            Merged::Written(r) => r,
            other => unreachable!("a write step decided as {other:?}"),
        }
    }

    pub(super) fn leader(self) -> Result<LeaderRecord, i32> {
        match self {
            Merged::Leader(r) => r,
            other => unreachable!("a leader read decided as {other:?}"),
        }
    }
}

/// Disks that answered `Ok` in a round of digests, by `ok`.
fn count(round: &Round<Digest>, ok: impl Fn(&Digest) -> bool) -> usize {
    round.answers().filter(|(_, d)| ok(d)).count()
}

impl PaxosLease {
    /// What one disk's answer means to the step under way.
    pub(super) fn digest(&self, result: IoResult) -> Digest {
        match &self.phase {
            Step::ReadLease { hosts, .. } => Digest::Lease(self.lease_on_disk(*hosts, result)),
            Step::ReadOwnerDelta { .. } => Digest::Raw(result),
            Step::ReadOwnerDblock { .. } => Digest::Dblock(match result {
                Ok(sector) => OwnerSector::decode(&sector, 0),
                Err(e) => Err(e.rv()),
            }),
            Step::RereadOwnerLeader { .. }
            | Step::RereadBeforeBallot { .. }
            | Step::ReleaseReadLeader { .. } => Digest::Leader(self.check_leader(result)),
            Step::Phase1 { ballot, .. } => Digest::Phase(match result {
                Ok(area) => Ok(self.phase1_on_disk(&area, ballot)),
                Err(_) => Err(PhaseFailure::Read),
            }),
            Step::Phase2 { ballot, .. } => Digest::Phase(match result {
                Ok(area) => {
                    let dblocks = self.dblocks(&area, &ballot.cur);
                    Ok(PhaseRead {
                        beaten: dblocks
                            .iter()
                            .any(|bk| ballot.judge(bk, self.mutants) == Seen::Beaten),
                        later: later_version(&dblocks, ballot.next_lver),
                        ..PhaseRead::default()
                    })
                }
                Err(_) => Err(PhaseFailure::Read),
            }),
            Step::ReadHolder { .. } => {
                Digest::Mode(result.ok().and_then(|sector| HolderSector::decode(&sector)))
            }
            Step::ReadLvb { .. } => Digest::Lvb(result.ok().map(|s| Lvb::from_sector(&s))),
            Step::ReadModesAfterAdoption { ballot, leader, .. } => {
                Digest::Modes(result.ok().map(|area| {
                    let g = self.config.geometry;
                    let at = g.sector_offset(g.dblock_sector(self.config.host_id)) as usize;
                    let ours = area
                        .get(at..at + self.ss())
                        .and_then(|sector| PaxosDblock::decode(sector, 0).ok());
                    Modes {
                        ours_released: ours.is_some_and(|d| d.released() && d.lver >= leader.lver),
                        shared: self.shared_mode_blocks(&area, &ballot.cur),
                    }
                }))
            }
            _ => Digest::Written(result.map(|_| ())),
        }
    }

    /// §7.1 on one disk: the leader checked as sanlock does, then (at its sizes) every dblock.
    fn lease_on_disk(&self, hosts: Option<u64>, result: IoResult) -> Result<LeaseRead, i32> {
        let area = result.map_err(IoError::rv)?;
        let leader = self.check_leader(Ok(area.clone()))?;
        // The lease's own sizes come before its dblocks (3.8.5 looks first and can run past
        // its buffer, algorithms.md §7.1 step 4).
        if leader.geometry != self.config.geometry {
            return Ok(LeaseRead {
                leader,
                dblocks: None,
            });
        }
        let ss = self.ss();
        let mut seen = LeaseDblocks::default();
        let read = hosts.map_or(leader.num_hosts, |m| m.min(leader.num_hosts));
        for q in 1..=read as usize {
            let at = (q + 1) * ss;
            let sector = area.get(at..at + ss).ok_or(SANLK_DBLOCK_READ)?;
            let o = OwnerSector::decode(sector, at as u64)?;
            let d = o.dblock;
            seen.max_mbal = seen.max_mbal.max(d.mbal.0);
            if q as u64 == self.config.host_id.get() {
                seen.ours = Some(d);
            }
            if let Some(owner) = leader.owner_id.filter(|o| o.get() == q as u64) {
                seen.owner = Some((owner, o));
            }
        }
        Ok(LeaseRead {
            leader,
            dblocks: Some(seen),
        })
    }

    /// Phase 1 on one disk: beaten, or the best contender and the SHARED mode blocks.
    fn phase1_on_disk(&self, area: &[u8], ballot: &super::Ballot) -> PhaseRead {
        let mut read = PhaseRead {
            shared: self.shared_mode_blocks(area, &ballot.cur),
            ..PhaseRead::default()
        };
        let dblocks = self.dblocks(area, &ballot.cur);
        for &bk in &dblocks {
            match ballot.judge(&bk, self.mutants) {
                Seen::Older => continue,
                Seen::Beaten => {
                    read.beaten = true;
                    read.later = later_version(&dblocks, ballot.next_lver);
                    return read;
                }
                Seen::Contender => {}
            }
            if bk.inp == 0 || bk.bal.0 == 0 {
                continue;
            }
            if read.best.is_none_or(|b| bk.bal > b.bal) {
                read.best = Some(bk);
            }
        }
        read
    }

    /// Whether the disks that answered decide the step under way, and how. Reads wait for
    /// every disk not known to hang (a disk that lost its contents — replaced by a zeroed one —
    /// must never be half of the majority a decision rests on while a disk that kept them
    /// could still answer); a later version or larger ballot, a write majority, or a majority
    /// out of reach decide at once.
    pub(super) fn decide(&self) -> Option<Merged> {
        let round = self.round()?;
        let expected = round.expected(&self.hung);
        match &self.phase {
            Step::ReadLease { .. } => self.decide_lease(round, expected).map(Merged::Lease),
            Step::ReadOwnerDelta { .. } => round.answers().find_map(|(_, d)| match d {
                Digest::Raw(r) => Some(Merged::Raw(r.clone())),
                _ => None,
            }),
            Step::ReadOwnerDblock { cur, .. } => decide_owner_dblock(round, expected, cur),
            Step::RereadOwnerLeader { .. }
            | Step::RereadBeforeBallot { .. }
            | Step::ReleaseReadLeader { .. } => self
                .decide_leader(round, expected, SANLK_LEADER_READ, |d| match d {
                    Digest::Leader(r) => r.as_ref().ok().copied(),
                    _ => None,
                })
                .map(Merged::Leader),
            Step::Phase1 { .. } | Step::Phase2 { .. } => self.decide_phase(round, expected),
            Step::ReadHolder { .. } => decide_mode(round, expected),
            Step::ReadLvb { .. } => decide_lvb(round, &self.hung),
            Step::ReadModesAfterAdoption { .. } => decide_modes(round, expected),
            Step::ReleaseSharedDblock { .. } | Step::ClearModeWrite { .. } => {
                decide_written_everywhere(round, expected, &self.hung)
            }
            _ => decide_written(round, expected, &self.hung),
        }
    }

    /// The lease read: a leader agreed on by a majority, with the largest mbal and our most
    /// advanced dblock of every disk read.
    fn decide_lease(
        &self,
        round: &Round<Digest>,
        expected: usize,
    ) -> Option<Result<LeaseRead, i32>> {
        let read = |d: &Digest| match d {
            Digest::Lease(Ok(r)) => Some(*r),
            _ => None,
        };
        let leader = self.decide_leader(round, expected, SANLK_DBLOCK_READ, |d| {
            read(d).map(|r| r.leader)
        });
        let leader = match leader? {
            Ok(leader) => leader,
            Err(rv) => return Some(Err(rv)),
        };
        let mut seen = LeaseDblocks::default();
        for disk in round
            .answers()
            .filter_map(|(_, d)| read(d))
            .filter(|r| r.leader.geometry == leader.geometry)
            .filter_map(|r| r.dblocks)
        {
            seen.max_mbal = seen.max_mbal.max(disk.max_mbal);
            if let Some(o) = disk.ours {
                if seen.ours.is_none_or(|a| progress(&o) > progress(&a)) {
                    seen.ours = Some(o);
                }
            }
            // The owner's dblock of the leader agreed on: its newest sector among the disks
            // (a release, or its shared hold, may have reached one disk only so far).
            if let Some((q, o)) = disk.owner.filter(|(q, _)| Some(*q) == leader.owner_id) {
                if seen.owner.is_none_or(|(_, s)| o.newness() > s.newness()) {
                    seen.owner = Some((q, o));
                }
            }
        }
        let dblocks = (leader.geometry == self.config.geometry).then_some(seen);
        Some(Ok(LeaseRead { leader, dblocks }))
    }

    /// A leader read on a majority of disks and the same there (its first 152 bytes), taken
    /// from the first such disk; when a majority read but none agree, the newest; `unread`
    /// when too few disks read; with one disk (or one error everywhere) that disk's error.
    fn decide_leader(
        &self,
        round: &Round<Digest>,
        expected: usize,
        unread: i32,
        leader_of: impl Fn(&Digest) -> Option<LeaderRecord>,
    ) -> Option<Result<LeaderRecord, i32>> {
        let n = round.disks();
        let read: Vec<LeaderRecord> = round.answers().filter_map(|(_, d)| leader_of(d)).collect();
        if self.mutants.has(Mutant::LeaderFromOneDisk) {
            // 3.8.5's single-disk read (_leader_read_one) on a lease of several: the first
            // disk's answer, whatever it is.
            return match round.slots().first() {
                Some(Slot::Done(d)) => Some(leader_of(d).ok_or(match d {
                    Digest::Leader(Err(rv)) | Digest::Lease(Err(rv)) => *rv,
                    _ => unread,
                })),
                _ => None,
            };
        }
        if expected > 0 {
            return None;
        }
        if majority(n, read.len()) {
            // The newest leader read, where 3.8.5 wants the same one on a majority (else
            // LEADER_DIFF, for good). Every leader written is a version's chosen value or its
            // owner's release, so the newest is the lease's latest state; a leader write that
            // landed late (decided at a majority, it went on without it) or a commit that
            // reached a majority of which one disk failed since leaves older ones, and the
            // majority of those would start a ballot for a version already past — beaten for
            // good by a dblock of the next (docs/SIMULATION.md, seed 226). Of one version the
            // released form is the newer: a late commit does not take a lease back.
            let newest = read
                .iter()
                .max_by_key(|l| (l.lver, l.timestamp == 0))
                .expect("a majority read");
            let first = read
                .iter()
                .find(|l| (l.lver, l.timestamp == 0) == (newest.lver, newest.timestamp == 0))
                .expect("one");
            return Some(Ok(*first));
        }
        let errors: Vec<i32> = round
            .answers()
            .filter(|(_, d)| leader_of(d).is_none())
            .map(|(_, d)| match d {
                Digest::Leader(Err(rv)) | Digest::Lease(Err(rv)) => *rv,
                _ => unread,
            })
            .collect();
        if read.is_empty() && errors.len() == n && errors.windows(2).all(|w| w[0] == w[1]) {
            return Some(Err(errors[0]));
        }
        Some(Err(unread))
    }

    /// A ballot phase: lost as soon as any disk shows a later version or larger ballot; won
    /// with a majority of disks written and then read, once every disk has answered.
    fn decide_phase(&self, round: &Round<Digest>, expected: usize) -> Option<Merged> {
        let n = round.disks();
        let reads: Vec<&PhaseRead> = round
            .answers()
            .filter_map(|(_, d)| match d {
                Digest::Phase(Ok(r)) => Some(r),
                _ => None,
            })
            .collect();
        let seen: Vec<&PhaseRead> = round
            .answers()
            .filter_map(|(_, d)| match d {
                Digest::Phase(Ok(r)) | Digest::Unwritten(Some(r)) => Some(r),
                _ => None,
            })
            .collect();
        if seen.iter().any(|r| r.beaten) {
            return Some(Merged::Phase(Ok(PhaseRead {
                beaten: true,
                later: seen.iter().filter_map(|r| r.later).max(),
                ..PhaseRead::default()
            })));
        }
        let enough = |count: usize| {
            if self.mutants.has(Mutant::PhaseByMinority) {
                count > 0
            } else {
                majority(n, count)
            }
        };
        // The mutant decides on the first disk's word, as a phase counted with a minority
        // would; the disks still out are not waited for.
        let counted_early = self.mutants.has(Mutant::PhaseByMinority) && !reads.is_empty();
        if expected > 0 && !counted_early && enough(reads.len() + expected) {
            return None;
        }
        if enough(reads.len()) {
            // The value of the highest ballot among more disks than a majority is as safe a
            // choice: every accepted value with a ballot at or above a chosen one's is it.
            let mut merged = PhaseRead::default();
            for r in &seen {
                if let Some(b) = r.best {
                    if merged.best.is_none_or(|m| b.bal > m.bal) {
                        merged.best = Some(b);
                    }
                }
                merged.shared.extend(r.shared.iter().copied());
            }
            merged.shared.sort_unstable();
            merged.shared.dedup();
            return Some(Merged::Phase(Ok(merged)));
        }
        let write_failed = count(round, |d| {
            matches!(
                d,
                Digest::Phase(Err(PhaseFailure::Write)) | Digest::Unwritten(_)
            )
        });
        Some(Merged::Phase(Err(if majority(n, n - write_failed) {
            SANLK_DBLOCK_READ
        } else {
            SANLK_DBLOCK_WRITE
        })))
    }
}

/// A write that must reach every disk it can (a shared release): decided once every disk
/// not known to hang answered, as `decide_written` would, noting a disk that failed.
fn decide_written_everywhere(
    round: &Round<Digest>,
    expected: usize,
    hung: &HungDisks,
) -> Option<Merged> {
    if expected > 0 {
        return None;
    }
    // A disk that timed out is not written again: it hangs, and its reads do too.
    let missed = count(
        round,
        |d| matches!(d, Digest::Written(Err(e)) if *e != IoError::TimedOut),
    ) > 0;
    match decide_written(round, 0, hung)? {
        Merged::Written(written) => Some(Merged::Everywhere { written, missed }),
        other => unreachable!("a write decided as {other:?}"),
    }
}

/// Writes: done on a majority (the host keeps our later writes to a disk behind the ones
/// still out there), or failed when a majority can no longer be reached.
fn decide_written(round: &Round<Digest>, expected: usize, hung: &HungDisks) -> Option<Merged> {
    let n = round.disks();
    let ok = count(round, |d| matches!(d, Digest::Written(Ok(()))));
    if majority(n, ok) {
        return Some(Merged::Written(Ok(())));
    }
    if expected > 0 && majority(n, ok + expected) {
        return None;
    }
    // A hung disk's write still out is a timeout as far as the caller can tell.
    let errors = round
        .answers()
        .filter_map(|(_, d)| match d {
            Digest::Written(Err(e)) => Some(*e),
            _ => None,
        })
        .chain(
            round
                .in_flight()
                .filter(|&(d, _)| hung.has(d))
                .map(|_| IoError::TimedOut),
        );
    Some(Merged::Written(Err(merged_error(errors))))
}

/// The owner's dblock: released if its newest sector among the disks is RELEASED for the
/// leader's version or later (only the owner writes that), once every disk has answered.
fn decide_owner_dblock(round: &Round<Digest>, expected: usize, cur: &Current) -> Option<Merged> {
    // Every disk not known to hang: the owner's newest sector decides (`newness`).
    if expected > 0 {
        return None;
    }
    let dblocks = || {
        round.answers().filter_map(|(_, d)| match d {
            Digest::Dblock(r) => Some(r),
            _ => None,
        })
    };
    let newest = dblocks()
        .filter_map(|r| r.as_ref().ok())
        .max_by_key(|o| o.newness())
        .copied();
    if let Some(o) = newest {
        // A RELEASED with SHARED is an owner that goes on holding: its convert's write, which
        // a later phase 1 must meet. On a minority it may be a convert that failed, a mode
        // block a majority's phase 1 misses once we free the leader (three disks, seed 1235).
        let shown = dblocks()
            .filter_map(|r| r.as_ref().ok())
            .filter(|s| s.shared && s.let_go(cur.leader.lver))
            .count();
        let let_go = o.let_go(cur.leader.lver) && (!o.shared || majority(round.disks(), shown));
        return Some(Merged::OwnerReleased(Ok(let_go.then_some(o))));
    }
    let first_error = dblocks().find_map(|r| r.err()).unwrap_or(SANLK_DBLOCK_READ);
    Some(Merged::OwnerReleased(Err(first_error)))
}

/// A shared holder's mode block: that of the holder's newest sector among the disks (a
/// SHARED left on one disk by a release or later write that missed it is stale; a SHARED on
/// one disk only may be a shared acquire's write still on its way to the others). Not
/// shared only when every disk answered, or a majority did and the newest is no phase 2
/// (a SHARED follows a phase 2 on a majority, which would show on one of them at least);
/// unreadable otherwise: our phase 1 may have seen SHARED on the disk that did not answer
/// (docs/SIMULATION.md, seeds 6, 19 and 30).
fn decide_mode(round: &Round<Digest>, expected: usize) -> Option<Merged> {
    if expected > 0 {
        return None;
    }
    let n = round.disks();
    let sectors: Vec<HolderSector> = round
        .answers()
        .filter_map(|(_, d)| match d {
            Digest::Mode(m) => *m,
            _ => None,
        })
        .collect();
    let newest = sectors.iter().max_by_key(|s| s.newness);
    Some(Merged::Mode(newest.and_then(|s| {
        let settled = sectors.len() == n || (majority(n, sectors.len()) && s.newness.2 != 1);
        (s.shared() || settled).then_some(s.mode)
    })))
}

/// The LVB of the first disk, in the lease's order, that could be read (3.8.5 reads only
/// the first); hung disks are passed over.
fn decide_lvb(round: &Round<Digest>, hung: &HungDisks) -> Option<Merged> {
    for (d, slot) in round.slots().iter().enumerate() {
        match slot {
            Slot::Done(Digest::Lvb(Some(lvb))) => return Some(Merged::Lvb(Some(lvb.clone()))),
            Slot::Done(_) => continue,
            Slot::Writing(_) | Slot::Waiting(_) if hung.has(d) => continue,
            Slot::Writing(_) | Slot::Waiting(_) => return None,
        }
    }
    Some(Merged::Lvb(None))
}

/// The mode blocks after an adoption, from every disk that answers (a majority at least).
fn decide_modes(round: &Round<Digest>, expected: usize) -> Option<Merged> {
    if expected > 0 {
        return None;
    }
    let read: Vec<&Modes> = round
        .answers()
        .filter_map(|(_, d)| match d {
            Digest::Modes(m) => m.as_ref(),
            _ => None,
        })
        .collect();
    if !majority(round.disks(), read.len()) {
        return Some(Merged::Modes(None));
    }
    let mut shared: Vec<HostId> = read.iter().flat_map(|m| m.shared.iter().copied()).collect();
    shared.sort_unstable();
    shared.dedup();
    Some(Merged::Modes(Some(Modes {
        ours_released: read.iter().any(|m| m.ours_released),
        shared,
    })))
}

#[cfg(test)]
#[path = "paxos_disks_tests.rs"]
mod tests;
