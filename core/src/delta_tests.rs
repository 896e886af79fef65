//! Scripted runs of one delta lease over an in-memory disk: the exact I/O sequence, the waits,
//! the events and the bytes written, each pinned to algorithms.md §3-4.

use std::time::Duration;

use super::*;
use crate::memdisk::MemDisk;
use crate::ondisk::{lockspace_init, SectorSize};

const N: u64 = 10;

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

fn config(host: u64, host_name: &str) -> DeltaConfig {
    DeltaConfig {
        space_name: name("LS"),
        host_id: HostId::new(host).unwrap(),
        host_name: name(host_name),
        geometry: Geometry::legacy(SectorSize::Bytes512),
        offset: 0,
        timeouts: Timeouts::new(N),
    }
}

/// A freshly initialised 512/1M lockspace.
fn fresh_disk() -> MemDisk {
    let init = lockspace_init(Geometry::legacy(SectorSize::Bytes512), name("LS"), 10);
    let mut bytes = init.area;
    bytes[..512].copy_from_slice(&init.commit_sector);
    MemDisk::from_bytes(bytes)
}

struct World {
    disk: MemDisk,
    lease: DeltaLease,
    now: Time,
}

impl World {
    fn new(disk: MemDisk, config: DeltaConfig, start_s: u64) -> World {
        World {
            disk,
            lease: DeltaLease::new(config),
            now: Time::from_secs(start_s),
        }
    }

    /// Takes the one pending request, checks it, completes it on the disk now.
    #[track_caller]
    fn io(&mut self, kind: &str, offset: u64, len: usize, timeout_s: u64) -> IoRequest {
        let req = self.lease.poll_io().expect("an I/O request");
        let got_len = match &req.op {
            IoOp::Read { len } => {
                assert_eq!(kind, "read", "{req:?}");
                *len
            }
            IoOp::Write { data } => {
                assert_eq!(kind, "write", "{req:?}");
                data.len()
            }
        };
        assert_eq!((req.offset, got_len), (offset, len), "{kind}");
        assert_eq!(
            req.deadline,
            self.now + Duration::from_secs(timeout_s),
            "{kind} deadline"
        );
        assert_eq!(self.lease.poll_io(), None, "one I/O at a time");
        let result = self.disk.apply(&req);
        self.lease.handle_io(self.now, req.id, result);
        req
    }

