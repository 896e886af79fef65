//! The host composite over in-memory disks: outputs and their times, pinned to algorithms.md §6.

use crate::quorum::LeaseDisks;
use std::time::Duration;

use super::*;
use crate::ids::Lver;
use crate::io::{DiskRef, IoError, IoOp};
use crate::memdisk::MemDisk;
use crate::ondisk::{lockspace_init, resource_init, ResourceInit, SectorSize};

const N: u64 = 1;

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

fn g512() -> Geometry {
    Geometry::legacy(SectorSize::Bytes512)
}

struct World {
    host: Host,
    lockspace: MemDisk,
    lease_disk: MemDisk,
    now: Time,
    fail_io: bool,
    log: Vec<(Time, Output)>,
    ios: usize,
}

impl World {
    fn new() -> World {
        let ls = lockspace_init(g512(), name("LS"), N as u16);
        let mut lockspace = ls.area;
        lockspace[..512].copy_from_slice(&ls.commit_sector);
        let lease = resource_init(&ResourceInit {
            geometry: g512(),
            space_name: name("LS"),
            resource_name: name("R"),
            num_hosts: 0,
            clear_at_s: None,
        });
        let mut config = HostConfig::new(name("host1"));
        config.kill_grace_s = 5;
        World {
            host: Host::new(config),
            lockspace: MemDisk::from_bytes(lockspace),
            lease_disk: MemDisk::from_bytes(lease),
            now: Time::from_secs(1000),
            fail_io: false,
            log: Vec::new(),
            ios: 0,
        }
    }

    /// Completes every pending I/O at once and collects outputs.
    fn settle(&mut self) {
        while let Some((target, req)) = self.host.poll_io() {
            self.ios += 1;
            let disk = match (&target, req.disk) {
                (Target::Lockspace(_), _) | (_, DiskRef::Lockspace) => &mut self.lockspace,
                _ => &mut self.lease_disk,
            };
            let result = if self.fail_io {
                Err(IoError::Failed(5))
            } else {
                disk.apply(&req)
            };
            assert!(matches!(req.op, IoOp::Read { .. } | IoOp::Write { .. }));
            self.host.handle_io(self.now, req.id, result);
        }
        while let Some(out) = self.host.poll_output() {
            self.log.push((self.now, out));
        }
    }

    /// Runs until `until`, following the host's deadlines.
    fn run_until(&mut self, until: Time) {
        self.settle();
        while let Some(next) = self.host.poll_timeout() {
            if next > until {
                break;
            }
            self.now = next;
            self.host.handle_timeout(self.now);
            self.settle();
        }
        self.now = until;
    }

    fn join(&mut self) {
        self.host.join(
            self.now,
            JoinRequest {
                space_name: name("LS"),
                host_id: HostId::new(1).unwrap(),
                geometry: g512(),
                offset: 0,
                io_timeout_s: N,
            },
        );
        // The free-lease acquire takes 2N.
        self.run_until(self.now + Duration::from_secs(2 * N));
    }

    /// Joined, holding the resource exclusively, outputs so far collected.
    fn holding() -> World {
        let mut w = World::new();
        w.join();
        w.host.acquire(
            w.now,
            name("LS"),
            name("R"),
            LeaseDisks::one(0),
            AcquireRequest::default(),
        );
        w.settle();
        w.outputs();
        assert!(w.host.held(name("LS"), name("R")).is_some());
        w
    }

    fn outputs(&mut self) -> Vec<(Time, Output)> {
        std::mem::take(&mut self.log)
    }

    /// Outputs not yet collected by settle.
    fn outputs_now(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.host.poll_output()).collect()
    }
}

fn t(s: u64) -> Time {
    Time::from_secs(s)
}

#[test]
fn joining_arms_the_watchdog_and_every_renewal_rearms_it() {
    // §3.3 and §6.4: TEST_LIVE renewal = last_success, expire = last_success + 8N.
    let mut w = World::new();
    w.join();
    let out = w.outputs();
    assert_eq!(
        out,
        vec![
            (
                t(1002),
                Output::Joined {
                    space_name: name("LS"),
                    generation: Generation(1)
                }
            ),
            (
                t(1002),
                Output::WatchdogArm {
                    space_name: name("LS"),
                    renewal: t(1000),
                    expire: t(1008)
                }
            ),
        ]
    );
    w.run_until(t(1003));
    let arms: Vec<_> = w
        .outputs()
        .into_iter()
        .filter(|(_, o)| matches!(o, Output::WatchdogArm { .. }))
        .collect();
    assert_eq!(arms.len(), 1);
    let (
        at,
        Output::WatchdogArm {
            renewal, expire, ..
        },
    ) = arms[0]
    else {
        unreachable!()
    };
    assert_eq!(
        (at, renewal),
        (renewal, Time::new(Duration::from_millis(1_002_500)))
    );
    assert_eq!(expire, renewal + Duration::from_secs(8 * N));
}

