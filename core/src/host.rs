//! One host: all its lockspaces (a delta lease and the table of the other hosts each), all its
//! resource leases, and the recovery timeline, behind one handle/poll API. The daemon, the
//! simulator and the model checker drive this type and nothing below it.
//!
//! Recovery decisions are outputs, at the times of algorithms.md §6 (T = the last successful
//! renewal, N = io_timeout, grace = kill_grace_seconds):
//!
//! | when | output |
//! | --- | --- |
//! | after every successful renewal | `WatchdogArm { renewal: T, expire: T + 8N }` (what wdmd is fed) |
//! | T + 6N | `RenewalWarning` |
//! | T + 8N, or a corrupt renewal | `LockspaceFailed`, then `StopHolders { graceful: true }` (killpath or SIGTERM) every second |
//! | T + 8N + grace | `StopHolders { graceful: false }` (SIGKILL) every second, until `holders_gone` |
//! | lockspace removed with holders | `StopHolders { graceful: false }` at once |
//! | lockspace stopped (released, or failed and emptied) | `WatchdogDisarm` |
//!
//! A failed lockspace's resources are dropped without disk I/O (§6.1): other hosts take them
//! once this host's delta lease is seen released or dead.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::delta::{self, DeltaConfig, DeltaLease};
use crate::hosts::{HostTable, Notice, ReadBound, ScanKind};
use crate::ids::{Generation, HostId, MessageSeq};
use crate::io::{DiskRef, IoId, IoOp, IoRequest, IoResult};
use crate::mailbox::{MailEvent, Mailbox};
use crate::mutants::{Mutant, Mutations};
use crate::ondisk::{Geometry, HostBitmap, HostEvent, LeaderRecord, Lvb, MailboxBlock, Name};
use crate::paxos::{self, AcquireRequest, PaxosConfig, PaxosLease};
use crate::requests::{Examination, Examined, LeaseAddress, Request, RequestArgs, RequestOutcome};
use crate::rng::Rng;
use crate::rv::SANLK_ACQUIRE_LOCKSPACE;
use crate::time::Time;
use crate::timeouts::{Timeouts, DEFAULT_KILL_GRACE_S};
use crate::timers::Timers;

#[path = "host_input.rs"]
mod input;
pub use input::{Handled, Input};

/// What the host is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostConfig {
    /// Our host name, unique per host instance (`-e`).
    pub host_name: Name,
    /// Seconds between the graceful and the forceful stop of holders (`-g`, 0..=60).
    pub kill_grace_s: u64,
    /// Seeds every machine's PRNG.
    pub rng_seed: u64,
    /// set_bitmap_seconds (`-b`): how long a bit we set stays in our bitmap, and the
    /// per-sender request throttle. 0 means 6 × io_timeout per lockspace.
    pub set_bitmap_s: u64,
    /// Events and requests sooner: each lockspace is also read half way between renewals,
    /// and a renewal is made at once after set_event (the daemon turns this on; sanlock does
    /// neither, the simulator keeps sanlock's schedule).
    pub event_poll: bool,
    /// A deliberate bug to run with (the simulator's mutant suite only).
    #[cfg(feature = "mutants")]
    pub mutant: Option<crate::mutants::Mutant>,
}

impl HostConfig {
    /// A host named `host_name` with sanlock's defaults.
    pub fn new(host_name: Name) -> Self {
        HostConfig {
            host_name,
            kill_grace_s: DEFAULT_KILL_GRACE_S,
            rng_seed: 1,
            set_bitmap_s: 0,
            event_poll: false,
            #[cfg(feature = "mutants")]
            mutant: None,
        }
    }
}

/// Where a lockspace is, and who we are in it (add_lockspace).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JoinRequest {
    /// The lockspace name.
    pub space_name: Name,
    /// Our host_id in it.
    pub host_id: HostId,
    /// Its geometry (from the size probe of §3.1, done by the driver).
    pub geometry: Geometry,
    /// Byte offset of the lockspace area on its disk.
    pub offset: u64,
    /// Our io_timeout N for it.
    pub io_timeout_s: u64,
}

/// Which machine an I/O belongs to; the driver maps it to a disk and hands it back.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A lockspace's delta lease (its disk).
    Lockspace(Name),
    /// A resource lease: (lockspace, resource). Its I/O is for the lease's disk, or for the
    /// lockspace's disk when [`IoRequest::disk`] says so.
    Resource(Name, Name),
    /// A request (§10.1) on a resource lease: its I/O is for the lease's disk.
    Request(Name, Name),
    /// The examine of a held resource's request record (§10.2): the lease's disk.
    Examine(Name, Name),
}

impl Target {
    /// The (lockspace, resource) whose lease disk the I/O is for, unless it is a lockspace's.
    pub fn lease(&self) -> Option<(&Name, &Name)> {
        match self {
            Target::Lockspace(_) => None,
            Target::Resource(ls, res) | Target::Request(ls, res) | Target::Examine(ls, res) => {
                Some((ls, res))
            }
        }
    }
}

/// What the host reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[allow(
    clippy::large_enum_variant,
    reason = "outputs are drained as soon as they are made; boxing would allocate for each"
)]
pub enum Output {
    /// We joined the lockspace with this generation.
    Joined {
        /// The lockspace.
        space_name: Name,
        /// Our generation of the host_id.
        generation: Generation,
    },
    /// Joining failed; the lockspace is forgotten.
    JoinFailed {
        /// The lockspace.
        space_name: Name,
        /// SANLK_* or -errno.
        rv: i32,
    },
    /// Feed the watchdog for this lockspace: it must fire if not re-armed by `expire`.
    WatchdogArm {
        /// The lockspace.
        space_name: Name,
        /// Last successful renewal (our clock).
        renewal: Time,
        /// Renewal + 8N.
        expire: Time,
    },
    /// Stop watching this lockspace: nothing of it is held any more.
    WatchdogDisarm {
        /// The lockspace.
        space_name: Name,
    },
    /// A renewal attempt ended: its timestamp and I/O times, or its result (SANLK_AIO_TIMEOUT
    /// for a timeout). The daemon keeps these as the renewal history (`client renewal`).
    Renewal {
        /// The lockspace.
        space_name: Name,
        /// What the attempt did.
        outcome: Result<RenewalTimes, i32>,
    },
    /// The last renewal is 6N old.
    RenewalWarning {
        /// The lockspace.
        space_name: Name,
    },
    /// The lockspace has failed (8N without renewal, or a corrupt record): recovery starts.
    LockspaceFailed {
        /// The lockspace.
        space_name: Name,
    },
    /// Make the processes holding leases in this lockspace stop: gracefully (killpath, else
    /// SIGTERM) or not (SIGKILL). Repeated every second until [`Host::holders_gone`].
    StopHolders {
        /// The lockspace.
        space_name: Name,
        /// Within the grace period.
        graceful: bool,
    },
    /// We left the lockspace (its delta lease released when its last renewal had succeeded).
    Left {
        /// The lockspace.
        space_name: Name,
    },
    /// A host event aimed at us arrived (deliver to reg_event listeners).
    HostEvent {
        /// The lockspace.
        space_name: Name,
        /// What the scan found.
        notice: Notice,
    },
    /// A host message of ours or for us moved on (our extension, [`crate::mailbox`]).
    Mail {
        /// The lockspace.
        space_name: Name,
        /// What happened.
        event: MailEvent,
    },
    /// A request (§10.1) finished: 0, or a SANLK_* / -errno result.
    RequestDone {
        /// The lockspace.
        space_name: Name,
        /// The resource.
        resource_name: Name,
        /// 0 or the error.
        rv: i32,
    },
    /// Another host asked, through the request record, for a resource we hold (§10.2): make
    /// its holder stop, gracefully (killpath, else SIGTERM) or not (SIGKILL). Its lease is
    /// then released as for any exiting holder.
    StopHolder {
        /// The lockspace.
        space_name: Name,
        /// The resource.
        resource_name: Name,
        /// GRACEFUL (force_mode 2) rather than FORCE (1).
        graceful: bool,
    },
    /// A resource operation finished (acquire, release, convert), with the paxos machine's
    /// report.
    Resource {
        /// The lockspace.
        space_name: Name,
        /// The resource.
        resource_name: Name,
        /// What happened.
        event: paxos::Event,
    },
}

