//! A paxos lease on several in-memory disks, some failing or hung: each step on every disk,
//! the same records on each, decided by a majority (sanlock 3.8.5's rules, algorithms.md §1).

use std::time::Duration;

use super::super::*;
use crate::memdisk::MemDisk;
use crate::ondisk::{lockspace_init, resource_init, DeltaSector, ResourceInit, SectorSize};
use crate::quorum::LeaseDisk;

const N: u64 = 10;
const AREA: usize = 1 << 20;
/// Where the lease starts on disks 0, 1, 2, 3: each disk has its own offset.
const OFFSETS: [u64; 4] = [0, 3 << 20, 1 << 20, 2 << 20];

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

fn g512() -> Geometry {
    Geometry::legacy(SectorSize::Bytes512)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// Every I/O fails with EIO.
    Fail,
    /// No I/O ever completes (until `answer_hung`).
    Hang,
}

struct Disks {
    disks: Vec<MemDisk>,
    faults: Vec<Fault>,
    lockspace: MemDisk,
    lease: PaxosLease,
    now: Time,
    /// (disk, read/write, offset from the lease's start on that disk, length).
    log: Vec<(usize, &'static str, u64, usize)>,
    hung: Vec<IoRequest>,
}

fn fresh_area() -> Vec<u8> {
    resource_init(&ResourceInit {
        geometry: g512(),
        space_name: name("LS"),
        resource_name: name("R"),
        num_hosts: 0,
        clear_at_s: None,
    })
}

impl Disks {
    fn new(count: usize, host: u64) -> Disks {
        let ls = lockspace_init(g512(), name("LS"), 10);
        let mut lockspace = ls.area;
        lockspace[..512].copy_from_slice(&ls.commit_sector);
        let disks = OFFSETS[..count]
            .iter()
            .map(|&o| {
                let mut bytes = vec![0u8; o as usize + AREA];
                bytes[o as usize..].copy_from_slice(&fresh_area());
                MemDisk::from_bytes(bytes)
            })
            .collect();
        let config = PaxosConfig {
            space_name: name("LS"),
            resource_name: name("R"),
            geometry: g512(),
            disks: LeaseDisks::new(&OFFSETS[..count]).unwrap(),
            host_id: HostId::new(host).unwrap(),
            generation: Generation(1),
            timeouts: Timeouts::new(N),
            lockspace_geometry: g512(),
            lockspace_offset: 0,
            rng_seed: 7,
        };
        Disks {
            disks,
            faults: vec![Fault::None; count],
            lockspace: MemDisk::from_bytes(lockspace),
            lease: PaxosLease::new(config),
            now: Time::from_secs(764),
            log: Vec::new(),
            hung: Vec::new(),
        }
    }

    /// Runs every I/O asked for, in order, until the machine asks for nothing more.
    fn run_io(&mut self) {
        while let Some(req) = self.lease.poll_io() {
            let DiskRef::Lease(disk) = req.disk else {
                let result = self.lockspace.apply(&req);
                self.lease.handle_io(self.now, req.id, result);
                continue;
            };
            let d = disk.index();
            let (kind, len) = match &req.op {
                IoOp::Read { len } => ("read", *len),
                IoOp::Write { data } => ("write", data.len()),
            };
            self.log.push((d, kind, req.offset - OFFSETS[d], len));
            match self.faults[d] {
                Fault::None => {
                    let result = self.disks[d].apply(&req);
                    self.lease.handle_io(self.now, req.id, result);
                }
                Fault::Fail => self
                    .lease
                    .handle_io(self.now, req.id, Err(IoError::Failed(5))),
                Fault::Hang => self.hung.push(req),
            }
        }
    }

    /// The hung disk comes back: what it was asked is done now, late.
    fn answer_hung(&mut self) {
        for req in std::mem::take(&mut self.hung) {
            let d = match req.disk {
                DiskRef::Lease(disk) => disk.index(),
                DiskRef::Lockspace => unreachable!("only lease disks hang here"),
            };
            let result = self.disks[d].apply(&req);
            self.lease.handle_io(self.now, req.id, result);
        }
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.lease.poll_event()).collect()
    }

    /// The lease area as disk `d` holds it.
    fn area(&self, d: usize) -> &[u8] {
        let o = OFFSETS[d] as usize;
        &self.disks[d].bytes()[o..o + AREA]
    }

