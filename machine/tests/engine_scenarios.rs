//! The daemon machine run whole, in virtual time and without sockets: a small driver plays the
//! shell (its disks are `MemDisk`s, its clock is a number, its processes are pids), hands the
//! engine inputs and checks the actions and the disk. Each test is one of sanlock's client
//! lifecycle cases end to end: what the daemon tests check against the real binaries, here as
//! a replayable list of inputs.

use std::collections::BTreeMap;
use std::time::Duration;

use sanlock_core::io::IoRequest;
use sanlock_core::memdisk::MemDisk;
use sanlock_core::ondisk::leader::PAXOS_DISK_MAGIC;
use sanlock_core::ondisk::{
    lockspace_init, resource_init, Geometry, Name, RawLeader, ResourceInit, SectorSize,
};
use sanlock_core::Time;
use sanlock_machine::daemon::config::DaemonConfig;
use sanlock_machine::daemon::{Action, Call, DiskNo, Engine, Input, Reply, ReplyTo, Waiter};
use sanlock_machine::recovery::StopSignal;
use sanlock_machine::watchdog::Keeper;
use sanlock_machine::wire::{Cmd, Header, WireDisk, WireLockspace, WireOptions, WireResource};

const LS_PATH: &[u8] = b"/sim/ls";
const RES_PATH: &[u8] = b"/sim/res";
const IO_TIMEOUT: u32 = 2;

/// The shell, played by a test.
struct Shell {
    engine: Engine,
    now: Time,
    disks: BTreeMap<DiskNo, MemDisk>,
    paths: BTreeMap<Vec<u8>, DiskNo>,
    /// Replies, by request.
    replies: BTreeMap<ReplyTo, Reply>,
    next_reply: u64,
    /// I/O held back (a hung disk) instead of completing at once, by disk.
    hung: Vec<DiskNo>,
    held: Vec<(DiskNo, IoRequest)>,
    signals: Vec<(i32, StopSignal)>,
    log: Vec<String>,
}

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

fn geometry() -> Geometry {
    Geometry::legacy(SectorSize::Bytes512)
}

impl Shell {
    /// A daemon (`-w 0`, kill grace `grace`) with a lockspace LS and a resource R1, each on a
    /// disk of its own.
    fn new(grace: u64) -> Shell {
        Shell::with(DaemonConfig {
            use_watchdog: false,
            kill_grace_s: grace,
            ..DaemonConfig::default()
        })
    }

    /// The same daemon with the configuration `cfg`.
    fn with(cfg: DaemonConfig) -> Shell {
        let now = Time::new(Duration::from_secs(1000));
        let engine = Engine::new(cfg, name("host1"), 7, Keeper::Off, now);
        let ls = lockspace_init(geometry(), name("LS"), IO_TIMEOUT as u16);
        let mut image = ls.area;
        image[..512].copy_from_slice(&ls.commit_sector);
        let res = resource_init(&ResourceInit {
            geometry: geometry(),
            space_name: name("LS"),
            resource_name: name("R1"),
            num_hosts: 4,
            clear_at_s: None,
        });
        let mut shell = Shell {
            engine,
            now,
            disks: BTreeMap::new(),
            paths: BTreeMap::new(),
            replies: BTreeMap::new(),
            next_reply: 0,
            hung: Vec::new(),
            held: Vec::new(),
            signals: Vec::new(),
            log: Vec::new(),
        };
        for (no, (path, bytes)) in [(LS_PATH, image), (RES_PATH, res)].into_iter().enumerate() {
            shell.disks.insert(DiskNo(no), MemDisk::from_bytes(bytes));
            shell.paths.insert(path.to_vec(), DiskNo(no));
        }
        shell
    }

    /// Hands the engine `input`, then does what it decided until it is quiet.
    fn input(&mut self, input: Input) {
        self.engine.handle(self.now, input);
        self.settle();
    }