/// A successful renewal, as sanlock's renewal history records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RenewalTimes {
    /// The timestamp written (our monotonic seconds).
    pub timestamp_s: u64,
    /// The read of the whole lockspace, in milliseconds.
    pub read_ms: u64,
    /// The write of our sector, in milliseconds.
    pub write_ms: u64,
}

/// One host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Host {
    config: HostConfig,
    lockspaces: BTreeMap<Name, Lockspace>,
    /// Boxed: a B-tree node holds eleven values inline, so a held lease costs its own size,
    /// not that of the tree's half-empty slots (memory at 10,000 leases held).
    resources: BTreeMap<(Name, Name), Box<PaxosLease>>,
    /// Requests we make on other hosts' leases, and examines of the ones we hold.
    requests: BTreeMap<(Name, Name), Request>,
    examines: BTreeMap<(Name, Name), Examination>,
    /// Which machine instance each I/O handed out belongs to, by host-wide id.
    in_flight: BTreeMap<u64, InFlight>,
    next_io: u64,
    /// Numbers each machine created, so that a completion for a finished machine is not
    /// handed to its successor (machine-local ids start again at 0).
    next_instance: u64,
    instances: BTreeMap<Target, u64>,
    /// Machines that got input since the last drain: only they can have I/O or events to
    /// collect, so the work per input does not grow with the leases held. Empty between calls.
    touched: BTreeSet<Target>,
    /// The next deadline of each resource, request and examine machine (a held lease has none).
    timers: Timers<Target>,
    late_completions: u64,
    outputs: VecDeque<Output>,
    io: VecDeque<(Target, IoRequest)>,
    /// Writes held back until an earlier write of ours to the same sectors has completed:
    /// one we gave up on (timed out) may still land, and must not land after a newer one.
    fenced: VecDeque<(Target, IoRequest)>,
    fenced_dropped: u64,
    last_now: Time,
    /// Seeds each new machine's own PRNG.
    rng: Rng,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct InFlight {
    target: Target,
    instance: u64,
    id: IoId,
    /// For a write: the disk and byte range it changes.
    write: Option<WriteRange>,
}

/// The disk an I/O goes to, as far as this host can tell them apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum DiskKey {
    Lockspace(Name),
    Lease(Name, Name, crate::quorum::LeaseDisk),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct WriteRange {
    disk: DiskKey,
    start: u64,
    end: u64,
}

impl WriteRange {
    fn of(target: &Target, request: &IoRequest) -> Option<WriteRange> {
        let IoOp::Write { data } = &request.op else {
            return None;
        };
        let disk = match (target, request.disk) {
            (Target::Lockspace(ls), _) => DiskKey::Lockspace(*ls),
            (t, DiskRef::Lockspace) => DiskKey::Lockspace(*t.lease().expect("a lease target").0),
            (t, DiskRef::Lease(d)) => {
                let (ls, res) = t.lease().expect("a lease target");
                DiskKey::Lease(*ls, *res, d)
            }
        };
        Some(WriteRange {
            disk,
            start: request.offset,
            end: request.offset + data.len() as u64,
        })
    }

    fn overlaps(&self, other: &WriteRange) -> bool {
        self.disk == other.disk && self.start < other.end && other.start < self.end
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Lockspace {
    delta: DeltaLease,
    table: HostTable,
    timeouts: Timeouts,
    geometry: Geometry,
    offset: u64,
    /// set_bitmap_seconds for this lockspace.
    set_bitmap: Duration,
    /// Set once the lockspace has failed: when, and whether holders are still running.
    failed: Option<Time>,
    /// The next time to repeat StopHolders, while holders run.
    next_stop: Option<Time>,
    removing: bool,
    /// The event our renewals carry (§11), and when it was set.
    host_event: HostEvent,
    event_set_at: Option<Time>,
    /// When we asked each host for attention; a bit stays set for set_bitmap seconds.
    bit_times: BTreeMap<HostId, Time>,
    /// How far ballot reads must reach, from the latest renewal's read (hosts::ReadBound).
    read_bound: Option<ReadBound>,
    /// Host messages and acks (our extension), and the message whose event and bit our
    /// renewals carry now.
    mailbox: Mailbox,
    mail_seq: Option<MessageSeq>,
}

/// The flags of set_event (SANLK_SETEV_*).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SetEventFlags {
    /// CUR_GENERATION: a generation of 0 means the target's current one.
    pub cur_generation: bool,
    /// CLEAR_HOSTID: only clear the target's bit.
    pub clear_hostid: bool,
    /// CLEAR_EVENT: only clear the event.
    pub clear_event: bool,
    /// REPLACE_EVENT: skip the busy check.
    pub replace_event: bool,
    /// ALL_HOSTS: set every host's bit.
    pub all_hosts: bool,
}

impl Host {
    /// A host with no lockspaces.
    pub fn new(config: HostConfig) -> Self {
        let rng = Rng::new(config.rng_seed);
        Host {
            config,
            lockspaces: BTreeMap::new(),
            resources: BTreeMap::new(),
            requests: BTreeMap::new(),
            examines: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            next_io: 0,
            next_instance: 0,
            instances: BTreeMap::new(),
            touched: BTreeSet::new(),
            timers: Timers::default(),
            late_completions: 0,
            outputs: VecDeque::new(),
            io: VecDeque::new(),
            fenced: VecDeque::new(),
            fenced_dropped: 0,
            last_now: Time::ZERO,
            rng,
        }
    }

