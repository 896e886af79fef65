//! The paxos lease: one host's exclusive hold on one resource, won by a Disk Paxos ballot
//! (Gafni & Lamport) as sanlock 3.8.5 runs it (paxos_lease.c `paxos_lease_acquire`,
//! `run_ballot`, `paxos_lease_release`; algorithms.md §7-8).
//!
//! One [`PaxosLease`] is one acquire-hold-release of one resource by one host, exclusive or
//! shared. It is a pure
//! state machine: time and I/O completions in, I/O requests, events and a deadline out. It asks
//! its driver for what only the host knows with [`Event::NeedOwnerStatus`] (the monitor's view
//! of the current owner's delta lease), answered with [`PaxosLease::owner_status`].
//!
//! I/O sequences (H = our host_id, ss = sector size, n = the lease's num_hosts):
//!
//! | step | I/O |
//! | --- | --- |
//! | read the lease | align bytes at the lease offset: leader, request, every dblock |
//! | owner-liveness check (owner not us, lease held) | per second: owner's delta sector on the lockspace disk, then our lease's leader sector |
//! | re-read before a ballot (not before the first one when the lease was free or ours) | leader sector |
//! | ballot phase 1 / phase 2 | write our dblock sector; read (n + 2) sectors |
//! | commit | write the leader sector |
//! | release | write our dblock sector (RELEASED); read the leader; write it with timestamp 0 unless another host wrote it last |
//! | shared acquire (§9.1) | the exclusive acquire with SHORT_HOLD in the commit; our dblock sector (RELEASED + SHARED mode block); then the release's leader steps |
//! | exclusive acquire over shared holders (§9.2) | after the commit, per host whose mode block said SHARED: read its dblock sector, zero it if the host is dead; release again with -EAGAIN if one is alive |
//! | shared release (§9.3) | our dblock sector, RELEASED, mode block zero |
//!
//! A free, uncontended lease costs 6 I/Os, as in sanlock: read, write, read, write, read,
//! write. The phase reads cover n + 2 sectors instead of sanlock's next power of two: the same
//! dblocks, fewer bytes.

use std::collections::VecDeque;
use std::time::Duration;

use crate::hosts::{HostStatus, ReadBound};
use crate::ids::{Generation, HostId, Lver};
use crate::io::{Completion, DiskRef, IoBook, IoError, IoId, IoOp, IoRequest, IoResult};
use crate::mutants::{Mutant, Mutations};
use crate::ondisk::dblock::{DBLOCK_FL_RELEASED, MBLOCK_OFFSET};
use crate::ondisk::leader::{LEADER_RECORD_SIZE, LFL_SHORT_HOLD};
use crate::ondisk::{
    DblockSector, Geometry, LeaderKind, LeaderRecord, Lvb, Mbal, ModeBlock, Name, PaxosDblock,
    RawLeader, RecordKind, SectorNr,
};
use crate::quorum::{every_disk, HungDisks, LeaseDisk, LeaseDisks, Round, Slot};
use crate::rng::Rng;
use crate::rv::SANLK_AIO_TIMEOUT;
use crate::time::Time;
use crate::timeouts::Timeouts;

pub use crate::rv::{
    SANLK_ACQUIRE_IDLIVE, SANLK_ACQUIRE_LVER, SANLK_ACQUIRE_OTHER, SANLK_ACQUIRE_OWNED,
    SANLK_ACQUIRE_OWNED_RETRY, SANLK_ACQUIRE_SHRETRY, SANLK_DBLOCK_CHECKSUM, SANLK_DBLOCK_LVER,
    SANLK_DBLOCK_MBAL, SANLK_DBLOCK_READ, SANLK_DBLOCK_WRITE, SANLK_LEADER_READ,
    SANLK_LEADER_WRITE, SANLK_RELEASE_LVER, SANLK_RELEASE_OWNER,
};

/// Which resource lease, and who we are in its lockspace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PaxosConfig {
    /// The lockspace name.
    pub space_name: Name,
    /// The resource name.
    pub resource_name: Name,
    /// The lease's geometry (at first the lockspace's; adopted from the leader when it differs).
    pub geometry: Geometry,
    /// Where the lease area starts on each of its disks (one to four, the same records on
    /// each: a step succeeds on a majority of them).
    pub disks: LeaseDisks,
    /// Our host_id in the lockspace.
    pub host_id: HostId,
    /// Our delta lease generation.
    pub generation: Generation,
    /// The lockspace's timeouts (our N).
    pub timeouts: Timeouts,
    /// The lockspace's geometry and offset, to read an owner's delta lease.
    pub lockspace_geometry: Geometry,
    /// Byte offset of the lockspace area.
    pub lockspace_offset: u64,
    /// Seeds the ballot retry jitter.
    pub rng_seed: u64,
}

/// What the caller asks of an acquire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AcquireRequest {
    /// SANLK_RES_LVER: the lease must be at this version.
    pub lver: Option<Lver>,
    /// SANLK_ACQUIRE_OWNER_NOWAIT: fail rather than wait for a possibly dead owner.
    pub owner_nowait: bool,
    /// SANLK_RES_SHARED: hold the lease shared (a mode block), not exclusively.
    pub shared: bool,
    /// SANLK_ACQUIRE_LVB: read the lock value block once the lease is ours.
    pub lvb: bool,
}

/// -EAGAIN: an exclusive acquire found live shared holders.
pub const EAGAIN: i32 = -11;
/// -EALREADY: a convert to the mode already held.
pub const EALREADY: i32 = -114;
/// Shared acquires retried when another host is passing through (config `sh_retries`).
pub const SH_RETRIES: u32 = 8;

/// What the machine reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// Answer with [`PaxosLease::host_statuses`]: the monitor's status of these shared
    /// holders, in this order.
    NeedHostStatus {
        /// Hosts whose mode blocks said SHARED during our ballot.
        hosts: Vec<HostId>,
    },
    /// Answer with [`PaxosLease::owner_status`]: the monitor's status of this host_id.
    NeedOwnerStatus {
        /// The current owner's host_id.
        host_id: HostId,
    },
    /// We hold the lease at this version.
    Acquired {
        /// The committed leader.
        leader: LeaderRecord,
        /// The lock value block, when the acquire asked for it.
        lvb: Option<Lvb>,
    },
    /// A convert finished: we now hold the lease in this mode.
    Converted {
        /// Shared (after EX→SH) or exclusive (after SH→EX).
        shared: bool,
    },
    /// A convert failed with this result; the lease is still held in its old mode.
    ConvertFailed {
        /// SANLK_*, -EAGAIN (live shared holders), -EALREADY, or an I/O result.
        rv: i32,
    },
    /// The acquire failed with this sanlock result.
    AcquireFailed {
        /// SANLK_* or -errno.
        rv: i32,
    },
    /// Released (on disk, or left to our RELEASED dblock when another host wrote the leader).
    Released,
    /// The release failed with this result; the lease may still be ours on disk. After
    /// SANLK_AIO_TIMEOUT (and, on a lease of several disks, any I/O error) the machine goes
    /// on releasing in the background (not done yet) and ends with [`Event::ReleaseRetried`].
    ReleaseFailed {
        /// SANLK_* or -errno.
        rv: i32,
    },
    /// A release that timed out, retried in the background, has ended: 0 (the lease is free)
    /// or the error that stopped it. Its caller was answered at the first timeout.
    ReleaseRetried {
        /// 0, SANLK_* or -errno.
        rv: i32,
    },
}

/// One host's paxos lease on one resource, exclusive or shared.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PaxosLease {
    config: PaxosConfig,
    request: AcquireRequest,
    sh_retries_left: u32,
    /// An LVB value set by the holder, written before the release.
    dirty_lvb: Option<Lvb>,
    /// SANLK_REL_RENAME: the name the released leader carries.
    rename_to: Option<Name>,
    /// While converting SH→EX: the shared hold to return to if the convert fails (boxed: a
    /// held lease keeps only a pointer's room for it).
    converting: Option<Box<(LeaderRecord, PaxosDblock)>>,
    /// The lease version and value timestamp (inp3) this attempt's phase 2 proposed: the only
    /// value naming us that we may adopt (an older attempt's value may have been retracted).
    proposed: Option<(Lver, u64)>,
    /// The last dblock this machine wrote: a held lease's later writes never take our dblock
    /// back to an earlier version than it (a failed SH→EX convert leaves a later one).
    last_dblock: Option<PaxosDblock>,
    /// Other hosts whose mode blocks said SHARED in this ballot's phase 1 (or in the read after
    /// another host committed our value), ascending: a list, not a 2000-bit map, since it is
    /// almost always empty and every lease machine carries it.
    shared_seen: Vec<HostId>,
    /// How far ballot reads must reach, from our lockspace's last renewal (none: all).
    read_bound: Option<ReadBound>,
    /// Lease disks with an I/O of ours past its deadline still out.
    hung: HungDisks,
    /// Disks (bits) where the write of the ballot phase under way failed: read for what they
    /// show, never counted toward its majority.
    unwritten: u8,
    /// Our dblock on disk may carry a value naming us, or the leader names us though we do
    /// not hold the lease, and no RELEASED has followed (see `acquire_failed`).
    exposed: bool,
    /// The leader an EX→SH convert could not free: freed when the shared hold is released.
    leader_left: Option<LeaderRecord>,
    phase: Step,
    rng: Rng,
    io: IoBook,
    events: VecDeque<Event>,
    mutants: Mutations,
}

/// The lease as read at the start of an attempt ("cur" in paxos_lease.c).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Current {
    leader: LeaderRecord,
    max_mbal: u64,
    /// Our own dblock (of several disks, the most advanced).
    ours: Option<PaxosDblock>,
    /// The owner's sector as that read found it (none: the read did not reach it).
    owner_sector: Option<OwnerSector>,
    /// We go to the ballot because the owner let its version go while holding the lease
    /// shared: it is a shared holder, whether or not the ballot's reads meet its mode block.
    owner_shared: bool,
}

impl Current {
    /// Our own dblock, when it is for a later version than the leader: a late leader write
    /// (another host's, issued before ours) put an older version back on disk.
    fn ours_ahead(&self) -> Option<PaxosDblock> {
        self.ours.filter(|d| d.lver > self.leader.lver)
    }
}

/// The owner-liveness wait (algorithms.md §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct OwnerWait {
    owner: HostId,
    owner_generation: Generation,
    wait_start: Time,
    last_ts: u64,
    /// Our monitor saw the owner's lease change in its latest scan.
    monitor_saw_change: bool,
    /// How long a silent owner takes to be certainly dead (its 8N + 60).
    dead_after: Duration,
}