#[test]
fn a_resource_is_acquired_and_released_through_the_host() {
    let mut w = World::new();
    w.join();
    w.outputs();
    w.host.acquire(
        w.now,
        name("LS"),
        name("R"),
        LeaseDisks::one(0),
        AcquireRequest::default(),
    );
    w.settle();
    let out = w.outputs();
    assert!(matches!(
        &out[..],
        [(
            _,
            Output::Resource {
                event: paxos::Event::Acquired { .. },
                ..
            }
        )]
    ));
    assert_eq!(
        w.host.held(name("LS"), name("R")).unwrap().owner_id,
        HostId::new(1)
    );
    w.host.release(w.now, name("LS"), name("R"));
    w.settle();
    assert!(matches!(
        &w.outputs()[..],
        [(
            _,
            Output::Resource {
                event: paxos::Event::Released,
                ..
            }
        )]
    ));
    assert!(w.host.held(name("LS"), name("R")).is_none());
}

#[test]
fn failed_renewals_lead_to_warning_failure_graceful_then_forceful_stops() {
    // §6.1-6.2 with N = 1, grace 5: warn at T+6, fail at T+8, SIGTERM each second until
    // T+8+5, SIGKILL each second after; holders gone → leases forgotten, watchdog disarmed.
    let mut w = World::holding();
    let last = t(1000); // the acquire's timestamp; every renewal from now on fails
    w.fail_io = true;
    w.run_until(t(1016));
    let timeline: Vec<(u64, String)> = w
        .outputs()
        .into_iter()
        .filter(|(_, o)| !matches!(o, Output::WatchdogArm { .. } | Output::Renewal { .. }))
        .map(|(at, o)| {
            let what = match o {
                Output::RenewalWarning { .. } => "warn".to_string(),
                Output::LockspaceFailed { .. } => "failed".to_string(),
                Output::StopHolders { graceful, .. } => {
                    if graceful {
                        "term".to_string()
                    } else {
                        "kill".to_string()
                    }
                }
                other => format!("{other:?}"),
            };
            (at.saturating_since(last).as_secs(), what)
        })
        .collect();
    let expected: Vec<(u64, String)> = [
        (6, "warn"),
        (8, "failed"),
        (8, "term"),
        (9, "term"),
        (10, "term"),
        (11, "term"),
        (12, "term"),
        (13, "kill"),
        (14, "kill"),
        (15, "kill"),
        (16, "kill"),
    ]
    .iter()
    .map(|(s, w)| (*s, w.to_string()))
    .collect();
    assert_eq!(timeline, expected);

    // The holders exit: the lease is dropped without I/O, the watchdog disarmed; the delta
    // lease is not released (its last renewal failed).
    let before = w.ios;
    w.fail_io = false;
    w.host.holders_gone(w.now, name("LS"));
    w.settle();
    assert_eq!(w.ios, before, "no disk I/O for a failed lockspace's leases");
    let out: Vec<Output> = w.outputs().into_iter().map(|(_, o)| o).collect();
    assert!(out.contains(&Output::WatchdogDisarm {
        space_name: name("LS")
    }));
    assert!(out.contains(&Output::Left {
        space_name: name("LS")
    }));
    assert!(w.host.held(name("LS"), name("R")).is_none());
}

#[test]
fn leaving_without_holders_releases_the_delta_lease() {
    // §4.4 / §6.3: timestamp 0 written, watchdog disarmed.
    let mut w = World::new();
    w.join();
    w.outputs();
    w.host.leave(w.now, name("LS"));
    w.settle();
    let out: Vec<Output> = w.outputs().into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        out,
        vec![
            Output::WatchdogDisarm {
                space_name: name("LS")
            },
            Output::Left {
                space_name: name("LS")
            }
        ]
    );
    let sector = crate::ondisk::DeltaSector::decode(&w.lockspace.bytes()[..512], 0).unwrap();
    assert_eq!(sector.leader.timestamp, 0);
    assert!(w.host.generation(name("LS")).is_none());
}

