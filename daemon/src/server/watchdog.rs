//! The watchdog (algorithms.md §6.4). Each lockspace arms it after every successful renewal
//! with an expiry (last renewal + 8N); the host must be reset if a lockspace passes its expiry
//! with lease holders still running. Three ways, chosen at start:
//!
//! - **wdmd** (`-w 1` when wdmd's socket answers): per lockspace a connection, REGISTER
//!   `sanlock_<name>:<host_id>`, REFCOUNT_SET, STATUS (fire_timeout must be 60), then TEST_LIVE
//!   (renewal, expire) after each renewal and TEST_LIVE 0 0 with REFCOUNT_CLEAR when it stops
//!   (sanlock 3.8.5 src/watchdog.c, wdmd/client.c). wdmd feeds /dev/watchdog. Each connection
//!   lives on a thread of its own, as each of sanlock's lockspace threads holds its own: a wdmd
//!   slow to answer holds up that lockspace's join, never the event loop.
//! - **our own feeder** (`-w 1` without wdmd, when /dev/watchdog exists; or a stand-in file
//!   from the `watchdog_file` config key or `$SANLOCK_WATCHDOG_FILE`): as wdmd does it, the
//!   device is fed every 10 s while no armed expiry is within 10 s, and no more once one is,
//!   so it resets the host 60 s after the last feed. It is opened at the first arm and closed
//!   with the magic 'V' when nothing is armed. A stand-in gets text lines: `<ms> feed`,
//!   `<ms> stop fire_at <ms>`, `<ms> close`. `machine::watchdog` decides; a thread of its own
//!   writes.
//! - **off** (`-w 0`).
//!
//! With `-w 1` and neither wdmd nor a device, add_lockspace fails with SANLK_WD_ERROR, as
//! sanlock's does without wdmd.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use sanlock_core::ondisk::Name;
use sanlock_core::Time;
use sanlock_machine::watchdog::{Feed, Keeper, Order};

use super::config::DaemonConfig;
use super::log;
use super::messages::Msg;

pub use sanlock_machine::watchdog::FIRE_TIMEOUT;
/// wdmd's socket (wdmd_sock.h); `$SANLOCK_WDMD_SOCKET` overrides it (ours, for tests).
const WDMD_SOCKET: &str = "/run/wdmd/wdmd.sock";
const WDMD_HEADER_LEN: usize = 176;
const CMD_REGISTER: u32 = 1;
const CMD_REFCOUNT_SET: u32 = 2;
const CMD_REFCOUNT_CLEAR: u32 = 3;
const CMD_TEST_LIVE: u32 = 4;
const CMD_STATUS: u32 = 5;

/// The watchdog's shell: the wdmd connections or the device thread, doing what the engine's
/// [`Keeper`] orders.
#[derive(Default)]
pub enum WatchdogIo {
    /// `-w 0`, or nothing to drive.
    #[default]
    Off,
    /// wdmd: one connection per lockspace, each on its own thread.
    Wdmd {
        socket: PathBuf,
        conns: BTreeMap<Name, std::sync::mpsc::Sender<WdmdCmd>>,
    },
    /// Our feeder's device (or stand-in file), written by a thread of its own.
    Device(std::sync::mpsc::Sender<(Feed, Time)>),
}

/// What a lockspace's wdmd thread is told to send.
pub enum WdmdCmd {
    /// TEST_LIVE after a renewal.
    TestLive { renewal: u64, expire: u64 },
    /// TEST_LIVE 0 0 and REFCOUNT_CLEAR: the lockspace no longer holds the watchdog.
    Clear,
}

/// Picks the watchdog for the daemon's settings: the shell's side and the engine's.
pub fn choose(cfg: &DaemonConfig) -> (WatchdogIo, Keeper) {
    if !cfg.use_watchdog {
        return (WatchdogIo::Off, Keeper::Off);
    }
    if let Some(path) = cfg.watchdog_file.clone() {
        return device_unless_left_armed(path, true);
    }
    let socket = std::env::var_os("SANLOCK_WDMD_SOCKET")
        .map_or_else(|| PathBuf::from(WDMD_SOCKET), PathBuf::from);
    if UnixStream::connect(&socket).is_ok() {
        let io = WatchdogIo::Wdmd {
            socket,
            conns: BTreeMap::new(),
        };
        (io, Keeper::Wdmd(Default::default()))
    } else if std::path::Path::new("/dev/watchdog").exists() {
        device_unless_left_armed("/dev/watchdog".into(), false)
    } else {
        log::log(
            log::WARNING,
            "use_watchdog is set but neither wdmd nor /dev/watchdog is available: \
             lockspaces cannot be joined (run with -w 0 to go without)",
        );
        (WatchdogIo::Off, Keeper::Unavailable)
    }
}

