//! The daemon's one loop (STYLE.md "the core in one picture"): it owns the core `Host`, the
//! routes of its I/O (`sanlock_core::routes`) and the backends that run it, the client table
//! (`crate::clients`, which decides who holds what and whom recovery stops), the
//! lockspace list and what is pending. Each turn of the loop takes one message, connection,
//! batch of I/O completions or timer, then pumps the host (its I/O to the backends, its
//! outputs decided on) until it is quiet. Connections
//! hand it their requests as [`Msg`]s; it answers each when the host has decided. Nothing here
//! blocks: what it decides becomes [`Action`]s that the shell (`shell.rs`) carries out when
//! each turn ends, and slow work comes back as messages.
//!
//! The files around it are layered (`layers.rs` tests it): this one names only the leaves, the
//! message types and the shell; the decisions — lockspaces in `spaces.rs`, leases in
//! `leases.rs`, the client table's effects in `clients.rs`, requests, LVBs, events, rindex,
//! opens, status — add `impl Engine` blocks on top. This file holds the state, the loop, the
//! dispatch and the host's outputs.
//!
//! Lockspace lists and their visible windows follow sanlock 3.8.5 (wire.md §4.10-4.12): an add
//! is "in progress" until the delta lease is ours; a remove is applied at the next once-a-second
//! check (INQ still answers 0 until then), and the lockspace leaves the list at the check after
//! its delta lease was released.

use std::collections::BTreeMap;
use std::time::Duration;

use super::DiskNo;
use crate::watchdog::Keeper;
use sanlock_core::host::{Host, HostConfig, Output};
use sanlock_core::io::IoRequest;
use sanlock_core::ondisk::{Geometry, Name};
use sanlock_core::routes::Routes;
use sanlock_core::Time;

use super::config::DaemonConfig;
use super::messages::{Action, Call, Input, Reply, Waiter};
use crate::wire::{Header, WireLockspace, WireResource, HEADER_LEN};

/// A connection's slot, with the lease command under way for it.
pub(super) type Client = crate::clients::Client<Job>;
pub(super) use crate::clients::Level;
use crate::renewal_history::RenewalHistory;

pub(super) const EPERM: i32 = -1;
pub(super) const ENOENT: i32 = -2;
pub(super) const EAGAIN: i32 = -11;
pub(super) const EBUSY: i32 = -16;
pub(super) const EEXIST: i32 = -17;
pub(super) const EINVAL: i32 = -22;
pub(super) const ENOTTY: i32 = -25;
pub(super) const ENOSPC: i32 = -28;
pub(super) const EALREADY: i32 = -114;
pub(super) const EINPROGRESS: i32 = -115;
/// SANLK_ADDLS_INVALID_HOSTID: a host_id the lockspace's geometry has no slot for.
pub(super) const SANLK_ADDLS_INVALID_HOSTID: i32 = -231;

/// How long after an add completes GET_HOSTS still answers -EAGAIN (measured: 0.96 s).
pub(super) const HOSTS_SCAN_DELAY: Duration = Duration::from_millis(960);

/// Where a lockspace is in its life (sanlock's spaces / spaces_add / spaces_rem lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum SpaceState {
    /// Probing the disk, then acquiring the delta lease.
    Adding,
    /// Joined.
    Active,
    /// rem_lockspace arrived; applied at the next check. Still listed as active.
    RemPending,
    /// Leaving: holders being killed, then the delta lease released.
    Removing,
    /// The delta lease is released (or was lost); leaves the list at the next check.
    Removed,
}

