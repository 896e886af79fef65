//! The random simulator: hosts running the unchanged core `Host` on one shared disk, driven by a
//! simulated daemon (the policy below), with faults drawn from the seed, and the checkers of
//! [`crate::invariants`] run after every step.
//!
//! What each part stands for:
//! - the daemon: hands I/O to the disk and completions, timeouts and client calls to `Host`;
//!   a paused host's daemon does nothing until it resumes, but its processes and wdmd run on;
//! - processes: one per held lease; SIGTERM or SIGKILL ends them after a short delay, unless
//!   they ignore SIGTERM or are stuck where no signal reaches them;
//! - wdmd and /dev/watchdog: wdmd checks every 10 s (every second after a failure) and pets the
//!   device only while every armed lockspace's expire is more than 10 s away; the device resets
//!   the host 60 s after its last pet. A reset, like a crash, ends the host and its processes;
//! - the disk: [`SimDisk`], with random latencies, failed, hung and corrupted I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use sanlock_core::host::{Host, HostConfig, JoinRequest, Output, Target};
use sanlock_core::io::{IoError, IoId, IoOp, IoRequest, IoResult};
use sanlock_core::ondisk::leader::{DELTA_DISK_MAGIC, PAXOS_DISK_MAGIC};
use sanlock_core::ondisk::{
    lockspace_init, resource_init, ForceMode, Geometry, LeaderKind, Name, RawLeader, ResourceInit,
    SectorSize,
};
use sanlock_core::paxos::{self, AcquireRequest};
use sanlock_core::requests::RequestArgs;
use sanlock_core::rng::Rng;
use sanlock_core::{HostId, Time, Timeouts};

use crate::clock::HostClock;
use crate::config::{Params, SimConfig};
use crate::disk::SimDisk;
use crate::invariants::{Broken, Invariants, Violation};
use crate::queue::Agenda;
use crate::timeline::{Fate, Timeline, What};

const MIB: u64 = 1 << 20;
/// Between telling every process to exit and the waiting acquires.
const SETTLE: Duration = Duration::from_secs(30);
const SECTOR: usize = 512;
/// Byte offset of the timestamp in a leader sector: what a corrupted read zeroes.
pub const TIMESTAMP_OFFSET: usize = 152;

/// Counts a run reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events handled.
    pub events: u64,
    /// I/Os started (reads, writes).
    pub reads: u64,
    /// Writes started.
    pub writes: u64,
    /// Acquisitions by processes (exclusive, shared).
    pub acquired_ex: u64,
    /// Shared acquisitions.
    pub acquired_sh: u64,
    /// Refused acquires.
    pub refused: u64,
    /// Converts that succeeded.
    pub converted: u64,
    /// Releases that succeeded.
    pub released: u64,
    /// Faults injected, by kind.
    pub io_errors: u64,
    /// Hung I/Os.
    pub hangs: u64,
    /// Corrupted reads.
    pub corruptions: u64,
    /// Daemon pauses.
    pub pauses: u64,
    /// Power-offs.
    pub crashes: u64,
    /// Disk losses.
    pub disk_losses: u64,
    /// Hosts reset by their watchdog.
    pub resets: u64,
    /// Processes stopped by a signal (StopHolders or a request).
    pub killed: u64,
    /// Lockspaces that failed (renewal lost for 8N or corrupt).
    pub lockspace_failures: u64,
    /// Resources the liveness phase checked, and skipped (left ambiguous by faults).
    pub liveness_checked: u64,
    /// Resources the liveness phase could not judge.
    pub liveness_skipped: u64,
    /// Leader writes that landed after a leader write issued later (reordered or hung).
    pub stale_leader_writes: u64,
    /// Exclusive acquisitions of a version already acquired, after a stale leader write took
    /// the leader back: a property of the 3.8.5 protocol, counted rather than failed.
    pub lver_reuses: u64,
}

