//! Scripted runs of one paxos lease over in-memory disks: the exact I/O sequence, the waits,
//! the events and the bytes written, each pinned to algorithms.md §7-8.

use std::time::Duration;

use super::*;
use crate::memdisk::MemDisk;
use crate::ondisk::Lvb;
use crate::ondisk::{lockspace_init, resource_init, DeltaSector, ResourceInit, SectorSize};

const N: u64 = 10;

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

fn g512() -> Geometry {
    Geometry::legacy(SectorSize::Bytes512)
}

fn config(host: u64, generation: u64) -> PaxosConfig {
    PaxosConfig {
        space_name: name("LS"),
        resource_name: name("R"),
        geometry: g512(),
        disks: LeaseDisks::one(0),
        host_id: HostId::new(host).unwrap(),
        generation: Generation(generation),
        timeouts: Timeouts::new(N),
        lockspace_geometry: g512(),
        lockspace_offset: 0,
        rng_seed: 7,
    }
}

struct World {
    lease_disk: MemDisk,
    lockspace: MemDisk,
    lease: PaxosLease,
    now: Time,
    log: Vec<(DiskRef, &'static str, u64, usize)>,
}

impl World {
    fn new(host: u64, generation: u64, start_s: u64) -> World {
        let ls = lockspace_init(g512(), name("LS"), 10);
        let mut lockspace = ls.area;
        lockspace[..512].copy_from_slice(&ls.commit_sector);
        let lease = resource_init(&ResourceInit {
            geometry: g512(),
            space_name: name("LS"),
            resource_name: name("R"),
            num_hosts: 0,
            clear_at_s: None,
        });
        World {
            lease_disk: MemDisk::from_bytes(lease),
            lockspace: MemDisk::from_bytes(lockspace),
            lease: PaxosLease::new(config(host, generation)),
            now: Time::from_secs(start_s),
            log: Vec::new(),
        }
    }

    /// Runs every pending I/O now, in order, until the machine asks for nothing more.
    fn run_io(&mut self) {
        while let Some(req) = self.lease.poll_io() {
            let (kind, len) = match &req.op {
                IoOp::Read { len } => ("read", *len),
                IoOp::Write { data } => ("write", data.len()),
            };
            self.log.push((req.disk, kind, req.offset, len));
            let disk = match req.disk {
                DiskRef::Lease(_) => &mut self.lease_disk,
                DiskRef::Lockspace => &mut self.lockspace,
            };
            let result = disk.apply(&req);
            self.lease.handle_io(self.now, req.id, result);
        }
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.lease.poll_event()).collect()
    }

    fn leader(&self) -> LeaderRecord {
        LeaderRecord::decode(&self.lease_disk.bytes()[..512], LeaderKind::Paxos, 0).unwrap()
    }

    fn dblock(&self, host: u64) -> DblockSector {
        let at = (host as usize + 1) * 512;
        DblockSector::decode(&self.lease_disk.bytes()[at..at + 512], at as u64).unwrap()
    }

    /// Writes a live delta lease for `host` (generation 1) with this timestamp.
    fn delta(&mut self, host: u64, timestamp: u64) {
        let at = (host as usize - 1) * 512;
        let mut s = DeltaSector::decode(&self.lockspace.bytes()[at..at + 512], 0).unwrap();
        s.leader.owner_id = HostId::new(host);
        s.leader.owner_generation = Generation(1);
        s.leader.timestamp = timestamp;
        self.lockspace.bytes_mut()[at..at + 512].copy_from_slice(&s.encode());
    }
}

#[test]
fn a_free_lease_is_taken_with_exactly_six_ios() {
    // algorithms.md §7.6 [run]: read lease, write dblock, read, write dblock, read, write leader.
    let mut w = World::new(1, 1, 764);
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    let phase_read = 2002 * 512; // num_hosts + 2 sectors
    assert_eq!(
        w.log,
        vec![
            (DiskRef::LEASE, "read", 0, 1 << 20),
            (DiskRef::LEASE, "write", 1024, 512),
            (DiskRef::LEASE, "read", 0, phase_read),
            (DiskRef::LEASE, "write", 1024, 512),
            (DiskRef::LEASE, "read", 0, phase_read),
            (DiskRef::LEASE, "write", 0, 512),
        ]
    );
    let leader = w.leader();
    assert_eq!(w.events(), vec![Event::Acquired { leader, lvb: None }]);
    // ondisk.md §7.4: lver 1, owner 1/1, timestamp 764, write_* 1/1/764.
    assert_eq!(
        (leader.lver, leader.owner_id, leader.timestamp),
        (Lver(1), HostId::new(1), 764)
    );
    assert_eq!(
        (
            leader.write_id,
            leader.write_generation,
            leader.write_timestamp
        ),
        (1, 1, 764)
    );
    let d = w.dblock(1).dblock;
    assert_eq!(
        (d.mbal, d.bal, d.inp, d.inp2, d.inp3, d.lver),
        (Mbal(1), Mbal(1), 1, 1, 764, Lver(1))
    );
}

#[test]
fn under_a_read_bound_a_ballot_reads_only_the_dblocks_of_host_ids_in_use() {
    // hosts::ReadBound: host_ids 1..=3 may be in the lockspace until 10 s from now; the lease
    // read and both phase reads cover leader, request and three dblocks.
    let mut w = World::new(1, 1, 764);
    let until = w.now + Duration::from_secs(10);
    w.lease.set_read_bound(Some(ReadBound {
        hosts: 3,
        until: Some(until),
    }));
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    let bounded = 5 * 512;
    assert_eq!(
        w.log,
        vec![
            (DiskRef::LEASE, "read", 0, bounded),
            (DiskRef::LEASE, "write", 1024, 512),
            (DiskRef::LEASE, "read", 0, bounded),
            (DiskRef::LEASE, "write", 1024, 512),
            (DiskRef::LEASE, "read", 0, bounded),
            (DiskRef::LEASE, "write", 0, 512),
        ]
    );
    assert!(matches!(w.events()[..], [Event::Acquired { .. }]));
    // Once the bound has lapsed, every dblock again.
    let mut w = World::new(1, 1, 764);
    let until = w.now;
    w.lease.set_read_bound(Some(ReadBound {
        hosts: 3,
        until: Some(until),
    }));
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    assert_eq!(w.log[0], (DiskRef::LEASE, "read", 0, 1 << 20));
    assert_eq!(w.log[2], (DiskRef::LEASE, "read", 0, 2002 * 512));
}