    fn area_mut(&mut self, d: usize) -> &mut [u8] {
        let o = OFFSETS[d] as usize;
        &mut self.disks[d].bytes_mut()[o..o + AREA]
    }

    fn leader(&self, d: usize) -> LeaderRecord {
        LeaderRecord::decode(&self.area(d)[..512], LeaderKind::Paxos, 0).unwrap()
    }

    fn acquire(&mut self) -> Vec<Event> {
        self.lease.acquire(self.now, AcquireRequest::default());
        self.run_io();
        self.events()
    }

    fn release(&mut self) -> Vec<Event> {
        self.lease.release(self.now);
        self.run_io();
        self.events()
    }
}

fn acquired(events: &[Event]) -> LeaderRecord {
    match events {
        [Event::Acquired { leader, .. }] => *leader,
        other => panic!("expected one Acquired, got {other:?}"),
    }
}

#[test]
fn a_three_disk_lease_runs_every_step_on_every_disk_and_writes_the_same_records() {
    let mut one = Disks::new(1, 1);
    let single = acquired(&one.acquire());
    let mut three = Disks::new(3, 1);
    let leader = acquired(&three.acquire());
    assert_eq!(leader, single, "the same leader as on one disk");
    // Each of the single-disk lease's 6 I/Os, on each disk, at that disk's own offset.
    let mut per_disk: Vec<Vec<_>> = vec![Vec::new(); 3];
    for &(d, kind, at, len) in &three.log {
        per_disk[d].push((kind, at, len));
    }
    let single_log: Vec<_> = one.log.iter().map(|&(_, k, a, l)| (k, a, l)).collect();
    for (d, log) in per_disk.iter().enumerate() {
        assert_eq!(log, &single_log, "disk {d}");
    }
    for d in 0..3 {
        assert_eq!(
            three.area(d),
            one.area(0),
            "disk {d} holds what one disk holds"
        );
    }
    assert_eq!(three.release(), vec![Event::Released]);
    one.release();
    for d in 0..3 {
        assert_eq!(three.area(d), one.area(0), "after the release, disk {d}");
    }
}

#[test]
fn whichever_disk_of_three_fails_it_is_left_alone_and_the_lease_is_taken_and_released() {
    for bad in 0..3 {
        let mut w = Disks::new(3, 1);
        w.faults[bad] = Fault::Fail;
        let before = w.area(bad).to_vec();
        let leader = acquired(&w.acquire());
        assert_eq!(leader.owner_id, HostId::new(1));
        let good: Vec<usize> = (0..3).filter(|&d| d != bad).collect();
        for &d in &good {
            assert_eq!(w.leader(d), leader, "disk {d} while disk {bad} fails");
        }
        assert_eq!(w.release(), vec![Event::Released]);
        for &d in &good {
            assert_eq!(w.leader(d).timestamp, 0, "free on disk {d}");
        }
        assert_eq!(w.area(bad), &before[..], "nothing reached disk {bad}");
    }
}

/// Disk 0 of three hangs: the acquire waits one io_timeout, told of it by `time_out` at the
/// deadline, and is then acquired without waiting again.
fn acquired_past_a_hung_disk(time_out: impl FnOnce(&mut Disks)) -> Disks {
    let mut w = Disks::new(3, 1);
    w.faults[0] = Fault::Hang;
    let start = w.now;
    assert_eq!(w.acquire(), vec![], "the lease read waits for every disk");
    w.now = start + Duration::from_secs(N);
    time_out(&mut w);
    w.run_io();
    let leader = acquired(&w.events());
    assert_eq!(w.leader(1), leader);
    w
}

#[test]
fn a_hung_disk_of_three_costs_one_io_timeout_and_its_late_answers_are_only_counted() {
    let mut w = acquired_past_a_hung_disk(|w| w.lease.handle_timeout(w.now));
    assert_eq!(
        w.release(),
        vec![Event::Released],
        "no second wait: the disk hangs"
    );
    assert!(w.lease.is_done());
    let hung = w.hung.len();
    assert!(hung >= 6, "every step asked the hung disk too ({hung})");
    w.answer_hung();
    assert_eq!(w.lease.late_completions(), hung as u64);
    assert_eq!(w.events(), vec![]);
}

