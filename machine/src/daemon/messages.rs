//! What passes between the daemon's parts: the messages its connections and helper threads
//! send the engine, the requests they carry, the replies and the actions the engine asks of its
//! loop, and what waits for a disk or a rindex step. Only types: the engine, its decisions and
//! the shell all use them, and this module uses none of those (no import circle).

use sanlock_core::ondisk::rindex::RindexHeader;
use sanlock_core::ondisk::{Geometry, Name};

use super::DiskNo;
use crate::recovery::StopSignal;
use crate::wire::{
    Cmd, Header, WireHostEvent, WireLockspace, WireOptions, WireRentry, WireResource, WireRindex,
    HEADER_LEN, RENTRY_LEN,
};

/// A request the engine answers, its payload decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// SHOW (ours): lockspaces, hosts, leases and waits in one stream.
    Show,
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
    /// KILLPATH for the target client: the program and its arguments (flags in the header).
    Killpath {
        /// The program.
        path: Vec<u8>,
        /// Its arguments, space-separated, backslash-escaped.
        args: Vec<u8>,
    },
    /// SET_CONFIG (the command in `data`).
    SetConfig(WireLockspace),
    /// REQUEST (force_mode in `data`).
    Request(WireResource),
    /// EXAMINE_LOCKSPACE / EXAMINE_RESOURCE.
    Examine {
        /// The lockspace.
        space: Name,
        /// One resource, or all held in the lockspace.
        resource: Option<Name>,
    },
    /// REG_EVENT: on success the connection carries the event_cb messages of listener
    /// `listener` (an id the shell gave its channel).
    RegEvent {
        /// The lockspace.
        ls: WireLockspace,
        /// The listener.
        listener: u64,
    },
    /// END_EVENT.
    EndEvent(WireLockspace),
    /// SET_EVENT (flags in the header).
    SetEvent {
        /// The lockspace.
        ls: WireLockspace,
        /// The event.
        event: WireHostEvent,
    },
    /// MESSAGE_SEND or, with `fence`, FENCE (ours; seconds to wait in `data`).
    Message {
        /// The lockspace.
        ls: WireLockspace,
        /// The target, its generation (0: the current one) and, for a message, what it says.
        event: WireHostEvent,
        /// FENCE: send RESET and wait until the target has reset or is dead.
        fence: bool,
    },
    /// MESSAGE_STATUS (ours; seconds to wait in `data`, the message's number in `data2`).
    MessageStatus(WireLockspace),
    /// SET_LVB.
    SetLvb {
        /// The resource (names only).
        res: WireResource,
        /// The value.
        lvb: Vec<u8>,
    },
    /// GET_LVB (length in `data2`).
    GetLvb(WireResource),
    /// One of the rindex commands.
    Rindex {
        /// Which.
        cmd: Cmd,
        /// The index.
        rx: WireRindex,
        /// The entry (empty for format and rebuild).
        entry: WireRentry,
    },
}

/// What to send back, and whether to close the connection after it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reply {
    /// The bytes (empty: send nothing).
    pub bytes: Vec<u8>,
    /// Close the connection afterwards.
    pub close: bool,
}

impl Reply {
    /// The result its header carries (sanlock's `data`); `None` when it starts with no
    /// header (a raw payload, or nothing to send).
    pub fn rv(&self) -> Option<i32> {
        let bytes: &[u8; 32] = self.bytes.get(..32)?.try_into().ok()?;
        Some(Header::decode(bytes).rv())
    }

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

/// Names one request owed a reply, unique for the daemon's life (a connection's slot is not:
/// slots are reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyTo(pub u64);

/// A reply owed to a client: the request's header and where the reply goes. The engine
/// answers through [`Engine::answer`] or [`Engine::send_reply`], which push an
/// [`Action::Reply`]; the loop hands it to the connection when the turn ends. A waiter dropped
/// unanswered closes its connection, as sanlock closes a connection whose command it gives up
/// on. A clone is the same waiter (it shares the pointer: the checker copies whole engines);
/// waiters compare and hash by their header and reply id.
#[derive(Clone)]
pub struct Waiter {
    /// The request's header (replies are built from it).
    pub header: Header,
    /// Where the reply goes.
    pub to: ReplyTo,
    /// Alive as long as the waiter: the loop sees a dropped waiter by its dead weak pointer.
    _alive: std::sync::Arc<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.header, self.to) == (other.header, other.to)
    }
}

impl Eq for Waiter {}

impl std::hash::Hash for Waiter {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.header, self.to).hash(state);
    }
}

impl Waiter {
    /// A waiter for the request `header`, answered to `to`, and the weak pointer by which the
    /// shell sees it dropped unanswered.
    pub fn new(header: Header, to: ReplyTo) -> (Waiter, std::sync::Weak<()>) {
        let alive = std::sync::Arc::new(());
        let weak = std::sync::Arc::downgrade(&alive);
        let waiter = Waiter {
            header,
            to,
            _alive: alive,
        };
        (waiter, weak)
    }
}

