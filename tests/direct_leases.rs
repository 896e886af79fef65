//! `direct acquire_id / renew_id / release_id / acquire / release` without a daemon: the same
//! output and results as sanlock 3.8.5's, and records the C tool reads back as it reads its
//! own (wire.md §6.5).

mod common;

use std::path::Path;

use common::Scratch;

/// Runs the sequence with `bin` on fresh files under `dir`: each action's output, then the
/// delta and paxos leaders as the C tool reads them (timestamps and the host name masked).
fn sequence(bin: &Path, c: &Path, dir: &Path) -> Vec<String> {
    let ls = dir.join("ls");
    let res = dir.join("res");
    common::create_file(&ls, 1 << 20);
    common::create_file(&res, 1 << 20);
    let ls_arg = format!("LS:1:{}:0", ls.display());
    let res_arg = format!("LS:R:{}:0", res.display());
    let run = |args: &[&str]| {
        let r = common::run(bin, args, None);
        format!("{} -> exit {}", r.stdout.trim_end(), r.code)
    };
    let leader = |args: &[&str], keys: &[&str]| {
        let r = common::run(c, args, None);
        r.stdout
            .lines()
            .filter(|l| keys.iter().any(|k| l.starts_with(k)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        common::run(
            c,
            &[
                "direct",
                "init",
                "-s",
                &format!("LS:0:{}:0", ls.display()),
                "-o",
                "1"
            ],
            None
        )
        .code,
        0
    );
    assert_eq!(
        common::run(c, &["direct", "init", "-r", &res_arg], None).code,
        0
    );
    let mut out = Vec::new();
    out.push(run(&[
        "direct",
        "acquire_id",
        "-s",
        &ls_arg,
        "-o",
        "1",
        "-e",
        "hostx",
    ]));
    out.push(leader(
        &["direct", "read_leader", "-s", &ls_arg],
        &["owner_id", "owner_generation", "resource_name"],
    ));
    let ts = |args: &[&str]| {
        let r = common::run(c, args, None);
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix("timestamp "))
            .map(|t| t != "0")
            .unwrap()
    };
    out.push(format!(
        "held: {}",
        ts(&["direct", "read_leader", "-s", &ls_arg])
    ));
    out.push(run(&["direct", "renew_id", "-s", &ls_arg]));
    out.push(format!(
        "held: {}",
        ts(&["direct", "read_leader", "-s", &ls_arg])
    ));
    out.push(run(&["direct", "release_id", "-s", &ls_arg]));
    out.push(format!(
        "held: {}",
        ts(&["direct", "read_leader", "-s", &ls_arg])
    ));
    out.push(run(&[
        "direct", "acquire", "-r", &res_arg, "-i", "1", "-g", "1",
    ]));
    out.push(leader(
        &["direct", "read_leader", "-r", &res_arg],
        &["owner_id", "owner_generation", "lver", "write_id"],
    ));
    out.push(format!(
        "held: {}",
        ts(&["direct", "read_leader", "-r", &res_arg])
    ));
    out.push(run(&[
        "direct", "acquire", "-r", &res_arg, "-i", "2", "-g", "1",
    ]));
    out.push(run(&[
        "direct", "release", "-r", &res_arg, "-i", "2", "-g", "1",
    ]));
    out.push(run(&[
        "direct", "release", "-r", &res_arg, "-i", "1", "-g", "1",
    ]));
    out
}

#[test]
fn direct_lease_actions_print_what_sanlock_prints_and_write_what_it_reads() {
    let c = require_c_sanlock!();
    let ours = common::ours();
    let a = Scratch::new("direct-leases-c");
    let b = Scratch::new("direct-leases-ours");
    let (theirs, mine) = std::thread::scope(|s| {
        let t = s.spawn(|| sequence(&c, &c, a.dir()));
        let m = s.spawn(|| sequence(&ours, &c, b.dir()));
        (t.join().unwrap(), m.join().unwrap())
    });
    assert_eq!(theirs[0], "acquire_id done 0 -> exit 0");
    assert_eq!(theirs[3], "rewew_id done 0 -> exit 0", "sanlock's spelling");
    assert_eq!(mine, theirs);
    // Where they part (docs/COMPATIBILITY.md): 3.8.5's `direct release` never writes (it
    // compares the leader's writer with host_id 0); ours releases a lease that names -i/-g.
    let res = format!("LS:R:{}:0", b.path("res").display());
    let r = common::run(&c, &["direct", "read_leader", "-r", &res], None);
    assert!(r.stdout.contains("\ntimestamp 0\n"), "{}", r.stdout);
    let again = common::run(
        &ours,
        &["direct", "acquire", "-r", &res, "-i", "2", "-g", "1"],
        None,
    );
    assert_eq!(again.stdout, "acquire done 0\n");
}