/// The backends report a hung I/O themselves, as timed out at its deadline, and drop its
/// late completion: that too costs one io_timeout, not one per read step (the daemon's
/// acquire with a hung disk of three took three io_timeouts).
#[test]
fn a_hung_disk_the_backend_times_out_costs_one_io_timeout() {
    let mut w = acquired_past_a_hung_disk(|w| {
        for req in std::mem::take(&mut w.hung) {
            w.lease.handle_io(w.now, req.id, Err(IoError::TimedOut));
        }
    });
    // The disk answers again: its writes are made and counted (its reads are not waited for).
    w.faults[0] = Fault::None;
    assert_eq!(w.release(), vec![Event::Released]);
    assert_eq!(w.leader(0), w.leader(1), "disk 0 was written too");
    assert!(w.lease.is_done());
}

/// Our timer first, then the backend's own timeout report for the same I/O: that report is
/// no answer from the disk, which still hangs (under load the daemon's timer could come
/// first, and each later read step waited an io_timeout again: CI, 3.04 s where 1.01 s).
#[test]
fn a_backend_timeout_after_our_own_leaves_the_disk_hung() {
    let mut w = acquired_past_a_hung_disk(|w| {
        w.lease.handle_timeout(w.now);
        for req in std::mem::take(&mut w.hung) {
            w.lease.handle_io(w.now, req.id, Err(IoError::TimedOut));
        }
    });
    assert_eq!(
        w.release(),
        vec![Event::Released],
        "no wait: the disk hangs"
    );
}

#[test]
fn two_failing_disks_of_three_fail_the_acquire_as_sanlock_does() {
    // _lease_read_num: a leader agreed on by a majority is needed; one disk read → -210.
    let mut w = Disks::new(3, 1);
    w.faults[0] = Fault::Fail;
    w.faults[2] = Fault::Fail;
    assert_eq!(
        w.acquire(),
        vec![Event::AcquireFailed {
            rv: SANLK_DBLOCK_READ
        }]
    );
    // Two of four is not a majority either (exactly half is not enough).
    let mut w = Disks::new(4, 1);
    w.faults[1] = Fault::Fail;
    w.faults[3] = Fault::Fail;
    assert_eq!(
        w.acquire(),
        vec![Event::AcquireFailed {
            rv: SANLK_DBLOCK_READ
        }]
    );
    // Three of four is.
    let mut w = Disks::new(4, 1);
    w.faults[3] = Fault::Fail;
    acquired(&w.acquire());
}

#[test]
fn a_disk_replaced_with_a_zeroed_one_is_written_again_by_the_next_acquire() {
    let mut w = Disks::new(3, 1);
    w.area_mut(2).fill(0);
    let leader = acquired(&w.acquire());
    assert_eq!(w.leader(2), leader, "the commit reached the new disk");
    let ours = DblockSector::decode(&w.area(2)[1024..1536], 0).unwrap();
    assert_eq!(ours.dblock.lver, leader.lver, "and our dblock with it");
    assert_eq!(w.release(), vec![Event::Released]);
    assert_eq!(w.leader(2).timestamp, 0);
}

#[test]
fn leaders_that_differ_are_read_as_the_newest_and_healed_by_the_next_commit() {
    // 3.8.5 answers LEADER_DIFF (-222) for good when no majority agrees, and takes a
    // majority's leader over a newer one; every leader on disk is a version's chosen value
    // or its owner's release, so the newest is the lease's state (a majority's older one is
    // what late writes leave, and a ballot from it is beaten for good by a later version's
    // dblock), and our commit writes it everywhere.
    let mut w = Disks::new(3, 1);
    for d in 0..3 {
        let mut l = w.leader(d);
        l.lver = Lver(10 + d as u64);
        w.area_mut(d)[..LEADER_RECORD_SIZE].copy_from_slice(&l.encode());
    }
    let leader = acquired(&w.acquire());
    assert_eq!(leader.lver, Lver(13), "after the newest, 12");
    for d in 0..3 {
        assert_eq!(w.leader(d), leader, "disk {d} agrees again");
    }
    // Two alike of three, older than the third: the newest still (3.8.5: the two).
    let mut w = Disks::new(3, 1);
    let mut l = w.leader(1);
    l.lver = Lver(10);
    w.area_mut(1)[..LEADER_RECORD_SIZE].copy_from_slice(&l.encode());
    let leader = acquired(&w.acquire());
    assert_eq!(leader.lver, Lver(11));
    for d in 0..3 {
        assert_eq!(w.leader(d), leader, "disk {d} agrees again");
    }
    // Of one version, the released form is the newer: a late commit does not take it back.
    let mut w = Disks::new(3, 1);
    for d in 0..3 {
        let mut l = w.leader(d);
        l.lver = Lver(10);
        l.owner_id = HostId::new(2);
        l.owner_generation = Generation(1);
        l.timestamp = if d == 2 { 0 } else { 500 };
        w.area_mut(d)[..LEADER_RECORD_SIZE].copy_from_slice(&l.encode());
    }
    let leader = acquired(&w.acquire());
    assert_eq!(leader.lver, Lver(11), "taken at once: its owner let it go");
    // Three of four read, two alike: the newest again.
    let mut w = Disks::new(4, 1);
    w.faults[3] = Fault::Fail;
    let mut l = w.leader(1);
    l.lver = Lver(10);
    w.area_mut(1)[..LEADER_RECORD_SIZE].copy_from_slice(&l.encode());
    acquired(&w.acquire());
}