    /// Moves the clock to the machine's next deadline, which must be `after` from now.
    #[track_caller]
    fn wait(&mut self, after: Duration) {
        let next = self.lease.poll_timeout().expect("a deadline");
        assert_eq!(next, self.now + after, "next deadline");
        self.now = next;
        self.lease.handle_timeout(self.now);
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.lease.poll_event()).collect()
    }

    fn sector(&self, host: u64) -> DeltaSector {
        let at = (host as usize - 1) * 512;
        DeltaSector::decode(&self.disk.bytes()[at..at + 512], at as u64).unwrap()
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn acquire_of_a_free_host_id_reads_writes_waits_2n_and_reads_back() {
    // algorithms.md §3.2, free lease: read, write, delta_short_delay 2N', read.
    let mut w = World::new(fresh_disk(), config(2, "host2"), 1000);
    w.lease.acquire(w.now);
    w.io("read", 512, 512, N);
    w.io("write", 512, 512, N);
    assert!(w.events().is_empty());
    w.wait(secs(2 * N));
    w.io("read", 512, 512, N);
    assert_eq!(
        w.events(),
        vec![Event::Acquired {
            generation: Generation(1),
            timestamp_s: 1000
        }]
    );
    let l = w.sector(2).leader;
    assert_eq!(l.owner_id, HostId::new(2));
    assert_eq!(
        (l.owner_generation, l.timestamp, l.io_timeout),
        (Generation(1), 1000, 10)
    );
    assert_eq!(l.resource_name, name("host2"));
    assert!(w.lease.is_live());
}

#[test]
fn acquire_waits_host_dead_seconds_of_the_previous_owner_when_another_name_held_it() {
    // algorithms.md §3.2 steps 4-6: wait 8N'+60 with the N' on disk (here 3), read again.
    let mut disk = fresh_disk();
    let mut held = DeltaSector::decode(&disk.bytes()[512..1024], 512).unwrap();
    held.leader.owner_id = HostId::new(2);
    held.leader.owner_generation = Generation(4);
    held.leader.resource_name = name("old-host");
    held.leader.timestamp = 77;
    held.leader.io_timeout = 3;
    disk.bytes_mut()[512..1024].copy_from_slice(&held.encode());

    let mut w = World::new(disk, config(2, "new-host"), 500);
    w.lease.acquire(w.now);
    w.io("read", 512, 512, N);
    assert_eq!(
        w.lease.wait(),
        Some(crate::waits::Wait::HostIdHolder {
            until: Time::from_secs(500 + 8 * 3 + 60)
        })
    );
    w.wait(secs(8 * 3 + 60));
    w.io("read", 512, 512, N);
    w.io("write", 512, 512, N);
    // The short delay: 2 × the larger of N' and ours (3.8.5: 2 × N' = 6 s; see
    // a_disk_io_timeout_below_ours_does_not_shorten_the_short_delay).
    w.wait(secs(2 * N));
    w.io("read", 512, 512, N);
    assert_eq!(
        w.events(),
        vec![Event::Acquired {
            generation: Generation(5),
            timestamp_s: 584
        }]
    );
    assert_eq!(w.sector(2).leader.resource_name, name("new-host"));
}

#[test]
fn acquire_fails_busy_when_the_holder_renews_during_the_wait() {
    // §3.2 step 6: the record changed and is not free → SANLK_HOSTID_BUSY.
    let mut disk = fresh_disk();
    let mut held = DeltaSector::decode(&disk.bytes()[512..1024], 512).unwrap();
    held.leader.owner_id = HostId::new(2);
    held.leader.owner_generation = Generation(1);
    held.leader.resource_name = name("other");
    held.leader.timestamp = 10;
    disk.bytes_mut()[512..1024].copy_from_slice(&held.encode());

    let mut w = World::new(disk, config(2, "me"), 100);
    w.lease.acquire(w.now);
    w.io("read", 512, 512, N);
    held.leader.timestamp = 30; // the holder renews
    w.disk.bytes_mut()[512..1024].copy_from_slice(&held.encode());
    w.wait(secs(8 * N + 60));
    w.io("read", 512, 512, N);
    assert_eq!(
        w.events(),
        vec![Event::AcquireFailed {
            rv: SANLK_HOSTID_BUSY
        }]
    );
    assert!(w.lease.is_done());
    assert_eq!(w.lease.poll_io(), None, "nothing written");
}

#[test]
fn the_same_host_name_reacquires_without_the_long_wait() {
    // §3.2 step 3: resource_name == ours → "fast reacquire", generation + 1.
    let mut disk = fresh_disk();
    let mut held = DeltaSector::decode(&disk.bytes()[0..512], 0).unwrap();
    held.leader.owner_id = HostId::new(1);
    held.leader.owner_generation = Generation(7);
    held.leader.resource_name = name("me");
    held.leader.timestamp = 90;
    disk.bytes_mut()[0..512].copy_from_slice(&held.encode());

    let mut w = World::new(disk, config(1, "me"), 100);
    w.lease.acquire(w.now);
    w.io("read", 0, 512, N);
    w.io("write", 0, 512, N);
    w.wait(secs(2 * N));
    w.io("read", 0, 512, N);
    assert_eq!(w.lease.generation(), Some(Generation(8)));
}

#[test]
fn acquire_fails_busy_when_another_host_overwrites_the_claim() {
    // §3.2 step 9: the read-back differs from what we wrote.
    let mut w = World::new(fresh_disk(), config(3, "me"), 100);
    w.lease.acquire(w.now);
    w.io("read", 1024, 512, N);
    w.io("write", 1024, 512, N);
    let mut racer = w.sector(3);
    racer.leader.resource_name = name("racer");
    w.disk.bytes_mut()[1024..1536].copy_from_slice(&racer.encode());
    w.wait(secs(2 * N));
    w.io("read", 1024, 512, N);
    assert_eq!(
        w.events(),
        vec![Event::AcquireFailed {
            rv: SANLK_HOSTID_BUSY
        }]
    );
    assert!(!w.lease.is_live());
}

#[test]
fn acquire_refuses_a_lockspace_that_is_not_there() {
    // §3.2 step 1: verify failures end the acquire with sanlock's code.
    let mut w = World::new(MemDisk::new(1 << 20), config(1, "me"), 10);
    w.lease.acquire(w.now);
    w.io("read", 0, 512, N);
    assert_eq!(w.events(), vec![Event::AcquireFailed { rv: -223 }]);

    let mut w = World::new(fresh_disk(), config(1, "me"), 10);
    w.lease.config.space_name = name("OTHER");
    w.lease.acquire(w.now);
    w.io("read", 0, 512, N);
    assert_eq!(w.events(), vec![Event::AcquireFailed { rv: -226 }]);
}

#[test]
fn acquire_uses_the_io_timeout_found_on_disk_for_the_short_delay() {
    // §3.2 [run]: `add_lockspace -o 2` over a lease last written with 10 still waits 20 s.
    let mut cfg = config(1, "me");
    cfg.timeouts = Timeouts::new(2);
    let mut w = World::new(fresh_disk(), cfg, 10);
    w.lease.acquire(w.now);
    w.io("read", 0, 512, 2);
    w.io("write", 0, 512, 2);
    w.wait(secs(20));
    w.io("read", 0, 512, 2);
    assert_eq!(w.sector(1).leader.io_timeout, 2, "our N is written");
}

#[test]
fn a_disk_io_timeout_below_ours_does_not_shorten_the_short_delay() {
    // A lockspace made with io_timeout 1, joined with our N = 10: 3.8.5 waits 2 s, but a racer
    // (with N = 10, as we) may land its claim up to 10 s after it read the sector free, after
    // such a check. We wait 2 × our N (found by the simulator: two holders of host_id 1).
    let init = lockspace_init(Geometry::legacy(SectorSize::Bytes512), name("LS"), 1);
    let mut bytes = init.area;
    bytes[..512].copy_from_slice(&init.commit_sector);
    let mut w = World::new(MemDisk::from_bytes(bytes), config(1, "me"), 10);
    w.lease.acquire(w.now);
    w.io("read", 0, 512, N);
    w.io("write", 0, 512, N);
    assert_eq!(w.lease.poll_timeout(), Some(w.now + secs(2 * N)));
    w.wait(secs(2 * N));
    w.io("read", 0, 512, N);
}

#[test]
fn a_claim_older_than_6n_when_verified_is_renewed_before_the_acquire_is_reported() {
    // Our N = 2 over a lease last written with 10: the 20 s short delay outlasts our 6N = 12
    // and 8N = 16. Reporting the lease then would report a failed lockspace (3.8.5 races its
    // first renewal against that check); we renew at once and report the acquire after it.
    let mut cfg = config(1, "me");
    cfg.timeouts = Timeouts::new(2);
    let mut w = World::new(fresh_disk(), cfg.clone(), 10);
    w.lease.acquire(w.now);
    w.io("read", 0, 512, 2);
    w.io("write", 0, 512, 2);
    w.wait(secs(20));
    w.io("read", 0, 512, 2);
    assert!(w.events().is_empty(), "not acquired before the renewal");
    assert!(!w.lease.is_live() && w.lease.generation().is_none());
    w.io("read", 0, 1 << 20, 2);
    w.io("write", 0, 512, 8 * 2 + 60);
    let events = w.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Acquired {
                    generation: Generation(1),
                    timestamp_s: 30
                },
                Event::Renewed {
                    timestamp_s: 30,
                    ..
                }
            ]
        ),
        "{events:?}"
    );
    assert_eq!(w.lease.last_success(), Some(Time::from_secs(30)));
    assert!(w.lease.is_live());
    assert_eq!(w.sector(1).leader.timestamp, 30);
    // The usual rhythm from there: next renewal 2N + 0.5 s later.
    w.wait(secs(4) + Duration::from_millis(500));

    // The same join whose renewal fails: the acquire fails, nothing is reported held.
    let mut w = World::new(fresh_disk(), cfg, 10);
    w.lease.acquire(w.now);
    w.io("read", 0, 512, 2);
    w.io("write", 0, 512, 2);
    w.wait(secs(20));
    w.io("read", 0, 512, 2);
    let req = w.lease.poll_io().expect("the renewal read");
    w.lease.handle_io(w.now, req.id, Err(IoError::Failed(5)));
    assert_eq!(w.events(), vec![Event::AcquireFailed { rv: -5 }]);
    assert!(w.lease.is_done());
}