#[test]
fn release_writes_the_released_dblock_then_frees_the_leader() {
    // §8.1 [run]: PWRITE dblock, PREAD leader, PWRITE leader; timestamp 0, owner kept,
    // dblock identical except flags = RELEASED.
    let mut w = World::new(1, 1, 764);
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    w.events();
    let held = w.dblock(1).dblock;
    w.log.clear();
    w.now = Time::from_secs(800);
    w.lease.release(w.now);
    w.run_io();
    assert_eq!(
        w.log,
        vec![
            (DiskRef::LEASE, "write", 1024, 512),
            (DiskRef::LEASE, "read", 0, 512),
            (DiskRef::LEASE, "write", 0, 512),
        ]
    );
    assert_eq!(w.events(), vec![Event::Released]);
    let l = w.leader();
    assert_eq!(
        (l.timestamp, l.owner_id, l.write_timestamp),
        (0, HostId::new(1), 800)
    );
    let d = w.dblock(1).dblock;
    assert_eq!(
        d,
        PaxosDblock {
            flags: DBLOCK_FL_RELEASED,
            ..held
        }
    );
}

#[test]
fn a_renaming_release_writes_the_new_name_into_the_freed_leader() {
    // SANLK_REL_RENAME: the same three I/Os; the freed leader carries the second resource's
    // name (resource.c `_release_token` with resrename).
    let mut w = World::new(1, 1, 764);
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    w.events();
    w.log.clear();
    w.now = Time::from_secs(800);
    w.lease.release_renamed(w.now, Name::new(b"NEW").unwrap());
    w.run_io();
    assert_eq!(w.log.len(), 3);
    assert_eq!(w.events(), vec![Event::Released]);
    let l = w.leader();
    assert_eq!(
        (l.timestamp, l.resource_name),
        (0, Name::new(b"NEW").unwrap())
    );
}

#[test]
fn ballot_numbers_go_1_2001_4001_for_host_1() {
    // ondisk.md §5.4 [run]: (max − max mod 2000) + 2000 + H.
    let mut w = World::new(1, 1, 100);
    let mut seen = Vec::new();
    for round in 0..3 {
        w.lease = PaxosLease::new(config(1, 1));
        w.lease.acquire(w.now, AcquireRequest::default());
        w.run_io();
        seen.push(w.dblock(1).dblock.mbal.0);
        assert_eq!(w.leader().lver, Lver(round + 1));
        w.lease.release(w.now);
        w.run_io();
    }
    assert_eq!(seen, vec![1, 2001, 4001]);
}

#[test]
fn a_required_version_that_does_not_match_fails_with_acquire_lver() {
    // §7.7 [run]: L = 5 on a lease at another version → -240.
    let mut w = World::new(1, 1, 100);
    w.lease.acquire(
        w.now,
        AcquireRequest {
            lver: Some(Lver(5)),
            ..AcquireRequest::default()
        },
    );
    w.run_io();
    assert_eq!(
        w.events(),
        vec![Event::AcquireFailed {
            rv: SANLK_ACQUIRE_LVER
        }]
    );
    assert_eq!(w.log.len(), 1, "nothing written");
}

#[test]
fn a_cleared_lease_or_a_bad_dblock_ends_the_acquire() {
    // §7.1: CLEAR magic → -223; any dblock failing its checksum → -214.
    let mut w = World::new(1, 1, 100);
    let cleared = LeaderRecord::paxos_init(g512(), name("LS"), name("R"), 0).cleared(5);
    w.lease_disk.bytes_mut()[..200].copy_from_slice(&cleared.encode());
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    assert_eq!(w.events(), vec![Event::AcquireFailed { rv: -223 }]);

    let mut w = World::new(1, 1, 100);
    w.lease_disk.bytes_mut()[5 * 512] = 9; // host 4's dblock: mbal 9, checksum 0
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    assert_eq!(
        w.events(),
        vec![Event::AcquireFailed {
            rv: SANLK_DBLOCK_CHECKSUM
        }]
    );
}

/// A world where host 2 holds the lease (lver 1, generation 1) and its delta lease reads
/// `ts`; we are host 1.
fn owned_by_host_2(ts: u64) -> World {
    let mut other = World::new(2, 1, ts);
    other.delta(2, ts);
    other.lease.acquire(other.now, AcquireRequest::default());
    other.run_io();
    let mut w = World::new(1, 1, 1000);
    w.lease_disk = other.lease_disk;
    w.lockspace = other.lockspace;
    w
}

fn status(timestamp: u64, first: u64, last_live: Option<u64>, last_check: u64) -> HostStatus {
    HostStatus {
        first_check: Time::from_secs(first),
        last_check: Time::from_secs(last_check),
        last_live: last_live.map(Time::from_secs),
        last_req: None,
        owner_id: 2,
        owner_generation: Generation(1),
        timestamp,
        io_timeout: N as u16,
        owner_name: Name::EMPTY,
        lease_bad: 0,
        renewal_view: Some((2, Generation(1), timestamp)),
        changed_at_renewal: last_live == Some(last_check),
    }
}

#[test]
fn an_owner_our_monitor_just_saw_renewing_is_alive_at_once() {
    // §7.3 e [run]: "paxos_acquire owner 1 delta 1 1 845 alive", -243 immediately.
    let mut w = owned_by_host_2(500);
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    assert_eq!(
        w.events(),
        vec![Event::NeedOwnerStatus {
            host_id: HostId::new(2).unwrap()
        }]
    );
    w.lease
        .owner_status(w.now, Some(&status(500, 900, Some(998), 998)));
    w.run_io();
    assert_eq!(
        w.events(),
        vec![Event::AcquireFailed {
            rv: SANLK_ACQUIRE_IDLIVE
        }]
    );
    assert_eq!(
        w.log.last().unwrap(),
        &(DiskRef::Lockspace, "read", 512, 512)
    );
}