#[test]
fn a_larger_ballot_on_a_disk_that_answers_loses_the_ballot() {
    // run_ballot: a dblock with a larger mbal on any disk read aborts the phase. Host 2
    // writes it on disk 0 after our lease read (which would have set our mbal above it).
    let mut w = Disks::new(3, 1);
    w.lease.acquire(w.now, AcquireRequest::default());
    for _ in 0..3 {
        let req = w.lease.poll_io().expect("the lease read on each disk");
        let DiskRef::Lease(d) = req.disk else {
            panic!("{req:?}")
        };
        let result = w.disks[d.index()].apply(&req);
        w.lease.handle_io(w.now, req.id, result);
    }
    let other = PaxosDblock {
        mbal: Mbal(1_000_002),
        lver: Lver(1),
        ..PaxosDblock::default()
    };
    let sector = DblockSector {
        dblock: other,
        mode: ModeBlock::default(),
    }
    .encode(SectorSize::Bytes512);
    w.area_mut(0)[1536..2048].copy_from_slice(&sector);
    w.run_io();
    assert_eq!(w.events(), vec![]);
    assert!(
        matches!(w.lease.wait(), Some(crate::waits::Wait::Backoff { .. })),
        "lost: backing off before the next ballot, {:?}",
        w.lease.wait()
    );
    let leader_writes = w.log.iter().filter(|e| e.1 == "write" && e.2 == 0).count();
    assert_eq!(leader_writes, 0, "nothing committed");
}

#[test]
fn the_lvb_comes_from_the_first_disk_that_reads_it() {
    let mut w = Disks::new(3, 1);
    let lvb_at = 1_025_024;
    w.area_mut(0)[lvb_at..lvb_at + 5].copy_from_slice(b"disk0");
    w.area_mut(1)[lvb_at..lvb_at + 5].copy_from_slice(b"disk1");
    w.faults[0] = Fault::Fail;
    w.lease.acquire(
        w.now,
        AcquireRequest {
            lvb: true,
            ..AcquireRequest::default()
        },
    );
    w.run_io();
    let events = w.events();
    let [Event::Acquired { lvb: Some(lvb), .. }] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!(&lvb.bytes()[..5], b"disk1");
    // Written to every disk before the release.
    w.faults[0] = Fault::None;
    w.lease
        .set_lvb(Lvb::new(b"new-value", SectorSize::Bytes512).unwrap());
    assert_eq!(w.release(), vec![Event::Released]);
    for d in 0..3 {
        assert_eq!(&w.area(d)[lvb_at..lvb_at + 9], b"new-value", "disk {d}");
    }
}

#[test]
fn each_disk_is_asked_at_its_own_offset() {
    let mut w = Disks::new(4, 2);
    acquired(&w.acquire());
    for (d, &o) in OFFSETS.iter().enumerate() {
        assert_eq!(w.lease.config().disks.offset(LeaseDisk::new(d).unwrap()), o);
    }
    // Host 2's dblock is sector 3 of the lease on every disk.
    for d in 0..4 {
        let ours = DblockSector::decode(&w.area(d)[1536..2048], 0).unwrap();
        assert_eq!(ours.dblock.inp, 2, "disk {d}");
    }
}

