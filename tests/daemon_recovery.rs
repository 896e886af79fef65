//! Recovery in our daemon when renewals fail (algorithms.md §6): the lockspace fails 8N after
//! the last successful renewal, holders get SIGTERM for kill_grace_seconds, then SIGKILL; the
//! watchdog stops being fed while the lockspace is about to expire and holders live. The
//! storage fault is real: the lockspace file is cut to zero bytes under the daemon, so every
//! renewal read comes back short.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Scratch;

struct Daemon {
    child: Child,
    run_dir: std::path::PathBuf,
}

impl Daemon {
    fn start(run_dir: &Path, extra: &[&str], watchdog_file: Option<&Path>) -> Daemon {
        std::fs::create_dir_all(run_dir).unwrap();
        let mut cmd = Command::new(common::ours());
        cmd.args(["daemon", "-D", "-l", "0", "-h", "0", "-e", "host"])
            .args(extra)
            .env("SANLOCK_RUN_DIR", run_dir)
            .env("SANLOCK_PRIVILEGED", "0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(run_dir.join("daemon.log")).unwrap());
        if let Some(f) = watchdog_file {
            cmd.env("SANLOCK_WATCHDOG_FILE", f);
        }
        let child = cmd.spawn().unwrap();
        common::wait_for_socket(run_dir, Duration::from_secs(5));
        Daemon {
            child,
            run_dir: run_dir.to_path_buf(),
        }
    }

    fn client(&self, args: &[&str]) -> common::Run {
        common::client_at(&self.run_dir, args)
    }

    /// A process holding `res`: `client command -r res -c /bin/sh -c script`.
    fn holder(&self, res: &str, script: &str) -> Child {
        common::hold_with_script(&self.run_dir, res, script)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fault: the lockspace file cut to zero bytes, so every renewal read comes back short.
fn cut_to_nothing(path: &Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn setup(scratch: &Scratch, d: &Daemon, io_timeout: &str) -> (String, String) {
    let ls = scratch.path("ls");
    common::create_file(&ls, 1 << 20);
    setup_on(scratch, d, io_timeout, &ls)
}

/// Lockspace LS at `ls` (host_id 1), leases R1 and R2 in a file of the scratch folder; joined.
fn setup_on(scratch: &Scratch, d: &Daemon, io_timeout: &str, ls: &Path) -> (String, String) {
    let res = scratch.path("res");
    common::create_file(&res, 2 << 20);
    let ls_arg = format!("LS:1:{}:0", ls.display());
    assert_eq!(d.client(&["init", "-s", &ls_arg, "-o", io_timeout]).code, 0);
    for (name, off) in [("R1", 0), ("R2", 1 << 20)] {
        let r = format!("LS:{name}:{}:{off}", res.display());
        assert_eq!(d.client(&["init", "-r", &r]).code, 0);
    }
    let add = d.client(&["add_lockspace", "-s", &ls_arg, "-o", io_timeout]);
    assert_eq!(add.code, 0, "{add:?}");
    (
        format!("LS:R1:{}:0", res.display()),
        format!("LS:R2:{}:1048576", res.display()),
    )
}

#[test]
fn failed_renewals_bring_sigterm_at_8n_then_sigkill_after_the_grace() {
    // io_timeout 1: the lockspace fails 8 s after its last renewal; -g 3: SIGKILL 3 s later.
    let scratch = Scratch::new("daemon-recovery");
    let d = Daemon::start(&scratch.path("run"), &["-w", "0", "-g", "3"], None);
    let (r1, r2) = setup(&scratch, &d, "1");
    let mut polite = d.holder(&r1, "exec sleep 600");
    let mut stubborn = d.holder(&r2, "trap '' TERM; while :; do sleep 1; done");
    // The fault: every renewal read from now on is short. The last good renewal was at most
    // 2 s (the renewal interval, 2N) before this instant.
    let t0 = Instant::now();
    cut_to_nothing(&scratch.path("ls"));
    let (term_at, term_sig) = common::exit_time(&mut polite, t0, Duration::from_secs(30));
    let (kill_at, kill_sig) = common::exit_time(&mut stubborn, t0, Duration::from_secs(30));
    eprintln!("SIGTERM holder gone at {term_at:.2} s, SIGKILL holder at {kill_at:.2} s");
    assert_eq!(term_sig, Some(15), "the first holder died of SIGTERM");
    assert_eq!(
        kill_sig,
        Some(9),
        "the holder ignoring SIGTERM died of SIGKILL"
    );
    // T + 8N, with T in [t0 - 2N - I/O, t0]: SIGTERM within [t0 + 6, t0 + 9].
    assert!((5.5..9.5).contains(&term_at), "SIGTERM at {term_at}");
    // SIGKILL at T + 8N + grace: 3 s after the failure, within a second.
    let grace = kill_at - term_at;
    assert!(
        (2.5..4.5).contains(&grace),
        "SIGKILL {grace} s after SIGTERM"
    );
    // With its holders gone the failed lockspace is stopped and leaves the list.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.client(&["gets"]).stdout.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the failed lockspace never went away"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_watchdog_is_fed_while_renewing_and_not_once_the_lockspace_is_about_to_expire() {
    // io_timeout 2 (with N = 1 the expiry, last renewal + 8 s, is always within wdmd's 10 s
    // warning, so wdmd itself would never feed: see docs/SIMULATION.md); grace 60 keeps a
    // SIGTERM-proof holder alive through the test.
    let scratch = Scratch::new("daemon-watchdog");
    let wd = scratch.path("watchdog");
    let d = Daemon::start(&scratch.path("run"), &["-w", "1", "-g", "60"], Some(&wd));
    let (r1, _) = setup(&scratch, &d, "2");
    let mut holder = d.holder(&r1, "trap '' TERM; while :; do sleep 1; done");
    std::thread::sleep(Duration::from_secs(11));
    let fed = std::fs::read_to_string(&wd).unwrap();
    let feeds = fed.lines().filter(|l| l.ends_with(" feed")).count();
    assert!(feeds >= 2, "fed every 10 s while renewing: {fed}");
    assert!(!fed.contains("stop"), "{fed}");
    let t0 = Instant::now();
    cut_to_nothing(&scratch.path("ls"));
    // Expiry is T + 16 s; feeding stops once it is within 10 s: by t0 + 7 s at the latest.
    let deadline = t0 + Duration::from_secs(9);
    loop {
        let text = std::fs::read_to_string(&wd).unwrap();
        if let Some(stop) = text.lines().find(|l| l.contains(" stop fire_at ")) {
            let fields: Vec<u64> = stop.split(' ').filter_map(|f| f.parse().ok()).collect();
            let last_feed = text
                .lines()
                .rev()
                .filter(|l| l.ends_with(" feed"))
                .find_map(|l| l.split(' ').next()?.parse::<u64>().ok())
                .unwrap();
            assert_eq!(
                fields[1],
                last_feed + 60_000,
                "fires 60 s after the last feed"
            );
            break;
        }
        assert!(Instant::now() < deadline, "still fed: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // And no feed follows while the holder lives on in its grace period.
    let at_stop = std::fs::read_to_string(&wd).unwrap();
    std::thread::sleep(Duration::from_secs(12));
    let later = std::fs::read_to_string(&wd).unwrap();
    assert_eq!(
        later.lines().filter(|l| l.ends_with(" feed")).count(),
        at_stop.lines().filter(|l| l.ends_with(" feed")).count(),
        "no feed while the holder survives: {later}"
    );
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn removing_a_lockspace_kills_its_holders_with_sigkill_first() {
    // §4.12: rem_lockspace SIGKILLs the pids holding leases in it, waits for them, then
    // releases the host_id.
    let scratch = Scratch::new("daemon-rem");
    let d = Daemon::start(&scratch.path("run"), &["-w", "0"], None);
    let (r1, _) = setup(&scratch, &d, "1");
    let mut stubborn = d.holder(&r1, "trap '' TERM; while :; do sleep 1; done");
    let ls_arg = format!("LS:1:{}:0", scratch.path("ls").display());
    let t0 = Instant::now();
    let rem = d.client(&["rem_lockspace", "-s", &ls_arg]);
    assert_eq!(rem.stdout, "rem_lockspace\nrem_lockspace done 0\n");
    let (_, sig) = common::exit_time(&mut stubborn, t0, Duration::from_secs(10));
    assert_eq!(sig, Some(9));
    assert_eq!(d.client(&["gets"]).stdout, "");
}

#[test]
fn in_recovery_the_killpath_runs_once_instead_of_sigterm_then_sigkill_follows() {
    // main.c `kill_pids`: within the grace a client with a killpath gets it run (once), not
    // SIGTERM; after the grace SIGKILL as usual. io_timeout 1, -g 3.
    require_python_sanlock!();
    let scratch = Scratch::new("daemon-killpath");
    let d = Daemon::start(&scratch.path("run"), &["-w", "0", "-g", "3"], None);
    let (r1, _) = setup(&scratch, &d, "1");
    let (marker, script) = common::killpath_recorder(&scratch);
    let parts: Vec<&str> = r1.split(':').collect();
    let py = format!(
        "import sanlock, signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
         fd = sanlock.register()\nsanlock.killpath({:?}, ['recovery', 'a b'], slkfd=fd)\n\
         sanlock.acquire(b'LS', b'R1', [({:?}, 0)], slkfd=fd)\nprint('ready', flush=True)\n\
         time.sleep(600)\n",
        script.display().to_string(),
        parts[2]
    );
    let mut holder = Command::new("/usr/bin/python3")
        .args(["-c", &py])
        .env("SANLOCK_RUN_DIR", &d.run_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = common::first_line(&mut holder);
    assert_eq!(line.trim(), "ready");
    let t0 = Instant::now();
    cut_to_nothing(&scratch.path("ls"));
    let (kill_at, sig) = common::exit_time(&mut holder, t0, Duration::from_secs(30));
    let ran = std::fs::read_to_string(&marker).unwrap_or_default();
    eprintln!("killpath ran: {ran:?}; holder killed at {kill_at:.2} s");
    // Arguments split at the space; no pid (the client did not ask for it); run once.
    assert_eq!(ran, "recovery a b\n");
    assert_eq!(sig, Some(9));
    // Killed at T + 8N + grace: with T in [t0 - 2 s, t0], between 9 and 12 s.
    assert!((8.5..12.5).contains(&kill_at), "SIGKILL at {kill_at}");
}

/// A holder speaking the socket protocol itself (python's binding has no killpath flags):
/// REGISTER, KILLPATH with SANLK_KILLPATH_PID, ACQUIRE of LS:R1 at offset 0 of `res`.
const RAW_HOLDER: &str = r#"
import os, signal, socket, struct, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
script, res = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.path.join(os.environ["SANLOCK_RUN_DIR"], "sanlock.sock"))
def header(cmd, flags, length, data, data2):
    return struct.pack("<8I", 0x04282010, 1, cmd, flags, length, 0, data, data2)
def reply():
    h = b""
    while len(h) < 32:
        h += s.recv(32 - len(h))
    return struct.unpack("<8i", h)[6]
s.sendall(header(1, 0, 32, 0, 0))
s.sendall(header(17, 1, 32 + 256, 0, 0xffffffff)
          + script.encode().ljust(128, b"\0") + b"recovery".ljust(128, b"\0"))
assert reply() == 0
resource = struct.pack("<48s48sQQIIII", b"LS", b"R1", 0, 0, 0, 0, 0, 1)
disk = struct.pack("<1024sQII", res.encode(), 0, 0, 0)
s.sendall(header(7, 0, 32 + 128 + 1040 + 56, 1, 0xffffffff) + resource + disk + b"\0" * 56)
assert reply() == 0
print("ready", os.getpid(), flush=True)
time.sleep(600)
"#;

#[test]
fn a_killpath_set_with_killpath_pid_gets_the_holders_pid_appended() {
    // main.c `send_helper_kill`: with SANLK_KILLPATH_PID the helper appends the pid.
    if !Command::new("/usr/bin/python3")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("skipped: /usr/bin/python3 is not installed");
        return;
    }
    let scratch = Scratch::new("daemon-killpath-pid");
    let d = Daemon::start(&scratch.path("run"), &["-w", "0", "-g", "3"], None);
    let (r1, _) = setup(&scratch, &d, "1");
    let res = r1.split(':').nth(2).unwrap().to_string();
    let (marker, script) = common::killpath_recorder(&scratch);
    let mut holder = Command::new("/usr/bin/python3")
        .args(["-c", RAW_HOLDER, &script.display().to_string(), &res])
        .env("SANLOCK_RUN_DIR", &d.run_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = common::first_line(&mut holder);
    let pid = line
        .trim()
        .strip_prefix("ready ")
        .expect("the holder acquired")
        .to_string();
    let t0 = Instant::now();
    cut_to_nothing(&scratch.path("ls"));
    let (_, sig) = common::exit_time(&mut holder, t0, Duration::from_secs(30));
    assert_eq!(sig, Some(9));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default(),
        format!("recovery {pid}\n")
    );
}

#[test]
fn a_device_left_armed_by_a_daemon_killed_uncleanly_is_not_fed_by_the_next_one() {
    // historical-bugs C26 (sanlock 089b8cd): after an unclean exit the watchdog is counting
    // down to the reset that stops the dead daemon's lease holders; a restarted daemon that
    // reopened and fed it would give the host new life while other hosts take those leases.
    let scratch = Scratch::new("daemon-watchdog-left-armed");
    let wd = scratch.path("watchdog");
    let marker = scratch.path("watchdog.armed");
    let run = scratch.path("run");
    let d = Daemon::start(&run, &["-w", "1"], Some(&wd));
    setup(&scratch, &d, "1");
    assert!(
        marker.exists(),
        "the feeder marks the device it holds armed"
    );
    drop(d); // SIGKILL: no magic close
    let fed_before = std::fs::read_to_string(&wd).unwrap();
    let d = Daemon::start(&run, &["-w", "1"], Some(&wd));
    let ls_arg = format!("LS:1:{}:0", scratch.path("ls").display());
    let add = d.client(&["add_lockspace", "-s", &ls_arg, "-o", "1"]);
    assert_ne!(add.code, 0, "joined on a watchdog left armed: {add:?}");
    assert!(
        format!("{}{}", add.stdout, add.stderr).contains("-203"),
        "SANLK_WD_ERROR: {add:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&wd).unwrap(),
        fed_before,
        "not fed, not closed"
    );
    let log = std::fs::read_to_string(run.join("daemon.log")).unwrap();
    assert!(log.contains("left armed"), "{log}");
    drop(d);

    // Once the host has reset (the mark gone with /dev/shm), and after a clean removal, the
    // next daemon joins as usual.
    std::fs::remove_file(&marker).unwrap();
    let d = Daemon::start(&run, &["-w", "1"], Some(&wd));
    let add = d.client(&["add_lockspace", "-s", &ls_arg, "-o", "1"]);
    assert_eq!(add.code, 0, "{add:?}");
    let rem = d.client(&["rem_lockspace", "-s", &ls_arg]);
    assert_eq!(rem.code, 0, "{rem:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the magic close removes the mark"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(std::fs::read_to_string(&wd).unwrap().ends_with("close\n"));
}