    fn settle(&mut self) {
        loop {
            let mut done = Vec::new();
            for (disk, request) in self.engine.take_io() {
                if self.hung.contains(&disk) {
                    self.held.push((disk, request));
                } else {
                    let result = self.disks.get_mut(&disk).unwrap().apply(&request);
                    done.push((request.id, result));
                }
            }
            let actions = self.engine.take_actions();
            if done.is_empty() && actions.is_empty() {
                return;
            }
            for action in actions {
                self.act(action);
            }
            if !done.is_empty() {
                self.engine.handle(self.now, Input::IoDone(done));
            }
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Reply { to, reply } => {
                self.replies.insert(to, reply);
            }
            Action::Signal { pid, signal } => self.signals.push((pid, signal)),
            Action::Log(_, line) => self.log.push(line),
            Action::Probe { space_id, .. } => {
                let result = Ok(geometry());
                self.engine
                    .handle(self.now, Input::Probed { space_id, result });
            }
            Action::Open { path } => {
                let result = self
                    .paths
                    .get(&path)
                    .copied()
                    .ok_or((-2, "no such disk".into()));
                self.engine
                    .handle(self.now, Input::DiskOpened { path, result });
            }
            Action::WatchPid { .. } => {}
            other => panic!("an action this world does not expect: {}", kind(&other)),
        }
    }

    /// Lets `seconds` of virtual time pass, waking the engine at each deadline it asks for.
    fn wait(&mut self, seconds: f64) {
        let until = self.now + Duration::from_secs_f64(seconds);
        loop {
            let wake = self.engine.poll_timeout().max(self.now);
            if wake > until {
                break;
            }
            self.now = wake;
            self.input(Input::Timer);
        }
        self.now = until;
    }

    /// A request on connection `ci`; its reply id.
    fn call(&mut self, ci: usize, header: Header, call: Call) -> ReplyTo {
        let to = ReplyTo(self.next_reply);
        self.next_reply += 1;
        let (waiter, _alive) = Waiter::new(header, to);
        self.input(Input::Call { ci, waiter, call });
        to
    }

    /// The result of request `to`, if answered.
    fn rv(&self, to: ReplyTo) -> Option<i32> {
        let reply = self.replies.get(&to)?;
        let bytes: &[u8; 32] = reply.bytes[..32].try_into().unwrap();
        Some(Header::decode(bytes).rv())
    }

    /// Joins LS as host 1 (from a connection of pid 50); returns when the add is answered.
    fn join(&mut self) {
        let ci = self.engine.connect(50).unwrap();
        let ls = ls_host1();
        let h = Header::request(Cmd::AddLockspace, 0, IO_TIMEOUT, 0, 0);
        let to = self.call(ci, h, Call::AddLockspace(ls));
        assert_eq!(self.answer_within(to, 100.0), Some(0), "add_lockspace");
        self.input(Input::Closed { ci });
    }

    /// The result of request `to`, waiting up to `seconds` of virtual time for it.
    fn answer_within(&mut self, to: ReplyTo, seconds: f64) -> Option<i32> {
        let until = self.now + Duration::from_secs_f64(seconds);
        while self.rv(to).is_none() && self.now < until {
            self.wait(0.5);
        }
        self.rv(to)
    }

    /// A registered client of process `pid`.
    fn client(&mut self, pid: i32) -> usize {
        let ci = self.engine.connect(pid).unwrap();
        self.input(Input::Register { ci });
        ci
    }

    /// Client `ci` asks for R1, exclusive.
    fn acquire(&mut self, ci: usize) -> ReplyTo {
        let h = Header::request(Cmd::Acquire, 0, 1, u32::MAX, 0);
        self.call(ci, h, acquire_r1())
    }

    /// R1's leader as it is on disk: its owner's host_id, and whether it is held (a
    /// timestamp) or free.
    fn r1_on_disk(&self) -> (u64, bool) {
        let disk = &self.disks[&DiskNo(1)];
        let leader = RawLeader::parse(&disk.bytes()[..512]).unwrap();
        assert_eq!(leader.magic, PAXOS_DISK_MAGIC);
        (leader.owner_id, leader.timestamp != 0)
    }

    /// Joins, lets process 100 take R1, then hangs the lockspace's disk until the renewals
    /// fail and 100 gets its first SIGTERM: its slot and when the disk hung.
    fn holder_until_sigterm(&mut self) -> (usize, Time) {
        self.join();
        let ci = self.client(100);
        let to = self.acquire(ci);
        assert_eq!(self.rv(to), Some(0));
        // The lockspace's disk stops answering: renewals time out.
        self.hung.push(DiskNo(0));
        let started = self.now;
        while self.signals_to(100).is_empty() {
            self.wait(0.5);
            assert!(self.now < started + Duration::from_secs(60), "no SIGTERM");
        }
        assert_eq!(self.signals_to(100), [StopSignal::Term]);
        (ci, started)
    }

