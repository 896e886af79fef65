//! Cluster messaging for programs (docs/MESSAGING.md): join a messaging area of a lockspace
//! through the daemon of this host, send messages that return once every live member has
//! processed them, and receive messages with an explicit "processed" step. The protocol is
//! core's member machine ([`sanlock_core::messenger`]); this is its shell: a thread that runs
//! the machine, makes its lease calls on a registered connection to the daemon (calls sanlock
//! 3.8.5 has, so a C daemon serves them too), reads and writes the area with O_DIRECT, and
//! turns the daemon's events into wake-ups.
//!
//! One member per lockspace per host: members are counted by host (a host's shared hold is
//! one mode block), so a second local member could not be waited for. [`Messenger::join`]
//! takes a lock file in the run directory to keep it so.

mod asynchronous;
mod driver;
pub mod link;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use sanlock_core::ondisk::message_lvb::{MessagingArea, MsgLease};
use sanlock_core::ondisk::{LeaderKind, Name, RawLeader};

pub use asynchronous::AsyncMessenger;

use crate::disk::Disk;

/// Where a messaging area is: a disk path and the byte offset of its TOKEN lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AreaPlace {
    /// The disk (file or block device).
    pub path: Vec<u8>,
    /// Byte offset of the area.
    pub offset: u64,
}

/// How a member behaves.
#[derive(Clone, Debug)]
pub struct JoinOptions {
    /// The daemon's run directory (its socket); `$SANLOCK_RUN_DIR` or /run/sanlock if unset.
    pub run_dir: Option<PathBuf>,
    /// How often an idle member re-reads the MESSAGE LVB (besides the daemon's events).
    pub poll: Duration,
    /// The first wait after a busy lease.
    pub retry: Duration,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            run_dir: None,
            poll: Duration::from_millis(20),
            retry: Duration::from_millis(5),
        }
    }
}

/// Why a messaging call failed.
#[derive(Debug, thiserror::Error)]
pub enum MsgError {
    /// The daemon refused or could not be reached.
    #[error("lockspace {space}: {what} failed: {rv}")]
    Daemon {
        /// The lockspace.
        space: String,
        /// What was asked.
        what: &'static str,
        /// The result.
        rv: i32,
    },
    /// The area's disk.
    #[error("{0}")]
    Disk(crate::disk::DiskError),
    /// The place does not hold a messaging area of this lockspace.
    #[error("{path}:{offset}: {reason}")]
    NotAnArea {
        /// The disk.
        path: String,
        /// The offset.
        offset: u64,
        /// What was found.
        reason: String,
    },
    /// Another member of this lockspace runs on this host.
    #[error("another member of lockspace {space} runs on this host (lock file {lock})")]
    Busy {
        /// The lockspace.
        space: String,
        /// The lock file held.
        lock: String,
    },
    /// The member stopped (a lease call failed for good, or it left).
    #[error("the member stopped: {rv}")]
    Stopped {
        /// Why.
        rv: i32,
    },
    /// A send did not go out.
    #[error("send failed: {rv}")]
    SendFailed {
        /// Why.
        rv: i32,
    },
}

impl From<crate::disk::DiskError> for MsgError {
    fn from(e: crate::disk::DiskError) -> Self {
        MsgError::Disk(e)
    }
}

/// A message for the program: process it, then call [`Message::processed`]. Until then its
/// sender (and every later one) waits.
#[derive(Debug)]
pub struct Message {
    /// Its number in the order every member sees.
    pub seq: u64,
    /// The sender's host_id.
    pub from: u64,
    /// The bytes sent.
    pub payload: Vec<u8>,
    commands: mpsc::Sender<driver::Command>,
}

impl Message {
    /// Tells the member this message is processed: it may now acknowledge it.
    pub fn processed(self) {
        let _ = self.commands.send(driver::Command::Processed(self.seq));
    }
}

/// A member of a messaging area, through this host's daemon.
pub struct Messenger {
    commands: mpsc::Sender<driver::Command>,
    deliveries: Mutex<mpsc::Receiver<driver::Delivery>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The REG_EVENT connection, shut down when we leave.
    events: std::os::unix::net::UnixStream,
    space: Name,
    host_id: u64,
    joined_at: u64,
}

