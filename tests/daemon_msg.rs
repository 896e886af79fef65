//! Cluster messaging on leases (docs/MESSAGING.md) between three daemons in one lockspace
//! (io_timeout 1: host_dead_seconds 68): messages from two concurrent senders reach every
//! member in one order, each exactly once, on daemons of ours and on Debian's sanlock 3.8.5
//! (the protocol uses only calls 3.8.5 has); a receiver killed in the middle of a message
//! (its process, then its whole host) holds the sender up no longer than host_dead_seconds,
//! and the other members still get everything.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{CDaemon, Scratch};
use sanlock_daemon::msg::{AreaPlace, JoinOptions, Messenger};

/// host_dead_seconds for io_timeout 1.
const HOST_DEAD_S: f64 = 68.0;

/// A lockspace (io_timeout 1) and a messaging area, three daemons of `bin` joined as hosts 1-3.
struct Cluster {
    daemons: Vec<CDaemon>,
    area: PathBuf,
    _scratch: Scratch,
}

impl Cluster {
    fn start(bin: &Path, label: &str) -> Cluster {
        let scratch = Scratch::new(label);
        let (ls, area) = (scratch.path("ls"), scratch.path("area"));
        common::create_file(&ls, 1 << 20);
        common::create_file(&area, 4 << 20);
        let ours = common::ours();
        let ls_arg = format!("LS:0:{}:0", ls.display());
        let r = common::run(&ours, &["direct", "init", "-s", &ls_arg, "-o", "1"], None);
        assert_eq!(r.code, 0, "{r:?}");
        let a = format!("{}:0", area.display());
        let r = common::run(&ours, &["msg", "init", "-s", "LS", "-a", &a], None);
        assert_eq!(r.code, 0, "{r:?}");
        let daemons: Vec<CDaemon> = (1..=3)
            .map(|h| CDaemon::start(bin, &scratch, &format!("host{h}")))
            .collect();
        std::thread::scope(|s| {
            for (i, d) in daemons.iter().enumerate() {
                let arg = format!("LS:{}:{}:0", i + 1, ls.display());
                s.spawn(move || {
                    let r = d.client(&["add_lockspace", "-s", &arg, "-o", "1"]);
                    assert_eq!(r.code, 0, "{r:?}");
                });
            }
        });
        Cluster {
            daemons,
            area,
            _scratch: scratch,
        }
    }

    fn place(&self) -> AreaPlace {
        AreaPlace {
            path: self.area.display().to_string().into_bytes(),
            offset: 0,
        }
    }

    fn join(&self, host: usize) -> Arc<Messenger> {
        let options = JoinOptions {
            run_dir: Some(self.daemons[host - 1].run_dir().to_path_buf()),
            ..JoinOptions::default()
        };
        Arc::new(Messenger::join("LS", &self.place(), &options).expect("join"))
    }

