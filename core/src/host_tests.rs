//! The host composite over in-memory disks: outputs and their times, pinned to algorithms.md §6.

use std::time::Duration;

use super::*;
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

    fn outputs(&mut self) -> Vec<(Time, Output)> {
        std::mem::take(&mut self.log)
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
    w.host
        .acquire(w.now, name("LS"), name("R"), 0, AcquireRequest::default());
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
    let mut w = World::new();
    w.join();
    w.host
        .acquire(w.now, name("LS"), name("R"), 0, AcquireRequest::default());
    w.settle();
    w.outputs();
    let last = t(1000); // the acquire's timestamp; every renewal from now on fails
    w.fail_io = true;
    w.run_until(t(1016));
    let timeline: Vec<(u64, String)> = w
        .outputs()
        .into_iter()
        .filter(|(_, o)| !matches!(o, Output::WatchdogArm { .. }))
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
    let mut w = World::new();
    w.join();
    w.host
        .acquire(w.now, name("LS"), name("R"), 0, AcquireRequest::default());
    w.settle();
    w.outputs();
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
        .filter(|(_, o)| !matches!(o, Output::RenewalWarning { .. }))
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
