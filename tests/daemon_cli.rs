//! Our daemon and our `sanlock client` against sanlock 3.8.5's: the same command sequence is
//! run with each CLI against each daemon, and every combination must print what the C CLI
//! prints against the C daemon (timestamps and pids aside). The sequence covers init, read
//! (with size hints), add/inq/rem_lockspace, gets, align, status, host_status, command (a registered holder),
//! acquire/convert/release/inquire by pid, a holder's exit releasing its lease, and
//! shutdown -w 1 (wire.md §6.2).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the sequence with `cli` against the daemon of `run_dir`, files under `dir`.
fn sequence(cli: &Path, run_dir: &Path, dir: &Path) -> String {
    let ls = dir.join("ls");
    let res = dir.join("res");
    common::create_file(&ls, 1 << 20);
    common::create_file(&res, 3 << 20);
    let d = dir.display().to_string();
    let transcript = std::cell::RefCell::new(String::new());
    let r = |args: &[String], pid: Option<u32>| {
        let out = Command::new(cli)
            .args(args)
            .env("SANLOCK_RUN_DIR", run_dir)
            .output()
            .unwrap();
        let mut text = format!("$ {}\n", args.join(" "));
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        text.push_str(&format!("exit {}\n", out.status.code().unwrap_or(-1)));
        let mut text = text.replace(&d, "D");
        if let Some(pid) = pid {
            text = common::replace_pid(&text, pid, "PID");
        }
        transcript.borrow_mut().push_str(&normalize(&text));
    };
    let a =
        |s: &str| -> Vec<String> { s.replace("$D", &d).split(' ').map(str::to_string).collect() };
    r(&a("client version"), None);
    r(&a("client init -s LS:0:$D/ls:0 -o 1"), None);
    r(&a("client init -r LS:R1:$D/res:0"), None);
    r(&a("client init -r LS:R2:$D/res:1M"), None);
    r(&a("client read -s LS:0:$D/ls:0 -D"), None);
    r(&a("client read -r LS:R1:$D/res:0 -D"), None);
    // Size hints: readers take them as how much to read (host 2 counted in 4K sectors is host
    // 9's record here), a writer refuses a pair that is no geometry with -1.
    r(&a("client read -s LS:2:$D/ls:0 -Z 4096 -A 8M"), None);
    r(&a("client read -r LS:R1:$D/res:0 -Z 4096 -A 8M"), None);
    r(&a("client init -r LS:R3:$D/res:2M -Z 512 -A 2M"), None);
    r(&a("client inq_lockspace -s LS:1:$D/ls:0"), None);
    r(&a("client add_lockspace -s LS:1:$D/ls:0 -o 1"), None);
    r(&a("client add_lockspace -s LS:1:$D/ls:0 -o 1"), None);
    r(&a("client inq_lockspace -s LS:1:$D/ls:0"), None);
    r(&a("client gets"), None);
    std::thread::sleep(Duration::from_millis(1500));
    r(&a("client gets -h 1"), None);
    r(&a("client align -s LS:1:$D/ls:0"), None);
    r(&a("client status"), None);
    r(&a("client host_status -s LS"), None);
    // The renewal history: one line per renewal (every 2 s here), whose numbers vary.
    let renewal = Command::new(cli)
        .args(a("client renewal -s LS"))
        .env("SANLOCK_RUN_DIR", run_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&renewal.stdout).into_owned();
    let well_formed = text.lines().count() >= 1
        && text.lines().all(|l| {
            let keys: Vec<&str> = l.split(' ').filter_map(|kv| kv.split('=').next()).collect();
            let numbers = l.split(' ').all(|kv| {
                kv.split('=')
                    .nth(1)
                    .is_some_and(|v| v.parse::<u64>().is_ok())
            });
            keys == [
                "timestamp",
                "read_ms",
                "write_ms",
                "next_timeouts",
                "next_errors",
            ] && numbers
        });
    transcript.borrow_mut().push_str(&format!(
        "$ client renewal -s LS\nwell formed: {well_formed}, exit {}\n",
        renewal.status.code().unwrap_or(-1)
    ));
    let mut holder = Command::new(cli)
        .args(a("client command -r LS:R1:$D/res:0 -c /bin/sleep 60"))
        .env("SANLOCK_RUN_DIR", run_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = holder.id();
    std::thread::sleep(Duration::from_millis(1000));
    let p = Some(pid);
    let with_pid = |s: &str| a(&s.replace("$PID", &pid.to_string()));
    r(&a("client status"), p);
    r(&with_pid("client inquire -p $PID"), p);
    r(&with_pid("client acquire -r LS:R2:$D/res:1M -p $PID"), p);
    r(&with_pid("client inquire -p $PID -D"), p);
    // Two resources, the second with no lease on disk: the first is given back (§4.4 step 7).
    r(&with_pid("client release -r LS:R2:$D/res:1M -p $PID"), p);
    r(
        &with_pid("client acquire -r LS:R2:$D/res:1M -r LS:R9:$D/res:2M -p $PID"),
        p,
    );
    r(&with_pid("client inquire -p $PID"), p);
    r(&with_pid("client acquire -r LS:R2:$D/res:1M -p $PID"), p);
    r(&with_pid("client convert -r LS:R2:$D/res:1M:SH -p $PID"), p);
    r(&with_pid("client convert -r LS:R2:$D/res:1M:SH -p $PID"), p);
    r(&with_pid("client inquire -p $PID"), p);
    r(&with_pid("client status -o p"), p);
    r(&with_pid("client release -r LS:R2:$D/res:1M -p $PID"), p);
    r(&with_pid("client release -r LS:R2:$D/res:1M -p $PID"), p);
    r(&a("client read -r LS:R1:$D/res:0 -h 1 -D"), None);
    r(&a("client acquire -r LS:R1:$D/res:0 -p 999999"), None);
    // The holder's exit releases its lease.
    holder.kill().unwrap();
    holder.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    r(&with_pid("client inquire -p $PID"), p);
    r(&a("client status"), None);
    r(&a("client read -r LS:R1:$D/res:0"), None);
    r(&a("client rem_lockspace -s LS:1:$D/ls:0"), None);
    r(&a("client rem_lockspace -s LS:1:$D/ls:0"), None);
    r(&a("client gets"), None);
    r(&a("client shutdown -w 1"), None);
    transcript.into_inner()
}

/// Masks what differs from run to run (timestamps) and drops status lines of CLI
/// connections that may or may not have closed yet.
fn normalize(text: &str) -> String {
    text.lines()
        .filter_map(common::mask_line)
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn each_cli_against_each_daemon_prints_what_sanlock_prints() {
    let c = require_c_sanlock!();
    let reference = common::four_ways(&c, "daemon-cli", sequence);
    assert!(reference.contains("acquire done 0"), "{reference}");
}

/// Runs `f` against a fresh C daemon, then a fresh one of ours, each in a scratch folder of its
/// own; returns what each gave, the C daemon's first.
fn on_each_daemon<T>(
    c: &Path,
    label: &str,
    mut f: impl FnMut(&mut common::CDaemon, &common::Scratch) -> T,
) -> [T; 2] {
    let ours = common::ours();
    [c, ours.as_path()].map(|daemon| {
        let scratch = common::Scratch::new(label);
        let mut host = common::CDaemon::start(daemon, &scratch, "host");
        let out = f(&mut host, &scratch);
        host.kill_all();
        out
    })
}

#[test]
fn log_dump_has_sanlocks_line_format_and_opening_lines() {
    // The log's messages are each daemon's own; its line format and the lines a daemon starts
    // with are sanlock's, and both CLIs print the same dump.
    let c = require_c_sanlock!();
    let ours = common::ours();
    let mask = |dump: &str, run_dir: &Path| -> Vec<String> {
        dump.lines()
            .map(|l| {
                // "YYYY-MM-DD HH:MM:SS MONOTIME [PID]: text"
                let (stamp, text) = l.split_once("]: ").expect("a log line");
                let fields: Vec<&str> = stamp.split(' ').collect();
                assert_eq!(fields.len(), 4, "{l}");
                assert!(
                    fields[3].starts_with('[') && fields[2].parse::<u64>().is_ok(),
                    "{l}"
                );
                text.replace(&run_dir.display().to_string(), "RUN")
            })
            .collect()
    };
    let dumps = on_each_daemon(&c, "daemon-log-dump", |host, _| {
        let by_c = Command::new(&c)
            .args(["client", "log_dump"])
            .env("SANLOCK_RUN_DIR", host.run_dir())
            .output()
            .unwrap();
        let by_ours = Command::new(&ours)
            .args(["client", "log_dump"])
            .env("SANLOCK_RUN_DIR", host.run_dir())
            .output()
            .unwrap();
        assert_eq!(by_c.stdout, by_ours.stdout, "the two CLIs' dumps differ");
        // 3.8.5's log_dump exits 1 after printing (its result is the byte count).
        assert_eq!(
            (by_c.status.code(), by_ours.status.code()),
            (Some(1), Some(1))
        );
        mask(&String::from_utf8_lossy(&by_c.stdout), host.run_dir())
    });
    assert_eq!(dumps[0][..3], dumps[1][..3], "opening lines");
}

#[test]
fn add_lockspace_refuses_a_lockspace_of_bad_sizes_as_sanlock_does() {
    // The first leader names the lockspace's sizes (lockspace.c reads them before joining): a
    // sector size that is neither 512 nor 4096, sizes that make no geometry, a newer major
    // version and no record are each refused.
    use sanlock_core::ondisk::leader::LEADER_RECORD_SIZE;
    use sanlock_core::ondisk::RawLeader;
    let c = require_c_sanlock!();
    let transcripts = on_each_daemon(&c, "daemon-bad-sizes", |host, scratch| {
        let mut text = String::new();
        type Change = fn(&mut RawLeader);
        let cases: [(&str, Change); 5] = [
            ("good", |_| {}),
            ("sector 1024", |l| l.sector_size = 1024),
            ("512 with 8M", |l| l.flags = (l.flags & !0xf0) | 0x80),
            ("version 2", |l| l.version = 0x0002_0001),
            ("no record", |l| l.magic = 0),
        ];
        for (i, (label, change)) in cases.into_iter().enumerate() {
            let ls = scratch.path(label);
            common::create_file(&ls, 1 << 20);
            // A name of its own each: a joined lockspace's name is refused to the next.
            let arg = format!("L{i}:1:{}:0", ls.display());
            assert_eq!(host.client(&["init", "-s", &arg, "-o", "1"]).code, 0);
            let mut leader =
                RawLeader::parse(&common::read_at(&ls, 0, LEADER_RECORD_SIZE)).unwrap();
            change(&mut leader);
            let bytes = leader.sealed().to_bytes();
            let f = std::fs::OpenOptions::new().write(true).open(&ls).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&f, &bytes, 0).unwrap();
            let out = host.client(&["add_lockspace", "-s", &arg, "-o", "1"]);
            text.push_str(&format!("{label}: {}exit {}\n", out.stdout, out.code));
        }
        text
    });
    assert_eq!(transcripts[1], transcripts[0], "ours, then 3.8.5");
    assert!(
        transcripts[0]
            .contains("sector 1024: add_lockspace_timeout 1\nadd_lockspace_timeout done -225"),
        "{}",
        transcripts[0]
    );
}

#[test]
fn status_debug_fields_follow_commands_and_renewals_as_sanlocks_do() {
    // `status -D`: a client's cmd_last, and a lockspace's lease_status (join and renewal
    // results, 1 for success, and their times) read as 3.8.5's do.
    let c = require_c_sanlock!();
    let summaries = on_each_daemon(&c, "daemon-status-debug", |host, scratch| {
        let (ls, res) = (scratch.path("ls"), scratch.path("res"));
        common::create_file(&ls, 1 << 20);
        common::create_file(&res, 1 << 20);
        let ls_arg = format!("LS:1:{}:0", ls.display());
        let r1 = format!("LS:R1:{}:0", res.display());
        for args in [
            vec!["init", "-s", &ls_arg, "-o", "1"],
            vec!["init", "-r", &r1],
            vec!["add_lockspace", "-s", &ls_arg, "-o", "1"],
        ] {
            assert_eq!(host.client(&args).code, 0, "{args:?}");
        }
        host.hold(&r1);
        // Past the first renewal after the join (every 2 s with io_timeout 1).
        std::thread::sleep(Duration::from_millis(2500));
        let out = Command::new(&c)
            .args(["client", "status", "-D"])
            .env("SANLOCK_RUN_DIR", host.run_dir())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // key=value of the record whose header line starts with `header`.
        let fields = |header: &str| -> std::collections::HashMap<String, u64> {
            text.split('\n')
                .skip_while(|l| !l.starts_with(header))
                .skip(1)
                .take_while(|l| l.starts_with("    "))
                .filter_map(|l| l.trim().split_once('='))
                .filter_map(|(k, v)| Some((k.to_string(), v.parse::<i64>().ok()? as u64)))
                .collect()
        };
        let daemon_fields = fields("daemon ");
        let holder = fields(&format!("p {} ", host.holder_pid(0)));
        let space = fields("s LS:1:");
        let now = daemon_fields["monotime"];
        let t = |k: &str| space[k];
        format!(
            "holder cmd_last={} acquire_last_result={} renewal_last_result={} \
             attempt<=success: {} renewed after the join: {} renewal recent: {}",
            holder["cmd_last"],
            t("acquire_last_result") as i64,
            t("renewal_last_result") as i64,
            t("acquire_last_attempt") <= t("acquire_last_success") && t("acquire_last_attempt") > 0,
            t("renewal_last_success") > t("acquire_last_success"),
            now - t("renewal_last_success") <= 2,
        )
    });
    assert_eq!(summaries[1], summaries[0], "ours, then 3.8.5");
    assert!(
        summaries[0].starts_with("holder cmd_last=7 acquire_last_result=1"),
        "{}",
        summaries[0]
    );
}
