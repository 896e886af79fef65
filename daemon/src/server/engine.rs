//! The daemon's one loop (STYLE.md "the core in one picture"): it owns the core `Host` (through
//! the backends' `HostDriver`), the client table, the lockspace list and the leases each client
//! holds. Connections hand it their requests as [`Msg`]s; it answers each when the host has
//! decided. Nothing here blocks: disk probes run on blocking threads and come back as messages.
//!
//! Lockspace lists and their visible windows follow sanlock 3.8.5 (wire.md §4.10-4.12): an add
//! is "in progress" until the delta lease is ours; a remove is applied at the next once-a-second
//! check (INQ still answers 0 until then), and the lockspace leaves the list at the check after
//! its delta lease was released.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use sanlock_backends::clock;
use sanlock_backends::drive::HostDriver;
use sanlock_core::host::{Host, HostConfig, JoinRequest, Output};
use sanlock_core::ondisk::{Geometry, Name};
use sanlock_core::paxos::{self, AcquireRequest};
use sanlock_core::{HostId, Lver, Time};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::config::DaemonConfig;
use super::storage::DaemonStorage;
use super::{clients, disk_ops, log};
use crate::wire::payload::{LSF_ADD, LSF_REM, RES_LVER, RES_SHARED};
use crate::wire::{Header, WireLockspace, WireOptions, WireResource, HEADER_LEN, LOCKSPACE_LEN};

pub(super) use clients::Client;

const EPERM: i32 = -1;
const ENOENT: i32 = -2;
const ESRCH: i32 = -3;
const EAGAIN: i32 = -11;
const EBUSY: i32 = -16;
const EEXIST: i32 = -17;
const EINVAL: i32 = -22;
const ENOTTY: i32 = -25;
const ENOSPC: i32 = -28;
const EALREADY: i32 = -114;
const EINPROGRESS: i32 = -115;
const ESTALE: i32 = -116;
/// SANLK_ADDLS_INVALID_HOSTID: a host_id the lockspace's geometry has no slot for.
const SANLK_ADDLS_INVALID_HOSTID: i32 = -231;

/// How long after an add completes GET_HOSTS still answers -EAGAIN (measured: 0.96 s).
const HOSTS_SCAN_DELAY: Duration = Duration::from_millis(960);

/// The most client connections (CLIENT_NALLOC, less the listener and helper).
pub const MAX_CLIENTS: usize = 1022;

/// What connections and helper tasks tell the engine.
pub enum Msg {
    /// A request, to answer on `reply`.
    Call {
        /// The connection's slot.
        ci: usize,
        /// The request's header (replies are built from it).
        header: Header,
        /// What was asked.
        call: Call,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// REGISTER on connection `ci`.
    Register {
        /// The connection's slot.
        ci: usize,
    },
    /// Connection `ci` closed (EOF or error).
    Closed {
        /// The connection's slot.
        ci: usize,
    },
    /// The geometry probe of a lockspace being added finished.
    Probed {
        /// The lockspace.
        space_id: u32,
        /// Its geometry, or the add's result.
        result: Result<Geometry, i32>,
    },
    /// The registered process `pid` of slot `ci` exited (its pidfd fired).
    ProcessExited {
        /// The slot.
        ci: usize,
        /// The pid it had registered with.
        pid: i32,
    },
    /// SIGTERM, SIGINT or SIGHUP: a non-forced shutdown.
    Signal,
}

/// A request the engine answers, its payload decoded.
pub enum Call {
    /// VERSION.
    Version,
    /// RESTRICT (flags in the header).
    Restrict,
    /// SHUTDOWN (force in `data`): no reply.
    Shutdown,
    /// SHUTDOWN_WAIT: the reply comes when the daemon exits.
    ShutdownWait,
    /// STATUS (`data` selects how much).
    Status,
    /// LOG_DUMP.
    LogDump,
    /// GET_LOCKSPACES.
    GetLockspaces,
    /// ADD_LOCKSPACE.
    AddLockspace(WireLockspace),
    /// INQ_LOCKSPACE.
    InqLockspace(WireLockspace),
    /// REM_LOCKSPACE.
    RemLockspace(WireLockspace),
    /// GET_HOSTS.
    GetHosts(WireLockspace),
    /// HOST_STATUS.
    HostStatus(WireLockspace),
    /// RENEWAL.
    Renewal(WireLockspace),
    /// ACQUIRE for the target client.
    Acquire {
        /// The resources with their disks, in order.
        resources: Vec<WireResource>,
        /// The options (owner name).
        options: WireOptions,
    },
    /// RELEASE for the target client.
    Release(Vec<WireResource>),
    /// INQUIRE for the target client.
    Inquire,
    /// CONVERT for the target client.
    Convert(WireResource),
}

/// What to send back, and whether to close the connection after it.
pub struct Reply {
    /// The bytes (empty: send nothing).
    pub bytes: Vec<u8>,
    /// Close the connection afterwards.
    pub close: bool,
}

impl Reply {
    /// A header, connection kept open.
    pub fn keep(header: Header) -> Reply {
        Reply {
            bytes: header.encode().to_vec(),
            close: false,
        }
    }

    /// Bytes, connection kept open.
    pub fn keep_bytes(bytes: Vec<u8>) -> Reply {
        Reply {
            bytes,
            close: false,
        }
    }