#[test]
fn a_silent_owner_is_waited_for_from_our_monitors_last_change_then_its_lease_is_taken() {
    // §7.3 f with the "optimize paxos wait" start: dead once now − last_live > 8N + 60, the
    // monitor's time counting; each second: owner's delta sector, then our leader.
    let mut w = owned_by_host_2(500);
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    w.events();
    // The monitor last saw host 2 change at 900; now is 1000: 40 s still to wait.
    w.lease
        .owner_status(w.now, Some(&status(500, 850, Some(900), 990)));
    w.run_io();
    // What `client show` and a waiting client report: host 2, dead at 900 + 140.
    assert_eq!(
        w.lease.wait(),
        Some(crate::waits::Wait::OwnerDead {
            owner: HostId::new(2).unwrap(),
            generation: Generation(1),
            until: Time::from_secs(1040),
        })
    );
    let mut sleeps = 0;
    while w.events().is_empty() {
        let next = w.lease.poll_timeout().unwrap();
        assert_eq!(next, w.now + Duration::from_secs(1));
        w.now = next;
        w.lease.handle_timeout(w.now);
        w.run_io();
        sleeps += 1;
        assert!(sleeps < 100);
        if w.lease.held().is_some() {
            break;
        }
    }
    assert_eq!(
        w.now,
        Time::from_secs(1041),
        "waited until 1041 − 900 > 140"
    );
    let leader = w.leader();
    assert_eq!((leader.owner_id, leader.lver), (HostId::new(1), Lver(2)));
    assert_eq!(w.dblock(1).dblock.mbal.0, 2001, "above host 2's ballot 2");
    assert_eq!(w.lease.wait(), None, "held: nothing to wait for");
}

#[test]
fn an_owner_whose_host_id_was_released_loses_its_lease_at_once() {
    // §7.3 b: the owner's delta lease is free → ballot without waiting.
    let mut w = owned_by_host_2(500);
    w.delta(2, 0);
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    w.events();
    w.lease.owner_status(w.now, None);
    w.run_io();
    assert_eq!(w.leader().owner_id, HostId::new(1));
}

#[test]
fn owner_nowait_fails_with_owned_retry_instead_of_waiting() {
    // §7.3 f: SANLK_ACQUIRE_OWNER_NOWAIT → -247.
    let mut w = owned_by_host_2(500);
    w.lease.acquire(
        w.now,
        AcquireRequest {
            owner_nowait: true,
            ..AcquireRequest::default()
        },
    );
    w.run_io();
    w.events();
    w.lease
        .owner_status(w.now, Some(&status(500, 850, Some(900), 990)));
    w.run_io();
    assert_eq!(
        w.events(),
        vec![Event::AcquireFailed {
            rv: SANLK_ACQUIRE_OWNED_RETRY
        }]
    );
}

fn shared() -> AcquireRequest {
    AcquireRequest {
        shared: true,
        ..AcquireRequest::default()
    }
}

#[test]
fn a_shared_acquire_commits_with_short_hold_then_frees_the_leader_behind_a_mode_block() {
    // §9.1: commit (SHORT_HOLD), our dblock RELEASED + SHARED/G, then the leader is freed.
    // ondisk.md §7.3: the leader ends with timestamp 0 and flags 0x10, SHORT_HOLD cleared.
    let mut w = World::new(2, 1, 1416);
    w.lease.acquire(w.now, shared());
    w.run_io();
    let kinds: Vec<(&str, u64)> = w.log.iter().map(|(_, k, off, _)| (*k, *off)).collect();
    assert_eq!(
        kinds,
        vec![
            ("read", 0),
            ("write", 1536),
            ("read", 0),
            ("write", 1536),
            ("read", 0),
            ("write", 0),
            ("write", 1536),
            ("read", 0),
            ("write", 0),
        ]
    );
    let events = w.events();
    assert!(matches!(&events[..], [Event::Acquired { leader, .. }] if leader.short_hold()));
    let l = w.leader();
    assert_eq!(
        (l.timestamp, l.flags, l.owner_id),
        (0, 0x10, HostId::new(2))
    );
    let s = w.dblock(2);
    assert!(s.dblock.released());
    assert_eq!(
        s.mode,
        ModeBlock {
            shared: true,
            generation: Generation(1)
        }
    );
    // Releasing a shared lease rewrites only our dblock: mode block gone, leader untouched.
    w.log.clear();
    w.lease.release(w.now);
    w.run_io();
    assert_eq!(w.log, vec![(DiskRef::LEASE, "write", 1536, 512)]);
    assert_eq!(w.events(), vec![Event::Released]);
    assert_eq!(w.dblock(2).mode, ModeBlock::default());
    assert_eq!(w.leader(), l);
}

#[test]
fn two_hosts_hold_the_same_lease_shared() {
    let mut first = World::new(1, 1, 100);
    first.lease.acquire(first.now, shared());
    first.run_io();
    let mut second = World::new(2, 1, 200);
    second.lease_disk = first.lease_disk.clone();
    second.lease.acquire(second.now, shared());
    second.run_io();
    assert!(matches!(second.events()[..], [Event::Acquired { .. }]));
    assert!(second.dblock(1).mode.shared);
    assert!(second.dblock(2).mode.shared);
    assert_eq!(second.leader().lver, Lver(2));
}

/// Host 1 holds the lease shared; host 2 asks for it exclusively.
fn exclusive_over_shared() -> World {
    let mut first = World::new(1, 1, 100);
    first.lease.acquire(first.now, shared());
    first.run_io();
    let mut w = World::new(2, 1, 300);
    w.lease_disk = first.lease_disk;
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    assert_eq!(
        w.events(),
        vec![Event::NeedHostStatus {
            hosts: vec![HostId::new(1).unwrap()]
        }]
    );
    w
}

#[test]
fn an_exclusive_acquire_over_a_live_shared_holder_commits_then_releases_with_eagain() {
    // §9.2 [run]: "host 2 EX while host 1 held SH → lease committed as lver 6 then released,
    // result -11".
    let mut w = exclusive_over_shared();
    w.log.clear();
    w.lease.host_statuses(w.now, vec![None]);
    w.run_io();
    assert_eq!(w.events(), vec![Event::AcquireFailed { rv: EAGAIN }]);
    let kinds: Vec<(&str, u64)> = w.log.iter().map(|(_, k, off, _)| (*k, *off)).collect();
    assert_eq!(
        kinds,
        vec![("read", 1024), ("write", 1536), ("read", 0), ("write", 0)]
    );
    let l = w.leader();
    assert_eq!(
        (l.lver, l.timestamp, l.owner_id),
        (Lver(2), 0, HostId::new(2))
    );
    assert!(w.dblock(1).mode.shared, "the shared holder keeps its lease");
}

#[test]
fn an_exclusive_acquire_clears_the_mode_block_of_a_dead_shared_holder() {
    // §9.2: a holder silent for 8N + 60 loses its shared lease; its sector is zeroed.
    let mut w = exclusive_over_shared();
    let mut s = status(500, 100, Some(120), 290);
    s.owner_id = 1;
    w.lease.host_statuses(w.now, vec![Some(s)]);
    w.run_io();
    assert!(matches!(w.events()[..], [Event::Acquired { .. }]));
    assert_eq!(w.lease_disk.bytes()[1024..1536], [0u8; 512]);
    assert_eq!(w.leader().owner_id, HostId::new(2));
    assert_ne!(w.leader().timestamp, 0);
}