impl Messenger {
    /// Joins the messaging area at `place` of lockspace `space` (joined by this host's daemon);
    /// returns once a member.
    pub fn join(
        space: &str,
        place: &AreaPlace,
        options: &JoinOptions,
    ) -> Result<Messenger, MsgError> {
        let name = Name::new(space.as_bytes()).map_err(|_| MsgError::Daemon {
            space: space.to_string(),
            what: "lockspace name",
            rv: -22,
        })?;
        let run_dir = options
            .run_dir
            .clone()
            .unwrap_or_else(crate::client::run_dir);
        let lock = host_lock(&run_dir, space)?;
        let socket = run_dir.join("sanlock.sock");
        let daemon_err = |what, rv| MsgError::Daemon {
            space: space.to_string(),
            what,
            rv,
        };
        let (host_id, generation) =
            link::our_host(&socket, &name).map_err(|rv| daemon_err("our host_id", rv))?;
        let disk = Disk::open(&place.path)?;
        let area = read_area(&disk, &name, place)?;
        let link = link::Link::register(&socket, name, &place.path, area)
            .map_err(|rv| daemon_err("register", rv))?;
        let config = sanlock_core::messenger::MessengerConfig {
            area,
            host_id: sanlock_core::HostId::new(host_id).ok_or(daemon_err("our host_id", -22))?,
            generation: sanlock_core::Generation(generation),
            poll: options.poll,
            retry: options.retry,
            retry_max: Duration::from_millis(100),
            notify_every: Duration::from_secs(2),
            seed: host_id ^ (u64::from(std::process::id()) << 16),
            stagger: Duration::from_millis(10),
        };
        let (commands, rx) = mpsc::channel();
        let (deliver_tx, deliveries) = mpsc::channel();
        let (joined_tx, joined_rx) = mpsc::channel();
        let wake = commands.clone();
        let events =
            link::register_events(&socket, &name).map_err(|rv| daemon_err("reg_event", rv))?;
        // Shut down when the member leaves, which ends the listening thread.
        let events_handle = events
            .try_clone()
            .map_err(|e| daemon_err("reg_event", -e.raw_os_error().unwrap_or(5)))?;
        std::thread::Builder::new()
            .name("msg-events".into())
            .spawn(move || {
                link::listen_events(events, |_| wake.send(driver::Command::Wake).is_ok());
            })
            .map_err(|_| daemon_err("events thread", -11))?;
        let shell = driver::Shell {
            link,
            disk,
            deliveries: deliver_tx,
            joined: Some(joined_tx),
            _lock: lock,
        };
        let thread = std::thread::Builder::new()
            .name("msg-member".into())
            .spawn(move || driver::run(sanlock_core::messenger::Messenger::new(config), shell, rx))
            .map_err(|_| daemon_err("member thread", -11))?;
        match joined_rx.recv() {
            Ok(Ok(seq)) => Ok(Messenger {
                commands,
                deliveries: Mutex::new(deliveries),
                thread: Mutex::new(Some(thread)),
                events: events_handle,
                space: name,
                host_id,
                joined_at: seq,
            }),
            Ok(Err(rv)) => {
                let _ = thread.join();
                let _ = events_handle.shutdown(std::net::Shutdown::Both);
                Err(daemon_err("join", rv))
            }
            Err(_) => {
                let _ = thread.join();
                let _ = events_handle.shutdown(std::net::Shutdown::Both);
                Err(daemon_err("join", -108))
            }
        }
    }

    /// Our host_id.
    pub fn host_id(&self) -> u64 {
        self.host_id
    }

    /// The latest message number when we joined: we receive those after it.
    pub fn joined_at(&self) -> u64 {
        self.joined_at
    }

