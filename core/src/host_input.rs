//! Everything a [`Host`] can be told, as one value: [`Host::handle`] takes an [`Input`] and
//! calls the method it names. A driver that logs its inputs can replay a run exactly (a
//! counterexample from the simulator or the checker is such a list), and a fuzzer can make
//! any sequence of them.

use super::{Host, JoinRequest, SetEventFlags};
use crate::ids::{Generation, HostId, MessageSeq};
use crate::io::{IoId, IoResult};
use crate::ondisk::{HostEvent, Lvb, Name};
use crate::paxos::AcquireRequest;
use crate::requests::RequestArgs;
use crate::time::Time;

/// One thing handed to a host, with the arguments of the method it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// [`Host::join`].
    Join(JoinRequest),
    /// [`Host::leave`].
    Leave {
        /// The lockspace.
        space_name: Name,
    },
    /// [`Host::holders_gone`].
    HoldersGone {
        /// The lockspace.
        space_name: Name,
    },
    /// [`Host::acquire`].
    Acquire {
        /// The lockspace.
        space_name: Name,
        /// The resource.
        resource_name: Name,
        /// Where its lease area starts on each of its disks.
        disks: crate::quorum::LeaseDisks,
        /// How to acquire it.
        request: AcquireRequest,
    },
    /// [`Host::release`].
    Release {
        /// The lockspace.
        space_name: Name,
        /// The resource.
        resource_name: Name,
    },
    /// [`Host::release_renamed`].
    ReleaseRenamed {
        /// The lockspace.
        space_name: Name,
        /// The resource.
        resource_name: Name,
        /// The name the freed leader gets.
        new_name: Name,
    },
    /// [`Host::convert`].
    Convert {
        /// The lockspace.
        space_name: Name,
        /// The resource.
        resource_name: Name,
        /// SH (true) or EX (false).
        to_shared: bool,
    },
    /// [`Host::set_event`].
    SetEvent {
        /// The lockspace.
        space_name: Name,
        /// The host_id whose bit is set (0: none).
        target: u64,
        /// The event.
        event: HostEvent,
        /// SET_EVENT's flags.
        flags: SetEventFlags,
    },
    /// [`Host::set_lvb`].
    SetLvb {
        /// The lockspace.
        space_name: Name,
        /// The resource.
        resource_name: Name,
        /// The value.
        lvb: Lvb,
    },
    /// [`Host::request`].
    Request {
        /// The lockspace.
        space_name: Name,
        /// The resource.
        resource_name: Name,
        /// Where its lease area starts on its disk.
        offset: u64,
        /// What is asked of the holder.
        args: RequestArgs,
    },
    /// [`Host::examine`].
    Examine {
        /// The lockspace.
        space_name: Name,
        /// The resource.
        resource_name: Option<Name>,
    },
    /// [`Host::send_message`].
    SendMessage {
        /// The lockspace.
        space_name: Name,
        /// The target host_id.
        target: u64,
        /// The event it carries.
        event: HostEvent,
    },
    /// [`Host::ack_message`].
    AckMessage {
        /// The lockspace.
        space_name: Name,
        /// The sender.
        from: HostId,
        /// The sender's generation.
        from_generation: Generation,
        /// The message.
        seq: MessageSeq,
    },
    /// [`Host::cancel_message`].
    CancelMessage {
        /// The lockspace.
        space_name: Name,
        /// The message.
        seq: MessageSeq,
    },
    /// [`Host::handle_io`].
    IoDone {
        /// The I/O, as given out.
        id: IoId,
        /// Its bytes or failure.
        result: IoResult,
    },
    /// [`Host::handle_timeout`].
    Timeout,
}