    /// add_lockspace: starts the delta lease acquire. A lockspace already known is refused
    /// (-EEXIST).
    pub fn join(&mut self, now: Time, join: JoinRequest) {
        self.tick(now);
        if self.lockspaces.contains_key(&join.space_name) {
            self.outputs.push_back(Output::JoinFailed {
                space_name: join.space_name,
                rv: -17,
            });
            return;
        }
        let timeouts = Timeouts::new(join.io_timeout_s);
        let mut delta = DeltaLease::new(DeltaConfig {
            space_name: join.space_name,
            host_id: join.host_id,
            host_name: self.config.host_name,
            geometry: join.geometry,
            offset: join.offset,
            timeouts,
        });
        delta.set_mutations(self.mutations());
        delta.set_peek(self.config.event_poll);
        // Our sector says from the first write that this host acknowledges messages.
        delta.set_mailbox(Some(MailboxBlock::default()));
        delta.acquire(now);
        let mut mailbox = Mailbox::new(join.host_id);
        mailbox.set_mutations(self.mutations());
        self.new_instance(Target::Lockspace(join.space_name));
        let set_bitmap = match self.config.set_bitmap_s {
            0 => timeouts.set_bitmap(),
            s => Duration::from_secs(s),
        };
        let table = HostTable::new(
            join.space_name,
            join.host_id,
            join.geometry,
            timeouts,
            set_bitmap,
        );
        self.lockspaces.insert(
            join.space_name,
            Lockspace {
                delta,
                table,
                timeouts,
                geometry: join.geometry,
                offset: join.offset,
                set_bitmap,
                failed: None,
                next_stop: None,
                removing: false,
                host_event: HostEvent::default(),
                event_set_at: None,
                bit_times: BTreeMap::new(),
                read_bound: None,
                mailbox,
                mail_seq: None,
            },
        );
        self.drain(now);
    }

    /// rem_lockspace: holders are stopped with SIGKILL (§12); with none, the delta lease is
    /// released and the watchdog disarmed.
    pub fn leave(&mut self, now: Time, space_name: Name) {
        self.tick(now);
        let has_holders = self.holders_in(space_name);
        let Some(ls) = self.lockspaces.get_mut(&space_name) else {
            return;
        };
        ls.removing = true;
        if has_holders {
            self.outputs.push_back(Output::StopHolders {
                space_name,
                graceful: false,
            });
            ls.next_stop = Some(now + Duration::from_secs(1));
        } else {
            self.stop_lockspace(now, space_name);
        }
        self.drain(now);
    }

    /// The driver reports that no process holds leases in this lockspace any more (the
    /// holders exited or were killed): recovery ends, the lockspace stops if failing or
    /// being removed.
    pub fn holders_gone(&mut self, now: Time, space_name: Name) {
        self.tick(now);
        let Some(ls) = self.lockspaces.get_mut(&space_name) else {
            return;
        };
        ls.next_stop = None;
        let stop = ls.failed.is_some() || ls.removing;
        if stop {
            self.drop_leases(now, space_name);
            self.stop_lockspace(now, space_name);
        }
        self.drain(now);
    }

    /// Acquires a resource lease in a joined, live lockspace. The lease's disks (where its
    /// area starts on each) come with the request (from the RESOURCE string).
    pub fn acquire(
        &mut self,
        now: Time,
        space_name: Name,
        resource_name: Name,
        disks: crate::quorum::LeaseDisks,
        request: AcquireRequest,
    ) {
        self.tick(now);
        let key = (space_name, resource_name);
        let refuse = |rv| Output::Resource {
            space_name,
            resource_name,
            event: paxos::Event::AcquireFailed { rv },
        };
        let Some(ls) = self.lockspaces.get(&space_name) else {
            // SANLK_ACQUIRE_LOCKSPACE: not joined.
            self.outputs.push_back(refuse(SANLK_ACQUIRE_LOCKSPACE));
            return;
        };
        let (Some(generation), true) = (ls.delta.generation(), ls.usable(now)) else {
            self.outputs.push_back(refuse(SANLK_ACQUIRE_LOCKSPACE));
            return;
        };
        if self.resources.get(&key).is_some_and(|l| !l.is_done()) {
            // Busy locally (sanlock: -EEXIST when held, -EBUSY/-EAGAIN while in progress).
            self.outputs.push_back(refuse(-17));
            return;
        }
        let mut lease = PaxosLease::new(PaxosConfig {
            space_name,
            resource_name,
            geometry: ls.geometry,
            disks,
            host_id: ls.delta.config().host_id,
            generation,
            timeouts: ls.timeouts,
            lockspace_geometry: ls.geometry,
            lockspace_offset: ls.offset,
            rng_seed: self.rng.next_u64(),
        });
        lease.set_mutations(self.mutations());
        lease.set_read_bound(ls.read_bound);
        lease.acquire(now, request);
        if let Some(ls) = self.lockspaces.get_mut(&space_name) {
            ls.delta.want_view(now);
        }
        self.resources.insert(key, Box::new(lease));
        self.new_instance(Target::Resource(space_name, resource_name));
        self.drain(now);
    }

    /// Releases a held resource lease; on a failed lockspace it is only forgotten (no I/O).
    pub fn release(&mut self, now: Time, space_name: Name, resource_name: Name) {
        self.tick(now);
        let failed = self
            .lockspaces
            .get(&space_name)
            .is_none_or(|ls| ls.failed.is_some());
        if let Some(lease) = self.resources.get_mut(&(space_name, resource_name)) {
            self.touched
                .insert(Target::Resource(space_name, resource_name));
            if failed {
                lease.abort(now);
                self.outputs.push_back(Output::Resource {
                    space_name,
                    resource_name,
                    event: paxos::Event::Released,
                });
            } else {
                lease.release(now);
            }
        }
        self.drain(now);
    }

    /// Releases a held lease and renames it on disk (SANLK_REL_RENAME): the freed leader
    /// carries `new_name`. On a failed lockspace it is only forgotten, as [`Host::release`].
    pub fn release_renamed(
        &mut self,
        now: Time,
        space_name: Name,
        resource_name: Name,
        new_name: Name,
    ) {
        let failed = self
            .lockspaces
            .get(&space_name)
            .is_none_or(|ls| ls.failed.is_some());
        if !failed && self.resources.contains_key(&(space_name, resource_name)) {
            self.tick(now);
            if let Some(lease) = self.resources.get_mut(&(space_name, resource_name)) {
                lease.release_renamed(now, new_name);
                self.touched
                    .insert(Target::Resource(space_name, resource_name));
            }
            self.drain(now);
            return;
        }
        self.release(now, space_name, resource_name);
    }

    /// Converts a held resource lease to shared or exclusive.
    pub fn convert(&mut self, now: Time, space_name: Name, resource_name: Name, to_shared: bool) {
        self.tick(now);
        let bound = self.lockspaces.get_mut(&space_name).and_then(|ls| {
            ls.delta.want_view(now);
            ls.read_bound
        });
        if let Some(lease) = self.resources.get_mut(&(space_name, resource_name)) {
            lease.set_read_bound(bound);
            lease.convert(now, to_shared);
            self.touched
                .insert(Target::Resource(space_name, resource_name));
        }
        self.drain(now);
    }