/// A ballot in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Ballot {
    cur: Current,
    next_lver: Lver,
    mbal: Mbal,
    /// A value an earlier attempt of ours wrote for this version: phase 1 keeps it in our
    /// dblock (as Disk Paxos does, where 3.8.5 zeroes it), since it may be the chosen one.
    carried: Option<PaxosDblock>,
    /// This ballot completes a version whose value is an earlier attempt's of ours, which we
    /// do not hold: it commits that value as released, then the acquire starts over.
    settle: bool,
    /// A lost try of this ballot saw a dblock of this later version.
    later: Option<Lver>,
}

/// What a ballot makes of another host's dblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// For an earlier lease version: irrelevant.
    Older,
    /// A later version, or a larger ballot for ours: this ballot is lost (SANLK_DBLOCK_LVER /
    /// SANLK_DBLOCK_MBAL).
    Beaten,
    /// Same version, no larger ballot: its value may have to be adopted (phase 1).
    Contender,
}

impl Ballot {
    /// The rule both phases apply to every dblock (run_ballot, Disk Paxos).
    fn judge(&self, bk: &PaxosDblock, mutants: Mutations) -> Seen {
        let larger_mbal = bk.mbal > self.mbal && !mutants.has(Mutant::IgnoreLargerMbal);
        if bk.lver < self.next_lver {
            Seen::Older
        } else if bk.lver > self.next_lver || larger_mbal {
            Seen::Beaten
        } else {
            Seen::Contender
        }
    }
}

/// What freeing the leader leads to (the release steps are shared by several paths).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AfterFree {
    /// A plain release: report Released (or ReleaseFailed).
    Released,
    /// A release retried after a timeout, its caller answered already: report
    /// ReleaseRetried when it ends.
    Retried,
    /// The end of a shared acquire: we hold it shared with this ballot's dblock.
    HeldShared { dblock: PaxosDblock },
    /// An exclusive acquire that found live shared holders: fail with -EAGAIN.
    Eagain,
    /// An acquire that failed after the lease became ours on disk: fail with this result.
    Failed { rv: i32 },
    /// EX→SH: the leader is freed behind our SHARED mode block.
    ConvertedShared { dblock: PaxosDblock },
    /// SH→EX could not finish (live shared holders: -EAGAIN): back to shared with `rv`.
    BackToShared { dblock: PaxosDblock, rv: i32 },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    Idle,
    ReadLease {
        io: Round<Digest>,
        /// The host_ids whose dblocks the read covers, when bounded.
        hosts: Option<u64>,
    },
    AwaitOwnerStatus {
        cur: Current,
    },
    ReadOwnerDelta {
        io: Round<Digest>,
        cur: Current,
        wait: OwnerWait,
    },
    ReadOwnerDblock {
        io: Round<Digest>,
        cur: Current,
    },
    SleepOwner {
        cur: Current,
        wait: OwnerWait,
        until: Time,
    },
    RereadOwnerLeader {
        io: Round<Digest>,
        cur: Current,
        wait: OwnerWait,
    },
    RereadBeforeBallot {
        io: Round<Digest>,
        ballot: Ballot,
    },
    /// Ballot phase 1 on every disk: our dblock written, then (on that disk) all dblocks read.
    Phase1 {
        io: Round<Digest>,
        ballot: Ballot,
    },
    /// Phase 2 likewise, with the value proposed.
    Phase2 {
        io: Round<Digest>,
        ballot: Ballot,
        value: PaxosDblock,
    },
    Commit {
        io: Round<Digest>,
        ballot: Ballot,
        value: PaxosDblock,
        leader: LeaderRecord,
    },
    RetryDelay {
        ballot: Ballot,
        until: Time,
    },
    /// Reading the LVB after a successful acquire that asked for it.
    ReadLvb {
        io: Round<Digest>,
        leader: LeaderRecord,
        dblock: PaxosDblock,
        shared: bool,
    },
    Held {
        leader: LeaderRecord,
        dblock: PaxosDblock,
        shared: bool,
    },
    /// SH→EX: our sector rewritten with the ballot values and no mode block.
    ConvertExclusiveDblock {
        io: Round<Digest>,
        leader: LeaderRecord,
        dblock: PaxosDblock,
    },
    /// EX→SH: the LVB the holder set, then our dblock RELEASED + SHARED.
    ConvertLvb {
        io: Round<Digest>,
        leader: LeaderRecord,
        dblock: PaxosDblock,
    },
    ConvertSharedDblock {
        io: Round<Digest>,
        leader: LeaderRecord,
        dblock: PaxosDblock,
    },
    /// Writing the LVB the holder set, before the release.
    ReleaseLvb {
        io: Round<Digest>,
        leader: LeaderRecord,
        dblock: PaxosDblock,
    },
    /// Another host is passing through a shared acquire: try again shortly.
    ShRetryDelay {
        until: Time,
    },
    /// A release whose leader I/O timed out, tried again from its leader read at `until`
    /// until it ends other than by a timeout: a lease left held on disk would be held for as
    /// long as we live, unmanaged (sanlock 48d2841).
    ReleaseRetryDelay {
        until: Time,
        leader: LeaderRecord,
    },
    /// A shared release that a disk missed: written again at `until` (`clear_mode_again`).
    ClearModeRetry {
        until: Time,
        tries: u8,
    },
    ClearModeWrite {
        io: Round<Digest>,
        tries: u8,
    },
    /// After a shared commit: our dblock RELEASED plus a SHARED mode block.
    SharedDblockWrite {
        io: Round<Digest>,
        committed: LeaderRecord,
        dblock: PaxosDblock,
    },
    /// After an exclusive commit that saw SHARED mode blocks.
    AwaitHostStatus {
        leader: LeaderRecord,
        dblock: PaxosDblock,
        holders: Vec<HostId>,
    },
    /// Reading shared holder `queue[0]`'s dblock sector.
    ReadHolder {
        io: Round<Digest>,
        leader: LeaderRecord,
        dblock: PaxosDblock,
        queue: Vec<(HostId, Option<HostStatus>)>,
        live: u32,
    },
    /// Clearing a dead shared holder's sector.
    ClearHolder {
        io: Round<Digest>,
        leader: LeaderRecord,
        dblock: PaxosDblock,
        queue: Vec<(HostId, Option<HostStatus>)>,
        live: u32,
    },
    /// Another host committed our value: look for shared holders before calling it ours.
    ReadModesAfterAdoption {
        io: Round<Digest>,
        ballot: Ballot,
        value: PaxosDblock,
        leader: LeaderRecord,
    },
    /// Undoing an acquire that failed after our value may have been accepted (§8.3).
    RetractDblock {
        io: Round<Digest>,
        committed: Option<LeaderRecord>,
        rv: i32,
    },
    /// A version settled as released (`Ballot::settle`): our dblock RELEASED, then the
    /// acquire starts over.
    Settled {
        io: Round<Digest>,
    },
    /// Undoing a shared acquire that failed after its commit; the committed leader is freed
    /// next (§8.3).
    UndoShared {
        io: Round<Digest>,
        committed: LeaderRecord,
        rv: i32,
    },
    ReleaseDblock {
        io: Round<Digest>,
        leader: LeaderRecord,
        then: AfterFree,
    },
    ReleaseSharedDblock {
        io: Round<Digest>,
    },
    ReleaseReadLeader {
        io: Round<Digest>,
        leader: LeaderRecord,
        then: AfterFree,
    },
    ReleaseWriteLeader {
        io: Round<Digest>,
        committed: LeaderRecord,
        then: AfterFree,
    },
    Done,
}

/// Matches every step with I/O under way, its round bound to `$io`.
macro_rules! steps_with_io {
    ($phase:expr, $io:ident => $then:expr) => {
        match $phase {
            Step::ReadLease { $io, .. }
            | Step::ReadOwnerDelta { $io, .. }
            | Step::ReadOwnerDblock { $io, .. }
            | Step::RereadOwnerLeader { $io, .. }
            | Step::RereadBeforeBallot { $io, .. }
            | Step::Phase1 { $io, .. }
            | Step::Phase2 { $io, .. }
            | Step::Commit { $io, .. }
            | Step::SharedDblockWrite { $io, .. }
            | Step::ReadHolder { $io, .. }
            | Step::ClearHolder { $io, .. }
            | Step::UndoShared { $io, .. }
            | Step::RetractDblock { $io, .. }
            | Step::Settled { $io }
            | Step::ReadLvb { $io, .. }
            | Step::ConvertExclusiveDblock { $io, .. }
            | Step::ConvertLvb { $io, .. }
            | Step::ConvertSharedDblock { $io, .. }
            | Step::ReleaseLvb { $io, .. }
            | Step::ReadModesAfterAdoption { $io, .. }
            | Step::ReleaseDblock { $io, .. }
            | Step::ReleaseSharedDblock { $io }
            | Step::ClearModeWrite { $io, .. }
            | Step::ReleaseReadLeader { $io, .. }
            | Step::ReleaseWriteLeader { $io, .. } => $then,
            _ => None,
        }
    };
}

impl PaxosLease {
    /// A machine for `config`, not yet acquiring.
    pub fn new(config: PaxosConfig) -> Self {
        let rng = Rng::new(config.rng_seed);
        PaxosLease {
            config,
            request: AcquireRequest::default(),
            sh_retries_left: SH_RETRIES,
            dirty_lvb: None,
            rename_to: None,
            converting: None,
            shared_seen: Vec::new(),
            proposed: None,
            last_dblock: None,
            read_bound: None,
            hung: HungDisks::default(),
            unwritten: 0,
            exposed: false,
            leader_left: None,
            phase: Step::Idle,
            rng,
            io: IoBook::default(),
            events: VecDeque::new(),
            mutants: Mutations::default(),
        }
    }

    /// The deliberate bug to run with (core::mutants).
    pub(crate) fn set_mutations(&mut self, mutants: Mutations) {
        self.mutants = mutants;
    }

    /// Ballot reads from now on cover only the dblocks `bound` says can be in use, while it
    /// holds (the host passes its lockspace's latest before each input to the machine).
    pub fn set_read_bound(&mut self, bound: Option<ReadBound>) {
        self.read_bound = bound;
    }

    /// Starts an exclusive acquire. Call once, on a new machine.
    pub fn acquire(&mut self, now: Time, request: AcquireRequest) {
        self.tick(now);
        assert_eq!(self.phase, Step::Idle, "acquire on a started paxos lease");
        self.request = request;
        self.phase = self.read_lease(now);
    }

