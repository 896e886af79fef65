//! The crate's examples run against two daemons sharing a lockspace: ours (the workspace's
//! `sanlock`) and, where Debian's is installed, sanlock 3.8.5's, since the crate speaks the
//! protocol both do. The test sets everything up with the typed client itself.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{c_sanlock, ours, Daemon, Scratch};

use sanlock_client::{
    AcquireFlags, AddFlags, Code, Disk, Error, HostEvent, Lockspace, ReleaseFlags, Resource,
    SetEventFlags, WriteFlags,
};

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
    let ls_path = scratch.file("ls", 8 << 20);
    let res_path = scratch.file("res", 8 << 20);
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
