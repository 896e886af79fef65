//! The watchdog as our daemon drives it (algorithms.md §6.4): through wdmd's socket protocol
//! (checked against a wdmd stand-in that records every message), and SANLK_WD_ERROR when
//! `-w 1` finds neither wdmd nor a device, as sanlock 3.8.5 without wdmd.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{CDaemon, Scratch};

const HEADER: usize = 176;

/// One wdmd message: (cmd, renewal_time, expire_time, the name its connection registered).
type Msg = (u32, u64, u64, String);

/// A wdmd stand-in: answers STATUS with `fire_timeout` and reports every message.
fn fake_wdmd(socket: &Path, fire_timeout: u32) -> mpsc::Receiver<Msg> {
    let timed = fake_wdmd_timed(socket, fire_timeout, |_| Duration::ZERO);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (_, msg) in timed {
            if tx.send(msg).is_err() {
                return;
            }
        }
    });
    rx
}

/// [`fake_wdmd`], answering the STATUS of a connection that registered `name` after
/// `status_delay(name)`, and reporting when each message arrived.
fn fake_wdmd_timed(
    socket: &Path,
    fire_timeout: u32,
    status_delay: fn(&str) -> Duration,
) -> mpsc::Receiver<(Instant, Msg)> {
    let listener = UnixListener::bind(socket).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut h = [0u8; HEADER];
                let mut registered = String::new();
                while conn.read_exact(&mut h).is_ok() {
                    let at = Instant::now();
                    let word = |i: usize| u32::from_ne_bytes(h[i..i + 4].try_into().unwrap());
                    let long = |i: usize| u64::from_ne_bytes(h[i..i + 8].try_into().unwrap());
                    let name_end = h[48..].iter().position(|&b| b == 0).unwrap_or(128);
                    let name = String::from_utf8_lossy(&h[48..48 + name_end]).into_owned();
                    let (cmd, renewal, expire) = (word(4), long(32), long(40));
                    if cmd == 1 {
                        registered.clone_from(&name);
                    }
                    if cmd == 5 {
                        std::thread::sleep(status_delay(&registered));
                        let mut reply = [0u8; HEADER];
                        reply[16..20].copy_from_slice(&10u32.to_ne_bytes());
                        reply[20..24].copy_from_slice(&fire_timeout.to_ne_bytes());
                        conn.write_all(&reply).unwrap();
                    }
                    if tx
                        .send((at, (cmd, renewal, expire, registered.clone())))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    rx
}

fn daemon(run_dir: &Path, wdmd: &Path) -> Child {
    std::fs::create_dir_all(run_dir).unwrap();
    let child = Command::new(common::ours())
        .args(["daemon", "-D", "-w", "1", "-e", "host"])
        .env("SANLOCK_RUN_DIR", run_dir)
        .env("SANLOCK_PRIVILEGED", "0")
        .env("SANLOCK_WDMD_SOCKET", wdmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for_socket(run_dir, Duration::from_secs(5));
    child
}

fn client(run_dir: &Path, args: &[&str]) -> String {
    common::client_at(run_dir, args).stdout
}

#[test]
fn a_lockspace_registers_with_wdmd_tests_live_after_each_renewal_and_clears_at_removal() {
    let scratch = Scratch::new("daemon-wdmd");
    let socket = scratch.path("wdmd.sock");
    let msgs = fake_wdmd(&socket, 60);
    let run_dir = scratch.path("run");
    let mut d = daemon(&run_dir, &socket);
    let ls = scratch.path("ls");
    common::create_file(&ls, 1 << 20);
    let arg = format!("LS:1:{}:0", ls.display());
    assert!(client(&run_dir, &["init", "-s", &arg, "-o", "1"]).contains("init done 0"));
    let add = client(&run_dir, &["add_lockspace", "-s", &arg, "-o", "1"]);
    assert!(add.contains("done 0"), "{add}");
    std::thread::sleep(Duration::from_secs(5));
    let rem = client(&run_dir, &["rem_lockspace", "-s", &arg]);
    assert!(rem.contains("done 0"), "{rem}");
    let _ = d.kill();
    let _ = d.wait();
    let got: Vec<Msg> = msgs.try_iter().collect();
    let cmds: Vec<u32> = got.iter().map(|m| m.0).collect();
    // REGISTER, REFCOUNT_SET, STATUS, then TEST_LIVE after each renewal.
    assert_eq!(&cmds[..3], &[1, 2, 5], "{got:?}");
    assert_eq!(got[0].3, "sanlock_LS:1");
    let live: Vec<&Msg> = got.iter().filter(|m| m.0 == 4 && m.2 != 0).collect();
    assert!(
        live.len() >= 2,
        "a test_live per renewal (every 2 s): {got:?}"
    );
    for m in &live {
        assert_eq!(m.2 - m.1, 8, "expire = renewal + 8N");
    }
    assert!(
        live.windows(2).all(|w| w[1].1 > w[0].1),
        "renewal times grow"
    );
    // At removal: TEST_LIVE 0 0, then REFCOUNT_CLEAR.
    let n = got.len();
    assert_eq!(
        (got[n - 2].0, got[n - 2].1, got[n - 2].2, got[n - 1].0),
        (4, 0, 0, 3),
        "{got:?}"
    );
}

#[test]
fn wdmd_with_another_fire_timeout_or_no_watchdog_at_all_refuses_the_join() {
    let scratch = Scratch::new("daemon-wdmd-bad");
    let socket = scratch.path("wdmd.sock");
    let _msgs = fake_wdmd(&socket, 30);
    let run_dir = scratch.path("run");
    let mut d = daemon(&run_dir, &socket);
    let ls = scratch.path("ls");
    common::create_file(&ls, 1 << 20);
    let arg = format!("LS:1:{}:0", ls.display());
    client(&run_dir, &["init", "-s", &arg, "-o", "1"]);
    let add = client(&run_dir, &["add_lockspace", "-s", &arg, "-o", "1"]);
    assert!(add.contains("done -203"), "{add}");
    let _ = d.kill();
    let _ = d.wait();

    // No wdmd and no /dev/watchdog: -203 from ours and from sanlock 3.8.5 alike.
    if Path::new("/dev/watchdog").exists() {
        eprintln!("skipped the no-watchdog half: this machine has /dev/watchdog");
        return;
    }
    let nowhere = scratch.path("no-wdmd.sock");
    let run2 = scratch.path("run2");
    let mut d = daemon(&run2, &nowhere);
    let arg2 = format!("LS:2:{}:0", ls.display());
    let ours = client(&run2, &["add_lockspace", "-s", &arg2, "-o", "1"]);
    let _ = d.kill();
    let _ = d.wait();
    assert!(ours.contains("done -203"), "{ours}");
    if let Some(c) = common::c_sanlock() {
        if UnixStream::connect("/run/wdmd/wdmd.sock").is_err() {
            let h = CDaemon::start_with(&c, &scratch, "c", &["-w", "1"]);
            let theirs = h.client(&["add_lockspace", "-s", &arg2, "-o", "1"]).stdout;
            assert_eq!(theirs, ours);
        }
    }
}

#[test]
fn a_wdmd_slow_to_answer_holds_up_neither_client_replies_nor_other_renewals() {
    // sanlock registers each lockspace with wdmd on that lockspace's own thread
    // (lockspace.c `connect_watchdog`), so a slow wdmd delays only that join. Two lockspaces
    // register while wdmd takes 1.5 s to answer each STATUS: `client status` must still be
    // answered at once, and the joined lockspace must renew on time.
    let scratch = Scratch::new("daemon-wdmd-slow");
    let socket = scratch.path("wdmd.sock");
    let msgs = fake_wdmd_timed(&socket, 60, |name| {
        if name.starts_with("sanlock_SLOW") {
            Duration::from_millis(1500)
        } else {
            Duration::ZERO
        }
    });
    let run_dir = scratch.path("run");
    let mut d = daemon(&run_dir, &socket);
    let arg = |name: &str| {
        let ls = scratch.path(name);
        common::create_file(&ls, 1 << 20);
        let arg = format!("{name}:1:{}:0", ls.display());
        assert!(client(&run_dir, &["init", "-s", &arg, "-o", "1"]).contains("init done 0"));
        arg
    };
    let (fast, slow1, slow2) = (arg("LS"), arg("SLOW1"), arg("SLOW2"));
    let add = client(&run_dir, &["add_lockspace", "-s", &fast, "-o", "1"]);
    assert!(add.contains("done 0"), "{add}");
    std::thread::sleep(Duration::from_secs(3));
    let start = Instant::now();
    let replies: Vec<Duration> = std::thread::scope(|s| {
        let adds = s.spawn(|| {
            for arg in [&slow1, &slow2] {
                let add = client(&run_dir, &["add_lockspace", "-s", arg, "-o", "1"]);
                assert!(add.contains("done 0"), "{add}");
            }
        });
        let mut replies = Vec::new();
        while start.elapsed() < Duration::from_millis(3500) {
            replies.push(status_reply_time(&run_dir));
            std::thread::sleep(Duration::from_millis(100));
        }
        adds.join().unwrap();
        replies
    });
    let end = Instant::now();
    let _ = d.kill();
    let _ = d.wait();
    let slowest = replies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{} status replies while two lockspaces registered; slowest {:.1} ms",
        replies.len(),
        slowest.as_secs_f64() * 1000.0
    );
    assert!(replies.len() >= 20, "{replies:?}");
    assert!(slowest < Duration::from_millis(100), "{replies:?}");
    // LS's TEST_LIVEs (one per renewal, every 2 s) kept coming while the others registered.
    let got: Vec<(Instant, Msg)> = msgs.try_iter().collect();
    let slow_status: Vec<Instant> = got
        .iter()
        .filter(|(_, m)| m.0 == 5)
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(slow_status.len(), 3, "three registrations");
    let mut live: Vec<Instant> = got
        .iter()
        .filter(|(_, m)| m.0 == 4 && m.2 != 0 && m.3 == "sanlock_LS:1")
        .map(|(at, _)| *at)
        .filter(|at| *at >= start - Duration::from_secs(2) && *at <= end)
        .collect();
    live.sort();
    let gaps: Vec<f64> = live
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    eprintln!("LS's renewals meanwhile, seconds apart: {gaps:.2?}");
    assert!(live.len() >= 2, "{got:?}");
    // Renewals come 2N + 0.5 s apart; one held up by a 1.5 s registration would be 4 s.
    assert!(
        gaps.iter().all(|&g| g < 3.0),
        "a renewal came late: {gaps:?}"
    );
}

/// How long the daemon of `run_dir` takes to answer a STATUS (cmd 5) on a fresh connection:
/// the reply read to its end (the daemon closes the connection after it).
fn status_reply_time(run_dir: &Path) -> Duration {
    let t0 = Instant::now();
    let mut conn = UnixStream::connect(run_dir.join("sanlock.sock")).unwrap();
    let mut header = Vec::new();
    for word in [0x0428_2010u32, 1, 5, 0, 32, 0, 0, 0] {
        header.extend_from_slice(&word.to_le_bytes());
    }
    conn.write_all(&header).unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).unwrap();
    let took = t0.elapsed();
    assert!(reply.len() >= 32, "a status reply: {reply:?}");
    took
}