/// One lockspace of ours.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct Space {
    pub ls: WireLockspace,
    pub space_id: u32,
    pub io_timeout: u32,
    pub state: SpaceState,
    pub geometry: Option<Geometry>,
    /// Renewals stopped for 8N (or corrupt): recovery under way.
    pub failed: bool,
    /// When the add began, and when the host joined: the add completes at the first
    /// whole second after the start at which the join is seen (lockspace.c
    /// `add_lockspace_wait` polls once a second).
    pub(super) add_started: Time,
    pub(super) activate_at: Option<Time>,
    /// GET_HOSTS answers -EAGAIN until the main loop's first host scan after the add, which
    /// in sanlock comes about a second after the lockspace became active (wire.md §4.14).
    pub(super) hosts_ready_at: Option<Time>,
    pub(super) add_waiter: Option<Waiter>,
    pub(super) rem_waiters: Vec<Waiter>,
    /// The renewal history (`-H` records, oldest first).
    pub history: RenewalHistory,
    /// set_config USED: removal waits until cleared.
    pub used: bool,
    /// set_config USED_BY_ORPHANS: removal waits while orphans remain.
    pub used_by_orphans: bool,
    /// Times removal was held back by those flags (status `used_retries`).
    pub used_retries: u32,
    /// reg_event listeners (at most 32), by the shell's listener id: each gets every event
    /// for us.
    pub(super) listeners: Vec<u64>,
    /// A rindex operation is under way (one at a time, else -EBUSY).
    pub(super) rindex_busy: bool,
    /// The last join and renewal: results and times, for `status -D`.
    pub(super) lease_status: LeaseStatus,
}

/// sanlock's `lease_status` of a lockspace as `status -D` shows it: the result of the last
/// join and of the last renewal (1 for success, else the error), when each was attempted and
/// when the last one succeeded (monotonic seconds; the join counts as a renewal too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct LeaseStatus {
    pub acquire_result: i32,
    pub acquire_attempt: u64,
    pub acquire_success: u64,
    pub renewal_result: i32,
    pub renewal_attempt: u64,
    pub renewal_success: u64,
}

/// What the host is doing on a resource for whom.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) enum Pending {
    /// An acquire for client `ci`'s job (`lvb`: ACQUIRE_LVB).
    Acquire {
        ci: usize,
        resource: WireResource,
        lvb: bool,
    },
    /// A release for client `ci`'s RELEASE, or in the background (exit, failed acquire).
    Release { ci: Option<usize> },
    /// A convert for client `ci`.
    Convert { ci: usize },
    /// The rindex_lease of a rindex operation (taken or given back).
    Rindex,
}

/// A command bound to a client, waiting for the host (one per client: its "cmd_active").
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Job {
    /// ACQUIRE: resources still to take, the keys taken so far.
    Acquire {
        waiter: Waiter,
        todo: Vec<WireResource>,
        done: Vec<(Name, Name)>,
        flags: u32,
        /// Disks of the resource being started that could not be opened, with the error: a
        /// lease on several disks goes on without a minority of them.
        unopened: Vec<(Vec<u8>, i32)>,
    },
    /// RELEASE: keys still being released, and the first error. `command`: a client's
    /// RELEASE (not a failed acquire giving back what it took), which ends with
    /// [`Engine::release_answered`].
    Release {
        waiter: Waiter,
        left: Vec<(Name, Name)>,
        rv: i32,
        command: bool,
    },
    /// CONVERT.
    Convert { waiter: Waiter },
}

