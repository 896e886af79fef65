//! The delta lease: one host's hold on its host_id in one lockspace (Chockler & Malkhi's light-
//! weight lease, as sanlock 3.8.5 runs it: delta_lease.c, lockspace.c `lockspace_thread`).
//!
//! One [`DeltaLease`] is one host_id of one host. It is a pure state machine: hand it the time
//! and I/O completions, take I/O requests, events and its next deadline back.
//!
//! I/O sequences (H = our host_id, ss = sector size, N = our io_timeout, N' = the io_timeout in
//! the lease on disk, algorithms.md §3-4):
//!
//! | operation | I/O | waits |
//! | --- | --- | --- |
//! | acquire, lease free or last held by us (same host name) | read 1 sector @ (H−1)·ss; write it; read it back | 2N' between the write and the read |
//! | acquire, lease held by another host name | read; read again; write; read back | 8N'+60 before the second read, 2N' before the last |
//! | renew | read the whole area (align bytes); write our sector (timeout 8N+60) | due 2N + 0.5 s after the last success, 0.5 s after a failure |
//! | release | write our sector with timestamp 0 (only if the last renewal succeeded) | — |
//!
//! Every read is checked as sanlock checks it (magic, major version, space name, checksum) and
//! every record we write is decoded again before it leaves, so what we write is what we trust.

use std::collections::VecDeque;
use std::time::Duration;

use crate::hosts::ReadBound;
use crate::ids::{Generation, HostId};
use crate::io::{Completion, DiskRef, IoBook, IoError, IoId, IoOp, IoRequest, IoResult, Pending};
use crate::mutants::{Mutant, Mutations};
use crate::ondisk::error::SANLK_LEADER_READ;
use crate::ondisk::{
    DeltaSector, Geometry, HostBitmap, HostEvent, LeaderKind, MailboxBlock, Name, RawLeader,
};
use crate::time::Time;
use crate::timeouts::Timeouts;

pub use crate::rv::{SANLK_ERROR, SANLK_HOSTID_BUSY, SANLK_RENEW_DIFF, SANLK_RENEW_OWNER};

/// What a delta lease is: whose, where, and with which timeouts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeltaConfig {
    /// The lockspace name.
    pub space_name: Name,
    /// Our host_id.
    pub host_id: HostId,
    /// Our host name, unique per host instance (`-e`); at most 47 bytes reach the disk.
    pub host_name: Name,
    /// The lockspace's geometry.
    pub geometry: Geometry,
    /// Byte offset of the lockspace area on its disk.
    pub offset: u64,
    /// Our timeouts (from our io_timeout N).
    pub timeouts: Timeouts,
}

impl DeltaConfig {
    /// Byte offset of our sector on the disk.
    pub fn sector_offset(&self) -> u64 {
        self.offset
            + self
                .geometry
                .sector_offset(self.geometry.delta_sector(self.host_id))
    }
}

/// What the machine reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// We own the host_id with this generation; `timestamp_s` is the acquire's timestamp.
    Acquired {
        /// Our generation of the host_id.
        generation: Generation,
        /// The timestamp written, our monotonic seconds.
        timestamp_s: u64,
    },
    /// The acquire failed with this sanlock result; nothing is held.
    AcquireFailed {
        /// SANLK_* or -errno.
        rv: i32,
    },
    /// A renewal wrote `timestamp_s`; `lockspace` is the whole area it read, for watching the
    /// other hosts.
    Renewed {
        /// The timestamp written.
        timestamp_s: u64,
        /// How long the read of the area took (the renewal history's `read_ms`).
        read_ms: u64,
        /// How long the write of our sector took (`write_ms`).
        write_ms: u64,
        /// Every host's delta sector, as read at the start of this renewal.
        lockspace: bytes::Bytes,
        /// What that read says of the host_ids in use, for ballot reads.
        read_bound: ReadBound,
    },
    /// A renewal failed; the lease is still ours until it expires. `corrupt` failures (our
    /// record is not what we wrote) expire the lease at once.
    RenewalFailed {
        /// SANLK_* or -errno.
        rv: i32,
        /// Our record on disk is wrong: the lockspace fails now, not at 8N.
        corrupt: bool,
    },
    /// The last successful renewal is 6N old.
    RenewalWarning,
    /// The last successful renewal is 8N old, or our record was corrupt: the lockspace has
    /// failed. Recovery must start, and the watchdog is no longer fed for it.
    Expired,
    /// Released: our record on disk says timestamp 0 (or nothing was written because the last
    /// renewal had failed). The machine is done.
    Released,
    /// A read between renewals ([`DeltaLease::set_peek`]): every host's delta sector, for
    /// events and requests only (our own lease's state is judged at renewals).
    Peeked {
        /// The area as read (the sectors up to the highest host_id in use, or all of them).
        lockspace: bytes::Bytes,
        /// When the whole area was read (ballots were under way): how far ballot reads must
        /// reach from now on, as a renewal's read says ([`ReadBound`]).
        read_bound: Option<ReadBound>,
    },
}