impl Stats {
    /// All injected faults.
    pub fn faults(&self) -> u64 {
        self.io_errors
            + self.hangs
            + self.corruptions
            + self.pauses
            + self.crashes
            + self.disk_losses
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The first broken property, with the hosts involved, if any.
    pub violation: Option<(Violation, Vec<usize>)>,
    /// Counts.
    pub stats: Stats,
    /// Property evaluations.
    pub checks: u64,
    /// Digest of the whole timeline.
    pub digest: u64,
    /// World time at the end.
    pub simulated: Duration,
    /// The parameters the seed picked.
    pub params: Params,
}

#[derive(Debug)]
enum Ev {
    Boot {
        n: usize,
    },
    Tick {
        n: usize,
        inc: u32,
    },
    Land {
        sector: usize,
        data: Box<[u8]>,
        issued: Duration,
    },
    Complete {
        n: usize,
        inc: u32,
        io: Flight,
    },
    Deliver {
        n: usize,
        inc: u32,
        id: IoId,
        result: IoResult,
    },
    Wdmd {
        n: usize,
        inc: u32,
    },
    WatchdogFire {
        n: usize,
        inc: u32,
        pets: u64,
    },
    Act {
        n: usize,
        inc: u32,
        act: Act,
    },
    Exit {
        n: usize,
        inc: u32,
        r: usize,
        signalled: bool,
    },
    Reap {
        n: usize,
        inc: u32,
        r: usize,
    },
    Pause {
        n: usize,
        length: Duration,
    },
    Crash {
        n: usize,
        down: Duration,
    },
    Loss {
        n: usize,
        length: Duration,
        fail: bool,
    },
    EndFaults,
    CalmOver,
    LivenessStart,
    LivenessDeadline,
}

#[derive(Debug)]
struct Flight {
    id: IoId,
    offset: u64,
    len: usize,
    write: bool,
    started: Duration,
    result: Planned,
}

#[derive(Debug, Clone, Copy)]
enum Planned {
    Ok,
    Failed,
    Corrupt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Join,
    Think,
    Release { r: usize },
    Convert { r: usize },
    Request { r: usize },
    Acquire { r: usize, shared: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Acquire { shared: bool },
    Release,
    Convert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stubborn {
    No,
    IgnoresTerm,
    Unkillable,
}

#[derive(Debug, Clone, Copy)]
struct Holder {
    stubborn: Stubborn,
    exiting: bool,
}

#[derive(Debug)]
struct Node {
    name: Name,
    host_id: HostId,
    clock: HostClock,
    host: Option<Host>,
    inc: u32,
    paused_until: Duration,
    next_tick: Option<Duration>,
    holders: BTreeMap<usize, Holder>,
    ops: BTreeMap<usize, Op>,
    stopping: bool,
    /// The lockspace renews (joined and not failed).
    joined: bool,
    /// Armed lockspace: expire on our clock.
    armed: Option<Time>,
    last_pet: Duration,
    pets: u64,
    device_closed: bool,
    loss: Option<(Duration, bool)>,
    /// Resources whose current operation met an injected fault.
    faulted: BTreeMap<usize, bool>,
    /// Per resource: false once an operation on it met a fault in this generation (a fault
    /// can leave a record behind that only this host's death clears).
    clean: BTreeMap<usize, bool>,
}

/// One run of the random simulator.
pub struct World {
    cfg: SimConfig,
    p: Params,
    timeouts: Timeouts,
    now: Duration,
    agenda: Agenda<Ev>,
    disk: SimDisk,
    nodes: Vec<Node>,
    rng: Rng,
    inv: Invariants,
    timeline: Timeline,
    stats: Stats,
    space: Name,
    resources: Vec<Name>,
    faults_on: bool,
    calm_over: bool,
    liveness: bool,
    /// Liveness phase: per resource, the host that must get it, and whether it did.
    waiting: BTreeMap<usize, (usize, bool)>,
    violation: Option<(Violation, Vec<usize>)>,
    /// Per leader sector: its resource, and the issue time of the newest write landed.
    leader_writes: BTreeMap<usize, (usize, Duration)>,
    /// Per resource: whether a stale leader write has landed (see [`Stats::lver_reuses`]).
    regressed: Vec<bool>,
}

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).expect("short names")
}

fn geometry() -> Geometry {
    Geometry::legacy(SectorSize::Bytes512)
}

impl World {
    /// A world for `cfg`, its parameters drawn from the seed.
    pub fn new(cfg: SimConfig) -> World {
        cfg.validate().expect("a valid configuration");
        let p = Params::pick(cfg.seed, &cfg.faults);
        let mut rng = Rng::new(cfg.seed);
        let space = name("SIMLS");
        let resources: Vec<Name> = (0..cfg.resources).map(|r| name(&format!("R{r}"))).collect();
        let ls = lockspace_init(geometry(), space, p.io_timeout_s as u16);
        let mut image = ls.area;
        image[..SECTOR].copy_from_slice(&ls.commit_sector);
        image.resize(MIB as usize, 0);
        for r in &resources {
            let mut lease = resource_init(&ResourceInit {
                geometry: geometry(),
                space_name: space,
                resource_name: *r,
                num_hosts: cfg.hosts as u64,
                clear_at_s: None,
            });
            lease.resize(MIB as usize, 0);
            image.extend(lease);
        }
        let timeouts = Timeouts::new(p.io_timeout_s);
        let window = Duration::from_secs(4 * p.io_timeout_s);
        let disk = SimDisk::new(image, SECTOR, window);
        let nodes = (0..cfg.hosts)
            .map(|n| {
                let offset = Duration::from_millis(1_000 + rng.below(10_000_000));
                let ppm = if p.drift_ppm > 0 {
                    rng.below(2 * p.drift_ppm as u64 + 1) as i64 - p.drift_ppm
                } else {
                    0
                };
                Node {
                    name: name(&format!("host{n}")),
                    host_id: HostId::new(n as u64 + 1).expect("1..=2000"),
                    clock: HostClock::new(offset, ppm),
                    host: None,
                    inc: 0,
                    paused_until: Duration::ZERO,
                    next_tick: None,
                    holders: BTreeMap::new(),
                    ops: BTreeMap::new(),
                    stopping: false,
                    joined: false,
                    armed: None,
                    last_pet: Duration::ZERO,
                    pets: 0,
                    device_closed: false,
                    loss: None,
                    faulted: BTreeMap::new(),
                    clean: BTreeMap::new(),
                }
            })
            .collect();
        let resources_len = cfg.resources;
        let timeline = Timeline::new(if cfg.keep_timeline {
            usize::MAX
        } else {
            200_000
        });
        World {
            inv: Invariants::new(cfg.resources),
            liveness: cfg.liveness,
            cfg,
            p,
            timeouts,
            now: Duration::ZERO,
            agenda: Agenda::default(),
            disk,
            nodes,
            rng,
            timeline,
            stats: Stats::default(),
            space,
            resources,
            faults_on: true,
            calm_over: false,
            waiting: BTreeMap::new(),
            violation: None,
            leader_writes: (0..resources_len)
                .map(|r| {
                    (
                        ((r as u64 + 1) * MIB) as usize / SECTOR,
                        (r, Duration::ZERO),
                    )
                })
                .collect(),
            regressed: vec![false; resources_len],
        }
    }

    /// The parameters the seed picked.
    pub fn params(&self) -> &Params {
        &self.p
    }

    /// Runs to the end (or the first violation).
    pub fn run(mut self) -> (Outcome, Timeline) {
        let end = Duration::from_secs(self.cfg.seconds);
        self.plan(end);
        let limit = if self.liveness {
            end + self.liveness_span() + Duration::from_secs(1)
        } else {
            end
        };
        while let Some((at, ev)) = self.agenda.pop() {
            if at > limit || self.violation.is_some() {
                break;
            }
            self.now = at;
            self.stats.events += 1;
            self.handle(ev);
        }
        let outcome = Outcome {
            violation: self.violation,
            checks: self.inv.checks(),
            digest: self.timeline.digest(),
            stats: self.stats,
            simulated: self.now,
            params: self.p,
        };
        (outcome, self.timeline)
    }