#[test]
fn a_claim_silent_for_host_dead_is_renewed_twice_before_the_acquire_is_reported() {
    // The daemon stalls between its claim and the verify for longer than host_dead less 2N
    // (here 8N + 60 = 140 s for N = 10): the others count this host_id dead until their next
    // scan sees a renewal (within 2N). Reporting after the first renewal let a shared hold be
    // taken and then cleared as a dead host's (the simulator, seed 67 of 8 hosts); after a
    // second renewal every scan has seen the host alive.
    let mut w = World::new(fresh_disk(), config(1, "me"), 10);
    w.lease.acquire(w.now);
    w.io("read", 0, 512, N);
    w.io("write", 0, 512, N);
    // The short delay ends at 2N; the stalled daemon takes it up 130 s late.
    assert_eq!(w.lease.poll_timeout(), Some(w.now + secs(2 * N)));
    w.now = w.now + secs(2 * N + 130);
    w.lease.handle_timeout(w.now);
    w.io("read", 0, 512, N);
    w.io("read", 0, 1 << 20, N);
    w.io("write", 0, 512, 8 * N + 60);
    assert!(
        w.events().is_empty(),
        "not acquired after the first renewal"
    );
    assert!(!w.lease.is_live() && w.lease.generation().is_none());
    let first = w.sector(1).leader.timestamp;
    w.wait(secs(2 * N) + Duration::from_millis(500));
    w.io("read", 0, 1 << 20, N);
    w.io("write", 0, 512, 8 * N + 60);
    let events = w.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Acquired {
                    generation: Generation(1),
                    ..
                },
                Event::Renewed { .. }
            ]
        ),
        "{events:?}"
    );
    assert!(w.lease.is_live());
    assert_eq!(w.sector(1).leader.timestamp, first + 2 * N);
}

