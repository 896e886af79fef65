//! Every kind of call of the typed client, in one script, against our daemon and against
//! sanlock 3.8.5's: each step's result (values, or the error and its code) is written down, and
//! the two transcripts must be the same line for line. Where a value depends on time or pids it
//! is left out of the line.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{c_sanlock, ours, Daemon, Scratch};
use sanlock_client::*;

/// A result as a line: the value as `show` renders it, or the error's code and words.
fn line<T>(label: &str, r: Result<T>, show: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => format!("{label}: ok {}", show(v)),
        Err(e) => format!("{label}: error {} ({e})", e.code()),
    }
}

fn text(n: &Name) -> String {
    String::from_utf8_lossy(n.as_bytes()).into_owned()
}

fn script(bin: &Path, label: &str) -> Vec<String> {
    let scratch = Scratch::new(&format!("calls-{label}"));
    let dir = &scratch.0;
    for (f, size) in [("ls", 1 << 20), ("res", 3 << 20), ("rx", 4 << 20)] {
        scratch.file(f, size);
    }
    let d = Daemon::start(bin, &scratch, "calls-host");
    // A call that hangs becomes an error line (EAGAIN) instead of a hung test.
    let c = d.client().with_timeout(Duration::from_secs(15));
    let mut out = Vec::new();
    let ls = Lockspace::new("LS", 1, Disk::new(dir.join("ls"), 0)).unwrap();
    let res = |n: &str, off| Resource::new("LS", n, Disk::new(dir.join("res"), off)).unwrap();
    let (r1, r2) = (res("R1", 0), res("R2", 1 << 20));
    let ls_name = ls.name;

    out.push(line("version", c.version(), |v| {
        format!("{:#x} {:#x}", v.number, v.protocol)
    }));
    out.push(line(
        "write_lockspace",
        c.write_lockspace(&ls, 0, WriteFlags::NONE, 1),
        |_| String::new(),
    ));
    out.push(line(
        "read_lockspace",
        c.read_lockspace(&ls.disk),
        |(l, t)| format!("{} {t}", text(&l.name)),
    ));
    out.push(line(
        "read_lockspace of a resource file",
        c.read_lockspace(&r1.disks[0]),
        |_| String::new(),
    ));
    for r in [&r1, &r2] {
        out.push(line(
            "write_resource",
            c.write_resource(r, 0, 0, WriteFlags::NONE),
            |_| String::new(),
        ));
    }
    out.push(line("read_resource", c.read_resource(&r2.disks[0]), |r| {
        format!("{} {} {:?}", text(&r.lockspace), text(&r.name), r.lver)
    }));
    out.push(line("align", c.align(&ls.disk), |a| a.to_string()));
    out.push(line(
        "inq before add",
        c.inq_lockspace(&ls, InqFlags::NONE),
        |_| String::new(),
    ));
    out.push(line(
        "add_lockspace",
        c.add_lockspace(&ls, AddFlags::NONE, 1),
        |_| String::new(),
    ));
    out.push(line(
        "add again",
        c.add_lockspace(&ls, AddFlags::NONE, 1),
        |_| String::new(),
    ));
    out.push(line("inq", c.inq_lockspace(&ls, InqFlags::NONE), |_| {
        String::new()
    }));
    out.push(line("get_lockspaces", c.get_lockspaces(), |l| {
        l.iter()
            .map(|i| {
                format!(
                    "{}:{} add {} rem {}",
                    text(&i.lockspace.name),
                    i.lockspace.host_id,
                    i.adding,
                    i.removing
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }));
    std::thread::sleep(Duration::from_millis(1500));
    out.push(line("get_hosts", c.get_hosts(&ls_name, 0), |h| {
        h.iter()
            .map(|h| {
                format!(
                    "{} gen {} {:?} io {}",
                    h.host_id, h.generation, h.state, h.io_timeout
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }));

    let mut me = c.register().unwrap();
    out.push(line(
        "acquire on an unknown lockspace",
        me.acquire(
            &[Resource::new("NOPE", "R1", r1.disks[0].clone()).unwrap()],
            AcquireFlags::NONE,
        ),
        |_| String::new(),
    ));
    out.push(line(
        "acquire R1 with an LVB",
        me.acquire(std::slice::from_ref(&r1), AcquireFlags::LVB),
        |_| String::new(),
    ));
    out.push(line("set_lvb", c.set_lvb(&r1, b"hello lvb"), |_| {
        String::new()
    }));
    out.push(line("get_lvb", c.get_lvb(&r1, 16), |b| {
        format!("{:?}", String::from_utf8_lossy(&b))
    }));
    out.push(line(
        "get_lvb of a lease not held",
        c.get_lvb(&r2, 16),
        |_| String::new(),
    ));
    out.push(line(
        "convert to shared",
        me.convert(&r1.clone().with_mode(Mode::Shared), ConvertFlags::NONE),
        |_| String::new(),
    ));
    out.push(line("inquire", me.inquire(), |l| {
        l.iter()
            .map(|r| {
                format!(
                    "{}:{} {:?} {:?} {}",
                    text(&r.lockspace),
                    text(&r.name),
                    r.mode,
                    r.lver,
                    r.disks.len()
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }));
    out.push(line(
        "read_resource_owners",
        c.read_resource_owners(&r1),
        |(r, o)| {
            format!(
                "{:?} owners {:?}",
                r.mode,
                o.iter().map(|h| h.host_id).collect::<Vec<_>>()
            )
        },
    ));
    out.push(line(
        "convert back",
        me.convert(&r1, ConvertFlags::NONE),
        |_| String::new(),
    ));
    out.push(line(
        "acquire R1 again",
        me.acquire(std::slice::from_ref(&r1), AcquireFlags::NONE),
        |_| String::new(),
    ));
    out.push(line("examine_resource", c.examine_resource(&r1), |_| {
        String::new()
    }));
    out.push(line("examine_lockspace", c.examine_lockspace(&ls), |_| {
        String::new()
    }));
    out.push(line(
        "request a free lease",
        c.request(&r2, ForceMode::NONE, RequestFlags::NEXT_LVER),
        |_| String::new(),
    ));
    out.push(line(
        "restrict",
        me.restrict(RestrictFlags::SIGTERM),
        |_| String::new(),
    ));
    out.push(line(
        "killpath",
        me.killpath(b"/bin/true", b"arg", KillpathFlags::PID),
        |_| String::new(),
    ));
    out.push(line(
        "killpath too long",
        me.killpath(&[b'x'; 200], b"", KillpathFlags::NONE),
        |_| String::new(),
    ));
    out.push(line(
        "set_event",
        c.set_event(
            &ls_name,
            &HostEvent {
                host_id: 2,
                generation: 0,
                event: 1,
                data: 2,
            },
            SetEventFlags::NONE,
        ),
        |_| String::new(),
    ));
    out.push(line(
        "set_config",
        c.set_config(&ls_name, ConfigCmd::USED),
        |_| String::new(),
    ));
    out.push(line(
        "set_config back",
        c.set_config(&ls_name, ConfigCmd::UNUSED),
        |_| String::new(),
    ));

    out.push(line("status", c.status(), |s| {
        let kinds: Vec<String> = s
            .iter()
            .filter(|r| r.kind != StateKind::Client)
            .map(|r| format!("{:?} {}", r.kind, text(&r.name)))
            .collect();
        kinds.join(", ")
    }));
    out.push(line("host_status", c.host_status(&ls_name), |s| {
        s.iter()
            .map(|r| {
                format!(
                    "{:?} {} {}",
                    r.kind,
                    r.data32,
                    r.get("owner_name").unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }));
    out.push(line("renewal", c.renewal(&ls_name), |s| {
        (!s.is_empty()
            && s.iter()
                .all(|r| r.kind == StateKind::Renewal && r.get("read_ms").is_some()))
        .to_string()
    }));
    out.push(line("log_dump", c.log_dump(), |b| {
        (!b.is_empty()).to_string()
    }));

    let rx = Rindex {
        lockspace: ls_name,
        disk: Disk::new(dir.join("rx"), 0),
        max_resources: 0,
    };
    let x1 = name("X1").unwrap();
    out.push(line("format_rindex", c.format_rindex(&rx), |_| {
        String::new()
    }));
    out.push(line(
        "create_resource",
        c.create_resource(&rx, &x1, 0, 0),
        |e| format!("{} {}", text(&e.name), e.offset),
    ));
    out.push(line("lookup_rindex", c.lookup_rindex(&rx, &x1), |e| {
        format!("{} {}", text(&e.name), e.offset)
    }));
    out.push(line(
        "update_rindex remove",
        c.update_rindex(
            &rx,
            &Rentry {
                name: x1,
                offset: 0,
            },
            true,
        ),
        |e| format!("{} {}", text(&e.name), e.offset),
    ));
    out.push(line(
        "lookup after remove",
        c.lookup_rindex(&rx, &x1),
        |e| format!("{} {}", text(&e.name), e.offset),
    ));
    out.push(line("rebuild_rindex", c.rebuild_rindex(&rx), |_| {
        String::new()
    }));
    out.push(line(
        "lookup after rebuild",
        c.lookup_rindex(&rx, &x1),
        |e| format!("{} {}", text(&e.name), e.offset),
    ));
    out.push(line("delete_resource", c.delete_resource(&rx, &x1), |_| {
        String::new()
    }));

    out.push(line(
        "release",
        me.release(std::slice::from_ref(&r1), ReleaseFlags::NONE),
        |_| String::new(),
    ));
    out.push(line(
        "release again",
        me.release(std::slice::from_ref(&r1), ReleaseFlags::NONE),
        |_| String::new(),
    ));
    out.push(line(
        "shutdown with a lockspace",
        c.shutdown_wait(false),
        |_| String::new(),
    ));
    out.push(line(
        "rem_lockspace",
        c.rem_lockspace(&ls, RemFlags::NONE),
        |_| String::new(),
    ));
    out.push(line(
        "inq after rem",
        c.inq_lockspace(&ls, InqFlags::NONE),
        |_| String::new(),
    ));
    out.push(line("shutdown_wait", c.shutdown_wait(false), |_| {
        String::new()
    }));
    out
}

#[test]
fn every_kind_of_call_gets_the_same_answers_from_our_daemon_and_sanlock_3_8_5() {
    let Some(ours) = ours() else {
        println!("skipped: no sanlock binary beside the tests (cargo test --workspace builds it)");
        return;
    };
    let Some(c) = c_sanlock() else {
        println!("skipped: Debian's sanlock 3.8.5 is not installed");
        return;
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| script(&ours, "ours"));
        let b = s.spawn(|| script(&c, "c"));
        (a.join().unwrap(), b.join().unwrap())
    });
    for l in &a {
        println!("{l}");
    }
    // A few lines pin values, so that two equally wrong transcripts cannot pass.
    assert!(
        a.contains(&"version: ok 0x3080500 0x1".to_string()),
        "{a:#?}"
    );
    assert!(
        a.contains(&"get_lvb: ok \"hello lvb\\0\\0\\0\\0\\0\\0\\0\"".to_string()),
        "{a:#?}"
    );
    assert!(
        a.contains(&"read_resource_owners: ok Shared owners [1]".to_string()),
        "{a:#?}"
    );
    for (ours, c) in a.iter().zip(&b) {
        assert_eq!(ours, c, "ours, then sanlock 3.8.5");
    }
    assert_eq!(a.len(), b.len());
}
