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

/// `direct write_leader` with `bin` on a fresh lockspace and resource: the output of each
/// run, then the bytes of both areas.
fn write_leader_run(bin: &Path, c: &Path, dir: &Path) -> (String, Vec<u8>, Vec<u8>) {
    let ls = dir.join("ls");
    let res = dir.join("res");
    common::create_file(&ls, 1 << 20);
    common::create_file(&res, 1 << 20);
    let d = dir.display().to_string();
    let ls_arg = format!("LS:2:{d}/ls:0");
    let res_arg = format!("LS:R:{d}/res:0");
    for args in [
        vec!["direct", "init", "-s", &format!("LS:0:{d}/ls:0")],
        vec!["direct", "init", "-r", &res_arg],
    ] {
        assert_eq!(common::run(c, &args, None).code, 0);
    }
    let fields = dir.join("fields");
    std::fs::write(
        &fields,
        "owner_id 2\nowner_generation 7\ntimestamp 1234\nresource_name hostx\nextra1 5\n\
         bogus 1\njustoneword\nlver 9\nwrite_id 3\nchecksum 0x12345678\n",
    )
    .unwrap();
    let f = fields.display().to_string();
    let mut out = String::new();
    for args in [
        vec!["direct", "write_leader", "-s", &ls_arg, "-F", &f],
        vec!["direct", "write_leader", "-r", &res_arg, "-F", &f],
        vec![
            "direct",
            "write_leader",
            "-r",
            &res_arg,
            "-F",
            &f,
            "-f",
            "1",
        ],
        vec!["direct", "write_leader", "-s", &ls_arg],
        vec![
            "direct",
            "write_leader",
            "-s",
            &ls_arg,
            "-F",
            "/nonexistent/x",
        ],
    ] {
        let r = common::run(bin, &args, None);
        out.push_str(&format!(
            "$ {}\n{}exit {}\n",
            args.join(" "),
            r.stdout,
            r.code
        ));
    }
    let out = out.replace(&d, "D");
    (out, common::read_all(&ls), common::read_all(&res))
}

#[test]
fn write_leader_prints_and_writes_what_sanlock_writes() {
    let c = require_c_sanlock!();
    let ours = common::ours();
    let (a, b) = (Scratch::new("wl-c"), Scratch::new("wl-ours"));
    let theirs = write_leader_run(&c, &c, a.dir());
    let mine = write_leader_run(&ours, &c, b.dir());
    assert!(theirs.0.contains("write_leader done 0"), "{}", theirs.0);
    assert_eq!(mine.0, theirs.0);
    common::assert_same_bytes(&mine.2, &theirs.2, "resource after write_leader");
    // A lockspace leader: the same record except its checksum. 3.8.5 writes one that fails
    // its own check (read_leader -229; see COMPATIBILITY.md); ours writes the one it printed.
    let checksum = 512 + 168..512 + 172;
    let mut mine_ls = mine.1.clone();
    mine_ls[checksum.clone()].copy_from_slice(&theirs.1[checksum.clone()]);
    common::assert_same_bytes(&mine_ls, &theirs.1, "lockspace after write_leader");
    assert_eq!(
        &mine.1[checksum],
        &0x726a_e719u32.to_le_bytes(),
        "the printed checksum"
    );
    let ls_arg = format!("LS:2:{}:0", b.dir().join("ls").display());
    let read = common::run(&c, &["direct", "read_leader", "-s", &ls_arg], None);
    assert!(
        read.stdout.starts_with("read_leader done 0\n"),
        "{}",
        read.stdout
    );
}

/// `direct acquire` and `release` of a lease on three disks (sanlock 3.8.5's `direct init -r`
/// wrote it): the C tool reads the same leader on every disk; with one disk gone ours still
/// releases on the other two, where 3.8.5's acquire fails with -9.
#[test]
fn a_lease_on_three_disks_is_taken_and_released_directly_without_one_of_them() {
    let c = require_c_sanlock!();
    let ours = common::ours();
    let scratch = Scratch::new("direct-three-disks");
    let (disks, res) = common::three_disk_files(&scratch);
    assert_eq!(
        common::run(&c, &["direct", "init", "-r", &res], None).code,
        0
    );
    let owner = |d: &Path| {
        let r = common::run(
            &c,
            &[
                "direct",
                "read_leader",
                "-r",
                &format!("LS:R:{}:0", d.display()),
            ],
            None,
        );
        let field = |k: &str| {
            r.stdout
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        (field("owner_id "), field("timestamp ") != "0")
    };
    let acquire = common::run(
        &ours,
        &["direct", "acquire", "-r", &res, "-i", "1", "-g", "1"],
        None,
    );
    assert_eq!(acquire.stdout.trim(), "acquire done 0", "{acquire:?}");
    for d in &disks {
        assert_eq!(owner(d), ("1".to_string(), true), "{}", d.display());
    }
    let gone = disks[2].with_extension("gone");
    std::fs::rename(&disks[2], &gone).unwrap();
    let c_acquire = common::run(
        &c,
        &["direct", "acquire", "-r", &res, "-i", "2", "-g", "1"],
        None,
    );
    assert_eq!(
        c_acquire.stdout.trim(),
        "acquire done -9",
        "3.8.5 without one disk"
    );
    let release = common::run(
        &ours,
        &["direct", "release", "-r", &res, "-i", "1", "-g", "1"],
        None,
    );
    assert_eq!(release.stdout.trim(), "release done 0", "{release:?}");
    for d in &disks[..2] {
        assert_eq!(
            owner(d),
            ("1".to_string(), false),
            "released on {}",
            d.display()
        );
    }
}
