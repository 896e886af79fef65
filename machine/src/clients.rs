//! The client table and who holds which lease (sanlock's `client[]` and its tokens; wire.md
//! §1.3, §4.1; algorithms.md §6.2), in one place: the daemon and the simulator both run it.
//!
//! A slot per connection; a registered client's life is its connection and its process, either
//! ending makes it dead. A dead client keeps nothing: each lease it held is released, or, if
//! persistent and its lockspace renews, kept as an orphan. Recovery stops the holders of a
//! lockspace through [`KillState`]. Nothing here does anything: each decision is an [`Effect`]
//! for the caller (the daemon's engine, the simulated daemon) to take out with
//! [`ClientTable::take_effects`].
//!
//! The command under way for a client (its "cmd_active") is the caller's type `J`: the daemon
//! keeps reply channels there, the simulator its own bookkeeping. The table only asks whether
//! there is one, since a dead client with a command under way is released when it finishes.

use std::collections::{BTreeMap, BTreeSet};

use sanlock_core::ondisk::Name;
use sanlock_core::Time;

use crate::lease_slots::LeaseSlots;
use crate::recovery::{KillState, Killpath, Stop, StopSignal};
use crate::wire::payload::RES_PERSISTENT;
use crate::wire::WireResource;

/// A lease's key: its lockspace and resource names.
pub type Key = (Name, Name);

const ESRCH: i32 = -3;
const EBUSY: i32 = -16;
const ESTALE: i32 = -116;

/// The most client connections (CLIENT_NALLOC, less the listener and helper).
pub const MAX_CLIENTS: usize = 1022;

/// How loud a log line is (syslog priorities, as the daemon's log takes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// LOG_ERR.
    Err = 3,
    /// LOG_WARNING.
    Warning = 4,
    /// LOG_INFO.
    Info = 6,
    /// LOG_DEBUG.
    Debug = 7,
}

/// What the table decided, for its caller to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Watch registered process `pid` of slot `ci`: tell [`ClientTable::process_exited`].
    WatchPid { ci: usize, pid: i32 },
    /// Send `signal` to `pid`.
    Signal { pid: i32, signal: StopSignal },
    /// Run a killpath program (argv).
    RunKillpath(Vec<Vec<u8>>),
    /// The last holder of `key` died: release the lease, nobody waits for the result.
    Release(Key),
    /// Write a line to the daemon's log.
    Log(Level, String),
}

/// Where a slot's client is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Life {
    /// Connected, not registered: its connection is only a channel for commands.
    Connected,
    /// REGISTER was sent: the connection (and the process) is its liveness.
    Registered,
    /// Registered, and then its process exited or its connection closed.
    Dead,
}

/// One connection's slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Client<J> {
    /// SO_PEERCRED pid of the connecting process.
    pub pid: i32,
    /// SO_PEERCRED uid of the connecting process, where the shell read it.
    pub uid: Option<u32>,
    /// Shown in `status`: the pid until an ACQUIRE names an owner.
    pub owner_name: Name,
    /// Where it is in its life.
    pub life: Life,
    /// The connection has closed. Only then may the slot be reused: messages from a
    /// connection carry its slot number until its last one.
    pub closed: bool,
    /// RESTRICT flags.
    pub restrict: u32,
    /// The last command received on the connection (`status -D`).
    pub cmd_last: u32,
    /// Leases held, in sanlock's token slots (inquire lists them in slot order).
    pub leases: LeaseSlots,
    /// The lease command under way for this client.
    pub job: Option<J>,
    /// Recovery's stops of this client so far.
    pub kill: KillState,
    /// KILLPATH: run instead of SIGTERM in recovery; copied into leases acquired after.
    pub killpath: Option<Killpath>,
}

impl<J> Client<J> {
    /// REGISTER was sent (it may have died since).
    pub fn registered(&self) -> bool {
        self.life != Life::Connected
    }

    /// Registered and then died.
    pub fn dead(&self) -> bool {
        self.life == Life::Dead
    }
}

