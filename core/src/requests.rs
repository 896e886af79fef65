//! Asking a lease's holder to give it up, and noticing such a request (algorithms.md §10;
//! sanlock 3.8.5 resource.c `request_token`, `resource_thread_examine`).
//!
//! [`Request`] is what any host in the lockspace runs for `sanlock_request`: read the leader,
//! read the request record, write it. [`Examine`] is what the holder runs when another host's
//! bitmap bit (or an explicit examine) points at a resource it holds: read the request record
//! and say what the holder's process must suffer.
//!
//! | operation | I/O |
//! | --- | --- |
//! | request with an lver or force_mode | read the leader sector (a free lease ends here, nothing written); read the request sector; write it |
//! | request with neither (clears a request) | read the request sector; write it |
//! | examine ([`Examination`]) | read the request sector |

use crate::ids::{HostId, Lver};
use crate::io::{Completion, DiskRef, IoBook, IoError, IoId, IoOp, IoRequest, IoResult, Pending};
use crate::ondisk::leader::{LEADER_RECORD_SIZE, VERSION_MAJOR_MASK};
use crate::ondisk::request::{RawRequest, REQ_DISK_MAGIC, REQ_DISK_VERSION};
use crate::ondisk::{
    ForceMode, Geometry, LeaderKind, Name, RawLeader, RecordKind, RequestRecord, SectorNr,
};
use crate::time::Time;
use crate::timeouts::Timeouts;

pub use crate::rv::{
    SANLK_REQUEST_LVER, SANLK_REQUEST_MAGIC, SANLK_REQUEST_OLD, SANLK_REQUEST_VERSION,
};

/// Where the resource lease is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseAddress {
    /// The lockspace name.
    pub space_name: Name,
    /// The resource name.
    pub resource_name: Name,
    /// The lease's geometry.
    pub geometry: Geometry,
    /// Byte offset of the lease area on its disk.
    pub offset: u64,
    /// The lockspace's timeouts (for the I/O deadlines).
    pub timeouts: Timeouts,
}

impl LeaseAddress {
    fn request_offset(&self) -> u64 {
        self.offset + self.geometry.sector_offset(SectorNr::REQUEST)
    }

    fn sector_len(&self) -> usize {
        self.geometry.sector_size().as_usize()
    }
}

/// What a request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestArgs {
    /// SANLK_RES_LVER: the version asked for.
    pub lver: Option<Lver>,
    /// What the holder is to suffer.
    pub force_mode: ForceMode,
    /// SANLK_REQUEST_NEXT_LVER: without an lver, ask for the leader's lver + 1.
    pub next_lver: bool,
}

/// The outcome of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// Written (or nothing to do for a free lease). `notify`: set this host's bit in our
    /// bitmap for set_bitmap_seconds, so the holder examines its leases (§10.1 step 6).
    Done {
        /// The owner to notify, when there is one and the request asked for something.
        notify: Option<HostId>,
    },
    /// Refused with this sanlock result.
    Failed {
        /// SANLK_REQUEST_* or an I/O result.
        rv: i32,
    },
}

/// One `sanlock_request` on one resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    lease: LeaseAddress,
    args: RequestArgs,
    step: RequestStep,
    io: IoBook,
    outcome: Option<RequestOutcome>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum RequestStep {
    ReadLeader {
        io: Pending,
    },
    ReadRecord {
        io: Pending,
        lver: Lver,
        owner: Option<HostId>,
    },
    WriteRecord {
        io: Pending,
        owner: Option<HostId>,
    },
    Done,
}

impl Request {
    /// Starts the request now.
    pub fn start(now: Time, lease: LeaseAddress, args: RequestArgs) -> Self {
        let mut r = Request {
            lease,
            args,
            step: RequestStep::Done,
            io: IoBook::default(),
            outcome: None,
        };
        r.io.tick(now);
        r.step = if args.lver.is_none() && args.force_mode == ForceMode::None {
            // §10.1 step 1: this only clears a request.
            r.read_record(now, Lver(0), None)
        } else {
            let len = r.lease.sector_len();
            let io = r.submit(now, r.lease.offset, IoOp::Read { len });
            RequestStep::ReadLeader { io }
        };
        r
    }

    /// Hands in the completion of request `id`.
    pub fn handle_io(&mut self, now: Time, id: IoId, result: IoResult) {
        self.io.tick(now);
        let waiting = self.pending();
        if let Completion::Deliver(result) = self.io.complete(now, id, waiting, result) {
            self.io_done(now, result);
        }
    }

