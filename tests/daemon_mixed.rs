//! A mixed cluster: sanlock 3.8.5's daemon as host 1 and ours as host 2 in one lockspace file
//! (io_timeout 1). Each sees the other; an exclusive lease held by one is refused to the other
//! with -243; shared leases go to both; a released lease goes to the other; and when a holder's
//! daemon is killed, the other host gets the lease after host_dead_seconds (8N + 60 = 68 s)
//! and not before. Run both ways at once: C killed, ours acquires; ours killed, C acquires.
//! And two of ours contending while a C host joins as host_id 1999 and contends too.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{try_acquire, CDaemon, Scratch};

/// host_dead_seconds for io_timeout 1.
const HOST_DEAD_S: f64 = 68.0;

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `direct init` (with the C binary `c`) of lockspace LS (io_timeout 1) at `ls_path` and of
/// resource R1 at the start of `res_path`.
fn init_lockspace_and_r1(c: &Path, ls_path: &str, res_path: &str) {
    for args in [
        vec![
            "direct",
            "init",
            "-s",
            &format!("LS:0:{ls_path}:0"),
            "-o",
            "1",
        ],
        vec!["direct", "init", "-r", &format!("LS:R1:{res_path}:0")],
    ] {
        assert_eq!(common::run(c, &args, None).code, 0, "{args:?}");
    }
}

/// Joins `d` to the lockspace at `ls_path` as `id`, with io_timeout 1.
fn add_lockspace(d: &CDaemon, id: u32, ls_path: &str) {
    let arg = format!("LS:{id}:{ls_path}:0");
    let r = d.client(&["add_lockspace", "-s", &arg, "-o", "1"]);
    assert_eq!(r.code, 0, "{r:?}");
}