    /// set_event (algorithms.md §11.1): the event our next renewals carry, and the bit of
    /// `target` (or of every host) in our bitmap for set_bitmap seconds. Errors: -ENOENT for an
    /// unknown lockspace, -EINVAL for a host_id outside it, -EBUSY while a different event set
    /// less than set_bitmap seconds ago is pending (unless replace_event).
    pub fn set_event(
        &mut self,
        now: Time,
        space_name: Name,
        target: u64,
        mut event: HostEvent,
        flags: SetEventFlags,
    ) -> Result<(), i32> {
        self.tick(now);
        let Some(ls) = self.lockspaces.get_mut(&space_name) else {
            return Err(-2);
        };
        let Some(target) = HostId::new(target).filter(|&h| ls.geometry.contains_host(h)) else {
            return Err(-22);
        };
        if ls.mailbox.busy() {
            // Host messages hold the lockspace's one event until they are done.
            return Err(-16);
        }
        if flags.clear_event {
            ls.host_event = HostEvent::default();
            ls.delta.set_host_event(ls.host_event);
            return Ok(());
        }
        if flags.clear_hostid {
            ls.bit_times.remove(&target);
            refresh_bitmap(ls, now);
            return Ok(());
        }
        if flags.cur_generation && event.generation == 0 {
            event.generation = ls.table.status(target).map_or(0, |s| s.owner_generation.0);
        }
        if event_pending(ls, now)
            && event.event != 0
            && event.event != ls.host_event.event
            && !flags.replace_event
        {
            return Err(-16);
        }
        ls.host_event = event;
        ls.event_set_at = Some(now);
        ls.delta.set_host_event(event);
        if self.config.event_poll {
            // The event goes out with a renewal made now, not up to 2N later.
            ls.delta.renew_soon(now);
        }
        let ours = ls.delta.config().host_id;
        ls.bit_times.insert(target, now);
        if flags.all_hosts {
            for h in (1..=u64::from(ls.geometry.max_hosts())).filter_map(HostId::new) {
                if h != ours {
                    ls.bit_times.insert(h, now);
                }
            }
        }
        refresh_bitmap(ls, now);
        Ok(())
    }

    /// Sends a host message (our extension, [`crate::mailbox`]): `event` to `target`, after
    /// the messages queued before it. Returns its number; what becomes of it comes as
    /// [`Output::Mail`]. Errors: -ENOENT for an unknown lockspace, -EINVAL for a host_id
    /// outside it, our own, or event 0, -EBUSY while a set_event is pending.
    pub fn send_message(
        &mut self,
        now: Time,
        space_name: Name,
        target: u64,
        event: HostEvent,
    ) -> Result<MessageSeq, i32> {
        self.tick(now);
        let event_poll = self.config.event_poll;
        let Some(ls) = self.lockspaces.get_mut(&space_name) else {
            return Err(-2);
        };
        let ours = ls.delta.config().host_id;
        let Some(target) = HostId::new(target)
            .filter(|&h| ls.geometry.contains_host(h))
            .filter(|&h| h != ours && event.event != 0)
        else {
            return Err(-22);
        };
        if !ls.mailbox.busy() && event_pending(ls, now) {
            // A set_event's event holds the lockspace's one event slot for now.
            return Err(-16);
        }
        let seq = ls.mailbox.send(target, event);
        sync_mailbox(ls, now, event_poll);
        self.drain(now);
        Ok(seq)
    }

    /// Message `seq` of `from` (in `from_generation`) was delivered: our next write
    /// acknowledges it ([`MailEvent::AckWritten`] when it is on disk).
    pub fn ack_message(
        &mut self,
        now: Time,
        space_name: Name,
        from: HostId,
        from_generation: Generation,
        seq: MessageSeq,
    ) {
        self.tick(now);
        let event_poll = self.config.event_poll;
        let Some(ls) = self.lockspaces.get_mut(&space_name) else {
            return;
        };
        ls.mailbox.ack(from, from_generation, seq);
        sync_mailbox(ls, now, event_poll);
        self.drain(now);
    }

    /// Stops sending message `seq` (its sender gave up waiting). Whether it was still there.
    pub fn cancel_message(&mut self, now: Time, space_name: Name, seq: MessageSeq) -> bool {
        self.tick(now);
        let event_poll = self.config.event_poll;
        let Some(ls) = self.lockspaces.get_mut(&space_name) else {
            return false;
        };
        let found = ls.mailbox.cancel(seq);
        sync_mailbox(ls, now, event_poll);
        self.drain(now);
        found
    }

    /// Sets the LVB a held resource writes on release.
    pub fn set_lvb(&mut self, space_name: Name, resource_name: Name, lvb: Lvb) {
        if let Some(lease) = self.resources.get_mut(&(space_name, resource_name)) {
            lease.set_lvb(lvb);
        }
    }

    /// request (§10.1): asks the holder of a lease at `offset` (with the lockspace's geometry)
    /// to give it up; reported by [`Output::RequestDone`]. The lockspace must be joined and
    /// live (else -ENOSPC, as sanlock); one request per resource at a time (else -EBUSY).
    /// When it asked for something, the owner's bit goes out in our renewals for set_bitmap
    /// seconds.
    pub fn request(
        &mut self,
        now: Time,
        space_name: Name,
        resource_name: Name,
        offset: u64,
        args: RequestArgs,
    ) {
        self.tick(now);
        let key = (space_name, resource_name);
        let live = self
            .lockspaces
            .get(&space_name)
            .filter(|ls| ls.failed.is_none() && !ls.removing && ls.delta.is_live());
        let rv = match live {
            None => Some(-28),
            Some(_) if self.requests.contains_key(&key) => Some(-16),
            Some(_) => None,
        };
        if let Some(rv) = rv {
            self.outputs.push_back(Output::RequestDone {
                space_name,
                resource_name,
                rv,
            });
            return;
        }
        let ls = live.expect("checked");
        let lease = LeaseAddress {
            space_name,
            resource_name,
            geometry: ls.geometry,
            offset,
            timeouts: ls.timeouts,
        };
        self.requests.insert(key, Request::start(now, lease, args));
        self.new_instance(Target::Request(space_name, resource_name));
        self.drain(now);
    }

    /// examine (§10.2): reads the request record of every resource we hold in the lockspace
    /// (or only `resource_name`), and reports [`Output::StopHolder`] for those asked for a
    /// later version. Returns how many were marked, as sanlock's examine does. A renewal that
    /// finds our bit set in another host's lease does the same for the whole lockspace.
    pub fn examine(&mut self, now: Time, space_name: Name, resource_name: Option<Name>) -> usize {
        self.tick(now);
        let count = self.start_examines(now, space_name, resource_name);
        self.drain(now);
        count
    }

    /// Hands in the completion of an I/O [`Host::poll_io`] gave out. A completion for a
    /// machine that has finished since is counted and dropped.
    pub fn handle_io(&mut self, now: Time, id: IoId, result: IoResult) {
        self.tick(now);
        let flight = self
            .in_flight
            .remove(&id.0)
            .unwrap_or_else(|| panic!("completion for {id}, which this host did not give out"));
        if flight.write.is_some() && !self.fenced.is_empty() {
            self.release_fenced(now);
        }
        if self.instances.get(&flight.target) != Some(&flight.instance) {
            self.late_completions += 1;
            return;
        }
        self.touch(&flight.target);
        match &flight.target {
            Target::Lockspace(name) => {
                if let Some(ls) = self.lockspaces.get_mut(name) {
                    ls.delta.handle_io(now, flight.id, result);
                }
            }
            Target::Resource(ls, res) => {
                let bound = self.read_bound(ls);
                if let Some(lease) = self.resources.get_mut(&(*ls, *res)) {
                    // Its next ballot read (issued from this completion) uses the latest bound.
                    lease.set_read_bound(bound);
                    lease.handle_io(now, flight.id, result);
                }
            }
            Target::Request(ls, res) => {
                if let Some(request) = self.requests.get_mut(&(*ls, *res)) {
                    request.handle_io(now, flight.id, result);
                }
            }
            Target::Examine(ls, res) => {
                if let Some(examination) = self.examines.get_mut(&(*ls, *res)) {
                    examination.handle_io(now, flight.id, result);
                }
            }
        }
        self.drain(now);
    }