/// The daemon's state: a value (the checker copies, compares and fingerprints it).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Engine {
    pub(super) cfg: DaemonConfig,
    pub(super) host_name: Name,
    /// The core host: every lockspace and lease of ours.
    pub(super) host: Host,
    /// Which disk each lockspace's and lease's I/O goes to.
    pub(super) routes: Routes<DiskNo>,
    /// The disks open for the host's I/O, by path as named.
    pub(super) disks: BTreeMap<Vec<u8>, DiskNo>,
    /// The host's I/O placed on its disks, for the shell to run.
    io_out: Vec<(DiskNo, IoRequest)>,
    /// The next once-a-second check.
    next_check: Time,
    /// The client table and the leases held (the daemon machine's, shared with the simulator).
    pub(super) table: crate::clients::ClientTable<Job>,
    pub(super) spaces: Vec<Space>,
    pub(super) pending: BTreeMap<(Name, Name), Pending>,
    /// What the next release of a lease writes besides: a set_lvb value, a new name.
    pub(super) lvb_to_write: BTreeMap<(Name, Name), sanlock_core::ondisk::Lvb>,
    pub(super) rename_to: BTreeMap<(Name, Name), Name>,
    /// Rindex operations holding (or taking) their lockspace's rindex_lease.
    pub(super) rindex_jobs: BTreeMap<Name, super::messages::RindexJob>,
    /// What waits for a disk being opened off the loop, by path.
    pub(super) opening: BTreeMap<Vec<u8>, Vec<super::messages::AfterOpen>>,
    /// REQUESTs waiting for the host.
    pub(super) request_waiters: BTreeMap<(Name, Name), Waiter>,
    /// The watchdog as decided: the way chosen, our feeder's policy.
    pub(super) watchdog: Keeper,
    /// What has been counted, for the metrics file.
    pub(super) metrics: super::metrics::Metrics,
    pub(super) next_space_id: u32,
    pub(super) next_res_id: u32,
    pub(super) inq_waiters: Vec<(WireLockspace, Waiter)>,
    /// Shutdown under way: the SHUTDOWN_WAIT replies owed at exit.
    pub(super) shutting_down: bool,
    pub(super) exit_waiters: Vec<Waiter>,
    /// Host messages we sent, by lockspace and number (the last ones resolved are kept for
    /// MESSAGE_STATUS), and RESETs acknowledged whose ack is not yet on disk.
    pub(super) sent: BTreeMap<(Name, sanlock_core::MessageSeq), super::host_messages::Sent>,
    pub(super) resets: Vec<(Name, super::host_messages::MessageKey)>,
    /// This turn's time: read once when the loop takes up a message, a connection or the
    /// host's outputs, and the only time the engine's decisions see (as `handle(now, …)`).
    pub(super) now: Time,
    /// What the loop is to do after this turn.
    pub(super) actions: Vec<Action>,
    /// The host's outputs kept for an observer (the simulator), with their action positions.
    observed: Option<Vec<(usize, Output)>>,
}

/// One turn of the engine as an observing shell sees it ([`Engine::take_turn`]).
pub struct Turn {
    /// The host's I/O, each request on its disk.
    pub io: Vec<(DiskNo, IoRequest)>,
    /// The host's outputs and the engine's actions, in the order they came.
    pub events: Vec<Happened>,
}

impl Turn {
    /// Nothing happened.
    pub fn is_empty(&self) -> bool {
        self.io.is_empty() && self.events.is_empty()
    }
}

/// One thing in a [`Turn`].
pub enum Happened {
    /// What the host did (observed).
    Output(Output),
    /// What the engine asks of its shell.
    Action(Action),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("host_name", &self.host_name)
            .field("now", &self.now)
            .field("spaces", &self.spaces.len())
            .field("clients", &self.table.iter().count())
            .finish_non_exhaustive()
    }
}

/// The reply of sanlock's main-thread commands: the header with version 1, length 32, the
/// result in `data` and `data2` echoed.
fn echo_data2(header: Header, rv: i32) -> Vec<u8> {
    let mut h = header.result(rv);
    h.data2 = header.data2;
    h.encode().to_vec()
}

impl Engine {
    /// An engine for `cfg` at `now`: the host's retry jitter seeded with `rng_seed`, the
    /// watchdog kept as `watchdog` says.
    pub fn new(
        cfg: DaemonConfig,
        host_name: Name,
        rng_seed: u64,
        watchdog: Keeper,
        now: Time,
    ) -> Self {
        let mut hc = HostConfig::new(host_name);
        hc.kill_grace_s = cfg.kill_grace_s;
        hc.set_bitmap_s = cfg.set_bitmap_seconds;
        hc.event_poll = true;
        hc.rng_seed = rng_seed;
        Engine {
            cfg,
            host_name,
            host: Host::new(hc),
            routes: Routes::default(),
            disks: BTreeMap::new(),
            io_out: Vec::new(),
            next_check: now + Duration::from_secs(1),
            table: Default::default(),
            spaces: Vec::new(),
            pending: BTreeMap::new(),
            lvb_to_write: BTreeMap::new(),
            rename_to: BTreeMap::new(),
            request_waiters: BTreeMap::new(),
            opening: BTreeMap::new(),
            rindex_jobs: BTreeMap::new(),
            watchdog,
            metrics: Default::default(),
            next_space_id: 1,
            next_res_id: 1,
            inq_waiters: Vec::new(),
            shutting_down: false,
            exit_waiters: Vec::new(),
            sent: BTreeMap::new(),
            resets: Vec::new(),
            now,
            actions: Vec::new(),
            observed: None,
        }
    }