    fn signals_to(&self, pid: i32) -> Vec<StopSignal> {
        self.signals
            .iter()
            .filter(|(p, _)| *p == pid)
            .map(|(_, s)| *s)
            .collect()
    }
}

fn kind(a: &Action) -> &'static str {
    match a {
        Action::RunKillpath(_) => "killpath",
        Action::Watchdog(_) => "watchdog",
        Action::Event { .. } => "event",
        Action::ReplyLogDump { .. } => "log dump",
        Action::RindexFormat { .. } | Action::RindexRead { .. } | Action::RindexChange { .. } => {
            "rindex"
        }
        _ => "other",
    }
}

#[test]
fn a_client_that_dies_holding_a_lease_has_it_released_on_disk() {
    let mut sh = Shell::new(40);
    sh.join();
    let ci = sh.client(100);
    let to = sh.acquire(ci);
    assert_eq!(sh.rv(to), Some(0), "acquire");
    assert_eq!(sh.r1_on_disk(), (1, true), "held by host 1");
    sh.input(Input::ProcessExited { ci, pid: 100 });
    assert_eq!(sh.r1_on_disk(), (1, false), "released on disk at once");
    assert!(
        sh.log.iter().any(|l| l.contains("pid 100 dead")),
        "{:?}",
        sh.log
    );
    // Its connection closes too: nothing more happens, the slot goes.
    sh.input(Input::Closed { ci });
    assert!(sh.signals.is_empty());
}

#[test]
fn a_client_that_dies_mid_acquire_gets_nothing_and_the_lease_goes_back() {
    let mut sh = Shell::new(40);
    sh.join();
    let ci = sh.client(100);
    // The lease's disk is slow: the acquire is under way when the process dies.
    sh.hung.push(DiskNo(1));
    let to = sh.acquire(ci);
    sh.input(Input::ProcessExited { ci, pid: 100 });
    assert_eq!(sh.rv(to), None, "the command is still under way");
    sh.hung.clear();
    // The disk answers one request at a time, in order.
    while !sh.held.is_empty() {
        let (disk, request) = sh.held.remove(0);
        let result = sh.disks.get_mut(&disk).unwrap().apply(&request);
        sh.engine
            .handle(sh.now, Input::IoDone(vec![(request.id, result)]));
        sh.settle();
    }
    assert_eq!(
        sh.rv(to),
        Some(-25),
        "-ENOTTY, as sanlock answers a dead client's acquire"
    );
    assert!(!sh.r1_on_disk().1, "given back on disk");
    // Another client takes it at once.
    let other = sh.client(200);
    let to = sh.acquire(other);
    assert_eq!(sh.rv(to), Some(0));
}

#[test]
fn when_renewals_fail_a_holder_gets_sigterm_at_8n_then_sigkill_after_the_grace() {
    let grace = 10;
    let mut sh = Shell::new(grace);
    let idle = sh.client(300);
    let (ci, started) = sh.holder_until_sigterm();
    let term_at = sh.now.saturating_since(started).as_secs_f64();
    // The last renewal was at most 2N before the disk hung: SIGTERM between 6N and 8N later.
    let n = f64::from(IO_TIMEOUT);
    assert!(
        (6.0 * n..=8.0 * n + 1.0).contains(&term_at),
        "SIGTERM after {term_at} s"
    );
    assert_eq!(sh.signals_to(100), [StopSignal::Term]);
    while !sh.signals_to(100).contains(&StopSignal::Kill) {
        sh.wait(0.5);
        assert!(sh.now < started + Duration::from_secs(120), "no SIGKILL");
    }
    let kill_at = sh.now.saturating_since(started).as_secs_f64();
    assert!(
        kill_at >= term_at + grace as f64 - 1.0,
        "SIGKILL {kill_at} s, SIGTERM {term_at} s, grace {grace} s"
    );
    assert!(
        sh.signals_to(300).is_empty(),
        "the idle client is left alone"
    );
    let terms = sh
        .signals_to(100)
        .iter()
        .filter(|s| **s == StopSignal::Term)
        .count();
    assert!(
        terms >= 2,
        "SIGTERM once a second within the grace: {terms}"
    );
    // It dies: the lockspace had failed, so nothing is written; recovery ends.
    sh.input(Input::ProcessExited { ci, pid: 100 });
    let signals = sh.signals.len();
    sh.wait(5.0);
    assert_eq!(sh.signals.len(), signals, "no more stops once it is gone");
    let _ = idle;
}