/// A resource lease held on this host, by one client (EX) or several (SH), or by none (an
/// orphan).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Token {
    pub resource: WireResource,
    pub shared: bool,
    pub lver: u64,
    pub holders: Vec<usize>,
    pub res_id: u32,
    /// SANLK_RES_* of the latest acquire (PERSISTENT makes an orphan of a holder's exit).
    pub flags: u32,
    /// No process holds it any more, but it stays held on disk (a persistent lease's orphan).
    pub orphan: bool,
    /// The pid shown for an orphan: its last holder.
    pub last_pid: i32,
    /// The LVB buffer (one sector) when acquired with ACQUIRE_LVB.
    pub lvb: Option<Vec<u8>>,
    /// The killpath of the client that created it (copied at acquire), for GRACEFUL requests.
    pub killpath: Option<Killpath>,
}

/// The client table and the leases held.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientTable<J> {
    slots: Vec<Option<Client<J>>>,
    /// The leases held here, by key.
    pub tokens: BTreeMap<Key, Token>,
    /// Lockspaces whose holders are being stopped.
    killing: BTreeSet<Name>,
    effects: Vec<Effect>,
    #[cfg(feature = "mutants")]
    mutant: Option<crate::mutants::DaemonMutant>,
}

impl<J> Default for ClientTable<J> {
    fn default() -> Self {
        ClientTable {
            slots: Vec::new(),
            tokens: BTreeMap::new(),
            killing: BTreeSet::new(),
            effects: Vec::new(),
            #[cfg(feature = "mutants")]
            mutant: None,
        }
    }
}

impl<J> ClientTable<J> {
    /// Runs with a deliberate bug (the mutant suite).
    #[cfg(feature = "mutants")]
    pub fn set_mutant(&mut self, mutant: Option<crate::mutants::DaemonMutant>) {
        self.mutant = mutant;
    }

    fn mutated(&self, _m: crate::mutants::DaemonMutant) -> bool {
        #[cfg(feature = "mutants")]
        return self.mutant == Some(_m);
        #[cfg(not(feature = "mutants"))]
        false
    }

