//! The exhaustive checker's world: a few hosts on one disk, as a value. Every way the world can
//! go on from a state is a [`Step`]; [`Model::successors`] lists them all and runs each on a
//! copy. Time is part of the state: it advances only to the next instant some host or
//! watchdog waits for, and an I/O completes at any instant before its deadline (or, as a fault,
//! never).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sanlock_core::flight::{FlightId, Flights};
use sanlock_core::host::Output;
use sanlock_core::io::{IoError, IoOp};
use sanlock_core::ondisk::leader::{DELTA_DISK_MAGIC, PAXOS_DISK_MAGIC};
use sanlock_core::ondisk::{
    lockspace_init, resource_init, AlignSize, Geometry, Name, RawLeader, ResourceInit, SectorSize,
};
use sanlock_core::paxos;
use sanlock_core::timeouts::WATCHDOG_FIRE_TIMEOUT_S;
use sanlock_core::{HostId, Time};
use sanlock_machine::daemon::config::DaemonConfig;
use sanlock_machine::daemon::{Action, Call, DiskNo, Engine, Happened, Input, ReplyTo, Waiter};
use sanlock_machine::watchdog::{Keeper, Order};
use sanlock_machine::wire::{Header, WireResource};

use super::fingerprint::{intern, Fingerprinter, RECORD};
use super::scenario::Scenario;
use crate::invariants::{Broken, Invariants};
use crate::mail::Ledger;
use crate::requests::{self, RES_PERSISTENT, RES_SHARED};
use crate::world::TIMESTAMP_OFFSET;

mod daemon;
mod messages;

use daemon::{acquiring, Cmd, WORKER_CI};

const SECTOR: usize = 4096;
const MIB: u64 = 1 << 20;

/// What the checker explores: a scenario and the disk image every run starts from.
pub struct Model {
    scenario: Scenario,
    base: Arc<Vec<u8>>,
    /// The base image's fingerprint: part of every interned read's key, so that models with
    /// other images (other scenarios, other host counts) never share a read.
    base_key: u128,
    space: Name,
    resource: Name,
    hosts: usize,
}

/// One transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// I/O `id` of `host` completes now (for a read: seeing the disk as it is now, or as it was
    /// when the read started).
    Complete {
        /// Which.
        flight: FlightId,
        /// A read that sees the disk as it was when issued.
        as_issued: bool,
    },
    /// The I/O fails with EIO (a write does not land).
    Fail {
        /// Which.
        flight: FlightId,
    },
    /// The I/O is slow: it may complete at any later instant before its deadline.
    Slow {
        /// Which.
        flight: FlightId,
    },
    /// The I/O hangs past its deadline; a write may still land later.
    Hang {
        /// Which.
        flight: FlightId,
    },
    /// A write its host no longer waits for (hung, or its host was reset) lands.
    LandLate {
        /// Which.
        flight: FlightId,
    },
    /// A read of a leader sector returns it with its timestamp zeroed (checksum now wrong).
    Corrupt {
        /// Which.
        flight: FlightId,
    },
    /// The lease's last disk breaks, for every host, for the rest of the run.
    BreakDisk {
        /// How.
        how: DiskBreak,
    },
    /// The host loses its disk: every I/O it has or starts hangs and never lands.
    LoseDisk {
        /// Whose.
        host: usize,
    },
    /// The host's process asks for the resource.
    Acquire {
        /// Whose.
        host: usize,
    },
    /// The host's process releases the resource.
    Release {
        /// Whose.
        host: usize,
    },
    /// The host's process dies, with its acquire under way or holding the resource.
    Die {
        /// Whose.
        host: usize,
    },
    /// The host's process, stopped by its daemon, exits.
    Exit {
        /// Whose.
        host: usize,
    },
    /// The host sends host0 a message (docs/MESSAGES.md), waiting until it resolves.
    Message {
        /// Whose.
        host: usize,
    },
    /// The host fences host0.
    Fence {
        /// Whose.
        host: usize,
    },
    /// Time moves to the next instant someone waits for.
    Advance {
        /// World time, ms.
        to_ms: u64,
    },
}

/// How a multi-disk lease's faulty disk breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiskBreak {
    /// Every I/O on it fails with EIO; a write lands nothing.
    Fails,
    /// Every I/O on it hangs and never lands.
    Hangs,
    /// It is replaced by a zeroed disk, which then works.
    Replaced,
}

/// An I/O as a counterexample names it.
struct Io<'a>(&'a FlightId);