#[test]
fn an_acquire_waiting_on_a_slow_disk_holds_up_no_other_request() {
    let mut sh = Shell::new(40);
    sh.join();
    let ci = sh.client(100);
    sh.hung.push(DiskNo(1));
    let to = sh.acquire(ci);
    // STATUS from another connection is answered within the same turn.
    let other = sh.engine.connect(60).unwrap();
    let status = sh.call(
        other,
        Header::request(Cmd::Status, 0, 0, 0, 0),
        Call::Status,
    );
    assert!(sh.replies.contains_key(&status));
    assert_eq!(sh.rv(to), None);
    assert!(!sh.engine.finished());
}

#[test]
fn with_pid_target_same_uid_only_root_or_the_processs_own_user_may_name_it_by_pid() {
    const EPERM: i32 = -1;
    // (the key set, the caller's uid; the target process runs as uid 1000)
    for (strict, caller_uid) in [(false, Some(1001)), (true, Some(1001)), (true, None)]
        .into_iter()
        .chain([(true, Some(1000)), (true, Some(0))])
    {
        let mut shell = Shell::with(DaemonConfig {
            use_watchdog: false,
            pid_target_same_uid: strict,
            ..DaemonConfig::default()
        });
        let target = shell.engine.connect_peer(60, Some(1000)).unwrap();
        shell.input(Input::Register { ci: target });
        let caller = shell.engine.connect_peer(70, caller_uid).unwrap();
        let refused = strict && !matches!(caller_uid, Some(0 | 1000));
        let case = format!("strict {strict}, caller uid {caller_uid:?}");

        let inquire = Header::request(Cmd::Inquire, 0, 0, 60, 0);
        let to = shell.call(caller, inquire, Call::Inquire);
        assert_eq!(
            shell.rv(to),
            Some(if refused { EPERM } else { 0 }),
            "inquire, {case}"
        );

        let release_all = Header::request(Cmd::Release, 1, 0, 60, 0);
        let to = shell.call(caller, release_all, Call::Release(Vec::new()));
        assert_eq!(
            shell.rv(to),
            Some(if refused { EPERM } else { 0 }),
            "release, {case}"
        );

        let acquire = Header::request(Cmd::Acquire, 0, 1, 60, 0);
        let to = shell.call(caller, acquire, acquire_r1());
        let rv = shell.rv(to).expect("answered at once: no lockspace");
        assert_eq!(rv == EPERM, refused, "acquire answered {rv}, {case}");

        // A process naming itself, or its own connection, is never refused.
        let own = Header::request(Cmd::Inquire, 0, 0, u32::MAX, 0);
        let to = shell.call(target, own, Call::Inquire);
        assert_eq!(shell.rv(to), Some(0), "own inquire, {case}");
    }
}

/// Lockspace LS on its disk, as host 1.
fn ls_host1() -> WireLockspace {
    WireLockspace {
        name: name("LS"),
        host_id: 1,
        flags: 0,
        disk: WireDisk {
            path: LS_PATH.to_vec(),
            offset: 0,
        },
    }
}

fn acquire_r1() -> Call {
    Call::Acquire {
        resources: vec![WireResource {
            lockspace_name: name("LS"),
            name: name("R1"),
            num_disks: 1,
            disks: vec![WireDisk {
                path: RES_PATH.to_vec(),
                offset: 0,
            }],
            ..WireResource::default()
        }],
        options: WireOptions::default(),
    }
}

#[test]
fn after_the_daemon_is_stopped_across_the_grace_the_next_turn_sends_sigkill() {
    // historical-bugs B24 (sanlock aa0092c): escalation goes by elapsed time, not by how many
    // checks were made. The daemon is SIGSTOPped right after its first SIGTERM and resumed
    // past the grace: its first turn after that must send SIGKILL, not count one more SIGTERM.
    let grace = 10;
    let mut sh = Shell::new(grace);
    let (_, _) = sh.holder_until_sigterm();
    // Stopped for grace + 5 s: one turn when it runs again.
    sh.now = sh.now + Duration::from_secs(grace + 5);
    sh.input(Input::Timer);
    assert_eq!(
        sh.signals_to(100),
        [StopSignal::Term, StopSignal::Kill],
        "the first turn after the stop escalates"
    );
}