#[test]
fn a_shared_holder_is_dead_only_by_silence_our_own_scans_saw() {
    // Found by the simulator (8 hosts, seed 40, --late-joins --messages): a daemon stopped for
    // 96 s resumed in the middle of an SH→EX convert; its monitor's last scan, from before the
    // stop, had seen the holder renewing, yet `now − last_live` passed 8N + 60 and 3.8.5's rule
    // cleared a live holder's shared lease; a third host then took the lease exclusively.
    // Here: seen renewing at 120, our last scan at 125, asked at 300.
    let mut w = exclusive_over_shared();
    w.log.clear();
    let mut s = status(500, 100, Some(120), 125);
    s.owner_id = 1;
    w.lease.host_statuses(w.now, vec![Some(s)]);
    w.run_io();
    assert_eq!(w.events(), vec![Event::AcquireFailed { rv: EAGAIN }]);
    assert!(w.dblock(1).mode.shared, "the shared holder keeps its lease");
}

/// The exclusive acquire over host 1's shared hold, told that our monitor last saw host 1 at
/// `timestamp` (0: released) with `generation`.
fn exclusive_over_shared_seen_as(timestamp: u64, generation: u64) -> World {
    let mut w = exclusive_over_shared();
    w.log.clear();
    let mut s = status(timestamp, 100, Some(120), 290);
    s.owner_id = 1;
    s.owner_generation = Generation(generation);
    w.lease.host_statuses(w.now, vec![Some(s)]);
    w.run_io();
    w
}

#[test]
fn a_shared_holder_newer_than_our_monitor_knows_is_alive() {
    // Found by the simulator: our monitor last saw host 1 as an older instance, silent for
    // longer than 8N + 60 (our own renewals, and so our scans, had stopped), while host 1 had
    // joined again and taken the lease shared. 3.8.5 judges it dead and clears its hold.
    let mut w = exclusive_over_shared_seen_as(500, 0);
    assert_eq!(w.events(), vec![Event::AcquireFailed { rv: EAGAIN }]);
    assert!(w.dblock(1).mode.shared, "the shared holder keeps its lease");
}

#[test]
fn a_shared_holder_newer_than_a_released_instance_our_monitor_saw_is_alive() {
    // Found by the simulator (4 hosts, seed 52): host 1's lockspace failed on a corrupt read,
    // it released its host_id and joined again (a new generation) and took the lease shared;
    // our monitor, whose scans were held up by hung I/O, still showed the released slot
    // (timestamp 0) of the older instance. That slot is no evidence against the newer hold.
    let mut w = exclusive_over_shared_seen_as(0, 0);
    assert_eq!(w.events(), vec![Event::AcquireFailed { rv: EAGAIN }]);
    assert!(w.dblock(1).mode.shared, "the shared holder keeps its lease");

    // The same instance having released its host_id holds nothing: its hold is cleared.
    let mut w = exclusive_over_shared_seen_as(0, 1);
    assert!(matches!(w.events()[..], [Event::Acquired { .. }]));
    assert!(
        !w.dblock(1).mode.shared,
        "the released instance's hold is cleared"
    );
}

/// Runs a free acquire, failing the `fail_at`-th I/O (0-based) with EIO.
fn acquire_failing_io(fail_at: usize) -> World {
    let mut w = World::new(1, 1, 764);
    w.acquire_failing_io_at(fail_at);
    w
}

impl World {
    /// Runs an exclusive acquire, failing its `fail_at`-th I/O (0-based) with EIO.
    fn acquire_failing_io_at(&mut self, fail_at: usize) {
        self.lease.acquire(self.now, AcquireRequest::default());
        let mut n = 0;
        while let Some(req) = self.lease.poll_io() {
            let (kind, len) = match &req.op {
                IoOp::Read { len } => ("read", *len),
                IoOp::Write { data } => ("write", data.len()),
            };
            self.log.push((req.disk, kind, req.offset, len));
            let result = if n == fail_at {
                Err(IoError::Failed(5))
            } else {
                self.lease_disk.apply(&req)
            };
            self.lease.handle_io(self.now, req.id, result);
            n += 1;
        }
    }
}

#[test]
fn a_failed_phase_2_write_retracts_our_value_with_a_released_dblock() {
    // §8.3: the write may have landed; our dblock says RELEASED so no host waits for us.
    let mut w = acquire_failing_io(3);
    assert_eq!(
        w.events(),
        vec![Event::AcquireFailed {
            rv: SANLK_DBLOCK_WRITE
        }]
    );
    assert_eq!(w.log.last().unwrap(), &(DiskRef::LEASE, "write", 1024, 512));
    let d = w.dblock(1).dblock;
    assert!(d.released());
    assert_eq!(
        (d.bal, d.inp, d.lver),
        (Mbal(1), 1, Lver(1)),
        "our accepted value is kept"
    );
    assert_eq!(w.leader().timestamp, 0, "the leader was never written");
}

#[test]
fn a_failed_commit_write_retracts_and_frees_the_leader_if_it_landed() {
    // Here the commit did not land: after the RELEASED dblock, the leader read shows another
    // writer (nobody), so nothing more is written.
    let mut w = acquire_failing_io(5);
    assert_eq!(
        w.events(),
        vec![Event::AcquireFailed {
            rv: SANLK_LEADER_WRITE
        }]
    );
    let kinds: Vec<(&str, u64)> = w
        .log
        .iter()
        .skip(5)
        .map(|(_, k, off, _)| (*k, *off))
        .collect();
    assert_eq!(kinds, vec![("write", 0), ("write", 1024), ("read", 0)]);
    assert!(w.dblock(1).dblock.released());
    assert_eq!(w.leader().lver, Lver(0));
}

#[test]
fn the_lvb_is_read_after_the_acquire_and_written_before_the_release() {
    // ondisk.md §5.6 [run]: set_lvb(b"hello-lvb-data") then release → those bytes at
    // 1,025,024 (sector 2002 of a 512/1M lease), written first.
    let mut w = World::new(1, 1, 100);
    w.lease.acquire(
        w.now,
        AcquireRequest {
            lvb: true,
            ..AcquireRequest::default()
        },
    );
    w.run_io();
    assert_eq!(
        w.log.last().unwrap(),
        &(DiskRef::LEASE, "read", 1_025_024, 512)
    );
    let events = w.events();
    let [Event::Acquired { lvb: Some(lvb), .. }] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!(lvb.bytes(), &[0u8; 512][..]);
    w.lease
        .set_lvb(Lvb::new(b"hello-lvb-data", SectorSize::Bytes512).unwrap());
    w.log.clear();
    w.lease.release(w.now);
    w.run_io();
    assert_eq!(w.log[0], (DiskRef::LEASE, "write", 1_025_024, 512));
    assert_eq!(w.log.len(), 4, "then dblock, leader read, leader write");
    assert_eq!(
        &w.lease_disk.bytes()[1_025_024..1_025_038],
        b"hello-lvb-data"
    );
    assert_eq!(w.events(), vec![Event::Released]);
}

