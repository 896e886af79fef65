//! The daemon's one loop (STYLE.md "the core in one picture"): it owns the core `Host`, the
//! routes of its I/O (`sanlock_core::routes`) and the backends that run it, the client table
//! (`sanlock_machine::clients`, which decides who holds what and whom recovery stops), the
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

use sanlock_backends::clock;
use sanlock_backends::storage::{sleep_until, Storage};
use sanlock_backends::DiskId;
use sanlock_core::host::{Host, HostConfig, Output};
use sanlock_core::io::IoError;
use sanlock_core::ondisk::{Geometry, Name};
use sanlock_core::routes::Routes;
use sanlock_core::Time;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::config::DaemonConfig;
use super::log;
use super::messages::{Action, Call, Msg, Reply, ReplyBook, Waiter};
use super::storage::DaemonStorage;
use crate::wire::{Header, WireLockspace, WireResource, HEADER_LEN};

/// A connection's slot, with the lease command under way for it.
pub(super) type Client = sanlock_machine::clients::Client<Job>;
pub(super) use sanlock_machine::clients::{Level, Token};
use sanlock_machine::renewal_history::RenewalHistory;

pub(super) const EPERM: i32 = -1;
pub(super) const ENOENT: i32 = -2;
/// ENODEV: an I/O for a lockspace or lease whose disk was never named.
const ENODEV: i32 = 19;
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

pub use sanlock_machine::clients::MAX_CLIENTS;

/// Where a lockspace is in its life (sanlock's spaces / spaces_add / spaces_rem lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LeaseStatus {
    pub acquire_result: i32,
    pub acquire_attempt: u64,
    pub acquire_success: u64,
    pub renewal_result: i32,
    pub renewal_attempt: u64,
    pub renewal_success: u64,
}