#[test]
fn a_removal_during_the_add_cancels_it_and_the_lockspace_can_be_added_again() {
    // historical-bugs B23 (sanlock 85de31c, 7f34244): rem_lockspace while add_lockspace is
    // acquiring the host_id. The removal answers 0, the add -1 (§4.12), and nothing is left
    // half there: the same add then succeeds.
    let mut sh = Shell::new(40);
    let ls = ls_host1();
    let ci = sh.engine.connect(50).unwrap();
    let add = Header::request(Cmd::AddLockspace, 0, IO_TIMEOUT, 0, 0);
    let adding = sh.call(ci, add, Call::AddLockspace(ls.clone()));
    assert_eq!(sh.rv(adding), None, "the add waits out its 2N");
    let other = sh.engine.connect(51).unwrap();
    let rem = Header::request(Cmd::RemLockspace, 0, 0, 0, 0);
    let removing = sh.call(other, rem, Call::RemLockspace(ls.clone()));
    assert_eq!(sh.rv(removing), Some(0));
    sh.wait(30.0);
    assert_eq!(sh.rv(adding), Some(-1), "the add is cancelled");
    let again = sh.call(ci, add, Call::AddLockspace(ls));
    assert_eq!(sh.answer_within(again, 100.0), Some(0), "added again");
}

/// Client `ci` asks for R1 with the resource flags `res_flags` and acquire flags `flags`.
fn acquire_r1_with(sh: &mut Shell, ci: usize, res_flags: u32, flags: u32) -> ReplyTo {
    let Call::Acquire {
        mut resources,
        options,
    } = acquire_r1()
    else {
        unreachable!()
    };
    resources[0].flags = res_flags;
    let h = Header::request(Cmd::Acquire, flags, 1, u32::MAX, 0);
    sh.call(ci, h, Call::Acquire { resources, options })
}

#[test]
fn a_shared_orphan_is_adopted_shared_and_its_release_frees_the_lease() {
    // historical-bugs A14 (sanlock e66d5d1, 34402f8): adopting a shared orphan missed the
    // set-up an exclusive one had. A persistent shared lease outlives its holder as an
    // orphan; another process adopts it (ACQUIRE_ORPHAN), holds it shared, and its release
    // leaves the lease free on disk for an exclusive acquire.
    use sanlock_machine::wire::payload::{RES_PERSISTENT, RES_SHARED};
    const ACQUIRE_ORPHAN: u32 = 2;
    let mut sh = Shell::new(40);
    sh.join();
    let first = sh.client(100);
    let to = acquire_r1_with(&mut sh, first, RES_SHARED | RES_PERSISTENT, 0);
    assert_eq!(sh.rv(to), Some(0));
    sh.input(Input::ProcessExited {
        ci: first,
        pid: 100,
    });
    sh.input(Input::Closed { ci: first });
    let token = sh.engine.clients().tokens.get(&(name("LS"), name("R1")));
    assert!(
        token.is_some_and(|t| t.orphan && t.shared),
        "a shared orphan"
    );

    let second = sh.client(200);
    let to = acquire_r1_with(&mut sh, second, RES_SHARED | RES_PERSISTENT, ACQUIRE_ORPHAN);
    assert_eq!(sh.rv(to), Some(0), "adopted");
    let token = sh.engine.clients().tokens.get(&(name("LS"), name("R1")));
    assert!(
        token.is_some_and(|t| !t.orphan && t.shared && t.holders.contains(&second)),
        "held shared by its adopter"
    );
    let release = Header::request(Cmd::Release, 0, 1, u32::MAX, 0);
    let Call::Acquire { resources, .. } = acquire_r1() else {
        unreachable!()
    };
    let to = sh.call(second, release, Call::Release(resources));
    assert_eq!(sh.rv(to), Some(0), "released");
    assert!(sh.engine.clients().tokens.is_empty());
    // Nothing of it is left on disk: an exclusive acquire gets it at once.
    let third = sh.client(300);
    let to = acquire_r1_with(&mut sh, third, 0, 0);
    assert_eq!(sh.rv(to), Some(0), "free for an exclusive acquire");
}
