//! The client table (sanlock's `client[]`, wire.md §1.3, §4.1): one slot per connection, the
//! registered ones with their pid, leases and kill state. A registered client's liveness is its
//! connection and, in addition, a pidfd on its process; either ending releases its leases.
//! Stopping holders during recovery (algorithms.md §6.2) lives here too.

use std::collections::BTreeSet;

use rustix::process::{pidfd_open, Pid, PidfdFlags, Signal};
use sanlock_core::ondisk::Name;
use sanlock_core::Time;
use sanlock_machine::recovery::{KillState, Stop, StopSignal};
use tokio::io::unix::AsyncFd;
use tokio::net::UnixStream;

use super::engine::{Action, Engine, Job, Msg, MAX_CLIENTS};
use super::log;
pub use sanlock_machine::lease_slots::LeaseSlots;
pub use sanlock_machine::recovery::Killpath;

use crate::wire::payload::RES_PERSISTENT;

/// Runs a killpath program (no wait: a thread reaps it), as sanlock's helper forks it.
pub fn run_killpath(argv: &[Vec<u8>]) {
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = std::process::Command::new(std::ffi::OsStr::from_bytes(&argv[0]));
    cmd.args(argv[1..].iter().map(|a| std::ffi::OsStr::from_bytes(a)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    match cmd.spawn() {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => log::log(
            log::ERR,
            &format!("killpath {}: {e}", String::from_utf8_lossy(&argv[0])),
        ),
    }
}

/// Watches process `pid` of slot `ci` with a pidfd: [`Msg::ProcessExited`] when it exits.
pub(super) fn watch_pid(tx: &tokio::sync::mpsc::UnboundedSender<Msg>, ci: usize, pid: i32) {
    let Some(fd) = Pid::from_raw(pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok()) else {
        return;
    };
    let tx = tx.clone();
    tokio::spawn(async move {
        // SAFETY: the pidfd is moved into the AsyncFd and closed only when it drops.
        if let Ok(afd) = unsafe { AsyncFd::register(fd) } {
            let _ = afd.readable().await;
            let _ = tx.send(Msg::ProcessExited { ci, pid });
        }
    });
}

/// A signal of recovery as rustix names it.
pub(super) fn signal(s: StopSignal) -> Signal {
    match s {
        StopSignal::Term => Signal::TERM,
        StopSignal::Kill => Signal::KILL,
    }
}

/// One connection's slot.
pub struct Client {
    /// SO_PEERCRED pid of the connecting process.
    pub pid: i32,
    /// Shown in `status`: the pid until an ACQUIRE names an owner, or the command's name.
    pub owner_name: Name,
    /// REGISTER was sent: the connection is the process's liveness.
    pub registered: bool,
    /// The process died or its connection closed.
    pub dead: bool,
    /// The connection has closed. Only then may the slot be reused: messages from a
    /// connection carry its slot number until its last one (`Closed`).
    pub closed: bool,
    /// RESTRICT flags.
    pub restrict: u32,
    /// The last command received on the connection (`status -D`).
    pub cmd_last: u32,
    /// Leases held, in sanlock's token slots (inquire lists them in slot order).
    pub leases: LeaseSlots,
    /// The lease command under way for this client.
    pub(super) job: Option<Job>,
    /// Recovery's stops of this client so far.
    pub kill: KillState,
    /// KILLPATH: run instead of SIGTERM in recovery; copied into leases acquired after.
    pub killpath: Option<Killpath>,
}

impl Engine {
    /// A slot for a new connection, or `None` when the table is full.
    pub(super) fn alloc_client(&mut self, stream: &UnixStream) -> Option<usize> {
        let pid = stream.peer_cred().ok().and_then(|c| c.pid()).unwrap_or(-1);
        let client = Client {
            pid,
            owner_name: Name::EMPTY,
            registered: false,
            dead: false,
            closed: false,
            restrict: 0,
            cmd_last: 0,
            leases: LeaseSlots::default(),
            job: None,
            kill: KillState::default(),
            killpath: None,
        };
        if let Some(i) = self.clients.iter().position(Option::is_none) {
            self.clients[i] = Some(client);
            return Some(i);
        }
        if self.clients.len() >= MAX_CLIENTS {
            log::log(log::ERR, "client connection table full");
            return None;
        }
        self.clients.push(Some(client));
        Some(self.clients.len() - 1)
    }

    /// The slot `ci`, if used.
    pub(super) fn client(&self, ci: usize) -> Option<&Client> {
        self.clients.get(ci).and_then(Option::as_ref)
    }

    /// The slot `ci`, if used.
    pub(super) fn client_mut(&mut self, ci: usize) -> Option<&mut Client> {
        self.clients.get_mut(ci).and_then(Option::as_mut)
    }

    /// REGISTER: the connection becomes the process's liveness; no reply. A second REGISTER
    /// changes nothing.
    pub(super) fn register(&mut self, ci: usize) {
        let Some(c) = self.client_mut(ci) else { return };
        c.cmd_last = crate::wire::Cmd::Register as u32;
        if c.registered {
            return;
        }
        c.registered = true;
        c.owner_name = Name::truncated(c.pid.to_string().as_bytes());
        let pid = c.pid;
        log::log(log::INFO, &format!("cmd_register ci {ci} pid {pid}"));
        // The pidfd catches an exit even when a child inherited the connection.
        self.actions.push(Action::WatchPid { ci, pid });
    }

    /// Connection `ci` closed: an unregistered slot is freed; a registered client is dead and
    /// its leases are released (§4.1).
    pub(super) fn client_closed(&mut self, ci: usize) {
        let Some(c) = self.client_mut(ci) else { return };
        c.closed = true;
        if c.registered {
            self.client_died(ci);
        }
        self.free_if_done(ci);
    }

    /// The pidfd of slot `ci`'s process fired. The slot may have been reused meanwhile.
    pub(super) fn process_exited(&mut self, ci: usize, pid: i32) {
        if self
            .client(ci)
            .is_some_and(|c| c.registered && c.pid == pid)
        {
            self.client_died(ci);
        }
    }

    fn client_died(&mut self, ci: usize) {
        let Some(c) = self.client_mut(ci) else { return };
        if c.dead {
            return;
        }
        c.dead = true;
        log::log(
            log::INFO,
            &format!("client ci {ci} pid {} dead: releasing its leases", c.pid),
        );
        if c.job.is_some() {
            // The command under way releases everything when it finishes.
            return;
        }
        self.release_all(ci);
    }

    /// Releases every lease of a dead client; its slot is freed once its connection is gone
    /// too.
    pub(super) fn release_all(&mut self, ci: usize) {
        let leases = self
            .client(ci)
            .map(|c| c.leases.to_vec())
            .unwrap_or_default();
        for key in leases {
            self.release_in_background(ci, key);
        }
        self.free_if_done(ci);
        self.holders_check(self.now);
    }

    fn release_in_background(&mut self, ci: usize, key: (Name, Name)) {
        let mut pid = -1;
        if let Some(c) = self.client_mut(ci) {
            c.leases.remove(&key);
            pid = c.pid;
        }
        let Some(t) = self.tokens.get_mut(&key) else {
            return;
        };
        t.holders.retain(|&h| h != ci);
        if !t.holders.is_empty() {
            return;
        }
        let space_failed = self.spaces.iter().any(|s| s.ls.name == key.0 && s.failed);
        if t.flags & RES_PERSISTENT != 0 && !space_failed {
            // A persistent lease outlives its holder: it stays held on disk as an orphan
            // (§4.1), until adopted, released with REL_ORPHAN, or its lockspace stops.
            t.orphan = true;
            t.last_pid = pid;
            log::log(
                log::INFO,
                &format!(
                    "orphan {}:{}",
                    String::from_utf8_lossy(key.0.as_bytes()),
                    String::from_utf8_lossy(key.1.as_bytes())
                ),
            );
            return;
        }
        self.tokens.remove(&key);
        self.release_key(key);
    }

    /// Frees slot `ci` once its connection has closed and nothing is left of it: no command
    /// under way, no lease.
    pub(super) fn free_if_done(&mut self, ci: usize) {
        if self
            .client(ci)
            .is_some_and(|c| c.closed && c.job.is_none() && c.leases.is_empty())
        {
            self.clients[ci] = None;
        }
    }

    /// Records that `ci` holds `key`.
    pub(super) fn add_client_lease(&mut self, ci: usize, key: (Name, Name)) {
        if let Some(c) = self.client_mut(ci) {
            c.leases.insert(key);
        }
    }

    /// The registered clients holding leases in `space`.
    pub(super) fn holders_of(&self, space: Name) -> Vec<usize> {
        let mut out = BTreeSet::new();
        for ((ls, _), t) in &self.tokens {
            if *ls == space {
                out.extend(t.holders.iter().copied());
            }
        }
        out.into_iter().collect()
    }

    /// StopHolders from the host: stop every holder in `space` as `recovery` decides (graceful:
    /// SIGTERM or the killpath, else SIGKILL; at most once a second and 100 times per client).
    /// With no holders left, the host hears so at once.
    pub(super) fn stop_holders(&mut self, space: Name, graceful: bool) {
        self.killing.insert(space);
        let now = self.now;
        let holders = self.holders_of(space);
        let grace = self.cfg.kill_grace_s > 0;
        for ci in holders {
            let Some(c) = self.client_mut(ci) else {
                continue;
            };
            if c.dead {
                continue;
            }
            let pid = c.pid;
            let stop = c
                .kill
                .stop(now, graceful, grace, pid, c.restrict, c.killpath.as_ref());
            let count = c.kill.count;
            match stop {
                None => {}
                Some(Stop::RunKillpath(argv)) => {
                    log::log(log::ERR, &format!("kill {pid} sig 100 count {count}"));
                    self.actions.push(Action::RunKillpath(argv));
                }
                Some(Stop::Signal(signal)) => {
                    log::log(
                        log::ERR,
                        &format!("kill {pid} sig {} count {count}", signal.number()),
                    );
                    self.actions.push(Action::Signal { pid, signal });
                }
            }
        }
        self.holders_check(now);
    }

    /// KILLPATH: the target client's program for recovery and GRACEFUL requests.
    pub(super) fn set_killpath(&mut self, ci: usize, path: Vec<u8>, args: Vec<u8>, flags: u32) {
        if let Some(c) = self.client_mut(ci) {
            let with_pid = flags & 1 != 0 || c.killpath.as_ref().is_some_and(|k| k.with_pid);
            c.killpath = Some(Killpath {
                path,
                args,
                with_pid,
            });
        }
    }

    /// Tells the host about lockspaces being stopped whose holders are all gone.
    pub(super) fn holders_check(&mut self, now: Time) {
        let spaces: Vec<Name> = self.killing.iter().copied().collect();
        for space in spaces {
            if self.holders_of(space).is_empty() && !self.removal_blocked(space) {
                self.killing.remove(&space);
                self.driver.host_mut().holders_gone(now, space);
            }
        }
    }
}