#[test]
fn converts_run_on_every_disk() {
    let mut w = Disks::new(3, 1);
    acquired(&w.acquire());
    w.lease.convert(w.now, true);
    w.run_io();
    assert_eq!(w.events(), vec![Event::Converted { shared: true }]);
    w.lease.convert(w.now, false);
    w.run_io();
    assert_eq!(w.events(), vec![Event::Converted { shared: false }]);
    assert_eq!(w.release(), vec![Event::Released]);
}

/// Three disks, seed 1235: our convert to shared wrote RELEASED with SHARED on one disk
/// only, and the write failed. It may have landed on more (on a majority, a shared acquirer
/// could join), so we hold the lease shared from then on, and the leader we kept is freed by
/// our release.
#[test]
fn a_convert_to_shared_whose_write_failed_holds_the_lease_shared() {
    let mut w = Disks::new(3, 1);
    acquired(&w.acquire());
    w.faults[0] = Fault::Fail;
    w.faults[1] = Fault::Fail;
    w.lease.convert(w.now, true);
    w.run_io();
    assert_eq!(w.events(), vec![Event::Converted { shared: true }]);
    assert!(host_1_shared_on(&w, 2), "the one disk the write reached");
    assert!(w.leader(2).timestamp != 0, "the leader is still ours");
    w.faults = vec![Fault::None; 3];
    assert_eq!(w.release(), vec![Event::Released]);
    for d in 0..3 {
        assert_eq!(w.leader(d).timestamp, 0, "disk {d}: freed by the release");
        assert!(!host_1_shared_on(&w, d), "disk {d}: no SHARED left");
    }
}

/// Host 2 owns the lease, alive, and wrote the leader itself; its sector shows the RELEASED
/// with SHARED of a convert to shared on `disks`.
fn beside_an_owner_converting_on(disks: &[usize]) -> Vec<Event> {
    let (mut owner, held) = host_2_holding();
    let converted = PaxosDblock {
        flags: DBLOCK_FL_RELEASED,
        ..held
    };
    for &d in disks {
        put_sector(&mut owner, d, 2, converted, true);
    }
    beside_a_live_owner(&owner, |_| {})
}

/// Seed 1235: a convert's RELEASED with SHARED on one disk of three may be a convert that
/// failed, its mode block one a majority's phase 1 misses once the leader is freed: the
/// owner still holds the lease. On a majority it let the leader go, and holds it shared.
#[test]
fn an_owners_convert_to_shared_counts_from_a_majority_of_disks() {
    assert_eq!(
        beside_an_owner_converting_on(&[0]),
        vec![Event::AcquireFailed {
            rv: SANLK_ACQUIRE_IDLIVE
        }]
    );
    let events = beside_an_owner_converting_on(&[0, 2]);
    assert!(
        matches!(events[..], [Event::NeedHostStatus { .. }]),
        "let go, and host 2 is a shared holder to judge: {events:?}"
    );
}

/// Seed 1326: host 1's SHARED reached disks 0 and 2 (disk 1 kept its phase 1); disk 2 was
/// then replaced by a zeroed one, and disk 0 fails our look at host 1's sector. A zero
/// sector is no word of host 1's: one disk is no majority, and host 1 counts.
#[test]
fn a_zeroed_sector_of_a_shared_holder_is_no_answer() {
    let held = shared_hold_of_version_1();
    let mut w = Disks::new(3, 2);
    for d in [0, 2] {
        put_sector(&mut w, d, 1, held, true);
    }
    let phase1 = PaxosDblock {
        bal: Mbal(0),
        inp: 0,
        inp2: 0,
        inp3: 0,
        flags: 0,
        ..held
    };
    put_sector(&mut w, 1, 1, phase1, false);
    leader_at(&mut w, 1);
    let replaced_then_failing = |w: &mut Disks| {
        w.area_mut(2)[1024..1536].fill(0);
        w.faults[0] = Fault::Fail;
    };
    assert_eq!(
        exclusive_over_then(&mut w, replaced_then_failing),
        Some(Event::AcquireFailed { rv: EAGAIN })
    );
}

/// Whether host 1's mode block on disk `d` says SHARED.
fn host_1_shared_on(w: &Disks, d: usize) -> bool {
    DblockSector::decode(&w.area(d)[1024..1536], 0)
        .unwrap()
        .mode
        .shared
}