    /// `sanlock msg listen` on host `host`, "processing" each message for `pause_ms`.
    fn listener(&self, host: usize, pause_ms: u64, out: &Path) -> Child {
        let a = format!("{}:0", self.area.display());
        let child = Command::new(common::ours())
            .args([
                "msg",
                "listen",
                "-s",
                "LS",
                "-a",
                &a,
                "-p",
                &pause_ms.to_string(),
            ])
            .env("SANLOCK_RUN_DIR", self.daemons[host - 1].run_dir())
            .stdout(std::fs::File::create(out).unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // It says so on stderr once it is a member.
        let mut child = child;
        let mut err = child.stderr.take().unwrap();
        let mut line = [0u8; 1];
        let mut text = Vec::new();
        use std::io::Read;
        while err.read(&mut line).unwrap_or(0) == 1 && line[0] != b'\n' {
            text.push(line[0]);
        }
        assert!(
            String::from_utf8_lossy(&text).contains("joined"),
            "{}",
            String::from_utf8_lossy(&text)
        );
        child
    }
}

/// Every message a member received: (number, payload), in order.
type Got = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

/// Receives on `m` until `count` messages arrived, marking each processed.
fn receive(m: Arc<Messenger>, count: usize) -> (Got, std::thread::JoinHandle<()>) {
    let got: Got = Arc::default();
    let g = got.clone();
    let t = std::thread::spawn(move || {
        while g.lock().unwrap().len() < count {
            let msg = m.recv().expect("recv");
            g.lock().unwrap().push((msg.seq, msg.payload.clone()));
            msg.processed();
        }
    });
    (got, t)
}

/// Two senders (hosts 1 and 2), `per_sender` messages each, all three hosts receiving.
fn two_senders(cluster: &Cluster, per_sender: usize, label: &str) {
    let members: Vec<Arc<Messenger>> = (1..=3).map(|h| cluster.join(h)).collect();
    let (got1, r1) = receive(members[0].clone(), per_sender);
    let (got2, r2) = receive(members[1].clone(), per_sender);
    let (got3, r3) = receive(members[2].clone(), 2 * per_sender);
    let t0 = Instant::now();
    let senders: Vec<_> = [(0usize, b'a'), (1, b'b')]
        .into_iter()
        .map(|(i, tag)| {
            let m = members[i].clone();
            std::thread::spawn(move || {
                let mut times = Vec::new();
                for n in 0..per_sender {
                    let payload = format!("{}{n:04}", tag as char).into_bytes();
                    let t = Instant::now();
                    m.send(&payload).expect("send");
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    let mut times: Vec<Duration> = senders
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    let total = t0.elapsed();
    for r in [r1, r2, r3] {
        r.join().unwrap();
    }
    let all = got3.lock().unwrap().clone();
    let seqs: Vec<u64> = all.iter().map(|g| g.0).collect();
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..first + 2 * per_sender as u64).collect::<Vec<_>>(),
        "host 3 got every number once, in order"
    );
    let mut payloads: Vec<&Vec<u8>> = all.iter().map(|g| &g.1).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 2 * per_sender, "each message exactly once");
    // Hosts 1 and 2 got the other's messages, in host 3's order.
    for (got, other) in [(&got1, b'b'), (&got2, b'a')] {
        let want: Vec<_> = all.iter().filter(|g| g.1[0] == other).cloned().collect();
        assert_eq!(*got.lock().unwrap(), want);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "{label}: {} messages from 2 senders to 3 members in {:.2} s: {:.0} messages/s; \
         send latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        2 * per_sender,
        total.as_secs_f64(),
        2.0 * per_sender as f64 / total.as_secs_f64(),
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10]),
        ms(times[times.len() * 99 / 100]),
        ms(*times.last().unwrap()),
    );
    for m in &members {
        m.leave();
    }
}

#[test]
fn a_thousand_messages_from_two_senders_reach_every_member_in_one_order() {
    let cluster = Cluster::start(&common::ours(), "msg-ours");
    two_senders(&cluster, 500, "ours");
}

#[test]
fn the_same_protocol_runs_on_sanlock_3_8_5_daemons() {
    let c = require_c_sanlock!();
    let cluster = Cluster::start(&c, "msg-c");
    two_senders(&cluster, 100, "sanlock 3.8.5");
}

#[test]
fn a_receiver_killed_mid_message_holds_the_sender_up_at_most_host_dead_seconds() {
    let cluster = Cluster::start(&common::ours(), "msg-kill");
    let scratch = Scratch::new("msg-kill-out");
    let m1 = cluster.join(1);
    let (got2, r2) = receive(cluster.join(2), 3);

    // 1. Host 3's listener process is killed while it "processes" (10 s): its daemon drops its
    // leases at once, and the send completes.
    let out3 = scratch.path("out3");
    let mut listener = cluster.listener(3, 10_000, &out3);
    let sender = {
        let m1 = m1.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let seq = m1.send(b"one").expect("send");
            (seq, t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    assert!(!sender.is_finished(), "host 3 is still processing");
    listener.kill().unwrap();
    listener.wait().unwrap();
    let (_, took) = sender.join().unwrap();
    eprintln!(
        "listener process killed 2 s into a 10 s message: the send took {:.2} s",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert_eq!(std::fs::read_to_string(&out3).unwrap(), "");

    // 2. Host 3's whole daemon dies (kill -9) in the middle of a message: its shared hold of
    // ACK stays on disk until host_dead_seconds have passed; then the sender clears it.
    let mut listener = cluster.listener(3, 600_000, &out3);
    let sender = {
        let m1 = m1.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            m1.send(b"two").expect("send");
            t.elapsed()
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let pid = cluster.daemons[2].pid();
    let killed_at = Instant::now();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let _ = listener.kill();
    let _ = listener.wait();
    let took = sender.join().unwrap();
    let after_kill = killed_at.elapsed().as_secs_f64();
    eprintln!(
        "daemon of host 3 killed 2 s into a message: the send took {:.1} s, {:.1} s after the \
         kill (host_dead_seconds {HOST_DEAD_S})",
        took.as_secs_f64(),
        after_kill
    );
    assert!(after_kill <= HOST_DEAD_S + 15.0, "{after_kill}");

    // Host 2 got both, and the next one too.
    m1.send(b"three").expect("send");
    r2.join().unwrap();
    let got: Vec<Vec<u8>> = got2.lock().unwrap().iter().map(|g| g.1.clone()).collect();
    assert_eq!(
        got,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    m1.leave();
}

#[test]
fn the_tokio_form_sends_and_receives() {
    let cluster = Cluster::start(&common::ours(), "msg-async");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let join = |h: usize| {
            let options = JoinOptions {
                run_dir: Some(cluster.daemons[h - 1].run_dir().to_path_buf()),
                ..JoinOptions::default()
            };
            let place = cluster.place();
            async move {
                sanlock_daemon::msg::AsyncMessenger::join("LS", &place, &options)
                    .await
                    .expect("join")
            }
        };
        let (a, b, c) = (join(1).await, join(2).await, join(3).await);
        let receiver = |m: sanlock_daemon::msg::AsyncMessenger| async move {
            let msg = m.recv().await.expect("recv");
            let got = (msg.seq, msg.from, msg.payload.clone());
            msg.processed();
            got
        };
        let (sent, got_b, got_c) = tokio::join!(
            a.send(b"from tokio".to_vec()),
            receiver(b.clone()),
            receiver(c.clone())
        );
        let seq = sent.expect("send");
        assert_eq!(got_b, (seq, 1, b"from tokio".to_vec()));
        assert_eq!(got_c, (seq, 1, b"from tokio".to_vec()));
    });
}