#[test]
fn leaving_with_holders_kills_them_first() {
    // §12: removal of a used lockspace kills its processes with SIGKILL, then stops it.
    let mut w = World::holding();
    w.host.leave(w.now, name("LS"));
    w.settle();
    assert_eq!(
        w.outputs(),
        vec![(
            w.now,
            Output::StopHolders {
                space_name: name("LS"),
                graceful: false
            }
        )]
    );
    w.host.holders_gone(w.now, name("LS"));
    w.settle();
    let out: Vec<Output> = w.outputs().into_iter().map(|(_, o)| o).collect();
    assert!(out.contains(&Output::Left {
        space_name: name("LS")
    }));
}

#[test]
fn no_acquire_once_the_last_renewal_is_8n_old_even_before_the_timeout_is_handled() {
    // Found by the simulator: a stalled daemon resumed to an acquire before the timeout that
    // fails its lockspace, and won a lease while others counted it dead.
    let mut w = World::new();
    w.join();
    w.outputs();
    // The last renewal was taken at 1000 s (the join); 8N later nothing may be acquired.
    w.now = t(1008);
    w.host.acquire(
        w.now,
        name("LS"),
        name("R"),
        LeaseDisks::one(0),
        AcquireRequest::default(),
    );
    assert!(w.host.poll_io().is_none(), "no I/O for a refused acquire");
    assert_eq!(
        w.outputs_now(),
        vec![Output::Resource {
            space_name: name("LS"),
            resource_name: name("R"),
            event: paxos::Event::AcquireFailed {
                rv: SANLK_ACQUIRE_LOCKSPACE
            },
        }]
    );
}

#[test]
fn an_acquire_under_way_when_the_lockspace_stops_is_answered() {
    // Found by the simulator: the acquire outlived its lockspace and committed the lease
    // with the old generation after the host had joined again.
    let mut w = World::new();
    w.join();
    w.outputs();
    w.fail_io = true;
    w.run_until(Time::new(Duration::from_millis(1_007_700)));
    w.outputs();
    w.host.acquire(
        w.now,
        name("LS"),
        name("R"),
        LeaseDisks::one(0),
        AcquireRequest::default(),
    );
    let (_, first) = w.host.poll_io().expect("the lease read");
    w.run_until(Time::new(Duration::from_millis(1_008_300)));
    let out: Vec<Output> = w.outputs().into_iter().map(|(_, o)| o).collect();
    assert!(
        out.contains(&Output::Resource {
            space_name: name("LS"),
            resource_name: name("R"),
            event: paxos::Event::AcquireFailed {
                rv: SANLK_ACQUIRE_LOCKSPACE
            },
        }),
        "{out:?}"
    );
    assert!(!w.host.busy(name("LS"), name("R")));
    // Its read completing now changes nothing.
    let late = w.host.late_completions();
    w.host.handle_io(w.now, first.id, Err(IoError::TimedOut));
    assert_eq!(w.host.late_completions(), late + 1);
    assert!(w.host.poll_output().is_none());
}

/// Runs the host until `until`, completing every I/O at once except writes to the lease
/// disk, which are handed back unsent.
fn run_holding_lease_writes(w: &mut World, until: Time) -> Vec<IoRequest> {
    let mut held = Vec::new();
    loop {
        while let Some((target, req)) = w.host.poll_io() {
            let lease = !matches!(target, Target::Lockspace(_)) && req.disk == DiskRef::LEASE;
            if lease && matches!(req.op, IoOp::Write { .. }) {
                held.push(req);
                continue;
            }
            let disk = if lease {
                &mut w.lease_disk
            } else {
                &mut w.lockspace
            };
            let result = disk.apply(&req);
            w.host.handle_io(w.now, req.id, result);
        }
        while let Some(out) = w.host.poll_output() {
            w.log.push((w.now, out));
        }
        match w.host.poll_timeout() {
            Some(next) if next <= until => {
                w.now = next.max(w.now);
                w.host.handle_timeout(w.now);
            }
            _ => break,
        }
    }
    w.now = until;
    held
}

