//! Host messages with acks and fence (our extension, docs/MESSAGES.md), between daemons of
//! ours and sanlock 3.8.5's in one lockspace file (io_timeout 1: renewals every 2 s,
//! host_dead_seconds 68). A message from ours to ours is acked within two renewal intervals;
//! to a C host it arrives as a plain event and is reported "no ack support"; five senders to
//! one receiver all get their acks; `client fence` resets a host holding a lease (its holder
//! killed, its lease takeable by a C host) well before host_dead_seconds, and against a
//! killed daemon returns once the host is dead. The C host keeps renewing and sees our hosts
//! live while our sectors carry mailbox blocks with acks, and its own sector has none.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{CDaemon, Scratch};
use sanlock_daemon::client::Connection;
use sanlock_daemon::wire::{Cmd, WireLockspace, WireMessageStatus, HEADER_LEN, MESSAGE_STATUS_LEN};

/// host_dead_seconds for io_timeout 1.
const HOST_DEAD_S: f64 = 68.0;
/// A renewal interval for io_timeout 1, in milliseconds.
const RENEWAL_MS: u64 = 2000;

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `client command -r RES -c /bin/true` with `bin` on `d` must succeed: the lease was free.
fn acquire_once(bin: &Path, d: &CDaemon, res: &str) {
    let out = Command::new(bin)
        .args(["client", "command", "-r", res, "-c", "/bin/true"])
        .env("SANLOCK_RUN_DIR", d.run_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A lockspace file (io_timeout 1) and a resource file with R1, written by `init_bin`.
fn lockspace(init_bin: &Path, scratch: &Scratch) -> (String, String) {
    let ls = scratch.path("ls");
    let res = scratch.path("res");
    common::create_file(&ls, 1 << 20);
    common::create_file(&res, 1 << 20);
    let (ls, res) = (ls.display().to_string(), res.display().to_string());
    for args in [
        vec!["direct", "init", "-s", &format!("LS:0:{ls}:0"), "-o", "1"],
        vec!["direct", "init", "-r", &format!("LS:R1:{res}:0")],
    ] {
        assert_eq!(common::run(init_bin, &args, None).code, 0, "{args:?}");
    }
    (ls, res)
}

/// Joins every daemon, host_id i+1 for the i-th, at once; then waits until the first sees
/// every other one live.
fn join_all(daemons: &[&CDaemon], ls: &str) {
    std::thread::scope(|s| {
        for (i, d) in daemons.iter().enumerate() {
            s.spawn(move || {
                let arg = format!("LS:{}:{ls}:0", i + 1);
                let r = d.client(&["add_lockspace", "-s", &arg, "-o", "1"]);
                assert_eq!(r.code, 0, "{r:?}");
            });
        }
    });
    for other in 2..=daemons.len() {
        wait_until("every host LIVE", 30, || {
            daemons[0]
                .client(&["gets", "-h", "1"])
                .stdout
                .lines()
                .any(|l| l.starts_with(&format!("h {other} ")) && l.ends_with("LIVE"))
        });
    }
}

/// `client message` (or `fence`) output parsed: (result, status words, elapsed ms).
fn outcome(out: &str) -> (i32, String, u64) {
    let rv = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("message done ")
                .or_else(|| l.strip_prefix("fence done "))
        })
        .unwrap_or_else(|| panic!("no done line: {out}"))
        .trim()
        .parse()
        .unwrap();
    let Some(line) = out.lines().find(|l| l.contains(" after ")) else {
        return (rv, String::new(), 0);
    };
    let (head, tail) = line.split_once(" after ").unwrap();
    let status = head.rsplit_once(": ").unwrap().1.to_string();
    let ms = tail.trim_end_matches(" ms").parse().unwrap();
    (rv, status, ms)
}

/// The listener's event line without its first field (the seconds it waited).
fn next_event(out: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let fields: Vec<&str> = line.split_whitespace().skip(1).collect();
    fields.join(" ")
}