    /// Answers [`Event::NeedOwnerStatus`] with the monitor's status of that host (or `None`
    /// when it was never scanned).
    pub fn owner_status(&mut self, now: Time, status: Option<&HostStatus>) {
        self.tick(now);
        let Step::AwaitOwnerStatus { cur } = self.phase.clone() else {
            panic!("owner_status without a NeedOwnerStatus");
        };
        let owner = cur.leader.owner_id.expect("a held lease has an owner");
        // The optimisation of "optimize paxos wait": time our monitor already spent watching
        // this owner instance counts toward its death.
        let same_owner = status.filter(|s| {
            s.owner_id == owner.get() && s.owner_generation == cur.leader.owner_generation
        });
        let (wait_start, last_ts, monitor_saw_change) = match same_owner {
            Some(s) => (
                s.last_live.unwrap_or(s.first_check),
                s.timestamp,
                s.changed_at_renewal,
            ),
            None => (now, 0, false),
        };
        let io_timeout = status.map_or(0, |s| u64::from(s.io_timeout));
        let wait = OwnerWait {
            owner,
            owner_generation: cur.leader.owner_generation,
            wait_start,
            last_ts,
            monitor_saw_change,
            dead_after: self.config.timeouts.of_other(io_timeout).host_dead(),
        };
        self.phase = self.read_owner_delta(now, cur, wait);
    }

    /// Answers [`Event::NeedHostStatus`] with the monitor's statuses, in the order asked.
    pub fn host_statuses(&mut self, now: Time, statuses: Vec<Option<HostStatus>>) {
        self.tick(now);
        let Step::AwaitHostStatus {
            leader,
            dblock,
            holders,
        } = self.phase.clone()
        else {
            panic!("host_statuses without a NeedHostStatus");
        };
        assert_eq!(
            statuses.len(),
            holders.len(),
            "one status per host asked for"
        );
        let queue = holders.into_iter().zip(statuses).collect();
        self.phase = self.check_next_holder(now, leader, dblock, queue, 0);
    }

    /// Releases a held lease (§8.1; a shared one only rewrites our dblock, §9.3). Ignored
    /// unless held.
    pub fn release(&mut self, now: Time) {
        self.tick(now);
        let Step::Held {
            leader,
            dblock,
            shared,
        } = self.phase.clone()
        else {
            return;
        };
        if let Some(lvb) = self.dirty_lvb.take().filter(|_| !shared) {
            let io = self.write_lvb(now, &lvb);
            self.phase = Step::ReleaseLvb { io, leader, dblock };
            return;
        }
        self.phase = self.release_dblock(now, leader, dblock, shared);
    }

    /// Releases a held lease as [`PaxosLease::release`] does, writing `new_name` into the
    /// freed leader (SANLK_REL_RENAME). An exclusive hold only: a shared release leaves the
    /// leader alone.
    pub fn release_renamed(&mut self, now: Time, new_name: Name) {
        self.rename_to = Some(new_name);
        self.release(now);
    }

    /// Converts a held lease to the other mode (§9.4-9.5): reports [`Event::Converted`] or
    /// [`Event::ConvertFailed`] (still held in the old mode). Ignored unless held.
    pub fn convert(&mut self, now: Time, to_shared: bool) {
        self.tick(now);
        let Step::Held {
            leader,
            dblock,
            shared,
        } = self.phase.clone()
        else {
            return;
        };
        if shared == to_shared {
            self.events.push_back(Event::ConvertFailed { rv: EALREADY });
            return;
        }
        if to_shared {
            self.phase = self.convert_to_shared(now, leader, dblock);
            return;
        }
        // SH→EX runs the exclusive acquire; every dblock write carries our SHARED mode block
        // so that a failure leaves the shared lease in place (§9.4).
        self.converting = Some(Box::new((leader, dblock)));
        self.request.shared = false;
        self.request.lvb = false;
        self.request.lver = None;
        self.phase = self.read_lease(now);
    }

    /// Sets the LVB value to write before the release (SANLK set_lvb). Only an exclusive holder
    /// writes the LVB; the value must fit in one sector of the lease.
    pub fn set_lvb(&mut self, lvb: Lvb) {
        assert!(
            lvb.bytes().len() <= self.ss(),
            "an LVB longer than a sector of this lease"
        );
        if matches!(self.phase, Step::Held { shared: false, .. }) {
            self.dirty_lvb = Some(lvb);
        }
    }

    /// §8.1 step 2 onwards (or §9.3 for a shared hold).
    fn release_dblock(
        &mut self,
        now: Time,
        leader: LeaderRecord,
        dblock: PaxosDblock,
        shared: bool,
    ) -> Step {
        let dblock = self.not_behind(dblock);
        let released = if self.mutants.has(Mutant::ReleaseWithoutDblockFlag) {
            dblock
        } else {
            released(dblock)
        };
        let io = self.write_dblock(now, &released, ModeBlock::default());
        if shared {
            Step::ReleaseSharedDblock { io }
        } else {
            Step::ReleaseDblock {
                io,
                leader,
                then: AfterFree::Released,
            }
        }
    }

    /// Stops an acquire in any phase (SANLK_ERROR), without writing; I/O in flight is
    /// abandoned. A held lease is left as it is on disk (as when the lockspace fails).
    pub fn abort(&mut self, now: Time) {
        self.tick(now);
        self.abandon_round();
        if self.is_acquiring() {
            self.events.push_back(Event::AcquireFailed { rv: -201 });
        }
        self.phase = Step::Done;
    }

    /// Hands in the completion of request `id`; past its deadline it counts as a timeout.
    pub fn handle_io(&mut self, now: Time, id: IoId, result: IoResult) {
        self.tick(now);
        let found = self.round().and_then(|r| r.find(id));
        match found {
            // A timeout report is no answer: the backend's own, for an I/O our timer already
            // gave up, leaves the disk hung (else each later read step waited for it again).
            None if result == Err(IoError::TimedOut) => {}
            None => self.hung.answered(id),
            // The backends report a hung I/O as timed out at its deadline (and drop its late
            // completion): as after `handle_timeout`, later steps do not wait for that disk,
            // else every read step paid an io_timeout. (A late answer is the disk answering.)
            Some((disk, _)) if result == Err(IoError::TimedOut) => self.note_hung(id, disk),
            Some(_) => {}
        }
        if let Completion::Deliver(result) = self.io.complete(now, id, found.map(|f| f.1), result) {
            let (disk, _) = found.expect("a delivered completion is one the round waits for");
            self.disk_done(now, disk, result);
            self.settle(now);
        }
    }

    /// Hands in the passing of time. Extra calls are harmless.
    pub fn handle_timeout(&mut self, now: Time) {
        self.tick(now);
        let expired: Vec<_> = self.round().map_or(Vec::new(), |r| r.in_flight().collect());
        let mut any = false;
        for (disk, io) in expired {
            if self.io.expired(now, Some(io)) {
                self.note_hung(io.id, disk);
                self.disk_done(now, disk, Err(IoError::TimedOut));
                any = true;
            }
        }
        if any {
            self.settle(now);
            return;
        }
        match self.phase.clone() {
            Step::SleepOwner { cur, wait, until } if now >= until => {
                let io = self.read_leader(now);
                self.phase = Step::RereadOwnerLeader { io, cur, wait };
            }
            Step::ShRetryDelay { until } if now >= until => {
                self.phase = self.read_lease(now);
            }
            Step::ClearModeRetry { until, tries } if now >= until => {
                let sector = self.last_dblock.expect("a shared release wrote our dblock");
                let io = self.write_dblock(now, &sector, ModeBlock::default());
                self.phase = Step::ClearModeWrite { io, tries };
            }
            Step::ReleaseRetryDelay { until, leader } if now >= until => {
                let io = self.read_leader(now);
                self.phase = Step::ReleaseReadLeader {
                    io,
                    leader,
                    then: AfterFree::Retried,
                };
            }
            Step::RetryDelay { ballot, until } if now >= until => {
                let io = self.read_leader(now);
                self.phase = Step::RereadBeforeBallot { io, ballot };
            }
            _ => {}
        }
    }

    /// I/O `id` on lease disk `disk` passed its deadline: later steps do not wait for that
    /// disk. (The owner's delta lease is on the lockspace disk, not a lease disk.)
    fn note_hung(&mut self, id: IoId, disk: usize) {
        if !matches!(self.phase, Step::ReadOwnerDelta { .. }) {
            self.hung.timed_out(id, disk);
        }
    }

