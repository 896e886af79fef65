//! A Rust host (core's `Host`, driven on real files by `backends::drive`) and a C sanlock 3.8.5
//! daemon as two hosts of one lockspace, taking turns on one resource lease: each reads what the
//! other wrote, neither takes the lease while the other holds it and renews.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{CDaemon, Scratch};
use sanlock_backends::drive::HostDriver;
use sanlock_backends::file::FileStorage;
use sanlock_backends::uring::UringStorage;
use sanlock_backends::{clock, Storage};
use sanlock_core::host::{Host, HostConfig, JoinRequest, Output};
use sanlock_core::ondisk::{Geometry, Name, SectorSize};
use sanlock_core::paxos::{self, AcquireRequest};
use sanlock_core::HostId;

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

enum Command {
    Acquire,
    Release,
    Leave,
}

/// The Rust host on a thread of its own: it runs its lease loop continuously (renewals do not
/// wait for the test), takes commands, and sends every output back.
struct RustHost {
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
    outputs: mpsc::Receiver<Output>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RustHost {
    fn start(lockspace: &str, lease: &str) -> RustHost {
        let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::channel();
        let (lockspace, lease) = (lockspace.to_string(), lease.to_string());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // io_uring where the kernel allows it, worker threads otherwise.
                let (storage, ls_disk, lease_disk): (Box<dyn Storage>, _, _) =
                    match UringStorage::new() {
                        Ok(mut s) => {
                            let (a, b) = (s.open(&lockspace).unwrap(), s.open(&lease).unwrap());
                            (Box::new(s), a, b)
                        }
                        Err(_) => {
                            let mut s = FileStorage::new();
                            let (a, b) = (s.open(&lockspace).unwrap(), s.open(&lease).unwrap());
                            (Box::new(s), a, b)
                        }
                    };
                let host = Host::new(HostConfig::new(name("rust-host")));
                let mut driver = HostDriver::new(host, storage);
                driver.set_lockspace_disk(name("LS"), ls_disk);
                driver.set_lease_disk(name("LS"), name("R1"), lease_disk);
                let join = JoinRequest {
                    space_name: name("LS"),
                    host_id: HostId::new(1).unwrap(),
                    geometry: Geometry::legacy(SectorSize::Bytes512),
                    offset: 0,
                    // N = 1: a free host_id is ours after 2 s, renewals every 2 s.
                    io_timeout_s: 1,
                };
                driver.host_mut().join(clock::now(), join);
                loop {
                    let until = clock::now() + Duration::from_millis(50);
                    for out in driver.run(until).await {
                        if out_tx.send(out).is_err() {
                            return;
                        }
                    }
                    while let Ok(cmd) = cmd_rx.try_recv() {
                        let now = clock::now();
                        let host = driver.host_mut();
                        match cmd {
                            Command::Acquire => host.acquire(
                                now,
                                name("LS"),
                                name("R1"),
                                sanlock_core::quorum::LeaseDisks::one(0),
                                AcquireRequest::default(),
                            ),
                            Command::Release => host.release(now, name("LS"), name("R1")),
                            Command::Leave => host.leave(now, name("LS")),
                        }
                    }
                    if driver.host().generation(name("LS")).is_none()
                        && driver.storage_mut().stats().in_flight == 0
                        && cmd_rx.is_closed()
                    {
                        return;
                    }
                }
            });
        });
        RustHost {
            commands: cmd_tx,
            outputs: out_rx,
            thread: Some(thread),
        }
    }

    /// Waits for an output `pick` accepts, returning it; other outputs are passed over.
    fn wait_for<T>(&self, what: &str, secs: u64, pick: impl Fn(&Output) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.outputs.recv_timeout(left) {
                Ok(out) => {
                    if let Some(t) = pick(&out) {
                        return t;
                    }
                    eprintln!("rust host: {out:?}");
                }
                Err(_) => panic!("the Rust host never reported {what}"),
            }
        }
    }

    fn acquire(&self) -> Result<(), i32> {
        self.commands.send(Command::Acquire).unwrap();
        self.wait_for("the end of an acquire", 120, |out| match out {
            Output::Resource {
                event: paxos::Event::Acquired { .. },
                ..
            } => Some(Ok(())),
            Output::Resource {
                event: paxos::Event::AcquireFailed { rv },
                ..
            } => Some(Err(*rv)),
            _ => None,
        })
    }
}