    /// Completions dropped because their machine had finished.
    pub fn late_completions(&self) -> u64 {
        self.late_completions
    }

    /// Hands in the passing of time. Extra calls are harmless.
    pub fn handle_timeout(&mut self, now: Time) {
        self.tick(now);
        if !self.fenced.is_empty() {
            self.release_fenced(now);
        }
        for ls in self.lockspaces.values_mut() {
            // Bits older than set_bitmap seconds go before the renewal that is due.
            refresh_bitmap(ls, now);
            ls.delta.handle_timeout(now);
        }
        for target in self.timers.take_due(now) {
            match &target {
                Target::Lockspace(_) => unreachable!("lockspaces are not in the timer queue"),
                Target::Resource(ls, res) => {
                    let bound = self.read_bound(ls);
                    if let Some(lease) = self.resources.get_mut(&(*ls, *res)) {
                        lease.set_read_bound(bound);
                        lease.handle_timeout(now);
                    }
                }
                Target::Request(ls, res) => {
                    if let Some(request) = self.requests.get_mut(&(*ls, *res)) {
                        request.handle_timeout(now);
                    }
                }
                Target::Examine(ls, res) => {
                    if let Some(examination) = self.examines.get_mut(&(*ls, *res)) {
                        examination.handle_timeout(now);
                    }
                }
            }
            self.touched.insert(target);
        }
        let grace = Duration::from_secs(self.config.kill_grace_s);
        for (name, ls) in &mut self.lockspaces {
            let Some(next) = ls.next_stop.filter(|&t| now >= t) else {
                continue;
            };
            let graceful = match (ls.failed, ls.delta.last_success()) {
                _ if ls.removing => false,
                (Some(_), Some(last)) => {
                    grace > Duration::ZERO && now < last + ls.timeouts.id_renewal_fail() + grace
                }
                _ => false,
            };
            self.outputs.push_back(Output::StopHolders {
                space_name: *name,
                graceful,
            });
            // Once a second, as sanlock's kill loop signals each pid.
            ls.next_stop = Some(next.max(now) + Duration::from_secs(1));
        }
        self.drain(now);
    }