    fn host_dead(&self) -> Duration {
        self.timeouts.host_dead()
    }

    /// After the faults: every host restarts and works on without faults for this long, so
    /// that what the liveness phase sees was made by fault-free hosts.
    fn calm(&self) -> Duration {
        Duration::from_secs(600).max(4 * self.host_dead())
    }

    /// What a waiting acquire is given: the owner's host_dead, a restart's, and slack for the
    /// retries.
    fn patience(&self) -> Duration {
        3 * self.host_dead() + Duration::from_secs(60)
    }

    fn liveness_span(&self) -> Duration {
        self.calm() + SETTLE + self.patience()
    }

    /// Boots, faults and the end of the fault phase.
    fn plan(&mut self, end: Duration) {
        let hours = end.as_secs_f64() / 3600.0;
        for n in 0..self.nodes.len() {
            let at = self.millis(5_000);
            self.agenda.schedule(at, Ev::Boot { n });
            for _ in 0..self.count(self.p.pauses_per_hour as f64 * hours) {
                let at = self.uniform(end);
                let length = self.uniform(3 * self.host_dead());
                self.agenda.schedule(at, Ev::Pause { n, length });
            }
            for _ in 0..self.count(self.p.crashes_per_hour as f64 * hours) {
                let at = self.uniform(end);
                let down = Duration::from_secs(5) + self.uniform(2 * self.host_dead());
                self.agenda.schedule(at, Ev::Crash { n, down });
            }
            for _ in 0..self.count(self.p.losses_per_hour as f64 * hours) {
                let at = self.uniform(end);
                let length = self.uniform(2 * self.host_dead());
                let fail = self.rng.below(2) == 0;
                self.agenda.schedule(at, Ev::Loss { n, length, fail });
            }
        }
        self.agenda.schedule(end, Ev::EndFaults);
        if self.liveness {
            self.agenda.schedule(end + self.calm(), Ev::CalmOver);
            self.agenda
                .schedule(end + self.calm() + SETTLE, Ev::LivenessStart);
            let at = end + self.liveness_span();
            self.agenda.schedule(at, Ev::LivenessDeadline);
        }
    }

    /// A whole number of events for an expected count (the fraction drawn at random).
    fn count(&mut self, expected: f64) -> u64 {
        let whole = expected.floor() as u64;
        let frac = ((expected - expected.floor()) * 1e6) as u64;
        whole + u64::from(self.rng.below(1_000_000) < frac)
    }