#[test]
fn a_write_waits_until_our_earlier_write_to_the_same_sector_has_completed() {
    // Found by the simulator: a dblock write given up on landed after a newer one. The next
    // write to that sector is held until the first completes, and dropped unsent if its own
    // deadline passes first.
    let mut w = World::new();
    w.join();
    w.outputs();
    let acquire = |w: &mut World| {
        w.host.acquire(
            w.now,
            name("LS"),
            name("R"),
            LeaseDisks::one(0),
            AcquireRequest::default(),
        );
    };
    acquire(&mut w);
    let until = w.now + Duration::from_secs(2);
    let stuck = run_holding_lease_writes(&mut w, until);
    assert_eq!(stuck.len(), 1, "the phase 1 write, given up on");
    acquire(&mut w);
    let until = w.now + Duration::from_secs(2);
    let more = run_holding_lease_writes(&mut w, until);
    assert!(
        more.is_empty(),
        "a second write to our dblock went out: {more:?}"
    );
    assert_eq!(w.host.fenced_writes_dropped(), 1);
    let failed = w
        .outputs()
        .into_iter()
        .filter(|(_, o)| {
            matches!(
                o,
                Output::Resource {
                    event: paxos::Event::AcquireFailed { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(failed, 2);
    // The stuck write completes at last; the next acquire writes and wins.
    let result = w.lease_disk.apply(&stuck[0]);
    w.host.handle_io(w.now, stuck[0].id, result);
    acquire(&mut w);
    w.settle();
    assert!(w.host.held(name("LS"), name("R")).is_some());
}

#[test]
fn a_lease_being_converted_still_has_a_holder_to_stop() {
    // Found by the simulator: the lockspace failed during an EX→SH convert, was stopped at
    // once as if unused, and the process went on holding the lease shared.
    let mut w = World::holding();
    w.fail_io = true;
    w.run_until(Time::new(Duration::from_millis(1_007_700)));
    w.host.convert(w.now, name("LS"), name("R"), true);
    let (_, stuck) = w.host.poll_io().expect("the convert's dblock write");
    w.run_until(Time::new(Duration::from_millis(1_008_300)));
    let out: Vec<Output> = w.outputs().into_iter().map(|(_, o)| o).collect();
    assert!(
        out.contains(&Output::StopHolders {
            space_name: name("LS"),
            graceful: true
        }),
        "{out:?}"
    );
    assert!(!out.contains(&Output::WatchdogDisarm {
        space_name: name("LS")
    }));
    let _ = stuck;
}

#[test]
fn a_failed_lockspace_nobody_uses_stops_at_once() {
    // §6.3: no holders → stopped at the failure: watchdog disarmed, nothing written.
    let mut w = World::new();
    w.join();
    w.outputs();
    w.fail_io = true;
    w.run_until(t(1009));
    let out: Vec<(u64, Output)> = w
        .outputs()
        .into_iter()
        .filter(|(_, o)| !matches!(o, Output::RenewalWarning { .. } | Output::Renewal { .. }))
        .map(|(at, o)| (at.saturating_since(t(1000)).as_secs(), o))
        .collect();
    assert_eq!(
        out,
        vec![
            (
                8,
                Output::LockspaceFailed {
                    space_name: name("LS")
                }
            ),
            (
                8,
                Output::WatchdogDisarm {
                    space_name: name("LS")
                }
            ),
            (
                8,
                Output::Left {
                    space_name: name("LS")
                }
            ),
        ]
    );
    assert_eq!(w.host.poll_timeout(), None, "nothing left to do");
}

#[test]
fn set_event_goes_out_with_the_next_renewals_and_its_bit_expires() {
    // §11.1-11.2 with N = 1 (set_bitmap 6 s): event in write_*, target's bit set, the bit gone
    // 6 s later while the event stays until cleared.
    let mut w = World::new();
    w.join();
    let ev = crate::ondisk::HostEvent {
        generation: 0,
        event: 77,
        data: 1234,
    };
    let ls = name("LS");
    assert_eq!(
        w.host.set_event(w.now, ls, 2, ev, SetEventFlags::default()),
        Ok(())
    );
    let other = crate::ondisk::HostEvent { event: 78, ..ev };
    assert_eq!(
        w.host
            .set_event(w.now, ls, 2, other, SetEventFlags::default()),
        Err(-16)
    );
    // The busy check compares event numbers only (lockspace.c): new data for the same event
    // replaces the old at once.
    let new_data = crate::ondisk::HostEvent { data: 99, ..ev };
    assert_eq!(
        w.host
            .set_event(w.now, ls, 2, new_data, SetEventFlags::default()),
        Ok(())
    );
    assert_eq!(
        w.host.set_event(w.now, ls, 2, ev, SetEventFlags::default()),
        Ok(())
    );
    assert_eq!(
        w.host
            .set_event(w.now, ls, 3000, ev, SetEventFlags::default()),
        Err(-22)
    );
    assert_eq!(
        w.host
            .set_event(w.now, name("NO"), 2, ev, SetEventFlags::default()),
        Err(-2)
    );
    let sector =
        |w: &World| crate::ondisk::DeltaSector::decode(&w.lockspace.bytes()[..512], 0).unwrap();
    w.run_until(w.now + Duration::from_secs(3));
    let s = sector(&w);
    assert_eq!(s.leader.event(), ev);
    assert_eq!(
        s.bitmap.hosts(2000).collect::<Vec<_>>(),
        vec![HostId::new(2).unwrap()]
    );
    w.run_until(w.now + Duration::from_secs(6));
    let s = sector(&w);
    assert_eq!(s.leader.event(), ev, "the event persists");
    assert_eq!(s.bitmap.hosts(2000).count(), 0, "the bit expired");
    let clear = SetEventFlags {
        clear_event: true,
        ..SetEventFlags::default()
    };
    assert_eq!(w.host.set_event(w.now, ls, 2, ev, clear), Ok(()));
    w.run_until(w.now + Duration::from_secs(3));
    assert_eq!(
        sector(&w).leader.event(),
        crate::ondisk::HostEvent::default()
    );
}

/// Two hosts (host_ids 1 and 2) over the same in-memory disks, every I/O completed at once.
struct Pair {
    hosts: [Host; 2],
    lockspace: MemDisk,
    lease_disk: MemDisk,
    now: Time,
    log: Vec<(usize, Time, Output)>,
    /// (host index, target, write?, offset) of every I/O, in order.
    ios: Vec<(usize, Target, bool, u64)>,
}

impl Pair {
    fn new() -> Pair {
        let w = World::new();
        let host = |n: &str| {
            let mut config = HostConfig::new(name(n));
            config.kill_grace_s = 5;
            Host::new(config)
        };
        let mut p = Pair {
            hosts: [host("host1"), host("host2")],
            lockspace: w.lockspace,
            lease_disk: w.lease_disk,
            now: w.now,
            log: Vec::new(),
            ios: Vec::new(),
        };
        for (i, id) in [(0, 1), (1, 2)] {
            p.hosts[i].join(
                p.now,
                JoinRequest {
                    space_name: name("LS"),
                    host_id: HostId::new(id).unwrap(),
                    geometry: g512(),
                    offset: 0,
                    io_timeout_s: N,
                },
            );
        }
        p.run_until(p.now + Duration::from_secs(2 * N));
        p.log.clear();
        p.hosts[0].acquire(
            p.now,
            name("LS"),
            name("R"),
            LeaseDisks::one(0),
            AcquireRequest::default(),
        );
        p.settle();
        assert!(p.hosts[0].held(name("LS"), name("R")).is_some());
        p.log.clear();
        p.ios.clear();
        p
    }

    fn settle(&mut self) {
        for (i, host) in self.hosts.iter_mut().enumerate() {
            while let Some((target, req)) = host.poll_io() {
                let disk = match target.lease() {
                    Some(_) if req.disk == DiskRef::LEASE => &mut self.lease_disk,
                    _ => &mut self.lockspace,
                };
                let write = matches!(req.op, IoOp::Write { .. });
                self.ios.push((i, target, write, req.offset));
                let result = disk.apply(&req);
                host.handle_io(self.now, req.id, result);
            }
            while let Some(out) = host.poll_output() {
                self.log.push((i, self.now, out));
            }
        }
    }

    fn run_until(&mut self, until: Time) {
        self.settle();
        loop {
            let next = self.hosts.iter().filter_map(Host::poll_timeout).min();
            match next {
                Some(next) if next <= until => {
                    self.now = next;
                    for host in &mut self.hosts {
                        host.handle_timeout(next);
                    }
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn request(&mut self, force_mode: crate::ondisk::ForceMode) {
        let args = RequestArgs {
            lver: None,
            force_mode,
            next_lver: true,
        };
        self.hosts[1].request(self.now, name("LS"), name("R"), 0, args);
        self.settle();
    }

    fn stop_holder_outputs(&self) -> Vec<(Time, bool)> {
        self.log
            .iter()
            .filter_map(|(i, at, out)| match out {
                Output::StopHolder {
                    resource_name,
                    graceful,
                    ..
                } if *i == 0 && *resource_name == name("R") => Some((*at, *graceful)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_force_request_reaches_the_holder_through_the_bitmap_and_stops_it() {
    // §10.1-10.2 with N = 1: host 2 asks for lver 2 (FORCE); its renewals carry host 1's bit;
    // host 1's next renewal finds it, reads the request record and says SIGKILL the holder.
    let mut p = Pair::new();
    let asked_at = p.now;
    p.request(crate::ondisk::ForceMode::Force);
    let req = Target::Request(name("LS"), name("R"));
    assert_eq!(
        p.ios,
        vec![
            (1, req.clone(), false, 0),
            (1, req.clone(), false, 512),
            (1, req.clone(), true, 512),
        ],
        "read leader, read request, write request"
    );
    assert!(p.log.iter().any(|(i, _, out)| *i == 1
        && *out
            == Output::RequestDone {
                space_name: name("LS"),
                resource_name: name("R"),
                rv: 0
            }));
    let record =
        crate::ondisk::RequestRecord::decode(&p.lease_disk.bytes()[512..1024], 512).unwrap();
    assert_eq!(record.lver, Lver(2));
    assert_eq!(record.force_mode, crate::ondisk::ForceMode::Force);

    p.run_until(asked_at + Duration::from_secs(3 * 2 * N));
    // Host 2's renewal wrote host 1's bit (byte 256 of its delta sector).
    assert_eq!(p.lockspace.bytes()[512 + 256], 0x01);
    let stops = p.stop_holder_outputs();
    assert!(!stops.is_empty(), "host 1 never examined: {:?}", p.log);
    let (at, graceful) = stops[0];
    assert!(!graceful);
    // Within two renewal intervals: host 2's renewal, then host 1's scan of it.
    assert!(at <= asked_at + Duration::from_secs(2 * 2 * N), "{at}");
    let examine = Target::Examine(name("LS"), name("R"));
    assert_eq!(
        p.ios
            .iter()
            .filter(|(_, t, _, _)| *t == examine)
            .map(|(i, _, w, off)| (*i, *w, *off))
            .collect::<Vec<_>>()[..1],
        [(0, false, 512)],
        "the examine is one read of the request sector"
    );
    // The per-sender throttle (set_bitmap = 6N) holds further examines back while the bit stays.
    assert_eq!(stops.len(), 1, "{stops:?}");
}

#[test]
fn a_graceful_request_asks_for_the_killpath_and_a_stale_one_for_nothing() {
    let mut p = Pair::new();
    p.request(crate::ondisk::ForceMode::Graceful);
    p.run_until(p.now + Duration::from_secs(2 * 2 * N));
    assert_eq!(p.stop_holder_outputs().len(), 1);
    assert!(p.stop_holder_outputs()[0].1, "graceful");

    // A request for a version we already hold means nothing to the holder.
    let mut p = Pair::new();
    let record = crate::ondisk::RequestRecord {
        version: crate::ondisk::request::REQ_DISK_VERSION,
        lver: Lver(1),
        force_mode: crate::ondisk::ForceMode::Force,
    };
    p.lease_disk.bytes_mut()[512..536].copy_from_slice(&record.encode());
    assert_eq!(p.hosts[0].examine(p.now, name("LS"), None), 1);
    p.settle();
    assert!(p.stop_holder_outputs().is_empty());
    assert_eq!(p.hosts[0].examine(p.now, name("LS"), Some(name("NO"))), 0);
}

#[test]
fn a_request_needs_a_live_lockspace_and_a_free_lease_writes_nothing() {
    let mut p = Pair::new();
    let args = RequestArgs {
        lver: None,
        force_mode: crate::ondisk::ForceMode::Force,
        next_lver: true,
    };
    p.hosts[1].request(p.now, name("NO"), name("R"), 0, args);
    p.settle();
    assert!(p
        .log
        .iter()
        .any(|(_, _, out)| matches!(out, Output::RequestDone { rv: -28, .. })));
    p.hosts[0].release(p.now, name("LS"), name("R"));
    p.settle();
    p.ios.clear();
    p.log.clear();
    p.request(crate::ondisk::ForceMode::Force);
    assert_eq!(p.ios.len(), 1, "only the leader read: {:?}", p.ios);
    p.run_until(p.now + Duration::from_secs(3 * 2 * N));
    assert_eq!(p.lockspace.bytes()[512 + 256], 0, "nobody to notify");
}