#[test]
fn an_abort_during_the_long_wait_fails_the_acquire_with_sanlk_error() {
    let mut disk = fresh_disk();
    let mut held = DeltaSector::decode(&disk.bytes()[0..512], 0).unwrap();
    held.leader.owner_id = HostId::new(1);
    held.leader.resource_name = name("other");
    held.leader.timestamp = 5;
    disk.bytes_mut()[0..512].copy_from_slice(&held.encode());
    let mut w = World::new(disk, config(1, "me"), 10);
    w.lease.acquire(w.now);
    w.io("read", 0, 512, N);
    w.now = w.now + secs(30);
    w.lease.abort(w.now);
    assert_eq!(w.events(), vec![Event::AcquireFailed { rv: SANLK_ERROR }]);
    assert_eq!(w.lease.poll_timeout(), None);
}

/// A world that holds host_id 1 since t = 100 (the acquire's timestamp).
/// Held, peeking between renewals, just renewed (at 120.5 s; the next renewal due at 141 s).
fn renewed_with_peek() -> World {
    let mut w = held_world();
    w.lease.set_peek(true);
    w.wait(Duration::from_millis(500));
    w.io("read", 0, 1 << 20, N);
    w.io("write", 0, 512, 8 * N + 60);
    w.events();
    w
}

fn held_world() -> World {
    let mut w = World::new(fresh_disk(), config(1, "me"), 100);
    w.lease.acquire(w.now);
    w.io("read", 0, 512, N);
    w.io("write", 0, 512, N);
    w.wait(secs(2 * N));
    w.io("read", 0, 512, N);
    w.events();
    w
}

#[test]
fn a_renewal_reports_how_long_its_read_and_its_write_took() {
    // lockspace.c renewal history: read_ms and write_ms of each successful renewal.
    let mut w = held_world();
    w.wait(Duration::from_millis(500));
    for took in [30, 7] {
        // Each I/O completes `took` ms after it was issued.
        let req = w.lease.poll_io().expect("the renewal's I/O");
        w.now = w.now + Duration::from_millis(took);
        let result = w.disk.apply(&req);
        w.lease.handle_io(w.now, req.id, result);
    }
    let events = w.events();
    assert!(
        matches!(
            &events[..],
            [Event::Renewed {
                read_ms: 30,
                write_ms: 7,
                ..
            }]
        ),
        "{events:?}"
    );
}