#[test]
fn converting_exclusive_to_shared_writes_a_shared_mode_block_and_frees_the_leader() {
    // §9.5 [run]: leader timestamp 0, dblock flags 1, mode block 1/1.
    let mut w = World::new(1, 1, 100);
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    w.events();
    w.log.clear();
    w.lease.convert(w.now, true);
    w.run_io();
    assert_eq!(w.events(), vec![Event::Converted { shared: true }]);
    let kinds: Vec<(&str, u64)> = w.log.iter().map(|(_, k, off, _)| (*k, *off)).collect();
    assert_eq!(kinds, vec![("write", 1024), ("read", 0), ("write", 0)]);
    assert_eq!(w.leader().timestamp, 0);
    let s = w.dblock(1);
    assert!(s.dblock.released());
    assert_eq!(
        s.mode,
        ModeBlock {
            shared: true,
            generation: Generation(1)
        }
    );
    w.lease.convert(w.now, true);
    assert_eq!(w.events(), vec![Event::ConvertFailed { rv: EALREADY }]);
}

#[test]
fn converting_shared_to_exclusive_alone_runs_a_ballot_that_keeps_our_mode_block() {
    // §9.4 [run]: afterwards the dblock has the ballot values, flags 0, mode block 0.
    let mut w = World::new(1, 1, 100);
    w.lease.acquire(w.now, shared());
    w.run_io();
    w.events();
    w.log.clear();
    w.lease.convert(w.now, false);
    // After each write of our dblock sector, is our mode block still SHARED? The phase 1 and
    // phase 2 writes must keep it; only the final write, once the lease is ours, drops it.
    let mut shared_after_our_writes = Vec::new();
    while let Some(req) = w.lease.poll_io() {
        let ours = matches!(req.op, IoOp::Write { .. }) && req.offset == 1024;
        let result = w.lease_disk.apply(&req);
        w.lease.handle_io(w.now, req.id, result);
        if ours {
            shared_after_our_writes.push(w.dblock(1).mode.shared);
        }
    }
    assert_eq!(shared_after_our_writes, vec![true, true, false]);
    assert_eq!(w.events(), vec![Event::Converted { shared: false }]);
    let s = w.dblock(1);
    assert_eq!((s.dblock.flags, s.mode), (0, ModeBlock::default()));
    assert_eq!(s.dblock.mbal.0, 2001);
    let l = w.leader();
    assert_eq!((l.owner_id, l.lver), (HostId::new(1), Lver(2)));
    assert_ne!(l.timestamp, 0);
}

#[test]
fn converting_to_exclusive_beside_a_live_shared_holder_fails_with_eagain_and_stays_shared() {
    let mut first = World::new(1, 1, 100);
    first.lease.acquire(first.now, shared());
    first.run_io();
    let mut w = World::new(2, 1, 200);
    w.lease_disk = first.lease_disk;
    w.lease.acquire(w.now, shared());
    w.run_io();
    w.events();
    w.lease.convert(w.now, false);
    w.run_io();
    assert_eq!(
        w.events(),
        vec![Event::NeedHostStatus {
            hosts: vec![HostId::new(1).unwrap()]
        }]
    );
    w.lease.host_statuses(w.now, vec![None]);
    w.run_io();
    assert_eq!(w.events(), vec![Event::ConvertFailed { rv: EAGAIN }]);
    assert!(w.dblock(2).mode.shared, "still shared");
    assert!(w.dblock(1).mode.shared, "the other holder too");
    assert_eq!(w.leader().timestamp, 0, "the leader was given back");
    // And the shared lease releases as usual.
    w.lease.release(w.now);
    w.run_io();
    assert_eq!(w.events(), vec![Event::Released]);
    assert!(!w.dblock(2).mode.shared);
}

impl World {
    fn set_dblock(&mut self, host: u64, dblock: PaxosDblock) {
        let at = (host as usize + 1) * 512;
        let sector = DblockSector {
            dblock,
            mode: ModeBlock::default(),
        };
        self.lease_disk.bytes_mut()[at..at + 512]
            .copy_from_slice(&sector.encode(SectorSize::Bytes512));
    }

    /// An exclusive acquire run to its end: its events.
    fn acquire_ex(&mut self) -> Vec<Event> {
        self.lease.acquire(self.now, AcquireRequest::default());
        self.run_io();
        self.events()
    }

    fn written_dblocks(&self, from: usize) -> usize {
        self.log[from..]
            .iter()
            .filter(|(_, k, off, _)| *k == "write" && *off == 1024)
            .count()
    }
}

/// A dblock that went through phase 1 only: a ballot number for `lver`, no value.
fn phase1_only(mbal: u64, lver: u64) -> PaxosDblock {
    PaxosDblock {
        mbal: Mbal(mbal),
        lver: Lver(lver),
        ..PaxosDblock::default()
    }
}

/// Host 1 took version 1 and let it go; then a late leader write (another host's release,
/// issued before our commit) put version 0 back on disk.
fn released_then_leader_taken_back() -> World {
    let mut w = World::new(1, 1, 764);
    let stale = w.lease_disk.bytes()[..512].to_vec();
    w.lease.acquire(w.now, AcquireRequest::default());
    w.run_io();
    w.events();
    w.lease.release(w.now);
    w.run_io();
    assert_eq!(w.events(), vec![Event::Released]);
    assert_eq!(
        (w.leader().lver, w.dblock(1).dblock.lver),
        (Lver(1), Lver(1))
    );
    w.lease_disk.bytes_mut()[..512].copy_from_slice(&stale);
    assert_eq!(w.leader().lver, Lver(0));
    w.now = Time::from_secs(800);
    w.lease = PaxosLease::new(config(1, 1));
    w.log.clear();
    w
}