    /// The next I/O to run, and whose it is.
    pub fn poll_io(&mut self) -> Option<(Target, IoRequest)> {
        self.io.pop_front()
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Host::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Time> {
        let deltas = self
            .lockspaces
            .values()
            .filter_map(|ls| ls.delta.poll_timeout());
        let stops = self.lockspaces.values().filter_map(|ls| ls.next_stop);
        deltas.chain(stops).chain(self.timers.first()).min()
    }

    /// The resource lease's committed leader while held.
    pub fn held(&self, space_name: Name, resource_name: Name) -> Option<&LeaderRecord> {
        self.resources.get(&(space_name, resource_name))?.held()
    }

    /// Whether a lease operation (acquire, release, convert) on the resource is under way or the
    /// lease is held: the host still has a machine for it.
    pub fn busy(&self, space_name: Name, resource_name: Name) -> bool {
        self.resources
            .get(&(space_name, resource_name))
            .is_some_and(|l| !l.is_done())
    }

    /// Whether we hold our delta lease in the lockspace and, at `now`, its last renewal is less
    /// than 8N old: the window in which this host may act on the lockspace's leases.
    pub fn delta_live(&self, space_name: Name, now: Time) -> bool {
        self.lockspaces.get(&space_name).is_some_and(|ls| {
            ls.delta.is_live()
                && ls
                    .delta
                    .last_success()
                    .is_some_and(|t| now < t + ls.timeouts.id_renewal_fail())
        })
    }

    /// When the timestamp of our last successful acquire or renewal in a lockspace was taken.
    pub fn last_renewal(&self, space_name: Name) -> Option<Time> {
        self.lockspaces.get(&space_name)?.delta.last_success()
    }

    /// Whether we are leaving the lockspace (rem_lockspace, shutdown, a RESET): its holders
    /// are being stopped, its leases then forgotten and its delta lease released.
    pub fn leaving(&self, space_name: Name) -> bool {
        self.lockspaces
            .get(&space_name)
            .is_some_and(|ls| ls.removing)
    }

    /// Our generation in a joined lockspace.
    pub fn generation(&self, space_name: Name) -> Option<Generation> {
        self.lockspaces.get(&space_name)?.delta.generation()
    }

    /// What joining the lockspace is waiting for, while it is under way.
    pub fn space_wait(&self, space_name: Name) -> Option<crate::waits::Wait> {
        self.lockspaces.get(&space_name)?.delta.wait()
    }

    /// What acquiring the resource lease is waiting for, while it is under way.
    pub fn resource_wait(
        &self,
        space_name: Name,
        resource_name: Name,
    ) -> Option<crate::waits::Wait> {
        self.resources.get(&(space_name, resource_name))?.wait()
    }

    /// Every resource lease whose acquire is waiting, with what for.
    pub fn resource_waits(&self) -> Vec<(Name, Name, crate::waits::Wait)> {
        self.resources
            .iter()
            .filter_map(|(&(ls, res), lease)| Some((ls, res, lease.wait()?)))
            .collect()
    }

    /// The table of other hosts in a lockspace.
    pub fn hosts(&self, space_name: Name) -> Option<&HostTable> {
        self.lockspaces.get(&space_name).map(|ls| &ls.table)
    }

    /// Runs with a deliberate bug from now on (the simulator's mutant suite only).
    #[cfg(feature = "mutants")]
    pub fn set_mutant(&mut self, mutant: Option<crate::mutants::Mutant>) {
        self.config.mutant = mutant;
    }

    fn mutations(&self) -> Mutations {
        #[cfg(feature = "mutants")]
        {
            Mutations::new(self.config.mutant)
        }
        #[cfg(not(feature = "mutants"))]
        {
            Mutations::default()
        }
    }

    fn tick(&mut self, now: Time) {
        assert!(
            now >= self.last_now,
            "time went backwards: {now} < {}",
            self.last_now
        );
        self.last_now = now;
    }

    /// Numbers a new machine, and marks it for the drain that follows.
    fn new_instance(&mut self, target: Target) {
        self.next_instance += 1;
        self.touch(&target);
        self.instances.insert(target, self.next_instance);
    }

    /// Marks a machine for the next drain (lockspaces, few, are drained every time).
    fn touch(&mut self, target: &Target) {
        if !matches!(target, Target::Lockspace(_)) {
            self.touched.insert(target.clone());
        }
    }

    /// A machine is gone: its completions are late from now on, and it has no deadline.
    fn forget_machine(&mut self, target: &Target) {
        self.instances.remove(target);
        self.timers.set(target, None);
    }

    /// Gives a machine's request a host-wide id and remembers whose it is.
    fn hand_out(&mut self, target: Target, mut request: IoRequest) {
        let instance = *self
            .instances
            .get(&target)
            .expect("a machine has an instance");
        let id = IoId(self.next_io);
        self.next_io += 1;
        let write = WriteRange::of(&target, &request);
        let blocked = write.as_ref().is_some_and(|w| self.write_pending(w, id));
        self.in_flight.insert(
            id.0,
            InFlight {
                target: target.clone(),
                instance,
                id: request.id,
                write,
            },
        );
        request.id = id;
        if blocked {
            self.fenced.push_back((target, request));
        } else {
            self.io.push_back((target, request));
        }
    }

    /// Whether a write of ours other than `except` to an overlapping range has not completed.
    fn write_pending(&self, range: &WriteRange, except: IoId) -> bool {
        self.in_flight
            .iter()
            .any(|(&id, f)| id != except.0 && f.write.as_ref().is_some_and(|w| w.overlaps(range)))
    }

    /// Lets held writes go once nothing they overlap is in flight; drops those whose machine
    /// has given up on them (deadline passed: sending them now would make a stale write).
    fn release_fenced(&mut self, now: Time) {
        let mut keep = VecDeque::new();
        while let Some((target, request)) = self.fenced.pop_front() {
            if now >= request.deadline {
                self.in_flight.remove(&request.id.0);
                self.fenced_dropped += 1;
                continue;
            }
            let range = self.in_flight[&request.id.0]
                .write
                .clone()
                .expect("only writes are fenced");
            let earlier_held = keep.iter().any(|(_, r): &(Target, IoRequest)| {
                self.in_flight[&r.id.0]
                    .write
                    .as_ref()
                    .is_some_and(|w| w.overlaps(&range))
            });
            let pending = self.in_flight.iter().any(|(&id, f)| {
                id != request.id.0
                    && f.write.as_ref().is_some_and(|w| w.overlaps(&range))
                    && !self.fenced.iter().any(|(_, r)| r.id.0 == id)
            });
            if pending || earlier_held {
                keep.push_back((target, request));
            } else {
                self.io.push_back((target, request));
            }
        }
        self.fenced = keep;
    }

    /// Writes dropped unsent because an earlier write to their sectors outlived their deadline.
    pub fn fenced_writes_dropped(&self) -> u64 {
        self.fenced_dropped
    }

    /// The lockspace's latest read bound, which a lease machine is handed before each input.
    fn read_bound(&self, space_name: &Name) -> Option<ReadBound> {
        self.lockspaces.get(space_name).and_then(|ls| ls.read_bound)
    }

    fn holders_in(&self, space_name: Name) -> bool {
        holders_in(&self.resources, space_name)
    }

    /// Releases the delta lease (the machine writes only after a good renewal) and disarms
    /// the watchdog.
    fn stop_lockspace(&mut self, now: Time, space_name: Name) {
        if let Some(ls) = self.lockspaces.get_mut(&space_name) {
            self.outputs
                .push_back(Output::WatchdogDisarm { space_name });
            if ls.delta.generation().is_some() && !ls.delta.is_done() {
                ls.delta.release(now);
            } else {
                ls.delta.abort(now);
                self.lockspaces.remove(&space_name);
                self.forget_machine(&Target::Lockspace(space_name));
                self.outputs.push_back(Output::Left { space_name });
            }
        }
    }

    /// Collects every machine's I/O and events, answers what the host knows (owner and
    /// holder status from the tables), and turns delta events into the recovery timeline.
    fn drain(&mut self, now: Time) {
        let names: Vec<Name> = self.lockspaces.keys().cloned().collect();
        for name in names {
            self.drain_lockspace(now, name);
        }
        // In Target's order (resources, then requests, then examines, each by key): draining
        // one only ever touches machines later in that order (a renewal's examines).
        while let Some(target) = self.touched.pop_first() {
            let deadline = match &target {
                Target::Lockspace(_) => unreachable!("lockspaces are never touched"),
                Target::Resource(ls, res) => {
                    self.drain_resource(now, (*ls, *res));
                    self.resources
                        .get(&(*ls, *res))
                        .and_then(|l| l.poll_timeout())
                }
                Target::Request(ls, res) => {
                    self.drain_request(now, (*ls, *res));
                    self.requests
                        .get(&(*ls, *res))
                        .and_then(|r| r.poll_timeout())
                }
                Target::Examine(ls, res) => {
                    self.drain_examine((*ls, *res));
                    self.examines
                        .get(&(*ls, *res))
                        .and_then(|e| e.poll_timeout())
                }
            };
            self.timers.set(&target, deadline);
        }
    }

    /// Starts an examine of each held resource in the lockspace (or the one named) that is
    /// not being examined already.
    fn start_examines(&mut self, now: Time, space_name: Name, only: Option<Name>) -> usize {
        let Some(ls) = self.lockspaces.get(&space_name) else {
            return 0;
        };
        let timeouts = ls.timeouts;
        let mut started = Vec::new();
        let mut count = 0;
        for ((lsn, res), lease) in in_lockspace(&self.resources, space_name) {
            if only.is_some_and(|o| o != *res) {
                continue;
            }
            let Some(leader) = lease.held() else {
                continue;
            };
            count += 1;
            if self.examines.contains_key(&(*lsn, *res)) {
                continue;
            }
            let config = lease.config();
            let address = LeaseAddress {
                space_name,
                resource_name: *res,
                geometry: config.geometry,
                // Requests live on the first disk only, as in 3.8.5.
                offset: config.disks.first_offset(),
                timeouts,
            };
            started.push((*res, Examination::start(now, &address, leader.lver)));
        }
        for (res, examination) in started {
            self.examines.insert((space_name, res), examination);
            self.new_instance(Target::Examine(space_name, res));
        }
        count
    }

    /// Drops the requests and examines of a lockspace that stopped (no I/O left to wait for).
    /// Forgets every lease of a stopping lockspace without disk I/O (§6.1); an acquire or a
    /// release under way is answered (failed, or released: nothing of it is ours any more).
    fn drop_leases(&mut self, now: Time, space_name: Name) {
        let keys: Vec<(Name, Name)> = in_lockspace(&self.resources, space_name)
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            let Some(mut lease) = self.resources.remove(&key) else {
                continue;
            };
            let event = if lease.is_converting() {
                Some(paxos::Event::ConvertFailed {
                    rv: SANLK_ACQUIRE_LOCKSPACE,
                })
            } else if lease.is_acquiring() {
                Some(paxos::Event::AcquireFailed {
                    rv: SANLK_ACQUIRE_LOCKSPACE,
                })
            } else if lease.held().is_none() && !lease.is_done() {
                Some(paxos::Event::Released)
            } else {
                None
            };
            lease.abort(now);
            if let Some(event) = event {
                self.outputs.push_back(Output::Resource {
                    space_name: key.0,
                    resource_name: key.1,
                    event,
                });
            }
            self.forget_machine(&Target::Resource(key.0, key.1));
        }
        self.forget_requests(now, space_name);
    }

