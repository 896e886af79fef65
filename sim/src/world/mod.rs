//! The random simulator: hosts each running the daemon's own machine
//! (`sanlock_machine::daemon::Engine`, which owns the unchanged core `Host` and the client
//! table) on one shared disk, with faults drawn from the seed, and the checkers of
//! [`crate::invariants`] and of the daemon (`daemon_checks.rs`) run after every step.
//!
//! What each part stands for:
//! - the daemon: the engine, played by a shell that hands it requests (decoded, as the socket
//!   server does), completions, timeouts and process exits, and carries out its actions
//!   (replies, signals, killpaths, wdmd orders, opens and probes answered at once); a paused
//!   host's daemon does nothing until it resumes, but its processes and wdmd run on;
//! - processes (`clients.rs`): `--clients` per host, registered with the daemon; each acquires,
//!   converts and releases leases, some set a killpath, some die holding leases or with an
//!   acquire under way; SIGTERM, a killpath or SIGKILL ends them after a short delay, unless
//!   they ignore SIGTERM or are stuck where no signal reaches them; a dead one is replaced;
//! - wdmd and /dev/watchdog: the daemon's watchdog policy (`Keeper`) orders wdmd (register,
//!   TEST_LIVE, clear); wdmd checks every 10 s (every second after a failure) and pets the
//!   device only while every armed lockspace's expire is more than 10 s away; the device resets
//!   the host 60 s after its last pet. A reset, like a crash, ends the host and its processes;
//! - the disk: [`SimDisk`], with random latencies, failed, hung and corrupted I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use sanlock_core::flight::{FlightId, Flights};
use sanlock_core::host::{Output, Target};
use sanlock_core::io::{IoError, IoId, IoOp, IoRequest, IoResult};
use sanlock_core::ondisk::leader::{DELTA_DISK_MAGIC, PAXOS_DISK_MAGIC};
use sanlock_core::ondisk::{
    lockspace_init, resource_init, ForceMode, Geometry, Name, RawLeader, ResourceInit, SectorSize,
};
use sanlock_core::paxos;
use sanlock_core::rng::Rng;
use sanlock_core::{HostId, Time, Timeouts};

use crate::clock::HostClock;
use crate::config::{Params, SimConfig};
use crate::disk::SimDisk;
use crate::invariants::{Broken, Invariants, Violation};
pub use crate::stats::{Outcome, Stats};
use crate::timeline::{Fate, Timeline, What};
use sanlock_core::agenda::Agenda;
use sanlock_machine::daemon::config::DaemonConfig;
use sanlock_machine::daemon::{Action, Call, DiskNo, Engine, Happened, Input, ReplyTo, Waiter};
use sanlock_machine::watchdog::{Keeper, Order};
use sanlock_machine::wire::Header;

use crate::requests;

mod clients;
mod daemon_checks;
mod faults_io;
mod liveness;
mod messages;
mod outputs;
mod policy;
mod wdmd;

const MIB: u64 = 1 << 20;
/// Between telling every process to exit and the waiting acquires.
const SETTLE: Duration = Duration::from_secs(30);
const SECTOR: usize = 512;
/// Byte offset of the timestamp in a leader sector: what a corrupted read zeroes.
pub const TIMESTAMP_OFFSET: usize = 152;

/// What goes wrong with one disk of every multi-disk lease (three or four disks), from a time
/// the seed picks to the end of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFault {
    /// Every I/O fails at once (EIO); a write lands nothing.
    Fail,
    /// Every I/O hangs, answering only long after its deadline; a write lands nothing.
    Hang,
    /// The disk is swapped for a zeroed one, which then works (writes in flight land on it).
    Replace,
}