    /// Hands in the passing of time (I/O deadlines).
    pub fn handle_timeout(&mut self, now: Time) {
        self.io.tick(now);
        let waiting = self.pending();
        if self.io.expired(now, waiting) {
            self.io_done(now, Err(IoError::TimedOut));
        }
    }

    /// Gives up the request in whatever phase (SANLK_ERROR, as an aborted acquire reports); a
    /// write already handed out may still land.
    pub fn abort(&mut self, now: Time) {
        self.io.tick(now);
        let waiting = self.pending();
        self.io.abandon(waiting);
        if self.outcome.is_none() {
            self.outcome = Some(RequestOutcome::Failed {
                rv: crate::rv::SANLK_ERROR,
            });
        }
        self.step = RequestStep::Done;
    }

    /// The next I/O to run.
    pub fn poll_io(&mut self) -> Option<IoRequest> {
        self.io.poll()
    }

    /// The deadline of the I/O in flight.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.pending().map(|io| io.deadline)
    }

    /// The outcome, once done.
    pub fn outcome(&self) -> Option<RequestOutcome> {
        self.outcome
    }

    fn pending(&self) -> Option<Pending> {
        match &self.step {
            RequestStep::ReadLeader { io }
            | RequestStep::ReadRecord { io, .. }
            | RequestStep::WriteRecord { io, .. } => Some(*io),
            RequestStep::Done => None,
        }
    }

    fn submit(&mut self, now: Time, offset: u64, op: IoOp) -> Pending {
        let timeout = self.lease.timeouts.io_timeout();
        self.io.submit(now, DiskRef::LEASE, offset, op, timeout)
    }

    fn read_record(&mut self, now: Time, lver: Lver, owner: Option<HostId>) -> RequestStep {
        let len = self.lease.sector_len();
        let io = self.submit(now, self.lease.request_offset(), IoOp::Read { len });
        RequestStep::ReadRecord { io, lver, owner }
    }

    fn finish(&mut self, outcome: RequestOutcome) -> RequestStep {
        self.outcome = Some(outcome);
        RequestStep::Done
    }

    fn io_done(&mut self, now: Time, result: IoResult) {
        let step = std::mem::replace(&mut self.step, RequestStep::Done);
        self.step = match (step, result) {
            (_, Err(e)) => self.finish(RequestOutcome::Failed { rv: e.rv() }),
            (RequestStep::ReadLeader { .. }, Ok(sector)) => self.after_leader(now, &sector),
            (RequestStep::ReadRecord { lver, owner, .. }, Ok(sector)) => {
                self.after_record(now, &sector, lver, owner)
            }
            (RequestStep::WriteRecord { owner, .. }, Ok(_)) => {
                let asked = self.args.lver.is_some() || self.args.force_mode != ForceMode::None;
                self.finish(RequestOutcome::Done {
                    notify: owner.filter(|_| asked),
                })
            }
            (RequestStep::Done, _) => unreachable!("completion after the request finished"),
        };
    }

    /// §10.1 steps 2-3.
    fn after_leader(&mut self, now: Time, sector: &[u8]) -> RequestStep {
        let leader = RawLeader::parse(sector)
            .map_err(|_| crate::paxos::SANLK_LEADER_READ)
            .and_then(|raw| {
                raw.check_as_sanlock(
                    LeaderKind::Paxos,
                    &self.lease.space_name,
                    Some(&self.lease.resource_name),
                    None,
                )?;
                raw.verify(LeaderKind::Paxos)
                    .map_err(|p| p.sanlk_code(RecordKind::PaxosLeader))
            });
        let leader = match leader {
            Ok(leader) => leader,
            Err(rv) => return self.finish(RequestOutcome::Failed { rv }),
        };
        if leader.timestamp == 0 {
            // A free lease: nobody to ask, nothing written.
            return self.finish(RequestOutcome::Done { notify: None });
        }
        let lver = match (self.args.lver, self.args.next_lver) {
            (Some(lver), _) => lver,
            (None, true) => Lver(leader.lver.0 + 1),
            (None, false) => Lver(0),
        };
        if leader.lver >= lver {
            return self.finish(RequestOutcome::Failed {
                rv: SANLK_REQUEST_OLD,
            });
        }
        self.read_record(now, lver, leader.owner_id)
    }

    /// §10.1 steps 4-5.
    fn after_record(
        &mut self,
        now: Time,
        sector: &[u8],
        lver: Lver,
        owner: Option<HostId>,
    ) -> RequestStep {
        let raw = match RawRequest::parse(sector) {
            Ok(raw) => raw,
            Err(_) => {
                return self.finish(RequestOutcome::Failed {
                    rv: SANLK_REQUEST_MAGIC,
                })
            }
        };
        if raw.magic != REQ_DISK_MAGIC {
            return self.finish(RequestOutcome::Failed {
                rv: SANLK_REQUEST_MAGIC,
            });
        }
        if raw.version & VERSION_MAJOR_MASK != REQ_DISK_VERSION & VERSION_MAJOR_MASK {
            return self.finish(RequestOutcome::Failed {
                rv: SANLK_REQUEST_VERSION,
            });
        }
        // ">" so that several hosts may ask for the same version at once.
        let asked = self.args.lver.is_some() || self.args.force_mode != ForceMode::None;
        if asked && raw.lver > lver.0 {
            return self.finish(RequestOutcome::Failed {
                rv: SANLK_REQUEST_LVER,
            });
        }
        let record = RequestRecord {
            version: REQ_DISK_VERSION,
            lver,
            force_mode: self.args.force_mode,
        };
        let mut data = vec![0u8; self.lease.sector_len()];
        data[..24].copy_from_slice(&record.encode());
        debug_assert_eq!(RequestRecord::decode(&data, 0), Ok(record));
        let io = self.submit(now, self.lease.request_offset(), IoOp::Write { data });
        RequestStep::WriteRecord { io, owner }
    }
}