/// What the host is doing on a resource for whom.
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
pub(super) enum Job {
    /// ACQUIRE: resources still to take, the keys taken so far.
    Acquire {
        waiter: Waiter,
        todo: Vec<WireResource>,
        done: Vec<(Name, Name)>,
        flags: u32,
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

/// The daemon's state.
pub struct Engine {
    pub(super) cfg: DaemonConfig,
    pub(super) host_name: Name,
    /// The core host: every lockspace and lease of ours.
    pub(super) host: Host,
    /// Which disk each lockspace's and lease's I/O goes to.
    pub(super) routes: Routes<DiskId>,
    /// The backends the host's I/O runs on.
    pub(super) storage: DaemonStorage,
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    /// The client table and the leases held (the daemon machine's, shared with the simulator).
    pub(super) table: sanlock_machine::clients::ClientTable<Job>,
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
    pub(super) watchdog: sanlock_machine::watchdog::Keeper,
    /// The watchdog's shell: wdmd connections, the device thread.
    pub(super) watchdog_io: super::watchdog::WatchdogIo,
    pub(super) next_space_id: u32,
    pub(super) next_res_id: u32,
    pub(super) inq_waiters: Vec<(WireLockspace, Waiter)>,
    /// Shutdown under way: the SHUTDOWN_WAIT replies owed at exit.
    pub(super) shutting_down: bool,
    pub(super) exit_waiters: Vec<oneshot::Sender<Reply>>,
    /// This turn's time: read once when the loop takes up a message, a connection or the
    /// host's outputs, and the only time the engine's decisions see (as `handle(now, …)`).
    pub(super) now: Time,
    /// What the loop is to do after this turn.
    pub(super) actions: Vec<Action>,
    /// The event listeners' channels (the shell's), by listener id.
    sinks: BTreeMap<u64, mpsc::UnboundedSender<Vec<u8>>>,
    next_listener: u64,
    /// The loop's book of replies owed.
    replies: ReplyBook,
}

/// The reply of sanlock's main-thread commands: the header with version 1, length 32, the
/// result in `data` and `data2` echoed.
fn echo_data2(header: Header, rv: i32) -> Vec<u8> {
    let mut h = header.result(rv);
    h.data2 = header.data2;
    h.encode().to_vec()
}

impl Engine {
    /// An engine for `cfg`, answering on `tx`'s channel.
    pub fn new(
        cfg: DaemonConfig,
        host_name: Name,
        tx: mpsc::UnboundedSender<Msg>,
        storage: DaemonStorage,
    ) -> Self {
        let mut hc = HostConfig::new(host_name);
        hc.kill_grace_s = cfg.kill_grace_s;
        hc.set_bitmap_s = cfg.set_bitmap_seconds;
        hc.event_poll = true;
        hc.rng_seed = u64::from(std::process::id()) ^ clock::now().since_boot().as_nanos() as u64;
        Engine {
            cfg,
            host_name,
            host: Host::new(hc),
            routes: Routes::default(),
            storage,
            tx,
            table: Default::default(),
            spaces: Vec::new(),
            pending: BTreeMap::new(),
            lvb_to_write: BTreeMap::new(),
            rename_to: BTreeMap::new(),
            request_waiters: BTreeMap::new(),
            opening: BTreeMap::new(),
            rindex_jobs: BTreeMap::new(),
            watchdog: Default::default(),
            watchdog_io: Default::default(),
            next_space_id: 1,
            next_res_id: 1,
            inq_waiters: Vec::new(),
            shutting_down: false,
            exit_waiters: Vec::new(),
            now: clock::now(),
            actions: Vec::new(),
            sinks: BTreeMap::new(),
            next_listener: 1,
            replies: ReplyBook::default(),
        }
    }

    /// Runs until shutdown: accepts connections, answers messages, drives the host, and makes
    /// the once-a-second checks.
    pub async fn run(mut self, listener: UnixListener, mut rx: mpsc::UnboundedReceiver<Msg>) {
        log::log(
            log::INFO,
            &format!("storage backend {}", self.storage.kind()),
        );
        let mut next_check = clock::now() + Duration::from_secs(1);
        // After a failed accept (out of fds) the listener rests until the next check rather
        // than failing again at once and spinning the loop.
        let mut accept_resting = false;
        loop {
            // Whatever the last turn asked of the host: its I/O to the storage, its outputs
            // decided on, until it is quiet; then the turn's actions.
            self.pump();
            self.perform();
            if self.shutting_down && self.spaces.is_empty() && self.pending.is_empty() {
                break;
            }
            let check_at = self.wake_at(next_check);
            let wake = self
                .host
                .poll_timeout()
                .map_or(check_at, |t| t.min(check_at));
            let in_flight = self.storage.stats().in_flight > 0;
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    self.now = clock::now();
                    self.handle_msg(msg);
                }
                accepted = listener.accept(), if !accept_resting => match accepted {
                    Ok((stream, _)) => {
                        self.now = clock::now();
                        self.accept(stream);
                    }
                    Err(e) => {
                        log::log(log::ERR, &format!("accept: {e}"));
                        accept_resting = true;
                    }
                },
                done = self.storage.completions(), if in_flight => {
                    self.now = clock::now();
                    for c in done {
                        self.host.handle_io(self.now, c.id, c.result);
                    }
                    self.host.handle_timeout(self.now);
                }
                () = sleep_until(wake) => {
                    self.now = clock::now();
                    self.host.handle_timeout(self.now);
                }
            }
            let now = self.now;
            if now >= self.wake_at(next_check) {
                self.pump();
                self.check(now);
            }
            if now >= next_check {
                next_check = now + Duration::from_secs(1);
                accept_resting = false;
            }
        }
        // SHUTDOWN_WAIT's reply: magic, version 1, length 32, cmd 0 (§4.28).
        let bye = Header {
            magic: crate::wire::SM_MAGIC,
            version: crate::wire::SM_PROTO,
            length: HEADER_LEN as u32,
            ..Header::default()
        };
        for w in self.exit_waiters.drain(..) {
            let _ = w.send(Reply::close(bye.encode().to_vec()));
        }
        // Let the connections write those replies before the runtime stops.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        log::log(log::WARNING, "sanlock daemon exiting");
    }

    /// The next check: once a second, or sooner when an add completes.
    fn wake_at(&self, next_check: Time) -> Time {
        self.spaces
            .iter()
            .filter(|s| s.state == SpaceState::Adding)
            .filter_map(|s| s.activate_at)
            .fold(next_check, Time::min)
    }