/// What [`Host::handle`] answers at once (most inputs are answered later, by outputs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Nothing to say now.
    Done,
    /// [`Host::set_event`]'s result.
    SetEvent(Result<(), i32>),
    /// [`Host::examine`]'s count of leases marked.
    Examined(usize),
    /// [`Host::send_message`]'s result.
    SendMessage(Result<MessageSeq, i32>),
    /// [`Host::cancel_message`]'s result.
    Cancelled(bool),
}

impl Host {
    /// Hands the host one input at `now`: the one entry point a replay needs. Then drain
    /// [`Host::poll_io`] and [`Host::poll_output`] and arm [`Host::poll_timeout`], as after
    /// any call.
    pub fn handle(&mut self, now: Time, input: Input) -> Handled {
        match input {
            Input::Join(join) => self.join(now, join),
            Input::Leave { space_name } => self.leave(now, space_name),
            Input::HoldersGone { space_name } => self.holders_gone(now, space_name),
            Input::Acquire {
                space_name,
                resource_name,
                disks,
                request,
            } => self.acquire(now, space_name, resource_name, disks, request),
            Input::Release {
                space_name,
                resource_name,
            } => self.release(now, space_name, resource_name),
            Input::ReleaseRenamed {
                space_name,
                resource_name,
                new_name,
            } => self.release_renamed(now, space_name, resource_name, new_name),
            Input::Convert {
                space_name,
                resource_name,
                to_shared,
            } => self.convert(now, space_name, resource_name, to_shared),
            Input::SetEvent {
                space_name,
                target,
                event,
                flags,
            } => return Handled::SetEvent(self.set_event(now, space_name, target, event, flags)),
            Input::SetLvb {
                space_name,
                resource_name,
                lvb,
            } => self.set_lvb(space_name, resource_name, lvb),
            Input::Request {
                space_name,
                resource_name,
                offset,
                args,
            } => self.request(now, space_name, resource_name, offset, args),
            Input::Examine {
                space_name,
                resource_name,
            } => return Handled::Examined(self.examine(now, space_name, resource_name)),
            Input::SendMessage {
                space_name,
                target,
                event,
            } => return Handled::SendMessage(self.send_message(now, space_name, target, event)),
            Input::AckMessage {
                space_name,
                from,
                from_generation,
                seq,
            } => self.ack_message(now, space_name, from, from_generation, seq),
            Input::CancelMessage { space_name, seq } => {
                return Handled::Cancelled(self.cancel_message(now, space_name, seq))
            }
            Input::IoDone { id, result } => self.handle_io(now, id, result),
            Input::Timeout => self.handle_timeout(now),
        }
        Handled::Done
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use super::*;
    use crate::host::{HostConfig, Target};
    use crate::ids::HostId;
    use crate::io::DiskRef;
    use crate::memdisk::MemDisk;
    use crate::ondisk::{lockspace_init, resource_init, Geometry, ResourceInit, SectorSize};

    fn name(s: &str) -> Name {
        Name::new(s.as_bytes()).unwrap()
    }

    fn config() -> HostConfig {
        let mut config = HostConfig::new(name("host1"));
        config.event_poll = true;
        config
    }

    /// A host on in-memory disks driven only through [`Host::handle`], every input logged with
    /// its time, every I/O request and output traced.
    struct Recorder {
        host: Host,
        lockspace: MemDisk,
        lease: MemDisk,
        now: Time,
        log: Vec<(Time, Input)>,
        trace: Vec<String>,
    }

    impl Recorder {
        fn new() -> Recorder {
            let g = Geometry::legacy(SectorSize::Bytes512);
            let ls = lockspace_init(g, name("LS"), 1);
            let mut lockspace = ls.area;
            lockspace[..512].copy_from_slice(&ls.commit_sector);
            let lease = resource_init(&ResourceInit {
                geometry: g,
                space_name: name("LS"),
                resource_name: name("R"),
                num_hosts: 0,
                clear_at_s: None,
            });
            Recorder {
                host: Host::new(config()),
                lockspace: MemDisk::from_bytes(lockspace),
                lease: MemDisk::from_bytes(lease),
                now: Time::from_secs(1000),
                log: Vec::new(),
                trace: Vec::new(),
            }
        }

        /// Feeds `input`, then the completion of every I/O it leads to, at once.
        fn feed(&mut self, input: Input) {
            let mut queue = VecDeque::from([input]);
            while let Some(input) = queue.pop_front() {
                self.log.push((self.now, input.clone()));
                self.host.handle(self.now, input);
                while let Some((target, req)) = self.host.poll_io() {
                    self.trace
                        .push(format!("io {target:?} {:?} {}", req.id, req.offset));
                    let disk = match (&target, req.disk) {
                        (Target::Lockspace(_), _) | (_, DiskRef::Lockspace) => &mut self.lockspace,
                        _ => &mut self.lease,
                    };
                    let result = disk.apply(&req);
                    queue.push_back(Input::IoDone { id: req.id, result });
                }
                while let Some(out) = self.host.poll_output() {
                    self.trace.push(format!("out {out:?}"));
                }
            }
        }

        /// Follows the host's deadlines for `secs` seconds.
        fn run(&mut self, secs: u64) {
            let until = self.now + Duration::from_secs(secs);
            while let Some(next) = self.host.poll_timeout().filter(|&t| t <= until) {
                self.now = next;
                self.feed(Input::Timeout);
            }
            self.now = until;
        }
    }

    #[test]
    fn a_logged_run_replays_to_the_same_host_io_and_outputs() {
        // Issue 16: any run, and so any counterexample, is a list of (time, input).
        let mut r = Recorder::new();
        r.feed(Input::Join(JoinRequest {
            space_name: name("LS"),
            host_id: HostId::new(1).unwrap(),
            geometry: Geometry::legacy(SectorSize::Bytes512),
            offset: 0,
            io_timeout_s: 1,
        }));
        r.run(5);
        let lease = |to_shared| Input::Convert {
            space_name: name("LS"),
            resource_name: name("R"),
            to_shared,
        };
        r.feed(Input::Acquire {
            space_name: name("LS"),
            resource_name: name("R"),
            disks: crate::quorum::LeaseDisks::one(0),
            request: AcquireRequest {
                lvb: true,
                ..AcquireRequest::default()
            },
        });
        r.run(3);
        r.feed(lease(true));
        r.feed(lease(false));
        r.feed(Input::SetLvb {
            space_name: name("LS"),
            resource_name: name("R"),
            lvb: Lvb::default(),
        });
        let examined = r.host.clone().handle(
            r.now,
            Input::Examine {
                space_name: name("LS"),
                resource_name: None,
            },
        );
        assert_eq!(examined, Handled::Examined(1), "one lease held to examine");
        r.feed(Input::Release {
            space_name: name("LS"),
            resource_name: name("R"),
        });
        r.run(4);
        r.feed(Input::Leave {
            space_name: name("LS"),
        });
        r.run(3);
        assert!(
            r.trace.iter().any(|l| l.contains("Acquired")),
            "{:#?}",
            r.trace
        );
        assert!(
            r.trace.iter().any(|l| l.contains("Converted")),
            "{:#?}",
            r.trace
        );
        assert!(
            r.trace.iter().any(|l| l.contains("Released")),
            "{:#?}",
            r.trace
        );
        assert!(r.trace.iter().any(|l| l.contains("Left")), "{:#?}", r.trace);

        let mut replayed = Host::new(config());
        let mut trace = Vec::new();
        for (now, input) in r.log.clone() {
            replayed.handle(now, input);
            while let Some((target, req)) = replayed.poll_io() {
                trace.push(format!("io {target:?} {:?} {}", req.id, req.offset));
            }
            while let Some(out) = replayed.poll_output() {
                trace.push(format!("out {out:?}"));
            }
        }
        assert_eq!(trace, r.trace);
        assert_eq!(replayed, r.host);
    }
}
