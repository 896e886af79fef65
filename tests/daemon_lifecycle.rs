//! Our daemon's process life and its socket, as sanlock 3.8.5's (wire.md §1): connectable
//! within 0.5 s, one instance per run directory, a stale socket replaced, socket and pid file
//! with sanlock's modes; and malformed requests that never crash, stall or touch disk (§1.3).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Scratch;
use sanlock_daemon::wire::{Cmd, Header, WireDisk, WireLockspace, HEADER_LEN};

fn spawn_daemon(run_dir: &Path) -> Child {
    spawn_daemon_with(run_dir, &[], Stdio::piped())
}

/// Our daemon for `run_dir` with more environment and its stderr to `stderr`.
fn spawn_daemon_with(run_dir: &Path, env: &[(&str, &str)], stderr: Stdio) -> Child {
    std::fs::create_dir_all(run_dir).unwrap();
    Command::new(common::ours())
        .args([
            "daemon", "-D", "-w", "0", "-l", "0", "-h", "0", "-U", "root", "-G", "root", "-e",
            "host",
        ])
        .env("SANLOCK_RUN_DIR", run_dir)
        .env("SANLOCK_PRIVILEGED", "0")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Connects as soon as the daemon listens; panics after `within`.
fn connect_within(run_dir: &Path, within: Duration) -> (UnixStream, Duration) {
    let start = Instant::now();
    loop {
        if let Ok(s) = UnixStream::connect(run_dir.join("sanlock.sock")) {
            return (s, start.elapsed());
        }
        assert!(start.elapsed() < within, "no connection within {within:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn version_on(s: &mut UnixStream) -> Header {
    s.write_all(&Header::request(Cmd::Version, 0, 0, 0, 0).encode())
        .unwrap();
    let mut buf = [0u8; HEADER_LEN];
    s.read_exact(&mut buf).unwrap();
    Header::decode(&buf)
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn daemon_is_connectable_at_once_single_and_restartable_after_kill() {
    let scratch = Scratch::new("daemon-life");
    let run_dir = scratch.path("run");
    for round in 0..5 {
        let started = Instant::now();
        let mut daemon = spawn_daemon(&run_dir);
        // python's wait_for_daemon(0.5) (wire.md §7.1).
        let (mut s, _) = connect_within(&run_dir, Duration::from_millis(500));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "round {round}"
        );
        assert_eq!(version_on(&mut s).data2, 0x0308_0500);
        let pid = std::fs::read_to_string(run_dir.join("sanlock.pid")).unwrap();
        assert_eq!(pid, format!("{}\n", daemon.id()));
        let sock_mode = std::fs::metadata(run_dir.join("sanlock.sock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(sock_mode & 0o777, 0o660);
        let pid_mode = std::fs::metadata(run_dir.join("sanlock.pid"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(pid_mode & 0o777, 0o644);
        if round == 0 {
            // A second daemon on the same run directory exits 1 within a second.
            let t = Instant::now();
            let second = spawn_daemon(&run_dir).wait_with_output().unwrap();
            assert_eq!(second.status.code(), Some(1));
            assert!(t.elapsed() < Duration::from_secs(1));
            assert!(String::from_utf8_lossy(&second.stderr).contains("lockfile setlk error"));
        }
        kill(&mut daemon);
        // The socket file stays: clients now get ECONNREFUSED, not ENOENT (§1.2).
        let err = UnixStream::connect(run_dir.join("sanlock.sock")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(111));
    }
    let status = common::run(&common::ours(), &["client", "status"], None);
    assert_eq!(status.code, 1, "client status with no daemon exits 1");
}

#[test]
fn daemon_without_dash_d_goes_to_the_background_and_shutdown_ends_it() {
    let scratch = Scratch::new("daemon-bg");
    let run_dir = scratch.path("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let out = Command::new(common::ours())
        .args(["daemon", "-w", "0", "-e", "bg"])
        .env("SANLOCK_RUN_DIR", &run_dir)
        .env("SANLOCK_PRIVILEGED", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let (_s, _) = connect_within(&run_dir, Duration::from_secs(2));
    let shutdown = Command::new(common::ours())
        .args(["client", "shutdown", "-w", "1"])
        .env("SANLOCK_RUN_DIR", &run_dir)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&shutdown.stdout),
        "shutdown force 0 wait 1\nshutdown done 0\n"
    );
}

/// Reads a reply if one comes within `wait`.
fn reply_within(s: &mut UnixStream, wait: Duration) -> Option<Header> {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; HEADER_LEN];
    let got = s.read_exact(&mut buf).ok().map(|()| Header::decode(&buf));
    s.set_read_timeout(None).unwrap();
    got
}

#[test]
fn malformed_requests_get_sanlocks_answers_and_never_touch_disk() {
    let scratch = Scratch::new("daemon-malformed");
    let run_dir = scratch.path("run");
    let ls_path = scratch.path("ls");
    common::create_file(&ls_path, 1 << 20);
    common::fill(&ls_path, 0, 1 << 20, 0x5a);
    let before = common::read_all(&ls_path);
    let mut daemon = spawn_daemon(&run_dir);
    let (mut s, _) = connect_within(&run_dir, Duration::from_secs(2));

    // Bad magic, unknown command, protocol major 1: no reply, the connection stays usable.
    let ok = Header::request(Cmd::Status, 0, 0, 0, 0);
    for bad in [
        Header {
            magic: 0xdead,
            ..ok
        },
        Header { cmd: 99, ..ok },
        Header {
            version: 0x0001_0000,
            ..ok
        },
    ] {
        s.write_all(&bad.encode()).unwrap();
        assert_eq!(reply_within(&mut s, Duration::from_millis(200)), None);
    }
    assert_eq!(version_on(&mut s).data2, 0x0308_0500);

    // A lockspace whose path has no NUL in 1024 bytes, and a name using all 48 bytes: opened
    // as cut at 1023 bytes (and fails), never written.
    let mut payload = Vec::new();
    WireLockspace {
        name: sanlock_core::ondisk::Name::new(&[b'n'; 48]).unwrap(),
        host_id: 1,
        flags: 0,
        disk: WireDisk::default(),
    }
    .encode_into(&mut payload);
    payload[64..64 + 1024].fill(b'a');
    let mut c = UnixStream::connect(run_dir.join("sanlock.sock")).unwrap();
    c.write_all(&Header::request(Cmd::AddLockspace, 0, 1, 0, payload.len()).encode())
        .unwrap();
    c.write_all(&payload).unwrap();
    let h = reply_within(&mut c, Duration::from_secs(5)).expect("an answer");
    assert_eq!(h.rv(), -19, "no such path: -ENODEV");

    // ACQUIRE of 9 resources: -E2BIG before any payload is read.
    let mut c = UnixStream::connect(run_dir.join("sanlock.sock")).unwrap();
    c.write_all(&Header::request(Cmd::Acquire, 0, 9, u32::MAX, 0).encode())
        .unwrap();
    assert_eq!(
        reply_within(&mut c, Duration::from_secs(2)).unwrap().rv(),
        -7
    );

    // A header promising a payload, then a disconnect mid-request; and a lying length.
    for _ in 0..10 {
        let mut c = UnixStream::connect(run_dir.join("sanlock.sock")).unwrap();
        c.write_all(&Header::request(Cmd::WriteLockspace, 0, 0, 0, 1104).encode())
            .unwrap();
        c.write_all(&[0u8; 100]).unwrap();
        drop(c);
    }
    let mut c = UnixStream::connect(run_dir.join("sanlock.sock")).unwrap();
    let mut lying = Header::request(Cmd::Version, 0, 0, 0, 0);
    lying.length = u32::MAX;
    c.write_all(&lying.encode()).unwrap();
    assert!(reply_within(&mut c, Duration::from_secs(2)).is_some());

    // A flood of connections beyond the table: the daemon keeps answering.
    let flood: Vec<UnixStream> = (0..1100)
        .filter_map(|_| UnixStream::connect(run_dir.join("sanlock.sock")).ok())
        .collect();
    assert!(flood.len() > 1000);
    drop(flood);
    std::thread::sleep(Duration::from_millis(300));
    let (mut s2, _) = connect_within(&run_dir, Duration::from_secs(2));
    assert_eq!(version_on(&mut s2).data2, 0x0308_0500);
    assert_eq!(version_on(&mut s).data2, 0x0308_0500);

    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon is still running"
    );
    kill(&mut daemon);
    common::assert_same_bytes(&before, &common::read_all(&ls_path), "the lockspace file");
}

#[test]
fn a_privileged_start_behaves_as_sanlocks_here() {
    // SANLOCK_PRIVILEGED unset: limits are raised first; in a container that refuses them both
    // daemons exit 1 before creating anything (wire.md §1.2 step 4). Wherever they start, both
    // must start.
    let c = require_c_sanlock!();
    let scratch = Scratch::new("daemon-privileged");
    let mut results = Vec::new();
    for (bin, name) in [(&c, "c"), (&common::ours(), "ours")] {
        let run_dir = scratch.path(name);
        std::fs::create_dir_all(&run_dir).unwrap();
        let mut child = Command::new(bin)
            .args(["daemon", "-D", "-w", "0", "-e", "host"])
            .env("SANLOCK_RUN_DIR", &run_dir)
            .env_remove("SANLOCK_PRIVILEGED")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        let exited = child.try_wait().unwrap().map(|s| s.code());
        let made_socket = run_dir.join("sanlock.sock").exists();
        kill(&mut child);
        results.push((exited, made_socket));
    }
    assert_eq!(results[1], results[0], "ours, then C: (exit, socket made)");
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn running_out_of_file_descriptors_neither_spins_nor_stops_the_daemon() {
    let scratch = Scratch::new("daemon-emfile");
    let run_dir = scratch.path("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let ours = common::ours().display().to_string();
    let mut daemon = Command::new("/bin/sh")
        .args([
            "-c",
            &format!("ulimit -n 48; exec {ours} daemon -D -w 0 -e host"),
        ])
        .env("SANLOCK_RUN_DIR", &run_dir)
        .env("SANLOCK_PRIVILEGED", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (mut s, _) = connect_within(&run_dir, Duration::from_secs(2));
    // More connections than the daemon has descriptors for: accept fails with EMFILE.
    let flood: Vec<UnixStream> = (0..100)
        .filter_map(|_| UnixStream::connect(run_dir.join("sanlock.sock")).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_seconds(daemon.id());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(daemon.id()) - before;
    assert!(
        used < 0.5,
        "the daemon used {used} s of CPU in 2 s while out of descriptors"
    );
    assert_eq!(version_on(&mut s).data2, 0x0308_0500);
    drop(flood);
    std::thread::sleep(Duration::from_millis(1500));
    let (mut fresh, _) = connect_within(&run_dir, Duration::from_secs(2));
    assert_eq!(version_on(&mut fresh).data2, 0x0308_0500);
    kill(&mut daemon);
}

#[test]
fn a_dead_clients_slot_is_not_reused_while_its_connection_lives() {
    // A registered process exits (its pidfd fires, its lease goes) while a child it forked
    // keeps the connection open. The slot must stay that connection's until it closes: a new
    // holder given the same slot would lose its lease when the old connection finally closes.
    require_python_sanlock!();
    let scratch = Scratch::new("daemon-slot");
    let run_dir = scratch.path("run");
    let mut daemon = spawn_daemon(&run_dir);
    connect_within(&run_dir, Duration::from_secs(2));
    let ls = scratch.path("ls");
    let res = scratch.path("res");
    common::create_file(&ls, 1 << 20);
    common::create_file(&res, 2 << 20);
    let ls_arg = format!("LS:1:{}:0", ls.display());
    let r1 = format!("LS:R1:{}:0", res.display());
    let r2 = format!("LS:R2:{}:1048576", res.display());
    for args in [
        vec!["init", "-s", &ls_arg, "-o", "1"],
        vec!["init", "-r", &r1],
        vec!["init", "-r", &r2],
        vec!["add_lockspace", "-s", &ls_arg, "-o", "1"],
    ] {
        assert_eq!(common::client_at(&run_dir, &args).code, 0, "{args:?}");
    }
    let script = format!(
        "import os, sys, time, sanlock\n\
         fd = sanlock.register()\n\
         sanlock.acquire(b'LS', b'R1', [('{}', 0)], slkfd=fd)\n\
         if os.fork() == 0:\n    time.sleep(4)\n    os._exit(0)\n\
         os._exit(0)\n",
        res.display()
    );
    let parent = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .env("SANLOCK_RUN_DIR", &run_dir)
        .status()
        .unwrap();
    assert!(parent.success());
    // The parent is gone: its lease goes although the child holds the connection.
    let deadline = Instant::now() + Duration::from_secs(3);
    while common::client_at(&run_dir, &["status"])
        .stdout
        .contains(":R1:")
    {
        assert!(
            Instant::now() < deadline,
            "R1 still held after its process exited"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The new holder connects alone, so it gets the lowest free slot: the dead client's if
    // that was freed.
    let mut holder = Command::new(common::ours())
        .args(["client", "command", "-r", &r2, "-c", "/bin/sleep", "600"])
        .env("SANLOCK_RUN_DIR", &run_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(common::client_at(&run_dir, &["status"])
        .stdout
        .contains(&format!(" p {}", holder.id())));
    // The child exits and closes the old connection.
    std::thread::sleep(Duration::from_secs(4));
    let status = common::client_at(&run_dir, &["status"]).stdout;
    let _ = holder.kill();
    let _ = holder.wait();
    kill(&mut daemon);
    assert!(
        status.contains(&format!(
            ":R2:{}:1048576:1 p {}",
            res.display(),
            holder.id()
        )),
        "the new holder lost its lease: {status}"
    );
}

#[test]
fn a_rindex_operation_is_over_before_its_client_hears_back() {
    // One operation per lockspace at a time (-EBUSY otherwise): a client that asks again as soon
    // as it has its answer must never find its own previous call still running (3000 lookups
    // back to back with the cores busy; 321 to 1918 of them got -EBUSY before the fix).
    let scratch = Scratch::new("daemon-rindex-busy");
    let run_dir = scratch.path("run");
    let mut daemon = spawn_daemon(&run_dir);
    connect_within(&run_dir, Duration::from_secs(2));
    let ls = scratch.path("ls");
    let rx = scratch.path("rx");
    common::create_file(&ls, 1 << 20);
    common::create_file(&rx, 4 << 20);
    let ls_arg = format!("LS:1:{}:0", ls.display());
    let rx_arg = format!("LS:{}:0", rx.display());
    for args in [
        vec!["init", "-s", &ls_arg, "-o", "1"],
        vec!["add_lockspace", "-s", &ls_arg, "-o", "1"],
        vec!["format", "-x", &rx_arg],
    ] {
        assert_eq!(common::client_at(&run_dir, &args).code, 0, "{args:?}");
    }
    // Busy cores, so the daemon's threads get preempted between the answer and what follows.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hogs: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let mut payload = Vec::new();
    sanlock_daemon::wire::WireRindex {
        lockspace_name: sanlock_core::ondisk::Name::truncated(b"LS"),
        disk: WireDisk {
            path: rx.as_os_str().as_encoded_bytes().to_vec(),
            offset: 0,
        },
        ..Default::default()
    }
    .encode_into(&mut payload);
    sanlock_daemon::wire::WireRentry::default().encode_into(&mut payload);
    let mut results = std::collections::BTreeMap::new();
    let mut s = UnixStream::connect(run_dir.join("sanlock.sock")).unwrap();
    for _ in 0..3000 {
        let h = Header::request(Cmd::LookupRindex, 0, 0, 0, payload.len());
        s.write_all(&h.encode()).unwrap();
        s.write_all(&payload).unwrap();
        let mut buf = [0u8; HEADER_LEN];
        s.read_exact(&mut buf).unwrap();
        let reply = Header::decode(&buf);
        let mut rest = vec![0u8; reply.length as usize - HEADER_LEN];
        s.read_exact(&mut rest).unwrap();
        *results.entry(reply.rv()).or_insert(0) += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
    kill(&mut daemon);
    // A lookup of the first free slot: 0 each time, never -EBUSY.
    assert_eq!(results.into_iter().collect::<Vec<_>>(), [(0, 3000)]);
}

/// Runs `sanlock client ARGS` against `run_dir`; `None` if it has not finished within `limit`
/// (then it is killed).
fn client_within(run_dir: &Path, args: &[&str], limit: Duration) -> Option<String> {
    let mut child = Command::new(common::ours())
        .arg("client")
        .args(args)
        .env("SANLOCK_RUN_DIR", run_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            kill(&mut child);
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    Some(out)
}

#[test]
fn a_log_that_takes_no_writes_holds_up_no_reply() {
    // sanlock writes its log on a thread of its own (log.c), so a stderr, log file or syslog
    // that stops taking writes never holds up a client or a renewal. Here the daemon's stderr
    // (-D logs every line there) is a pipe that is full and never read.
    let scratch = Scratch::new("daemon-log-stuck");
    let run_dir = scratch.path("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    let mut writer = std::fs::File::from(writer);
    let mut d = Command::new(common::ours())
        .args(["daemon", "-D", "-w", "0", "-l", "0", "-e", "host"])
        .env("SANLOCK_RUN_DIR", &run_dir)
        .env("SANLOCK_PRIVILEGED", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::from(writer.try_clone().unwrap()))
        .spawn()
        .unwrap();
    connect_within(&run_dir, Duration::from_secs(5));
    // Fill the pipe: a thread writes until its write blocks, and the pipe's contents stop
    // growing.
    std::thread::spawn(move || while writer.write_all(&[b'x'; 4096]).is_ok() {});
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let queued = rustix::io::ioctl_fionread(&reader).unwrap();
        if queued == last {
            break;
        }
        last = queued;
    }
    let ls = scratch.path("ls");
    let res = scratch.path("res");
    common::create_file(&ls, 1 << 20);
    common::create_file(&res, 1 << 20);
    let ls_arg = format!("LS:1:{}:0", ls.display());
    let r1 = format!("LS:R1:{}:0", res.display());
    for args in [
        vec!["direct", "init", "-s", &ls_arg, "-o", "1"],
        vec!["direct", "init", "-r", &r1],
    ] {
        assert_eq!(common::run(&common::ours(), &args, None).code, 0);
    }
    let limit = Duration::from_secs(10);
    let add = client_within(
        &run_dir,
        &["add_lockspace", "-s", &ls_arg, "-o", "1"],
        limit,
    );
    let acquire = client_within(&run_dir, &["command", "-r", &r1, "-c", "/bin/true"], limit);
    let status = client_within(&run_dir, &["status"], limit);
    kill(&mut d);
    assert!(
        add.as_deref().is_some_and(|o| o.contains(" done 0")),
        "{add:?}"
    );
    assert!(acquire.is_some(), "the acquire was never answered");
    assert!(
        status.as_deref().is_some_and(|o| o.contains("s LS:1:")),
        "{status:?}"
    );
}

/// Our daemon with `SANLOCK_TEST_PANIC=what` (debug builds inject one panic there), its
/// stderr in `daemon.log`.
fn spawn_daemon_panicking(run_dir: &Path, what: &str) -> Child {
    std::fs::create_dir_all(run_dir).unwrap();
    let log = std::fs::File::create(run_dir.join("daemon.log")).unwrap();
    spawn_daemon_with(run_dir, &[("SANLOCK_TEST_PANIC", what)], log.into())
}

#[test]
fn a_panic_in_a_blocking_operation_fails_that_operation_and_the_daemon_goes_on() {
    if std::env::var_os("SANLOCK_UNDER_TEST").is_some() {
        println!("skipped: SANLOCK_UNDER_TEST may be a release build, which injects no panic");
        return;
    }
    // (where the panic is injected, the request that meets it, the log line it leaves)
    let cases: [(&str, &str, &str); 3] = [
        ("disk operation", "init_ls", "disk operation failed"),
        (
            "lockspace probe",
            "add_lockspace",
            "lockspace probe panicked",
        ),
        ("rindex format", "format", "rindex format panicked"),
    ];
    for (what, request, logged) in cases {
        let scratch = Scratch::new("daemon-panic");
        let run_dir = scratch.path("run");
        let mut daemon = spawn_daemon_panicking(&run_dir, what);
        connect_within(&run_dir, Duration::from_secs(2));
        let ls = scratch.path("ls");
        let rx = scratch.path("rx");
        common::create_file(&ls, 1 << 20);
        common::create_file(&rx, 4 << 20);
        let ls_arg = format!("LS:1:{}:0", ls.display());
        let rx_arg = format!("LS:{}:0", rx.display());
        let init: Vec<&str> = vec!["init", "-s", &ls_arg, "-o", "1"];
        let add: Vec<&str> = vec!["add_lockspace", "-s", &ls_arg, "-o", "1"];
        let format: Vec<&str> = vec!["format", "-x", &rx_arg];
        let steps = [
            ("init_ls", init),
            ("add_lockspace", add),
            ("format", format),
        ];
        for (name, args) in &steps {
            let first = common::client_at(&run_dir, args);
            if *name == request {
                // The operation that panicked fails with -EIO; the same again succeeds: nothing
                // it held (client slot, lockspace "adding", rindex busy) was left behind.
                assert_ne!(
                    first.code, 0,
                    "{what}: {name} should have failed: {first:?}"
                );
                assert!(
                    first.stdout.contains("-5") || first.stderr.contains("-5"),
                    "{what}: {name} fails with -EIO: {first:?}"
                );
                let again = common::client_at(&run_dir, args);
                assert_eq!(again.code, 0, "{what}: {name} again: {again:?}");
            } else {
                assert_eq!(first.code, 0, "{what}: {name}: {first:?}");
            }
        }
        // Still serving: the lockspace is joined and a lookup in the index answers.
        let status = common::client_at(&run_dir, &["status"]);
        assert!(status.stdout.contains("s LS:1:"), "{what}: {status:?}");
        let lookup = common::client_at(&run_dir, &["lookup", "-x", &rx_arg, "-r", "LS:R1"]);
        let busy = |t: &str| t.contains("-16");
        assert!(
            !busy(&lookup.stdout) && !busy(&lookup.stderr),
            "{what}: the index is not left busy: {lookup:?}"
        );
        let logdump = common::client_at(&run_dir, &["log_dump"]);
        kill(&mut daemon);
        let log = std::fs::read_to_string(run_dir.join("daemon.log")).unwrap();
        assert!(
            log.contains("injected panic in"),
            "{what}: the panic was injected: {log}"
        );
        assert!(
            log.contains(logged) || logdump.stdout.contains(logged),
            "{what}: logged {logged:?}: {log}"
        );
    }
}