#[test]
fn a_version_we_won_and_let_go_is_never_won_again() {
    // Winning version 1 again would hand us a lease that a host which saw our release may be
    // winning at version 2 (sanlock-sim seed 335; 3.8.5 zeroes its dblock in phase 1 and wins
    // version 1 again). Phase 1 keeps our earlier value, finds it chosen, and goes on to 2.
    let mut w = released_then_leader_taken_back();
    let earlier = w.dblock(1).dblock;
    w.lease.acquire(w.now, AcquireRequest::default());
    let req = w.lease.poll_io().unwrap();
    let result = w.lease_disk.apply(&req);
    w.lease.handle_io(w.now, req.id, result);
    let req = w.lease.poll_io().unwrap();
    let result = w.lease_disk.apply(&req);
    let phase1 = w.dblock(1).dblock;
    assert_eq!(
        (
            phase1.lver,
            phase1.bal,
            phase1.inp,
            phase1.inp3,
            phase1.flags
        ),
        (Lver(1), earlier.bal, 1, earlier.inp3, DBLOCK_FL_RELEASED),
        "phase 1 for version 1 keeps the value we wrote for it"
    );
    assert!(phase1.mbal > earlier.mbal);
    w.lease.handle_io(w.now, req.id, result);
    w.run_io();
    assert!(matches!(w.events()[..], [Event::Acquired { .. }]));
    let d = w.dblock(1).dblock;
    assert_eq!((w.leader().lver, d.lver, d.inp3), (Lver(2), Lver(2), 800));
}

#[test]
fn a_value_of_ours_another_host_adopted_is_not_taken_as_won() {
    // Host 2, also reading the old leader, adopted our released value for version 1; our
    // dblock has since gone on to version 1 with no value. The value names us but is not
    // this attempt's: version 2.
    let mut w = released_then_leader_taken_back();
    let earlier = w.dblock(1).dblock;
    w.set_dblock(
        2,
        PaxosDblock {
            mbal: Mbal(2002),
            bal: Mbal(2002),
            flags: 0,
            ..earlier
        },
    );
    w.set_dblock(1, phase1_only(4001, 1));
    assert!(matches!(w.acquire_ex()[..], [Event::Acquired { .. }]));
    assert_eq!(w.leader().lver, Lver(2));
}

#[test]
fn a_ballot_that_hides_our_release_of_its_version_retracts_when_it_fails() {
    // Four disks, seed 90: an earlier attempt's value for version 1 was chosen, and that
    // attempt let version 1 go (RELEASED, no value). Host 2 carries the value on; our next
    // attempt's phase 1 hides the RELEASED, then fails before any value of its own. If host
    // 2 commits us, a host finding us owner must still read that we let go: the failure
    // writes RELEASED again, at our phase 1's ballot.
    let mut w = World::new(1, 1, 800);
    w.set_dblock(
        1,
        PaxosDblock {
            flags: DBLOCK_FL_RELEASED,
            ..phase1_only(1, 1)
        },
    );
    w.set_dblock(
        2,
        PaxosDblock {
            mbal: Mbal(2002),
            bal: Mbal(2002),
            inp: 1,
            inp2: 1,
            inp3: 770,
            lver: Lver(1),
            flags: 0,
        },
    );
    w.acquire_with_phase1_read_failing();
    let d = w.dblock(1).dblock;
    assert!(d.released(), "{d:?}");
    assert_eq!((d.lver, d.bal), (Lver(1), Mbal(0)));
    assert!(d.mbal > Mbal(2002), "at the failed ballot: {d:?}");
}

#[test]
fn a_ballot_that_hides_our_release_of_the_last_version_retracts_when_it_fails() {
    // Four disks, seed 96: we took version 1 and let it go; our next acquire's phase 1 (for
    // version 2) hid the RELEASED and then failed. Another host, from a read made before our
    // release, committed our value for version 1 again, over our freed leader: a live owner
    // holding nothing, and no word on disk that it let go. The failure writes RELEASED again.
    let mut w = World::new(1, 1, 764);
    assert!(matches!(w.acquire_ex()[..], [Event::Acquired { .. }]));
    w.lease.release(w.now);
    w.run_io();
    assert_eq!(w.events(), vec![Event::Released]);
    w.lease = PaxosLease::new(config(1, 1));
    w.log.clear();
    w.acquire_with_phase1_read_failing();
    let d = w.dblock(1).dblock;
    assert!(d.released(), "{d:?}");
    assert_eq!(d.lver, Lver(2), "at the failed ballot's version");
}

impl World {
    /// An exclusive acquire whose phase 1 read (its third I/O) fails: it ends with
    /// DBLOCK_READ after exactly two dblock writes, phase 1 and the retract.
    fn acquire_with_phase1_read_failing(&mut self) {
        self.acquire_failing_io_at(2);
        assert_eq!(
            self.events(),
            vec![Event::AcquireFailed {
                rv: SANLK_DBLOCK_READ
            }]
        );
        assert_eq!(self.written_dblocks(0), 2, "phase 1, then the retract");
    }
}

#[test]
fn a_version_another_host_won_over_our_retracted_value_is_left_to_it() {
    // Our phase 2 for version 1 failed (retracted, RELEASED) and host 2 won version 1 with a
    // larger ballot; a late write put version 0 back. Going past version 1 would take the
    // lease from host 2: the ballot adopts host 2's value and commits it for host 2.
    let mut w = acquire_failing_io(3);
    w.events();
    let ours = w.dblock(1).dblock;
    assert!(ours.released());
    w.set_dblock(
        2,
        PaxosDblock {
            mbal: Mbal(2002),
            bal: Mbal(2002),
            inp: 2,
            inp2: 1,
            inp3: 770,
            lver: Lver(1),
            flags: 0,
        },
    );
    w.now = Time::from_secs(800);
    w.lease = PaxosLease::new(config(1, 1));
    let events = w.acquire_ex();
    left_to_host_2_at(&w, events, 1);
}

#[test]
fn our_dblock_never_goes_back_to_an_earlier_version() {
    // Our dblock is at version 3 (a phase 1 that lost); the leader says 0. Balloting version
    // 1 would erase the trace of our part in version 3: the ballot is for version 3.
    let mut w = World::new(1, 1, 764);
    w.set_dblock(1, phase1_only(1, 3));
    assert!(matches!(w.acquire_ex()[..], [Event::Acquired { .. }]));
    assert_eq!(
        (w.leader().lver, w.dblock(1).dblock.lver),
        (Lver(3), Lver(3))
    );
    assert_eq!(
        w.written_dblocks(0),
        2,
        "one ballot, no detour through version 1"
    );
}