    fn forget_requests(&mut self, now: Time, space_name: Name) {
        let keys: Vec<(Name, Name)> = in_lockspace(&self.requests, space_name)
            .map(|(key, _)| *key)
            .chain(in_lockspace(&self.examines, space_name).map(|(key, _)| *key))
            .collect();
        for key in keys {
            if let Some(mut request) = self.requests.remove(&key) {
                request.abort(now);
                self.outputs.push_back(Output::RequestDone {
                    space_name: key.0,
                    resource_name: key.1,
                    rv: request
                        .outcome()
                        .map_or(crate::rv::SANLK_ERROR, |o| match o {
                            RequestOutcome::Done { .. } => 0,
                            RequestOutcome::Failed { rv } => rv,
                        }),
                });
                self.forget_machine(&Target::Request(key.0, key.1));
            }
            if let Some(mut examination) = self.examines.remove(&key) {
                examination.abort();
                self.forget_machine(&Target::Examine(key.0, key.1));
            }
        }
    }

    fn drain_request(&mut self, now: Time, key: (Name, Name)) {
        let (space_name, resource_name) = key;
        let Some(request) = self.requests.get_mut(&key) else {
            return;
        };
        let mut ios = Vec::new();
        while let Some(req) = request.poll_io() {
            ios.push(req);
        }
        let outcome = request.outcome();
        for req in ios {
            self.hand_out(Target::Request(space_name, resource_name), req);
        }
        let Some(outcome) = outcome else {
            return;
        };
        self.requests.remove(&key);
        self.forget_machine(&Target::Request(space_name, resource_name));
        let rv = match outcome {
            RequestOutcome::Done { notify } => {
                // §10.1 step 6: the owner learns of it from our renewals.
                if let (Some(owner), Some(ls)) = (notify, self.lockspaces.get_mut(&space_name)) {
                    if ls.geometry.contains_host(owner) {
                        ls.bit_times.insert(owner, now);
                        refresh_bitmap(ls, now);
                    }
                }
                0
            }
            RequestOutcome::Failed { rv } => rv,
        };
        self.outputs.push_back(Output::RequestDone {
            space_name,
            resource_name,
            rv,
        });
    }

    fn drain_examine(&mut self, key: (Name, Name)) {
        let (space_name, resource_name) = key;
        let Some(examination) = self.examines.get_mut(&key) else {
            return;
        };
        let mut ios = Vec::new();
        while let Some(req) = examination.poll_io() {
            ios.push(req);
        }
        let verdict = examination.verdict();
        for req in ios {
            self.hand_out(Target::Examine(space_name, resource_name), req);
        }
        let Some(verdict) = verdict else {
            return;
        };
        self.examines.remove(&key);
        self.forget_machine(&Target::Examine(space_name, resource_name));
        // The lease may have gone while the record was read.
        let graceful = match verdict {
            Examined::Nothing => return,
            Examined::Kill => false,
            Examined::Graceful => true,
        };
        if self.resources.get(&key).is_some_and(|l| l.held().is_some()) {
            self.outputs.push_back(Output::StopHolder {
                space_name,
                resource_name,
                graceful,
            });
        }
    }

    fn drain_lockspace(&mut self, now: Time, name: Name) {
        let late_expire = if self.mutations().has(Mutant::LateWatchdogExpire) {
            Duration::from_secs(60)
        } else {
            Duration::ZERO
        };
        let Some(ls) = self.lockspaces.get_mut(&name) else {
            return;
        };
        let mut requests = Vec::new();
        while let Some(req) = ls.delta.poll_io() {
            requests.push(req);
        }
        let mut gone = false;
        let mut stop = false;
        let mut examine = false;
        while let Some(event) = ls.delta.poll_event() {
            match event {
                delta::Event::Acquired { generation, .. } => {
                    self.outputs.push_back(Output::Joined {
                        space_name: name,
                        generation,
                    });
                    let renewal = ls.delta.last_success().expect("acquired");
                    self.outputs.push_back(Output::WatchdogArm {
                        space_name: name,
                        renewal,
                        expire: renewal + ls.timeouts.id_renewal_fail() + late_expire,
                    });
                    if ls.removing {
                        ls.delta.release(now);
                    }
                }
                delta::Event::AcquireFailed { rv } => {
                    self.outputs.push_back(Output::JoinFailed {
                        space_name: name,
                        rv,
                    });
                    gone = true;
                }
                delta::Event::Renewed {
                    lockspace,
                    timestamp_s,
                    read_ms,
                    write_ms,
                    read_bound,
                } => {
                    self.outputs.push_back(Output::Renewal {
                        space_name: name,
                        outcome: Ok(RenewalTimes {
                            timestamp_s,
                            read_ms,
                            write_ms,
                        }),
                    });
                    examine |= scan_hosts(
                        &mut self.outputs,
                        ls,
                        name,
                        now,
                        &lockspace,
                        ScanKind::Renewal,
                    );
                    ls.mailbox.written(ls.delta.written_mailbox());
                    scan_mailbox(ls, now, &lockspace, self.config.event_poll);
                    ls.read_bound = Some(read_bound);
                    // A failed lockspace stays failed: a later success does not feed wdmd.
                    if ls.failed.is_none() {
                        let renewal = ls.delta.last_success().expect("renewed");
                        self.outputs.push_back(Output::WatchdogArm {
                            space_name: name,
                            renewal,
                            expire: renewal + ls.timeouts.id_renewal_fail() + late_expire,
                        });
                    }
                }
                delta::Event::Peeked {
                    lockspace,
                    read_bound,
                } => {
                    examine |=
                        scan_hosts(&mut self.outputs, ls, name, now, &lockspace, ScanKind::Peek);
                    scan_mailbox(ls, now, &lockspace, self.config.event_poll);
                    if read_bound.is_some() {
                        ls.read_bound = read_bound;
                    }
                }
                delta::Event::RenewalFailed { rv, .. } => {
                    self.outputs.push_back(Output::Renewal {
                        space_name: name,
                        outcome: Err(rv),
                    });
                }
                delta::Event::RenewalWarning => {
                    self.outputs
                        .push_back(Output::RenewalWarning { space_name: name });
                }
                delta::Event::Expired => {
                    if ls.failed.is_none() {
                        ls.failed = Some(now);
                        self.outputs
                            .push_back(Output::LockspaceFailed { space_name: name });
                        if holders_in(&self.resources, name) {
                            self.outputs.push_back(Output::StopHolders {
                                space_name: name,
                                graceful: self.config.kill_grace_s > 0,
                            });
                            ls.next_stop = Some(now + Duration::from_secs(1));
                        } else {
                            // Nothing uses it: it stops at once (§6.3).
                            stop = true;
                        }
                    }
                }
                delta::Event::Released => {
                    self.outputs.push_back(Output::Left { space_name: name });
                    gone = true;
                }
            }
        }
        while let Some(event) = ls.mailbox.poll_event() {
            self.outputs.push_back(Output::Mail {
                space_name: name,
                event,
            });
        }
        // What the mailbox changed may have renewed at once (renew_soon from a scan).
        while let Some(req) = ls.delta.poll_io() {
            requests.push(req);
        }
        for req in requests {
            self.hand_out(Target::Lockspace(name), req);
        }
        if examine && !gone && !stop {
            self.start_examines(now, name, None);
        }
        if gone {
            self.drop_leases(now, name);
            self.lockspaces.remove(&name);
            self.forget_machine(&Target::Lockspace(name));
        } else if stop {
            self.drop_leases(now, name);
            self.stop_lockspace(now, name);
            // The delta machine reports its release (no write after a failed renewal).
            self.drain_lockspace(now, name);
        }
    }