    /// Bytes, then close.
    pub fn close(bytes: Vec<u8>) -> Reply {
        Reply { bytes, close: true }
    }
}

/// A reply owed to a client.
pub(super) struct Waiter {
    header: Header,
    reply: oneshot::Sender<Reply>,
}

impl Waiter {
    fn answer(self, rv: i32) {
        let _ = self.reply.send(Reply::keep(self.header.result(rv)));
    }
}

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
    add_started: Time,
    activate_at: Option<Time>,
    /// GET_HOSTS answers -EAGAIN until the main loop's first host scan after the add, which
    /// in sanlock comes about a second after the lockspace became active (wire.md §4.14).
    hosts_ready_at: Option<Time>,
    add_waiter: Option<Waiter>,
    rem_waiters: Vec<Waiter>,
    /// The renewal history (`-H` records, oldest first).
    pub history: VecDeque<RenewalRecord>,
}

/// One successful renewal and the failed attempts after it (lockspace.c renewal history).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct RenewalRecord {
    pub timestamp: u64,
    pub read_ms: u64,
    pub write_ms: u64,
    pub next_timeouts: u32,
    pub next_errors: u32,
}

/// A resource lease held on this host, by one client (EX) or several (SH).
pub(super) struct Token {
    pub resource: WireResource,
    pub shared: bool,
    pub lver: u64,
    pub holders: Vec<usize>,
    pub res_id: u32,
}

/// What the host is doing on a resource for whom.
enum Pending {
    /// An acquire for client `ci`'s job.
    Acquire { ci: usize, resource: WireResource },
    /// A release for client `ci`'s RELEASE, or in the background (exit, failed acquire).
    Release { ci: Option<usize> },
    /// A convert for client `ci`.
    Convert { ci: usize },
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
    /// RELEASE: keys still being released, and the first error.
    Release {
        waiter: Waiter,
        left: Vec<(Name, Name)>,
        rv: i32,
    },
    /// CONVERT.
    Convert { waiter: Waiter },
}

/// The daemon's state.
pub struct Engine {
    pub(super) cfg: DaemonConfig,
    pub(super) host_name: Name,
    pub(super) driver: HostDriver<DaemonStorage>,
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    pub(super) clients: Vec<Option<Client>>,
    pub(super) spaces: Vec<Space>,
    pub(super) tokens: BTreeMap<(Name, Name), Token>,
    pending: BTreeMap<(Name, Name), Pending>,
    /// Lockspaces whose holders are being stopped.
    pub(super) killing: BTreeSet<Name>,
    pub(super) watchdog: super::watchdog::Watchdog,
    next_space_id: u32,
    next_res_id: u32,
    inq_waiters: Vec<(WireLockspace, Waiter)>,
    /// Shutdown under way: the SHUTDOWN_WAIT replies owed at exit.
    shutting_down: bool,
    exit_waiters: Vec<oneshot::Sender<Reply>>,
}

impl Engine {
    /// An engine for `cfg`, answering on `tx`'s channel.
    pub fn new(cfg: DaemonConfig, host_name: Name, tx: mpsc::UnboundedSender<Msg>) -> Self {
        let mut hc = HostConfig::new(host_name);
        hc.kill_grace_s = cfg.kill_grace_s;
        hc.rng_seed = u64::from(std::process::id()) ^ clock::now().since_boot().as_nanos() as u64;
        let driver = HostDriver::new(Host::new(hc), DaemonStorage::new());
        Engine {
            cfg,
            host_name,
            driver,
            tx,
            clients: Vec::new(),
            spaces: Vec::new(),
            tokens: BTreeMap::new(),
            pending: BTreeMap::new(),
            killing: BTreeSet::new(),
            watchdog: super::watchdog::Watchdog::default(),
            next_space_id: 1,
            next_res_id: 1,
            inq_waiters: Vec::new(),
            shutting_down: false,
            exit_waiters: Vec::new(),
        }
    }