#[derive(Debug)]
enum Ev {
    /// The faulty lease disk is swapped for a zeroed one.
    ReplaceDisk,
    Boot {
        n: usize,
    },
    Tick {
        n: usize,
        inc: u32,
    },
    Land {
        flight: FlightId,
        index: usize,
    },
    Complete {
        flight: FlightId,
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
        pid: i32,
        signalled: bool,
    },
    Reap {
        n: usize,
        inc: u32,
        pid: i32,
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
    /// Host messages: the joined hosts message (or fence) one of them.
    MailBurst,
    EndFaults,
    CalmOver,
    LivenessStart,
    LivenessDeadline,
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
    Release {
        r: usize,
    },
    Convert {
        r: usize,
    },
    Request {
        r: usize,
    },
    Acquire {
        r: usize,
        shared: bool,
    },
    /// A new client process starts and registers.
    Spawn,
    /// The orphans of `r` are released (REL_ORPHAN).
    ReleaseOrphans {
        r: usize,
    },
    /// `client message` (or `client fence`) to host `target`, on a connection of its own.
    Message {
        target: usize,
        fence: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stubborn {
    No,
    IgnoresTerm,
    Unkillable,
}

/// A client process of a host.
#[derive(Debug, Clone)]
struct Proc {
    /// Its slot in the daemon's client table.
    ci: usize,
    stubborn: Stubborn,
    /// A signal or its own choice will end it.
    exiting: bool,
    /// It has exited; the daemon has not heard yet.
    exited: bool,
    /// The leases it holds as it sees them, and whether each is persistent.
    holds: BTreeMap<usize, bool>,
}

/// A request waiting for the daemon's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    /// ADD_LOCKSPACE on a connection of its own (slot `ci`).
    Join {
        ci: usize,
    },
    Acquire {
        r: usize,
        persistent: bool,
        shared: bool,
    },
    Release {
        r: usize,
    },
    Convert {
        r: usize,
    },
    /// REQUEST on a connection of its own.
    Request {
        ci: usize,
    },
    /// RELEASE with REL_ORPHAN, from a client.
    ReleaseOrphans,
    Killpath,
    /// REG_EVENT on a connection of its own (which the shell then hands over as the event fd).
    RegEvent {
        ci: usize,
    },
    /// MESSAGE_SEND or FENCE on a connection of its own: to host `target`, with `data`, sent
    /// in our generation `from_gen`.
    Message {
        ci: usize,
        target: usize,
        data: u64,
        fence: bool,
        from_gen: u64,
    },
}

impl Cmd {
    /// The resource a lease request is about.
    fn resource(self) -> Option<usize> {
        match self {
            Cmd::Acquire { r, .. } | Cmd::Release { r } | Cmd::Convert { r } => Some(r),
            _ => None,
        }
    }
}

/// A request of process `pid` (0: the daemon's own tools) waiting for its reply; `alive` dies
/// with the engine's waiter if the engine drops the request unanswered.
#[derive(Debug)]
struct Pending {
    pid: i32,
    cmd: Cmd,
    alive: std::sync::Weak<()>,
}

struct Node {
    name: Name,
    host_id: HostId,
    clock: HostClock,
    /// The daemon's machine, while the host is up.
    daemon: Option<Engine>,
    inc: u32,
    paused_until: Duration,
    next_tick: Option<Duration>,
    /// Per resource: the process holding it here (at most one per host).
    holders: BTreeMap<usize, i32>,
    /// The client processes, by pid.
    procs: BTreeMap<i32, Proc>,
    /// Requests waiting for the daemon's reply.
    pending: BTreeMap<ReplyTo, Pending>,
    /// Signals in this turn follow a StopHolders within the grace (`Some(true)`), after it
    /// (`Some(false)`), or a request's StopHolder (`None`).
    stop_context: Option<bool>,
    /// A StopHolders came in this turn: every holder must be stopped by its end.
    stop_check: bool,
    /// The lockspace failed and has not been joined again.
    failed: bool,
    /// The lockspace renews (joined and not failed).
    joined: bool,
    /// What wdmd was last told: the armed lockspace's expire, on our clock (whole seconds,
    /// as TEST_LIVE carries it).
    armed: Option<Time>,
    /// The renewal of the last TEST_LIVE, on our clock.
    last_renewal: Option<Time>,
    last_pet: Duration,
    pets: u64,
    device_closed: bool,
    /// Boots next as host 0's clone (same host_id, joining at the same instant).
    clone_of_0: bool,
    loss: Option<(Duration, bool)>,
    /// Resources whose current operation met an injected fault.
    faulted: BTreeMap<usize, bool>,
    /// Per resource: false once an operation on it met a fault in this generation (a fault
    /// can leave a record behind that only this host's death clears).
    clean: BTreeMap<usize, bool>,
    /// Resources whose release failed and, unless it was given up, goes on in the
    /// background: held on disk until a retry succeeds.
    releasing: BTreeSet<usize>,
}

/// One run of the random simulator.
pub struct World {
    cfg: SimConfig,
    p: Params,
    timeouts: Timeouts,
    now: Duration,
    agenda: Agenda<Ev>,
    disk: SimDisk,
    /// Every I/O between issue and its last landing or completion (core's one model of them).
    flights: Flights<Planned>,
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
    /// The faulty disk of multi-disk leases: which, what, and from when.
    disk_fault: Option<(usize, DiskFault, Duration)>,
    /// Another disk of multi-disk leases that fails one I/O in ten, all run long: with the
    /// broken one, a ballot may meet two failing disks of three (and must then fail).
    flaky_disk: Option<usize>,
    /// Per leader sector: the issue time of the newest write landed there.
    leader_writes: BTreeMap<usize, Duration>,
    /// The next client process's pid.
    next_pid: i32,
    /// The next request's reply id.
    next_reply: u64,
    /// Host messages: what was delivered and fenced, their own randomness (so that runs
    /// without messages stay as they were), and the next message's data.
    ledger: crate::mail::Ledger,
    mail_rng: Rng,
    next_data: u64,
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
        let mut p = Params::pick(cfg.seed, &cfg.faults);
        if cfg.late_joins {
            // Renewals 20 s apart; a read bound from a lockspace made with io_timeout 1 lasts
            // 1.98 s of them; late joiners (N = 2) hold 4 s after their claim.
            p.late_joiner = true;
            p.io_timeout_s = 10;
            p.lockspace_io_timeout_s = 1;
            p.late_io_timeout_s = 2;
        }
        let mut rng = Rng::new(cfg.seed);
        let space = name("SIMLS");
        let resources: Vec<Name> = (0..cfg.resources).map(|r| name(&format!("R{r}"))).collect();
        let ls = lockspace_init(geometry(), space, p.lockspace_io_timeout_s as u16);
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
            for _ in 0..cfg.lease_disks {
                image.extend_from_slice(&lease);
            }
        }
        // Drawn from a generator of its own, so that single-disk runs stay as they were.
        let disk_fault = (cfg.lease_disks >= 3).then(|| {
            let mut r = Rng::new(cfg.seed ^ 0x6469_736b);
            let fault = match r.below(3) {
                0 => DiskFault::Fail,
                1 => DiskFault::Hang,
                _ => DiskFault::Replace,
            };
            let disk = r.below(cfg.lease_disks as u64) as usize;
            let from = Duration::from_secs(r.below(cfg.seconds.max(1)));
            (disk, fault, from)
        });
        let flaky_disk = disk_fault.map(|(k, _, _)| (k + 1) % cfg.lease_disks);
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
                    daemon: None,
                    inc: 0,
                    paused_until: Duration::ZERO,
                    next_tick: None,
                    holders: BTreeMap::new(),
                    procs: BTreeMap::new(),
                    pending: BTreeMap::new(),
                    stop_context: None,
                    stop_check: false,
                    failed: false,
                    joined: false,
                    armed: None,
                    last_renewal: None,
                    last_pet: Duration::ZERO,
                    pets: 0,
                    device_closed: false,
                    clone_of_0: false,
                    loss: None,
                    faulted: BTreeMap::new(),
                    clean: BTreeMap::new(),
                    releasing: BTreeSet::new(),
                }
            })
            .collect();
        let resources_len = cfg.resources;
        let lease_disks = cfg.lease_disks;
        let cfg_hosts = cfg.hosts;
        let cfg_seed = cfg.seed;
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
            flights: Flights::new(cfg_hosts, SECTOR),
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
            leader_writes: (0..resources_len * lease_disks)
                .map(|i| (((i as u64 + 1) * MIB) as usize / SECTOR, Duration::ZERO))
                .collect(),
            disk_fault,
            flaky_disk,
            next_pid: 1000,
            next_reply: 0,
            ledger: crate::mail::Ledger::default(),
            mail_rng: Rng::new(cfg_seed ^ 0x6d61_696c),
            next_data: 1,
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
            if self.cfg.messages {
                self.check_fenced();
            }
        }
        self.stats.bytes_read = self.disk.bytes_read();
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

    /// Host `n` is one of the upper half that boots late (never host 0 or 1).
    fn late_joiner(&self, n: usize) -> bool {
        self.p.late_joiner && n > 1 && 2 * n >= self.nodes.len()
    }

    /// Host `n`'s own io_timeout N (the world's timeouts are the largest).
    fn io_timeout_s(&self, n: usize) -> u64 {
        match self.p.late_io_timeout_s {
            late if late > 0 && self.late_joiner(n) => late.min(self.p.io_timeout_s),
            _ => self.p.io_timeout_s,
        }
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
        let clone = self.p.clone_start && self.faults_on && self.nodes.len() > 1;
        let mut first_boot = Duration::ZERO;
        for n in 0..self.nodes.len() {
            let at = if clone && n == 1 {
                // A clone of host 0 (same configuration but the name) starts with it.
                self.nodes[1].host_id = self.nodes[0].host_id;
                self.nodes[1].clone_of_0 = true;
                first_boot
            } else if self.late_joiner(n) {
                // The upper half's first joins come while the others hold and contend.
                self.host_dead() + self.uniform(end / 2)
            } else {
                self.millis(5_000)
            };
            if n == 0 {
                first_boot = at;
                self.nodes[0].clone_of_0 = clone;
            }
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
        if self.cfg.messages {
            let at = self.host_dead();
            self.agenda.schedule(at, Ev::MailBurst);
        }
        self.agenda.schedule(end, Ev::EndFaults);
        if let Some((_, DiskFault::Replace, from)) = self.disk_fault {
            self.agenda.schedule(from, Ev::ReplaceDisk);
        }
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

    /// Runs `act` for host `n`'s current incarnation at `at` (dropped if the host is reset).
    fn act_at(&mut self, at: Duration, n: usize, act: Act) {
        let inc = self.nodes[n].inc;
        self.agenda.schedule(at, Ev::Act { n, inc, act });
    }

    /// Fails the run on resource `r`, naming host `n` and every other host holding `r`.
    fn fail_on_resource(&mut self, n: usize, r: usize, violation: Violation) {
        let others = (0..self.nodes.len()).filter(|&o| o != n && self.inv.holding(r, o).is_some());
        let hosts = std::iter::once(n).chain(others).collect();
        self.fail(violation, hosts);
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
                    self.input(n, Input::Timer);
                }
            }
            Ev::Land { flight, index } => self.land(flight, index),
            Ev::Complete { flight } => self.complete(flight),
            Ev::Deliver { n, inc, id, result } => {
                if self.nodes[n].inc == inc {
                    self.input(n, Input::IoDone(vec![(id, result)]));
                }
            }
            Ev::Wdmd { n, inc } => self.wdmd(n, inc),
            Ev::WatchdogFire { n, inc, pets } => {
                if self.nodes[n].inc == inc && self.nodes[n].pets == pets {
                    self.check_reset_in_time(n);
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
                pid,
                signalled,
            } => {
                if self.nodes[n].inc == inc {
                    self.exit(n, pid, signalled);
                }
            }
            Ev::Reap { n, inc, pid } => {
                if self.nodes[n].inc == inc {
                    self.reap(n, pid);
                }
            }
            Ev::Pause { n, length } => {
                if self.faults_on && self.nodes[n].daemon.is_some() {
                    self.stats.pauses += 1;
                    // Operations under way will see their I/O time out.
                    let busy: Vec<usize> = self.nodes[n]
                        .pending
                        .values()
                        .filter_map(|p| p.cmd.resource())
                        .collect();
                    for r in busy {
                        self.nodes[n].faulted.insert(r, true);
                    }
                    let until = self.now + length;
                    self.nodes[n].paused_until = self.nodes[n].paused_until.max(until);
                    self.note(n, format!("daemon pauses for {:.1}s", length.as_secs_f64()));
                }
            }
            Ev::Crash { n, down } => {
                if self.faults_on && self.nodes[n].daemon.is_some() {
                    self.stats.crashes += 1;
                    self.note(n, format!("powers off for {:.1}s", down.as_secs_f64()));
                    self.power_off(n);
                    self.agenda.schedule(self.now + down, Ev::Boot { n });
                }
            }
            Ev::Loss { n, length, fail } => {
                if self.faults_on && self.nodes[n].daemon.is_some() {
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
            Ev::MailBurst => self.mail_burst(),
            Ev::ReplaceDisk => {
                let (k, _, _) = self.disk_fault.expect("a replacement is the disk fault");
                self.replace_disk(k);
            }
            Ev::EndFaults => {
                self.faults_on = false;
                self.note(0, "faults stop; every host restarts".into());
                for n in 0..self.nodes.len() {
                    if self.nodes[n].daemon.is_some() {
                        self.power_off(n);
                        let at = self.now + self.millis(5_000);
                        self.agenda.schedule(at, Ev::Boot { n });
                    }
                }
            }
            Ev::CalmOver => {
                self.calm_over = true;
                self.note(0, "random work stops; every lease is let go".into());
                for n in 0..self.nodes.len() {
                    let held: Vec<usize> = self.nodes[n].holders.keys().copied().collect();
                    for r in held {
                        let at = self.now + self.millis(1_000);
                        self.act_at(at, n, Act::Release { r });
                    }
                    for r in 0..self.cfg.resources {
                        let at = self.now + self.millis(1_000);
                        self.act_at(at, n, Act::ReleaseOrphans { r });
                    }
                }
            }
            Ev::LivenessStart => self.liveness_start(),
            Ev::LivenessDeadline => self.liveness_deadline(),
        }
    }

    fn boot(&mut self, n: usize) {
        if self.nodes[n].daemon.is_some() {
            return;
        }
        let config = DaemonConfig {
            use_watchdog: true,
            kill_grace_s: self.p.kill_grace_s,
            ..DaemonConfig::default()
        };
        let seed = self.rng.next_u64();
        let now = self.local(n);
        let keeper = Keeper::Wdmd(Default::default());
        let mut engine = Engine::new(config, self.nodes[n].name, seed, keeper, now);
        engine.observe_outputs();
        #[cfg(feature = "mutants")]
        {
            engine.set_core_mutant(self.cfg.mutant);
            engine.set_mutant(self.cfg.daemon_mutant);
        }
        let wrong = self.faults_on && self.cfg.hosts > 1 && self.pct(self.p.wrong_host_id_pct);
        let clone = std::mem::take(&mut self.nodes[n].clone_of_0);
        let node = &mut self.nodes[n];
        node.inc += 1;
        node.daemon = Some(engine);
        node.host_id = if clone {
            HostId::new(1).expect("1")
        } else if wrong {
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
        let at = self.now
            + if clone {
                Duration::from_secs(1)
            } else {
                self.millis(2_000)
            };
        self.act_at(at, n, Act::Join);
        let at = self.now + self.millis(10_000);
        self.agenda.schedule(at, Ev::Wdmd { n, inc });
        for _ in 0..self.cfg.clients {
            self.spawn(n);
        }
    }

    /// The machine stops: the daemon, its processes, wdmd. I/O already on its way still lands.
    fn power_off(&mut self, n: usize) {
        let held: Vec<usize> = self.nodes[n].holders.keys().copied().collect();
        for r in held {
            self.inv.dropped(r, n);
        }
        self.flights.crash(n);
        let node = &mut self.nodes[n];
        node.daemon = None;
        node.inc += 1;
        node.holders.clear();
        node.procs.clear();
        node.pending.clear();
        node.stop_context = None;
        node.stop_check = false;
        node.failed = false;
        node.joined = false;
        node.armed = None;
        node.last_renewal = None;
        node.next_tick = None;
        node.loss = None;
        node.paused_until = Duration::ZERO;
        node.faulted.clear();
        node.clean.clear();
        node.releasing.clear();
    }

    /// ADD_LOCKSPACE, on a connection of its own, as `sanlock client add_lockspace` sends it.
    fn join(&mut self, n: usize) {
        let Some(engine) = self.nodes[n].daemon.as_mut() else {
            return;
        };
        let Some(ci) = engine.connect(0) else {
            return;
        };
        let host_id = self.nodes[n].host_id.get();
        let (header, call) = requests::add_lockspace(self.space, host_id, self.io_timeout_s(n));
        self.call(n, ci, 0, header, call, Cmd::Join { ci });
    }

    /// Hands host `n`'s daemon request `call` on connection `ci` for process `pid`.
    fn call(&mut self, n: usize, ci: usize, pid: i32, header: Header, call: Call, cmd: Cmd) {
        let to = ReplyTo(self.next_reply);
        self.next_reply += 1;
        let (waiter, alive) = Waiter::new(header, to);
        self.nodes[n]
            .pending
            .insert(to, Pending { pid, cmd, alive });
        self.input(n, Input::Call { ci, waiter, call });
    }

    /// Hands host `n`'s daemon `input` at its clock's time, then carries out what it decided.
    fn input(&mut self, n: usize, input: Input) {
        let now = self.local(n);
        let Some(engine) = self.nodes[n].daemon.as_mut() else {
            return;
        };
        engine.handle(now, input);
        self.drain(n);
    }

    /// Hands the daemon's I/O to the disk, checks what its host did, carries out its actions
    /// (in the order decided), and schedules its next timer.
    fn drain(&mut self, n: usize) {
        loop {
            let Some(engine) = self.nodes[n].daemon.as_mut() else {
                return;
            };
            let turn = engine.take_turn();
            if turn.is_empty() {
                break;
            }
            for (_, request) in turn.io {
                let target = self.target_of(request.offset);
                self.start_io(n, target, request);
            }
            for happened in turn.events {
                match happened {
                    Happened::Output(out) => self.output(n, out),
                    Happened::Action(action) => self.action(n, action),
                }
            }
            if std::mem::take(&mut self.nodes[n].stop_check) {
                self.check_all_stopped(n);
            }
            self.nodes[n].stop_context = None;
        }
        self.dropped_requests(n);
        let Some(engine) = self.nodes[n].daemon.as_ref() else {
            return;
        };
        let next = engine.poll_timeout();
        let at = self.nodes[n].clock.global(next).max(self.now);
        if self.nodes[n].next_tick.is_none_or(|t| at < t) {
            self.nodes[n].next_tick = Some(at);
            let inc = self.nodes[n].inc;
            self.agenda.schedule(at, Ev::Tick { n, inc });
        }
    }

    /// What an I/O at `offset` is for: the lockspace in the first MiB, else that resource.
    fn target_of(&self, offset: u64) -> Target {
        match self.lease_disk_of(offset) {
            Some((r, _)) => Target::Resource(self.space, self.resources[r]),
            None => Target::Lockspace(self.space),
        }
    }

    /// Where resource `r`'s lease starts on its `k`th disk (each disk a MiB of the image).
    pub(super) fn lease_offset(&self, r: usize, k: usize) -> u64 {
        (1 + (r * self.cfg.lease_disks + k) as u64) * MIB
    }

    /// The resource and lease disk an offset is on, if it is on one.
    pub(super) fn lease_disk_of(&self, offset: u64) -> Option<(usize, usize)> {
        let i = (offset / MIB).checked_sub(1)? as usize;
        let k = self.cfg.lease_disks;
        (i < self.resources.len() * k).then_some((i / k, i % k))
    }

    /// The faulty lease disk's swap for a zeroed one.
    fn replace_disk(&mut self, k: usize) {
        self.note(0, format!("lease disk {k} replaced by a zeroed one"));
        let zero = [0u8; SECTOR];
        for r in 0..self.resources.len() {
            let first = self.lease_offset(r, k) as usize / SECTOR;
            for sector in first..first + MIB as usize / SECTOR {
                self.disk.land(self.now, sector, &zero);
            }
        }
    }

    /// Requests the engine dropped unanswered: the client sees its connection end.
    fn dropped_requests(&mut self, n: usize) {
        let gone: Vec<ReplyTo> = self.nodes[n]
            .pending
            .iter()
            .filter(|(_, p)| p.alive.strong_count() == 0)
            .map(|(&to, _)| to)
            .collect();
        for to in gone {
            self.reply(n, to, -32, &[]);
        }
    }
}