#[test]
fn a_failed_convert_leaves_our_dblock_at_its_version_through_the_release() {
    // We hold version 1 shared; host 2 wrote its value for version 2 (phase 2). Our SH→EX
    // convert adopts and commits host 2's value (-245, still shared). Our dblock now carries
    // that chosen value at version 2, perhaps its only trace once host 2 retries: the shared
    // release must not write version 1 back over it (sanlock-sim, engine-driven, seed 284).
    let mut w = World::new(1, 1, 764);
    w.lease.acquire(w.now, shared());
    w.run_io();
    assert!(matches!(w.events()[..], [Event::Acquired { .. }]));
    let chosen = PaxosDblock {
        mbal: Mbal(2),
        bal: Mbal(2),
        inp: 2,
        inp2: 1,
        inp3: 770,
        lver: Lver(2),
        flags: 0,
    };
    w.set_dblock(2, chosen);
    w.lease.convert(w.now, false);
    w.run_io();
    assert_eq!(
        w.events(),
        vec![Event::ConvertFailed {
            rv: SANLK_ACQUIRE_OTHER
        }]
    );
    assert_eq!(
        (w.leader().lver, w.leader().owner_id),
        (Lver(2), HostId::new(2))
    );
    w.lease.release(w.now);
    w.run_io();
    assert_eq!(w.events(), vec![Event::Released]);
    let d = w.dblock(1);
    assert_eq!(
        (
            d.dblock.lver,
            d.dblock.bal.0 > 0,
            d.dblock.inp,
            d.dblock.inp3
        ),
        (Lver(2), true, 2, 770),
        "the value chosen for version 2 stays on our dblock"
    );
    assert!(d.dblock.released() && !d.mode.shared);
}

#[test]
fn a_restarted_host_ballots_above_the_largest_mbal_any_dblock_shows() {
    // historical-bugs A2 (sanlock 6121048): the next ballot number comes from the largest
    // mbal read in all dblocks, not from our own last one. Host 1 restarts knowing nothing;
    // host 2 ran phase 1 of version 1 with ballot 4002. Ours must be above it and ours:
    // (4002 − 4002 mod 2000) + 2000 + 1.
    let mut w = World::new(1, 1, 764);
    w.set_dblock(2, phase1_only(4002, 1));
    assert!(matches!(w.acquire_ex()[..], [Event::Acquired { .. }]));
    assert_eq!(w.dblock(1).dblock.mbal, Mbal(6001));
    assert_eq!(w.leader().lver, Lver(1));
}

#[test]
fn a_larger_version_in_a_dblock_beats_our_ballot_as_a_larger_mbal_does() {
    // historical-bugs A4 (sanlock c1d65fd): host 2 is already balloting version 2 (its dblock
    // says so) while the leader still says 0 and we ballot version 1 with the larger mbal.
    // Our ballot is beaten: we must not commit version 1 under a host that is past it.
    let mut w = World::new(1, 1, 764);
    w.set_dblock(2, phase1_only(2, 2));
    let events = w.acquire_ex();
    assert!(
        !events.iter().any(|e| matches!(e, Event::Acquired { .. })),
        "{events:?}"
    );
    assert_eq!(w.leader().lver, Lver(0), "nothing committed");
}

#[test]
fn a_lease_another_host_committed_for_a_live_owner_that_let_go_is_taken() {
    // historical-bugs A5 and A11 (sanlock e40e1f6, 735781d): host 3 completed host 2's ballot
    // and wrote the leader naming host 2 (write_id 3); host 2 took it and released at once
    // (its dblock RELEASED), but its own leader write came before host 3's and was lost. Host
    // 2 is alive: the owner's liveness alone would keep the lease held for ever. The write_id
    // tells that the owner may have let go; its RELEASED dblock says it did.
    let mut w = owned_by_host_2(500);
    let mut leader = w.leader();
    leader.write_id = 3;
    w.lease_disk.bytes_mut()[..200].copy_from_slice(&leader.encode());
    let mut owners = w.dblock(2).dblock;
    owners.flags |= crate::ondisk::dblock::DBLOCK_FL_RELEASED;
    w.set_dblock(2, owners);
    acquire_beside_a_live_owner(&mut w, AcquireRequest::default());
    assert!(
        matches!(w.events()[..], [Event::Acquired { .. }]),
        "taken from an owner that let go"
    );
    assert_eq!(w.leader().owner_id, HostId::new(1));

    // The same with the owner's dblock not released: it still holds it.
    let mut w = owned_by_host_2(500);
    let mut leader = w.leader();
    leader.write_id = 3;
    w.lease_disk.bytes_mut()[..200].copy_from_slice(&leader.encode());
    acquire_beside_a_live_owner(&mut w, AcquireRequest::default());
    assert_eq!(
        w.events(),
        vec![Event::AcquireFailed {
            rv: SANLK_ACQUIRE_IDLIVE
        }]
    );
}

#[test]
fn a_shared_acquire_meeting_another_shared_acquire_passing_through_retries_and_gets_it() {
    // historical-bugs A10 (sanlock 0d816d9): a shared acquire holds the leader exclusively
    // for a moment (SHORT_HOLD). Another host's shared acquire meeting it must not fail: it
    // waits a random moment and tries again.
    let mut w = owned_by_host_2(500);
    let mut leader = w.leader();
    leader.flags |= crate::ondisk::leader::LFL_SHORT_HOLD;
    w.lease_disk.bytes_mut()[..200].copy_from_slice(&leader.encode());
    acquire_beside_a_live_owner(&mut w, shared());
    assert_eq!(w.events(), vec![], "no failure: a retry is due");
    let until = w.lease.poll_timeout().expect("the retry's moment");
    assert!(until <= w.now + std::time::Duration::from_secs(1));
    // Meanwhile host 2's shared acquire has let go of the leader behind its mode block.
    leader.timestamp = 0;
    leader.flags = 0;
    w.lease_disk.bytes_mut()[..200].copy_from_slice(&leader.encode());
    w.now = until;
    w.lease.handle_timeout(w.now);
    w.run_io();
    assert!(
        matches!(w.events()[..], [Event::Acquired { .. }]),
        "acquired shared on the retry"
    );
}