/// One host's delta lease on one host_id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeltaLease {
    config: DeltaConfig,
    phase: Phase,
    held: Option<Held>,
    bitmap: HostBitmap,
    host_event: HostEvent,
    /// Our mailbox block (messages and acks, ondisk::mailbox), written with every write of
    /// our sector; `None` writes sanlock's zeros there.
    mailbox: Option<MailboxBlock>,
    release_requested: bool,
    /// Read the lockspace between renewals too ([`DeltaLease::set_peek`]), next at `peek_at`.
    peek: bool,
    peek_at: Option<Time>,
    /// Bytes a peek reads: the sectors up to the highest host_id in use at the last renewal
    /// (a host that joins above it is seen at the next renewal, as sanlock sees every host).
    peek_len: usize,
    /// Until when a peek reads the whole area, so that ballots under way keep a fresh read
    /// bound between renewals ([`DeltaLease::want_view`]).
    view_wanted_until: Option<Time>,
    /// When the last read of the whole area (a renewal's or a whole peek's) was issued.
    whole_read_at: Option<Time>,
    io: IoBook,
    events: VecDeque<Event>,
    mutants: Mutations,
}

/// What we know while we own the host_id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Held {
    generation: Generation,
    /// The sector we last wrote (acquire or renewal).
    last_written: DeltaSector,
    /// When the last successful write's timestamp was taken.
    last_success: Time,
    /// Whether the last renewal attempt succeeded (release writes only then).
    last_renewal_ok: bool,
    warned: bool,
    expired: bool,
    /// Renewals that must still succeed before the lease is reported acquired: one when the
    /// acquire's claim was already 6N old when it was verified (a previous owner's larger
    /// io_timeout made the waits long, or the daemon stalled), two when the claim had been
    /// silent so long that other hosts may count this host dead until they have seen a
    /// renewal (their scans come every 2N). Nothing can use the lease meanwhile.
    confirming: u8,
}

/// Where the machine is; each phase holds only what it knows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Not started.
    Idle,
    /// Step 1 of the acquire: our sector as it is.
    ReadLeader { io: Pending },
    /// The lease was held under another host name: wait until that host is certainly dead or
    /// has renewed.
    WaitLongDelay { first: RawLeader, until: Time },
    /// After the long wait: has anyone renewed it?
    RereadLeader { io: Pending, first: RawLeader },
    /// Our claim, on its way to disk; `short_delay` comes from the io_timeout that was on disk
    /// before it, `taken` is when its timestamp was read from the clock.
    WriteLeader {
        io: Pending,
        written: DeltaSector,
        short_delay: Duration,
        taken: Time,
    },
    /// Give a racing host time to overwrite our claim.
    WaitShortDelay {
        written: DeltaSector,
        until: Time,
        taken: Time,
    },
    /// Did our claim survive?
    VerifyLeader {
        io: Pending,
        written: DeltaSector,
        taken: Time,
    },
    /// Held; the next renewal is due at `due`.
    Held { due: Time },
    /// Between renewals (with [`DeltaLease::set_peek`]): the whole lockspace read again, for
    /// the other hosts' events and requests only; the renewal stays due at `due`.
    Peek {
        io: Pending,
        due: Time,
        /// Whether it reads the whole area (and so gives a read bound).
        whole: bool,
    },
    /// Renewal step 1: the whole lockspace.
    RenewRead { io: Pending },
    /// Renewal step 2: our new timestamp.
    RenewWrite {
        io: Pending,
        written: DeltaSector,
        taken: Time,
        lockspace: bytes::Bytes,
        read_started: Time,
    },
    /// Our sector with timestamp 0.
    ReleaseWrite { io: Pending },
    /// Terminal: released, failed or stopped.
    Done,
}