/// Host `q`'s sector of the lease on disk `d`: its dblock and mode block.
fn put_sector(w: &mut Disks, d: usize, q: usize, dblock: PaxosDblock, shared: bool) {
    let mode = ModeBlock {
        shared,
        generation: Generation(if shared { 1 } else { 0 }),
    };
    let at = (q + 1) * 512;
    let data = DblockSector { dblock, mode }.encode(SectorSize::Bytes512);
    w.area_mut(d)[at..at + 512].copy_from_slice(&data);
}

/// The leader of every disk at version `lver`, free.
fn leader_at(w: &mut Disks, lver: u64) {
    for d in 0..w.disks.len() {
        let mut l = w.leader(d);
        l.lver = Lver(lver);
        w.area_mut(d)[..LEADER_RECORD_SIZE].copy_from_slice(&l.encode());
    }
}

/// A phase 1 of ballot 2001 for version 2, carrying no value.
fn phase1_of_version_2() -> PaxosDblock {
    PaxosDblock {
        mbal: Mbal(2001),
        bal: Mbal(0),
        inp: 0,
        inp2: 0,
        inp3: 0,
        lver: Lver(2),
        flags: 0,
    }
}

/// Host 2's exclusive acquire over host 1, seen SHARED on disk 0 in phase 1: whether host 1
/// counts as a live shared holder (no monitor status: alive if counted).
fn exclusive_over(w: &mut Disks) -> Vec<Event> {
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    let mut events = w.events();
    if let [Event::NeedHostStatus { hosts }] = &events[..] {
        assert_eq!(hosts, &vec![HostId::new(1).unwrap()]);
        w.lease.host_statuses(w.now, vec![None]);
        w.run_io();
        events = w.events();
    }
    events
}

/// Host 1's sector as a shared holder of version 1: RELEASED, with its ballot's value.
fn shared_hold_of_version_1() -> PaxosDblock {
    PaxosDblock {
        mbal: Mbal(1),
        bal: Mbal(1),
        inp: 1,
        inp2: 1,
        inp3: 100,
        lver: Lver(1),
        flags: DBLOCK_FL_RELEASED,
    }
}

/// Host 2's exclusive acquire over host 1 seen SHARED in phase 1; `change` runs before host
/// 1's sector is looked at again (no monitor status: alive if counted). The last event.
fn exclusive_over_then(w: &mut Disks, change: impl FnOnce(&mut Disks)) -> Option<Event> {
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    assert!(matches!(w.events()[..], [Event::NeedHostStatus { .. }]));
    change(w);
    w.lease.host_statuses(w.now, vec![None]);
    w.run_io();
    w.events().pop()
}

#[test]
fn a_shared_holder_is_judged_by_its_newest_sector_among_the_disks() {
    let held = shared_hold_of_version_1();
    // SHARED on disk 0 only, a later plain ballot of host 1's on the others (its release
    // missed disk 0): stale, the lease is ours.
    let mut w = Disks::new(3, 2);
    put_sector(&mut w, 0, 1, held, true);
    let later = phase1_of_version_2();
    for d in 1..3 {
        put_sector(&mut w, d, 1, later, false);
    }
    leader_at(&mut w, 2);
    acquired(&exclusive_over(&mut w));
    // SHARED on disk 0, its phase 2 of the same ballot on the others: a shared acquire whose
    // write is still on its way. Host 1 holds it shared.
    let mut w = Disks::new(3, 2);
    put_sector(&mut w, 0, 1, held, true);
    for d in 1..3 {
        let phase2 = PaxosDblock { flags: 0, ..held };
        put_sector(&mut w, d, 1, phase2, false);
    }
    leader_at(&mut w, 1);
    assert_eq!(
        exclusive_over(&mut w).last(),
        Some(&Event::AcquireFailed { rv: EAGAIN })
    );
    // The same, with disk 0 failing after our phase 1 saw it: unreadable, counted.
    let mut w = Disks::new(3, 2);
    put_sector(&mut w, 0, 1, held, true);
    for d in 1..3 {
        put_sector(&mut w, d, 1, PaxosDblock { flags: 0, ..held }, false);
    }
    leader_at(&mut w, 1);
    assert_eq!(
        exclusive_over_then(&mut w, |w| w.faults[0] = Fault::Fail),
        Some(Event::AcquireFailed { rv: EAGAIN })
    );
}

