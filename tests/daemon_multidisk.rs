//! A resource lease on three disks (Disk Paxos with majorities), shared by sanlock 3.8.5's
//! daemon (host 1) and ours (host 2) in one lockspace: taken, held and released by each in
//! turn, the same leader on every disk after each; and with one disk of three removed or
//! truncated (failing for both), ours still takes and releases the free lease while the C host
//! stays excluded (3.8.5 itself fails with -9 or -90 then), and a disk replaced by a zeroed one
//! is outvoted.

mod common;

use std::path::{Path, PathBuf};

use common::{try_acquire, CDaemon, Scratch};

/// The (lver, owner_id, timestamp) of the leader on one disk, as the C tool reads it.
fn leader_on(c: &Path, disk: &Path) -> (u64, u64, u64) {
    let r = common::run(
        c,
        &[
            "direct",
            "read_leader",
            "-r",
            &format!("LS:R:{}:0", disk.display()),
        ],
        None,
    );
    let field = |name: &str| {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {:?}", r.stdout))
    };
    (field("lver"), field("owner_id"), field("timestamp"))
}

struct Cluster {
    c: PathBuf,
    ours: PathBuf,
    c_host: CDaemon,
    our_host: CDaemon,
    disks: [PathBuf; 3],
    res: String,
    _scratch: Scratch,
}

impl Cluster {
    fn start(c: &Path, label: &str) -> Cluster {
        let ours = common::ours();
        let scratch = Scratch::new(label);
        let ls = scratch.path("ls");
        common::create_file(&ls, 1 << 20);
        let (disks, res) = common::three_disk_files(&scratch);
        let ls_path = ls.display().to_string();
        for args in [
            vec![
                "direct",
                "init",
                "-s",
                &format!("LS:0:{ls_path}:0"),
                "-o",
                "1",
            ],
            vec!["direct", "init", "-r", &res],
        ] {
            assert_eq!(common::run(c, &args, None).code, 0, "{args:?}");
        }
        let c_host = CDaemon::start(c, &scratch, "host1");
        let our_host = CDaemon::start(&ours, &scratch, "host2");
        std::thread::scope(|s| {
            for (d, id) in [(&c_host, 1), (&our_host, 2)] {
                let arg = format!("LS:{id}:{ls_path}:0");
                s.spawn(move || {
                    let r = d.client(&["add_lockspace", "-s", &arg, "-o", "1"]);
                    assert_eq!(r.code, 0, "{r:?}");
                });
            }
        });
        Cluster {
            c: c.to_path_buf(),
            ours,
            c_host,
            our_host,
            disks,
            res,
            _scratch: scratch,
        }
    }

    /// The leader on each disk.
    fn leaders(&self) -> Vec<(u64, u64, u64)> {
        self.disks.iter().map(|d| leader_on(&self.c, d)).collect()
    }