impl fmt::Display for Io<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let FlightId {
            host,
            incarnation,
            io,
        } = self.0;
        write!(f, "host{host} io#{}", io.0)?;
        if *incarnation > 0 {
            write!(f, " (before reset {incarnation})")?;
        }
        Ok(())
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Complete { flight, as_issued } => write!(
                f,
                "{} completes{}",
                Io(flight),
                if *as_issued {
                    " (read sees the disk as when issued)"
                } else {
                    ""
                }
            ),
            Step::Fail { flight } => write!(f, "{} fails with EIO", Io(flight)),
            Step::Slow { flight } => write!(f, "{} is slow", Io(flight)),
            Step::Hang { flight } => write!(f, "{} hangs past its deadline", Io(flight)),
            Step::LandLate { flight } => write!(f, "{}, a write, lands late", Io(flight)),
            Step::Corrupt { flight } => {
                write!(f, "{} returns a leader with a zeroed timestamp", Io(flight))
            }
            Step::BreakDisk { how } => write!(f, "the lease's last disk {how:?}"),
            Step::LoseDisk { host } => write!(f, "host{host} loses its disk"),
            Step::Acquire { host } => write!(f, "host{host} acquires"),
            Step::Release { host } => write!(f, "host{host}'s holder releases"),
            Step::Die { host } => write!(f, "host{host}'s process dies"),
            Step::Exit { host } => write!(f, "host{host}'s stopped process exits"),
            Step::Message { host } => write!(f, "host{host} messages host0"),
            Step::Fence { host } => write!(f, "host{host} fences host0"),
            Step::Advance { to_ms } => write!(f, "time advances to {:.3}s", *to_ms as f64 / 1e3),
        }
    }
}

/// A whole world at one instant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    now_ms: u64,
    hosts: Vec<HostState>,
    /// Sectors written so far (the rest is the base image).
    disk: BTreeMap<u32, Arc<[u8]>>,
    /// I/O issued and not yet landed or completed (core's one model of them).
    flights: Flights<Fate>,
    faults_left: u8,
    /// The lease's last disk, once broken.
    broken: Option<DiskBreak>,
    inv: Invariants,
    /// What the daemons delivered and whom fences reported done (crate::mail).
    ledger: Ledger,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct HostState {
    /// The daemon's machine (with the core Host it owns), while the host is up.
    daemon: Option<Engine>,
    /// The daemon was asked to join the lockspace (at the scenario's join time).
    join_asked: bool,
    /// The lockspace's add was answered 0: the process may ask for leases.
    joined: bool,
    /// Some(shared) while its process holds the resource.
    holding: Option<bool>,
    busy: bool,
    acquires_left: u8,
    /// What wdmd was last told: the armed expire on this host's clock (whole seconds).
    armed: Option<Time>,
    lost_disk: bool,
    /// An operation met a fault: its traces excuse a later refusal.
    faulted: bool,
    /// The host's last operation on the resource was a release that succeeded.
    released_clean: bool,
    /// Hosts that had released the lease cleanly and were idle when our acquire started.
    idle_owners: u8,
    /// Requests waiting for the daemon's reply (the add, the working process's command).
    pending: BTreeMap<ReplyTo, Cmd>,
    /// The next request's reply id (per host: equal histories give equal ids).
    next_reply: u64,
    /// Within a turn: signals follow a StopHolders within (`Some(true)`) or after the grace,
    /// or a request (`None`); and whether a StopHolders came.
    stop_context: Option<bool>,
    stop_check: bool,
    /// The working process lives.
    alive: bool,
    /// Its daemon stopped it (a signal or its killpath); it exits at a later step.
    stopped: bool,
    /// The lockspace failed and has not been joined again.
    failed: bool,
    /// Messages and fences still to send to host0.
    messages_left: u8,
    fences_left: u8,
}

/// What the checker has decided about an I/O so far.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Fate {
    /// For reads: the written sectors when the read started.
    issued: Option<BTreeMap<u32, Arc<[u8]>>>,
    /// May complete after time advances (else it completes at the instant it was issued).
    slow: bool,
}

/// A broken property and how the world got there.
pub type Violation = String;

impl Model {
    /// The model of `scenario` on `hosts` hosts.
    pub fn new(hosts: usize, scenario: Scenario) -> Model {
        assert!((2..=3).contains(&hosts), "2 or 3 hosts");
        let space = Name::new(b"CHECK").expect("short");
        let resource = Name::new(b"R0").expect("short");
        let g = geometry();
        let ls = lockspace_init(g, space, scenario.lockspace_io_timeout_s() as u16);
        let mut image = ls.area;
        image[..SECTOR].copy_from_slice(&ls.commit_sector);
        image.resize(MIB as usize, 0);
        let mut lease = resource_init(&ResourceInit {
            geometry: g,
            space_name: space,
            resource_name: resource,
            num_hosts: hosts as u64,
            clear_at_s: None,
        });
        lease.resize(MIB as usize, 0);
        for _ in 0..scenario.lease_disks {
            image.extend_from_slice(&lease);
        }
        for sector in image.chunks(SECTOR) {
            assert!(
                sector[RECORD..].iter().all(|&b| b == 0),
                "records fit 512 bytes"
            );
        }
        Model {
            scenario,
            base_key: Fingerprinter::of(&image),
            base: Arc::new(image),
            space,
            resource,
            hosts,
        }
    }