#[test]
fn messages_are_acked_by_ours_and_delivered_as_plain_events_to_a_c_host() {
    let c = require_c_sanlock!();
    require_python_sanlock!();
    let ours = common::ours();
    let scratch = Scratch::new("messages-mixed");
    let (ls, _) = lockspace(&c, &scratch);
    let h1 = CDaemon::start(&ours, &scratch, "host1");
    let h2 = CDaemon::start(&ours, &scratch, "host2");
    let h3 = CDaemon::start(&c, &scratch, "host3");
    join_all(&[&h1, &h2, &h3], &ls);

    // Ours to ours: delivered to h2's listener, acked within two renewal intervals.
    let (mut l2, mut out2) = common::python_listener(&h2);
    let r = h1.client(&["message", "-s", "LS", "-i", "2", "-m", "5", "-d", "77"]);
    let (rv, status, ms) = outcome(&r.stdout);
    assert_eq!((rv, status.as_str(), r.code), (0, "acked", 0), "{r:?}");
    assert!(ms <= 2 * RENEWAL_MS, "acked after {ms} ms");
    assert_eq!(next_event(&mut out2), "1 2 5 77");
    let _ = l2.wait();
    eprintln!("ack latency ours→ours: {ms} ms");

    // Ours to C: the C host's listener gets the event; we report that no ack can come.
    let (mut l3, mut out3) = common::python_listener(&h3);
    let r = h1.client(&["message", "-s", "LS", "-i", "3", "-m", "6", "-d", "88"]);
    let (rv, status, _) = outcome(&r.stdout);
    assert_eq!((rv, status.as_str()), (-95, "no ack support"), "{r:?}");
    assert_ne!(r.code, 0);
    assert_eq!(next_event(&mut out3), "1 3 6 88");
    let _ = l3.wait();

    // What each wrote: our sectors carry the marker (and h2's the ack of message 1 until h1
    // moved on); the C host's bytes 200..256 stay zero, and it still sees ours live.
    let area = common::read_at(Path::new(&ls), 0, 3 * 512);
    assert_eq!(&area[200..204], b"ACK1");
    assert_eq!(&area[512 + 200..512 + 204], b"ACK1");
    assert!(area[1024 + 200..1024 + 256].iter().all(|&b| b == 0));
    let gets = h3.client(&["gets", "-h", "1"]).stdout;
    for h in [1, 2] {
        assert!(
            gets.lines()
                .any(|l| l.starts_with(&format!("h {h} ")) && l.ends_with("LIVE")),
            "{gets}"
        );
    }
    let status = h3.client(&["status"]).stdout;
    assert!(status.lines().any(|l| l.starts_with("s LS:3:")), "{status}");

    // Our CLI asked to message through the C daemon, which never answers commands it does
    // not know: refused after the probe, not hung.
    let t0 = Instant::now();
    let r = common::client_at(h3.run_dir(), &["message", "-s", "LS", "-i", "1", "-m", "5"]);
    assert_eq!((outcome(&r.stdout).0, r.code), (-95, 1), "{r:?}");
    assert!(
        r.stderr.contains("does not answer host-message commands"),
        "{r:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10));

    // A message to a host_id nobody holds: refused as dead; to ourselves: -EINVAL.
    let r = h1.client(&["message", "-s", "LS", "-i", "9", "-m", "5", "-w", "5"]);
    assert_ne!(outcome(&r.stdout).0, 0, "{r:?}");
    let r = h1.client(&["message", "-s", "LS", "-i", "1", "-m", "5"]);
    assert_eq!(outcome(&r.stdout).0, -22, "{r:?}");
    let r = h1.client(&["message", "-s", "NOPE", "-i", "2", "-m", "5"]);
    assert_eq!(outcome(&r.stdout).0, -2, "{r:?}");
}

/// MESSAGE_STATUS of message `seq` on `d`, waiting up to `wait_s`: (result, status).
fn message_status(d: &CDaemon, seq: u32, wait_s: u32) -> (i32, Option<WireMessageStatus>) {
    let mut c = Connection::open_at(&d.run_dir().join("sanlock.sock")).unwrap();
    let mut payload = Vec::new();
    WireLockspace {
        name: sanlock_core::ondisk::Name::new(b"LS").unwrap(),
        ..WireLockspace::default()
    }
    .encode_into(&mut payload);
    c.request(Cmd::MessageStatus, 0, wait_s, seq, &payload)
        .unwrap();
    let h = c.recv_header().unwrap();
    if (h.length as usize) < HEADER_LEN + MESSAGE_STATUS_LEN {
        return (h.rv(), None);
    }
    let body = c.recv_exact(MESSAGE_STATUS_LEN).unwrap();
    (h.rv(), Some(WireMessageStatus::decode(&body)))
}

#[test]
fn five_senders_to_one_receiver_all_get_their_acks() {
    let ours = common::ours();
    let scratch = Scratch::new("messages-five");
    let (ls, _) = lockspace(&ours, &scratch);
    let daemons: Vec<CDaemon> = (1..=6)
        .map(|i| CDaemon::start(&ours, &scratch, &format!("host{i}")))
        .collect();
    let refs: Vec<&CDaemon> = daemons.iter().collect();
    join_all(&refs, &ls);
    let results: Vec<(i32, String, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = daemons[..5]
            .iter()
            .enumerate()
            .map(|(i, d)| {
                s.spawn(move || {
                    let data = (i + 1).to_string();
                    let r = d.client(&["message", "-s", "LS", "-i", "6", "-m", "3", "-d", &data]);
                    outcome(&r.stdout)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (rv, status, ms)) in results.iter().enumerate() {
        assert_eq!((*rv, status.as_str()), (0, "acked"), "sender {}", i + 1);
        eprintln!("sender {} acked after {ms} ms", i + 1);
    }
    // Send now, ask later: the daemon remembers. `-w 0` answers with the number at once.
    let r = daemons[0].client(&["message", "-s", "LS", "-i", "6", "-m", "4", "-w", "0"]);
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains(" to host 6 "))
        .unwrap()
        .to_string();
    assert!(line.contains(": queued after 0 ms"), "{r:?}");
    let seq: u32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (rv, st) = message_status(&daemons[0], seq, 10);
    let st = st.expect("a status");
    assert_eq!((rv, st.status_name(), st.seq), (0, "acked", u64::from(seq)));
    assert_eq!(
        message_status(&daemons[0], seq + 100, 0).0,
        -2,
        "unknown number"
    );
    let log = daemons[5].client(&["log_dump"]).stdout;
    for from in 1..=5 {
        assert!(
            log.contains(&format!("event from host {from} gen 1: 1 3 {from}")),
            "{log}"
        );
    }
}

#[test]
fn fence_resets_a_holder_before_host_dead_seconds_and_a_c_host_takes_its_lease() {
    let c = require_c_sanlock!();
    let ours = common::ours();
    let scratch = Scratch::new("messages-fence");
    let (ls, res) = lockspace(&c, &scratch);
    let h1 = CDaemon::start(&ours, &scratch, "host1");
    let mut h2 = CDaemon::start(&ours, &scratch, "host2");
    let h3 = CDaemon::start(&c, &scratch, "host3");
    join_all(&[&h1, &h2, &h3], &ls);
    let r1 = format!("LS:R1:{res}:0");
    h2.hold(&r1);
    let holder = h2.holder_pid(0);

    let t0 = Instant::now();
    let r = h1.client(&["fence", "-s", "LS", "-i", "2"]);
    let took = t0.elapsed().as_secs_f64();
    let (rv, status, ms) = outcome(&r.stdout);
    assert_eq!((rv, status.as_str(), r.code), (0, "reset", 0), "{r:?}");
    assert!(took < HOST_DEAD_S / 2.0, "fence took {took:.1} s");
    eprintln!("fence of a host that acks: {ms} ms");
    // By then the holder is gone and host 2 is out of the lockspace.
    assert!(
        !Path::new(&format!("/proc/{holder}/cmdline")).exists() || {
            let stat = std::fs::read_to_string(format!("/proc/{holder}/stat")).unwrap_or_default();
            stat.split_whitespace().nth(2) == Some("Z")
        }
    );
    // Its delta lease is released; the lockspace leaves its list at the next check.
    wait_until("host 2 out of the lockspace", 3, || {
        let status = h2.client(&["status"]).stdout;
        !status.lines().any(|l| l.starts_with("s LS:"))
    });
    let log = h2.client(&["log_dump"]).stdout;
    assert!(log.contains("reset requested by host 1"), "{log}");
    // The C host takes the lease at once: its owner's delta lease is released, so the owner
    // is gone (no host_dead_seconds wait), though the lease itself was not written free.
    acquire_once(&c, &h3, &r1);
    assert!(t0.elapsed().as_secs_f64() < HOST_DEAD_S / 2.0);
}

#[test]
fn fence_of_a_killed_daemon_returns_once_the_host_is_dead() {
    let ours = common::ours();
    let scratch = Scratch::new("messages-fence-dead");
    let (ls, res) = lockspace(&ours, &scratch);
    let h1 = CDaemon::start(&ours, &scratch, "host1");
    let mut h2 = CDaemon::start(&ours, &scratch, "host2");
    join_all(&[&h1, &h2], &ls);
    let r1 = format!("LS:R1:{res}:0");
    h2.hold(&r1);
    h2.kill_all();
    let t0 = Instant::now();
    let r = h1.client(&["fence", "-s", "LS", "-i", "2"]);
    let took = t0.elapsed().as_secs_f64();
    let (rv, status, _) = outcome(&r.stdout);
    assert_eq!((rv, status.as_str()), (0, "target dead"), "{r:?}");
    // Dead by host_dead_seconds after its last renewal (up to 2 s before the kill), seen
    // within a scan and a check.
    assert!(
        (HOST_DEAD_S - 4.0..HOST_DEAD_S + 6.0).contains(&took),
        "fence took {took:.1} s"
    );
    eprintln!("fence of a killed daemon: {took:.1} s");
    acquire_once(&ours, &h1, &r1);
}