    /// Sends `payload` to every member; returns its number once every live member has
    /// processed it (a member that dies is waited for at most host_dead_seconds).
    pub fn send(&self, payload: &[u8]) -> Result<u64, MsgError> {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(driver::Command::Send(payload.to_vec(), tx))
            .map_err(|_| MsgError::Stopped { rv: -108 })?;
        match rx.recv() {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(rv)) => Err(MsgError::SendFailed { rv }),
            Err(_) => Err(MsgError::Stopped { rv: -108 }),
        }
    }

    /// The next message from another member (blocks).
    pub fn recv(&self) -> Result<Message, MsgError> {
        self.recv_timeout(None)?
            .ok_or(MsgError::Stopped { rv: -110 })
    }

    /// The next message, or `None` after `timeout`.
    pub fn recv_timeout(&self, timeout: Option<Duration>) -> Result<Option<Message>, MsgError> {
        let rx = self.deliveries.lock().expect("deliveries lock");
        let got = match timeout {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(t) => rx.recv_timeout(t),
        };
        match got {
            Ok(driver::Delivery::Message { seq, from, payload }) => Ok(Some(Message {
                seq,
                from,
                payload,
                commands: self.commands.clone(),
            })),
            Ok(driver::Delivery::Stopped(rv)) => Err(MsgError::Stopped { rv }),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(MsgError::Stopped { rv: -108 }),
        }
    }

    /// Leaves (once the step under way ends): ACK released, queued sends failed, this
    /// process's registration closed. Later calls do nothing.
    pub fn leave(&self) {
        let _ = self.commands.send(driver::Command::Leave);
        let thread = self.thread.lock().expect("thread lock").take();
        if let Some(t) = thread {
            let _ = t.join();
        }
        let _ = self.events.shutdown(std::net::Shutdown::Both);
    }

    /// The lockspace.
    pub fn lockspace(&self) -> Name {
        self.space
    }
}

impl Drop for Messenger {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The per-host lock: one member per lockspace on this host.
fn host_lock(run_dir: &Path, space: &str) -> Result<File, MsgError> {
    let path = run_dir.join(format!("msg-{space}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| MsgError::Daemon {
            space: space.to_string(),
            what: "lock file",
            rv: -e.raw_os_error().unwrap_or(5),
        })?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| MsgError::Busy {
            space: space.to_string(),
            lock: path.display().to_string(),
        },
    )?;
    Ok(file)
}

/// Checks that `place` holds the three leases `sanlock msg init` writes for `space`, and
/// learns their geometry from the TOKEN leader.
fn read_area(disk: &Disk, space: &Name, place: &AreaPlace) -> Result<MessagingArea, MsgError> {
    let not_area = |reason: String| MsgError::NotAnArea {
        path: String::from_utf8_lossy(&place.path).into_owned(),
        offset: place.offset,
        reason,
    };
    let sector = disk.read(place.offset, disk_sector(disk))?;
    let leader = RawLeader::parse(sector.as_ref())
        .ok()
        .and_then(|raw| raw.verify(LeaderKind::Paxos).ok())
        .ok_or_else(|| not_area("no paxos lease (run `sanlock msg init` first)".into()))?;
    let area =
        MessagingArea::new(place.offset, leader.geometry).map_err(|e| not_area(e.to_string()))?;
    for lease in MsgLease::ALL {
        let at = area.lease_offset(lease);
        let sector = disk.read(at, leader.geometry.sector_size().as_usize())?;
        let found = RawLeader::parse(sector.as_ref())
            .ok()
            .and_then(|raw| raw.verify(LeaderKind::Paxos).ok());
        match found {
            Some(l)
                if l.space_name == *space
                    && l.resource_name.as_bytes() == lease.resource_name().as_bytes() => {}
            Some(l) => {
                return Err(not_area(format!(
                    "offset {at} holds resource {}:{}, not {}:{}",
                    l.space_name,
                    l.resource_name,
                    space,
                    lease.resource_name()
                )))
            }
            None => return Err(not_area(format!("offset {at} holds no paxos lease"))),
        }
    }
    Ok(area)
}

fn disk_sector(disk: &Disk) -> usize {
    disk.sector_size().map_or(512, |s| s.as_usize())
}