/// One cluster; `kill_c` picks whose daemon dies while holding R1.
fn cluster(c: &Path, kill_c: bool) {
    let ours = common::ours();
    let scratch = Scratch::new(if kill_c {
        "mixed-kill-c"
    } else {
        "mixed-kill-ours"
    });
    let ls = scratch.path("ls");
    let res = scratch.path("res");
    common::create_file(&ls, 1 << 20);
    common::create_file(&res, 2 << 20);
    let ls_path = ls.display().to_string();
    let res_path = res.display().to_string();
    let init = |args: &[&str]| assert_eq!(common::run(c, args, None).code, 0, "{args:?}");
    init_lockspace_and_r1(c, &ls_path, &res_path);
    init(&["direct", "init", "-r", &format!("LS:R2:{res_path}:1M")]);
    let mut h1 = CDaemon::start(c, &scratch, "host1");
    let mut h2 = CDaemon::start(&ours, &scratch, "host2");
    let add = |d: &CDaemon, id: u32| add_lockspace(d, id, &ls_path);
    std::thread::scope(|s| {
        s.spawn(|| add(&h1, 1));
        s.spawn(|| add(&h2, 2));
    });
    // Each sees the other renewing.
    for (d, other) in [(&h1, "2"), (&h2, "1")] {
        wait_until("the other host in host_status", 30, || {
            let hs = d.client(&["host_status", "-s", "LS"]).stdout;
            hs.lines()
                .any(|l| l.starts_with(&format!("{other} timestamp ")))
        });
        wait_until("the other host LIVE in gets -h 1", 30, || {
            let g = d.client(&["gets", "-h", "1"]).stdout;
            g.lines()
                .any(|l| l.starts_with(&format!("h {other} ")) && l.ends_with("LIVE"))
        });
    }
    let r1 = format!("LS:R1:{res_path}:0");
    let r2_sh = format!("LS:R2:{res_path}:1048576:SH");
    // Exclusive: held by host 1, refused to host 2 with -243; and the other way round.
    h1.hold(&r1);
    assert_eq!(try_acquire(&ours, &h2, &r1), "acquire done -243");
    // Shared: both hosts hold R2 at once.
    h1.hold(&r2_sh);
    h2.hold(&r2_sh);
    // Released by host 1 (its holder exits), R1 goes to host 2, and is refused to host 1.
    h1.release_holders(&r1);
    h2.hold(&r1);
    assert_eq!(try_acquire(c, &h1, &r1), "acquire done -243");
    if kill_c {
        // Host 1 must hold R1 for the kill test: hand it back.
        h2.release_holders(&r1);
        h1.hold(&r1);
    }
    let (victim, survivor, survivor_bin) = if kill_c {
        (&mut h1, &h2, ours.as_path())
    } else {
        (&mut h2, &h1, c)
    };
    let killed = Instant::now();
    victim.kill_all();
    // Not before host_dead_seconds after the victim's last renewal (at most 2 s before the
    // kill): every attempt until then is refused.
    let got_at = loop {
        let line = try_acquire(survivor_bin, survivor, &r1);
        let at = killed.elapsed().as_secs_f64();
        if line == "acquire done 0" {
            break at;
        }
        assert!(
            at < HOST_DEAD_S + 40.0,
            "never acquired after the kill: {line}"
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    eprintln!(
        "{} acquired R1 {got_at:.1} s after the other daemon was killed",
        if kill_c { "our daemon" } else { "the C daemon" }
    );
    assert!(
        got_at >= HOST_DEAD_S - 2.0,
        "acquired {got_at:.1} s after the kill, before host_dead_seconds"
    );
}

#[test]
fn a_c_host_and_ours_share_a_lockspace_and_take_a_dead_hosts_lease_only_after_host_dead() {
    let c = require_c_sanlock!();
    std::thread::scope(|s| {
        let a = s.spawn(|| cluster(&c, true));
        let b = s.spawn(|| cluster(&c, false));
        a.join().unwrap();
        b.join().unwrap();
    });
}

/// One host's attempts at `res` for `secs`: each holder's command marks the resource taken
/// (`set -C`: the marker must not exist) and clears it. Returns (acquired, collisions).
fn contend(client: &Path, d: &CDaemon, res: &str, marker: &Path, secs: u64) -> (u32, u32) {
    let script = format!(
        "set -C; echo x > {m} || exit 99; sleep 0.05; rm -f {m}",
        m = marker.display()
    );
    let (mut acquired, mut collisions) = (0, 0);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let out = Command::new(client)
            .args([
                "client", "command", "-r", res, "-c", "/bin/sh", "-c", &script,
            ])
            .env("SANLOCK_RUN_DIR", d.run_dir())
            .stderr(Stdio::null())
            .output()
            .unwrap();
        let refused = String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("acquire done -"));
        match out.status.code() {
            Some(0) => acquired += 1,
            Some(99) if !refused => collisions += 1,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    (acquired, collisions)
}

/// Two of our daemons (host_ids 1 and 2) contend for one lease while a C daemon joins the
/// lockspace as host_id 1999 and contends too: our ballots read only the dblocks of host_ids
/// in use while their view is fresh (docs/ARCHITECTURE.md, "Reading only what a ballot
/// needs"), and a C host joining far above them must still never hold beside them.
#[test]
fn a_c_host_joining_as_host_id_1999_while_ours_contend_never_holds_beside_them() {
    let c = require_c_sanlock!();
    let ours = common::ours();
    let scratch = Scratch::new("mixed-1999");
    let (ls, res) = (scratch.path("ls"), scratch.path("res"));
    common::create_file(&ls, 1 << 20);
    common::create_file(&res, 1 << 20);
    let (ls_path, res_path) = (ls.display().to_string(), res.display().to_string());
    init_lockspace_and_r1(&c, &ls_path, &res_path);
    let h1 = CDaemon::start(&ours, &scratch, "ours1");
    let h2 = CDaemon::start(&ours, &scratch, "ours2");
    let hc = CDaemon::start(&c, &scratch, "c1999");
    let add = |d: &CDaemon, id: u32| add_lockspace(d, id, &ls_path);
    std::thread::scope(|s| {
        s.spawn(|| add(&h1, 1));
        s.spawn(|| add(&h2, 2));
    });
    let r1 = format!("LS:R1:{res_path}:0");
    let marker = scratch.path("holder");
    let results = std::thread::scope(|s| {
        let a = s.spawn(|| contend(&ours, &h1, &r1, &marker, 30));
        let b = s.spawn(|| contend(&ours, &h2, &r1, &marker, 30));
        let joiner = s.spawn(|| {
            // Ours have renewed a few times and bound their reads to host_ids 1 and 2.
            std::thread::sleep(Duration::from_secs(6));
            add(&hc, 1999);
            contend(&ours, &hc, &r1, &marker, 20)
        });
        [a.join().unwrap(), b.join().unwrap(), joiner.join().unwrap()]
    });
    eprintln!("acquired, collisions (host 1, host 2, C host 1999): {results:?}");
    assert!(
        results.iter().all(|&(_, collisions)| collisions == 0),
        "{results:?}"
    );
    assert!(
        results.iter().all(|&(acquired, _)| acquired > 0),
        "{results:?}"
    );
}