#[test]
fn renewal_reads_the_whole_lockspace_and_writes_our_sector_with_a_long_timeout() {
    // §4.1-4.2: due 2N + 0.5 s after the last success; read align bytes (timeout N), write
    // one sector (timeout 8N+60) with the bitmap and the host event.
    let mut w = held_world();
    assert_eq!(w.now, Time::from_secs(120));
    // The free-lease acquire took 2N, so the first renewal is due 0.5 s after it.
    w.wait(Duration::from_millis(500));
    let mut bitmap = HostBitmap::EMPTY;
    bitmap.set(HostId::new(7).unwrap());
    w.lease.set_bitmap(bitmap);
    w.lease.set_host_event(HostEvent {
        generation: 3,
        event: 77,
        data: 1234,
    });
    w.io("read", 0, 1 << 20, N);
    w.io("write", 0, 512, 8 * N + 60);
    let events = w.events();
    assert!(
        matches!(&events[..], [Event::Renewed { timestamp_s: 120, lockspace, read_ms: 0, write_ms: 0, .. }] if lockspace.len() == 1 << 20)
    );
    let s = w.sector(1);
    assert_eq!(s.leader.timestamp, 120);
    assert_eq!(s.bitmap, bitmap);
    assert_eq!(s.leader.event().event, 77);
    // The next one is due 2N + 0.5 s after this success.
    w.wait(secs(2 * N) + Duration::from_millis(500));
    assert!(w.lease.poll_io().is_some());
}

#[test]
fn a_renewal_finding_our_record_changed_fails_the_lockspace_at_once() {
    // §4.2 step 4 and §6.1: RENEW_OWNER / RENEW_DIFF mark the lockspace corrupt.
    let mut w = held_world();
    let mut stolen = w.sector(1);
    stolen.leader.owner_generation = Generation(9);
    w.disk.bytes_mut()[0..512].copy_from_slice(&stolen.encode());
    w.wait(Duration::from_millis(500));
    w.io("read", 0, 1 << 20, N);
    assert_eq!(
        w.events(),
        vec![
            Event::RenewalFailed {
                rv: SANLK_RENEW_OWNER,
                corrupt: true
            },
            Event::Expired
        ]
    );
    assert!(!w.lease.is_live());
}

#[test]
fn failed_renewals_warn_at_6n_and_expire_at_8n_after_the_last_success() {
    // §6.1: gap ≥ 6N → warning; gap ≥ 8N → the lockspace fails. Retries 0.5 s after failures.
    let mut w = held_world();
    let last = w.lease.last_success().unwrap();
    let mut seen = Vec::new();
    while w.now < last + secs(8 * N) {
        let next = w.lease.poll_timeout().unwrap();
        w.now = next;
        w.lease.handle_timeout(w.now);
        while let Some(req) = w.lease.poll_io() {
            w.lease.handle_io(w.now, req.id, Err(IoError::Failed(5)));
        }
        for e in w.events() {
            if !matches!(
                e,
                Event::RenewalFailed {
                    rv: -5,
                    corrupt: false
                }
            ) {
                seen.push((w.now - last, e));
            }
        }
    }
    assert_eq!(
        seen,
        vec![
            (secs(6 * N), Event::RenewalWarning),
            (secs(8 * N), Event::Expired)
        ]
    );
}

#[test]
fn a_renewal_read_past_its_deadline_fails_and_its_late_completion_is_ignored() {
    let mut w = held_world();
    w.wait(Duration::from_millis(500));
    let read = w.lease.poll_io().unwrap();
    w.wait(secs(N));
    assert_eq!(
        w.events(),
        vec![Event::RenewalFailed {
            rv: -202,
            corrupt: false
        }]
    );
    // The retry comes 0.5 s later; the old read's completion is counted and dropped.
    let result = w.disk.apply(&read);
    w.lease.handle_io(w.now, read.id, result);
    assert_eq!(w.lease.late_completions(), 1);
    w.wait(Duration::from_millis(500));
    w.io("read", 0, 1 << 20, N);
    w.io("write", 0, 512, 8 * N + 60);
    assert!(matches!(w.events()[..], [Event::Renewed { .. }]));
}