    /// From now on, every output of the host is also kept for [`Engine::take_turn`]: how the
    /// simulator and the checker check the daemon's decisions against what the host did.
    pub fn observe_outputs(&mut self) {
        self.observed.get_or_insert_with(Vec::new);
    }

    /// The host outputs since the last call (when observed), each with the number of actions
    /// queued before the engine took it up: the actions it led to come after that position.
    fn take_observed(&mut self) -> Vec<(usize, Output)> {
        self.observed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Everything this turn produced, for an observing shell (the simulator, the checker):
    /// the host's I/O, and its outputs interleaved in order with the actions they led to.
    /// Empty when the engine is quiet.
    pub fn take_turn(&mut self) -> Turn {
        let io = self.take_io();
        let mut observed = self.take_observed().into_iter().peekable();
        let mut events = Vec::new();
        for (i, action) in self.take_actions().into_iter().enumerate() {
            while let Some((_, out)) = observed.next_if(|(at, _)| *at <= i) {
                events.push(Happened::Output(out));
            }
            events.push(Happened::Action(action));
        }
        events.extend(observed.map(|(_, out)| Happened::Output(out)));
        Turn { io, events }
    }

    /// The core host, to look at.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The client table, to look at.
    pub fn clients(&self) -> &crate::clients::ClientTable<Job> {
        &self.table
    }

    /// Runs with a deliberate bug (the mutant suite): in the client table and the watchdog's
    /// policy alike.
    #[cfg(feature = "mutants")]
    pub fn set_mutant(&mut self, mutant: Option<crate::mutants::DaemonMutant>) {
        self.table.set_mutant(mutant);
        self.watchdog.set_mutant(mutant);
    }

    /// Runs its host with a deliberate core bug (the mutant suite).
    #[cfg(feature = "mutants")]
    pub fn set_core_mutant(&mut self, mutant: Option<sanlock_core::mutants::Mutant>) {
        self.host.set_mutant(mutant);
    }

    /// Takes `input` at `now` (the shell reads its clock once per turn; time never goes back),
    /// then runs the host until it is quiet and makes the once-a-second check when due. What
    /// it decided waits in [`Engine::take_actions`] and [`Engine::take_io`].
    pub fn handle(&mut self, now: Time, input: Input) {
        self.now = now.max(self.now);
        match input {
            Input::Call { ci, waiter, call } => self.handle_call(ci, waiter, call),
            Input::Register { ci } => self.register(ci),
            Input::Closed { ci } => self.client_closed(ci),
            Input::ProcessExited { ci, pid } => self.process_exited(ci, pid),
            Input::Probed { space_id, result } => self.probed(space_id, result),
            Input::WdmdRegistered { space_id, result } => self.wdmd_registered(space_id, result),
            Input::DiskOpened { path, result } => self.disk_opened(path, result),
            Input::Answer { waiter, reply } => self.send_reply(waiter, reply),
            Input::RindexDone { space } => self.end_rindex_op(space),
            Input::RindexHeader { job } => self.rindex_header_read(job),
            Input::RindexChanged { job } => self.rindex_changed(job),
            Input::Signal => {
                if self.spaces.is_empty() {
                    self.shutting_down = true;
                } else {
                    self.log(Level::Warning, "signal ignored: lockspaces exist");
                }
            }
            Input::IoDone(done) => {
                for (id, result) in done {
                    self.metrics.io(result.as_ref().err().copied());
                    self.host.handle_io(self.now, id, result);
                }
                self.host.handle_timeout(self.now);
            }
            Input::Timer => self.host.handle_timeout(self.now),
            Input::ListenersGone(gone) => self.listeners_gone(&gone),
        }
        self.settle();
        let now = self.now;
        if now >= self.wake_at(self.next_check) {
            self.check(now);
            self.settle();
        }
        if now >= self.next_check {
            self.next_check = now + Duration::from_secs(1);
        }
    }

    /// A connection from process `pid`: its slot, or `None` when the table is full.
    pub fn connect(&mut self, pid: i32) -> Option<usize> {
        self.connect_peer(pid, None)
    }

    /// A new connection whose peer credentials (SO_PEERCRED) are `pid` and `uid`.
    pub fn connect_peer(&mut self, pid: i32, uid: Option<u32>) -> Option<usize> {
        let ci = self.table.alloc_peer(pid, uid);
        self.table_effects();
        ci
    }

    /// What this turn decided, in order, for the shell to do.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The host's I/O, each request on its disk, for the shell to run; it answers with
    /// [`Input::IoDone`].
    pub fn take_io(&mut self) -> Vec<(DiskNo, IoRequest)> {
        std::mem::take(&mut self.io_out)
    }

    /// When the shell must hand in [`Input::Timer`] at the latest: the host's next deadline
    /// or the next check.
    pub fn poll_timeout(&self) -> Time {
        let check_at = self.wake_at(self.next_check);
        self.host
            .poll_timeout()
            .map_or(check_at, |t| t.min(check_at))
    }

    /// Shutdown is done: no lockspace left and nothing pending.
    pub fn finished(&self) -> bool {
        self.shutting_down && self.spaces.is_empty() && self.pending.is_empty()
    }

    /// The SHUTDOWN_WAIT requests, answered by the shell as the daemon exits.
    pub fn take_exit_waiters(&mut self) -> Vec<Waiter> {
        std::mem::take(&mut self.exit_waiters)
    }

    /// The next check: once a second, or sooner when an add completes.
    fn wake_at(&self, next_check: Time) -> Time {
        self.spaces
            .iter()
            .filter(|s| s.state == SpaceState::Adding)
            .filter_map(|s| s.activate_at)
            .fold(next_check, Time::min)
    }

    /// Runs the host until it is quiet: its queued I/O is placed on the disk its target names
    /// (ENODEV at once for a disk nobody named), its outputs are decided on (which may give it
    /// more to do).
    fn settle(&mut self) {
        loop {
            self.place_io();
            let outputs: Vec<Output> = std::iter::from_fn(|| self.host.poll_output()).collect();
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                self.handle_output(output);
            }
        }
    }