    /// The scenario explored.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Hosts in the world.
    pub fn hosts(&self) -> usize {
        self.hosts
    }

    fn local(&self, h: usize, now_ms: u64) -> Time {
        Time::new(Duration::from_millis(now_ms + self.scenario.offset_ms(h)))
    }

    fn global_ms(&self, h: usize, t: Time) -> u64 {
        let ms = t.since_boot().as_nanos().div_ceil(1_000_000) as u64;
        ms.saturating_sub(self.scenario.offset_ms(h))
    }

    /// The world at time zero: every host has asked to join.
    pub fn initial(&self) -> Result<State, Violation> {
        let mut state = State {
            now_ms: 0,
            hosts: (0..self.hosts)
                .map(|h| HostState {
                    daemon: None,
                    join_asked: false,
                    joined: false,
                    holding: None,
                    busy: false,
                    acquires_left: self.scenario.acquires(h),
                    armed: None,
                    lost_disk: false,
                    faulted: false,
                    released_clean: false,
                    idle_owners: 0,
                    pending: BTreeMap::new(),
                    next_reply: 0,
                    stop_context: None,
                    stop_check: false,
                    alive: true,
                    stopped: false,
                    failed: false,
                    messages_left: self.scenario.messages[h],
                    fences_left: self.scenario.fences[h],
                })
                .collect(),
            disk: BTreeMap::new(),
            flights: Flights::new(self.hosts, SECTOR),
            faults_left: self.scenario.faults,
            broken: None,
            inv: Invariants::new(1),
            ledger: Ledger::default(),
        };
        for h in 0..self.hosts {
            let name = Name::new(format!("host{h}").as_bytes()).expect("short");
            let config = DaemonConfig {
                use_watchdog: true,
                kill_grace_s: self.scenario.kill_grace_s,
                ..DaemonConfig::default()
            };
            let keeper = Keeper::Wdmd(Default::default());
            let now = self.local(h, 0);
            let mut engine = Engine::new(config, name, h as u64 + 1, keeper, now);
            engine.observe_outputs();
            #[cfg(feature = "mutants")]
            {
                engine.set_core_mutant(self.scenario.mutant);
                engine.set_mutant(self.scenario.daemon_mutant);
            }
            state.hosts[h].daemon = Some(engine);
            self.register_clients(&mut state, h)?;
            if self.scenario.join_at_ms(h) == 0 {
                state.hosts[h].join_asked = true;
                self.add_lockspace(&mut state, h)?;
            }
        }
        Ok(state)
    }

