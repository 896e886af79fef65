//! `sanlock client show` (ours) and the progress of waiting actions: the JSON view parses and
//! names the owner of a lease another host holds (ours or sanlock 3.8.5's), with its name,
//! generation and seconds since its last renewal; an acquire blocked on a dead owner says what
//! it waits for, with the seconds left, on a terminal and never in a pipe.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{CDaemon, Scratch};
use serde_json::Value;

/// Two hosts in lockspace LS (io_timeout 1): host 1 ours, host 2 `owner_bin`, which holds R1.
struct Pair {
    scratch: Scratch,
    h1: CDaemon,
    h2: CDaemon,
}

impl Pair {
    fn new(owner_bin: &Path, label: &str) -> Pair {
        let scratch = Scratch::new(label);
        let ours = common::ours();
        for f in ["ls", "res"] {
            common::create_file(&scratch.path(f), 8 << 20);
        }
        let h1 = CDaemon::start(&ours, &scratch, "show-host-1");
        let mut h2 = CDaemon::start(owner_bin, &scratch, "show-host-2");
        let ls = scratch.path("ls");
        let d = ls.parent().unwrap().display().to_string();
        let init = h1.client(&["init", "-s", &format!("LS:0:{d}/ls:0"), "-o", "1"]);
        assert_eq!(init.code, 0, "{init:?}");
        for (r, offset) in [("R1", 0), ("R2", 1 << 20)] {
            let init = h1.client(&["init", "-r", &format!("LS:{r}:{d}/res:{offset}")]);
            assert_eq!(init.code, 0, "{init:?}");
        }
        let d = &d;
        std::thread::scope(|s| {
            for (h, id) in [(&h1, 1), (&h2, 2)] {
                s.spawn(move || {
                    let add = h.client(&[
                        "add_lockspace",
                        "-s",
                        &format!("LS:{id}:{d}/ls:0"),
                        "-o",
                        "1",
                    ]);
                    assert_eq!(add.code, 0, "{add:?}");
                });
            }
        });
        h2.hold(&format!("LS:R1:{d}/res:0"));
        h2.hold(&format!("LS:R2:{d}/res:{}", 1 << 20));
        Pair { scratch, h1, h2 }
    }

    fn resource(&self) -> String {
        format!("LS:R1:{}:0", self.scratch.path("res").display())
    }

    fn second_resource(&self) -> String {
        format!("LS:R2:{}:{}", self.scratch.path("res").display(), 1 << 20)
    }

    fn show(&self, args: &[&str]) -> common::Run {
        let mut all = vec!["show"];
        all.extend_from_slice(args);
        self.h1.client(&all)
    }
}

