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
use sanlock_core::host::Output;
use sanlock_core::io::{IoError, IoId, IoOp};
use sanlock_core::ondisk::leader::{DELTA_DISK_MAGIC, PAXOS_DISK_MAGIC};
use sanlock_core::ondisk::{
    lockspace_init, resource_init, AlignSize, Geometry, LeaderKind, Name, RawLeader, ResourceInit,
    SectorSize,
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
use crate::requests::{self, RES_PERSISTENT, RES_SHARED};
use crate::world::TIMESTAMP_OFFSET;

mod daemon;

use daemon::{acquiring, Cmd, WORKER_CI};

const SECTOR: usize = 4096;
const MIB: u64 = 1 << 20;

/// What the checker explores: a scenario and the disk image every run starts from.
pub struct Model {
    scenario: Scenario,
    base: Arc<Vec<u8>>,
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
        /// Whose.
        host: usize,
        /// Which (host-wide id).
        id: u64,
        /// A read that sees the disk as it was when issued.
        as_issued: bool,
    },
    /// The I/O fails with EIO (a write does not land).
    Fail {
        /// Whose.
        host: usize,
        /// Which.
        id: u64,
    },
    /// The I/O is slow: it may complete at any later instant before its deadline.
    Slow {
        /// Whose.
        host: usize,
        /// Which.
        id: u64,
    },
    /// The I/O hangs past its deadline; a write may still land later.
    Hang {
        /// Whose.
        host: usize,
        /// Which.
        id: u64,
    },
    /// A hung write lands.
    LandLate {
        /// Whose.
        host: usize,
        /// Which.
        id: u64,
    },
    /// A read of a leader sector returns it with its timestamp zeroed (checksum now wrong).
    Corrupt {
        /// Whose.
        host: usize,
        /// Which.
        id: u64,
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
    /// Time moves to the next instant someone waits for.
    Advance {
        /// World time, ms.
        to_ms: u64,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Complete {
                host,
                id,
                as_issued,
            } => write!(
                f,
                "host{host} io#{id} completes{}",
                if *as_issued {
                    " (read sees the disk as when issued)"
                } else {
                    ""
                }
            ),
            Step::Fail { host, id } => write!(f, "host{host} io#{id} fails with EIO"),
            Step::Slow { host, id } => write!(f, "host{host} io#{id} is slow"),
            Step::Hang { host, id } => write!(f, "host{host} io#{id} hangs past its deadline"),
            Step::LandLate { host, id } => write!(f, "host{host} hung write io#{id} lands"),
            Step::Corrupt { host, id } => {
                write!(
                    f,
                    "host{host} io#{id} returns a leader with a zeroed timestamp"
                )
            }
            Step::LoseDisk { host } => write!(f, "host{host} loses its disk"),
            Step::Acquire { host } => write!(f, "host{host} acquires"),
            Step::Release { host } => write!(f, "host{host}'s holder releases"),
            Step::Die { host } => write!(f, "host{host}'s process dies"),
            Step::Exit { host } => write!(f, "host{host}'s stopped process exits"),
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
    flights: BTreeMap<(u8, u64), Flight>,
    faults_left: u8,
    inv: Invariants,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct HostState {
    /// The daemon's machine (with the core Host it owns), while the host is up.
    daemon: Option<Engine>,
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
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Flight {
    offset: u64,
    len: usize,
    write: Option<Arc<[u8]>>,
    deadline_ms: u64,
    /// For reads: the written sectors when the read started.
    issued: Option<BTreeMap<u32, Arc<[u8]>>>,
    hung: bool,
    /// May complete after time advances (else it completes at the instant it was issued).
    slow: bool,
    /// Never lands nor completes (a lost disk).
    lost: bool,
    target_lease: bool,
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
        let ls = lockspace_init(g, space, scenario.io_timeout_s as u16);
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
        image.extend(lease);
        for sector in image.chunks(SECTOR) {
            assert!(
                sector[RECORD..].iter().all(|&b| b == 0),
                "records fit 512 bytes"
            );
        }
        Model {
            scenario,
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
                })
                .collect(),
            disk: BTreeMap::new(),
            flights: BTreeMap::new(),
            faults_left: self.scenario.faults,
            inv: Invariants::new(1),
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
            self.add_lockspace(&mut state, h)?;
        }
        Ok(state)
    }

    /// Every step possible from `state`, in a fixed order.
    pub fn steps(&self, state: &State) -> Vec<Step> {
        let mut steps = Vec::new();
        for (&(h, id), f) in &state.flights {
            let host = h as usize;
            if f.lost {
                continue;
            }
            if f.hung {
                if f.write.is_some() {
                    steps.push(Step::LandLate { host, id });
                }
                continue;
            }
            steps.push(Step::Complete {
                host,
                id,
                as_issued: false,
            });
            let changed = f.issued.as_ref().is_some_and(|before| {
                let range = sector_range(f.offset, f.len);
                before.range(range.clone()).ne(state.disk.range(range))
            });
            if changed {
                steps.push(Step::Complete {
                    host,
                    id,
                    as_issued: true,
                });
            }
            if state.faults_left > 0 {
                let s = &self.scenario;
                if s.fail {
                    steps.push(Step::Fail { host, id });
                }
                if s.hang {
                    steps.push(Step::Hang { host, id });
                }
                if s.slow && !f.slow {
                    steps.push(Step::Slow { host, id });
                }
                if s.corrupt && f.write.is_none() && self.leader_at(state, f.offset) {
                    steps.push(Step::Corrupt { host, id });
                }
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
            consider(
                self.global_ms(h, engine.poll_timeout())
                    .max(state.now_ms + 1),
            );
            if let Some(expire) = hs.armed {
                consider(self.reset_at(h, expire));
            }
        }
        let next = next?;
        // An I/O completes at the instant it was issued unless a fault made it slow, hung or
        // lost: that keeps the time points few (see docs/SIMULATION.md).
        let in_time = state
            .flights
            .values()
            .all(|f| f.hung || f.lost || (f.slow && f.deadline_ms > next));
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
        let key = Fingerprinter::of(&(offset, len, written));
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

    fn land(disk: &mut BTreeMap<u32, Arc<[u8]>>, offset: u64, data: &[u8]) {
        for (i, chunk) in data.chunks(SECTOR).enumerate() {
            disk.insert((offset as usize / SECTOR + i) as u32, chunk.into());
        }
    }

    /// Runs `step` on a copy of `state`.
    pub fn apply(&self, state: &State, step: &Step) -> Result<State, Violation> {
        let mut s = state.clone();
        match *step {
            Step::Complete {
                host,
                id,
                as_issued,
            } => {
                let f = s.flights.remove(&(host as u8, id)).expect("listed");
                let result = match &f.write {
                    Some(data) => {
                        Self::land(&mut s.disk, f.offset, data);
                        Ok(Bytes::new())
                    }
                    None => match (&f.issued, as_issued) {
                        (Some(before), true) => Ok(self.read_bytes(before, f.offset, f.len)),
                        _ => Ok(self.read_bytes(&s.disk, f.offset, f.len)),
                    },
                };
                self.deliver(&mut s, host, id, result)?;
            }
            Step::Fail { host, id } => {
                s.faults_left -= 1;
                let f = s.flights.remove(&(host as u8, id)).expect("listed");
                s.hosts[host].faulted |= f.target_lease;
                self.deliver(&mut s, host, id, Err(IoError::Failed(5)))?;
            }
            Step::Corrupt { host, id } => {
                s.faults_left -= 1;
                let f = s.flights.remove(&(host as u8, id)).expect("listed");
                s.hosts[host].faulted |= f.target_lease;
                let mut data = self.read(&s.disk, f.offset, f.len);
                data[TIMESTAMP_OFFSET..TIMESTAMP_OFFSET + 8].fill(0);
                self.deliver(&mut s, host, id, Ok(Bytes::from(data)))?;
            }
            Step::Slow { host, id } => {
                s.faults_left -= 1;
                s.flights.get_mut(&(host as u8, id)).expect("listed").slow = true;
            }
            Step::Hang { host, id } => {
                s.faults_left -= 1;
                let f = s.flights.get_mut(&(host as u8, id)).expect("listed");
                f.hung = true;
                let lease = f.target_lease;
                s.hosts[host].faulted |= lease;
                if f.write.is_none() {
                    s.flights.remove(&(host as u8, id));
                }
            }
            Step::LandLate { host, id } => {
                let f = s.flights.remove(&(host as u8, id)).expect("listed");
                if let Some(data) = &f.write {
                    Self::land(&mut s.disk, f.offset, data);
                }
            }
            Step::LoseDisk { host } => {
                s.faults_left -= 1;
                s.hosts[host].lost_disk = true;
                s.hosts[host].faulted = true;
                for ((h, _), f) in s.flights.iter_mut() {
                    if *h as usize == host {
                        f.lost = true;
                    }
                }
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
                            s.flights.retain(|(o, _), f| {
                                *o as usize != h || (f.hung && f.write.is_some())
                            });
                        }
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
        Ok(s)
    }

    fn deliver(
        &self,
        s: &mut State,
        host: usize,
        id: u64,
        result: sanlock_core::io::IoResult,
    ) -> Result<(), Violation> {
        self.input(s, host, Input::IoDone(vec![(IoId(id), result)]))
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
        requests::resource(self.space, self.resource, MIB, flags)
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
                let (len, write) = match request.op {
                    IoOp::Read { len } => (len, None),
                    IoOp::Write { data } => {
                        // The fingerprints hash only the record part of a sector.
                        for chunk in data.chunks(SECTOR) {
                            assert!(
                                chunk[RECORD..].iter().all(|&b| b == 0),
                                "a write at {} has bytes past its record",
                                request.offset
                            );
                        }
                        (data.len(), Some(Arc::<[u8]>::from(data)))
                    }
                };
                // A read may take effect when issued rather than when it completes: keep the
                // sectors of its range as they were (whole-lockspace renewal reads excepted,
                // to keep the state space small; the random simulator covers them).
                let issued = (write.is_none() && len <= 64 * 1024).then(|| {
                    s.disk
                        .range(sector_range(request.offset, len))
                        .map(|(k, v)| (*k, v.clone()))
                        .collect()
                });
                let lost = s.hosts[h].lost_disk;
                s.flights.insert(
                    (h as u8, request.id.0),
                    Flight {
                        offset: request.offset,
                        len,
                        write,
                        deadline_ms: self.global_ms(h, request.deadline),
                        issued,
                        hung: false,
                        slow: false,
                        lost,
                        target_lease: request.offset >= MIB,
                    },
                );
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
        let sector = self.read(&s.disk, MIB, SECTOR);
        let Ok(leader) = RawLeader::parse(&sector) else {
            return Ok(());
        };
        if leader.verify(LeaderKind::Paxos).is_err() || leader.timestamp == 0 {
            return Ok(());
        }
        let owner = (0..self.hosts).find(|&o| {
            self.scenario.host_id(o) == leader.owner_id
                && s.hosts[o].daemon.as_ref().is_some_and(|d| {
                    d.host().generation(self.space).map(|g| g.0) == Some(leader.owner_generation)
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
