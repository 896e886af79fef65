//! Issue 7 across implementations: sanlock 3.8.5's daemon as host 1 and ours as host 2 in one
//! lockspace (io_timeout 1, so a renewal every 2 s):
//! - an event set on the C host reaches a process registered on ours, and the reverse, within
//!   two renewal intervals;
//! - a FORCE request from the C host makes ours kill the holder and release the lease, which
//!   the C host then acquires; the same from ours to the C host;
//! - a GRACEFUL request from the C host runs the holder's killpath program on ours;
//! - a resource index written through one daemon reads the same, entry for entry, through
//!   the other.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{CDaemon, Scratch};

/// Two renewal intervals with io_timeout 1 (a renewal every 2N = 2 s).
const TWO_RENEWALS_S: f64 = 4.0;

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cli(bin: &Path, d: &CDaemon, args: &[&str]) -> String {
    let out = Command::new(bin)
        .arg("client")
        .args(args)
        .env("SANLOCK_RUN_DIR", d.run_dir())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A python process on `d` that registers, optionally sets a killpath, acquires `res`
/// (LS:NAME:PATH:OFFSET), says "ready" and sleeps.
fn python_holder(
    d: &CDaemon,
    name: &str,
    path: &str,
    offset: u64,
    killpath: Option<&Path>,
) -> Child {
    let kp = killpath.map_or(String::new(), |p| {
        format!(
            "sanlock.killpath({:?}, ['graceful'], slkfd=fd)\n",
            p.display().to_string()
        )
    });
    let script = format!(
        "import sanlock, sys, time\nfd = sanlock.register()\n{kp}\
         sanlock.acquire(b'LS', b'{name}', [({path:?}, {offset})], slkfd=fd)\n\
         print('ready', flush=True)\ntime.sleep(120)\n"
    );
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .env("SANLOCK_RUN_DIR", d.run_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the holder did not acquire {name}");
    child
}

/// The lver a resource has on disk (`client read -r`).
fn lver(bin: &Path, d: &CDaemon, res: &str) -> u64 {
    let out = cli(bin, d, &["read", "-r", res]);
    let line = out
        .lines()
        .find(|l| l.starts_with("r "))
        .unwrap_or_else(|| panic!("{out}"));
    line.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn events_requests_killpath_and_rindex_work_between_a_c_host_and_ours() {
    let c = require_c_sanlock!();
    require_python_sanlock!();
    let ours = common::ours();
    let scratch = Scratch::new("mixed-surface");
    let ls = scratch.path("ls");
    let res = scratch.path("res");
    let rx = scratch.path("rx");
    common::create_file(&ls, 1 << 20);
    common::create_file(&res, 4 << 20);
    common::create_file(&rx, 8 << 20);
    let lsp = ls.display().to_string();
    let resp = res.display().to_string();
    let rxp = rx.display().to_string();
    let init = |args: &[&str]| assert_eq!(common::run(&c, args, None).code, 0, "{args:?}");
    init(&["direct", "init", "-s", &format!("LS:0:{lsp}:0"), "-o", "1"]);
    for (i, r) in ["R1", "R2", "R3"].iter().enumerate() {
        init(&["direct", "init", "-r", &format!("LS:{r}:{resp}:{i}M")]);
    }
    let h1 = CDaemon::start(&c, &scratch, "host1");
    let h2 = CDaemon::start(&ours, &scratch, "host2");
    std::thread::scope(|s| {
        for (d, id) in [(&h1, 1), (&h2, 2)] {
            let lsp = &lsp;
            s.spawn(move || {
                let r = d.client(&[
                    "add_lockspace",
                    "-s",
                    &format!("LS:{id}:{lsp}:0"),
                    "-o",
                    "1",
                ]);
                assert_eq!(r.code, 0, "{r:?}");
            });
        }
    });
    for (d, other) in [(&h1, "2"), (&h2, "1")] {
        wait_until("the other host LIVE", 30, || {
            d.client(&["gets", "-h", "1"])
                .stdout
                .lines()
                .any(|l| l.starts_with(&format!("h {other} ")) && l.ends_with("LIVE"))
        });
    }

    // Events, both ways.
    for (from, from_bin, to, to_id, ev) in [(&h1, &c, &h2, 2, 0x11), (&h2, &ours, &h1, 1, 0x33)] {
        let (mut listener, mut out) = common::python_listener(to);
        let t0 = Instant::now();
        let set = cli(
            from_bin,
            from,
            &[
                "set_event",
                "-s",
                "LS",
                "-i",
                &to_id.to_string(),
                "-e",
                &ev.to_string(),
                "-d",
                "7",
            ],
        );
        assert!(set.contains("set_event done 0"), "{set}");
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let took = t0.elapsed().as_secs_f64();
        let _ = listener.wait();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            fields.get(1..),
            Some(
                &[
                    &(3 - to_id).to_string()[..],
                    &to_id.to_string()[..],
                    &ev.to_string()[..],
                    "7"
                ][..]
            ),
            "event line: {line:?}"
        );
        eprintln!(
            "event from host {} reached host {to_id} in {took:.2} s",
            3 - to_id
        );
        assert!(took <= TWO_RENEWALS_S, "the event took {took:.2} s");
    }

    // FORCE from the C host: our host kills the holder and releases; the C host acquires.
    // Then the same from our host to the C host.
    for (req, req_bin, holder_d, name, offset) in [
        (&h1, &c, &h2, "R1", 0u64),
        (&h2, &ours, &h1, "R3", 2u64 << 20),
    ] {
        let r = format!("LS:{name}:{resp}:{offset}");
        let mut holder = python_holder(holder_d, name, &resp, offset, None);
        let held = lver(req_bin, req, &r);
        let t0 = Instant::now();
        let out = cli(
            req_bin,
            req,
            &["request", "-r", &format!("{r}:{}", held + 1), "-f", "1"],
        );
        assert!(out.contains("request done 0"), "{out}");
        wait_until("the holder killed", 30, || {
            holder.try_wait().unwrap().is_some()
        });
        let killed = t0.elapsed().as_secs_f64();
        let status = holder.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "FORCE means SIGKILL");
        wait_until("the requester acquires", 30, || {
            let out = Command::new(req_bin)
                .args(["client", "command", "-r", &r, "-c", "/bin/true"])
                .env("SANLOCK_RUN_DIR", req.run_dir())
                .output()
                .unwrap();
            out.status.success()
        });
        eprintln!(
            "FORCE request for {name}: holder killed {killed:.2} s after it, lease acquired \
             by the requester {:.2} s after it",
            t0.elapsed().as_secs_f64()
        );
    }

    // GRACEFUL from the C host: our host runs the holder's killpath (without a pid).
    let (marker, script) = common::killpath_recorder(&scratch);
    let r2 = format!("LS:R2:{resp}:1048576");
    let mut holder = python_holder(&h2, "R2", &resp, 1 << 20, Some(&script));
    let held = lver(&c, &h1, &r2);
    let out = cli(
        &c,
        &h1,
        &["request", "-r", &format!("{r2}:{}", held + 1), "-f", "2"],
    );
    assert!(out.contains("request done 0"), "{out}");
    wait_until("the killpath program ran", 30, || marker.exists());
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "graceful");
    assert!(
        holder.try_wait().unwrap().is_none(),
        "GRACEFUL with a killpath sends no signal"
    );
    let _ = holder.kill();
    let _ = holder.wait();

    // A resource index: ours writes, C reads; C writes, ours reads.
    let rxs = format!("LS:{rxp}:0");
    let lookups = |bin: &Path, d: &CDaemon, names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| cli(bin, d, &["lookup", "-x", &rxs, "-e", n]))
            .collect()
    };
    assert!(cli(&ours, &h2, &["format", "-x", &rxs]).contains("format done 0"));
    for n in ["a1", "a2", "a3"] {
        assert!(cli(&ours, &h2, &["create", "-x", &rxs, "-e", n]).contains("done 0"));
    }
    assert!(cli(&ours, &h2, &["delete", "-x", &rxs, "-e", "a2"]).contains("done 0"));
    assert!(cli(&c, &h1, &["create", "-x", &rxs, "-e", "c1"]).contains("done 0"));
    assert!(cli(&c, &h1, &["create", "-x", &rxs, "-e", "c2"]).contains("done 0"));
    let names = ["a1", "a2", "a3", "c1", "c2", ":2M", ":3M", ":4M", ":5M", ""];
    let by_c = lookups(&c, &h1, &names);
    let by_ours = lookups(&ours, &h2, &names);
    assert_eq!(by_ours, by_c, "the two daemons read the index differently");
    assert!(by_c[3].contains("name c1 offset 3145728"), "{by_c:?}");
    let dump_c = common::run(&c, &["direct", "dump", &rxp, "-f", "1"], None).stdout;
    let dump_ours = common::run(&ours, &["direct", "dump", &rxp, "-f", "1"], None).stdout;
    let entries = |d: &str| -> Vec<String> {
        d.lines()
            .filter(|l| l.contains(" rentry "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(entries(&dump_ours), entries(&dump_c));
    assert_eq!(entries(&dump_c).len(), 4, "{dump_c}");
}