fn names_the_owner(owner_bin: &Path, label: &str) {
    let pair = Pair::new(owner_bin, label);
    // Give host 1's scans a renewal of host 2 to see.
    std::thread::sleep(Duration::from_secs(3));
    let run = pair.show(&["-r", &pair.resource(), "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let v: Value = serde_json::from_str(&run.stdout).expect("show --json is JSON");
    assert_eq!(v["host_name"], "show-host-1");
    let owner = &v["owners"][0];
    assert_eq!(
        (&owner["lockspace"], &owner["resource"]),
        (&"LS".into(), &"R1".into())
    );
    assert_eq!(owner["mode"], "EX");
    let o = &owner["owners"][0];
    assert_eq!(o["host_id"], 2, "{v:#}");
    assert_eq!(o["name"], "show-host-2", "{v:#}");
    assert_eq!(o["state"], "live", "{v:#}");
    assert!(o["generation"].as_u64().unwrap() >= 1, "{v:#}");
    let silence = o["seconds_since_renewal"].as_u64().expect("a number");
    assert!(
        silence <= 4,
        "renewing every 2 s, yet silent {silence} s: {v:#}"
    );
    let ls = &v["lockspaces"][0];
    assert_eq!(
        (&ls["name"], &ls["state"], &ls["host_id"]),
        (&"LS".into(), &"joined".into(), &1.into())
    );
    let hosts: Vec<u64> = ls["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host_id"].as_u64().unwrap())
        .collect();
    assert_eq!(hosts, vec![1, 2], "{v:#}");
    assert_eq!(
        v["leases"],
        Value::Array(Vec::new()),
        "host 1 holds nothing"
    );
    // The text form says the same in a line; and host 2 lists its holder's lease.
    let text = pair.show(&["-r", &pair.resource()]).stdout;
    assert!(
        text.lines().any(
            |l| l.starts_with("owner LS:R1 lver 1 EX: host 2 generation ")
                && l.contains(" name show-host-2 live, renewed ")
        ),
        "{text}"
    );
    if owner_bin == common::ours() {
        let other = pair.h2.client(&["show", "--json"]);
        let v: Value = serde_json::from_str(&other.stdout).unwrap();
        let leases = v["leases"].as_array().unwrap();
        let r1 = leases
            .iter()
            .find(|l| l["resource"] == "R1")
            .expect("R1 listed");
        assert_eq!(r1["pid"], pair.h2.holder_pid(0), "{v:#}");
        assert_eq!(
            (&r1["mode"], &r1["orphan"]),
            (&"EX".into(), &false.into()),
            "{v:#}"
        );
    }
}

#[test]
fn show_json_names_the_owner_of_a_lease_another_of_our_hosts_holds() {
    names_the_owner(&common::ours(), "show-ours");
}

#[test]
fn show_json_names_the_owner_of_a_lease_a_c_host_holds() {
    let c = require_c_sanlock!();
    names_the_owner(&c, "show-c");
}

/// A pseudo-terminal: the master to read, the slave's path for a child's stderr.
fn open_pty() -> (std::fs::File, std::fs::File) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    (std::fs::File::from(master), slave)
}

#[test]
fn an_acquire_waiting_for_a_dead_owner_says_so_on_a_terminal_and_not_in_a_pipe() {
    let mut pair = Pair::new(&common::ours(), "show-progress");
    pair.h2.kill_all();
    // An owner our monitor saw renewing at its latest scan is alive (-243 at once); wait until
    // host 1 has seen host 2 silent for a scan or two.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value = serde_json::from_str(&pair.show(&["--json"]).stdout).unwrap();
        let silence = v["lockspaces"][0]["hosts"][1]["seconds_since_renewal"].as_u64();
        if silence.is_some_and(|s| s >= 4) {
            break;
        }
        assert!(Instant::now() < deadline, "host 2 still renewing: {v:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let command = |resource: String, stderr: Stdio| {
        Command::new(common::ours())
            .args(["client", "command", "-r", &resource, "-c", "/bin/true"])
            .env("SANLOCK_RUN_DIR", pair.h1.run_dir())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap()
    };
    // Under a terminal: the progress line within a few seconds.
    let (mut master, slave) = open_pty();
    let mut on_tty = command(pair.resource(), Stdio::from(slave));
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        while t0.elapsed() < Duration::from_secs(20) {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&seen);
            if text.matches("s left").count() >= 3 {
                break;
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let seen = reader.join().unwrap();
    let _ = on_tty.kill();
    let _ = on_tty.wait();
    let line = seen
        .split('\r')
        .rfind(|l| l.contains("s left"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains(
            "acquire LS:R1: waiting for owner host 2 (generation 1) to be certainly dead, "
        ),
        "on the terminal: {seen:?}"
    );
    let left: u64 = line
        .rsplit(", ")
        .next()
        .unwrap()
        .trim_end_matches("s left")
        .parse()
        .unwrap();
    assert!((1..=68).contains(&left), "8 × 1 + 60 s at most: {left}");

    // In a pipe, waiting as long for R2 (R1's acquire goes on for the killed command): nothing
    // but sanlock's own lines.
    let mut in_pipe = command(pair.second_resource(), Stdio::piped());
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        in_pipe.try_wait().unwrap().is_none(),
        "the acquire of R2 did not wait"
    );
    let _ = in_pipe.kill();
    let out = in_pipe.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("waiting for"), "progress in a pipe: {err:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("waiting for"),
        "progress on stdout: {stdout:?}"
    );
}