    /// Runs the host until it is quiet: its queued I/O goes to the disk its target names
    /// (ENODEV for a disk nobody named), its outputs are decided on (which may give it more
    /// to do).
    fn pump(&mut self) {
        loop {
            self.submit_io();
            let outputs: Vec<Output> = std::iter::from_fn(|| self.host.poll_output()).collect();
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                self.handle_output(output);
            }
        }
    }

    fn submit_io(&mut self) {
        let mut batch = Vec::new();
        let mut unplaced = Vec::new();
        while let Some((target, request)) = self.host.poll_io() {
            match self.routes.place(&target, request.disk) {
                Some(disk) => batch.push(sanlock_backends::storage::Io {
                    id: request.id,
                    disk,
                    offset: request.offset,
                    op: request.op,
                    deadline: request.deadline,
                }),
                None => unplaced.push(request.id),
            }
        }
        if !batch.is_empty() {
            self.storage.submit(batch);
        }
        for id in unplaced {
            self.host
                .handle_io(self.now, id, Err(IoError::Failed(ENODEV)));
        }
    }

    fn accept(&mut self, stream: UnixStream) {
        let Some(ci) = self.alloc_client(&stream) else {
            // The table is full: the connection is not added (sanlock closes nothing either,
            // but we have no slot to poll it from).
            return;
        };
        tokio::spawn(super::conn::serve(ci, stream, self.tx.clone()));
    }

    fn handle_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Call {
                ci,
                header,
                call,
                reply,
            } => self.handle_call(ci, header, call, reply),
            Msg::Register { ci } => self.register(ci),
            Msg::Closed { ci } => self.client_closed(ci),
            Msg::ProcessExited { ci, pid } => self.process_exited(ci, pid),
            Msg::Probed { space_id, result } => self.probed(space_id, result),
            Msg::WdmdRegistered { space_id, result } => self.wdmd_registered(space_id, result),
            Msg::DiskOpened { path, result } => self.disk_opened(path, result),
            Msg::Answer { waiter, reply } => self.send_reply(waiter, reply),
            Msg::RindexDone { space } => self.end_rindex_op(space),
            Msg::RindexHeader { job } => self.rindex_header_read(job),
            Msg::RindexChanged { job } => self.rindex_changed(job),
            Msg::Signal => {
                if self.spaces.is_empty() {
                    self.shutting_down = true;
                } else {
                    self.log(Level::Warning, "signal ignored: lockspaces exist");
                }
            }
        }
    }

    fn handle_call(
        &mut self,
        ci: usize,
        header: Header,
        call: Call,
        reply: oneshot::Sender<Reply>,
    ) {
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
        let waiter = self.replies.waiter(header, reply);
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
                self.exit_waiters.extend(self.replies.take(waiter));
                self.shutdown(force);
            }
            Call::Status => {
                let bytes = self.status(header);
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
                let text = log::dump();
                let mut h = header;
                h.version = crate::wire::SM_PROTO;
                h.data = text.len() as u32;
                let mut bytes = h.encode().to_vec();
                bytes.extend_from_slice(&text);
                self.send_reply(waiter, Reply::close(bytes));
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
            Call::RegEvent { ls, sink } => {
                self.prune_listeners();
                let listener = self.next_listener;
                self.next_listener += 1;
                let rv = self.reg_event(&ls.name, listener);
                if rv == 0 {
                    self.sinks.insert(listener, sink);
                }
                self.send_reply(waiter, Reply::keep_bytes(echo_data2(header, rv)));
            }
            Call::EndEvent(ls) => {
                self.prune_listeners();
                let rv = self.end_event(&ls.name);
                self.send_reply(waiter, Reply::close(echo_data2(header, rv)));
            }
            Call::SetEvent { ls, event } => {
                let rv = self.set_event(&ls.name, event, header.cmd_flags);
                self.answer(waiter, rv);
            }
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
    pub(super) fn order_watchdog(&mut self, order: Option<sanlock_machine::watchdog::Order>) {
        use sanlock_machine::watchdog::{Feed, Order};
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

    /// Does what this turn asked for (the shell's part: the only place the engine's decisions
    /// touch processes, threads and connections).
    fn perform(&mut self) {
        let actions = std::mem::take(&mut self.actions);
        let gone = super::shell::perform(
            actions,
            &self.tx,
            &mut self.replies,
            &mut self.watchdog_io,
            &mut self.sinks,
        );
        if !gone.is_empty() {
            self.listeners_gone(&gone);
        }
    }

    /// The shell's part of REG_EVENT and END_EVENT: listeners whose connection has ended are
    /// forgotten, and the engine hears which before it counts them.
    fn prune_listeners(&mut self) {
        let gone: Vec<u64> = self
            .sinks
            .iter()
            .filter(|(_, s)| s.is_closed())
            .map(|(&id, _)| id)
            .collect();
        for id in &gone {
            self.sinks.remove(id);
        }
        self.listeners_gone(&gone);
    }

    /// The client a lease command is for (§1.3): data2 -1 is the connection itself, else the
    /// first registered slot with that pid; it must be registered, alive and idle.
    fn target(&self, ci: usize, header: Header) -> Option<usize> {
        self.table.target(ci, header.data2)
    }

    fn target_error(&self, ci: usize, header: Header) -> i32 {
        self.table.target_error(ci, header.data2)
    }

    // ---- host outputs -----------------------------------------------------------------

    fn handle_output(&mut self, output: Output) {
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
                self.order_watchdog(order);
            }
            Output::WatchdogDisarm { space_name } => {
                let order = self.watchdog.disarm(space_name);
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
