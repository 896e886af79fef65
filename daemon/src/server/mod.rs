//! `sanlock daemon`: start-up in sanlock 3.8.5's order (wire.md §1.2), then the engine's loop
//! on a single-threaded tokio runtime.

pub mod config;
pub mod conn;
pub mod disk_ops;
mod inject;
#[cfg(test)]
mod layers;
pub mod lockfile;
pub mod log;
pub mod messages;
pub mod runner;
pub mod shell;
pub mod storage;
pub mod watchdog;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use sanlock_core::ondisk::Name;
use tokio::sync::mpsc;

use crate::cli::options::Options;
use config::DaemonConfig;
use messages::Msg;
use sanlock_machine::daemon::Engine;

/// Set in the background copy of a daemon started without `-D`.
const DAEMONIZED_ENV: &str = "SANLOCK_RS_DAEMONIZED";

/// Runs the daemon with `options`; returns the exit status.
pub fn run(argv: &[Vec<u8>], options: &Options) -> i32 {
    let cfg = config::load(options);
    if !cfg.foreground && std::env::var_os(DAEMONIZED_ENV).is_none() {
        // sanlock forks into the background; a second copy of us with the marker set does
        // the same, and this one returns at once.
        return match background(argv) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("sanlock: cannot start the daemon in the background: {e}");
                1
            }
        };
    }
    log::init(cfg.foreground, cfg.logfile_priority, cfg.syslog_priority);
    if cfg.privileged {
        if let Err(what) = raise_limits() {
            log::log(log::ERR, &format!("cannot set the limits for {what}"));
            eprintln!("cannot set the limits for {what}");
            return 1;
        }
    }
    if cfg.run_dir.as_os_str() != "/run/sanlock" {
        log::log(
            log::WARNING,
            &format!(
                "Using non-standard run directory '{}'",
                cfg.run_dir.display()
            ),
        );
    }
    if !cfg.privileged {
        log::log(log::WARNING, "Running in unprivileged mode");
    }
    serve(cfg, None)
}

/// The daemon from the lock file on (wire.md §1.2 steps 8-14), until it shuts down. With a
/// fault switch (a test running the daemon in-process) its storage takes injected faults, and
/// the process's signals are left alone.
pub fn serve(cfg: DaemonConfig, faults: Option<storage::FaultSwitch>) -> i32 {
    let (uid, gid, names) = ids(&cfg);
    if let (true, Some(uname)) = (cfg.privileged, names.as_ref()) {
        // initgroups: the user's supplementary groups (disk access comes through them).
        if let Err(e) = supplementary_groups(uname, gid) {
            log::log(log::ERR, &format!("initgroups failed: {e}"));
        }
    }
    let _lock = match lockfile::take(
        &cfg.run_dir,
        uid,
        gid,
        cfg.privileged,
        cfg.pid_file_nofollow,
    ) {
        Ok(f) => f,
        Err(e) => {
            log::log(log::ERR, &e.to_string());
            eprintln!("{e}");
            return 1;
        }
    };
    let host_name = host_name(&cfg);
    if cfg.privileged && names.is_some() {
        // Step 10: drop to the sanlock user; still one thread, so this is the process's.
        let dropped = rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(gid))
            .and_then(|()| rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(uid)));
        if let Err(e) = dropped {
            log::log(log::ERR, &format!("cannot run as uid {uid} gid {gid}: {e}"));
            return 1;
        }
        let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable);
    }
    log::log(
        log::WARNING,
        &format!(
            "sanlock daemon started 3.8.5 host {} ({})",
            String::from_utf8_lossy(host_name.as_bytes()),
            nodename()
        ),
    );
    // From here on the log's writes are a thread's, never the event loop's.
    log::start_writer();
    lock_memory(cfg.mlock_level);
    if cfg.high_priority {
        log::log(
            log::WARNING,
            "high_priority (SCHED_RR) is not supported by sanlock-rs; running at normal priority",
        );
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::log(log::ERR, &format!("cannot start the event loop: {e}"));
            return 1;
        }
    };
    let status = runtime.block_on(async move {
        let listener = match bind(&cfg, uid, gid) {
            Ok(l) => l,
            Err(e) => {
                log::log(log::ERR, &format!("socket: {e}"));
                return 1;
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let storage = match faults {
            Some(switch) => storage::DaemonStorage::with_faults(switch),
            None => {
                spawn_signal_watch(tx.clone());
                storage::DaemonStorage::new()
            }
        };
        let (watchdog_io, keeper) = watchdog::choose(&cfg);
        // The host's retry jitter: different on every start, as sanlock's is.
        let seed = u64::from(std::process::id())
            ^ sanlock_backends::clock::now().since_boot().as_nanos() as u64;
        let now = sanlock_backends::clock::now();
        let engine = Engine::new(cfg, host_name, seed, keeper, now);
        runner::Runner::new(engine, tx.clone(), storage, watchdog_io)
            .run(listener, rx)
            .await;
        0
    });
    log::flush();
    status
}

fn background(argv: &[Vec<u8>]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let exe = std::env::current_exe()?;
    let args = argv
        .iter()
        .skip(1)
        .map(|a| std::ffi::OsStr::from_bytes(a).to_os_string());
    std::process::Command::new(exe)
        .args(args)
        .env(DAEMONIZED_ENV, "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
}

/// RLIMIT_MEMLOCK, RTPRIO and CORE to unlimited (privileged only); the name of the one that
/// failed.
fn raise_limits() -> Result<(), &'static str> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let unlimited = Rlimit {
        current: None,
        maximum: None,
    };
    for (resource, what) in [
        (Resource::Memlock, "memlock"),
        (Resource::Rtprio, "rtprio"),
        (Resource::Core, "core dumps"),
    ] {
        setrlimit(resource, unlimited).map_err(|_| what)?;
    }
    Ok(())
}