#[test]
fn a_shared_release_a_disk_missed_is_written_there_again() {
    let mut w = Disks::new(3, 1);
    w.lease.acquire(
        w.now,
        AcquireRequest {
            shared: true,
            ..AcquireRequest::default()
        },
    );
    w.run_io();
    acquired(&w.events());
    assert!(
        (0..3).all(|d| host_1_shared_on(&w, d)),
        "SHARED on every disk"
    );
    w.faults[2] = Fault::Fail;
    assert_eq!(w.release(), vec![Event::Released], "a majority is enough");
    assert!(host_1_shared_on(&w, 2), "disk 2 missed it");
    assert!(!w.lease.is_done(), "it is written again later");
    w.faults[2] = Fault::None;
    w.now = w.now + Duration::from_secs(N);
    w.lease.handle_timeout(w.now);
    w.run_io();
    assert!(!host_1_shared_on(&w, 2), "cleared on disk 2 too");
    assert!(w.lease.is_done());
    assert_eq!(w.events(), vec![]);
}

/// Host `q`'s dblock on disk `d`.
fn dblock_on(w: &Disks, d: usize, q: usize) -> PaxosDblock {
    let at = (q + 1) * 512;
    PaxosDblock::decode(&w.area(d)[at..at + 512], 0).unwrap()
}

/// Four disks, seed 57's trace: an earlier attempt's value of ours for version 2 reached disks
/// 2 and 3 (no majority), and its retract reached them too, or neither; disk 1 kept only its
/// phase 1 write. The next attempt's phase 1 carries that value, and must carry it RELEASED:
/// another host may yet complete the version with it, and must then find that we let it go,
/// or the lease is refused to everyone for as long as we live.
#[test]
fn a_carried_value_of_ours_goes_out_released_in_phase_1() {
    let phase1 = phase1_of_version_2();
    let value = PaxosDblock {
        bal: Mbal(2001),
        inp: 1,
        inp2: 1,
        inp3: 700,
        ..phase1
    };
    for retract_landed in [true, false] {
        let mut w = Disks::new(4, 1);
        leader_at(&mut w, 1);
        let left = if retract_landed {
            released(value)
        } else {
            value
        };
        put_sector(&mut w, 1, 1, phase1, false);
        put_sector(&mut w, 2, 1, left, false);
        put_sector(&mut w, 3, 1, left, false);
        w.faults[0] = Fault::Fail;
        // The lease read (disk 0 failing), then phase 1's writes; then every disk fails (the
        // retract that follows too).
        w.lease.acquire(w.now, AcquireRequest::default());
        let mut writes = 0;
        while let Some(req) = w.lease.poll_io() {
            let DiskRef::Lease(disk) = req.disk else {
                let result = w.lockspace.apply(&req);
                w.lease.handle_io(w.now, req.id, result);
                continue;
            };
            let d = disk.index();
            let is_write = matches!(req.op, IoOp::Write { .. });
            let result = if w.faults[d] == Fault::Fail || writes >= 3 {
                Err(IoError::Failed(5))
            } else {
                writes += usize::from(is_write);
                w.disks[d].apply(&req)
            };
            w.lease.handle_io(w.now, req.id, result);
        }
        assert!(writes >= 3, "phase 1 was written");
        for d in 1..4 {
            let ours = dblock_on(&w, d, 1);
            assert!(ours.mbal > Mbal(2001), "disk {d}: a later ballot");
            assert_eq!(
                (ours.lver, ours.bal, ours.inp, ours.inp3),
                (Lver(2), Mbal(2001), 1, 700),
                "disk {d}: the value is kept (Disk Paxos)"
            );
            assert!(
                ours.released(),
                "disk {d}: and said to be let go (retract landed: {retract_landed})"
            );
        }
        assert!(matches!(
            w.events().last(),
            Some(Event::AcquireFailed { .. })
        ));
    }
}

/// Three disks, host 2 owning the lease and alive; host 1 acquires. Host 2's sector is RELEASED
/// on disk 0 at `stale_mbal` and holds a later ballot of the same version on disks 1 and 2.
fn beside_an_owner_whose_disk_0_shows_released(stale_mbal: u64) -> Vec<Event> {
    let (mut owner, held) = host_2_holding();
    let later = PaxosDblock {
        mbal: Mbal(2002),
        bal: Mbal(2002),
        ..held
    };
    let stale = PaxosDblock {
        mbal: Mbal(stale_mbal),
        bal: Mbal(stale_mbal),
        flags: DBLOCK_FL_RELEASED,
        ..held
    };
    put_sector(&mut owner, 0, 2, stale, false);
    for d in 1..3 {
        put_sector(&mut owner, d, 2, later, false);
    }
    beside_a_live_owner(&owner, |_| {})
}