/// What the holder of a lease must do about a request (§10.2 step 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Examined {
    /// No request for a later version than ours: nothing.
    Nothing,
    /// FORCE: SIGKILL the holder (SIGTERM if it restricted SIGKILL).
    Kill,
    /// GRACEFUL: run the holder's killpath, else SIGTERM (SIGKILL if it restricted SIGTERM).
    Graceful,
}

/// Decides what a request record read by the holder of `held_lver` means (§10.2 step 2): only
/// a well-formed request with a force mode, for a version later than ours, counts.
pub fn examine(record_sector: &[u8], held_lver: Lver) -> Examined {
    let Ok(raw) = RawRequest::parse(record_sector) else {
        return Examined::Nothing;
    };
    let well_formed = raw.magic == REQ_DISK_MAGIC
        && raw.version & VERSION_MAJOR_MASK == REQ_DISK_VERSION & VERSION_MAJOR_MASK;
    if !well_formed || raw.lver == 0 || raw.lver <= held_lver.0 {
        return Examined::Nothing;
    }
    match ForceMode::from_value(raw.force_mode) {
        Some(ForceMode::Force) => Examined::Kill,
        Some(ForceMode::Graceful) => Examined::Graceful,
        _ => Examined::Nothing,
    }
}

/// The holder's read of a request record (§10.2 steps 1-3): one sector, one deadline. A read
/// that fails or times out means nothing to do, as in sanlock (it only logs).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Examination {
    held_lver: Lver,
    io: IoBook,
    pending: Option<Pending>,
    verdict: Option<Examined>,
}

impl Examination {
    /// Starts reading the request record of a lease we hold at `held_lver`.
    pub fn start(now: Time, lease: &LeaseAddress, held_lver: Lver) -> Self {
        let mut io = IoBook::default();
        io.tick(now);
        let len = lease.sector_len();
        let pending = io.submit(
            now,
            DiskRef::LEASE,
            lease.request_offset(),
            IoOp::Read { len },
            lease.timeouts.io_timeout(),
        );
        Examination {
            held_lver,
            io,
            pending: Some(pending),
            verdict: None,
        }
    }

    /// Hands in the completion of the read.
    pub fn handle_io(&mut self, now: Time, id: IoId, result: IoResult) {
        self.io.tick(now);
        if let Completion::Deliver(result) = self.io.complete(now, id, self.pending, result) {
            self.pending = None;
            self.verdict = Some(match result {
                Ok(sector) => examine(&sector, self.held_lver),
                Err(_) => Examined::Nothing,
            });
        }
    }

    /// Hands in the passing of time: past its deadline the read means nothing.
    pub fn handle_timeout(&mut self, now: Time) {
        self.io.tick(now);
        if self.io.expired(now, self.pending) {
            self.pending = None;
            self.verdict = Some(Examined::Nothing);
        }
    }

    /// Gives up the read (the lease went away).
    pub fn abort(&mut self) {
        self.io.abandon(self.pending.take());
        self.verdict.get_or_insert(Examined::Nothing);
    }

    /// The read to run.
    pub fn poll_io(&mut self) -> Option<IoRequest> {
        self.io.poll()
    }