#[test]
fn the_metrics_file_has_every_series_after_a_renewal() {
    let scratch = Scratch::new("metrics");
    let ours = common::ours();
    common::create_file(&scratch.path("ls"), 8 << 20);
    common::create_file(&scratch.path("res"), 8 << 20);
    let metrics = scratch.path("sanlock.prom");
    // -w 1 with a stand-in for /dev/watchdog: our feeder holds it, so it shows armed.
    let stand_in = scratch.path("watchdog");
    let mut h = CDaemon::start_with_env(
        &ours,
        &scratch,
        "metrics-host",
        &["-w", "1"],
        &[
            ("SANLOCK_METRICS_FILE", &metrics),
            ("SANLOCK_WATCHDOG_FILE", &stand_in),
        ],
    );
    let d = scratch.dir().display().to_string();
    assert_eq!(
        h.client(&["init", "-s", &format!("LS:0:{d}/ls:0"), "-o", "1"])
            .code,
        0
    );
    assert_eq!(
        h.client(&["init", "-r", &format!("LS:R1:{d}/res:0")]).code,
        0
    );
    let add = h.client(&["add_lockspace", "-s", &format!("LS:1:{d}/ls:0"), "-o", "1"]);
    assert_eq!(add.code, 0, "{add:?}");
    h.hold(&format!("LS:R1:{d}/res:0"));
    // A second acquire of the same lease here fails: an acquire counted by its result.
    let again = Command::new(&ours)
        .args([
            "client",
            "command",
            "-r",
            &format!("LS:R1:{d}/res:0"),
            "-c",
            "/bin/true",
        ])
        .env("SANLOCK_RUN_DIR", h.run_dir())
        .output()
        .unwrap();
    assert!(!again.status.success());
    // The next renewals (every 2 s) rewrite the file with all of that.
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = std::fs::read_to_string(&metrics).unwrap_or_default();
        if text.contains("sanlock_leases_held{lockspace=\"LS\",mode=\"exclusive\"} 1") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no metrics with the lease: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for series in [
        "sanlock_renewal_seconds_bucket{lockspace=\"LS\",le=\"0.001\"}",
        "sanlock_renewal_seconds_bucket{lockspace=\"LS\",le=\"+Inf\"}",
        "sanlock_renewal_seconds_sum{lockspace=\"LS\"}",
        "sanlock_renewal_seconds_count{lockspace=\"LS\"}",
        "sanlock_renewal_failures_total{lockspace=\"LS\"} 0",
        "sanlock_io_timeouts_total 0",
        "sanlock_io_errors_total 0",
        "sanlock_lockspace_joined{lockspace=\"LS\"} 1",
        "sanlock_leases_held{lockspace=\"LS\",mode=\"shared\"} 0",
        "sanlock_acquires_total{result=\"0\"} 1",
        "sanlock_acquires_total{result=\"-17\"} 1",
        "sanlock_watchdog_mode{mode=\"device\"} 1",
        "sanlock_watchdog_mode{mode=\"wdmd\"} 0",
        "sanlock_watchdog_armed{lockspace=\"LS\"} 1",
        "sanlock_watchdog_expire_seconds{lockspace=\"LS\"}",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    // The exposition format: every sample's metric has a TYPE line, every value is a number,
    // and the histogram's buckets never decrease.
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut last_bucket = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let name = series.split('{').next().unwrap();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| typed.contains(b))
            .unwrap_or(name);
        assert!(typed.contains(&base), "{name} has no TYPE line");
        if name == "sanlock_renewal_seconds_bucket" {
            assert!(value >= last_bucket, "buckets decrease at {line}");
            last_bucket = value;
        }
    }
    let count: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("sanlock_renewal_seconds_count{lockspace=\"LS\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        count >= 1.0 && count == last_bucket,
        "+Inf bucket {last_bucket} = count {count}"
    );
}