/// The socket: stale file unlinked, bound, 0660, owned by uid:gid, listening.
fn bind(cfg: &DaemonConfig, uid: u32, gid: u32) -> std::io::Result<tokio::net::UnixListener> {
    let path = cfg.run_dir.join("sanlock.sock");
    let _ = std::fs::remove_file(&path);
    let std_listener = std::os::unix::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
    if let Err(e) = std::os::unix::fs::chown(&path, Some(uid), Some(gid)) {
        log::log(log::WARNING, &format!("chown of the socket: {e}"));
    }
    std_listener.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(std_listener)
}

fn spawn_signal_watch(tx: mpsc::UnboundedSender<Msg>) {
    use tokio::signal::unix::{signal, SignalKind};
    for kind in [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ] {
        let Ok(mut s) = signal(kind) else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(Msg::Signal).is_err() {
                    return;
                }
            }
        });
    }
}

/// `-l`: 1 locks what is mapped now, 2 also what is mapped later (mlockall); a failure is
/// logged, as sanlock does.
fn lock_memory(level: i32) {
    use rustix::mm::{mlockall, MlockAllFlags};
    let flags = match level {
        1 => MlockAllFlags::CURRENT,
        l if l >= 2 => MlockAllFlags::CURRENT | MlockAllFlags::FUTURE,
        _ => return,
    };
    if let Err(e) = mlockall(flags) {
        log::log(log::ERR, &format!("mlockall {level} failed: {e}"));
    }
}

/// initgroups(uname, gid): `gid` and every group of /etc/group that lists the user.
fn supplementary_groups(uname: &[u8], gid: u32) -> Result<(), String> {
    let text = std::fs::read("/etc/group").map_err(|e| e.to_string())?;
    let mut groups = vec![rustix::process::Gid::from_raw(gid)];
    for line in text.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if fields.len() < 4 || !fields[3].split(|&b| b == b',').any(|m| m == uname) {
            continue;
        }
        if let Some(g) = std::str::from_utf8(fields[2])
            .ok()
            .and_then(|g| g.parse().ok())
        {
            groups.push(rustix::process::Gid::from_raw(g));
        }
    }
    rustix::thread::set_thread_groups(&groups).map_err(|e| e.to_string())
}

/// uid and gid: `-U`/`-G` (or the config keys), else the user and group `sanlock` when both
/// exist, else 0. An unknown name means 0, with a warning. The user name comes back when both
/// names resolved (then a privileged daemon runs as them).
fn ids(cfg: &DaemonConfig) -> (u32, u32, Option<Vec<u8>>) {
    let lookup = |file: &str, name: &[u8]| -> Option<u32> {
        let text = std::fs::read(file).ok()?;
        text.split(|&b| b == b'\n').find_map(|line| {
            let mut fields = line.split(|&b| b == b':');
            (fields.next()? == name).then_some(())?;
            let _password = fields.next()?;
            std::str::from_utf8(fields.next()?).ok()?.parse().ok()
        })
    };
    let (uname, gname) = match (&cfg.uname, &cfg.gname) {
        (None, None)
            if lookup("/etc/passwd", b"sanlock").is_some()
                && lookup("/etc/group", b"sanlock").is_some() =>
        {
            (Some(b"sanlock".to_vec()), Some(b"sanlock".to_vec()))
        }
        (u, g) => (u.clone(), g.clone()),
    };
    let resolve = |file: &str, what: &str, name: Option<Vec<u8>>| {
        let name = name?;
        let id = lookup(file, &name);
        if id.is_none() {
            log::log(
                log::WARNING,
                &format!(
                    "{what} '{}' not found, using {}id: 0",
                    String::from_utf8_lossy(&name),
                    &what[..1]
                ),
            );
        }
        id
    };
    let uid = resolve("/etc/passwd", "user", uname.clone());
    let gid = resolve("/etc/group", "group", gname);
    let names = match (uid, gid) {
        (Some(_), Some(_)) => uname,
        _ => None,
    };
    (uid.unwrap_or(0), gid.unwrap_or(0), names)
}

/// `-e`, else a fresh UUID, a dot and the node name, cut to 48 bytes.
fn host_name(cfg: &DaemonConfig) -> Name {
    if !cfg.our_host_name.is_empty() {
        return Name::truncated(&cfg.our_host_name);
    }
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("{:032x}", std::process::id()));
    Name::truncated(format!("{uuid}.{}", nodename()).as_bytes())
}

fn nodename() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_dash_e_each_start_gets_a_host_name_of_its_own() {
        // historical-bugs B25 (sanlock 00f5985, 8e17fd6): two hosts with one name look like
        // one host restarting to the delta lease, which then skips its wait for the other.
        let cfg = DaemonConfig::default();
        let (a, b) = (host_name(&cfg), host_name(&cfg));
        assert_ne!(a, b, "a fresh UUID each time");
        let text = String::from_utf8_lossy(a.as_bytes()).into_owned();
        assert!(
            text.len() > 37 && text.as_bytes()[36] == b'.',
            "uuid.nodename: {text}"
        );
        let named = DaemonConfig {
            our_host_name: b"host7".to_vec(),
            ..DaemonConfig::default()
        };
        assert_eq!(host_name(&named), Name::truncated(b"host7"));
    }
}