    /// What was decided since the last call, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    fn log(&mut self, level: Level, line: String) {
        self.effects.push(Effect::Log(level, line));
    }

    /// A slot for a new connection from `pid`, or `None` when the table is full.
    pub fn alloc(&mut self, pid: i32) -> Option<usize> {
        self.alloc_peer(pid, None)
    }

    /// A slot for a new connection whose peer credentials are `pid` and `uid`.
    pub fn alloc_peer(&mut self, pid: i32, uid: Option<u32>) -> Option<usize> {
        let client = Client {
            pid,
            uid,
            owner_name: Name::EMPTY,
            life: Life::Connected,
            closed: false,
            restrict: 0,
            cmd_last: 0,
            leases: LeaseSlots::default(),
            job: None,
            kill: KillState::default(),
            killpath: None,
        };
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            self.slots[i] = Some(client);
            return Some(i);
        }
        if self.slots.len() >= MAX_CLIENTS {
            self.log(Level::Err, "client connection table full".into());
            return None;
        }
        self.slots.push(Some(client));
        Some(self.slots.len() - 1)
    }

    /// The slot `ci`, if used.
    pub fn get(&self, ci: usize) -> Option<&Client<J>> {
        self.slots.get(ci).and_then(Option::as_ref)
    }

    /// The slot `ci`, if used.
    pub fn get_mut(&mut self, ci: usize) -> Option<&mut Client<J>> {
        self.slots.get_mut(ci).and_then(Option::as_mut)
    }

    /// The used slots, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Client<J>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
    }

    /// The first registered slot of process `pid`.
    pub fn by_pid(&self, pid: i32) -> Option<usize> {
        self.iter()
            .find(|(_, c)| c.registered() && c.pid == pid)
            .map(|(i, _)| i)
    }

    /// REGISTER: the connection becomes the process's liveness. A second REGISTER changes
    /// nothing.
    pub fn register(&mut self, ci: usize, cmd: u32) {
        let Some(c) = self.get_mut(ci) else { return };
        c.cmd_last = cmd;
        if c.registered() {
            return;
        }
        c.life = Life::Registered;
        c.owner_name = Name::truncated(c.pid.to_string().as_bytes());
        let pid = c.pid;
        self.log(Level::Info, format!("cmd_register ci {ci} pid {pid}"));
        // The pidfd catches an exit even when a child inherited the connection.
        self.effects.push(Effect::WatchPid { ci, pid });
    }

    /// Connection `ci` closed: an unregistered slot is freed; a registered client is dead and
    /// its leases go (§4.1). `failed`: the lockspaces that no longer renew.
    pub fn closed(&mut self, ci: usize, failed: &BTreeSet<Name>) {
        let Some(c) = self.get_mut(ci) else { return };
        c.closed = true;
        if c.registered() {
            self.died(ci, failed);
        }
        self.free_if_done(ci);
    }

    /// The process of slot `ci` (registered as `pid`) exited. The slot may have been reused
    /// meanwhile: then nothing happens.
    pub fn process_exited(&mut self, ci: usize, pid: i32, failed: &BTreeSet<Name>) {
        if self.get(ci).is_some_and(|c| c.registered() && c.pid == pid) {
            self.died(ci, failed);
        }
    }

    fn died(&mut self, ci: usize, failed: &BTreeSet<Name>) {
        let Some(c) = self.get_mut(ci) else { return };
        if c.dead() {
            return;
        }
        c.life = Life::Dead;
        let (pid, busy) = (c.pid, c.job.is_some());
        self.log(
            Level::Info,
            format!("client ci {ci} pid {pid} dead: releasing its leases"),
        );
        if busy {
            // The command under way releases everything when it finishes.
            return;
        }
        self.release_all(ci, failed);
    }

    /// Releases (or orphans) every lease of dead client `ci`; its slot is freed once its
    /// connection is gone too.
    pub fn release_all(&mut self, ci: usize, failed: &BTreeSet<Name>) {
        if self.mutated(crate::mutants::DaemonMutant::KeepDeadClientLeases) {
            return;
        }
        let leases = self.get(ci).map(|c| c.leases.to_vec()).unwrap_or_default();
        for key in leases {
            self.release_in_background(ci, key, failed.contains(&key.0));
        }
        self.free_if_done(ci);
    }

    fn release_in_background(&mut self, ci: usize, key: Key, space_failed: bool) {
        let mut pid = -1;
        if let Some(c) = self.get_mut(ci) {
            c.leases.remove(&key);
            pid = c.pid;
        }
        let drop_orphans = self.mutated(crate::mutants::DaemonMutant::DropOrphans);
        let Some(t) = self.tokens.get_mut(&key) else {
            return;
        };
        t.holders.retain(|&h| h != ci);
        if !t.holders.is_empty() {
            return;
        }
        let persistent = t.flags & RES_PERSISTENT != 0 && !drop_orphans;
        if persistent && !space_failed {
            // A persistent lease outlives its holder: it stays held on disk as an orphan
            // (§4.1), until adopted, released with REL_ORPHAN, or its lockspace stops.
            t.orphan = true;
            t.last_pid = pid;
            let line = format!(
                "orphan {}:{}",
                String::from_utf8_lossy(key.0.as_bytes()),
                String::from_utf8_lossy(key.1.as_bytes())
            );
            self.log(Level::Info, line);
            return;
        }
        self.tokens.remove(&key);
        self.effects.push(Effect::Release(key));
    }

    /// Frees slot `ci` once its connection has closed and nothing is left of it: no command
    /// under way, no lease.
    pub fn free_if_done(&mut self, ci: usize) {
        if self
            .get(ci)
            .is_some_and(|c| c.closed && c.job.is_none() && c.leases.is_empty())
        {
            self.slots[ci] = None;
        }
    }

    /// Client `ci` now holds `resource`, acquired in `shared` mode at lease version `lver`: a
    /// new token (the client's killpath and pid copied into it), which is returned for the
    /// caller to fill in the rest (res_id, the LVB buffer).
    pub fn hold(
        &mut self,
        ci: usize,
        resource: WireResource,
        shared: bool,
        lver: u64,
    ) -> &mut Token {
        let key = (resource.lockspace_name, resource.name);
        let (killpath, last_pid) = self
            .get(ci)
            .map_or((None, -1), |c| (c.killpath.clone(), c.pid));
        self.add_lease(ci, key);
        let token = Token {
            flags: resource.flags,
            resource,
            shared,
            lver,
            holders: vec![ci],
            res_id: 0,
            orphan: false,
            last_pid,
            lvb: None,
            killpath,
        };
        self.tokens.insert(key, token);
        self.tokens.get_mut(&key).expect("just inserted")
    }

    /// The command under way for client `ci` has ended (the caller took it; `released`: it was
    /// a RELEASE): a live client that a release left holding nothing is no longer being
    /// stopped, and a client that died meanwhile loses everything now.
    pub fn command_ended(&mut self, ci: usize, released: bool, failed: &BTreeSet<Name>) {
        if released {
            self.release_answered(ci);
        }
        if self.get(ci).is_some_and(Client::dead) {
            self.release_all(ci, failed);
        }
    }

    /// Client `ci` now holds `key` (its token is in `tokens`).
    pub fn add_lease(&mut self, ci: usize, key: Key) {
        if let Some(c) = self.get_mut(ci) {
            c.leases.insert(key);
        }
    }

    /// Takes `ci` off the holders of `key`. Returns whether it was the last: then the token is
    /// gone and the caller releases the lease.
    pub fn drop_holder(&mut self, ci: usize, key: Key) -> bool {
        if let Some(c) = self.get_mut(ci) {
            c.leases.remove(&key);
        }
        let Some(t) = self.tokens.get_mut(&key) else {
            return false;
        };
        t.holders.retain(|&h| h != ci);
        if !t.holders.is_empty() {
            return false;
        }
        self.tokens.remove(&key);
        true
    }

    /// A lockspace is gone: whatever of its leases is still listed goes (the host dropped
    /// them; no disk I/O is left to do).
    pub fn forget_space(&mut self, space: Name) {
        let keys: Vec<Key> = self
            .tokens
            .keys()
            .filter(|(l, _)| *l == space)
            .copied()
            .collect();
        for key in keys {
            if let Some(t) = self.tokens.remove(&key) {
                for ci in t.holders {
                    if let Some(c) = self.get_mut(ci) {
                        c.leases.remove(&key);
                    }
                }
            }
        }
    }

    /// The orphans of lockspace `space`.
    pub fn orphans(&self, space: Name) -> usize {
        self.tokens
            .iter()
            .filter(|((l, _), t)| *l == space && t.orphan)
            .count()
    }

    /// The clients holding leases in `space`.
    pub fn holders_of(&self, space: Name) -> Vec<usize> {
        let mut out = BTreeSet::new();
        for ((ls, _), t) in &self.tokens {
            if *ls == space {
                out.extend(t.holders.iter().copied());
            }
        }
        out.into_iter().collect()
    }

    /// Whether the holders of `space` are being stopped.
    pub fn killing(&self, space: &Name) -> bool {
        self.killing.contains(space)
    }

    /// StopHolders from the host: stop every live holder in `space` (graceful: SIGTERM or the
    /// killpath, else SIGKILL; at most once a second and 100 times per client). `grace`:
    /// kill_grace_seconds is not 0.
    pub fn stop_holders(&mut self, now: Time, space: Name, graceful: bool, grace: bool) {
        self.killing.insert(space);
        let holders = if self.mutated(crate::mutants::DaemonMutant::StopEveryClient) {
            self.iter()
                .filter(|(_, c)| c.registered())
                .map(|(i, _)| i)
                .collect()
        } else {
            self.holders_of(space)
        };
        let graceful = graceful && !self.mutated(crate::mutants::DaemonMutant::KillBeforeGrace);
        let skip_killpaths = self.mutated(crate::mutants::DaemonMutant::SkipKillpathHolders);
        for ci in holders {
            let Some(c) = self.get_mut(ci) else {
                continue;
            };
            if c.dead() || (skip_killpaths && c.killpath.is_some()) {
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
                    self.log(Level::Err, format!("kill {pid} sig 100 count {count}"));
                    self.effects.push(Effect::RunKillpath(argv));
                }
                Some(Stop::Signal(signal)) => {
                    let line = format!("kill {pid} sig {} count {count}", signal.number());
                    self.log(Level::Err, line);
                    self.effects.push(Effect::Signal { pid, signal });
                }
            }
        }
    }

    /// The lockspaces being stopped that no client holds a lease of any more.
    pub fn emptied(&self) -> Vec<Name> {
        let early = self.mutated(crate::mutants::DaemonMutant::HoldersGoneEarly);
        self.killing
            .iter()
            .filter(|&&s| early || self.holders_of(s).is_empty())
            .copied()
            .collect()
    }

    /// Recovery of `space` is over (the host hears that its holders are gone).
    pub fn end_killing(&mut self, space: Name) {
        self.killing.remove(&space);
    }

    /// A request for `key` was read: its first holder must stop (§10.2 step 3), through the
    /// killpath of the lease when graceful.
    pub fn stop_holder(&mut self, key: Key, graceful: bool) {
        let Some(t) = self.tokens.get(&key) else {
            return;
        };
        let Some(&ci) = t.holders.first() else {
            return;
        };
        let killpath = t.killpath.clone();
        // A dead holder's pid may belong to another process by now (its lease waits for the
        // command it had under way): it is not signalled.
        let Some(c) = self.get(ci).filter(|c| !c.dead()) else {
            return;
        };
        let (pid, restrict) = (c.pid, c.restrict);
        let line = format!(
            "do_request {pid} {}:{} {}",
            String::from_utf8_lossy(key.0.as_bytes()),
            String::from_utf8_lossy(key.1.as_bytes()),
            if graceful { "graceful" } else { "force" }
        );
        self.log(Level::Err, line);
        if graceful {
            if let Some(kp) = killpath {
                // A request's killpath gets no pid argument (resource.c `do_request`).
                self.effects.push(Effect::RunKillpath(kp.argv(None)));
                return;
            }
        }
        let stop = if graceful {
            StopSignal::Term
        } else {
            StopSignal::Kill
        };
        let signal = stop.restricted(restrict);
        self.effects.push(Effect::Signal { pid, signal });
    }

    /// KILLPATH: client `ci`'s program for recovery and GRACEFUL requests.
    pub fn set_killpath(&mut self, ci: usize, path: Vec<u8>, args: Vec<u8>, flags: u32) {
        if let Some(c) = self.get_mut(ci) {
            let with_pid = flags & 1 != 0 || c.killpath.as_ref().is_some_and(|k| k.with_pid);
            c.killpath = Some(Killpath {
                path,
                args,
                with_pid,
            });
        }
    }

    /// A RELEASE of client `ci` was answered: a live client left holding nothing is no longer
    /// being stopped, so that it may acquire again once its lockspace is back (cmd.c
    /// `cmd_release`: "clear kill state"; libvirt's pause-on-lock-failure).
    pub fn release_answered(&mut self, ci: usize) {
        let Some(c) = self.get_mut(ci) else { return };
        if !c.dead() && c.leases.is_empty() && c.kill.clear_after_release() {
            let line = format!("cmd_release ci {ci} pid {} clear kill state", c.pid);
            self.log(Level::Info, line);
        }
    }

    /// The client a lease command on connection `ci` is for (§1.3): `data2` -1 is the
    /// connection itself, else the first registered slot with that pid.
    pub fn find_target(&self, ci: usize, data2: u32) -> Option<usize> {
        if data2 == u32::MAX {
            Some(ci)
        } else {
            self.by_pid(data2 as i32)
        }
    }

    /// The target, if it may take a lease command: registered, alive and idle.
    pub fn target(&self, ci: usize, data2: u32) -> Option<usize> {
        let t = self.find_target(ci, data2)?;
        let c = self.get(t)?;
        (c.life == Life::Registered && c.job.is_none()).then_some(t)
    }

    /// Why there is no target: no such client (-ESRCH), a dead one (-ESTALE) or a busy one
    /// (-EBUSY).
    pub fn target_error(&self, ci: usize, data2: u32) -> i32 {
        match self.find_target(ci, data2) {
            None => ESRCH,
            Some(t) => match self.get(t) {
                Some(c) if c.dead() && c.job.is_none() => ESTALE,
                _ => EBUSY,
            },
        }
    }
}