impl DeltaLease {
    /// A machine for `config`, not yet acquiring.
    pub fn new(config: DeltaConfig) -> Self {
        DeltaLease {
            config,
            phase: Phase::Idle,
            held: None,
            bitmap: HostBitmap::EMPTY,
            host_event: HostEvent::default(),
            mailbox: None,
            release_requested: false,
            peek: false,
            peek_at: None,
            peek_len: 0,
            view_wanted_until: None,
            whole_read_at: None,
            io: IoBook::default(),
            events: VecDeque::new(),
            mutants: Mutations::default(),
        }
    }

    /// The deliberate bug to run with (core::mutants).
    pub(crate) fn set_mutations(&mut self, mutants: Mutations) {
        self.mutants = mutants;
    }

    /// Starts the acquire (add_lockspace). Call once, on a new machine.
    pub fn acquire(&mut self, now: Time) {
        self.tick(now);
        assert_eq!(self.phase, Phase::Idle, "acquire on a started delta lease");
        let io = self.read(now, self.config.sector_offset(), self.sector_len());
        self.phase = Phase::ReadLeader { io };
    }

    /// Also reads the lockspace half way between renewals, reporting it as
    /// [`Event::Peeked`] (the daemon's choice: events and requests from other hosts arrive
    /// sooner; the simulator leaves it off).
    pub fn set_peek(&mut self, peek: bool) {
        self.peek = peek;
    }

    /// Ballots are under way (or about to be): for the next renewal interval, peeks read the
    /// whole area, so that a read bound (`Event::Peeked`) comes half way between renewals and
    /// ballot reads stay bounded across the gap between one renewal's bound and the next.
    /// When the last whole read is more than N old, a whole peek is due at once: ballots that
    /// start late in a renewal interval find the renewal's bound about to lapse, and the peek
    /// of this interval already made.
    pub fn want_view(&mut self, now: Time) {
        self.tick(now);
        self.view_wanted_until = Some(now + self.config.timeouts.id_renewal());
        let old = self
            .whole_read_at
            .is_none_or(|at| now >= at + self.config.timeouts.io_timeout());
        if self.peek && old && matches!(self.phase, Phase::Held { .. }) {
            self.peek_at = Some(self.peek_at.map_or(now, |p| p.min(now)));
        }
    }

    /// Renews as soon as possible (when held between renewals): an event just set goes out
    /// now rather than at the next scheduled renewal. Renewing early is always safe.
    pub fn renew_soon(&mut self, now: Time) {
        self.tick(now);
        if let Phase::Held { due } = &mut self.phase {
            *due = (*due).min(now);
        }
    }

    /// Asks for the release (rem_lockspace): done at once when idle between renewals, else
    /// after the renewal in flight. Ignored unless the lease is held.
    pub fn release(&mut self, now: Time) {
        self.tick(now);
        if self.held.is_none() {
            return;
        }
        self.release_requested = true;
        if let Phase::Held { .. } = self.phase {
            self.start_release(now);
        }
    }

    /// Stops whatever is going on, in any phase, without writing: an acquire fails with
    /// SANLK_ERROR; a held lease is abandoned on disk (it expires for the other hosts). I/O in
    /// flight is abandoned.
    pub fn abort(&mut self, now: Time) {
        self.tick(now);
        let waiting = self.pending();
        self.io.abandon(waiting);
        if self.is_acquiring() {
            self.events
                .push_back(Event::AcquireFailed { rv: SANLK_ERROR });
        }
        self.held = None;
        self.phase = Phase::Done;
    }

    /// Sets the bitmap the next renewals write (the hosts we want attention from).
    pub fn set_bitmap(&mut self, bitmap: HostBitmap) {
        self.bitmap = bitmap;
    }

    /// Sets the host event the next renewals write (zeros when cleared).
    pub fn set_host_event(&mut self, event: HostEvent) {
        self.host_event = event;
    }

    /// Sets the mailbox block the next writes of our sector carry.
    pub fn set_mailbox(&mut self, block: Option<MailboxBlock>) {
        self.mailbox = block;
    }