    /// The next I/O to run.
    pub fn poll_io(&mut self) -> Option<IoRequest> {
        self.io.poll()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`PaxosLease::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Time> {
        match &self.phase {
            Step::SleepOwner { until, .. }
            | Step::RetryDelay { until, .. }
            | Step::ShRetryDelay { until }
            | Step::ReleaseRetryDelay { until, .. }
            | Step::ClearModeRetry { until, .. } => Some(*until),
            _ => self.round().and_then(Round::deadline),
        }
    }

    /// What an acquire is waiting for, while one is under way.
    pub fn wait(&self) -> Option<crate::waits::Wait> {
        use crate::waits::Wait;
        let owner = |w: &OwnerWait| Wait::OwnerDead {
            owner: w.owner,
            generation: w.owner_generation,
            until: w.wait_start + w.dead_after,
        };
        match &self.phase {
            Step::SleepOwner { wait, .. }
            | Step::ReadOwnerDelta { wait, .. }
            | Step::RereadOwnerLeader { wait, .. } => Some(owner(wait)),
            Step::RetryDelay { until, .. }
            | Step::ShRetryDelay { until }
            | Step::ReleaseRetryDelay { until, .. }
            | Step::ClearModeRetry { until, .. } => Some(Wait::Backoff { until: *until }),
            _ if self.is_acquiring() => self
                .round()
                .and_then(Round::deadline)
                .map(|until| Wait::Io { until }),
            _ => None,
        }
    }

    /// What the machine was made for.
    pub fn config(&self) -> &PaxosConfig {
        &self.config
    }

    /// Gives back the room its queues grew to while it acquired, where they are empty: a
    /// held lease may wait for hours with nothing queued (memory with 10,000 leases held).
    pub fn shed(&mut self) {
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
        self.shared_seen = Vec::new();
        self.io.shed();
    }

    /// The committed leader while held.
    pub fn held(&self) -> Option<&LeaderRecord> {
        match &self.phase {
            Step::Held { leader, .. } => Some(leader),
            _ => None,
        }
    }

    /// Whether a convert is under way, either way (its process holds the lease meanwhile).
    pub fn is_converting(&self) -> bool {
        let freeing_for_convert = |then: &AfterFree| {
            matches!(
                then,
                AfterFree::ConvertedShared { .. } | AfterFree::BackToShared { .. }
            )
        };
        self.converting.is_some()
            || match &self.phase {
                Step::ConvertExclusiveDblock { .. }
                | Step::ConvertLvb { .. }
                | Step::ConvertSharedDblock { .. } => true,
                Step::ReleaseReadLeader { then, .. } | Step::ReleaseWriteLeader { then, .. } => {
                    freeing_for_convert(then)
                }
                _ => false,
            }
    }

    /// Whether an acquire is under way.
    pub fn is_acquiring(&self) -> bool {
        !matches!(
            self.phase,
            Step::Idle
                | Step::Held { .. }
                | Step::ReleaseLvb { .. }
                | Step::ReleaseDblock { .. }
                | Step::ReleaseSharedDblock { .. }
                | Step::ReleaseReadLeader { .. }
                | Step::ReleaseWriteLeader { .. }
                | Step::ReleaseRetryDelay { .. }
                | Step::ClearModeRetry { .. }
                | Step::ClearModeWrite { .. }
                | Step::Done
        )
    }

    /// Whether the machine has finished.
    pub fn is_done(&self) -> bool {
        self.phase == Step::Done
    }

    /// Completions that arrived after their I/O was given up.
    pub fn late_completions(&self) -> u64 {
        self.io.late_completions()
    }

    fn tick(&mut self, now: Time) {
        self.io.tick(now);
    }

    fn ss(&self) -> usize {
        self.config.geometry.sector_size().as_usize()
    }

    /// The I/O step under way, if any.
    fn round(&self) -> Option<&Round<Digest>> {
        steps_with_io!(&self.phase, io => Some(io))
    }

    /// The I/O step under way, to change.
    fn round_mut(&mut self) -> Option<&mut Round<Digest>> {
        steps_with_io!(&mut self.phase, io => Some(io))
    }

    fn timeout(&self) -> Duration {
        self.config.timeouts.io_timeout()
    }

    /// Gives up the I/O of the step under way still in flight (the step is decided, or the
    /// machine stops): their completions are counted as late.
    fn abandon_round(&mut self) {
        let flying: Vec<_> = self
            .round()
            .map_or(Vec::new(), |r| r.in_flight().map(|(_, io)| io).collect());
        for io in flying {
            self.io.abandon(Some(io));
        }
    }

    /// The same I/O on every disk of the lease, `from_area` bytes into its area.
    fn on_every_disk(&mut self, now: Time, from_area: u64, op: IoOp) -> Round<Digest> {
        self.fan_out(now, from_area, op, false)
    }

    /// `op` on every disk; with `then_read`, each disk's write is followed by its phase read.
    fn fan_out(&mut self, now: Time, from_area: u64, op: IoOp, then_read: bool) -> Round<Digest> {
        let timeout = self.timeout();
        self.unwritten = 0;
        every_disk(
            &mut self.io,
            now,
            &self.config.disks,
            timeout,
            from_area,
            &op,
            then_read,
        )
    }

    /// Reads the lease: leader, request and dblocks, all of them or (with a bound from the
    /// lockspace, [`PaxosLease::set_read_bound`]) those of the host_ids that can be in use.
    fn read_lease(&mut self, now: Time) -> Step {
        let hosts = self.bounded_hosts(now);
        let len = match hosts {
            Some(m) => (m as usize + 2) * self.ss(),
            None => self.config.geometry.area_bytes() as usize,
        };
        let io = self.on_every_disk(now, 0, IoOp::Read { len });
        Step::ReadLease { io, hosts }
    }

    /// The host_ids a read issued now must cover, while the read bound holds (the mutant
    /// keeps using it after it has gone stale).
    fn bounded_hosts(&self, now: Time) -> Option<u64> {
        if self.mutants.has(Mutant::StaleReadBound) {
            return self.read_bound.map(|b| b.hosts);
        }
        ReadBound::hosts_at(self.read_bound, now)
    }

    fn read_leader(&mut self, now: Time) -> Round<Digest> {
        let len = self.ss();
        self.on_every_disk(now, 0, IoOp::Read { len })
    }

    /// One host's dblock sector on every disk.
    fn read_host_sector(&mut self, now: Time, host: HostId) -> Round<Digest> {
        let g = self.config.geometry;
        let len = self.ss();
        self.on_every_disk(
            now,
            g.sector_offset(g.dblock_sector(host)),
            IoOp::Read { len },
        )
    }

    fn read_owner_delta(&mut self, now: Time, cur: Current, wait: OwnerWait) -> Step {
        let g = self.config.lockspace_geometry;
        let offset = self.config.lockspace_offset + g.sector_offset(g.delta_sector(wait.owner));
        let len = g.sector_size().as_usize();
        let timeout = self.timeout();
        let io = self
            .io
            .submit(now, DiskRef::Lockspace, offset, IoOp::Read { len }, timeout);
        let io = Round::new(vec![Slot::Waiting(io)]);
        Step::ReadOwnerDelta { io, cur, wait }
    }

    /// Our dblock sector on every disk.
    fn write_dblock(&mut self, now: Time, dblock: &PaxosDblock, mode: ModeBlock) -> Round<Digest> {
        self.write_own_sector(now, dblock, mode, false)
    }

    /// A ballot phase: our dblock sector on every disk, each followed by that disk's read.
    fn ballot_write(&mut self, now: Time, dblock: &PaxosDblock, mode: ModeBlock) -> Round<Digest> {
        self.write_own_sector(now, dblock, mode, true)
    }

    fn write_own_sector(
        &mut self,
        now: Time,
        dblock: &PaxosDblock,
        mode: ModeBlock,
        then_read: bool,
    ) -> Round<Digest> {
        self.last_dblock = Some(*dblock);
        let ours = self.names_us(dblock);
        // Sticky until a RELEASED write: a later write that failed on some disk leaves the
        // value there.
        self.exposed = (self.exposed || (ours && dblock.bal.0 != 0)) && !dblock.released();
        let sector = DblockSector {
            dblock: *dblock,
            mode,
        };
        let data = sector.encode(self.config.geometry.sector_size());
        debug_assert_eq!(DblockSector::decode(&data, 0).as_ref(), Ok(&sector));
        let g = self.config.geometry;
        let at = g.sector_offset(g.dblock_sector(self.config.host_id));
        self.fan_out(now, at, IoOp::Write { data }, then_read)
    }

    fn write_leader(&mut self, now: Time, leader: &LeaderRecord) -> Round<Digest> {
        let mut data = vec![0u8; self.ss()];
        data[..LEADER_RECORD_SIZE].copy_from_slice(&leader.encode());
        debug_assert_eq!(
            LeaderRecord::decode(&data, LeaderKind::Paxos, 0).as_ref(),
            Ok(leader)
        );
        self.on_every_disk(now, 0, IoOp::Write { data })
    }

    /// Reads, on one disk, the (n + 2) sectors a ballot phase looks at (fewer dblocks under a
    /// read bound).
    fn read_dblocks_on(&mut self, now: Time, disk: LeaseDisk, cur: &Current) -> crate::io::Pending {
        let n = cur.leader.num_hosts;
        let hosts = self.bounded_hosts(now).map_or(n, |m| m.min(n));
        let len = (hosts as usize + 2) * self.ss();
        let offset = self.config.disks.offset(disk);
        let timeout = self.timeout();
        self.io.submit(
            now,
            DiskRef::Lease(disk),
            offset,
            IoOp::Read { len },
            timeout,
        )
    }

    /// The same sectors on every disk (reading the mode blocks after another host committed
    /// our value).
    fn read_dblocks(&mut self, now: Time, cur: &Current) -> Round<Digest> {
        let n = cur.leader.num_hosts;
        let hosts = self.bounded_hosts(now).map_or(n, |m| m.min(n));
        let len = (hosts as usize + 2) * self.ss();
        self.on_every_disk(now, 0, IoOp::Read { len })
    }

    /// One disk's I/O of the step under way has ended: in a ballot phase a write is followed
    /// by that disk's read; anything else is digested and kept until the step is decided.
    fn disk_done(&mut self, now: Time, disk: usize, result: IoResult) {
        let writing = self.round().is_some_and(|r| r.is_writing(disk));
        let slot = if writing {
            match result {
                Ok(_)
                    if self.mutants.has(Mutant::SkipPhase1Read)
                        && matches!(self.phase, Step::Phase1 { .. }) =>
                {
                    Slot::Done(Digest::Phase(Ok(PhaseRead::default())))
                }
                Ok(_) => {
                    let cur = match &self.phase {
                        Step::Phase1 { ballot, .. } | Step::Phase2 { ballot, .. } => ballot.cur,
                        other => unreachable!("a write then read in {other:?}"),
                    };
                    let d = LeaseDisk::new(disk).expect("a disk of the lease");
                    Slot::Waiting(self.read_dblocks_on(now, d, &cur))
                }
                // Out of the phase's majority, but what the disk holds still counts against
                // us: a shared holder's mode block that reached only this disk and one since
                // replaced by a zeroed one is here alone (docs/SIMULATION.md, seed 95).
                Err(IoError::Failed(_) | IoError::Short) if self.config.disks.count() > 1 => {
                    let cur = match &self.phase {
                        Step::Phase1 { ballot, .. } | Step::Phase2 { ballot, .. } => ballot.cur,
                        other => unreachable!("a write then read in {other:?}"),
                    };
                    self.unwritten |= 1 << disk;
                    let d = LeaseDisk::new(disk).expect("a disk of the lease");
                    Slot::Waiting(self.read_dblocks_on(now, d, &cur))
                }
                Err(_) => Slot::Done(Digest::Phase(Err(PhaseFailure::Write))),
            }
        } else if self.unwritten & (1 << disk) != 0 {
            Slot::Done(match self.digest(result) {
                Digest::Phase(read) => Digest::Unwritten(read.ok()),
                other => unreachable!("a phase read digested as {other:?}"),
            })
        } else {
            Slot::Done(self.digest(result))
        };
        if let Some(round) = self.round_mut() {
            round.set(disk, slot);
        }
    }

    /// Acts on the step under way once the disks that answered decide it; what is still in
    /// flight is given up.
    fn settle(&mut self, now: Time) {
        let Some(merged) = self.decide() else {
            return;
        };
        self.abandon_round();
        self.io_done(now, merged);
    }

    /// The step under way is decided: act on it.
    fn io_done(&mut self, now: Time, merged: Merged) {
        let phase = std::mem::replace(&mut self.phase, Step::Done);
        self.phase = match (phase, merged) {
            (Step::ReadLease { .. }, Merged::Lease(read)) => self.after_read_lease(now, read),
            (Step::ReadOwnerDelta { cur, wait, .. }, Merged::Raw(result)) => {
                self.after_owner_delta(now, cur, wait, result)
            }
            (Step::ReadOwnerDblock { cur, .. }, Merged::OwnerReleased(released)) => {
                match released {
                    Ok(Some(o)) => self.owner_let_go(now, cur, o),
                    Ok(None) => self.acquire_failed_or_retry(
                        now,
                        SANLK_ACQUIRE_IDLIVE,
                        cur.leader.short_hold(),
                    ),
                    Err(rv) => self.acquire_failed(now, rv),
                }
            }
            (Step::RereadOwnerLeader { cur, wait, .. }, merged) => match merged.leader() {
                Ok(leader) if leader == cur.leader => self.read_owner_delta(now, cur, wait),
                Ok(_) => self.read_lease(now),
                Err(rv) => self.acquire_failed(now, rv),
            },
            (Step::RereadBeforeBallot { ballot, .. }, merged) => match merged.leader() {
                Ok(tmp) => self.judge_reread(now, ballot, tmp),
                Err(rv) => self.acquire_failed(now, rv),
            },
            (Step::Phase1 { ballot, .. }, Merged::Phase(read)) => {
                self.after_phase1(now, ballot, read)
            }
            (Step::Phase2 { ballot, value, .. }, Merged::Phase(read)) => {
                self.after_phase2(now, ballot, value, read)
            }
            (
                Step::Commit {
                    ballot,
                    value,
                    leader,
                    ..
                },
                merged,
            ) => match merged.written() {
                // A version settled: our dblock says we let it go, then start over.
                Ok(_) if ballot.settle => {
                    let mode = self.ballot_mode();
                    let io = self.write_dblock(now, &released(value), mode);
                    Step::Settled { io }
                }
                // Ours only if it names this instance: a value of our previous incarnation
                // (an older generation) adopted in phase 1 belongs to a dead owner, whose lease
                // other hosts may take at once (3.8.5 compares the host_id alone).
                Ok(_)
                    if (leader.owner_id, leader.owner_generation)
                        == (Some(self.config.host_id), self.config.generation) =>
                {
                    assert!(leader.lver > ballot.cur.leader.lver, "lver goes forward");
                    self.after_commit(now, value, leader)
                }
                // We completed another host's ballot: it owns the lease now.
                Ok(_) => {
                    self.acquire_failed_or_retry(now, SANLK_ACQUIRE_OTHER, leader.short_hold())
                }
                // The commit may have landed: retract, and free the leader if it did.
                Err(_) => self.retract(now, value, Some(leader), SANLK_LEADER_WRITE),
            },
            (Step::Settled { .. }, _) => self.read_lease(now),
            (Step::RetractDblock { committed, rv, .. }, _) => match committed {
                Some(leader) => {
                    let io = self.read_leader(now);
                    Step::ReleaseReadLeader {
                        io,
                        leader,
                        then: AfterFree::Failed { rv },
                    }
                }
                None => self.acquire_failed(now, rv),
            },
            (
                Step::SharedDblockWrite {
                    committed, dblock, ..
                },
                merged,
            ) => match merged.written() {
                // §9.1 step 5: free the leader; the mode block says we hold it shared.
                Ok(_) => {
                    let io = self.read_leader(now);
                    Step::ReleaseReadLeader {
                        io,
                        leader: committed,
                        then: AfterFree::HeldShared { dblock },
                    }
                }
                Err(_) => self.undo_shared(now, committed, dblock, SANLK_DBLOCK_WRITE),
            },
            (
                Step::ReadHolder {
                    leader,
                    dblock,
                    mut queue,
                    live,
                    ..
                },
                Merged::Mode(mode),
            ) => {
                let (q, status) = queue.remove(0);
                // Unreadable (on some disk): counted unless its host is dead by our monitor,
                // whatever generation held it (a dead holder's mode block on a disk that
                // answers must not keep the lease from everyone).
                let mode = mode.or_else(|| {
                    let generation = status.as_ref()?.owner_generation;
                    (!self.holder_alive(status.as_ref(), generation)).then_some(ModeBlock {
                        shared: true,
                        generation,
                    })
                });
                match mode {
                    None => self.check_next_holder(now, leader, dblock, queue, live + 1),
                    // No longer shared, or no generation (logged by sanlock): not counted.
                    Some(m) if !m.shared || m.generation.0 == 0 => {
                        self.check_next_holder(now, leader, dblock, queue, live)
                    }
                    Some(m) if self.holder_alive(status.as_ref(), m.generation) => {
                        self.check_next_holder(now, leader, dblock, queue, live + 1)
                    }
                    Some(_) => {
                        // A dead holder's SH lease: clear its whole sector.
                        let g = self.config.geometry;
                        let at = g.sector_offset(g.dblock_sector(q));
                        let data = vec![0u8; self.ss()];
                        let io = self.on_every_disk(now, at, IoOp::Write { data });
                        Step::ClearHolder {
                            io,
                            leader,
                            dblock,
                            queue,
                            live,
                        }
                    }
                }
            }
            (
                Step::ClearHolder {
                    leader,
                    dblock,
                    queue,
                    live,
                    ..
                },
                _,
            ) => self.check_next_holder(now, leader, dblock, queue, live),
            (Step::UndoShared { committed, rv, .. }, _) => {
                let io = self.read_leader(now);
                Step::ReleaseReadLeader {
                    io,
                    leader: committed,
                    then: AfterFree::Failed { rv },
                }
            }
            (
                Step::ReadLvb {
                    leader,
                    dblock,
                    shared,
                    ..
                },
                Merged::Lvb(lvb),
            ) => {
                let lvb = lvb.unwrap_or_else(|| Lvb::from_sector(&vec![0u8; self.ss()]));
                self.events.push_back(Event::Acquired {
                    leader,
                    lvb: Some(lvb),
                });
                Step::Held {
                    leader,
                    dblock,
                    shared,
                }
            }
            // The committed leader already makes us the exclusive owner; this write only drops
            // our SHARED mode block. If it failed (or may land late) we stay exclusive: a stale
            // mode block can only make others wait, and our release rewrites the sector. Giving
            // the leader back here could let a host in while we still count as shared.
            (Step::ConvertExclusiveDblock { leader, dblock, .. }, _) => {
                self.converting = None;
                self.events.push_back(Event::Converted { shared: false });
                Step::Held {
                    leader,
                    dblock,
                    shared: false,
                }
            }
            // A failed LVB write is only logged by sanlock; the convert goes on.
            (Step::ConvertLvb { leader, dblock, .. }, _) => {
                self.convert_to_shared(now, leader, dblock)
            }
            (Step::ConvertSharedDblock { leader, dblock, .. }, merged) => match merged.written() {
                Ok(_) => {
                    let io = self.read_leader(now);
                    Step::ReleaseReadLeader {
                        io,
                        leader,
                        then: AfterFree::ConvertedShared { dblock },
                    }
                }
                // Our RELEASED with SHARED may have landed anywhere, on a majority even: a host
                // that reads it takes our leader as let go, and a shared acquirer may join. We
                // cannot stay exclusive, so we are shared, and our release frees the leader we
                // kept (3.8.5 reports the error and stays exclusive; three disks, seed 1235).
                Err(_) => self.shared_keeping_leader(leader, dblock),
            },
            // A failed LVB write is only logged by sanlock; the release goes on.
            (Step::ReleaseLvb { leader, dblock, .. }, _) => {
                self.release_dblock(now, leader, dblock, false)
            }
            (Step::ReadModesAfterAdoption { value, leader, .. }, Merged::Modes(modes)) => {
                match modes {
                    // We have already told other hosts we let this version go.
                    Some(m) if m.ours_released => self.acquire_failed(now, SANLK_ACQUIRE_OWNED),
                    Some(m) => {
                        self.shared_seen = m.shared;
                        self.after_commit(now, value, leader)
                    }
                    // The lease is ours on disk but we cannot tell who shares it: give it back
                    // (keeping our SHARED mode block if we are converting from shared).
                    None => {
                        let released = released(value);
                        let mode = self.ballot_mode();
                        let io = self.write_dblock(now, &released, mode);
                        Step::ReleaseDblock {
                            io,
                            leader,
                            then: AfterFree::Failed {
                                rv: SANLK_DBLOCK_READ,
                            },
                        }
                    }
                }
            }
            (Step::ReleaseDblock { leader, then, .. }, _) => {
                // An error writing our dblock is only logged by sanlock; the leader decides.
                let io = self.read_leader(now);
                Step::ReleaseReadLeader { io, leader, then }
            }
            (Step::ReleaseSharedDblock { .. }, Merged::Everywhere { written, missed }) => {
                match written {
                    // A leader our convert to shared left held is ours to free, now.
                    Ok(_) => match self.leader_left.take() {
                        Some(leader) => {
                            let io = self.read_leader(now);
                            Step::ReleaseReadLeader {
                                io,
                                leader,
                                then: AfterFree::Released,
                            }
                        }
                        None => {
                            self.events.push_back(Event::Released);
                            self.clear_mode_again(now, missed, 1)
                        }
                    },
                    Err(e) => {
                        self.events.push_back(Event::ReleaseFailed { rv: e.rv() });
                        Step::Done
                    }
                }
            }
            (Step::ClearModeWrite { tries, .. }, Merged::Everywhere { missed, .. }) => {
                self.clear_mode_again(now, missed, tries + 1)
            }
            (Step::ReleaseReadLeader { leader, then, .. }, merged) => {
                self.after_release_read(now, leader, then, merged.leader())
            }
            (
                Step::ReleaseWriteLeader {
                    committed, then, ..
                },
                merged,
            ) => self.after_free(now, then, committed, merged.written().map_err(IoError::rv)),
            (other, merged) => unreachable!("{merged:?} decided in phase {other:?}"),
        };
    }

    /// §7.1-7.2: check the leader and every dblock, then decide whether to wait for an owner.
    fn after_read_lease(&mut self, now: Time, read: Result<LeaseRead, i32>) -> Step {
        let read = match read {
            Ok(read) => read,
            Err(rv) => return self.acquire_failed(now, rv),
        };
        let leader = read.leader;
        let Some(seen) = read.dblocks else {
            // Adopt the lease's own sizes and read it again.
            self.config.geometry = leader.geometry;
            return self.read_lease(now);
        };
        let cur = Current {
            leader,
            max_mbal: seen.max_mbal,
            ours: seen.ours,
            owner_sector: seen.owner.map(|(_, o)| o),
            owner_shared: false,
        };
        if self.request.lver.is_some_and(|l| l != leader.lver) {
            return self.acquire_failed(now, SANLK_ACQUIRE_LVER);
        }
        let me = (Some(self.config.host_id), self.config.generation);
        let owner = (leader.owner_id, leader.owner_generation);
        let ours_before = leader.owner_id == Some(self.config.host_id)
            && leader.owner_generation < self.config.generation;
        if leader.timestamp == 0 || owner == me || ours_before {
            return self.start_ballot(now, cur, false);
        }
        let host_id = leader.owner_id.expect("a held lease has an owner");
        self.events.push_back(Event::NeedOwnerStatus { host_id });
        Step::AwaitOwnerStatus { cur }
    }

    /// §7.3 steps a-f.
    fn after_owner_delta(
        &mut self,
        now: Time,
        cur: Current,
        mut wait: OwnerWait,
        result: IoResult,
    ) -> Step {
        let sector = match result {
            Ok(sector) => sector,
            Err(e) => return self.acquire_failed(now, e.rv()),
        };
        let raw = match RawLeader::parse(&sector) {
            Ok(raw) => raw,
            Err(_) => return self.acquire_failed(now, SANLK_LEADER_READ),
        };
        if let Err(rv) =
            raw.check_as_sanlock(LeaderKind::Delta, &self.config.space_name, None, None)
        {
            return self.acquire_failed(now, rv);
        }
        // A host_id cannot become free sooner than host_dead_seconds after its last renewal,
        // and a new owner or generation means the instance that held the lease is gone.
        if raw.timestamp == 0
            || raw.owner_id != wait.owner.get()
            || raw.owner_generation > wait.owner_generation.0
        {
            return self.start_ballot(now, cur, true);
        }
        if self.mutants.has(Mutant::OwnerDeadByLocalClock)
            && now.secs().saturating_sub(raw.timestamp) > wait.dead_after.as_secs()
        {
            return self.start_ballot(now, cur, true);
        }
        if wait.last_ts == 0 {
            wait.last_ts = raw.timestamp;
        } else if raw.timestamp != wait.last_ts || wait.monitor_saw_change {
            if self.config.disks.count() > 1 {
                return self.live_owner_on_disks(now, cur, wait.owner);
            }
            if cur.leader.write_id != cur.leader.owner_id.map_or(0, HostId::get) {
                // Another host committed the lease for the owner; the owner may have let go.
                let io = self.read_host_sector(now, wait.owner);
                return Step::ReadOwnerDblock { io, cur };
            }
            return self.acquire_failed_or_retry(
                now,
                SANLK_ACQUIRE_IDLIVE,
                cur.leader.short_hold(),
            );
        } else if self.mutants.has(Mutant::NoOwnerDeadWait)
            || now.saturating_since(wait.wait_start) > wait.dead_after
        {
            return self.start_ballot(now, cur, true);
        } else if self.request.owner_nowait {
            return self.acquire_failed(now, SANLK_ACQUIRE_OWNED_RETRY);
        }
        Step::SleepOwner {
            cur,
            wait,
            until: now + Duration::from_secs(1),
        }
    }

    /// §7.3 e on a lease of several disks: the owner's dblock is looked at even when the owner
    /// wrote the leader itself (3.8.5 looks only when another host did). A write decided at a
    /// majority may land on the last disk after we went on, so an owner's own commit can land
    /// after its release read saw another host's copy of it, and so keep a leader it let go:
    /// its RELEASED dblock is the one trace (docs/SIMULATION.md, seed 38). The lease read's
    /// copy may say the owner holds on; that it let go is taken only from a read made after
    /// the leader's: one read's sectors are not one instant, and the copy may predate the
    /// owner's winning ballot, showing the RELEASED of an earlier attempt at the same version
    /// (three disks, seed 255: a second holder beside the first).
    fn live_owner_on_disks(&mut self, now: Time, cur: Current, owner: HostId) -> Step {
        match cur.owner_sector {
            Some(o) if !o.let_go(cur.leader.lver) && cur.leader.write_id == owner.get() => {
                self.acquire_failed_or_retry(now, SANLK_ACQUIRE_IDLIVE, cur.leader.short_hold())
            }
            // It let go, another host committed for the owner, or the read did not reach its
            // dblock: look now (3.8.5 looks when another host committed).
            _ => {
                let io = self.read_host_sector(now, owner);
                Step::ReadOwnerDblock { io, cur }
            }
        }
    }

    /// §7.3 e: the owner let its version go; if it holds the lease shared it counts as a
    /// shared holder of our ballot (on several disks its mode block may have reached only
    /// the disk that told us so far, and our phase 1 may not read that disk).
    fn owner_let_go(&mut self, now: Time, mut cur: Current, o: OwnerSector) -> Step {
        cur.owner_shared = o.shared;
        self.start_ballot(now, cur, true)
    }

    /// §7.4: the ballot number, then (unless the lease was free or ours) a fresh look at the
    /// leader before writing anything.
    fn start_ballot(&mut self, now: Time, cur: Current, reread: bool) -> Step {
        let h = if self.mutants.has(Mutant::SameBallotForAllHosts) {
            1
        } else {
            self.config.host_id.get()
        };
        let max_hosts = cur.leader.max_hosts.max(1);
        let mbal = if cur.max_mbal == 0 {
            h
        } else {
            (cur.max_mbal - cur.max_mbal % max_hosts) + max_hosts + h
        };
        // Our dblock never goes back to an earlier version: that would erase the only trace
        // of a version we may have won and let go, which a host that saw our release is
        // already past (docs/SIMULATION.md, seed 335).
        let ahead = cur.ours_ahead();
        let next_lver = match ahead {
            Some(d) => d.lver.max(Lver(cur.leader.lver.0 + 1)),
            None => Lver(cur.leader.lver.0 + 1),
        };
        let carried = ahead.filter(|d| d.lver == next_lver && d.bal.0 != 0 && d.inp != 0);
        self.shared_seen.clear();
        // Our ballot's dblock hides the RELEASED that told others we do not hold the lease,
        // until we write it again: when the leader names this instance (we are acquiring, so
        // we do not hold it), and whenever our dblock says RELEASED — a leader may yet name us
        // at the version it let go: our value chosen for the version we now ballot for and
        // committed by another host (four disks, seed 90), or a late commit of our released
        // version landing over our release (four disks, seed 96).
        let me = (Some(self.config.host_id), self.config.generation);
        let named =
            cur.leader.timestamp != 0 && (cur.leader.owner_id, cur.leader.owner_generation) == me;
        if named || cur.ours.is_some_and(|d| d.released()) {
            self.exposed = true;
        }
        let ballot = Ballot {
            cur,
            next_lver,
            mbal: Mbal(mbal),
            carried,
            settle: false,
            later: None,
        };
        if reread {
            let io = self.read_leader(now);
            Step::RereadBeforeBallot { io, ballot }
        } else {
            self.phase1(now, ballot)
        }
    }

    fn judge_reread(&mut self, now: Time, ballot: Ballot, tmp: LeaderRecord) -> Step {
        if tmp.lver == ballot.next_lver {
            let me = (Some(self.config.host_id), self.config.generation);
            if (tmp.owner_id, tmp.owner_generation) == me {
                // Another host completed our ballot and committed us. Before it is ours, read
                // the mode blocks as our own phase 1 would have (§9.2): shared holders may
                // have come since, or this attempt may not have run a phase 1 at all.
                let value = PaxosDblock {
                    mbal: ballot.mbal,
                    bal: ballot.mbal,
                    inp: self.config.host_id.get(),
                    inp2: self.config.generation.0,
                    inp3: tmp.timestamp,
                    lver: ballot.next_lver,
                    flags: 0,
                };
                if self.earlier_value_of_ours(&ballot, &value) {
                    // The value came from an earlier attempt of ours, which may have retracted
                    // it (RELEASED), or that this ballot's phase 1 carried RELEASED — other
                    // hosts may take this lease. Never hold it: mark it released (in case
                    // that attempt did not) and report it owned. (An earlier attempt of this
                    // same acquire counts: judged by the version alone, a carried value
                    // committed by another host was held while a third took it, seed 109.)
                    return self.retract(now, value, None, SANLK_ACQUIRE_OWNED);
                }
                let io = self.read_dblocks(now, &ballot.cur);
                return Step::ReadModesAfterAdoption {
                    io,
                    ballot,
                    value,
                    leader: tmp,
                };
            }
            return self.acquire_failed_or_retry(now, SANLK_ACQUIRE_OWNED, tmp.short_hold());
        }
        if tmp.lver > ballot.next_lver || tmp != ballot.cur.leader {
            return self.read_lease(now);
        }
        if let Some(later) = ballot.later.filter(|&l| l > ballot.next_lver) {
            // The leader is still where it was, more than one version behind a dblock: a
            // leader write decided on a read from before two commits (a shared acquire's
            // free) landed over them and set it back. Every ballot for the version after it
            // loses to that dblock, for good (four disks, seed 139). A dblock of a version is
            // written only once the version before was committed and judged takeable (free,
            // its owner dead or let go), so ballot that one: its phase 1 finds any value
            // already chosen for it.
            let jumped = Ballot {
                next_lver: later,
                carried: None,
                settle: false,
                later: None,
                ..ballot
            };
            return self.phase1(now, jumped);
        }
        self.phase1(now, ballot)
    }

    /// Phase 1, write: our ballot number for the next version, no value (or the value an
    /// earlier attempt of ours wrote for it).
    fn phase1(&mut self, now: Time, ballot: Ballot) -> Step {
        // A carried value naming this instance is an earlier attempt's, which we do not hold
        // (`earlier_value_of_ours`): it goes out RELEASED, or this write would hide the
        // retract that said so and a host completing the version would leave a live owner
        // holding nothing, refused to everyone (docs/SIMULATION.md, four disks, seed 57).
        let carried = ballot
            .carried
            .map(|c| if self.names_us(&c) { released(c) } else { c });
        let dblock = PaxosDblock {
            mbal: ballot.mbal,
            lver: ballot.next_lver,
            ..carried.unwrap_or_default()
        };
        let mode = self.ballot_mode();
        let io = self.ballot_write(now, &dblock, mode);
        Step::Phase1 { io, ballot }
    }

    /// Phase 1, read: abort on a later version or a larger ballot; otherwise adopt the value
    /// of the highest ballot seen, or propose ourselves.
    fn after_phase1(&mut self, now: Time, ballot: Ballot, read: Result<PhaseRead, i32>) -> Step {
        let read = match read {
            Ok(read) if read.beaten => return self.ballot_lost(now, ballot, read.later),
            Ok(read) => read,
            Err(rv) => return self.acquire_failed(now, rv),
        };
        self.shared_seen = read.shared;
        if let Some(owner) = ballot
            .cur
            .leader
            .owner_id
            .filter(|_| ballot.cur.owner_shared)
        {
            if let Err(at) = self.shared_seen.binary_search(&owner) {
                self.shared_seen.insert(at, owner);
            }
        }
        let best = read.best;
        if best.is_some_and(|b| self.earlier_value_of_ours(&ballot, &b)) {
            // Whatever this version chose, it was a value of ours that we no longer hold: no
            // host holds it. Never win it again (we may have told others we let it go); but
            // do not leave the version undecided either — a ballot of ours for the next one
            // that then failed would leave a dblock of a version past the leader's next,
            // beating every other host's ballot for good (docs/SIMULATION.md, seed 89).
            // Complete it, committed as released.
            let settle = Ballot {
                settle: true,
                ..ballot
            };
            return self.propose(now, settle, best);
        }
        self.propose(now, ballot, best)
    }

    /// Whether `d`'s value names this instance (host_id and generation).
    fn names_us(&self, d: &PaxosDblock) -> bool {
        (d.inp, d.inp2) == (self.config.host_id.get(), self.config.generation.0)
    }

    /// A value naming this instance of ours that this attempt did not propose: an earlier
    /// attempt's, which was released or retracted (we are acquiring, so we hold nothing).
    fn earlier_value_of_ours(&self, ballot: &Ballot, v: &PaxosDblock) -> bool {
        let ours = self.names_us(v);
        let proposed_now = self.proposed == Some((ballot.next_lver, v.inp3))
            && ballot.carried.is_none_or(|c| c.inp3 != v.inp3);
        ours && !proposed_now
    }

    /// The end of phase 1: the value of the highest ballot seen, or ourselves, goes out in
    /// phase 2.
    fn propose(&mut self, now: Time, ballot: Ballot, best: Option<PaxosDblock>) -> Step {
        let (inp, inp2, inp3) = match best {
            Some(b) => (b.inp, b.inp2, b.inp3),
            None => (
                self.config.host_id.get(),
                self.config.generation.0,
                now.secs(),
            ),
        };
        let value = PaxosDblock {
            mbal: ballot.mbal,
            bal: ballot.mbal,
            inp,
            inp2,
            inp3,
            lver: ballot.next_lver,
            flags: 0,
        };
        let mode = self.ballot_mode();
        if !ballot.settle {
            self.proposed = Some((ballot.next_lver, inp3));
        }
        let io = self.ballot_write(now, &value, mode);
        Step::Phase2 { io, ballot, value }
    }

    /// Phase 2, read: the value is chosen unless a later version or larger ballot appeared.
    fn after_phase2(
        &mut self,
        now: Time,
        ballot: Ballot,
        value: PaxosDblock,
        read: Result<PhaseRead, i32>,
    ) -> Step {
        match read {
            Ok(read) if read.beaten => return self.ballot_lost(now, ballot, read.later),
            Ok(_) => {}
            // Our value may have been accepted: retract it (§8.3).
            Err(rv) => return self.retract(now, value, None, rv),
        }
        // §7.6: the committed leader is `cur` with the chosen value as owner.
        let mut leader = ballot.cur.leader;
        leader.lver = ballot.next_lver;
        leader.owner_id = HostId::new(value.inp);
        leader.owner_generation = Generation(value.inp2);
        leader.timestamp = value.inp3;
        leader.write_id = self.config.host_id.get();
        leader.write_generation = self.config.generation.0;
        leader.write_timestamp = now.secs();
        if ballot.settle {
            // The released form of the value, as its owner's release would leave it.
            leader.timestamp = 0;
            leader.flags &= !LFL_SHORT_HOLD;
        } else if (leader.owner_id, leader.owner_generation)
            == (Some(self.config.host_id), self.config.generation)
        {
            if self.request.shared {
                leader.flags |= LFL_SHORT_HOLD;
            } else {
                leader.flags &= !LFL_SHORT_HOLD;
            }
        }
        let io = self.write_leader(now, &leader);
        Step::Commit {
            io,
            ballot,
            value,
            leader,
        }
    }

    /// Hosts other than us whose dblock checks out and whose mode block says SHARED.
    fn shared_mode_blocks(&self, area: &[u8], cur: &Current) -> Vec<HostId> {
        let ss = self.ss();
        let mut seen = Vec::new();
        if self.mutants.has(Mutant::IgnoreModeBlocks) {
            return seen;
        }
        for q in 1..=cur.leader.num_hosts {
            let Some(host) = HostId::new(q) else { break };
            let at = (q as usize + 1) * ss;
            let Some(sector) = area.get(at..at + ss) else {
                break;
            };
            if host == self.config.host_id || PaxosDblock::decode(sector, 0).is_err() {
                continue;
            }
            if ModeBlock::decode(&sector[MBLOCK_OFFSET..], 0).is_ok_and(|m| m.shared) {
                seen.push(host);
            }
        }
        seen
    }

    /// The dblocks of hosts 1 … num_hosts in a phase read, skipping bad checksums.
    fn dblocks(&self, area: &[u8], cur: &Current) -> Vec<PaxosDblock> {
        let ss = self.ss();
        (1..=cur.leader.num_hosts as usize)
            .filter_map(|q| area.get((q + 1) * ss..(q + 2) * ss))
            .filter_map(|sector| PaxosDblock::decode(sector, 0).ok())
            .collect()
    }

    /// On MBAL/LVER: wait a random 0-1 s, take the next ballot number, look at the leader
    /// again (it catches the case where the winner already committed).
    fn ballot_lost(&mut self, now: Time, mut ballot: Ballot, later: Option<Lver>) -> Step {
        ballot.mbal = Mbal(ballot.mbal.0 + ballot.cur.leader.max_hosts.max(1));
        ballot.later = later;
        let jitter = Duration::from_micros(self.rng.below(1_000_000));
        Step::RetryDelay {
            ballot,
            until: now + jitter,
        }
    }

    /// §8.1 steps 3-6.
    fn after_release_read(
        &mut self,
        now: Time,
        committed: LeaderRecord,
        then: AfterFree,
        read: Result<LeaderRecord, i32>,
    ) -> Step {
        let leader = match read {
            Ok(leader) => leader,
            Err(rv) => return self.after_free(now, then, committed, Err(rv)),
        };
        if leader.write_id != self.config.host_id.get() {
            // Another host wrote the leader last; our RELEASED dblock tells readers we let go.
            return self.after_free(now, then, committed, Ok(()));
        }
        let me = (Some(self.config.host_id), self.config.generation);
        // Our own free write of an earlier try, read where it landed (the newest leader is
        // read, algorithms.md §1): write it again, so that a majority holds it.
        let freed_by_us = leader.lver == committed.lver
            && leader.timestamp == 0
            && (leader.owner_id, leader.owner_generation) == me
            && self.config.disks.count() > 1;
        let rv = if leader.lver != committed.lver {
            Some(SANLK_RELEASE_LVER)
        } else if freed_by_us {
            None
        } else if leader.timestamp == 0
            || (leader.owner_id, leader.owner_generation) != me
            || leader != committed
        {
            Some(SANLK_RELEASE_OWNER)
        } else {
            None
        };
        if let Some(rv) = rv {
            return self.after_free(now, then, committed, Err(rv));
        }
        let mut freed = leader;
        freed.timestamp = 0;
        freed.write_id = self.config.host_id.get();
        freed.write_generation = self.config.generation.0;
        freed.write_timestamp = now.secs();
        freed.flags &= !LFL_SHORT_HOLD;
        if let Some(name) = self.rename_to {
            freed.resource_name = name;
        }
        let io = self.write_leader(now, &freed);
        Step::ReleaseWriteLeader {
            io,
            committed,
            then,
        }
    }

    /// Our SHARED mode block: the record of a shared hold.
    fn shared_mode(&self) -> ModeBlock {
        ModeBlock {
            shared: true,
            generation: self.config.generation,
        }
    }

    /// Writes the LVB sector (sector 2002 of the lease, whatever the geometry, as 3.8.5).
    fn write_lvb(&mut self, now: Time, lvb: &Lvb) -> Round<Digest> {
        let at = self.config.geometry.sector_offset(SectorNr::LVB);
        let data = lvb.encode(self.config.geometry.sector_size());
        self.on_every_disk(now, at, IoOp::Write { data })
    }

    /// The mode block our ballot writes carry: SHARED while converting SH→EX.
    fn ballot_mode(&self) -> ModeBlock {
        match self.converting {
            Some(_) => self.shared_mode(),
            None => ModeBlock::default(),
        }
    }

    /// EX→SH (§9.5): the LVB if set, our dblock RELEASED with a SHARED mode block, then the
    /// leader freed.
    fn convert_to_shared(&mut self, now: Time, leader: LeaderRecord, dblock: PaxosDblock) -> Step {
        if let Some(lvb) = self.dirty_lvb.take() {
            let io = self.write_lvb(now, &lvb);
            return Step::ConvertLvb { io, leader, dblock };
        }
        let shared = released(self.not_behind(dblock));
        let mode = self.shared_mode();
        let io = self.write_dblock(now, &shared, mode);
        Step::ConvertSharedDblock {
            io,
            leader,
            dblock: shared,
        }
    }

    /// Every successful acquire ends here: read the LVB if asked (a failed read is only
    /// logged by sanlock: the value reads as zeros), report, hold.
    fn become_held(
        &mut self,
        now: Time,
        leader: LeaderRecord,
        dblock: PaxosDblock,
        shared: bool,
    ) -> Step {
        if self.converting.is_some() {
            // Now exclusive: our sector with the ballot values, flags 0, no mode block.
            let io = self.write_dblock(now, &dblock, ModeBlock::default());
            return Step::ConvertExclusiveDblock { io, leader, dblock };
        }
        if self.request.lvb {
            let at = self.config.geometry.sector_offset(SectorNr::LVB);
            let len = self.ss();
            let io = self.on_every_disk(now, at, IoOp::Read { len });
            return Step::ReadLvb {
                io,
                leader,
                dblock,
                shared,
            };
        }
        self.events.push_back(Event::Acquired { leader, lvb: None });
        Step::Held {
            leader,
            dblock,
            shared,
        }
    }

    /// A shared release done on a majority of disks but missed by another that answered: our
    /// SHARED mode block left there would make every exclusive acquire count us a live
    /// shared holder for as long as we live (any disk's SHARED counts, §9.2: one still in
    /// flight must not be missed). Write it again after an io_timeout, a few times.
    fn clear_mode_again(&mut self, now: Time, missed: bool, tries: u8) -> Step {
        if !missed || tries > CLEAR_MODE_TRIES {
            return Step::Done;
        }
        Step::ClearModeRetry {
            until: now + self.config.timeouts.io_timeout(),
            tries,
        }
    }

    /// A convert to shared that cannot tell what reached the disks: held shared, and the
    /// leader it may have kept is ours to free at the release.
    fn shared_keeping_leader(&mut self, leader: LeaderRecord, dblock: PaxosDblock) -> Step {
        self.leader_left = Some(leader);
        self.events.push_back(Event::Converted { shared: true });
        Step::Held {
            leader,
            dblock,
            shared: true,
        }
    }

    /// Where a leader release ends, by what it was for.
    fn after_free(
        &mut self,
        now: Time,
        then: AfterFree,
        committed: LeaderRecord,
        result: Result<(), i32>,
    ) -> Step {
        match (then, result) {
            (AfterFree::Released, Ok(())) => {
                self.events.push_back(Event::Released);
                Step::Done
            }
            (AfterFree::Released | AfterFree::Retried, Err(rv)) if self.retries_release(rv) => {
                // The caller hears of the failure once; the release goes on in the background.
                if then == AfterFree::Released {
                    self.events.push_back(Event::ReleaseFailed { rv });
                }
                Step::ReleaseRetryDelay {
                    until: now + self.config.timeouts.io_timeout(),
                    leader: committed,
                }
            }
            (AfterFree::Released, Err(rv)) => {
                self.events.push_back(Event::ReleaseFailed { rv });
                Step::Done
            }
            (AfterFree::Retried, result) => {
                let rv = result.err().unwrap_or(0);
                self.events.push_back(Event::ReleaseRetried { rv });
                Step::Done
            }
            (AfterFree::HeldShared { dblock }, Ok(())) => {
                self.become_held(now, committed, dblock, true)
            }
            (AfterFree::HeldShared { dblock, .. }, Err(rv)) => {
                self.undo_shared(now, committed, dblock, rv)
            }
            (AfterFree::Eagain, Err(e)) if self.converting.is_none() && self.retries_release(e) => {
                self.fail_then_free(now, EAGAIN, committed)
            }
            (AfterFree::Eagain, _) => self.acquire_failed(now, EAGAIN),
            (AfterFree::Failed { rv }, Err(e))
                if self.converting.is_none() && self.retries_release(e) =>
            {
                self.fail_then_free(now, rv, committed)
            }
            (AfterFree::Failed { rv }, _) => self.acquire_failed(now, rv),
            (AfterFree::ConvertedShared { dblock }, Ok(())) => {
                self.events.push_back(Event::Converted { shared: true });
                Step::Held {
                    leader: committed,
                    dblock,
                    shared: true,
                }
            }
            // Our SHARED mode block is on disk; whether the leader was freed is not known (a
            // timed-out write may still land). Believing we are still exclusive could meet a
            // shared holder let in by that late write, so we are shared now: the worst a leader
            // left held can do is keep others waiting until we release or die.
            (AfterFree::ConvertedShared { dblock }, Err(_)) => {
                self.shared_keeping_leader(committed, dblock)
            }
            (AfterFree::BackToShared { dblock, rv }, _) => {
                self.converting = None;
                self.events.push_back(Event::ConvertFailed { rv });
                Step::Held {
                    leader: committed,
                    dblock,
                    shared: true,
                }
            }
        }
    }

    /// An acquire that failed after the lease became ours on disk, whose leader could not be
    /// freed for an I/O error: the caller hears of the failure now, and the leader is freed in
    /// the background, as a release that failed (a leader left held by a live host that
    /// holds nothing would be refused to everyone for as long as it lives).
    fn fail_then_free(&mut self, now: Time, rv: i32, committed: LeaderRecord) -> Step {
        self.events.push_back(Event::AcquireFailed { rv });
        Step::ReleaseRetryDelay {
            until: now + self.config.timeouts.io_timeout(),
            leader: committed,
        }
    }

    /// Whether a release that failed with `rv` is tried again: after a timeout (as 3.8.5's
    /// resource thread does), and on a lease of several disks after any I/O error too — a
    /// moment's failure of two disks of three must not leave the lease held for as long as
    /// we live.
    fn retries_release(&self, rv: i32) -> bool {
        let io_error = (-133..0).contains(&rv) || rv == SANLK_LEADER_READ;
        rv == SANLK_AIO_TIMEOUT || (self.config.disks.count() > 1 && io_error)
    }

    /// §9.1 step 4 / §9.2: what follows our own commit.
    fn after_commit(&mut self, now: Time, value: PaxosDblock, leader: LeaderRecord) -> Step {
        if self.request.shared {
            let dblock = released(value);
            let mode = self.shared_mode();
            let io = self.write_dblock(now, &dblock, mode);
            return Step::SharedDblockWrite {
                io,
                committed: leader,
                dblock,
            };
        }
        let holders: Vec<HostId> = std::mem::take(&mut self.shared_seen);
        if holders.is_empty() {
            return self.become_held(now, leader, value, false);
        }
        self.events.push_back(Event::NeedHostStatus {
            hosts: holders.clone(),
        });
        Step::AwaitHostStatus {
            leader,
            dblock: value,
            holders,
        }
    }

    /// §9.2 step 2, one holder at a time; then the exclusive lease is ours, or released
    /// again with -EAGAIN when a live shared holder remains.
    fn check_next_holder(
        &mut self,
        now: Time,
        leader: LeaderRecord,
        dblock: PaxosDblock,
        queue: Vec<(HostId, Option<HostStatus>)>,
        live: u32,
    ) -> Step {
        if let Some(&(q, _)) = queue.first() {
            let io = self.read_host_sector(now, q);
            return Step::ReadHolder {
                io,
                leader,
                dblock,
                queue,
                live,
            };
        }
        if live == 0 {
            return self.become_held(now, leader, dblock, false);
        }
        if self.converting.is_some() {
            // Others still hold it shared: give the leader back, keeping our SHARED mode block.
            let io = self.read_leader(now);
            return Step::ReleaseReadLeader {
                io,
                leader,
                then: AfterFree::BackToShared { dblock, rv: EAGAIN },
            };
        }
        let released = released(dblock);
        let io = self.write_dblock(now, &released, ModeBlock::default());
        Step::ReleaseDblock {
            io,
            leader,
            then: AfterFree::Eagain,
        }
    }

    /// Whether a shared holder with this mode-block generation is alive (§9.2 table), its
    /// silence measured between our own scans (to `last_check`), where 3.8.5 measures to now.
    fn holder_alive(&self, status: Option<&HostStatus>, generation: Generation) -> bool {
        let Some(s) = status else {
            return true;
        };
        let dead_after = self
            .config
            .timeouts
            .of_other(u64::from(s.io_timeout))
            .host_dead();
        if s.owner_generation < generation {
            // The shared hold is newer than anything our monitor has seen of that host (our
            // renewals, and so our scans, may be failing): it joined again since — even when
            // the instance we saw last had released its host_id. Alive.
            // (3.8.5 judges it by the older instance's silence or release; found by the
            // simulator.)
            return true;
        }
        if s.timestamp == 0 || s.owner_generation > generation {
            return false;
        }
        // Not `now`: a host resumed after 96 s stopped cleared a live holder's shared lease
        // (found by the simulator).
        s.silence_seen() <= dead_after
    }

    /// §8.3: an acquire that failed in phase 2 or at the commit may still see its value chosen
    /// (the write may have landed, and another host may complete the ballot). Write our dblock
    /// RELEASED, so a host finding us owner knows we let go (§7.3 e); after a failed commit,
    /// also free the leader if we turn out to have written it. sanlock writes an all-zero
    /// dblock here; we keep our ballot values, so no accepted value is erased.
    fn retract(
        &mut self,
        now: Time,
        value: PaxosDblock,
        committed: Option<LeaderRecord>,
        rv: i32,
    ) -> Step {
        let released = released(value);
        let mode = self.ballot_mode();
        let io = self.write_dblock(now, &released, mode);
        Step::RetractDblock { io, committed, rv }
    }

    /// A shared acquire that failed after its commit: our dblock RELEASED, no mode block.
    fn undo_shared(
        &mut self,
        now: Time,
        committed: LeaderRecord,
        dblock: PaxosDblock,
        rv: i32,
    ) -> Step {
        let released = released(dblock);
        let io = self.write_dblock(now, &released, ModeBlock::default());
        Step::UndoShared { io, committed, rv }
    }

    /// §9.1 step 3: a shared acquire that met a host only passing through (its leader has
    /// SHORT_HOLD) tries again after 0-1 s, up to SH_RETRIES times.
    fn acquire_failed_or_retry(&mut self, now: Time, rv: i32, short_hold: bool) -> Step {
        let passing = matches!(
            rv,
            SANLK_ACQUIRE_IDLIVE | SANLK_ACQUIRE_OWNED | SANLK_ACQUIRE_OTHER
        );
        if !(self.request.shared && passing && short_hold) {
            return self.acquire_failed(now, rv);
        }
        if self.sh_retries_left == 0 {
            return self.acquire_failed(now, SANLK_ACQUIRE_SHRETRY);
        }
        self.sh_retries_left -= 1;
        let jitter = Duration::from_micros(self.rng.below(1_000_000));
        Step::ShRetryDelay {
            until: now + jitter,
        }
    }

    /// A leader read checked as sanlock does, then verified.
    fn check_leader(&self, result: IoResult) -> Result<LeaderRecord, i32> {
        let sector = result.map_err(IoError::rv)?;
        let mut raw = RawLeader::parse(&sector).map_err(|_| SANLK_LEADER_READ)?;
        if self.mutants.has(Mutant::TrustBadChecksum) {
            raw = raw.sealed();
        }
        raw.check_as_sanlock(
            LeaderKind::Paxos,
            &self.config.space_name,
            Some(&self.config.resource_name),
            Some(self.config.host_id),
        )?;
        raw.verify(LeaderKind::Paxos)
            .map_err(|p| p.sanlk_code(RecordKind::PaxosLeader))
    }

    /// The attempt fails with `rv`. If our dblock still carries a value naming us, another
    /// host may yet commit it (completing our ballot); if the leader names us, our ballot's
    /// dblock has hidden the RELEASED that said we let go: mark it RELEASED first, so a
    /// host that finds us owner knows we do not hold it. 3.8.5 does this only after a failed
    /// phase-2 write or read or commit; a phase 2 beaten and then a failed look at the leader
    /// left a live host owning a lease it never held, refused to everyone
    /// (docs/SIMULATION.md, seeds 37 and 8).
    fn acquire_failed(&mut self, now: Time, rv: i32) -> Step {
        match self.last_dblock {
            Some(last) if self.exposed => self.retract(now, last, None, rv),
            _ => self.fail_now(rv),
        }
    }

    fn fail_now(&mut self, rv: i32) -> Step {
        if let Some((leader, dblock)) = self.converting.take().map(|held| *held) {
            // A failed SH→EX leaves the shared lease: our mode block still says SHARED.
            self.events.push_back(Event::ConvertFailed { rv });
            return Step::Held {
                leader,
                dblock,
                shared: true,
            };
        }
        self.events.push_back(Event::AcquireFailed { rv });
        Step::Done
    }
}

impl PaxosLease {
    /// `dblock`, or the later one this machine last wrote: after a failed SH→EX convert our
    /// dblock holds the ballot's value for the next version, which may be the only trace of
    /// a chosen value; writing the held version back over it would erase that trace.
    fn not_behind(&self, dblock: PaxosDblock) -> PaxosDblock {
        match self.last_dblock {
            Some(last) if last.lver > dblock.lver => PaxosDblock {
                flags: last.flags | dblock.flags,
                ..last
            },
            _ => dblock,
        }
    }
}

/// The same dblock with DBLOCK_FL_RELEASED set: what we write when we let a value go.
fn released(dblock: PaxosDblock) -> PaxosDblock {
    PaxosDblock {
        flags: dblock.flags | DBLOCK_FL_RELEASED,
        ..dblock
    }
}

/// How many times a shared release missed by a disk is written again.
const CLEAR_MODE_TRIES: u8 = 3;

// The mode block must follow the dblock within its sector (paxos_dblock.h).
const _: () = assert!(MBLOCK_OFFSET >= 56);
// Sector 1 holds the request record; dblocks start at sector 2.
const _: () = assert!(SectorNr::REQUEST.0 == 1);

#[path = "paxos_disks.rs"]
mod disks;
use disks::{Digest, LeaseRead, Merged, OwnerSector, PhaseFailure, PhaseRead};

#[cfg(test)]
#[path = "paxos_tests.rs"]
mod tests;