    /// Runs until shutdown: accepts connections, answers messages, drives the host, and makes
    /// the once-a-second checks.
    pub async fn run(mut self, listener: UnixListener, mut rx: mpsc::UnboundedReceiver<Msg>) {
        log::log(
            log::INFO,
            &format!("storage backend {}", self.driver.storage_mut().kind()),
        );
        let mut next_check = clock::now() + Duration::from_secs(1);
        loop {
            if self.shutting_down && self.spaces.is_empty() && self.pending.is_empty() {
                break;
            }
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    self.handle_msg(msg);
                }
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        self.accept(stream);
                    }
                }
                outputs = self.driver.run(self.wake_at(next_check)) => {
                    for output in outputs {
                        self.handle_output(output);
                    }
                    let now = clock::now();
                    if now >= self.wake_at(next_check) {
                        self.check(now);
                    }
                    if now >= next_check {
                        next_check = now + Duration::from_secs(1);
                    }
                }
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
            Msg::Signal => {
                if self.spaces.is_empty() {
                    self.shutting_down = true;
                } else {
                    log::log(log::WARNING, "signal ignored: lockspaces exist");
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
            if !c.registered {
                c.owner_name = Name::truncated(
                    Cmd::from_header(&header)
                        .map_or("cmd", |c| c.client_name())
                        .as_bytes(),
                );
            }
        }
        let waiter = Waiter { header, reply };
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
                let _ = waiter.reply.send(Reply::keep(h));
            }
            Call::Restrict => {
                if let Some(c) = self.client_mut(ci) {
                    c.restrict = header.cmd_flags;
                }
                waiter.answer(0);
            }
            Call::Shutdown => {
                let force = header.data != 0;
                let _ = waiter.reply.send(Reply::close(Vec::new()));
                self.shutdown(force);
            }
            Call::ShutdownWait => {
                let force = header.data != 0;
                if !force && !self.spaces.is_empty() {
                    let _ = waiter
                        .reply
                        .send(Reply::close(header.result(EBUSY).encode().to_vec()));
                    return;
                }
                self.exit_waiters.push(waiter.reply);
                self.shutdown(force);
            }
            Call::Status => {
                let bytes = super::status::status(self, header);
                let _ = waiter.reply.send(Reply::close(bytes));
            }
            Call::HostStatus(ls) => {
                let bytes = super::status::host_status(self, header, &ls.name);
                let _ = waiter.reply.send(Reply::close(bytes));
            }
            Call::Renewal(ls) => {
                let bytes = super::status::renewal(self, header, &ls.name);
                let _ = waiter.reply.send(Reply::close(bytes));
            }
            Call::LogDump => {
                let text = log::dump();
                let mut h = header;
                h.version = crate::wire::SM_PROTO;
                h.data = text.len() as u32;
                let mut bytes = h.encode().to_vec();
                bytes.extend_from_slice(&text);
                let _ = waiter.reply.send(Reply::close(bytes));
            }
            Call::GetLockspaces => {
                let bytes = self.get_lockspaces(header);
                let _ = waiter.reply.send(Reply::close(bytes));
            }
            Call::GetHosts(ls) => {
                let bytes = self.get_hosts(header, &ls);
                let _ = waiter.reply.send(Reply::close(bytes));
            }
            Call::AddLockspace(ls) => self.add_lockspace(ls, waiter),
            Call::InqLockspace(ls) => {
                let rv = self.inq(&ls);
                if rv == EINPROGRESS && header.cmd_flags & 1 != 0 {
                    self.inq_waiters.push((ls, waiter));
                } else {
                    waiter.answer(rv);
                }
            }
            Call::RemLockspace(ls) => self.rem_lockspace(&ls, waiter),
            Call::Acquire { resources, options } => {
                let Some(target) = self.target(ci, header, &waiter) else {
                    waiter.answer(self.target_error(ci, header));
                    return;
                };
                if self.client(target).is_some_and(|c| c.kill_count > 0) {
                    // Being killed: no new leases (§1.3).
                    waiter.answer(EBUSY);
                    return;
                }
                self.acquire(target, resources, options, waiter);
            }
            Call::Release(resources) => match self.target(ci, header, &waiter) {
                Some(target) => self.release(target, resources, waiter),
                None => waiter.answer(self.target_error(ci, header)),
            },
            Call::Inquire => match self.target(ci, header, &waiter) {
                Some(target) => self.inquire(target, waiter),
                None => waiter.answer(self.target_error(ci, header)),
            },
            Call::Convert(res) => match self.target(ci, header, &waiter) {
                Some(target) => self.convert(target, res, waiter),
                None => waiter.answer(self.target_error(ci, header)),
            },
        }
    }

    /// The client a lease command is for (§1.3): data2 -1 is the connection itself, else the
    /// first registered slot with that pid; it must be registered, alive and idle.
    fn target(&self, ci: usize, header: Header, _w: &Waiter) -> Option<usize> {
        let t = self.find_target(ci, header)?;
        let c = self.client(t)?;
        (c.registered && !c.dead && c.job.is_none()).then_some(t)
    }

    fn find_target(&self, ci: usize, header: Header) -> Option<usize> {
        if header.data2 == u32::MAX {
            Some(ci)
        } else {
            let pid = header.data2 as i32;
            self.clients
                .iter()
                .position(|c| c.as_ref().is_some_and(|c| c.registered && c.pid == pid))
        }
    }

    fn target_error(&self, ci: usize, header: Header) -> i32 {
        match self.find_target(ci, header) {
            None => ESRCH,
            Some(t) => match self.client(t) {
                Some(c) if c.dead && c.registered && c.job.is_none() => ESTALE,
                _ => EBUSY,
            },
        }
    }

    // ---- lockspaces -------------------------------------------------------------------

    fn add_lockspace(&mut self, ls: WireLockspace, waiter: Waiter) {
        let asynchronous = waiter.header.cmd_flags & 1 != 0;
        if ls.name.is_empty() || ls.host_id == 0 || ls.disk.path.is_empty() {
            return waiter.answer(EINVAL);
        }
        let same = |s: &Space| {
            s.ls.name == ls.name
                && s.ls.disk == ls.disk
                && s.ls.host_id == ls.host_id
                && s.state != SpaceState::Removed
        };
        if let Some(s) = self.spaces.iter().find(|s| same(s)) {
            return waiter.answer(match s.state {
                SpaceState::Adding => EINPROGRESS,
                SpaceState::Active | SpaceState::RemPending => EEXIST,
                SpaceState::Removing | SpaceState::Removed => EAGAIN,
            });
        }
        let conflict = self.spaces.iter().any(|s| {
            s.state != SpaceState::Removed && ((s.ls.name == ls.name) || s.ls.disk == ls.disk)
        });
        if conflict {
            return waiter.answer(EINVAL);
        }
        if HostId::new(ls.host_id).is_none() {
            return waiter.answer(SANLK_ADDLS_INVALID_HOSTID);
        }
        if let Err(rv) = super::watchdog::check_join(self, ls.name, ls.host_id) {
            return waiter.answer(rv);
        }
        let io_timeout = if waiter.header.data == 0 {
            10
        } else {
            waiter.header.data
        };
        let space_id = self.next_space_id;
        self.next_space_id += 1;
        let add_waiter = if asynchronous {
            waiter.answer(0);
            None
        } else {
            Some(waiter)
        };
        log::log(
            log::INFO,
            &format!(
                "s{space_id} lockspace {}:{}:{}:{}",
                String::from_utf8_lossy(ls.name.as_bytes()),
                ls.host_id,
                String::from_utf8_lossy(&ls.disk.path),
                ls.disk.offset
            ),
        );
        let (path, offset) = (ls.disk.path.clone(), ls.disk.offset);
        self.spaces.push(Space {
            ls,
            space_id,
            io_timeout,
            state: SpaceState::Adding,
            geometry: None,
            failed: false,
            add_started: clock::now(),
            activate_at: None,
            hosts_ready_at: None,
            add_waiter,
            rem_waiters: Vec::new(),
            history: VecDeque::new(),
        });
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = disk_ops::probe_lockspace(&path, offset);
            let _ = tx.send(Msg::Probed { space_id, result });
        });
    }

    fn probed(&mut self, space_id: u32, result: Result<Geometry, i32>) {
        let Some(i) = self.spaces.iter().position(|s| s.space_id == space_id) else {
            return;
        };
        if self.spaces[i].state != SpaceState::Adding {
            // Removed while probing: the add reports -1 (§4.12).
            let s = self.spaces.remove(i);
            if let Some(w) = s.add_waiter {
                w.answer(EPERM);
            }
            return;
        }
        let geometry = match result {
            Ok(g) => g,
            Err(rv) => return self.add_failed(i, rv),
        };
        let space = &self.spaces[i];
        let Some(host_id) = HostId::new(space.ls.host_id).filter(|&h| geometry.contains_host(h))
        else {
            return self.add_failed(i, SANLK_ADDLS_INVALID_HOSTID);
        };
        let disk = match self.driver.storage_mut().open(&space.ls.disk.path) {
            Ok(d) => d,
            Err(_) => return self.add_failed(i, -19),
        };
        let name = space.ls.name;
        let join = JoinRequest {
            space_name: name,
            host_id,
            geometry,
            offset: space.ls.disk.offset,
            io_timeout_s: u64::from(space.io_timeout),
        };
        self.spaces[i].geometry = Some(geometry);
        self.driver.set_lockspace_disk(name, disk);
        self.driver.host_mut().join(clock::now(), join);
    }

    fn add_failed(&mut self, i: usize, rv: i32) {
        let s = self.spaces.remove(i);
        super::watchdog::disarm(self, s.ls.name);
        log::log(
            log::ERR,
            &format!("s{} add_lockspace fail result {rv}", s.space_id),
        );
        if let Some(w) = s.add_waiter {
            w.answer(rv);
        }
    }

    /// INQ_LOCKSPACE's answer: the same name, path and offset; host_id 0 matches any (§4.11).
    fn inq(&self, ls: &WireLockspace) -> i32 {
        let found = self.spaces.iter().find(|s| {
            s.ls.name == ls.name
                && s.ls.disk == ls.disk
                && (ls.host_id == 0 || ls.host_id == s.ls.host_id)
        });
        match found.map(|s| s.state) {
            Some(SpaceState::Active | SpaceState::RemPending) => 0,
            Some(SpaceState::Adding | SpaceState::Removing | SpaceState::Removed) => EINPROGRESS,
            None => ENOENT,
        }
    }

    fn rem_lockspace(&mut self, ls: &WireLockspace, waiter: Waiter) {
        let asynchronous = waiter.header.cmd_flags & 1 != 0;
        let unused = waiter.header.cmd_flags & 2 != 0;
        let found = self.spaces.iter().position(|s| {
            s.ls.name == ls.name
                && s.ls.disk == ls.disk
                && (ls.host_id == 0 || ls.host_id == s.ls.host_id)
        });
        let Some(i) = found else {
            return waiter.answer(ENOENT);
        };
        match self.spaces[i].state {
            SpaceState::Removing | SpaceState::Removed | SpaceState::RemPending => {
                return waiter.answer(EINPROGRESS)
            }
            SpaceState::Adding => {
                // The add is cancelled and reports -1; this remove answers 0 (§4.12).
                self.cancel_add(i);
                return waiter.answer(0);
            }
            SpaceState::Active => {}
        }
        let name = self.spaces[i].ls.name;
        if unused
            && (self.tokens.keys().any(|(l, _)| *l == name)
                || self.pending.keys().any(|(l, _)| *l == name))
        {
            return waiter.answer(EBUSY);
        }
        self.spaces[i].state = SpaceState::RemPending;
        if asynchronous {
            waiter.answer(0);
        } else {
            self.spaces[i].rem_waiters.push(waiter);
        }
    }

    fn cancel_add(&mut self, i: usize) {
        let name = self.spaces[i].ls.name;
        if self.spaces[i].geometry.is_some() {
            self.driver.host_mut().leave(clock::now(), name);
        }
        let s = &mut self.spaces[i];
        s.state = SpaceState::Removing;
        if let Some(w) = s.add_waiter.take() {
            w.answer(EPERM);
        }
    }

    fn get_lockspaces(&self, header: Header) -> Vec<u8> {
        // Active first, then removing (LSF_REM), then adding (LSF_ADD); newest first in each.
        let mut list: Vec<(u32, &Space)> = Vec::new();
        for (flag, states) in [
            (0, &[SpaceState::Active, SpaceState::RemPending][..]),
            (LSF_REM, &[SpaceState::Removing, SpaceState::Removed][..]),
            (LSF_ADD, &[SpaceState::Adding][..]),
        ] {
            list.extend(
                self.spaces
                    .iter()
                    .rev()
                    .filter(|s| states.contains(&s.state))
                    .map(|s| (flag, s)),
            );
        }
        let mut h = header.result(0);
        h.data2 = list.len() as u32;
        h.length = (HEADER_LEN + list.len() * LOCKSPACE_LEN) as u32;
        let mut out = h.encode().to_vec();
        for (flag, s) in list {
            let ls = WireLockspace {
                flags: flag,
                ..s.ls.clone()
            };
            ls.encode_into(&mut out);
        }
        out
    }

    fn get_hosts(&self, header: Header, ls: &WireLockspace) -> Vec<u8> {
        let now = clock::now();
        let space = self.spaces.iter().find(|s| {
            s.ls.name == ls.name && matches!(s.state, SpaceState::Active | SpaceState::RemPending)
        });
        let table = self.driver.host().hosts(ls.name);
        let result = match table {
            _ if space.is_none() => Err(ENOENT),
            _ if space.is_some_and(|s| s.hosts_ready_at.is_some_and(|t| now < t)) => Err(EAGAIN),
            None => Err(ENOENT),
            Some(t) if !t.scanned() => Err(EAGAIN),
            Some(t) => Ok(t),
        };
        let table = match result {
            Ok(t) => t,
            Err(rv) => return header.result(rv).encode().to_vec(),
        };
        let max = self
            .spaces
            .iter()
            .find(|s| s.ls.name == ls.name)
            .and_then(|s| s.geometry)
            .map_or(2000, |g| g.max_hosts());
        let mut hosts = Vec::new();
        for id in 1..=u64::from(max) {
            let h = HostId::new(id).expect("1..=2000");
            if ls.host_id != 0 && ls.host_id != id {
                continue;
            }
            let Some(st) = table.status(h) else { continue };
            if ls.host_id == 0 && st.timestamp == 0 {
                continue;
            }
            let state = table.state(h, now).map_or(1, |s| s.value());
            hosts.push(crate::wire::WireHost {
                host_id: id,
                generation: st.owner_generation.0,
                timestamp: st.timestamp,
                io_timeout: u32::from(st.io_timeout),
                flags: state,
            });
        }
        let mut h = header.result(0);
        h.data2 = hosts.len() as u32;
        h.length = (HEADER_LEN + hosts.len() * crate::wire::HOST_LEN) as u32;
        let mut out = h.encode().to_vec();
        for host in &hosts {
            host.encode_into(&mut out);
        }
        out
    }

    /// Whether acquires may start in the lockspace: listed as active and not failing (§4.4
    /// step 6).
    fn space_usable(&self, name: &Name) -> bool {
        self.spaces.iter().any(|s| {
            s.ls.name == *name
                && matches!(s.state, SpaceState::Active | SpaceState::RemPending)
                && !s.failed
        })
    }

    fn shutdown(&mut self, force: bool) {
        if !force && !self.spaces.is_empty() {
            log::log(log::WARNING, "shutdown ignored: lockspaces exist");
            return;
        }
        self.shutting_down = true;
        let now = clock::now();
        let names: Vec<(usize, Name, SpaceState)> = self
            .spaces
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.ls.name, s.state))
            .collect();
        for (i, name, state) in names {
            match state {
                SpaceState::Adding => self.cancel_add(i),
                SpaceState::Active | SpaceState::RemPending => {
                    self.spaces[i].state = SpaceState::Removing;
                    self.driver.host_mut().leave(now, name);
                }
                SpaceState::Removing | SpaceState::Removed => {}
            }
        }
    }

    /// The once-a-second check (main.c `main_loop`): apply pending removes, drop removed
    /// lockspaces, re-answer waiting inquiries.
    fn check(&mut self, now: Time) {
        for s in &mut self.spaces {
            if s.state == SpaceState::Adding && s.activate_at.is_some_and(|t| now >= t) {
                s.state = SpaceState::Active;
                s.hosts_ready_at = Some(now + HOSTS_SCAN_DELAY);
                if let Some(w) = s.add_waiter.take() {
                    w.answer(0);
                }
            }
        }
        let mut i = 0;
        while i < self.spaces.len() {
            match self.spaces[i].state {
                SpaceState::RemPending => {
                    self.spaces[i].state = SpaceState::Removing;
                    let name = self.spaces[i].ls.name;
                    self.driver.host_mut().leave(now, name);
                    i += 1;
                }
                SpaceState::Removed => {
                    let s = self.spaces.remove(i);
                    for w in s.rem_waiters {
                        w.answer(0);
                    }
                    if let Some(w) = s.add_waiter {
                        w.answer(EPERM);
                    }
                }
                _ => i += 1,
            }
        }
        let waiters = std::mem::take(&mut self.inq_waiters);
        for (ls, w) in waiters {
            let rv = self.inq(&ls);
            if rv == EINPROGRESS {
                self.inq_waiters.push((ls, w));
            } else {
                w.answer(rv);
            }
        }
        self.kill_check(now);
        super::watchdog::check(self, now);
    }

    fn space_mut(&mut self, name: &Name) -> Option<&mut Space> {
        self.spaces
            .iter_mut()
            .find(|s| s.ls.name == *name && s.state != SpaceState::Removed)
    }

    // ---- host outputs -----------------------------------------------------------------

    fn handle_output(&mut self, output: Output) {
        match output {
            Output::Joined {
                space_name,
                generation,
            } => {
                if let Some(s) = self.space_mut(&space_name) {
                    log::log(
                        log::INFO,
                        &format!(
                            "s{} host_id acquired generation {}",
                            s.space_id, generation.0
                        ),
                    );
                    if s.state == SpaceState::Adding {
                        let now = clock::now();
                        let waited = now.saturating_since(s.add_started);
                        let polls = waited.as_nanos().div_ceil(1_000_000_000) as u64;
                        s.activate_at = Some(s.add_started + Duration::from_secs(polls.max(1)));
                    }
                }
            }
            Output::JoinFailed { space_name, rv } => {
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
                    log::log(log::INFO, &format!("s{} lockspace left", s.space_id));
                    s.state = SpaceState::Removed;
                }
                self.forget_space_leases(space_name);
            }
            Output::WatchdogArm {
                space_name,
                renewal,
                expire,
            } => super::watchdog::arm(self, space_name, renewal, expire),
            Output::WatchdogDisarm { space_name } => super::watchdog::disarm(self, space_name),
            Output::Renewal {
                space_name,
                outcome,
            } => {
                let keep = self.cfg.renewal_history_size;
                if let Some(s) = self.space_mut(&space_name) {
                    record_renewal(&mut s.history, keep, outcome);
                }
            }
            Output::RenewalWarning { space_name } => {
                log::log(
                    log::WARNING,
                    &format!(
                        "{} renewal is 6 × io_timeout old",
                        String::from_utf8_lossy(space_name.as_bytes())
                    ),
                );
            }
            Output::LockspaceFailed { space_name } => {
                if let Some(s) = self.space_mut(&space_name) {
                    s.failed = true;
                    log::log(
                        log::ERR,
                        &format!("s{} check_our_lease failed: recovery starts", s.space_id),
                    );
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
            Output::HostEvent { .. } | Output::RequestDone { .. } | Output::StopHolder { .. } => {
                log::log(log::DEBUG, &format!("not handled yet: {output:?}"));
            }
        }
    }

    /// A lockspace is gone: whatever of its leases is still listed goes (no disk I/O is left
    /// to do: the host dropped them).
    fn forget_space_leases(&mut self, space_name: Name) {
        let keys: Vec<(Name, Name)> = self
            .tokens
            .keys()
            .filter(|(l, _)| *l == space_name)
            .copied()
            .collect();
        for key in keys {
            if let Some(t) = self.tokens.remove(&key) {
                for ci in t.holders {
                    if let Some(c) = self.client_mut(ci) {
                        c.leases.retain(|k| *k != key);
                    }
                }
            }
        }
    }

    // ---- leases -----------------------------------------------------------------------

    fn acquire(
        &mut self,
        ci: usize,
        resources: Vec<WireResource>,
        options: WireOptions,
        waiter: Waiter,
    ) {
        let flags = waiter.header.cmd_flags;
        let Some(c) = self.client_mut(ci) else {
            return waiter.answer(EBUSY);
        };
        c.owner_name = options.owner_name;
        // Every lockspace must be usable before anything starts (§4.4 step 6).
        if resources
            .iter()
            .any(|r| !self.space_usable(&r.lockspace_name))
        {
            return waiter.answer(ENOSPC);
        }
        let mut todo = resources;
        todo.reverse();
        self.client_mut(ci).expect("checked").job = Some(Job::Acquire {
            waiter,
            todo,
            done: Vec::new(),
            flags,
        });
        self.acquire_next(ci);
    }

    /// Starts the next resource of client `ci`'s acquire, or answers it.
    fn acquire_next(&mut self, ci: usize) {
        loop {
            let Some(Client {
                job: Some(Job::Acquire { todo, flags, .. }),
                ..
            }) = self.client_mut(ci)
            else {
                return;
            };
            let flags = *flags;
            let Some(res) = todo.pop() else {
                return self.finish_acquire(ci, 0);
            };
            match self.start_acquire(ci, &res, flags) {
                Ok(true) => return,
                Ok(false) => {}
                Err(rv) => return self.finish_acquire(ci, rv),
            }
        }
    }

    /// `Ok(true)`: the host is acquiring; `Ok(false)`: done at once (a second SH holder).
    fn start_acquire(&mut self, ci: usize, res: &WireResource, flags: u32) -> Result<bool, i32> {
        let key = (res.lockspace_name, res.name);
        let shared = res.flags & RES_SHARED != 0;
        if !self.space_usable(&key.0) {
            return Err(ENOSPC);
        }
        match self.pending.get(&key) {
            Some(Pending::Release { .. }) => return Err(EAGAIN),
            Some(_) => return Err(EBUSY),
            None => {}
        }
        if let Some(t) = self.tokens.get_mut(&key) {
            if t.shared && shared && !t.holders.contains(&ci) {
                t.holders.push(ci);
                self.add_client_lease(ci, key);
                return Ok(false);
            }
            return Err(EEXIST);
        }
        if self.driver.host().busy(key.0, key.1) {
            return Err(EBUSY);
        }
        if res.disks.len() != 1 {
            log::log(
                log::ERR,
                "resource leases on more than one disk are not supported by sanlock-rs",
            );
            return Err(EINVAL);
        }
        let disk = &res.disks[0];
        let id = self
            .driver
            .storage_mut()
            .open(&disk.path)
            .map_err(|e| e.rv())?;
        let space_geometry = self
            .spaces
            .iter()
            .find(|s| s.ls.name == key.0)
            .and_then(|s| s.geometry);
        if let Some(g) = space_geometry {
            if disk.offset % g.area_bytes() != 0 {
                return Err(EINVAL);
            }
        }
        self.driver.set_lease_disk(key.0, key.1, id);
        let request = AcquireRequest {
            lver: (res.flags & RES_LVER != 0).then_some(Lver(res.lver)),
            owner_nowait: flags & 8 != 0,
            shared,
            lvb: flags & 1 != 0,
        };
        self.pending.insert(
            key,
            Pending::Acquire {
                ci,
                resource: res.clone(),
            },
        );
        self.driver
            .host_mut()
            .acquire(clock::now(), key.0, key.1, disk.offset, request);
        Ok(true)
    }

    fn finish_acquire(&mut self, ci: usize, rv: i32) {
        let Some(c) = self.client_mut(ci) else { return };
        let Some(Job::Acquire { waiter, done, .. }) = c.job.take() else {
            return;
        };
        let dead = c.dead;
        if rv < 0 || dead {
            // The first failure undoes what this command took (§4.4 step 7); a holder that
            // died meanwhile gets -ENOTTY and keeps nothing.
            for key in done {
                self.drop_holder(ci, key);
            }
            waiter.answer(if rv < 0 { rv } else { ENOTTY });
            if dead {
                self.free_client(ci);
            }
            return;
        }
        waiter.answer(0);
    }

    fn release(&mut self, ci: usize, resources: Vec<WireResource>, waiter: Waiter) {
        let flags = waiter.header.cmd_flags;
        let keys: Vec<(Name, Name)> = if flags & 1 != 0 {
            self.client(ci)
                .map(|c| c.leases.clone())
                .unwrap_or_default()
        } else if flags & (2 | 4) != 0 {
            // REL_RENAME and REL_ORPHAN come with the next issue.
            log::log(
                log::ERR,
                "release rename/orphan is not implemented in sanlock-rs yet",
            );
            return waiter.answer(-95);
        } else {
            let held = self
                .client(ci)
                .map(|c| c.leases.clone())
                .unwrap_or_default();
            let mut keys = Vec::new();
            for r in &resources {
                let key = (r.lockspace_name, r.name);
                if !held.contains(&key) {
                    // A name this client does not hold: -1 (§4.5).
                    return waiter.answer(EPERM);
                }
                keys.push(key);
            }
            keys
        };
        let mut left = Vec::new();
        for key in keys {
            if self.drop_holder(ci, key) {
                left.push(key);
            }
        }
        if left.is_empty() {
            return waiter.answer(0);
        }
        self.client_mut(ci).expect("target exists").job = Some(Job::Release {
            waiter,
            left,
            rv: 0,
        });
    }

    /// Takes `ci` off the holders of `key`; the last holder's leaving releases the lease (as
    /// client `ci`'s job). Returns whether the host is releasing on its behalf.
    fn drop_holder(&mut self, ci: usize, key: (Name, Name)) -> bool {
        if let Some(c) = self.client_mut(ci) {
            c.leases.retain(|k| *k != key);
        }
        let Some(t) = self.tokens.get_mut(&key) else {
            return false;
        };
        t.holders.retain(|&h| h != ci);
        if !t.holders.is_empty() {
            return false;
        }
        self.tokens.remove(&key);
        self.pending.insert(key, Pending::Release { ci: Some(ci) });
        self.driver.host_mut().release(clock::now(), key.0, key.1);
        true
    }

    /// Releases a lease nobody holds any more, with no one waiting for the result.
    pub(super) fn release_key(&mut self, key: (Name, Name)) {
        self.pending.insert(key, Pending::Release { ci: None });
        self.driver.host_mut().release(clock::now(), key.0, key.1);
    }

    fn inquire(&mut self, ci: usize, waiter: Waiter) {
        let Some(c) = self.client(ci) else {
            return waiter.answer(EBUSY);
        };
        let mut parts = Vec::new();
        for key in &c.leases {
            let Some(t) = self.tokens.get(key) else {
                continue;
            };
            parts.push(super::status::resource_string(
                &t.resource,
                t.shared,
                t.lver,
            ));
        }
        let count = parts.len() as u32;
        let mut h = waiter.header.result(0);
        h.data2 = count;
        if parts.is_empty() {
            let _ = waiter.reply.send(Reply::keep(h));
            return;
        }
        let text = parts.join(&b' ');
        if text.contains(&b' ') && parts.iter().any(|p| p.contains(&b' ')) {
            // A lease string with a space, even escaped, fails the whole inquire (§4.6).
            h.data = (-81i32) as u32;
            let _ = waiter.reply.send(Reply::keep(h));
            return;
        }
        h.length = (HEADER_LEN + text.len() + 1) as u32;
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(&text);
        bytes.push(0);
        let _ = waiter.reply.send(Reply::keep_bytes(bytes));
    }

    fn convert(&mut self, ci: usize, res: WireResource, waiter: Waiter) {
        let key = (res.lockspace_name, res.name);
        let held = self.client(ci).is_some_and(|c| c.leases.contains(&key));
        let Some(t) = self.tokens.get(&key).filter(|_| held) else {
            return waiter.answer(ENOENT);
        };
        let to_shared = res.flags & RES_SHARED != 0;
        if t.shared == to_shared {
            return waiter.answer(EALREADY);
        }
        if !to_shared && t.holders.len() > 1 {
            // Other local SH holders: the lease cannot become ours alone.
            return waiter.answer(EAGAIN);
        }
        self.pending.insert(key, Pending::Convert { ci });
        self.client_mut(ci).expect("target exists").job = Some(Job::Convert { waiter });
        self.driver
            .host_mut()
            .convert(clock::now(), key.0, key.1, to_shared);
    }

    fn resource_event(&mut self, key: (Name, Name), event: paxos::Event) {
        let pending = self.pending.remove(&key);
        match (pending, event) {
            (Some(Pending::Acquire { ci, resource }), paxos::Event::Acquired { leader, .. }) => {
                let res_id = self.next_res_id;
                self.next_res_id += 1;
                let shared = resource.flags & RES_SHARED != 0;
                self.tokens.insert(
                    key,
                    Token {
                        resource,
                        shared,
                        lver: leader.lver.0,
                        holders: vec![ci],
                        res_id,
                    },
                );
                self.add_client_lease(ci, key);
                self.acquire_next(ci);
            }
            (Some(Pending::Acquire { ci, .. }), paxos::Event::AcquireFailed { rv }) => {
                self.finish_acquire(ci, rv);
            }
            (Some(Pending::Release { ci }), paxos::Event::Released) => {
                self.release_done(ci, key, 0);
            }
            (Some(Pending::Release { ci }), paxos::Event::ReleaseFailed { rv }) => {
                self.release_done(ci, key, rv);
            }
            (Some(Pending::Convert { ci }), paxos::Event::Converted { shared }) => {
                let lver = self.driver.host().held(key.0, key.1).map(|l| l.lver.0);
                if let Some(t) = self.tokens.get_mut(&key) {
                    t.shared = shared;
                    // SH→EX runs a ballot: the lease has a new version.
                    t.lver = lver.unwrap_or(t.lver);
                }
                self.finish_job(ci, 0);
            }
            (Some(Pending::Convert { ci }), paxos::Event::ConvertFailed { rv }) => {
                self.finish_job(ci, rv);
            }
            (pending, event) => {
                // A lockspace that stopped answers what was under way; anything else is
                // noted and dropped.
                if let Some(p) = pending {
                    match p {
                        Pending::Acquire { ci, .. } => self.finish_acquire(ci, ENOSPC),
                        Pending::Release { ci } => self.release_done(ci, key, 0),
                        Pending::Convert { ci } => self.finish_job(ci, ENOSPC),
                    }
                }
                log::log(log::DEBUG, &format!("resource event {event:?}"));
            }
        }
    }

    fn release_done(&mut self, ci: Option<usize>, key: (Name, Name), rv: i32) {
        let Some(ci) = ci else { return };
        let Some(c) = self.client_mut(ci) else { return };
        if let Some(Job::Release {
            left, rv: first, ..
        }) = c.job.as_mut()
        {
            left.retain(|k| *k != key);
            if *first == 0 {
                *first = rv;
            }
            if left.is_empty() {
                let rv = *first;
                self.finish_job(ci, rv);
            }
        } else if c.dead && c.leases.is_empty() {
            self.free_client(ci);
        }
    }

    fn finish_job(&mut self, ci: usize, rv: i32) {
        let Some(c) = self.client_mut(ci) else { return };
        let dead = c.dead;
        match c.job.take() {
            Some(Job::Release { waiter, .. } | Job::Convert { waiter }) => waiter.answer(rv),
            Some(job @ Job::Acquire { .. }) => c.job = Some(job),
            None => {}
        }
        if dead {
            self.release_all(ci);
        }
    }
}