    fn place_io(&mut self) {
        let placed = self.routes.take_placed(&mut self.host, self.now);
        self.io_out.extend(placed);
    }

    fn handle_call(&mut self, ci: usize, waiter: Waiter, call: Call) {
        let header = waiter.header;
        if let Some(c) = self.client_mut(ci) {
            c.cmd_last = header.cmd;
            if !c.registered() {
                c.owner_name = Name::truncated(
                    crate::wire::Cmd::from_u32(header.cmd)
                        .map_or("cmd", |c| c.client_name())
                        .as_bytes(),
                );
            }
        }
        match call {
            Call::Version => {
                // Rebuilt, not echoed (§4.27).
                let h = Header {
                    magic: crate::wire::SM_MAGIC,
                    version: crate::wire::SM_PROTO,
                    cmd: crate::wire::Cmd::Version as u32,
                    length: HEADER_LEN as u32,
                    data2: crate::wire::VERSION_NUM,
                    ..Header::default()
                };
                self.send_reply(waiter, Reply::keep(h));
            }
            Call::Restrict => {
                if let Some(c) = self.client_mut(ci) {
                    c.restrict = header.cmd_flags;
                }
                self.answer(waiter, 0);
            }
            Call::Shutdown => {
                let force = header.data != 0;
                self.send_reply(waiter, Reply::close(Vec::new()));
                self.shutdown(force);
            }
            Call::ShutdownWait => {
                let force = header.data != 0;
                if !force && !self.spaces.is_empty() {
                    let reply = Reply::close(header.result(EBUSY).encode().to_vec());
                    return self.send_reply(waiter, reply);
                }
                self.exit_waiters.push(waiter);
                self.shutdown(force);
            }
            Call::Status => {
                let bytes = self.status(header);
                self.send_reply(waiter, Reply::close(bytes));
            }
            Call::Show => {
                let bytes = self.show(header);
                self.send_reply(waiter, Reply::close(bytes));
            }
            Call::HostStatus(ls) => {
                let bytes = self.host_status(header, &ls.name);
                self.send_reply(waiter, Reply::close(bytes));
            }
            Call::Renewal(ls) => {
                let bytes = self.renewal(header, &ls.name);
                self.send_reply(waiter, Reply::close(bytes));
            }
            Call::LogDump => {
                // The log's ring is the shell's: it answers from it.
                let to = waiter.to;
                self.actions.push(Action::ReplyLogDump { to, header });
            }
            Call::GetLockspaces => {
                let bytes = self.get_lockspaces(header);
                self.send_reply(waiter, Reply::close(bytes));
            }
            Call::GetHosts(ls) => {
                let bytes = self.get_hosts(header, &ls);
                self.send_reply(waiter, Reply::close(bytes));
            }
            Call::AddLockspace(ls) => self.add_lockspace(ls, waiter),
            Call::InqLockspace(ls) => {
                let rv = self.inq(&ls);
                if rv == EINPROGRESS && header.cmd_flags & 1 != 0 {
                    self.inq_waiters.push((ls, waiter));
                } else {
                    self.answer(waiter, rv);
                }
            }
            Call::RemLockspace(ls) => self.rem_lockspace(&ls, waiter),
            Call::Acquire { resources, options } => {
                let Some(target) = self.target(ci, header) else {
                    self.answer(waiter, self.target_error(ci, header));
                    return;
                };
                if self.client(target).is_some_and(|c| c.kill.stopping()) {
                    // Being killed: no new leases (§1.3).
                    self.answer(waiter, EBUSY);
                    return;
                }
                self.acquire(target, resources, options, waiter);
            }
            Call::Release(resources) => match self.target(ci, header) {
                Some(target) => self.release(target, resources, waiter),
                None => self.answer(waiter, self.target_error(ci, header)),
            },
            Call::Inquire => match self.target(ci, header) {
                Some(target) => self.inquire(target, waiter),
                None => self.answer(waiter, self.target_error(ci, header)),
            },
            Call::Convert(res) => match self.target(ci, header) {
                Some(target) => self.convert(target, res, waiter),
                None => self.answer(waiter, self.target_error(ci, header)),
            },
            Call::Killpath { path, args } => match self.target(ci, header) {
                Some(target) => {
                    self.set_killpath(target, path, args, header.cmd_flags);
                    self.answer(waiter, 0);
                }
                None => self.answer(waiter, self.target_error(ci, header)),
            },
            Call::SetConfig(ls) => {
                let rv = self.set_config(&ls.name, header.data);
                self.send_reply(waiter, Reply::close(echo_data2(header, rv)));
            }
            Call::Request(res) => self.request(res, waiter),
            Call::Examine { space, resource } => {
                // Marks the leases; the answer does not wait for the reads (§4.9).
                self.host.examine(self.now, space, resource);
                self.answer(waiter, 0);
            }
            Call::RegEvent { ls, listener } => {
                let rv = self.reg_event(&ls.name, listener);
                self.send_reply(waiter, Reply::keep_bytes(echo_data2(header, rv)));
            }
            Call::EndEvent(ls) => {
                let rv = self.end_event(&ls.name);
                self.send_reply(waiter, Reply::close(echo_data2(header, rv)));
            }
            Call::SetEvent { ls, event } => {
                let rv = self.set_event(&ls.name, event, header.cmd_flags);
                self.answer(waiter, rv);
            }
            Call::Message { ls, event, fence } => self.message_send(&ls, event, fence, waiter),
            Call::MessageStatus(ls) => self.message_status(&ls, waiter),
            Call::SetLvb { res, lvb } => {
                let rv = self.set_lvb(&res, &lvb);
                self.answer(waiter, rv);
            }
            Call::GetLvb(res) => {
                let bytes = self.get_lvb(header, &res);
                self.send_reply(waiter, Reply::keep_bytes(bytes));
            }
            Call::Rindex { cmd, rx, entry } => self.rindex(cmd, rx, entry, waiter),
        }
    }