#[test]
fn release_writes_our_record_with_timestamp_0_and_nothing_after_a_failed_renewal() {
    // §4.4: timestamp 0, owner, generation and name kept, bitmap zeroed.
    let mut w = held_world();
    w.lease.release(w.now);
    w.io("write", 0, 512, N);
    assert_eq!(w.events(), vec![Event::Released]);
    let s = w.sector(1);
    assert_eq!(
        (s.leader.timestamp, s.leader.owner_generation),
        (0, Generation(1))
    );
    assert_eq!(s.leader.resource_name, name("me"));
    assert!(w.lease.is_done());

    let mut w = held_world();
    w.wait(Duration::from_millis(500));
    let read = w.lease.poll_io().unwrap();
    w.lease.handle_io(w.now, read.id, Err(IoError::Failed(5)));
    w.events();
    w.lease.release(w.now);
    assert_eq!(w.lease.poll_io(), None, "no write after a failed renewal");
    assert_eq!(w.events(), vec![Event::Released]);
}

#[test]
fn a_completion_delivered_after_its_deadline_is_a_timeout_even_without_a_tick() {
    // A host that stalled with its first read in flight must not act on what it read before
    // the stall (found by the delta_safety driver: a stale "free" read led to a second holder).
    let mut w = World::new(fresh_disk(), config(1, "me"), 100);
    w.lease.acquire(w.now);
    let read = w.lease.poll_io().unwrap();
    let result = w.disk.apply(&read);
    w.now = w.now + secs(140);
    w.lease.handle_io(w.now, read.id, result);
    assert_eq!(w.events(), vec![Event::AcquireFailed { rv: -202 }]);
    assert_eq!(w.lease.late_completions(), 1);
    assert_eq!(w.lease.poll_io(), None, "nothing written");
}

#[test]
fn with_peek_the_lockspace_is_read_half_way_to_the_next_renewal_which_stays_due() {
    // The daemon's event_poll: renewal at 120.5 s, next due at 141 s; the extra read (timeout
    // N) comes at 130.75 s and changes nothing of the schedule. Only host_id 1 (ours) has ever
    // been used: the peek reads its sector alone.
    let mut w = renewed_with_peek();
    w.wait(Duration::from_millis(10_250));
    w.io("read", 0, 512, N);
    let events = w.events();
    assert!(
        matches!(
            &events[..],
            [Event::Peeked { lockspace, read_bound: None }] if lockspace.len() == 512
        ),
        "{events:?}"
    );
    // Nothing was written, and the renewal is still due 2N + 0.5 s after the last success.
    w.wait(Duration::from_millis(10_250));
    w.io("read", 0, 1 << 20, N);
    w.io("write", 0, 512, 8 * N + 60);
    assert!(matches!(
        &w.events()[..],
        [Event::Renewed {
            timestamp_s: 141,
            ..
        }]
    ));
}

#[test]
fn while_ballots_want_a_view_the_peek_reads_the_whole_area_and_gives_a_read_bound() {
    // A renewal's read bound lasts 2N × 0.99 from its read, and the next renewal's read comes
    // 2N + 0.5 s after the last success: ballots in that gap would read every dblock. While
    // they want a view, the peek half way reads the whole area, and its bound closes the gap.
    let mut w = renewed_with_peek();
    w.lease.want_view(w.now);
    w.wait(Duration::from_millis(10_250));
    let peek_started = w.now;
    w.io("read", 0, 1 << 20, N);
    let events = w.events();
    let [Event::Peeked {
        lockspace,
        read_bound: Some(bound),
    }] = &events[..]
    else {
        panic!("{events:?}");
    };
    assert_eq!(lockspace.len(), 1 << 20);
    assert_eq!(bound.hosts, 1);
    // The free sectors say io_timeout 10: no host can join above host_id 1 unseen before
    // 2 × 10 s (less 1% for a faster clock) from the peek's read.
    assert_eq!(
        bound.until,
        Some(peek_started + Duration::from_millis(2000 * N * 99 / 100))
    );
    // The wish lapses 2N after it was made: the peek after the next renewal is small again.
    w.wait(Duration::from_millis(10_250));
    w.io("read", 0, 1 << 20, N);
    w.io("write", 0, 512, 8 * N + 60);
    w.events();
    w.wait(Duration::from_millis(10_250));
    w.io("read", 0, 512, N);
    assert!(matches!(
        &w.events()[..],
        [Event::Peeked {
            read_bound: None,
            ..
        }]
    ));
}