/// What the engine is told: each message of the shell, in the engine's terms (no channels, no
/// open files), taken by the engine's `handle` with the turn's time.
pub enum Input {
    /// A request of connection `ci`, answered through `waiter`.
    Call {
        ci: usize,
        waiter: Waiter,
        call: Call,
    },
    /// REGISTER on connection `ci`.
    Register { ci: usize },
    /// Connection `ci` closed.
    Closed { ci: usize },
    /// The registered process `pid` of slot `ci` exited.
    ProcessExited { ci: usize, pid: i32 },
    /// A lockspace's geometry probe finished.
    Probed {
        space_id: u32,
        result: Result<Geometry, i32>,
    },
    /// The disk at `path` is open as `disk` for the host's I/O, or did not open (its error
    /// and why).
    DiskOpened {
        path: Vec<u8>,
        result: Result<DiskNo, (i32, String)>,
    },
    /// A reply made off the loop.
    Answer { waiter: Waiter, reply: Reply },
    /// wdmd answered a lockspace's registration.
    WdmdRegistered {
        space_id: u32,
        result: Result<(), String>,
    },
    /// A rindex operation that held no lease finished.
    RindexDone { space: Name },
    /// A locked rindex operation read its header.
    RindexHeader { job: RindexJob },
    /// A locked rindex operation made its change.
    RindexChanged { job: RindexJob },
    /// SIGTERM, SIGINT or SIGHUP.
    Signal,
    /// The host's I/O that completed (or passed its deadline).
    IoDone(Vec<(sanlock_core::io::IoId, sanlock_core::io::IoResult)>),
    /// A deadline of the engine's `poll_timeout` came.
    Timer,
    /// Event listeners whose connections ended.
    ListenersGone(Vec<u64>),
}

/// What the engine asks of its loop, done after each turn in order: the engine decides, the
/// loop does the I/O (issue 16: this is the daemon machine's `poll_action`, taking shape).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send `reply` to whoever waits for `to`.
    Reply { to: ReplyTo, reply: Reply },
    /// Send `signal` to process `pid`.
    Signal { pid: i32, signal: StopSignal },
    /// Run a killpath program (argv).
    RunKillpath(Vec<Vec<u8>>),
    /// Watch registered process `pid` of slot `ci`: [`Msg::ProcessExited`] when it exits.
    WatchPid { ci: usize, pid: i32 },
    /// Probe the lockspace `space_id` being added at `path`, `offset`: [`Msg::Probed`].
    Probe {
        space_id: u32,
        path: Vec<u8>,
        offset: u64,
    },
    /// Open the disk at `path`: [`Msg::DiskOpened`].
    Open { path: Vec<u8> },
    /// Format a rindex (no lockspace, no lease): answered from the thread.
    RindexFormat { job: RindexJob },
    /// Read a rindex operation's header: [`Msg::RindexHeader`] for a `locked` one, else its
    /// change made and answered from the thread (with [`Msg::RindexDone`] first unless
    /// `nolock`).
    RindexRead {
        job: RindexJob,
        nolock: bool,
        locked: bool,
        sector: Option<sanlock_core::ondisk::SectorSize>,
    },
    /// Make a locked operation's change, its rindex_lease held: [`Msg::RindexChanged`].
    RindexChange { job: RindexJob },
    /// Answer LOG_DUMP (`header`) to whoever waits for `to`, from the shell's log ring.
    ReplyLogDump { to: ReplyTo, header: Header },
    /// Write a line to the log.
    Log(crate::clients::Level, String),
    /// Send an event_cb to a listener.
    Event { listener: u64, bytes: Vec<u8> },
    /// What the watchdog's policy orders (wdmd or our device).
    Watchdog(crate::watchdog::Order),
    /// Replace the metrics file at `path` with `text` (ours, after each renewal).
    Metrics {
        path: std::path::PathBuf,
        text: String,
    },
}

/// A create, delete or rebuild waiting for the host (the header read, the lease taken, the
/// change made, the lease given back).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RindexJob {
    pub cmd: Cmd,
    pub rx: WireRindex,
    pub entry: WireRentry,
    pub waiter: Waiter,
    pub header: Option<RindexHeader>,
    /// The change's outcome, answered once the lease is released.
    pub result: Option<(i32, WireRentry)>,
}

/// What waits for a disk.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum AfterOpen {
    /// The lockspace being added (probed already).
    Join { space_id: u32 },
    /// Client `ci`'s acquire: its next resource is on that disk.
    Acquire { ci: usize },
    /// A REQUEST.
    Request { res: WireResource, waiter: Waiter },
    /// A rindex operation about to take its rindex_lease.
    Rindex { job: RindexJob },
}

/// The reply of update, lookup, create and delete: the result and the entry, always.
fn rentry_reply(header: Header, rv: i32, entry: &WireRentry) -> Vec<u8> {
    let mut h = header.result(rv);
    h.length = (HEADER_LEN + RENTRY_LEN) as u32;
    let mut out = h.encode().to_vec();
    entry.encode_into(&mut out);
    out
}

impl RindexJob {
    /// Its answer: the result and, for update, lookup, create and delete, the entry.
    pub fn reply(self, rv: i32, entry: &WireRentry) -> (Waiter, Reply) {
        let job = self;
        let bytes = match job.cmd {
            Cmd::RebuildRindex | Cmd::FormatRindex => {
                job.waiter.header.result(rv).encode().to_vec()
            }
            _ => rentry_reply(job.waiter.header, rv, entry),
        };
        (job.waiter, Reply::keep_bytes(bytes))
    }
}