    /// The mailbox block our next writes carry.
    pub fn mailbox(&self) -> Option<MailboxBlock> {
        self.mailbox
    }

    /// The mailbox block of our last completed write (what the other hosts can read now).
    pub fn written_mailbox(&self) -> Option<MailboxBlock> {
        self.held.as_ref().and_then(|h| h.last_written.mailbox)
    }

    /// Hands in the completion of request `id`. A completion at or after the I/O's deadline
    /// counts as a timeout (and as late), even if `handle_timeout` was not called in between;
    /// one for an I/O already given up is counted and ignored.
    pub fn handle_io(&mut self, now: Time, id: IoId, result: IoResult) {
        self.tick(now);
        let waiting = self.pending();
        if let Completion::Deliver(result) = self.io.complete(now, id, waiting, result) {
            self.io_done(now, result);
        }
    }

    /// Hands in the passing of time: expired I/O deadlines, waits, renewals due, the warn and
    /// expiry ages. Extra calls are harmless.
    pub fn handle_timeout(&mut self, now: Time) {
        self.tick(now);
        let waiting = self.pending();
        if self.io.expired(now, waiting) {
            self.io_done(now, Err(IoError::TimedOut));
        }
        match &self.phase {
            Phase::WaitLongDelay { first, until } if now >= *until => {
                let first = *first;
                let io = self.read(now, self.config.sector_offset(), self.sector_len());
                self.phase = Phase::RereadLeader { io, first };
            }
            Phase::WaitShortDelay {
                written,
                until,
                taken,
            } if now >= *until => {
                let (written, taken) = (*written, *taken);
                let io = self.read(now, self.config.sector_offset(), self.sector_len());
                self.phase = Phase::VerifyLeader { io, written, taken };
            }
            Phase::Held { due } if now >= *due => self.start_renewal(now),
            Phase::Held { due } if self.peek_at.is_some_and(|p| now >= p) => {
                let due = *due;
                self.peek_at = None;
                let whole = self.view_wanted_until.is_some_and(|until| now < until);
                if whole {
                    self.whole_read_at = Some(now);
                }
                let len = if whole {
                    self.config.geometry.area_bytes() as usize
                } else {
                    self.peek_len
                };
                let io = self.read(now, self.config.offset, len);
                self.phase = Phase::Peek { io, due, whole };
            }
            _ => {}
        }
        self.check_age(now);
    }