    /// Every step possible from `state`, in a fixed order.
    pub fn steps(&self, state: &State) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut next_of_host = [false; 3];
        for (flight, f) in state.flights.iter() {
            if !f.owed() {
                // Hung, or its host was reset: a write may still land.
                if f.unlanded().next().is_some() {
                    steps.push(Step::LandLate { flight });
                }
                continue;
            }
            if self.scenario.in_order {
                // Flights are listed by host and then issue order: only the oldest goes next.
                if std::mem::replace(&mut next_of_host[flight.host], true) {
                    continue;
                }
            }
            if self.on_broken(state, f.offset(), DiskBreak::Fails) {
                // The failed disk answers nothing else.
                steps.push(Step::Fail { flight });
                continue;
            }
            steps.push(Step::Complete {
                flight,
                as_issued: false,
            });
            let changed = f.extra.issued.as_ref().is_some_and(|before| {
                let range = sector_range(f.offset(), f.len());
                before.range(range.clone()).ne(state.disk.range(range))
            });
            if changed {
                steps.push(Step::Complete {
                    flight,
                    as_issued: true,
                });
            }
            if state.faults_left > 0 {
                let s = &self.scenario;
                if s.fail {
                    steps.push(Step::Fail { flight });
                }
                if s.hang {
                    steps.push(Step::Hang { flight });
                }
                if s.slow && !f.extra.slow {
                    steps.push(Step::Slow { flight });
                }
                if s.corrupt && !f.is_write() && self.leader_at(state, f.offset()) {
                    steps.push(Step::Corrupt { flight });
                }
            }
        }
        // The disk breaks before the hosts first touch the lease (mid-run breaks, a
        // replacement while ballots are under way above all, are the simulator's: here they
        // would multiply a state space already three disks wide).
        let lease_untouched = state
            .disk
            .range(sector_range(MIB, MIB as usize))
            .next()
            .is_none()
            && state.flights.iter().all(|(_, f)| f.offset() < MIB);
        if self.scenario.disk_fault && state.broken.is_none() && lease_untouched {
            for how in [DiskBreak::Fails, DiskBreak::Hangs, DiskBreak::Replaced] {
                steps.push(Step::BreakDisk { how });
            }
        }
        for (h, hs) in state.hosts.iter().enumerate() {
            if hs.daemon.is_none() {
                continue;
            }
            if state.faults_left > 0
                && self.scenario.lose_disk
                && state.now_ms <= self.scenario.lose_disk_by_s * 1000
                && !hs.lost_disk
                && hs.holding.is_some()
            {
                steps.push(Step::LoseDisk { host: h });
            }
            if hs.joined
                && hs.alive
                && hs.holding.is_none()
                && !hs.busy
                && hs.acquires_left > 0
                && self.scenario.may_acquire_at(h, state.now_ms)
            {
                steps.push(Step::Acquire { host: h });
            }
            if hs.alive && hs.holding.is_some() && !hs.busy && self.scenario.releases(h) {
                steps.push(Step::Release { host: h });
            }
            if hs.alive && self.scenario.dies(h) && (hs.holding.is_some() || acquiring(hs)) {
                steps.push(Step::Die { host: h });
            }
            if hs.alive && hs.stopped {
                steps.push(Step::Exit { host: h });
            }
            let mail = h != 0
                && hs.joined
                && (self.scenario.mail_from_s * 1000..=self.scenario.mail_until_s * 1000)
                    .contains(&state.now_ms);
            if mail && hs.messages_left > 0 {
                steps.push(Step::Message { host: h });
            }
            if mail && hs.fences_left > 0 {
                steps.push(Step::Fence { host: h });
            }
        }
        if let Some(to_ms) = self.next_instant(state) {
            steps.push(Step::Advance { to_ms });
        }
        steps
    }

    /// The next instant a host or a watchdog waits for, if it comes before the horizon and
    /// every I/O still expected has completed by then.
    fn next_instant(&self, state: &State) -> Option<u64> {
        // A stopped process exits within the instant (in any order with the I/O then in
        // flight): that keeps the time points few, and its daemon's decisions in between are
        // what the checks are about.
        if state.hosts.iter().any(|hs| hs.alive && hs.stopped) {
            return None;
        }
        let mut next: Option<u64> = None;
        for (h, hs) in state.hosts.iter().enumerate() {
            let Some(engine) = &hs.daemon else { continue };
            let mut consider = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
            if !hs.join_asked {
                consider(self.scenario.join_at_ms(h));
            }
            consider(
                self.global_ms(h, engine.poll_timeout())
                    .max(state.now_ms + 1),
            );
            if let Some(expire) = hs.armed {
                consider(self.reset_at(h, expire));
            }
        }
        let next = next?;
        // An I/O completes at the instant it was issued unless a fault made it slow or hung
        // (or its host is gone): that keeps the time points few (see docs/SIMULATION.md).
        let in_time = state.flights.iter().all(|(id, f)| {
            !f.owed() || (f.extra.slow && self.global_ms(id.host, f.deadline()) > next)
        });
        (next <= self.scenario.horizon_s * 1000 && in_time).then_some(next)
    }

    /// When a host armed until `expire` is reset by its watchdog at the latest.
    fn reset_at(&self, h: usize, expire: Time) -> u64 {
        self.global_ms(h, expire) + WATCHDOG_FIRE_TIMEOUT_S * 1000
    }

    fn leader_at(&self, state: &State, offset: u64) -> bool {
        let bytes = self.read(&state.disk, offset, SECTOR);
        RawLeader::parse(&bytes)
            .is_ok_and(|l| [DELTA_DISK_MAGIC, PAXOS_DISK_MAGIC].contains(&l.magic))
    }

    /// A read of the disk as `disk` makes it; large areas are interned, so that equal reads
    /// share one buffer and fingerprint cheaply.
    fn read_bytes(&self, disk: &BTreeMap<u32, Arc<[u8]>>, offset: u64, len: usize) -> Bytes {
        if len < 64 * 1024 {
            return Bytes::from(self.read(disk, offset, len));
        }
        let written: Vec<(&u32, &Arc<[u8]>)> = disk.range(sector_range(offset, len)).collect();
        let key = Fingerprinter::of(&(self.base_key, offset, len, written));
        intern(key, || Bytes::from(self.read(disk, offset, len)))
    }

    fn read(&self, disk: &BTreeMap<u32, Arc<[u8]>>, offset: u64, len: usize) -> Vec<u8> {
        let start = offset as usize;
        let mut out = self.base[start..start + len].to_vec();
        for (&s, bytes) in disk.range(sector_range(offset, len)) {
            let at = s as usize * SECTOR - start;
            out[at..at + SECTOR].copy_from_slice(bytes);
        }
        out
    }

    /// Runs `step` on a copy of `state`.
    pub fn apply(&self, state: &State, step: &Step) -> Result<State, Violation> {
        let mut s = state.clone();
        match *step {
            Step::Complete { flight, as_issued } => {
                let f = s.flights.get(flight).expect("listed");
                let result = if f.is_write() {
                    self.land(&mut s, flight)?;
                    Ok(Bytes::new())
                } else {
                    match (&f.extra.issued, as_issued) {
                        (Some(before), true) => Ok(self.read_bytes(before, f.offset(), f.len())),
                        _ => Ok(self.read_bytes(&s.disk, f.offset(), f.len())),
                    }
                };
                self.complete(&mut s, flight, result)?;
            }
            Step::Fail { flight } => {
                let offset = s.flights.get(flight).expect("listed").offset();
                if !self.on_broken(&s, offset, DiskBreak::Fails) {
                    s.faults_left -= 1;
                }
                s.hosts[flight.host].faulted |= self.on_lease(&s, flight);
                s.flights.never_lands(flight).map_err(|e| e.to_string())?;
                self.complete(&mut s, flight, Err(IoError::Failed(5)))?;
            }
            Step::Corrupt { flight } => {
                s.faults_left -= 1;
                s.hosts[flight.host].faulted |= self.on_lease(&s, flight);
                let f = s.flights.get(flight).expect("listed");
                let mut data = self.read(&s.disk, f.offset(), f.len());
                data[TIMESTAMP_OFFSET..TIMESTAMP_OFFSET + 8].fill(0);
                self.complete(&mut s, flight, Ok(Bytes::from(data)))?;
            }
            Step::Slow { flight } => {
                s.faults_left -= 1;
                s.flights.extra_mut(flight).expect("listed").slow = true;
            }
            Step::Hang { flight } => {
                s.faults_left -= 1;
                s.hosts[flight.host].faulted |= self.on_lease(&s, flight);
                s.flights
                    .never_completes(flight)
                    .map_err(|e| e.to_string())?;
            }
            Step::LandLate { flight } => self.land(&mut s, flight)?,
            Step::BreakDisk { how } => {
                s.broken = Some(how);
                match how {
                    DiskBreak::Fails => {}
                    DiskBreak::Hangs => {
                        for id in self.flights_on_broken(&s, how) {
                            s.flights.never_lands(id).map_err(|e| e.to_string())?;
                            s.flights.never_completes(id).map_err(|e| e.to_string())?;
                        }
                    }
                    DiskBreak::Replaced => {
                        let zero: Arc<[u8]> = Arc::from(vec![0u8; SECTOR]);
                        let first = u64::from(self.scenario.lease_disks) * MIB;
                        for sector in sector_range(first, MIB as usize) {
                            s.disk.insert(sector, zero.clone());
                        }
                    }
                }
            }
            Step::LoseDisk { host } => {
                s.faults_left -= 1;
                s.hosts[host].lost_disk = true;
                s.hosts[host].faulted = true;
                Self::lose_all(&mut s.flights, host);
            }
            Step::Acquire { host } => {
                let idle = (0..self.hosts)
                    .filter(|&o| {
                        let os = &s.hosts[o];
                        os.released_clean && os.holding.is_none() && !os.busy
                    })
                    .fold(0u8, |mask, o| mask | 1 << o);
                let persistent = self.scenario.persistent[host];
                let hs = &mut s.hosts[host];
                hs.idle_owners = idle;
                hs.acquires_left -= 1;
                hs.busy = true;
                hs.faulted = false;
                let mut flags = 0;
                if self.scenario.shared(host) {
                    flags |= RES_SHARED;
                }
                if persistent {
                    flags |= RES_PERSISTENT;
                }
                let (header, call) = requests::acquire(self.wire_resource(flags));
                self.call(
                    &mut s,
                    host,
                    WORKER_CI,
                    header,
                    call,
                    Cmd::Acquire { persistent },
                )?;
            }
            Step::Release { host } => {
                s.inv.dropped(0, host);
                let hs = &mut s.hosts[host];
                hs.holding = None;
                hs.faulted = false;
                let (header, call) = requests::release(self.wire_resource(0));
                self.call(&mut s, host, WORKER_CI, header, call, Cmd::Release)?;
            }
            Step::Die { host } => self.die(&mut s, host)?,
            Step::Exit { host } => self.stopped_exit(&mut s, host)?,
            Step::Message { host } => {
                s.hosts[host].messages_left -= 1;
                self.send_message(&mut s, host, false)?;
            }
            Step::Fence { host } => {
                s.hosts[host].fences_left -= 1;
                self.send_message(&mut s, host, true)?;
            }
            Step::Advance { to_ms } => {
                s.now_ms = to_ms;
                for h in 0..self.hosts {
                    if let Some(expire) = s.hosts[h].armed {
                        if self.reset_at(h, expire) <= to_ms {
                            // The watchdog resets the host: it and its process are gone.
                            s.inv.dropped(0, h);
                            let hs = &mut s.hosts[h];
                            hs.daemon = None;
                            hs.holding = None;
                            hs.armed = None;
                            hs.joined = false;
                            hs.alive = false;
                            hs.pending.clear();
                            // Its writes on their way may still land; nothing completes to it.
                            s.flights.crash(h);
                            Self::settle(&mut s.flights, h);
                        }
                    }
                }
                for h in 0..self.hosts {
                    let due = self.scenario.join_at_ms(h) <= to_ms;
                    if due && !s.hosts[h].join_asked && s.hosts[h].daemon.is_some() {
                        s.hosts[h].join_asked = true;
                        self.add_lockspace(&mut s, h)?;
                    }
                }
                for h in 0..self.hosts {
                    let now = self.local(h, to_ms);
                    let due = s.hosts[h]
                        .daemon
                        .as_ref()
                        .is_some_and(|d| d.poll_timeout() <= now);
                    if due {
                        self.input(&mut s, h, Input::Timer)?;
                    }
                }
            }
        }
        self.check_fenced(&s)?;
        Ok(s)
    }

    /// Flight `flight` completes with `result`; its host's daemon hears of it if still up.
    fn complete(
        &self,
        s: &mut State,
        flight: FlightId,
        result: sanlock_core::io::IoResult,
    ) -> Result<(), Violation> {
        let delivery = s
            .flights
            .complete(flight, result)
            .map_err(|e| e.to_string())?;
        match delivery {
            Some(d) => self.input(s, d.host, Input::IoDone(vec![(d.io, d.result)])),
            None => Ok(()),
        }
    }

    /// Every sector of write `flight` still to land lands now.
    fn land(&self, s: &mut State, flight: FlightId) -> Result<(), Violation> {
        for landing in s.flights.land_all(flight).map_err(|e| e.to_string())? {
            let sector = (landing.offset as usize / SECTOR) as u32;
            let old = (self.mail() && (sector as usize) < self.hosts)
                .then(|| self.read(&s.disk, u64::from(sector) * SECTOR as u64, SECTOR));
            s.disk.insert(sector, Arc::from(&landing.bytes[..]));
            if let Some(old) = old {
                self.check_acks_kept(s, &old, &landing.bytes)?;
            }
        }
        Ok(())
    }

    /// A host's flights on a lost disk: none lands nor completes.
    fn lose_all(flights: &mut Flights<Fate>, host: usize) {
        let ids: Vec<FlightId> = flights
            .iter()
            .filter(|(id, _)| id.host == host)
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            flights.never_lands(id).expect("listed");
            flights.never_completes(id).expect("listed");
        }
    }

    /// After a reset: the reads of the host's that nobody waits for are gone (its writes stay,
    /// to land or not).
    fn settle(flights: &mut Flights<Fate>, host: usize) {
        let ids: Vec<FlightId> = flights
            .iter()
            .filter(|(id, f)| id.host == host && !f.is_write())
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            flights.never_completes(id).expect("listed");
        }
    }

    /// The I/O is on the resource lease's disk area (not the lockspace's).
    fn on_lease(&self, s: &State, flight: FlightId) -> bool {
        s.flights.get(flight).is_some_and(|f| f.offset() >= MIB)
    }

    /// Hands host `h`'s daemon `input`, then carries out what it decided.
    pub(super) fn input(&self, s: &mut State, h: usize, input: Input) -> Result<(), Violation> {
        let now = self.local(h, s.now_ms);
        let Some(engine) = s.hosts[h].daemon.as_mut() else {
            return Ok(());
        };
        engine.handle(now, input);
        self.drain(s, h)
    }

    /// Hands host `h`'s daemon request `call` on connection `ci`.
    pub(super) fn call(
        &self,
        s: &mut State,
        h: usize,
        ci: usize,
        header: Header,
        call: Call,
        cmd: Cmd,
    ) -> Result<(), Violation> {
        let hs = &mut s.hosts[h];
        let to = ReplyTo(hs.next_reply);
        hs.next_reply += 1;
        hs.pending.insert(to, cmd);
        let (waiter, _) = Waiter::new(header, to);
        self.input(s, h, Input::Call { ci, waiter, call })
    }

    /// The resource as a request names it.
    fn wire_resource(&self, flags: u32) -> WireResource {
        let offsets: Vec<u64> = (0..u64::from(self.scenario.lease_disks))
            .map(|k| (k + 1) * MIB)
            .collect();
        requests::resource_on(self.space, self.resource, &offsets, flags)
    }

    /// Whether an I/O at `offset` is on the lease's last disk while it is broken `how`.
    fn on_broken(&self, s: &State, offset: u64, how: DiskBreak) -> bool {
        let last = u64::from(self.scenario.lease_disks);
        self.scenario.disk_fault && s.broken == Some(how) && offset / MIB == last
    }

    /// The flights (any host's) on the broken disk.
    fn flights_on_broken(&self, s: &State, how: DiskBreak) -> Vec<FlightId> {
        s.flights
            .iter()
            .filter(|(_, f)| self.on_broken(s, f.offset(), how))
            .map(|(id, _)| id)
            .collect()
    }

    /// The lease's leader: valid and the same (first 152 bytes) on a majority of its disks.
    fn lease_leader(&self, s: &State) -> Option<RawLeader> {
        let sectors: Vec<Vec<u8>> = (1..=u64::from(self.scenario.lease_disks))
            .map(|d| self.read(&s.disk, d * MIB, SECTOR))
            .collect();
        crate::disk::agreed_leader(sectors.iter().map(Vec::as_slice))
    }

    /// ADD_LOCKSPACE on a connection of its own.
    fn add_lockspace(&self, s: &mut State, h: usize) -> Result<(), Violation> {
        let Some(ci) = s.hosts[h].daemon.as_mut().and_then(|d| d.connect(0)) else {
            return Ok(());
        };
        let host_id = self.scenario.host_id(h);
        let (header, call) =
            requests::add_lockspace(self.space, host_id, self.scenario.io_timeout_s);
        self.call(s, h, ci, header, call, Cmd::Join { ci })
    }

    /// Takes the daemon's new I/O, checks what its host did, carries out its actions in the
    /// order decided, checking the properties.
    fn drain(&self, s: &mut State, h: usize) -> Result<(), Violation> {
        loop {
            let Some(engine) = s.hosts[h].daemon.as_mut() else {
                return Ok(());
            };
            let turn = engine.take_turn();
            if turn.is_empty() {
                break;
            }
            for (_, request) in turn.io {
                let (len, write) = match &request.op {
                    IoOp::Read { len } => (*len, false),
                    IoOp::Write { data } => {
                        // The fingerprints hash only the record part of a sector.
                        for chunk in data.chunks(SECTOR) {
                            assert!(
                                chunk[RECORD..].iter().all(|&b| b == 0),
                                "a write at {} has bytes past its record",
                                request.offset
                            );
                        }
                        (data.len(), true)
                    }
                };
                // A read may take effect when issued rather than when it completes: keep the
                // sectors of its range as they were (whole-lockspace renewal reads excepted,
                // to keep the state space small; the random simulator covers them).
                let issued = (!write && len <= 64 * 1024 && !self.scenario.in_order).then(|| {
                    s.disk
                        .range(sector_range(request.offset, len))
                        .map(|(k, v)| (*k, v.clone()))
                        .collect()
                });
                let now = Duration::from_millis(s.now_ms);
                s.flights
                    .issue(
                        h,
                        request,
                        now,
                        Fate {
                            issued,
                            slow: false,
                        },
                    )
                    .map_err(|e| e.to_string())?;
                // A lost disk: nothing of it lands or completes.
                if s.hosts[h].lost_disk {
                    Self::lose_all(&mut s.flights, h);
                }
                for id in self.flights_on_broken(s, DiskBreak::Hangs) {
                    s.flights.never_lands(id).map_err(|e| e.to_string())?;
                    s.flights.never_completes(id).map_err(|e| e.to_string())?;
                }
            }
            for happened in turn.events {
                match happened {
                    Happened::Output(out) => self.output(s, h, out)?,
                    Happened::Action(action) => self.action(s, h, action)?,
                }
            }
            if std::mem::take(&mut s.hosts[h].stop_check) {
                self.check_all_stopped(s, h)?;
            }
            s.hosts[h].stop_context = None;
        }
        Ok(())
    }

    fn output(&self, s: &mut State, h: usize, out: Output) -> Result<(), Violation> {
        match out {
            Output::Joined { .. } => {
                s.hosts[h].failed = false;
                let host_id = self.scenario.host_id(h);
                let others: Vec<usize> = (0..self.hosts)
                    .filter(|&o| o != h && self.scenario.host_id(o) == host_id)
                    .filter(|&o| {
                        s.hosts[o].daemon.as_ref().is_some_and(|d| {
                            d.host().delta_live(self.space, self.local(o, s.now_ms))
                        })
                    })
                    .collect();
                s.inv.joined(h, host_id, &others)?;
            }
            Output::JoinFailed { .. } | Output::Left { .. } => s.hosts[h].joined = false,
            Output::LockspaceFailed { .. } => {
                s.hosts[h].joined = false;
                s.hosts[h].failed = true;
            }
            Output::StopHolders { graceful, .. } => {
                s.hosts[h].stop_context = Some(graceful);
                s.hosts[h].stop_check = true;
            }
            Output::StopHolder { .. } => s.hosts[h].stop_context = None,
            Output::Resource { event, .. } => self.resource_event(s, h, event)?,
            _ => {}
        }
        Ok(())
    }

    fn resource_event(
        &self,
        s: &mut State,
        h: usize,
        event: paxos::Event,
    ) -> Result<(), Violation> {
        match event {
            paxos::Event::Acquired { leader, .. } => {
                s.hosts[h].busy = false;
                s.hosts[h].released_clean = false;
                let shared = self.scenario.shared(h);
                let owner = (
                    leader.owner_id.map_or(0, HostId::get),
                    leader.owner_generation.0,
                );
                match s.inv.acquired(0, h, shared, leader.lver.0, owner) {
                    Ok(()) => {}
                    Err(Broken::Exclusion(v)) | Err(Broken::Version(v)) => return Err(v),
                }
                if !s.hosts[h].alive {
                    // Its process died before the answer: it never held the lease; the
                    // daemon gives it back.
                    s.inv.dropped(0, h);
                }
            }
            paxos::Event::AcquireFailed { rv } => {
                s.hosts[h].busy = false;
                if rv == sanlock_core::rv::SANLK_ACQUIRE_IDLIVE {
                    self.refused_by_ghost(s, h)?;
                }
            }
            paxos::Event::Released => {
                s.hosts[h].busy = false;
                s.hosts[h].released_clean = !s.hosts[h].faulted;
            }
            paxos::Event::ReleaseFailed { .. } => {
                s.hosts[h].busy = false;
                s.hosts[h].released_clean = false;
            }
            _ => {}
        }
        Ok(())
    }

    /// An acquire refused because the owner is alive, when the owner on disk had released
    /// the lease cleanly before the acquire started and has not touched it since: nobody will
    /// ever free it while that host lives.
    fn refused_by_ghost(&self, s: &State, h: usize) -> Result<(), Violation> {
        let Some(leader) = self.lease_leader(s) else {
            return Ok(());
        };
        if leader.timestamp == 0 {
            return Ok(());
        }
        // A host leaving the lockspace (a RESET) forgets its leases without writing them free:
        // others take them once they see its delta lease released.
        let owner = (0..self.hosts).find(|&o| {
            self.scenario.host_id(o) == leader.owner_id
                && s.hosts[o].daemon.as_ref().is_some_and(|d| {
                    d.host().generation(self.space).map(|g| g.0) == Some(leader.owner_generation)
                        && !d.host().leaving(self.space)
                })
        });
        match owner {
            Some(o)
                if o != h
                    && s.hosts[h].idle_owners & (1 << o) != 0
                    && s.hosts[o].released_clean
                    && s.hosts[o].holding.is_none()
                    && !s.hosts[o].busy =>
            {
                Err(format!(
                    "host{h}'s acquire was refused (owner alive) by host{o}, which released the \
                     lease cleanly and holds nothing: the lease can never be acquired while host{o} \
                     lives"
                ))
            }
            _ => Ok(()),
        }
    }
}

fn geometry() -> Geometry {
    Geometry::new(SectorSize::Bytes4096, AlignSize::Align1M).expect("a sanlock geometry")
}

fn sector_range(offset: u64, len: usize) -> std::ops::Range<u32> {
    let first = (offset as usize / SECTOR) as u32;
    first..first + (len / SECTOR) as u32
}