/// Three disks where host 2 took the lease, and its dblock as held.
fn host_2_holding() -> (Disks, PaxosDblock) {
    let mut owner = Disks::new(3, 2);
    acquired(&owner.acquire());
    let held = dblock_on(&owner, 0, 2);
    (owner, held)
}

/// Host 1 acquires the lease `owner`'s disks hold for host 2, alive; `between` runs after
/// the lease read, before the owner's liveness is judged.
fn beside_a_live_owner(owner: &Disks, between: impl FnOnce(&mut Disks)) -> Vec<Event> {
    let mut w = Disks::new(3, 1);
    w.disks = owner.disks.clone();
    // Host 2's delta lease, renewed at 990.
    let mut s = DeltaSector::decode(&w.lockspace.bytes()[512..1024], 0).unwrap();
    s.leader.owner_id = HostId::new(2);
    s.leader.owner_generation = Generation(1);
    s.leader.timestamp = 990;
    w.lockspace.bytes_mut()[512..1024].copy_from_slice(&s.encode());
    w.now = Time::from_secs(1000);
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    assert!(matches!(w.events()[..], [Event::NeedOwnerStatus { .. }]));
    between(&mut w);
    // Our monitor saw host 2 renew in its latest scan: alive.
    let alive = HostStatus {
        first_check: Time::from_secs(900),
        last_check: Time::from_secs(998),
        last_live: Some(Time::from_secs(998)),
        last_req: None,
        owner_id: 2,
        owner_generation: Generation(1),
        timestamp: 990,
        io_timeout: N as u16,
        owner_name: Name::EMPTY,
        lease_bad: 0,
        renewal_view: Some((2, Generation(1), 990)),
        changed_at_renewal: true,
    };
    w.lease.owner_status(w.now, Some(&alive));
    w.run_io();
    w.events()
}

/// A RELEASED the owner left on one disk from an earlier ballot of the version it holds (a
/// retract, or a phase 1 carrying an earlier value) is not its release: its newest sector
/// among the disks is its word, as one disk's is (four-disk runs let a second host in beside
/// the holder when any RELEASED counted).
#[test]
fn the_owner_is_judged_by_its_newest_sector_among_the_disks() {
    assert_eq!(
        beside_an_owner_whose_disk_0_shows_released(1002),
        vec![Event::AcquireFailed {
            rv: SANLK_ACQUIRE_IDLIVE
        }],
        "a stale RELEASED: the owner holds it"
    );
    // Released at the held ballot itself: the owner let go, even on one disk only.
    let events = beside_an_owner_whose_disk_0_shows_released(2002);
    assert!(
        matches!(events[..], [Event::Acquired { .. }]),
        "the owner's release: {events:?}"
    );
}

/// Three disks, seed 255: the lease read's sectors are not one instant. It showed the leader
/// another host committed for host 2, and host 2's sector from before that ballot: the
/// RELEASED of an earlier attempt at the same version. Host 2's winning phase 2 came after
/// it. That it let go is taken only from a read made after the leader's, which shows it
/// holding.
#[test]
fn a_release_only_the_lease_reads_copy_shows_is_looked_at_again() {
    let (mut owner, held) = host_2_holding();
    let earlier_retract = PaxosDblock {
        mbal: Mbal(2),
        bal: Mbal(0),
        inp: 0,
        inp2: 0,
        inp3: 0,
        flags: DBLOCK_FL_RELEASED,
        ..held
    };
    let winning = PaxosDblock {
        mbal: Mbal(2002),
        bal: Mbal(2002),
        ..held
    };
    for d in 0..3 {
        put_sector(&mut owner, d, 2, earlier_retract, false);
        // Host 3 committed host 2's value.
        let mut leader = owner.leader(d);
        leader.write_id = 3;
        let bytes = leader.encode();
        owner.area_mut(d)[..bytes.len()].copy_from_slice(&bytes);
    }
    let events = beside_a_live_owner(&owner, |w| {
        for d in 0..3 {
            put_sector(w, d, 2, winning, false);
        }
    });
    assert_eq!(
        events,
        vec![Event::AcquireFailed {
            rv: SANLK_ACQUIRE_IDLIVE
        }]
    );
}