#[test]
fn a_release_whose_leader_write_times_out_is_retried_until_the_lease_is_free() {
    // historical-bugs A12 (sanlock 48d2841): a release that times out must not leave the
    // lease held on disk by a host that is alive and no longer manages it. The caller hears
    // of the timeout (-202) once; the release goes on until the leader is free.
    let mut w = World::new(1, 1, 764);
    assert!(matches!(w.acquire_ex()[..], [Event::Acquired { .. }]));
    w.lease.release(w.now);
    let mut timed_out = 0;
    while let Some(req) = w.lease.poll_io() {
        let leader_write = req.offset == 0 && matches!(req.op, IoOp::Write { .. });
        let result = if leader_write {
            timed_out += 1;
            Err(IoError::TimedOut)
        } else {
            w.lease_disk.apply(&req)
        };
        w.lease.handle_io(w.now, req.id, result);
    }
    assert_eq!(timed_out, 1);
    assert_eq!(
        w.events(),
        vec![Event::ReleaseFailed {
            rv: crate::rv::SANLK_AIO_TIMEOUT
        }]
    );
    assert!(w.leader().timestamp != 0, "still held on disk");
    assert!(!w.lease.is_done(), "the release goes on");
    let until = w.lease.poll_timeout().expect("a retry");
    assert_eq!(
        until,
        w.now + std::time::Duration::from_secs(10),
        "after io_timeout"
    );
    // The retry times out too: no second report, another retry.
    w.now = until;
    w.lease.handle_timeout(w.now);
    while let Some(req) = w.lease.poll_io() {
        let result = if req.offset == 0 && matches!(req.op, IoOp::Write { .. }) {
            Err(IoError::TimedOut)
        } else {
            w.lease_disk.apply(&req)
        };
        w.lease.handle_io(w.now, req.id, result);
    }
    assert_eq!(w.events(), vec![]);
    // The disk answers again: the lease is freed.
    w.now = w.lease.poll_timeout().expect("another retry");
    w.lease.handle_timeout(w.now);
    w.run_io();
    assert_eq!(w.events(), vec![Event::ReleaseRetried { rv: 0 }]);
    assert!(w.lease.is_done());
    assert_eq!(w.leader().timestamp, 0, "free on disk");
}

#[test]
fn a_ballot_lost_then_the_lease_moved_on_meanwhile_restarts_from_the_new_leader() {
    // historical-bugs A3 (sanlock fe03caf, dc0e092): our ballot for version 1 is beaten; while
    // we wait to try again, version 2 is committed and released by others. The retry must
    // start over from the leader now on disk (and get version 3), not fail.
    let mut w = World::new(1, 1, 764);
    w.set_dblock(2, phase1_only(2, 2));
    assert_eq!(w.acquire_ex(), vec![], "beaten: waiting to try again");
    let until = w.lease.poll_timeout().expect("a retry is due");
    let mut moved_on = w.leader();
    moved_on.lver = Lver(2);
    moved_on.owner_id = HostId::new(2);
    moved_on.owner_generation = Generation(1);
    moved_on.timestamp = 0; // released
    w.lease_disk.bytes_mut()[..200].copy_from_slice(&moved_on.encode());
    w.now = until;
    w.lease.handle_timeout(w.now);
    w.run_io();
    assert!(
        matches!(w.events()[..], [Event::Acquired { .. }]),
        "the retry starts over"
    );
    assert_eq!(
        (w.leader().lver, w.leader().owner_id),
        (Lver(3), HostId::new(1))
    );
}

/// Our ballot for version 1 beaten by host 2's dblock of version 2 while the leader stays at
/// version 0 (a late leader write set it back), then the retry, due now.
fn beaten_by_a_version_past_a_leader_set_back(host2: PaxosDblock) -> World {
    let mut w = World::new(1, 1, 764);
    w.set_dblock(2, host2);
    assert_eq!(w.acquire_ex(), vec![], "beaten: waiting to try again");
    assert_eq!(w.dblock(1).dblock.lver, Lver(1));
    w.now = w.lease.poll_timeout().expect("a retry is due");
    w.lease.handle_timeout(w.now);
    w.run_io();
    w
}

#[test]
fn a_ballot_beaten_by_a_version_past_a_set_back_leader_ballots_that_version() {
    // Four disks, seed 139: a shared acquire's free of its leader, decided on a read from
    // before two commits, landed over them; every ballot for the version after the leader's
    // lost to a dblock of the one after that, for good. The retry ballots that version.
    let mut w = beaten_by_a_version_past_a_leader_set_back(phase1_only(2002, 2));
    assert!(matches!(w.events()[..], [Event::Acquired { .. }]));
    assert_eq!(
        (
            w.leader().lver,
            w.leader().owner_id,
            w.dblock(1).dblock.lver
        ),
        (Lver(2), HostId::new(1), Lver(2))
    );

    // A value accepted for that version may be the chosen one: it is adopted and committed
    // for its host, as for any version (the leader is no longer behind).
    let chosen = PaxosDblock {
        mbal: Mbal(2002),
        bal: Mbal(2002),
        inp: 2,
        inp2: 1,
        inp3: 770,
        lver: Lver(2),
        flags: 0,
    };
    let mut w = beaten_by_a_version_past_a_leader_set_back(chosen);
    let events = w.events();
    left_to_host_2_at(&w, events, 2);
}

/// The acquire failed with ACQUIRE_OTHER, having committed host 2's value (its timestamp
/// 770) for version `lver`.
fn left_to_host_2_at(w: &World, events: Vec<Event>, lver: u64) {
    assert_eq!(
        events,
        vec![Event::AcquireFailed {
            rv: SANLK_ACQUIRE_OTHER
        }]
    );
    let l = w.leader();
    assert_eq!(
        (l.lver, l.owner_id, l.timestamp),
        (Lver(lver), HostId::new(2), 770)
    );
}

#[test]
fn a_lease_our_earlier_generation_owned_is_taken_without_a_liveness_wait() {
    // historical-bugs A13 (sanlock 73184e5, 4cdb754): we crashed holding the lease and
    // rejoined with generation 2; the leader still names us at generation 1, whose holders
    // died with that instance. No wait for our own host_id to look dead.
    let mut old = World::new(1, 1, 500);
    assert!(matches!(old.acquire_ex()[..], [Event::Acquired { .. }]));
    let mut w = World::new(1, 2, 900);
    w.lease_disk = old.lease_disk;
    assert!(matches!(w.acquire_ex()[..], [Event::Acquired { .. }]));
    let l = w.leader();
    assert_eq!((l.owner_generation, l.lver), (Generation(2), Lver(2)));
    assert!(
        !w.log.iter().any(|(d, ..)| *d == DiskRef::Lockspace),
        "no owner check on the lockspace"
    );
}

/// Starts `request` on a lease host 2 owns, and answers its owner check: host 2 seen renewing
/// by our monitor just now.
fn acquire_beside_a_live_owner(w: &mut World, request: AcquireRequest) {
    w.lease.acquire(w.now, request);
    w.run_io();
    w.events();
    w.lease
        .owner_status(w.now, Some(&status(500, 900, Some(998), 998)));
    w.run_io();
}