    /// The next I/O to run.
    pub fn poll_io(&mut self) -> Option<IoRequest> {
        self.io.poll()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`DeltaLease::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Time> {
        let phase = match &self.phase {
            Phase::WaitLongDelay { until, .. } | Phase::WaitShortDelay { until, .. } => {
                Some(*until)
            }
            Phase::Held { due } => Some(self.peek_at.map_or(*due, |p| p.min(*due))),
            _ => self.pending().map(|io| io.deadline),
        };
        let age = self
            .held
            .as_ref()
            .filter(|h| h.confirming == 0)
            .and_then(|h| {
                let t = self.config.timeouts;
                if !h.warned {
                    Some(h.last_success + t.id_renewal_warn())
                } else if !h.expired {
                    Some(h.last_success + t.id_renewal_fail())
                } else {
                    None
                }
            });
        [phase, age].into_iter().flatten().min()
    }

    /// What an acquire is waiting for, while one is under way.
    pub fn wait(&self) -> Option<crate::waits::Wait> {
        use crate::waits::Wait;
        match &self.phase {
            Phase::WaitLongDelay { until, .. } => Some(Wait::HostIdHolder { until: *until }),
            Phase::WaitShortDelay { until, .. } => Some(Wait::HostIdSettle { until: *until }),
            Phase::ReadLeader { io }
            | Phase::RereadLeader { io, .. }
            | Phase::WriteLeader { io, .. }
            | Phase::VerifyLeader { io, .. } => Some(Wait::Io { until: io.deadline }),
            _ => None,
        }
    }

    /// Our generation of the host_id, once acquired.
    pub fn generation(&self) -> Option<Generation> {
        self.held
            .as_ref()
            .filter(|h| h.confirming == 0)
            .map(|h| h.generation)
    }

    /// When the timestamp of the last successful acquire or renewal was taken.
    pub fn last_success(&self) -> Option<Time> {
        self.held.as_ref().map(|h| h.last_success)
    }

    /// Whether the lease is held and has not expired: the window in which this host may act
    /// on leases of the lockspace.
    pub fn is_live(&self) -> bool {
        self.held
            .as_ref()
            .is_some_and(|h| !h.expired && h.confirming == 0)
    }

    /// Whether an acquire is under way.
    pub fn is_acquiring(&self) -> bool {
        self.held.as_ref().is_some_and(|h| h.confirming > 0)
            || matches!(
                self.phase,
                Phase::ReadLeader { .. }
                    | Phase::WaitLongDelay { .. }
                    | Phase::RereadLeader { .. }
                    | Phase::WriteLeader { .. }
                    | Phase::WaitShortDelay { .. }
                    | Phase::VerifyLeader { .. }
            )
    }

    /// Whether the machine has finished (released, failed or aborted).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Completions that arrived after their I/O was given up.
    pub fn late_completions(&self) -> u64 {
        self.io.late_completions()
    }

    /// The configuration.
    pub fn config(&self) -> &DeltaConfig {
        &self.config
    }

    fn tick(&mut self, now: Time) {
        self.io.tick(now);
    }

    /// When a read of ours was issued: io_timeout before its deadline.
    fn read_issued_at(&self, io: &Pending) -> Time {
        let timeout = self.config.timeouts.io_timeout();
        Time::new(io.deadline.since_boot().saturating_sub(timeout))
    }

    fn sector_len(&self) -> usize {
        self.config.geometry.sector_size().as_usize()
    }

    fn pending(&self) -> Option<Pending> {
        match &self.phase {
            Phase::ReadLeader { io }
            | Phase::RereadLeader { io, .. }
            | Phase::WriteLeader { io, .. }
            | Phase::VerifyLeader { io, .. }
            | Phase::RenewRead { io }
            | Phase::Peek { io, .. }
            | Phase::RenewWrite { io, .. }
            | Phase::ReleaseWrite { io } => Some(*io),
            _ => None,
        }
    }

    fn read(&mut self, now: Time, offset: u64, len: usize) -> Pending {
        let timeout = self.config.timeouts.io_timeout();
        self.submit(now, offset, IoOp::Read { len }, timeout)
    }

    fn write(&mut self, now: Time, sector: &DeltaSector, timeout: Duration) -> Pending {
        let data = sector.encode();
        // Pair assertion: what we write must decode to what we meant.
        debug_assert_eq!(DeltaSector::decode(&data, 0).as_ref(), Ok(sector));
        self.submit(
            now,
            self.config.sector_offset(),
            IoOp::Write { data },
            timeout,
        )
    }

    fn submit(&mut self, now: Time, offset: u64, op: IoOp, timeout: Duration) -> Pending {
        self.io.submit(now, DiskRef::Lockspace, offset, op, timeout)
    }

    fn io_done(&mut self, now: Time, result: IoResult) {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        self.phase = match phase {
            Phase::ReadLeader { .. } => self.after_first_read(now, result),
            Phase::RereadLeader { first, .. } => self.after_reread(now, first, result),
            Phase::WriteLeader {
                written,
                short_delay,
                taken,
                ..
            } => match result {
                Ok(_) => Phase::WaitShortDelay {
                    written,
                    until: if self.mutants.has(Mutant::SkipDeltaShortWait) {
                        now
                    } else {
                        now + short_delay
                    },
                    taken,
                },
                Err(e) => self.acquire_failed(e.rv()),
            },
            Phase::VerifyLeader { written, taken, .. } => {
                self.after_verify(now, written, taken, result)
            }
            Phase::RenewRead { io } => {
                let started = self.read_issued_at(&io);
                self.after_renew_read(now, started, result)
            }
            Phase::RenewWrite {
                written,
                taken,
                lockspace,
                read_started,
                ..
            } => self.after_renew_write(now, written, taken, lockspace, read_started, result),
            Phase::Peek { io, due, whole } => {
                if let Ok(area) = result {
                    let started = self.read_issued_at(&io);
                    let read_bound =
                        whole.then(|| ReadBound::of_renewal(&area, self.config.geometry, started));
                    self.events.push_back(Event::Peeked {
                        lockspace: area,
                        read_bound,
                    });
                }
                if self.release_requested {
                    self.start_release_phase(now)
                } else {
                    Phase::Held { due }
                }
            }
            Phase::ReleaseWrite { .. } => {
                // Released either way: a failed write leaves the lease to expire on disk.
                self.held = None;
                self.events.push_back(Event::Released);
                Phase::Done
            }
            other => unreachable!("completion in phase {other:?}"),
        };
    }

    /// delta_lease_acquire steps 1-3.
    fn after_first_read(&mut self, now: Time, result: IoResult) -> Phase {
        let raw = match self.check_read(result) {
            Ok(raw) => raw,
            Err(rv) => return self.acquire_failed(rv),
        };
        let free = raw.timestamp == 0;
        let ours = raw.resource_name.matches(&self.disk_host_name());
        if free || ours {
            return self.write_claim(now, &raw);
        }
        let wait = self.config.timeouts.of_other(u64::from(raw.io_timeout));
        Phase::WaitLongDelay {
            first: raw,
            until: now + wait.delta_acquire_wait(),
        }
    }

    /// Steps 5-6: unchanged (or freed) after the long wait means its holder is gone.
    fn after_reread(&mut self, now: Time, first: RawLeader, result: IoResult) -> Phase {
        let raw = match self.check_read(result) {
            Ok(raw) => raw,
            Err(rv) => return self.acquire_failed(rv),
        };
        if raw.to_bytes() == first.to_bytes() || raw.timestamp == 0 {
            self.write_claim(now, &raw)
        } else {
            self.acquire_failed(SANLK_HOSTID_BUSY)
        }
    }

    /// Step 7: the record as read, with us as owner, the generation bumped, our timestamp.
    fn write_claim(&mut self, now: Time, raw: &RawLeader) -> Phase {
        let mut leader = match raw.verify(LeaderKind::Delta) {
            Ok(leader) => leader,
            Err(problem) => {
                return self
                    .acquire_failed(problem.sanlk_code(crate::ondisk::RecordKind::DeltaLeader))
            }
        };
        leader.timestamp = now.secs();
        leader.io_timeout = (self.config.timeouts.io_timeout_s() & 0xFF) as u16;
        leader.owner_id = Some(self.config.host_id);
        leader.owner_generation = Generation(leader.owner_generation.0.wrapping_add(1));
        leader.resource_name = self.disk_host_name();
        let written = DeltaSector {
            leader,
            bitmap: HostBitmap::EMPTY,
            mailbox: self.mailbox,
        };
        // 3.8.5 waits 2 × the io_timeout on disk. A racer that read the sector free before our
        // claim landed writes within its own io_timeout, so a disk value below ours (a
        // lockspace made with -o 1, hosts joining with 10) lets its claim land after our
        // check: two holders (found by the simulator). Wait 2 × the larger of the two.
        let ours = self.config.timeouts;
        let short_delay = ours
            .of_other(u64::from(raw.io_timeout))
            .delta_short_delay()
            .max(ours.delta_short_delay());
        let io = self.write(now, &written, self.config.timeouts.io_timeout());
        Phase::WriteLeader {
            io,
            written,
            short_delay,
            taken: now,
        }
    }

    /// Step 9: the claim must read back unchanged.
    fn after_verify(
        &mut self,
        now: Time,
        written: DeltaSector,
        taken: Time,
        result: IoResult,
    ) -> Phase {
        let raw = match self.check_read(result) {
            Ok(raw) => raw,
            Err(rv) => return self.acquire_failed(rv),
        };
        if raw.to_bytes() != written.leader.encode() {
            return self.acquire_failed(SANLK_HOSTID_BUSY);
        }
        let generation = written.leader.owner_generation;
        // With our N below the one on disk, the waits (2N' and more) can outlast our own 6N and
        // 8N: renew first rather than report a lease that is already failing. (3.8.5 races its
        // first renewal against its own 8N check, and arms the watchdog already expired.)
        // A claim silent so long that the others' scans may already count this host dead
        // (host_dead) by the time they see the renewal (within 2N) is renewed twice: a lease
        // taken before they saw it could be cleared as a dead host's (found by the simulator:
        // a daemon paused between its claim and its verify, then a shared hold cleared).
        let t = self.config.timeouts;
        let silence = now.saturating_since(taken);
        let confirming = if self.release_requested {
            0
        } else if silence + t.id_renewal_warn() / 3 >= t.host_dead() {
            2
        } else {
            u8::from(silence >= t.id_renewal_warn())
        };
        self.held = Some(Held {
            generation,
            last_written: written,
            last_success: taken,
            last_renewal_ok: true,
            warned: false,
            expired: false,
            confirming,
        });
        if confirming > 0 {
            let len = self.config.geometry.area_bytes() as usize;
            let io = self.read(now, self.config.offset, len);
            return Phase::RenewRead { io };
        }
        self.events.push_back(Event::Acquired {
            generation,
            timestamp_s: written.leader.timestamp,
        });
        // The acquire itself counts as the first renewal; the next one is 2N after it, which
        // may already be now (the free-lease acquire takes 2N).
        let due = self.renewal_due(taken);
        self.check_age(now);
        if self.release_requested {
            self.start_release_phase(now)
        } else {
            Phase::Held { due }
        }
    }

    fn start_renewal(&mut self, now: Time) {
        self.whole_read_at = Some(now);
        let len = self.config.geometry.area_bytes() as usize;
        let io = self.read(now, self.config.offset, len);
        self.phase = Phase::RenewRead { io };
    }

    /// delta_lease_renew steps 3-6.
    fn after_renew_read(&mut self, now: Time, read_started: Time, result: IoResult) -> Phase {
        let held = self.held.as_ref().expect("renewing a held lease");
        let area = match result {
            Ok(area) => area,
            Err(e) => return self.renewal_failed(now, e.rv(), false),
        };
        let at = self
            .config
            .geometry
            .sector_offset(self.config.geometry.delta_sector(self.config.host_id))
            as usize;
        let ours = match area.get(at..at + self.sector_len()) {
            Some(sector) => RawLeader::parse(sector),
            None => return self.renewal_failed(now, SANLK_LEADER_READ, false),
        };
        let Ok(raw) = ours else {
            return self.renewal_failed(now, SANLK_LEADER_READ, false);
        };
        if let Err(rv) =
            raw.check_as_sanlock(LeaderKind::Delta, &self.config.space_name, None, None)
        {
            return self.renewal_failed(now, rv, true);
        }
        let last = held.last_written.leader;
        if raw.owner_id != last.owner_id.map_or(0, HostId::get)
            || raw.owner_generation != last.owner_generation.0
            || !raw.resource_name.matches(&last.resource_name)
        {
            return self.renewal_failed(now, SANLK_RENEW_OWNER, true);
        }
        // After a failed write the record may or may not hold it; only the owner is checked.
        if held.last_renewal_ok && raw.to_bytes() != last.encode() {
            return self.renewal_failed(now, SANLK_RENEW_DIFF, true);
        }
        let mut leader = last;
        leader.timestamp = now.secs();
        leader.io_timeout = (self.config.timeouts.io_timeout_s() & 0xFF) as u16;
        leader.set_event(self.host_event);
        let written = DeltaSector {
            leader,
            bitmap: self.bitmap,
            mailbox: self.mailbox,
        };
        let timeout = self.config.timeouts.renewal_write_timeout();
        let io = self.write(now, &written, timeout);
        Phase::RenewWrite {
            io,
            written,
            taken: now,
            lockspace: area,
            read_started,
        }
    }

    fn after_renew_write(
        &mut self,
        now: Time,
        written: DeltaSector,
        taken: Time,
        lockspace: bytes::Bytes,
        read_started: Time,
        result: IoResult,
    ) -> Phase {
        if let Err(e) = result {
            return self.renewal_failed(now, e.rv(), false);
        }
        let held = self.held.as_mut().expect("renewing a held lease");
        assert!(taken >= held.last_success, "renewal timestamps go forward");
        held.last_written = written;
        held.last_success = taken;
        held.last_renewal_ok = true;
        held.warned = false;
        let timestamp_s = written.leader.timestamp;
        let confirmed = held.confirming == 1;
        held.confirming = held.confirming.saturating_sub(1);
        if held.confirming > 0 {
            // The join's first renewal: the others see us alive from their next scan; the
            // acquire is reported after the next renewal, 2N on.
            if self.release_requested {
                return self.start_release_phase(now);
            }
            return Phase::Held {
                due: self.renewal_due(taken),
            };
        }
        if confirmed {
            let generation = held.generation;
            self.events.push_back(Event::Acquired {
                generation,
                timestamp_s,
            });
        }
        let read_bound = ReadBound::of_renewal(&lockspace, self.config.geometry, read_started);
        self.events.push_back(Event::Renewed {
            timestamp_s,
            read_ms: taken.saturating_since(read_started).as_millis() as u64,
            write_ms: now.saturating_since(taken).as_millis() as u64,
            lockspace,
            read_bound,
        });
        if self.release_requested {
            return self.start_release_phase(now);
        }
        let due = self.renewal_due(taken);
        if self.peek {
            // Half way to the next renewal: events and requests wait at most half as long.
            self.peek_at = Some(now + due.saturating_since(now) / 2);
            let hosts = read_bound.hosts.max(self.config.host_id.get());
            self.peek_len = hosts as usize * self.sector_len();
        }
        Phase::Held { due }
    }

    fn renewal_failed(&mut self, now: Time, rv: i32, corrupt: bool) -> Phase {
        if self.held.as_ref().is_some_and(|h| h.confirming > 0) {
            // The join's own renewal failed: the join fails; our claim dies on disk unrenewed.
            self.held = None;
            return self.acquire_failed(rv);
        }
        let held = self.held.as_mut().expect("renewing a held lease");
        held.last_renewal_ok = false;
        self.events.push_back(Event::RenewalFailed { rv, corrupt });
        if corrupt && !held.expired {
            held.expired = true;
            self.events.push_back(Event::Expired);
        }
        if self.release_requested {
            return self.start_release_phase(now);
        }
        Phase::Held {
            due: now + self.config.timeouts.renewal_pause(),
        }
    }

    fn start_release(&mut self, now: Time) {
        self.phase = self.start_release_phase(now);
    }

    /// delta_lease_release: only after a successful last renewal; the last record with
    /// timestamp 0 and no bitmap.
    fn start_release_phase(&mut self, now: Time) -> Phase {
        let held = self.held.as_ref().expect("releasing a held lease");
        if !held.last_renewal_ok {
            self.held = None;
            self.events.push_back(Event::Released);
            return Phase::Done;
        }
        let mut leader = held.last_written.leader;
        leader.timestamp = 0;
        // The acks stay readable after we leave (a fence sees its ack and the release).
        let sector = DeltaSector {
            leader,
            bitmap: HostBitmap::EMPTY,
            mailbox: held.last_written.mailbox,
        };
        let io = self.write(now, &sector, self.config.timeouts.io_timeout());
        Phase::ReleaseWrite { io }
    }

    /// Emits the warning at 6N and the expiry at 8N after the last success.
    fn check_age(&mut self, now: Time) {
        let t = self.config.timeouts;
        let Some(held) = self.held.as_mut().filter(|h| h.confirming == 0) else {
            return;
        };
        let age = now.saturating_since(held.last_success);
        if !held.warned && age >= t.id_renewal_warn() {
            held.warned = true;
            self.events.push_back(Event::RenewalWarning);
        }
        if !held.expired && age >= t.id_renewal_fail() {
            held.expired = true;
            self.events.push_back(Event::Expired);
        }
    }

    fn renewal_due(&self, last_success: Time) -> Time {
        let t = self.config.timeouts;
        last_success + t.id_renewal() + t.renewal_pause()
    }

    fn acquire_failed(&mut self, rv: i32) -> Phase {
        self.events.push_back(Event::AcquireFailed { rv });
        Phase::Done
    }

    /// A read's result checked as sanlock checks a delta leader it will act on.
    fn check_read(&self, result: IoResult) -> Result<RawLeader, i32> {
        let sector = result.map_err(IoError::rv)?;
        let raw = RawLeader::parse(&sector).map_err(|_| SANLK_LEADER_READ)?;
        raw.check_as_sanlock(LeaderKind::Delta, &self.config.space_name, None, None)?;
        Ok(raw)
    }

    /// Our host name as it reaches the disk: at most 47 bytes (a bounded print with its NUL).
    fn disk_host_name(&self) -> Name {
        let bytes = self.config.host_name.as_bytes();
        Name::truncated(&bytes[..bytes.len().min(47)])
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