    /// Answers `waiter` with a header carrying `rv` (connection kept open).
    pub(super) fn answer(&mut self, waiter: Waiter, rv: i32) {
        let reply = Reply::keep(waiter.header.result(rv));
        self.send_reply(waiter, reply);
    }

    /// Writes a line to the log (when the turn ends, in order with the turn's other actions).
    pub(super) fn log(&mut self, level: Level, line: impl Into<String>) {
        self.actions.push(Action::Log(level, line.into()));
    }

    /// Hands an order of the watchdog's policy to the shell; stopping the feeds is logged.
    pub(super) fn order_watchdog(&mut self, order: Option<crate::watchdog::Order>) {
        use crate::watchdog::{Feed, Order};
        let Some(order) = order else { return };
        if let Order::Device {
            feed: Feed::Stop { .. },
            ..
        } = order
        {
            self.log(
                Level::Err,
                "watchdog not fed: a lockspace is about to expire with holders",
            );
        }
        self.actions.push(Action::Watchdog(order));
    }

    /// Answers `waiter` with `reply`.
    pub(super) fn send_reply(&mut self, waiter: Waiter, reply: Reply) {
        self.actions.push(Action::Reply {
            to: waiter.to,
            reply,
        });
    }

    /// The client a lease command is for (§1.3): data2 -1 is the connection itself, else the
    /// first registered slot with that pid; it must be registered, alive and idle.
    /// With `pid_target_same_uid` (ours, opt-in) a command naming another process by pid must
    /// come from root or from that process's own user.
    fn target(&self, ci: usize, header: Header) -> Option<usize> {
        self.table
            .target(ci, header.data2)
            .filter(|&t| self.may_target(ci, t))
    }