    /// The leaders on `disks` once each shows the lease free. Both daemons list a lease as
    /// gone when its holder dies, before the release reaches the disks.
    fn freed_on(&self, disks: &[PathBuf]) -> Vec<(u64, u64, u64)> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let leaders: Vec<_> = disks.iter().map(|d| leader_on(&self.c, d)).collect();
            if leaders.iter().all(|l| l.2 == 0) {
                return leaders;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never released on every disk: {leaders:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

#[test]
fn a_three_disk_lease_goes_back_and_forth_between_a_c_host_and_ours() {
    let c = require_c_sanlock!();
    let mut w = Cluster::start(&c, "multidisk-alternate");
    let res = w.res.clone();
    let mut last_lver = 0;
    for round in 0..2 {
        w.our_host.hold(&res);
        assert_eq!(try_acquire(&w.c, &w.c_host, &res), "acquire done -243");
        let held = w.leaders();
        assert!(
            held.iter().all(|l| l.1 == 2 && l.2 != 0 && l.0 > last_lver),
            "round {round}: ours holds it on every disk: {held:?}"
        );
        assert!(held.windows(2).all(|p| p[0] == p[1]), "{held:?}");
        w.our_host.release_holders(&res);

        w.c_host.hold(&res);
        assert_eq!(try_acquire(&w.ours, &w.our_host, &res), "acquire done -243");
        let held = w.leaders();
        assert!(
            held.iter().all(|l| l.1 == 1 && l.2 != 0 && l.0 > last_lver),
            "round {round}: C holds it on every disk: {held:?}"
        );
        assert!(held.windows(2).all(|p| p[0] == p[1]), "{held:?}");
        last_lver = held[0].0;
        w.c_host.release_holders(&res);
        w.freed_on(&w.disks);
    }
}

#[test]
fn with_one_disk_of_three_gone_or_failing_ours_takes_the_lease_and_the_c_host_stays_out() {
    let c = require_c_sanlock!();
    let mut w = Cluster::start(&c, "multidisk-faulty");
    let res = w.res.clone();
    let gone = w.disks[2].with_extension("gone");

    // Removed: 3.8.5 cannot even try (-9, it submits I/O on the disk it could not open).
    std::fs::rename(&w.disks[2], &gone).unwrap();
    assert_eq!(try_acquire(&w.c, &w.c_host, &res), "acquire done -9");
    w.our_host.hold(&res);
    assert_eq!(try_acquire(&w.c, &w.c_host, &res), "acquire done -9");
    w.our_host.release_holders(&res);
    let d1 = w.freed_on(&w.disks[..2])[0];
    assert_eq!(d1.1, 2, "taken and released by ours: {d1:?}");

    // Truncated to nothing (every read short): 3.8.5 fails (-90 here, -EMSGSIZE); ours goes on.
    std::fs::rename(&gone, &w.disks[2]).unwrap();
    let before = common::read_all(&w.disks[2]);
    std::fs::File::options()
        .write(true)
        .open(&w.disks[2])
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(try_acquire(&w.c, &w.c_host, &res), "acquire done -90");
    w.our_host.hold(&res);
    assert_eq!(try_acquire(&w.c, &w.c_host, &res), "acquire done -90");

    // Back, but zeroed (a replacement disk): the C host sees ours holding it on the other two.
    std::fs::File::options()
        .write(true)
        .open(&w.disks[2])
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    assert_eq!(try_acquire(&w.c, &w.c_host, &res), "acquire done -243");
    w.our_host.release_holders(&res);
    assert!(
        before.iter().any(|&b| b != 0),
        "the disk had the lease on it"
    );

    // The C host takes it over the zeroed disk (its commit writes the leader there again),
    // and ours is refused while it holds it.
    w.c_host.hold(&res);
    assert_eq!(try_acquire(&w.ours, &w.our_host, &res), "acquire done -243");
    let held = w.leaders();
    assert!(held.iter().all(|l| l.1 == 1 && l.2 != 0), "{held:?}");
    w.c_host.release_holders(&res);
    w.our_host.hold(&res);
    w.our_host.release_holders(&res);
}

#[test]
fn every_client_path_takes_a_lease_on_three_disks() {
    let c = require_c_sanlock!();
    let mut w = Cluster::start(&c, "multidisk-paths");
    let res = w.res.clone();
    w.our_host.hold(&res);
    let pid = w.our_host.holder_pid(0).to_string();
    // inquire names every disk; a request (which writes the first disk's request record)
    // leaves the lease's routes whole: the converts after it run on every disk.
    let inq = w.our_host.client(&["inquire", "-p", &pid]);
    assert!(inq.stdout.contains(&format!("\"{res}:1\"")), "{inq:?}");
    let req = w
        .our_host
        .client(&["request", "-r", &format!("{res}:2"), "-f", "0"]);
    assert!(req.stdout.contains("request done 0"), "{req:?}");
    for (to, shared) in [(format!("{res}:SH"), true), (res.clone(), false)] {
        let conv = w.our_host.client(&["convert", "-r", &to, "-p", &pid]);
        assert!(conv.stdout.contains("convert done 0"), "{conv:?}");
        let free = w.leaders().iter().all(|l| l.2 == 0);
        assert_eq!(
            free,
            shared,
            "shared frees the leader on every disk: {:?}",
            w.leaders()
        );
    }
    w.our_host.release_holders(&res);
    w.freed_on(&w.disks);
}