/// Where our feeder marks a device it holds open and armed: in /dev/shm for the real device
/// (tmpfs: a reset clears it), beside a stand-in file for tests.
fn armed_marker(path: &std::path::Path, stand_in: bool) -> PathBuf {
    if stand_in {
        let mut marker = path.as_os_str().to_owned();
        marker.push(".armed");
        PathBuf::from(marker)
    } else {
        PathBuf::from("/dev/shm/sanlock-rs-watchdog.armed")
    }
}

/// Our feeder, unless an earlier daemon left the device open and armed when it ended (its
/// marker is still there): then the device is counting down to the reset that stops that
/// daemon's lease holders, and feeding it would give the host new life while other hosts take
/// those leases (sanlock 089b8cd: wdmd refuses to start then). Joins fail with
/// SANLK_WD_ERROR until the host has reset.
fn device_unless_left_armed(path: PathBuf, stand_in: bool) -> (WatchdogIo, Keeper) {
    let marker = armed_marker(&path, stand_in);
    if marker.exists() {
        log::log(
            log::ERR,
            &format!(
                "watchdog {}: left armed by a daemon that did not exit cleanly ({} exists); \
                 not fed, so that it resets the host: lockspaces cannot be joined until then",
                path.display(),
                marker.display()
            ),
        );
        return (WatchdogIo::Off, Keeper::Unavailable);
    }
    (
        device(path, stand_in, marker),
        Keeper::Feeder(Default::default()),
    )
}

/// Starts the thread that writes to our device, marking it with `marker` while it is open.
fn device(path: PathBuf, stand_in: bool, marker: PathBuf) -> WatchdogIo {
    let (device, orders) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("sanlock-watchdog".into())
        .spawn(move || write_device(&path, stand_in, &marker, &orders));
    if let Err(e) = spawned {
        log::log(log::ERR, &format!("watchdog thread: {e}"));
    }
    WatchdogIo::Device(device)
}

impl WatchdogIo {
    /// Does what the engine ordered. A wdmd registration runs on a thread of its own, which
    /// then keeps the lockspace's connection; [`Msg::WdmdRegistered`] says how it went.
    pub fn carry_out(&mut self, order: Order, tx: &tokio::sync::mpsc::UnboundedSender<Msg>) {
        match (self, order) {
            (
                WatchdogIo::Wdmd { socket, conns },
                Order::Register {
                    space_id,
                    space,
                    host_id,
                },
            ) => {
                let (cmds, inbox) = std::sync::mpsc::channel();
                let socket = socket.clone();
                let thread_tx = tx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("sanlock-wdmd-{space_id}"))
                    .spawn(move || {
                        let conn = wdmd_register(&socket, space, host_id);
                        let result = conn.as_ref().map(drop).map_err(Clone::clone);
                        let _ = thread_tx.send(Msg::WdmdRegistered { space_id, result });
                        if let Ok(conn) = conn {
                            serve_wdmd(conn, &inbox);
                        }
                    });
                if spawned.is_err() {
                    let _ = tx.send(Msg::WdmdRegistered {
                        space_id,
                        result: Err("cannot start a thread".into()),
                    });
                }
                conns.insert(space, cmds);
            }
            (
                WatchdogIo::Wdmd { conns, .. },
                Order::TestLive {
                    space,
                    renewal,
                    expire,
                },
            ) => {
                if let Some(conn) = conns.get(&space) {
                    let _ = conn.send(WdmdCmd::TestLive { renewal, expire });
                }
            }
            (WatchdogIo::Wdmd { conns, .. }, Order::Clear { space }) => {
                if let Some(conn) = conns.remove(&space) {
                    let _ = conn.send(WdmdCmd::Clear);
                }
            }
            (WatchdogIo::Device(device), Order::Device { feed, now }) => {
                let _ = device.send((feed, now));
            }
            // An order for a way not chosen (cannot happen: both sides were chosen together).
            _ => {}
        }
    }
}

