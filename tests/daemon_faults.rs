//! Our daemon, run in this process with a fault-injecting backend under its storage: when every
//! I/O of the lockspace hangs, renewals time out after N, the lockspace fails 8N after the last
//! good renewal, holders get SIGTERM and, after kill_grace_seconds, SIGKILL (algorithms.md
//! §6.2); the daemon keeps answering meanwhile, and the renewal history counts the timeouts.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Scratch;
use sanlock_backends::faults::FaultKind;
use sanlock_daemon::server::config::DaemonConfig;
use sanlock_daemon::server::storage::{FaultSwitch, PathFault};

fn client(run_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(common::ours())
        .arg("client")
        .args(args)
        .env("SANLOCK_RUN_DIR", run_dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn holder(run_dir: &Path, res: &str, script: &str) -> Child {
    let child = Command::new(common::ours())
        .args([
            "client", "command", "-r", res, "-c", "/bin/sh", "-c", script,
        ])
        .env("SANLOCK_RUN_DIR", run_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let held = format!(" p {}", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client(run_dir, &["status"])
        .lines()
        .any(|l| l.starts_with("r ") && l.ends_with(&held))
    {
        assert!(Instant::now() < deadline, "{res} never held");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn exit_after(child: &mut Child, t0: Instant) -> (f64, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (t0.elapsed().as_secs_f64(), status.signal());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "holder still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn hung_lockspace_io_times_out_and_brings_sigterm_then_sigkill() {
    let scratch = Scratch::new("daemon-faults");
    let run_dir = scratch.path("run");
    let ls = scratch.path("ls");
    let res = scratch.path("res");
    common::create_file(&ls, 1 << 20);
    common::create_file(&res, 2 << 20);
    let cfg = DaemonConfig {
        run_dir: run_dir.clone(),
        privileged: false,
        foreground: true,
        our_host_name: b"faulty".to_vec(),
        use_watchdog: false,
        kill_grace_s: 3,
        ..DaemonConfig::default()
    };
    let switch = FaultSwitch::default();
    let daemon = {
        let switch = switch.clone();
        std::thread::spawn(move || sanlock_daemon::server::serve(cfg, Some(switch)))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::os::unix::net::UnixStream::connect(run_dir.join("sanlock.sock")).is_err() {
        assert!(
            Instant::now() < deadline,
            "the in-process daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ls_arg = format!("LS:1:{}:0", ls.display());
    assert!(client(&run_dir, &["init", "-s", &ls_arg, "-o", "1"]).ends_with("init done 0\n"));
    let r1 = format!("LS:R1:{}:0", res.display());
    let r2 = format!("LS:R2:{}:1048576", res.display());
    assert!(client(&run_dir, &["init", "-r", &r1]).ends_with("init done 0\n"));
    assert!(client(&run_dir, &["init", "-r", &r2]).ends_with("init done 0\n"));
    let add = client(&run_dir, &["add_lockspace", "-s", &ls_arg, "-o", "1"]);
    assert!(add.ends_with("done 0\n"), "{add}");
    let mut polite = holder(&run_dir, &r1, "exec sleep 600");
    let mut stubborn = holder(&run_dir, &r2, "trap '' TERM; while :; do sleep 1; done");

    // Every lockspace I/O from now on hangs: it never completes and times out at its deadline.
    let t0 = Instant::now();
    switch.set(vec![PathFault {
        path: ls.as_os_str().as_encoded_bytes().to_vec(),
        range: 0..u64::MAX,
        kind: FaultKind::Hang,
    }]);
    let asked = Instant::now();
    assert!(client(&run_dir, &["version"]).contains("daemon version 3.8.5"));
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "answers while I/O hangs"
    );
    let (term_at, term_sig) = exit_after(&mut polite, t0);
    let (kill_at, kill_sig) = exit_after(&mut stubborn, t0);
    eprintln!("hung I/O: SIGTERM holder gone at {term_at:.2} s, SIGKILL holder at {kill_at:.2} s");
    assert_eq!((term_sig, kill_sig), (Some(15), Some(9)));
    // T + 8N with T within 2N (+ 0.5 s) before the fault.
    assert!((5.5..9.5).contains(&term_at), "SIGTERM at {term_at}");
    let grace = kill_at - term_at;
    assert!(
        (2.5..4.5).contains(&grace),
        "SIGKILL {grace} s after SIGTERM"
    );

    switch.set(Vec::new());
    let shutdown = client(&run_dir, &["shutdown", "-f", "1", "-w", "1"]);
    assert_eq!(shutdown, "shutdown force 1 wait 1\nshutdown done 0\n");
    assert_eq!(daemon.join().unwrap(), 0);
}

#[test]
fn timed_out_renewals_are_counted_in_the_renewal_history() {
    // lockspace.c: a renewal that times out counts in next_timeouts of the last good one.
    let scratch = Scratch::new("daemon-faults-history");
    let run_dir = scratch.path("run");
    let ls = scratch.path("ls");
    common::create_file(&ls, 1 << 20);
    let cfg = DaemonConfig {
        run_dir: run_dir.clone(),
        privileged: false,
        foreground: true,
        our_host_name: b"faulty2".to_vec(),
        use_watchdog: false,
        ..DaemonConfig::default()
    };
    let switch = FaultSwitch::default();
    let daemon = {
        let switch = switch.clone();
        std::thread::spawn(move || sanlock_daemon::server::serve(cfg, Some(switch)))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::os::unix::net::UnixStream::connect(run_dir.join("sanlock.sock")).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let ls_arg = format!("LS:1:{}:0", ls.display());
    client(&run_dir, &["init", "-s", &ls_arg, "-o", "1"]);
    assert!(client(&run_dir, &["add_lockspace", "-s", &ls_arg, "-o", "1"]).ends_with("done 0\n"));
    std::thread::sleep(Duration::from_secs(3));
    switch.set(vec![PathFault {
        path: ls.as_os_str().as_encoded_bytes().to_vec(),
        range: 0..u64::MAX,
        kind: FaultKind::Hang,
    }]);
    // Two renewal attempts (every 2N + 0.5 s), each timing out after N.
    std::thread::sleep(Duration::from_secs(6));
    let history = client(&run_dir, &["renewal", "-s", "LS"]);
    let last = history.lines().last().unwrap_or_default().to_string();
    let timeouts: u32 = last
        .split(' ')
        .find_map(|kv| kv.strip_prefix("next_timeouts="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(timeouts >= 1, "{history}");
    switch.set(Vec::new());
    // Once I/O flows again the next renewal is a new record with no failures after it.
    std::thread::sleep(Duration::from_secs(3));
    let later = client(&run_dir, &["renewal", "-s", "LS"]);
    assert!(later.lines().count() > history.lines().count(), "{later}");
    assert!(later
        .lines()
        .last()
        .unwrap()
        .ends_with("next_timeouts=0 next_errors=0"));
    client(&run_dir, &["shutdown", "-f", "1", "-w", "1"]);
    assert_eq!(daemon.join().unwrap(), 0);
}
