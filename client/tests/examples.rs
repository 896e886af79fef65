//! The crate's examples run against two daemons sharing a lockspace: ours (the workspace's
//! `sanlock`) and, where Debian's is installed, sanlock 3.8.5's, since the crate speaks the
//! protocol both do. The test sets everything up with the typed client itself.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sanlock_client::{
    AcquireFlags, AddFlags, Client, Code, Disk, Error, HostEvent, Lockspace, ReleaseFlags,
    Resource, SetEventFlags, WriteFlags,
};

/// A folder under /var/tmp (O_DIRECT works there, not on tmpfs), removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let dir = PathBuf::from(format!(
            "/var/tmp/sanlock-rs-tests/client-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon as host `name`, killed when dropped.
struct Daemon {
    child: Child,
    run_dir: PathBuf,
}

impl Daemon {
    fn start(bin: &Path, scratch: &Scratch, name: &str) -> Daemon {
        let run_dir = scratch.0.join(format!("run-{name}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let child = Command::new(bin)
            .args([
                "daemon", "-D", "-w", "0", "-l", "0", "-h", "0", "-U", "root", "-G", "root",
            ])
            .args(["-e", name])
            .env("SANLOCK_RUN_DIR", &run_dir)
            .env("SANLOCK_PRIVILEGED", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !run_dir.join("sanlock.sock").exists() {
            assert!(
                Instant::now() < deadline,
                "{} made no socket",
                bin.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon { child, run_dir }
    }

    fn client(&self) -> Client {
        Client::at(self.run_dir.join("sanlock.sock"))
    }

    /// Runs example `name` with this daemon's run directory.
    fn example(&self, name: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(examples_dir().join(name));
        cmd.args(args).env("SANLOCK_RUN_DIR", &self.run_dir);
        cmd
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where cargo put this crate's examples: beside this test's own folder.
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples")
}

/// The workspace's `sanlock`, built beside the examples by `cargo test --workspace`.
fn ours() -> Option<PathBuf> {
    let bin = examples_dir().parent().unwrap().join("sanlock");
    bin.exists().then_some(bin)
}

fn c_sanlock() -> Option<PathBuf> {
    let out = Command::new("/usr/sbin/sanlock")
        .arg("version")
        .output()
        .ok()?;
    (out.stdout == b"3.8.5\n").then(|| PathBuf::from("/usr/sbin/sanlock"))
}

fn wait_for_line(out: &mut impl BufRead, within: Duration, what: &str) -> String {
    let t0 = Instant::now();
    let mut line = String::new();
    while t0.elapsed() < within {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if line.contains(what) {
            return line;
        }
    }
    panic!("no line with {what:?} within {within:?} (last: {line:?})");
}

/// Every example against two hosts of daemon `bin`.
fn examples_against(bin: &Path, label: &str) {
    let scratch = Scratch::new(label);
    let ls_path = scratch.0.join("ls");
    let res_path = scratch.0.join("res");
    for p in [&ls_path, &res_path] {
        std::fs::File::create(p).unwrap().set_len(8 << 20).unwrap();
    }
    let h1 = Daemon::start(bin, &scratch, "h1");
    let h2 = Daemon::start(bin, &scratch, "h2");
    let (c1, c2) = (h1.client(), h2.client());
    let ls = |host_id| Lockspace::new("LS", host_id, Disk::new(&ls_path, 0)).unwrap();
    c1.write_lockspace(&ls(0), 0, WriteFlags::NONE, 1).unwrap();
    let lease =
        |name: &str, offset| Resource::new("LS", name, Disk::new(&res_path, offset)).unwrap();
    for (name, offset) in [("R1", 0), ("R2", 1 << 20)] {
        c1.write_resource(&lease(name, offset), 0, 0, WriteFlags::NONE)
            .unwrap();
    }
    let (read, io_timeout) = c1.read_lockspace(&Disk::new(&ls_path, 0)).unwrap();
    assert_eq!(
        (read.name, io_timeout),
        (sanlock_client::name("LS").unwrap(), 1)
    );
    std::thread::scope(|s| {
        s.spawn(|| c1.add_lockspace(&ls(1), AddFlags::NONE, 1).unwrap());
        s.spawn(|| c2.add_lockspace(&ls(2), AddFlags::NONE, 1).unwrap());
    });
    // A typed error: adding it twice.
    let again = c1.add_lockspace(&ls(1), AddFlags::NONE, 1).unwrap_err();
    assert!(again.is_errno(sanlock_client::errno::EEXIST), "{again}");

    // lease_for_child: host 1 holds R1 while its child runs; host 2 is refused meanwhile.
    let mut hold = h1
        .example(
            "lease_for_child",
            &["LS", "R1", res_path.to_str().unwrap(), "0", "sleep", "4"],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(hold.stdout.take().unwrap());
    wait_for_line(&mut out, Duration::from_secs(20), "acquired LS:R1");
    let mut other = c2.register().unwrap();
    let refused = other
        .acquire(&[lease("R1", 0)], AcquireFlags::NONE)
        .unwrap_err();
    assert!(
        matches!(refused, Error::Sanlock(Code::AcquireIdLive)),
        "host 2 acquiring R1 held by host 1: {refused}"
    );
    wait_for_line(&mut out, Duration::from_secs(20), "released");
    assert!(hold.wait().unwrap().success());
    other
        .acquire(&[lease("R1", 0)], AcquireFlags::NONE)
        .unwrap();
    other
        .release(&[lease("R1", 0)], ReleaseFlags::NONE)
        .unwrap();

    // inquire_release: this test process holds R2; the example lists and releases it by pid.
    let mut me = c1.register().unwrap();
    me.acquire(&[lease("R2", 1 << 20)], AcquireFlags::NONE)
        .unwrap();
    let pid = std::process::id().to_string();
    let run = h1.example("inquire_release", &[&pid]).output().unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{text}");
    assert!(text.starts_with("LS:R2 Exclusive lver Some("), "{text}");
    assert!(text.ends_with("released 1\n"), "{text}");
    assert_eq!(me.inquire().unwrap(), Vec::new());

    // wait_events (tokio): host 1 sets an event for host 2, whose listener prints it.
    let mut listen = h2
        .example("wait_events", &["LS", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(listen.stdout.take().unwrap());
    wait_for_line(&mut out, Duration::from_secs(10), "listening");
    let event = HostEvent {
        host_id: 2,
        generation: 0,
        event: 0x11,
        data: 0x22,
    };
    c1.set_event(&read.name, &event, SetEventFlags::NONE)
        .unwrap();
    let line = wait_for_line(&mut out, Duration::from_secs(30), "event 0x11");
    assert!(
        line.starts_with("event 0x11 data 0x22 from host 1 generation "),
        "{line}"
    );
    assert!(listen.wait().unwrap().success());

    for (c, id) in [(&c1, 1), (&c2, 2)] {
        c.rem_lockspace(&ls(id), sanlock_client::RemFlags::NONE)
            .unwrap();
    }
}

#[test]
fn the_examples_run_against_our_daemon() {
    let Some(bin) = ours() else {
        println!(
            "skipped: no sanlock binary beside the examples (cargo test --workspace builds it)"
        );
        return;
    };
    examples_against(&bin, "ours");
}

#[test]
fn the_examples_run_against_sanlock_3_8_5() {
    let Some(bin) = c_sanlock() else {
        println!("skipped: Debian's sanlock 3.8.5 is not installed");
        return;
    };
    examples_against(&bin, "c");
}