/// A lockspace's wdmd thread after its registration: sends what it is told until cleared.
fn serve_wdmd(mut conn: UnixStream, inbox: &std::sync::mpsc::Receiver<WdmdCmd>) {
    for cmd in inbox {
        match cmd {
            WdmdCmd::TestLive { renewal, expire } => {
                if let Err(e) = send(&mut conn, CMD_TEST_LIVE, renewal, expire, None) {
                    log::log(log::ERR, &format!("wdmd test_live failed: {e}"));
                }
            }
            WdmdCmd::Clear => {
                let _ = send(&mut conn, CMD_TEST_LIVE, 0, 0, None);
                let _ = send(&mut conn, CMD_REFCOUNT_CLEAR, 0, 0, None);
                return;
            }
        }
    }
}

/// The watchdog thread: does to the device what the policy said. A stand-in file gets text
/// lines: `<ms> feed`, `<ms> stop fire_at <ms>`, `<ms> close`; a device gets a byte to feed
/// and the magic 'V' to close. An open that fails is tried again at the next feed.
fn write_device(
    path: &std::path::Path,
    stand_in: bool,
    marker: &std::path::Path,
    orders: &std::sync::mpsc::Receiver<(Feed, Time)>,
) {
    let mut device: Option<File> = None;
    let ms = |t: Time| t.since_boot().as_millis();
    for (feed, now) in orders {
        if device.is_none() && feed != Feed::Close {
            match std::fs::OpenOptions::new()
                .append(stand_in)
                .write(true)
                .create(stand_in)
                .open(path)
            {
                Ok(f) => {
                    // Marked while open: only the magic close below removes the mark.
                    if let Err(e) = std::fs::write(marker, std::process::id().to_string()) {
                        log::log(log::ERR, &format!("watchdog {}: {e}", marker.display()));
                    }
                    device = Some(f);
                }
                Err(e) => {
                    log::log(log::ERR, &format!("watchdog {}: {e}", path.display()));
                    continue;
                }
            }
        }
        let Some(dev) = device.as_mut() else { continue };
        let _ = match (feed, stand_in) {
            (Feed::Feed, true) => writeln!(dev, "{} feed", ms(now)),
            (Feed::Feed, false) => dev.write_all(b"\0"),
            (Feed::Stop { fire_at }, true) => {
                writeln!(dev, "{} stop fire_at {}", ms(now), ms(fire_at))
            }
            (Feed::Stop { .. }, false) => Ok(()),
            (Feed::Close, true) => writeln!(dev, "{} close", ms(now)),
            (Feed::Close, false) => dev.write_all(b"V"),
        };
        if feed == Feed::Close {
            device = None;
            let _ = std::fs::remove_file(marker);
        }
    }
}

/// Connects to wdmd for one lockspace: REGISTER, REFCOUNT_SET, STATUS (fire_timeout 60).
fn wdmd_register(
    socket: &std::path::Path,
    space: Name,
    host_id: u64,
) -> Result<UnixStream, String> {
    let mut conn =
        UnixStream::connect(socket).map_err(|e| format!("connect {}: {e}", socket.display()))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let name = format!(
        "sanlock_{}:{host_id}",
        String::from_utf8_lossy(space.as_bytes())
    );
    send(&mut conn, CMD_REGISTER, 0, 0, Some(name.as_bytes())).map_err(|e| e.to_string())?;
    send(&mut conn, CMD_REFCOUNT_SET, 0, 0, None).map_err(|e| e.to_string())?;
    send(&mut conn, CMD_STATUS, 0, 0, None).map_err(|e| e.to_string())?;
    let mut reply = [0u8; WDMD_HEADER_LEN];
    conn.read_exact(&mut reply)
        .map_err(|e| format!("status: {e}"))?;
    let fire_timeout = u32::from_ne_bytes(reply[20..24].try_into().expect("4 bytes"));
    if u64::from(fire_timeout) != FIRE_TIMEOUT.as_secs() {
        return Err(format!("wdmd invalid fire_timeout {fire_timeout} vs 60"));
    }
    Ok(conn)
}

/// One `wdmd_header`: magic 0, cmd, len 0, flags 0, then the times and the name.
fn send(
    conn: &mut UnixStream,
    cmd: u32,
    renewal: u64,
    expire: u64,
    name: Option<&[u8]>,
) -> std::io::Result<()> {
    let mut h = [0u8; WDMD_HEADER_LEN];
    h[4..8].copy_from_slice(&cmd.to_ne_bytes());
    h[32..40].copy_from_slice(&renewal.to_ne_bytes());
    h[40..48].copy_from_slice(&expire.to_ne_bytes());
    if let Some(n) = name {
        let n = &n[..n.len().min(127)];
        h[48..48 + n.len()].copy_from_slice(n);
    }
    conn.write_all(&h)
}