impl Drop for RustHost {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Leave);
        let (tx, _) = tokio::sync::mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.commands, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

#[test]
fn a_rust_host_and_a_c_host_share_a_lockspace_and_take_turns_on_a_lease() {
    let c = require_c_sanlock!();
    let scratch = Scratch::new("host-interop");
    let ls_path = scratch.path("lockspace");
    let lease_path = scratch.path("lease");
    common::create_file(&ls_path, 1 << 20);
    common::create_file(&lease_path, 1 << 20);
    let (ls, lease) = (ls_path.to_str().unwrap(), lease_path.to_str().unwrap());
    let res = format!("LS:R1:{lease}:0");
    for args in [
        vec!["direct", "init", "-s", &format!("LS:0:{ls}:0")],
        vec!["direct", "init", "-r", &res],
    ] {
        assert_eq!(common::run(&c, &args, None).code, 0, "{args:?}");
    }

    // The Rust host joins as host 1 and takes the lease.
    let rust = RustHost::start(ls, lease);
    let generation = rust.wait_for("joining", 30, |out| match out {
        Output::Joined { generation, .. } => Some(generation.0),
        Output::JoinFailed { rv, .. } => panic!("join failed: {rv}"),
        _ => None,
    });
    assert_eq!(generation, 1);
    assert_eq!(rust.acquire(), Ok(()));

    // C reads what the Rust host wrote.
    let dump = common::run(&c, &["direct", "dump", ls], None).stdout;
    let ours = line_with(&dump, "rust-host");
    assert!(ours.split_whitespace().nth(1) == Some("LS"), "{ours}");
    let leader = common::run(&c, &["direct", "read_leader", "-r", &res], None).stdout;
    assert!(leader.contains("owner_id 1\n"), "{leader}");
    assert!(leader.contains("owner_generation 1\n"), "{leader}");
    assert!(leader.contains("lver 1\n"), "{leader}");

    // A C daemon joins the same lockspace as host 2 and sees host 1 alive.
    let mut cdaemon = CDaemon::start(&c, &scratch, "c-host");
    let add = cdaemon.client(&["add_lockspace", "-s", &format!("LS:2:{ls}:0"), "-o", "1"]);
    assert_eq!(add.code, 0, "{add:?}");
    let t0 = Instant::now();
    loop {
        let hosts = cdaemon.client(&["host_status", "-s", "LS"]).stdout;
        if hosts
            .lines()
            .any(|l| l.starts_with("1 ") && !l.contains("timestamp 0"))
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "C never saw host 1: {hosts}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // C cannot take the lease while the Rust host holds it and renews.
    let out = std::process::Command::new(&c)
        .args(["client", "command", "-r", &res, "-c", "/bin/true"])
        .env("SANLOCK_RUN_DIR", scratch.path("run-c-host"))
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "C took a lease the Rust host holds: {said}"
    );
    assert!(
        said.contains("-243"),
        "expected SANLK_ACQUIRE_IDLIVE: {said}"
    );

    // The Rust host lets go; C takes it; the Rust host cannot take it back.
    rust.commands.send(Command::Release).unwrap();
    rust.wait_for("the release", 30, |out| match out {
        Output::Resource {
            event: paxos::Event::Released,
            ..
        } => Some(()),
        _ => None,
    });
    cdaemon.hold(&res);
    let leader = common::run(&c, &["direct", "read_leader", "-r", &res], None).stdout;
    assert!(leader.contains("owner_id 2\n"), "{leader}");
    assert!(leader.contains("lver 2\n"), "{leader}");
    assert_eq!(rust.acquire(), Err(paxos::SANLK_ACQUIRE_IDLIVE));
}