    fn drain_resource(&mut self, now: Time, key: (Name, Name)) {
        let (space_name, resource_name) = key;
        let Some(lease) = self.resources.get_mut(&key) else {
            return;
        };
        let mut requests = Vec::new();
        while let Some(req) = lease.poll_io() {
            requests.push(req);
        }
        let table = self.lockspaces.get(&space_name).map(|ls| &ls.table);
        let usable = self
            .lockspaces
            .get(&space_name)
            .is_some_and(|ls| ls.usable(now));
        let mut finished = false;
        while let Some(event) = lease.poll_event() {
            match event {
                paxos::Event::NeedOwnerStatus { host_id } => {
                    let status = table.and_then(|t| t.status(host_id)).cloned();
                    lease.owner_status(now, status.as_ref());
                }
                paxos::Event::NeedHostStatus { hosts } => {
                    let statuses = hosts
                        .iter()
                        .map(|&h| table.and_then(|t| t.status(h)).cloned())
                        .collect();
                    lease.host_statuses(now, statuses);
                }
                paxos::Event::Acquired { .. } if !usable => {
                    // The lockspace failed or is going while we acquired (a stalled daemon
                    // can resume to both at once): others may already count us dead, and
                    // its holders may already be gone. Never hand out the lease.
                    lease.abort(now);
                    finished = true;
                    self.outputs.push_back(Output::Resource {
                        space_name,
                        resource_name,
                        event: paxos::Event::AcquireFailed {
                            rv: SANLK_ACQUIRE_LOCKSPACE,
                        },
                    });
                }
                event => {
                    finished |= matches!(
                        event,
                        paxos::Event::AcquireFailed { .. }
                            | paxos::Event::Released
                            | paxos::Event::ReleaseFailed { .. }
                            | paxos::Event::ReleaseRetried { .. }
                    );
                    self.outputs.push_back(Output::Resource {
                        space_name,
                        resource_name,
                        event,
                    });
                }
            }
        }
        // Answering a status request may have produced I/O.
        while let Some(req) = lease.poll_io() {
            requests.push(req);
        }
        let done = finished && lease.is_done();
        if lease.held().is_some() && requests.is_empty() {
            lease.shed();
        }
        for req in requests {
            self.hand_out(Target::Resource(space_name, resource_name), req);
        }
        if done {
            self.resources.remove(&key);
            self.forget_machine(&Target::Resource(space_name, resource_name));
        }
    }
}

/// The machines of one lockspace, found by key range rather than by walking every lease.
fn in_lockspace<V>(
    machines: &BTreeMap<(Name, Name), V>,
    space_name: Name,
) -> impl Iterator<Item = (&(Name, Name), &V)> {
    machines
        .range((space_name, Name::EMPTY)..)
        .take_while(move |((ls, _), _)| *ls == space_name)
}

/// Whether any lease of the lockspace is held by a process (a lease being converted is still
/// held by its process).
fn holders_in(resources: &BTreeMap<(Name, Name), Box<PaxosLease>>, space_name: Name) -> bool {
    in_lockspace(resources, space_name)
        .any(|(_, lease)| lease.held().is_some() || lease.is_converting())
}

impl Lockspace {
    /// Whether leases may be acquired in it at `now`: our delta lease is held, its last
    /// renewal is less than 8N old (checked against the clock, not only the last timeout
    /// handled), and it is neither failed nor being removed.
    fn usable(&self, now: Time) -> bool {
        self.failed.is_none()
            && !self.removing
            && self.delta.is_live()
            && self
                .delta
                .last_success()
                .is_some_and(|t| now < t + self.timeouts.id_renewal_fail())
    }
}

/// Scans the other hosts' sectors (a renewal's or a peek's read): events aimed at us become
/// outputs; returns whether a request examine is due.
fn scan_hosts(
    outputs: &mut VecDeque<Output>,
    ls: &mut Lockspace,
    space_name: Name,
    now: Time,
    area: &[u8],
    kind: ScanKind,
) -> bool {
    let mut examine = false;
    let generation = ls.delta.generation();
    for notice in ls.table.scan(now, area, kind) {
        match notice {
            Notice::Examine { .. } => examine = true,
            Notice::Message {
                from,
                from_generation,
                seq,
                event,
            } => {
                if let Some(ours) = generation {
                    ls.mailbox.received(from, from_generation, seq, event, ours);
                }
            }
            notice => outputs.push_back(Output::HostEvent { space_name, notice }),
        }
    }
    examine
}

/// After a read of the lockspace: the mailbox frees the slots of acks no longer waited for
/// and looks for the ack of our message.
fn scan_mailbox(ls: &mut Lockspace, now: Time, area: &[u8], event_poll: bool) {
    let Some(generation) = ls.delta.generation() else {
        return;
    };
    ls.mailbox
        .scan(now, area, ls.geometry, generation, &ls.table);
    // Whatever changed the mailbox (this scan, or the messages the scan of the hosts found),
    // the next write carries it.
    sync_mailbox(ls, now, event_poll);
}

/// Hands the mailbox's block to the delta lease, and its current message's event and the
/// target's bit (set once per message, expiring as set_event's do), when either changed;
/// with `event_poll` a change goes out in a renewal made now.
fn sync_mailbox(ls: &mut Lockspace, now: Time, event_poll: bool) {
    let current = ls.mailbox.current();
    let block = ls.mailbox.block();
    if current.map(|m| m.seq) == ls.mail_seq && ls.delta.mailbox() == Some(block) {
        return;
    }
    if current.map(|m| m.seq) != ls.mail_seq {
        match current {
            Some(msg) => {
                ls.host_event = msg.event;
                ls.event_set_at = Some(now);
                ls.bit_times.insert(msg.target, now);
                refresh_bitmap(ls, now);
            }
            None => ls.host_event = HostEvent::default(),
        }
        ls.delta.set_host_event(ls.host_event);
        ls.mail_seq = current.map(|m| m.seq);
    }
    ls.delta.set_mailbox(Some(block));
    if event_poll {
        ls.delta.renew_soon(now);
    }
}

/// Whether the lockspace's one event (set_event's, or a message's) was set less than
/// set_bitmap seconds ago (whole seconds, as sanlock's monotime).
fn event_pending(ls: &Lockspace, now: Time) -> bool {
    ls.host_event.event != 0
        && ls
            .event_set_at
            .is_some_and(|at| now.secs().saturating_sub(at.secs()) < ls.set_bitmap.as_secs())
}

/// Puts the bits asked for within set_bitmap seconds (never ours) into the delta lease's next
/// renewals, forgetting older ones (lockspace.c `create_bitmap_and_extra`).
fn refresh_bitmap(ls: &mut Lockspace, now: Time) {
    // Whole seconds, as sanlock's monotime: a bit goes once more than the window has passed.
    let window = ls.set_bitmap.as_secs();
    ls.bit_times
        .retain(|_, at| now.secs().saturating_sub(at.secs()) <= window);
    let ours = ls.delta.config().host_id;
    let mut bitmap = HostBitmap::EMPTY;
    for &h in ls.bit_times.keys().filter(|&&h| h != ours) {
        bitmap.set(h);
    }
    ls.delta.set_bitmap(bitmap);
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