    /// The read's deadline while it runs.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.pending.map(|io| io.deadline)
    }

    /// What the holder must suffer, once read.
    pub fn verdict(&self) -> Option<Examined> {
        self.verdict
    }
}

// The leader and the request record sit in different sectors.
const _: () = assert!(LEADER_RECORD_SIZE <= 512);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Generation;
    use crate::memdisk::MemDisk;
    use crate::ondisk::{resource_init, LeaderRecord, ResourceInit, SectorSize};

    fn name(s: &str) -> Name {
        Name::new(s.as_bytes()).unwrap()
    }

    fn address() -> LeaseAddress {
        LeaseAddress {
            space_name: name("LS"),
            resource_name: name("R"),
            geometry: Geometry::legacy(SectorSize::Bytes512),
            offset: 0,
            timeouts: Timeouts::new(10),
        }
    }

    /// A lease at lver 3 held by host 1 (or free when `held` is false).
    fn disk(held: bool) -> MemDisk {
        let g = Geometry::legacy(SectorSize::Bytes512);
        let mut bytes = resource_init(&ResourceInit {
            geometry: g,
            space_name: name("LS"),
            resource_name: name("R"),
            num_hosts: 0,
            clear_at_s: None,
        });
        let mut l = LeaderRecord::paxos_init(g, name("LS"), name("R"), 0);
        l.lver = Lver(3);
        l.owner_id = HostId::new(1);
        l.owner_generation = Generation(1);
        l.timestamp = if held { 500 } else { 0 };
        bytes[..200].copy_from_slice(&l.encode());
        MemDisk::from_bytes(bytes)
    }

    fn run(disk: &mut MemDisk, args: RequestArgs) -> (RequestOutcome, Vec<(&'static str, u64)>) {
        let now = Time::from_secs(1000);
        let mut r = Request::start(now, address(), args);
        let mut log = Vec::new();
        while let Some(req) = r.poll_io() {
            log.push((
                if matches!(req.op, IoOp::Read { .. }) {
                    "read"
                } else {
                    "write"
                },
                req.offset,
            ));
            let result = disk.apply(&req);
            r.handle_io(now, req.id, result);
        }
        (r.outcome().expect("finished"), log)
    }

    fn record(disk: &MemDisk) -> RequestRecord {
        RequestRecord::decode(&disk.bytes()[512..1024], 512).unwrap()
    }

    #[test]
    fn a_force_request_for_the_next_version_is_written_and_the_owner_notified() {
        // §10.1 [run]: FORCE against lver 3 held by host 1 → record `lver 4, force_mode 1`.
        let mut d = disk(true);
        let args = RequestArgs {
            lver: None,
            force_mode: ForceMode::Force,
            next_lver: true,
        };
        let (outcome, log) = run(&mut d, args);
        assert_eq!(
            outcome,
            RequestOutcome::Done {
                notify: HostId::new(1)
            }
        );
        assert_eq!(log, vec![("read", 0), ("read", 512), ("write", 512)]);
        assert_eq!(record(&d).lver, Lver(4));
        assert_eq!(record(&d).force_mode, ForceMode::Force);
    }

    #[test]
    fn requests_that_are_old_or_behind_a_later_one_are_refused() {
        // §10.1 step 3: without NEXT_LVER and without an lver, a held lease gives -272
        // (what `sanlock client request -r RES -f 1` gets); a recorded lver 9 > 4 gives -273.
        let mut d = disk(true);
        let args = RequestArgs {
            lver: None,
            force_mode: ForceMode::Force,
            next_lver: false,
        };
        assert_eq!(
            run(&mut d, args).0,
            RequestOutcome::Failed {
                rv: SANLK_REQUEST_OLD
            }
        );
        let later = RequestRecord {
            version: REQ_DISK_VERSION,
            lver: Lver(9),
            force_mode: ForceMode::Graceful,
        };
        d.bytes_mut()[512..536].copy_from_slice(&later.encode());
        let args = RequestArgs {
            lver: Some(Lver(4)),
            force_mode: ForceMode::Force,
            next_lver: false,
        };
        assert_eq!(
            run(&mut d, args).0,
            RequestOutcome::Failed {
                rv: SANLK_REQUEST_LVER
            }
        );
    }

    #[test]
    fn a_request_on_a_free_lease_writes_nothing() {
        let mut d = disk(false);
        let before = d.clone();
        let args = RequestArgs {
            lver: Some(Lver(4)),
            force_mode: ForceMode::Force,
            next_lver: false,
        };
        let (outcome, log) = run(&mut d, args);
        assert_eq!(outcome, RequestOutcome::Done { notify: None });
        assert_eq!(log, vec![("read", 0)]);
        assert_eq!(d, before);
    }

    #[test]
    fn a_request_with_neither_lver_nor_force_clears_the_record() {
        let mut d = disk(true);
        let old = RequestRecord {
            version: REQ_DISK_VERSION,
            lver: Lver(4),
            force_mode: ForceMode::Force,
        };
        d.bytes_mut()[512..536].copy_from_slice(&old.encode());
        let args = RequestArgs {
            lver: None,
            force_mode: ForceMode::None,
            next_lver: false,
        };
        let (outcome, log) = run(&mut d, args);
        assert_eq!(outcome, RequestOutcome::Done { notify: None });
        assert_eq!(log, vec![("read", 512), ("write", 512)]);
        assert_eq!(record(&d), RequestRecord::INIT);
    }

    #[test]
    fn the_holder_acts_only_on_requests_for_a_later_version() {
        // §10.2 step 2-3, and the golden record of a GRACEFUL request for lver 2.
        let golden = include_bytes!("../testdata/paxos_request_graceful.sector");
        assert_eq!(examine(golden, Lver(1)), Examined::Graceful);
        assert_eq!(
            examine(golden, Lver(2)),
            Examined::Nothing,
            "stale once at lver 2"
        );
        let force = RequestRecord {
            version: REQ_DISK_VERSION,
            lver: Lver(4),
            force_mode: ForceMode::Force,
        }
        .encode();
        assert_eq!(examine(&force, Lver(3)), Examined::Kill);
        assert_eq!(
            examine(&RequestRecord::INIT.encode(), Lver(3)),
            Examined::Nothing
        );
        assert_eq!(examine(&[0u8; 24], Lver(0)), Examined::Nothing, "bad magic");
    }
    #[test]
    fn an_examine_read_that_fails_or_times_out_means_nothing_and_abort_stops_it() {
        let now = Time::from_secs(1000);
        let mut disk = disk(true);
        let forced = RequestRecord {
            version: REQ_DISK_VERSION,
            lver: Lver(4),
            force_mode: ForceMode::Force,
        };
        disk.bytes_mut()[512..536].copy_from_slice(&forced.encode());

        // Completed in time: one read of sector 1, deadline N = 10 s.
        let mut e = Examination::start(now, &address(), Lver(3));
        let req = e.poll_io().unwrap();
        assert_eq!(
            (req.offset, req.deadline),
            (512, now + Timeouts::new(10).io_timeout())
        );
        assert_eq!(e.poll_timeout(), Some(req.deadline));
        e.handle_io(now, req.id, disk.apply(&req));
        assert_eq!(e.verdict(), Some(Examined::Kill));
        assert_eq!(e.poll_timeout(), None);

        // An error.
        let mut e = Examination::start(now, &address(), Lver(3));
        let req = e.poll_io().unwrap();
        e.handle_io(now, req.id, Err(IoError::Failed(5)));
        assert_eq!(e.verdict(), Some(Examined::Nothing));

        // The deadline passes; the late completion is dropped.
        let mut e = Examination::start(now, &address(), Lver(3));
        let req = e.poll_io().unwrap();
        e.handle_timeout(req.deadline);
        assert_eq!(e.verdict(), Some(Examined::Nothing));
        e.handle_io(req.deadline, req.id, disk.apply(&req));
        assert_eq!(e.verdict(), Some(Examined::Nothing));

        // Aborted before the read completes.
        let mut e = Examination::start(now, &address(), Lver(3));
        let req = e.poll_io().unwrap();
        e.abort();
        e.handle_io(now, req.id, disk.apply(&req));
        assert_eq!(e.verdict(), Some(Examined::Nothing));
    }

    #[test]
    fn a_request_aborted_midway_reports_an_error_and_ignores_its_completion() {
        let now = Time::from_secs(1000);
        let mut disk = disk(true);
        let args = RequestArgs {
            lver: None,
            force_mode: ForceMode::Force,
            next_lver: true,
        };
        let mut r = Request::start(now, address(), args);
        let req = r.poll_io().unwrap();
        r.abort(now);
        r.handle_io(now, req.id, disk.apply(&req));
        assert_eq!(
            r.outcome(),
            Some(RequestOutcome::Failed {
                rv: crate::rv::SANLK_ERROR
            })
        );
        assert_eq!((r.poll_io(), r.poll_timeout()), (None, None));
    }
}