    fn target_error(&self, ci: usize, header: Header) -> i32 {
        match self.table.target(ci, header.data2) {
            Some(t) if !self.may_target(ci, t) => EPERM,
            _ => self.table.target_error(ci, header.data2),
        }
    }

    /// Whether connection `ci` may act for client `t` (itself, always).
    fn may_target(&self, ci: usize, t: usize) -> bool {
        if !self.cfg.pid_target_same_uid || t == ci {
            return true;
        }
        let uid = |i| self.table.get(i).and_then(|c| c.uid);
        match uid(ci) {
            Some(0) => true,
            Some(caller) => uid(t) == Some(caller),
            None => false,
        }
    }

    // ---- host outputs -----------------------------------------------------------------

    fn handle_output(&mut self, output: Output) {
        if let Some(seen) = self.observed.as_mut() {
            seen.push((self.actions.len(), output.clone()));
        }
        match output {
            Output::Joined {
                space_name,
                generation,
            } => {
                let joined_at = self.host.last_renewal(space_name);
                let now = self.now;
                let mut line = None;
                if let Some(s) = self.space_mut(&space_name) {
                    line = Some(format!(
                        "s{} host_id acquired generation {}",
                        s.space_id, generation.0
                    ));
                    let at = joined_at.map_or(0, Time::secs);
                    let begun = s.add_started.secs();
                    s.lease_status = LeaseStatus {
                        acquire_result: sanlock_core::rv::SANLK_OK,
                        acquire_attempt: begun,
                        acquire_success: at,
                        renewal_result: sanlock_core::rv::SANLK_OK,
                        renewal_attempt: begun,
                        renewal_success: at,
                    };
                    if s.state == SpaceState::Adding {
                        let waited = now.saturating_since(s.add_started);
                        let polls = waited.as_nanos().div_ceil(1_000_000_000) as u64;
                        s.activate_at = Some(s.add_started + Duration::from_secs(polls.max(1)));
                    }
                }
                if let Some(line) = line {
                    self.log(Level::Info, line);
                }
            }
            Output::JoinFailed { space_name, rv } => {
                if let Some(s) = self.space_mut(&space_name) {
                    s.lease_status.acquire_result = rv;
                    s.lease_status.acquire_attempt = s.add_started.secs();
                }
                if let Some(i) = self
                    .spaces
                    .iter()
                    .position(|s| s.ls.name == space_name && s.state == SpaceState::Adding)
                {
                    self.add_failed(i, rv);
                } else if let Some(s) = self.space_mut(&space_name) {
                    s.state = SpaceState::Removed;
                }
            }
            Output::Left { space_name } => {
                if let Some(s) = self.space_mut(&space_name) {
                    s.state = SpaceState::Removed;
                    let line = format!("s{} lockspace left", s.space_id);
                    self.log(Level::Info, line);
                }
                self.table.forget_space(space_name);
            }
            Output::WatchdogArm {
                space_name,
                renewal,
                expire,
            } => {
                let order = self.watchdog.arm(space_name, renewal, expire);
                if matches!(self.watchdog, Keeper::Wdmd(_) | Keeper::Feeder(_)) {
                    self.metrics.watchdog(space_name, Some(expire));
                }
                self.order_watchdog(order);
            }
            Output::WatchdogDisarm { space_name } => {
                let order = self.watchdog.disarm(space_name);
                self.metrics.watchdog(space_name, None);
                self.order_watchdog(order);
            }
            Output::Renewal {
                space_name,
                outcome,
            } => {
                let keep = self.cfg.renewal_history_size;
                let now = self.now.secs();
                if let Some(s) = self.space_mut(&space_name) {
                    let st = &mut s.lease_status;
                    match outcome {
                        Ok(t) => {
                            st.renewal_result = sanlock_core::rv::SANLK_OK;
                            st.renewal_attempt = t.timestamp_s;
                            st.renewal_success = t.timestamp_s;
                        }
                        // The attempt's start is not reported; its end is within io_timeout.
                        Err(rv) => {
                            st.renewal_result = rv;
                            st.renewal_attempt = now;
                        }
                    }
                    s.history.record(keep, outcome);
                }
                let took = outcome.map(|t| t.read_ms + t.write_ms);
                self.metrics.renewal(space_name, took);
                if let Some(path) = self.cfg.metrics_file.clone() {
                    let text = self.metrics_text();
                    self.actions.push(Action::Metrics { path, text });
                }
            }
            Output::RenewalWarning { space_name } => {
                self.log(
                    Level::Warning,
                    format!(
                        "{} renewal is 6 × io_timeout old",
                        String::from_utf8_lossy(space_name.as_bytes())
                    ),
                );
            }
            Output::LockspaceFailed { space_name } => {
                if let Some(s) = self.space_mut(&space_name) {
                    s.failed = true;
                    let line = format!("s{} check_our_lease failed: recovery starts", s.space_id);
                    self.log(Level::Err, line);
                }
            }
            Output::StopHolders {
                space_name,
                graceful,
            } => self.stop_holders(space_name, graceful),
            Output::Resource {
                space_name,
                resource_name,
                event,
            } => self.resource_event((space_name, resource_name), event),
            Output::HostEvent { space_name, notice } => self.deliver_event(space_name, notice),
            Output::Mail { space_name, event } => self.mail_event(space_name, event),
            Output::RequestDone {
                space_name,
                resource_name,
                rv,
            } => self.request_done((space_name, resource_name), rv),
            Output::StopHolder {
                space_name,
                resource_name,
                graceful,
            } => self.stop_holder((space_name, resource_name), graceful),
        }
    }
}