#[test]
fn ballots_starting_late_in_a_renewal_interval_get_a_whole_peek_at_once() {
    // The half-way peek was small (no ballots then); ballots start 11.25 s after the renewal's
    // read, more than N on, when its bound has under N left: the whole area is read at once,
    // and only once (a second wish right after finds a fresh view).
    let mut w = renewed_with_peek();
    let due = w.now + Duration::from_millis(20_500);
    w.wait(Duration::from_millis(10_250));
    w.io("read", 0, 512, N);
    w.events();
    w.now = w.now + secs(1);
    w.lease.want_view(w.now);
    w.wait(Duration::ZERO);
    w.io("read", 0, 1 << 20, N);
    assert!(matches!(
        &w.events()[..],
        [Event::Peeked {
            read_bound: Some(_),
            ..
        }]
    ));
    w.lease.want_view(w.now);
    assert_eq!(w.lease.poll_timeout(), Some(due), "no second peek");
}

#[test]
fn a_peek_reads_through_the_highest_host_id_the_last_renewal_saw_in_use() {
    // sanlock reads nothing between renewals; our peek costs only the sectors of host_ids that
    // have ever joined (here 1, ours, and 7), as of the last renewal's read. Host 30, joining
    // after it, is read at the next renewal.
    let mut w = held_world();
    w.lease.set_peek(true);
    let mut other = DeltaSector::decode(&w.disk.bytes()[6 * 512..7 * 512], 6 * 512).unwrap();
    other.leader.owner_id = HostId::new(7);
    other.leader.timestamp = 90;
    w.disk.bytes_mut()[6 * 512..7 * 512].copy_from_slice(&other.encode());
    w.wait(Duration::from_millis(500));
    w.io("read", 0, 1 << 20, N);
    w.io("write", 0, 512, 8 * N + 60);
    w.events();
    let mut late = DeltaSector::decode(&w.disk.bytes()[29 * 512..30 * 512], 29 * 512).unwrap();
    late.leader.owner_id = HostId::new(30);
    late.leader.timestamp = 125;
    w.disk.bytes_mut()[29 * 512..30 * 512].copy_from_slice(&late.encode());
    w.wait(Duration::from_millis(10_250));
    w.io("read", 0, 7 * 512, N);
    w.events();
    w.wait(Duration::from_millis(10_250));
    w.io("read", 0, 1 << 20, N);
    w.io("write", 0, 512, 8 * N + 60);
    w.events();
    w.wait(Duration::from_millis(10_250));
    w.io("read", 0, 30 * 512, N);
}

#[test]
fn without_peek_nothing_is_read_between_renewals() {
    // sanlock's schedule (and the simulator's): the next deadline after a renewal is the
    // next renewal.
    let mut w = held_world();
    w.wait(Duration::from_millis(500));
    w.io("read", 0, 1 << 20, N);
    w.io("write", 0, 512, 8 * N + 60);
    w.events();
    w.wait(secs(2 * N) + Duration::from_millis(500));
}

#[test]
fn renew_soon_moves_the_next_renewal_to_now() {
    // After set_event the daemon renews at once, so the event leaves within milliseconds.
    let mut w = held_world();
    w.wait(Duration::from_millis(500));
    w.io("read", 0, 1 << 20, N);
    w.io("write", 0, 512, 8 * N + 60);
    w.events();
    w.now = w.now + secs(3);
    w.lease.renew_soon(w.now);
    assert_eq!(w.lease.poll_timeout(), Some(w.now));
    w.lease.handle_timeout(w.now);
    w.io("read", 0, 1 << 20, N);
    w.io("write", 0, 512, 8 * N + 60);
    assert!(matches!(
        &w.events()[..],
        [Event::Renewed {
            timestamp_s: 123,
            ..
        }]
    ));
}