    fn uniform(&mut self, max: Duration) -> Duration {
        Duration::from_nanos(self.rng.below(max.as_nanos() as u64 + 1))
    }

    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.rng.below(max + 1))
    }

    fn pct(&mut self, pct: u64) -> bool {
        self.rng.below(100) < pct
    }

    fn note(&mut self, n: usize, text: String) {
        self.timeline.push(self.now, n, What::Note(text));
    }

    fn fail(&mut self, violation: Violation, hosts: Vec<usize>) {
        if self.violation.is_none() {
            self.note(
                hosts.first().copied().unwrap_or(0),
                format!("VIOLATION: {violation}"),
            );
            self.violation = Some((violation, hosts));
        }
    }

    fn local(&self, n: usize) -> Time {
        self.nodes[n].clock.local(self.now)
    }

    fn handle(&mut self, ev: Ev) {
        // The daemon's own work waits while it is paused; processes, wdmd and the disk do not.
        let deferred = match &ev {
            Ev::Tick { n, .. } | Ev::Deliver { n, .. } | Ev::Act { n, .. } | Ev::Reap { n, .. } => {
                Some(*n)
            }
            _ => None,
        };
        if let Some(n) = deferred {
            let resume = self.nodes[n].paused_until;
            if resume > self.now {
                self.agenda.schedule(resume, ev);
                return;
            }
        }
        match ev {
            Ev::Boot { n } => self.boot(n),
            Ev::Tick { n, inc } => {
                if self.nodes[n].inc == inc
                    && self.nodes[n].next_tick.is_some_and(|t| t <= self.now)
                {
                    self.nodes[n].next_tick = None;
                    let now = self.local(n);
                    if let Some(host) = self.nodes[n].host.as_mut() {
                        host.handle_timeout(now);
                    }
                    self.drain(n);
                }
            }
            Ev::Land {
                sector,
                data,
                issued,
            } => {
                // A leader write landing after one issued later takes the leader back.
                if let Some((r, last)) = self.leader_writes.get_mut(&sector) {
                    if issued < *last {
                        self.stats.stale_leader_writes += 1;
                        self.regressed[*r] = true;
                    }
                    *last = (*last).max(issued);
                }
                self.disk.land(self.now, sector, &data)
            }
            Ev::Complete { n, inc, io } => self.complete(n, inc, io),
            Ev::Deliver { n, inc, id, result } => {
                if self.nodes[n].inc == inc {
                    let now = self.local(n);
                    if let Some(host) = self.nodes[n].host.as_mut() {
                        host.handle_io(now, id, result);
                    }
                    self.drain(n);
                }
            }
            Ev::Wdmd { n, inc } => self.wdmd(n, inc),
            Ev::WatchdogFire { n, inc, pets } => {
                if self.nodes[n].inc == inc && self.nodes[n].pets == pets {
                    self.stats.resets += 1;
                    self.note(n, "reset by its watchdog".into());
                    self.power_off(n);
                    let at = self.now + Duration::from_secs(10) + self.millis(30_000);
                    self.agenda.schedule(at, Ev::Boot { n });
                }
            }
            Ev::Act { n, inc, act } => {
                if self.nodes[n].inc == inc {
                    self.act(n, act);
                }
            }
            Ev::Exit {
                n,
                inc,
                r,
                signalled,
            } => {
                if self.nodes[n].inc == inc && self.nodes[n].holders.remove(&r).is_some() {
                    self.inv.dropped(r, n);
                    if signalled {
                        self.stats.killed += 1;
                    }
                    self.note(n, format!("process holding R{r} exits"));
                    self.agenda.schedule(self.now, Ev::Reap { n, inc, r });
                }
            }
            Ev::Reap { n, inc, r } => {
                if self.nodes[n].inc == inc {
                    self.reap(n, r);
                }
            }
            Ev::Pause { n, length } => {
                if self.faults_on && self.nodes[n].host.is_some() {
                    self.stats.pauses += 1;
                    // Operations under way will see their I/O time out.
                    let busy: Vec<usize> = self.nodes[n].ops.keys().copied().collect();
                    for r in busy {
                        self.nodes[n].faulted.insert(r, true);
                    }
                    let until = self.now + length;
                    self.nodes[n].paused_until = self.nodes[n].paused_until.max(until);
                    self.note(n, format!("daemon pauses for {:.1}s", length.as_secs_f64()));
                }
            }
            Ev::Crash { n, down } => {
                if self.faults_on && self.nodes[n].host.is_some() {
                    self.stats.crashes += 1;
                    self.note(n, format!("powers off for {:.1}s", down.as_secs_f64()));
                    self.power_off(n);
                    self.agenda.schedule(self.now + down, Ev::Boot { n });
                }
            }
            Ev::Loss { n, length, fail } => {
                if self.faults_on && self.nodes[n].host.is_some() {
                    self.stats.disk_losses += 1;
                    self.nodes[n].loss = Some((self.now + length, fail));
                    let how = if fail { "fails" } else { "hangs" };
                    let text = format!(
                        "loses the disk for {:.1}s (I/O {how})",
                        length.as_secs_f64()
                    );
                    self.note(n, text);
                }
            }
            Ev::EndFaults => {
                self.faults_on = false;
                self.note(0, "faults stop; every host restarts".into());
                for n in 0..self.nodes.len() {
                    if self.nodes[n].host.is_some() {
                        self.power_off(n);
                        let at = self.now + self.millis(5_000);
                        self.agenda.schedule(at, Ev::Boot { n });
                    }
                }
            }
            Ev::CalmOver => {
                self.calm_over = true;
                self.note(0, "random work stops; every process exits".into());
                for n in 0..self.nodes.len() {
                    let inc = self.nodes[n].inc;
                    let held: Vec<usize> = self.nodes[n].holders.keys().copied().collect();
                    for r in held {
                        let at = self.now + self.millis(1_000);
                        self.agenda.schedule(
                            at,
                            Ev::Act {
                                n,
                                inc,
                                act: Act::Release { r },
                            },
                        );
                    }
                }
            }
            Ev::LivenessStart => self.liveness_start(),
            Ev::LivenessDeadline => self.liveness_deadline(),
        }
    }

    fn boot(&mut self, n: usize) {
        if self.nodes[n].host.is_some() {
            return;
        }
        let mut config = HostConfig::new(self.nodes[n].name);
        config.kill_grace_s = self.p.kill_grace_s;
        config.rng_seed = self.rng.next_u64();
        #[cfg(feature = "mutants")]
        {
            config.mutant = self.cfg.mutant;
        }
        let wrong = self.faults_on && self.cfg.hosts > 1 && self.pct(self.p.wrong_host_id_pct);
        let node = &mut self.nodes[n];
        node.inc += 1;
        node.host = Some(Host::new(config));
        node.host_id = if wrong {
            // A misconfigured host: it tries another host's host_id.
            let other = (n + 1) % self.cfg.hosts;
            HostId::new(other as u64 + 1).expect("1..=2000")
        } else {
            HostId::new(n as u64 + 1).expect("1..=2000")
        };
        node.paused_until = Duration::ZERO;
        node.pets += 1;
        node.last_pet = self.now;
        node.device_closed = false;
        let inc = node.inc;
        let host_id = node.host_id;
        self.note(n, format!("boots, host_id {host_id}"));
        let at = self.now + self.millis(2_000);
        self.agenda.schedule(
            at,
            Ev::Act {
                n,
                inc,
                act: Act::Join,
            },
        );
        let at = self.now + self.millis(10_000);
        self.agenda.schedule(at, Ev::Wdmd { n, inc });
    }

    /// The machine stops: the daemon, its processes, wdmd. I/O already on its way still lands.
    fn power_off(&mut self, n: usize) {
        let held: Vec<usize> = self.nodes[n].holders.keys().copied().collect();
        for r in held {
            self.inv.dropped(r, n);
        }
        let node = &mut self.nodes[n];
        node.host = None;
        node.inc += 1;
        node.holders.clear();
        node.ops.clear();
        node.stopping = false;
        node.joined = false;
        node.armed = None;
        node.next_tick = None;
        node.loss = None;
        node.paused_until = Duration::ZERO;
        node.faulted.clear();
        node.clean.clear();
    }

    fn wdmd(&mut self, n: usize, inc: u32) {
        if self.nodes[n].inc != inc {
            return;
        }
        let now = self.local(n);
        let node = &mut self.nodes[n];
        let failing = node
            .armed
            .is_some_and(|expire| now + Duration::from_secs(10) >= expire);
        let next = if failing {
            if !node.device_closed {
                // Closing the device uncleanly pings it one last time.
                node.device_closed = true;
                node.last_pet = self.now;
                node.pets += 1;
            }
            let pets = node.pets;
            let fire = node.last_pet + Duration::from_secs(60);
            self.agenda
                .schedule(fire, Ev::WatchdogFire { n, inc, pets });
            Duration::from_secs(1)
        } else {
            // Reopened if it was closed, and petted.
            node.device_closed = false;
            node.last_pet = self.now;
            node.pets += 1;
            Duration::from_secs(10)
        };
        self.agenda.schedule(self.now + next, Ev::Wdmd { n, inc });
    }

    fn join(&mut self, n: usize) {
        let now = self.local(n);
        let join = JoinRequest {
            space_name: self.space,
            host_id: self.nodes[n].host_id,
            geometry: geometry(),
            offset: 0,
            io_timeout_s: self.p.io_timeout_s,
        };
        if let Some(host) = self.nodes[n].host.as_mut() {
            host.join(now, join);
        }
        self.drain(n);
    }

    fn act(&mut self, n: usize, act: Act) {
        let now = self.local(n);
        let inc = self.nodes[n].inc;
        if self.nodes[n].host.is_none() {
            return;
        }
        match act {
            Act::Join => return self.join(n),
            Act::Think => {
                if !self.nodes[n].joined || !self.busy_phase() {
                    return;
                }
                let r = self.rng.below(self.cfg.resources as u64) as usize;
                let node = &self.nodes[n];
                if !node.holders.contains_key(&r) && !node.ops.contains_key(&r) {
                    let shared = self.pct(self.p.shared_pct);
                    self.act(n, Act::Acquire { r, shared });
                }
                let at = self.now + self.uniform(self.p.think_max);
                self.agenda.schedule(
                    at,
                    Ev::Act {
                        n,
                        inc,
                        act: Act::Think,
                    },
                );
                return;
            }
            Act::Acquire { r, shared } => {
                if self.nodes[n].holders.contains_key(&r) || self.nodes[n].ops.contains_key(&r) {
                    return;
                }
                self.nodes[n].ops.insert(r, Op::Acquire { shared });
                self.nodes[n].faulted.insert(r, false);
                let request = AcquireRequest {
                    shared,
                    ..AcquireRequest::default()
                };
                let (space, res) = (self.space, self.resources[r]);
                let offset = (r as u64 + 1) * MIB;
                let host = self.nodes[n].host.as_mut().expect("checked");
                host.acquire(now, space, res, offset, request);
            }
            Act::Release { r } => {
                let busy = self.nodes[n].ops.contains_key(&r);
                let Some(h) = self.nodes[n].holders.get_mut(&r) else {
                    return;
                };
                if busy {
                    // A convert is under way: let go once it has finished.
                    let at = self.now + Duration::from_secs(1);
                    self.agenda.schedule(at, Ev::Act { n, inc, act });
                } else if !h.exiting {
                    h.exiting = true;
                    let ev = Ev::Exit {
                        n,
                        inc,
                        r,
                        signalled: false,
                    };
                    self.agenda.schedule(self.now, ev);
                }
                return;
            }
            Act::Convert { r } => {
                let Some(&h) = self.nodes[n].holders.get(&r) else {
                    return;
                };
                if h.exiting || self.nodes[n].ops.contains_key(&r) {
                    return;
                }
                let Some(shared) = self.inv.holding(r, n) else {
                    return;
                };
                if !shared {
                    // Asking to downgrade gives up exclusive use at once.
                    let _ = self.inv.converted(r, n, true);
                }
                self.nodes[n].ops.insert(r, Op::Convert);
                self.nodes[n].faulted.insert(r, false);
                let (space, res) = (self.space, self.resources[r]);
                let host = self.nodes[n].host.as_mut().expect("checked");
                host.convert(now, space, res, !shared);
            }
            Act::Request { r } => {
                let force_mode = if self.rng.below(2) == 0 {
                    ForceMode::Force
                } else {
                    ForceMode::Graceful
                };
                let args = RequestArgs {
                    lver: None,
                    force_mode,
                    next_lver: true,
                };
                let (space, res) = (self.space, self.resources[r]);
                let offset = (r as u64 + 1) * MIB;
                let host = self.nodes[n].host.as_mut().expect("checked");
                host.request(now, space, res, offset, args);
            }
        }
        self.drain(n);
    }

    /// Random work happens before the liveness phase.
    fn busy_phase(&self) -> bool {
        !self.calm_over
    }

    /// The daemon learns that a process exited: its lease is released (or only forgotten, on a
    /// failed lockspace); once a stopping lockspace has no processes left, recovery ends.
    fn reap(&mut self, n: usize, r: usize) {
        let now = self.local(n);
        let space = self.space;
        let res = self.resources.get(r).copied();
        let node = &mut self.nodes[n];
        let Some(host) = node.host.as_mut() else {
            return;
        };
        if let Some(res) = res.filter(|&res| host.held(space, res).is_some()) {
            node.ops.insert(r, Op::Release);
            node.faulted.insert(r, false);
            host.release(now, space, res);
        }
        if self.nodes[n].stopping && self.nodes[n].holders.is_empty() {
            self.nodes[n].stopping = false;
            let host = self.nodes[n].host.as_mut().expect("checked");
            host.holders_gone(now, space);
        }
        self.drain(n);
    }

    /// Makes process `r` of host `n` stop, as SIGTERM/killpath (graceful) or SIGKILL would.
    fn signal(&mut self, n: usize, r: usize, graceful: bool) {
        let inc = self.nodes[n].inc;
        let Some(h) = self.nodes[n].holders.get_mut(&r) else {
            return;
        };
        let stops = match h.stubborn {
            Stubborn::No => true,
            Stubborn::IgnoresTerm => !graceful,
            Stubborn::Unkillable => false,
        };
        if !stops || h.exiting {
            return;
        }
        h.exiting = true;
        let delay = if graceful {
            self.millis(2_000)
        } else {
            self.millis(300)
        };
        let ev = Ev::Exit {
            n,
            inc,
            r,
            signalled: true,
        };
        self.agenda.schedule(self.now + delay, ev);
    }

    /// Hands the host's I/O to the disk, acts on its outputs, schedules its next timeout.
    fn drain(&mut self, n: usize) {
        loop {
            let Some(host) = self.nodes[n].host.as_mut() else {
                return;
            };
            let mut progressed = false;
            let mut ios = Vec::new();
            while let Some(io) = host.poll_io() {
                ios.push(io);
            }
            let mut outputs = Vec::new();
            while let Some(out) = host.poll_output() {
                outputs.push(out);
            }
            for (target, request) in ios {
                progressed = true;
                self.start_io(n, target, request);
            }
            for out in outputs {
                progressed = true;
                self.output(n, out);
                if self.nodes[n].host.is_none() {
                    return;
                }
            }
            if !progressed {
                break;
            }
        }
        let Some(host) = self.nodes[n].host.as_ref() else {
            return;
        };
        if let Some(next) = host.poll_timeout() {
            let at = self.nodes[n].clock.global(next).max(self.now);
            if self.nodes[n].next_tick.is_none_or(|t| at < t) {
                self.nodes[n].next_tick = Some(at);
                let inc = self.nodes[n].inc;
                self.agenda.schedule(at, Ev::Tick { n, inc });
            }
        }
    }

    fn start_io(&mut self, n: usize, target: Target, request: IoRequest) {
        let inc = self.nodes[n].inc;
        let (write, len, data) = match &request.op {
            IoOp::Read { len } => (false, *len, None),
            IoOp::Write { data } => (true, data.len(), Some(data.clone())),
        };
        if write {
            self.stats.writes += 1;
        } else {
            self.stats.reads += 1;
        }
        let n_timeout = Duration::from_secs(self.p.io_timeout_s);
        let t0 = self.now;
        // The fate of this I/O: a lost path first, then the random faults.
        let draw = if self.faults_on {
            self.rng.below(1_000_000)
        } else {
            u64::MAX
        };
        let (fate, done_at, planned) = match self.nodes[n].loss {
            Some((until, fail)) if until > self.now => {
                if fail {
                    let at = t0 + self.millis(5);
                    (Fate::Failed { landed: false }, Some(at), Planned::Failed)
                } else {
                    let at = until + self.millis(100);
                    (
                        Fate::Hung {
                            landed: false,
                            returns: true,
                        },
                        Some(at),
                        Planned::Failed,
                    )
                }
            }
            _ if draw < self.p.error_ppm => {
                let landed = write && self.rng.below(2) == 0;
                let at = t0 + self.uniform(self.p.latency);
                (Fate::Failed { landed }, Some(at), Planned::Failed)
            }
            _ if draw < self.p.error_ppm + self.p.hang_ppm => {
                // It completes, but long after its deadline; a write may land until then.
                let landed = write && self.rng.below(4) != 0;
                let at = t0 + n_timeout + self.uniform(2 * n_timeout);
                let fate = Fate::Hung {
                    landed,
                    returns: true,
                };
                (fate, Some(at), Planned::Ok)
            }
            _ if !write && draw < self.p.error_ppm + self.p.hang_ppm + self.p.corrupt_ppm => {
                let at = t0 + self.uniform(self.p.latency);
                (Fate::Corrupted, Some(at), Planned::Corrupt)
            }
            _ => {
                let slow = self.rng.below(1_000_000) < self.p.slow_ppm;
                let max = if slow {
                    n_timeout.mul_f64(0.9)
                } else {
                    self.p.latency
                };
                let latency = Duration::from_micros(50) + self.uniform(max);
                (Fate::Done(latency), Some(t0 + latency), Planned::Ok)
            }
        };
        match fate {
            Fate::Failed { .. } if self.nodes[n].loss.is_none() => self.stats.io_errors += 1,
            Fate::Hung { .. } if self.nodes[n].loss.is_none() => self.stats.hangs += 1,
            Fate::Corrupted => self.stats.corruptions += 1,
            _ => {}
        }
        if !matches!(fate, Fate::Done(_)) {
            if let Some((_, res)) = target.lease() {
                if let Some(r) = self.resources.iter().position(|x| x == res) {
                    self.nodes[n].faulted.insert(r, true);
                }
            }
        }
        let landed = match fate {
            Fate::Done(_) | Fate::Corrupted => write,
            Fate::Failed { landed } | Fate::Hung { landed, .. } => landed,
        };
        if let (true, Some(data)) = (landed, data) {
            // Each sector lands at its own instant before the completion (a hung write's
            // perhaps after the deadline).
            let last = done_at.unwrap_or(t0 + 3 * n_timeout);
            let span = last.saturating_sub(t0);
            let first = request.offset as usize / SECTOR;
            for (i, chunk) in data.chunks(SECTOR).enumerate() {
                let at = t0 + self.uniform(span);
                let ev = Ev::Land {
                    sector: first + i,
                    data: chunk.into(),
                    issued: t0,
                };
                self.agenda.schedule(at, ev);
            }
        }
        self.timeline.push(
            self.now,
            n,
            What::Io {
                target,
                write,
                offset: request.offset,
                len,
                fate,
            },
        );
        if let Some(at) = done_at {
            let io = Flight {
                id: request.id,
                offset: request.offset,
                len,
                write,
                started: t0,
                result: planned,
            };
            self.agenda.schedule(at, Ev::Complete { n, inc, io });
        }
    }

    fn complete(&mut self, n: usize, inc: u32, io: Flight) {
        let result: IoResult = match io.result {
            Planned::Failed => Err(IoError::Failed(5)),
            Planned::Ok | Planned::Corrupt if io.write => Ok(Bytes::new()),
            Planned::Ok | Planned::Corrupt => {
                match self
                    .disk
                    .read(io.offset, io.len, io.started, self.now, &mut self.rng)
                {
                    None => Err(IoError::Short),
                    Some(data)
                        if matches!(io.result, Planned::Corrupt)
                            && RawLeader::parse(&data).is_ok_and(|l| {
                                [DELTA_DISK_MAGIC, PAXOS_DISK_MAGIC].contains(&l.magic)
                            }) =>
                    {
                        // Only a leader's first sector: its checksum covers the timestamp.
                        // (Mode blocks carry no checksum; no reader could catch that.)
                        let mut data = data.to_vec();
                        data[TIMESTAMP_OFFSET..TIMESTAMP_OFFSET + 8].fill(0);
                        Ok(Bytes::from(data))
                    }
                    Some(data) => Ok(data),
                }
            }
        };
        if self.nodes[n].inc != inc {
            return;
        }
        // A paused daemon picks the completion up when it resumes (handle() defers it).
        self.agenda.schedule(
            self.now,
            Ev::Deliver {
                n,
                inc,
                id: io.id,
                result,
            },
        );
    }

    fn output(&mut self, n: usize, out: Output) {
        let inc = self.nodes[n].inc;
        match &out {
            Output::WatchdogArm { expire, .. } => {
                self.nodes[n].armed = Some(*expire);
                return;
            }
            Output::WatchdogDisarm { .. } => {
                self.nodes[n].armed = None;
                return;
            }
            _ => self.timeline.push(self.now, n, What::Output(out.clone())),
        }
        match out {
            Output::Joined { .. } => {
                self.nodes[n].joined = true;
                // A new generation: traces left by the old one belong to a dead host.
                self.nodes[n].clean.clear();
                let host_id = self.nodes[n].host_id;
                let others: Vec<usize> = (0..self.nodes.len())
                    .filter(|&o| o != n && self.nodes[o].host_id == host_id)
                    .filter(|&o| {
                        let local = self.local(o);
                        self.nodes[o]
                            .host
                            .as_ref()
                            .is_some_and(|h| h.delta_live(self.space, local))
                    })
                    .collect();
                if let Err(v) = self.inv.joined(n, host_id.get(), &others) {
                    let mut hosts = vec![n];
                    hosts.extend(others);
                    self.fail(v, hosts);
                }
                let at = self.now + self.uniform(self.p.think_max);
                self.agenda.schedule(
                    at,
                    Ev::Act {
                        n,
                        inc,
                        act: Act::Think,
                    },
                );
            }
            Output::JoinFailed { .. } | Output::Left { .. } => {
                self.nodes[n].joined = false;
                let at = self.now + Duration::from_secs(1) + self.millis(20_000);
                self.agenda.schedule(
                    at,
                    Ev::Act {
                        n,
                        inc,
                        act: Act::Join,
                    },
                );
            }
            Output::LockspaceFailed { .. } => {
                self.stats.lockspace_failures += 1;
                self.nodes[n].joined = false;
            }
            Output::StopHolders { graceful, .. } => {
                self.nodes[n].stopping = true;
                let held: Vec<usize> = self.nodes[n].holders.keys().copied().collect();
                if held.is_empty() {
                    self.agenda.schedule(
                        self.now,
                        Ev::Reap {
                            n,
                            inc,
                            r: usize::MAX,
                        },
                    );
                }
                for r in held {
                    self.signal(n, r, graceful);
                }
            }
            Output::StopHolder {
                resource_name,
                graceful,
                ..
            } => {
                if let Some(r) = self.resources.iter().position(|x| *x == resource_name) {
                    self.signal(n, r, graceful);
                }
            }
            Output::Resource {
                resource_name,
                event,
                ..
            } => {
                let r = self
                    .resources
                    .iter()
                    .position(|x| *x == resource_name)
                    .expect("our resources");
                self.resource_event(n, r, event);
            }
            _ => {}
        }
    }

    fn resource_event(&mut self, n: usize, r: usize, event: paxos::Event) {
        let inc = self.nodes[n].inc;
        let op = self.nodes[n].ops.remove(&r);
        let clean = self.nodes[n].faulted.get(&r) != Some(&true)
            && !matches!(event, paxos::Event::ReleaseFailed { .. });
        if !clean {
            // Sticky until this generation ends: a fault's traces (a leader naming us, a
            // stale mode block) outlive the operation that met it.
            self.nodes[n].clean.insert(r, false);
        }
        match event {
            paxos::Event::Acquired { leader, .. } => {
                let shared = matches!(op, Some(Op::Acquire { shared: true }));
                if shared {
                    self.stats.acquired_sh += 1;
                } else {
                    self.stats.acquired_ex += 1;
                }
                let owner = (
                    leader.owner_id.map_or(0, HostId::get),
                    leader.owner_generation.0,
                );
                let broken = match self.inv.acquired(r, n, shared, leader.lver.0, owner) {
                    Ok(()) => None,
                    Err(Broken::Exclusion(v)) => Some(v),
                    Err(Broken::Version(v)) if self.regressed[r] => {
                        // sanlock 3.8.5's versions are only as monotonic as its leader
                        // writes land in order: counted, not a violation (docs/SIMULATION.md).
                        self.stats.lver_reuses += 1;
                        self.note(n, format!("lver reused after a stale leader write: {v}"));
                        None
                    }
                    Err(Broken::Version(v)) => Some(v),
                };
                if let Some(v) = broken {
                    let others: Vec<usize> = (0..self.nodes.len())
                        .filter(|&o| o != n && self.inv.holding(r, o).is_some())
                        .collect();
                    let mut hosts = vec![n];
                    hosts.extend(others);
                    self.fail(v, hosts);
                }
                let stubborn = if self.pct(self.p.unkillable_pct) {
                    Stubborn::Unkillable
                } else if self.pct(self.p.ignore_term_pct) {
                    Stubborn::IgnoresTerm
                } else {
                    Stubborn::No
                };
                let holder = Holder {
                    stubborn,
                    exiting: false,
                };
                self.nodes[n].holders.insert(r, holder);
                self.liveness_got(n, r);
                if self.nodes[n].stopping {
                    // Acquired while the lockspace is being stopped: it is stopped too.
                    self.signal(n, r, false);
                }
                let mut at = self.now + self.uniform(self.p.hold_max);
                if !self.busy_phase() {
                    // Holders let go soon: the liveness phase needs them gone.
                    at = self.now + self.millis(1_000);
                } else if self.pct(self.p.convert_pct) {
                    self.agenda.schedule(
                        at,
                        Ev::Act {
                            n,
                            inc,
                            act: Act::Convert { r },
                        },
                    );
                    at += self.uniform(self.p.hold_max);
                }
                let release = Act::Release { r };
                self.agenda.schedule(
                    at,
                    Ev::Act {
                        n,
                        inc,
                        act: release,
                    },
                );
            }
            paxos::Event::AcquireFailed { rv } => {
                self.stats.refused += 1;
                if self.waiting.get(&r).is_some_and(|&(h, _)| h == n) {
                    let at = self.now + Duration::from_secs(3);
                    let act = Act::Acquire { r, shared: false };
                    self.agenda.schedule(at, Ev::Act { n, inc, act });
                } else if rv != -17 && self.busy_phase() && self.pct(self.p.request_pct) {
                    let at = self.now + self.millis(2_000);
                    self.agenda.schedule(
                        at,
                        Ev::Act {
                            n,
                            inc,
                            act: Act::Request { r },
                        },
                    );
                }
            }
            paxos::Event::Converted { shared } => {
                self.stats.converted += 1;
                if let Err(v) = self.inv.converted(r, n, shared) {
                    let others: Vec<usize> = (0..self.nodes.len())
                        .filter(|&o| o != n && self.inv.holding(r, o).is_some())
                        .collect();
                    let mut hosts = vec![n];
                    hosts.extend(others);
                    self.fail(v, hosts);
                }
            }
            paxos::Event::ConvertFailed { .. } => {}
            paxos::Event::Released => {
                self.stats.released += 1;
            }
            paxos::Event::ReleaseFailed { .. } => {}
            paxos::Event::NeedHostStatus { .. } | paxos::Event::NeedOwnerStatus { .. } => {}
        }
    }

    /// The faults have stopped, every host restarted and worked without faults, then every
    /// process exited: for every resource that is free (no running host holds it, works on it,
    /// or met a fault on it) one joined host starts acquiring it, retrying every 3 s; it must
    /// succeed by the deadline.
    fn liveness_start(&mut self) {
        self.note(
            0,
            "liveness phase: one waiting acquire per free resource".into(),
        );
        for r in 0..self.cfg.resources {
            let offset = ((r as u64 + 1) * MIB) as usize;
            let sector = &self.disk.bytes()[offset..offset + SECTOR];
            let leader = RawLeader::parse(sector)
                .ok()
                .filter(|l| l.verify(LeaderKind::Paxos).is_ok());
            let Some(leader) = leader else {
                self.stats.liveness_skipped += 1;
                continue;
            };
            let owner = (leader.owner_id, leader.owner_generation);
            let owner_node = (0..self.nodes.len()).find(|&o| {
                self.nodes[o].host.as_ref().is_some_and(|h| {
                    self.nodes[o].host_id.get() == owner.0
                        && h.generation(self.space).map(|g| g.0) == Some(owner.1)
                })
            });
            // Free: no running host holds it, works on it, or left a fault's traces on it.
            let free = (0..self.nodes.len()).all(|o| {
                let node = &self.nodes[o];
                node.host.is_none()
                    || (!node.holders.contains_key(&r)
                        && !node.ops.contains_key(&r)
                        && node.clean.get(&r) != Some(&false))
            });
            if !free {
                self.stats.liveness_skipped += 1;
                continue;
            }
            // A joined host that is not the owner and uses its own host_id.
            let candidates: Vec<usize> = (0..self.nodes.len())
                .filter(|&o| Some(o) != owner_node && self.nodes[o].joined)
                .filter(|&o| self.nodes[o].host_id.get() == o as u64 + 1)
                .collect();
            if candidates.is_empty() {
                self.stats.liveness_skipped += 1;
                continue;
            }
            let pick = candidates[self.rng.below(candidates.len() as u64) as usize];
            self.stats.liveness_checked += 1;
            self.waiting.insert(r, (pick, false));
            let inc = self.nodes[pick].inc;
            let at = self.now + Duration::from_secs(1);
            let act = Act::Acquire { r, shared: false };
            self.agenda.schedule(at, Ev::Act { n: pick, inc, act });
        }
    }

    fn liveness_deadline(&mut self) {
        for n in 0..self.nodes.len() {
            for &r in self.nodes[n].holders.keys() {
                if let Some(w) = self.waiting.get_mut(&r) {
                    if w.0 == n {
                        w.1 = true;
                    }
                }
            }
        }
        let stuck: Vec<(usize, usize)> = self
            .waiting
            .iter()
            .filter(|(_, &(_, got))| !got)
            .map(|(&r, &(n, _))| (r, n))
            .collect();
        if let Some(&(r, n)) = stuck.first() {
            let offset = ((r as u64 + 1) * MIB) as usize;
            let sector = &self.disk.bytes()[offset..offset + SECTOR];
            let leader = RawLeader::parse(sector)
                .map(|l| {
                    format!(
                        "lver {} owner host_id {} generation {} timestamp {} write_id {}",
                        l.lver, l.owner_id, l.owner_generation, l.timestamp, l.write_id
                    )
                })
                .unwrap_or_else(|e| format!("unreadable: {e}"));
            let owner = RawLeader::parse(sector)
                .ok()
                .and_then(|l| (l.owner_id as usize).checked_sub(1));
            let mut hosts = vec![n];
            hosts.extend(owner);
            self.fail(
                format!(
                    "liveness: resource {r} was free when the faults had stopped, but host{n} \
                     waited {:.0}s without acquiring it (leader: {leader})",
                    self.patience().as_secs_f64()
                ),
                hosts,
            );
        }
    }
}

impl World {
    /// Called from the Acquired path during the liveness phase: remember success.
    fn liveness_got(&mut self, n: usize, r: usize) {
        if let Some(w) = self.waiting.get_mut(&r) {
            if w.0 == n {
                w.1 = true;
            }
        }
    }
}