/// Adds a renewal attempt to a history of at most `keep` records: a success is a new record,
/// a failure counts against the last one (a timeout apart from other errors).
fn record_renewal(
    history: &mut VecDeque<RenewalRecord>,
    keep: usize,
    outcome: Result<sanlock_core::host::RenewalTimes, i32>,
) {
    match outcome {
        Ok(t) => {
            if keep == 0 {
                return;
            }
            if history.len() >= keep {
                history.pop_front();
            }
            history.push_back(RenewalRecord {
                timestamp: t.timestamp_s,
                read_ms: t.read_ms,
                write_ms: t.write_ms,
                ..RenewalRecord::default()
            });
        }
        Err(rv) => {
            if let Some(last) = history.back_mut() {
                if rv == sanlock_core::rv::SANLK_AIO_TIMEOUT {
                    last.next_timeouts += 1;
                } else {
                    last.next_errors += 1;
                }
            }
        }
    }
}

/// Command lookup from a header, for naming connections.
struct Cmd;

impl Cmd {
    fn from_header(h: &Header) -> Option<crate::wire::Cmd> {
        crate::wire::Cmd::from_u32(h.cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sanlock_core::host::RenewalTimes;

    fn ok(t: u64) -> Result<RenewalTimes, i32> {
        Ok(RenewalTimes {
            timestamp_s: t,
            read_ms: 3,
            write_ms: 1,
        })
    }

    #[test]
    fn the_renewal_history_keeps_h_records_and_counts_failures_against_the_last() {
        // lockspace.c: a success adds a record, a failure bumps next_timeouts / next_errors.
        let mut h = VecDeque::new();
        record_renewal(&mut h, 3, Err(-202));
        assert!(h.is_empty(), "nothing to count a failure against yet");
        for t in [10, 12, 14, 16] {
            record_renewal(&mut h, 3, ok(t));
        }
        record_renewal(&mut h, 3, Err(-202));
        record_renewal(&mut h, 3, Err(-202));
        record_renewal(&mut h, 3, Err(-5));
        let stamps: Vec<u64> = h.iter().map(|r| r.timestamp).collect();
        assert_eq!(stamps, [12, 14, 16]);
        assert_eq!((h[2].next_timeouts, h[2].next_errors), (2, 1));
        assert_eq!((h[2].read_ms, h[2].write_ms), (3, 1));
        let mut none = VecDeque::new();
        record_renewal(&mut none, 0, ok(1));
        assert!(none.is_empty(), "-H 0 keeps no history");
    }
}
