//! Our paxos machine on areas a C sanlock 3.8.5 daemon wrote (golden sectors from
//! core/testdata: host 1 holding R0 exclusively at lver 1). As host 2 we must see the owner
//! alive while its delta timestamp moves, and take the lease once it has been silent for
//! host_dead_seconds (8N + 60 with the N in its delta lease: 1 here, so 68 s).

use std::time::Duration;

use sanlock_core::hosts::{HostTable, ScanKind};
use sanlock_core::memdisk::MemDisk;
use sanlock_core::ondisk::{
    lockspace_init, resource_init, DeltaSector, Geometry, LeaderKind, LeaderRecord, Name,
    ResourceInit, SectorSize,
};
use sanlock_core::paxos::{AcquireRequest, Event, PaxosConfig, PaxosLease, SANLK_ACQUIRE_IDLIVE};
use sanlock_core::{Generation, HostId, Lver, Time, Timeouts};

mod support;
use support::SharedDisks;

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

fn g512() -> Geometry {
    Geometry::legacy(SectorSize::Bytes512)
}

struct World {
    /// The lockspace and the lease disk as C wrote them, and our one host's I/O to them.
    disks: SharedDisks,
    table: HostTable,
    now: Time,
}

impl World {
    /// The lockspace with host 1's live delta sector, R0 held by host 1, both as C wrote them.
    fn new() -> World {
        let ls = lockspace_init(g512(), name("LS"), 1);
        let mut lockspace = ls.area;
        lockspace[..512].copy_from_slice(golden!("delta_host1_live"));
        let mut lease = resource_init(&ResourceInit {
            geometry: g512(),
            space_name: name("LS"),
            resource_name: name("R0"),
            num_hosts: 0,
            clear_at_s: None,
        });
        lease[..512].copy_from_slice(golden!("paxos_ex_leader"));
        lease[1024..1536].copy_from_slice(golden!("paxos_ex_dblock_host1"));
        World {
            disks: SharedDisks::new(
                1,
                MemDisk::from_bytes(lockspace),
                MemDisk::from_bytes(lease),
            ),
            table: HostTable::new(
                name("LS"),
                HostId::new(2).unwrap(),
                g512(),
                Timeouts::new(1),
                Duration::from_secs(6),
            ),
            now: Time::from_secs(5000),
        }
    }

    /// Host 1 renews: its delta timestamp moves (what the C daemon does every 2 s).
    fn host1_renews(&mut self) {
        let mut s = DeltaSector::decode(&self.disks.lockspace.bytes()[..512], 0).unwrap();
        s.leader.timestamp += 2;
        self.disks.lockspace.bytes_mut()[..512].copy_from_slice(&s.encode());
    }

    /// Our own renewal's scan of the lockspace.
    fn scan(&mut self) {
        let area = self.disks.lockspace.bytes()[..1 << 20].to_vec();
        self.table.scan(self.now, &area, ScanKind::Renewal);
    }

    fn machine(&self) -> PaxosLease {
        PaxosLease::new(PaxosConfig {
            space_name: name("LS"),
            resource_name: name("R0"),
            geometry: g512(),
            disks: sanlock_core::quorum::LeaseDisks::one(0),
            host_id: HostId::new(2).unwrap(),
            generation: Generation(1),
            timeouts: Timeouts::new(1),
            lockspace_geometry: g512(),
            lockspace_offset: 0,
            rng_seed: 1,
        })
    }

    /// Drives `lease` until it reports an outcome, advancing time to its deadlines; `during`
    /// runs at each step (host 1 renewing or not).
    fn drive(&mut self, lease: &mut PaxosLease, during: &mut dyn FnMut(&mut World)) -> Event {
        loop {
            let mut progressed = false;
            while let Some(req) = lease.poll_io() {
                // Each I/O reaches the disk at once.
                let flight = self.disks.issue(0, req, self.now.since_boot());
                let done = self
                    .disks
                    .complete(flight)
                    .expect("our machine waits for it");
                lease.handle_io(self.now, done.flight.io, done.result);
                progressed = true;
            }
            while let Some(event) = lease.poll_event() {
                match event {
                    Event::NeedOwnerStatus { host_id } => {
                        let status = self.table.status(host_id).cloned();
                        lease.owner_status(self.now, status.as_ref());
                        progressed = true;
                    }
                    other => return other,
                }
            }
            if progressed {
                continue;
            }
            let next = lease
                .poll_timeout()
                .expect("a machine with nothing to do has a deadline");
            self.now = next;
            during(self);
            lease.handle_timeout(self.now);
        }
    }
}

#[test]
fn a_c_owner_whose_delta_lease_moves_is_alive() {
    // algorithms.md §7.3 e: our monitor saw host 1 renew in its latest scan → -243 at once.
    let mut w = World::new();
    w.scan();
    w.now = w.now + Duration::from_secs(2);
    w.host1_renews();
    w.scan();
    let mut lease = w.machine();
    lease.acquire(w.now, AcquireRequest::default());
    let outcome = w.drive(&mut lease, &mut |_| {});
    assert_eq!(
        outcome,
        Event::AcquireFailed {
            rv: SANLK_ACQUIRE_IDLIVE
        }
    );
}

#[test]
fn a_c_owner_that_renews_during_our_wait_is_alive() {
    // No monitor history: the first sample starts the wait; a change on the next one is life.
    let mut w = World::new();
    let mut lease = w.machine();
    lease.acquire(w.now, AcquireRequest::default());
    let outcome = w.drive(&mut lease, &mut |w| w.host1_renews());
    assert_eq!(
        outcome,
        Event::AcquireFailed {
            rv: SANLK_ACQUIRE_IDLIVE
        }
    );
}

#[test]
fn a_c_owner_silent_for_host_dead_seconds_loses_its_lease() {
    // §7.3 f: host 1 stopped renewing; our monitor last saw it change at `seen`; the lease is
    // ours once now − seen > 8·1 + 60, and not before.
    let mut w = World::new();
    w.scan();
    w.now = w.now + Duration::from_secs(2);
    w.host1_renews();
    w.scan();
    let seen = w.now;
    w.now = w.now + Duration::from_secs(10);
    w.scan(); // nothing changed: last_live stays at `seen`
    let mut lease = w.machine();
    lease.acquire(w.now, AcquireRequest::default());
    let outcome = w.drive(&mut lease, &mut |_| {});
    let Event::Acquired { leader, .. } = outcome else {
        panic!("expected the lease, got {outcome:?}");
    };
    assert_eq!(
        w.now,
        seen + Duration::from_secs(69),
        "first second past 68 s of silence"
    );
    assert_eq!((leader.owner_id, leader.lver), (HostId::new(2), Lver(2)));
    let on_disk =
        LeaderRecord::decode(&w.disks.lease.bytes()[..512], LeaderKind::Paxos, 0).unwrap();
    assert_eq!(on_disk, leader);
    // The C host's dblock was mbal 1; ours must be above it and ours modulo 2000.
    let ours = &w.disks.lease.bytes()[1536..1536 + 8];
    assert_eq!(u64::from_le_bytes(ours.try_into().unwrap()), 2002);
}
