//! Our `sanlock direct` on its own: what it writes, what it refuses, and that it never writes
//! outside the area it initialises. These run everywhere; the comparisons with the C binary are
//! in interop_direct.rs.

mod common;

use std::path::Path;

use common::{
    assert_same_bytes, check_guard, create_file, fill, ours, read_all, read_at, run, LoopDevice,
    Scratch,
};
use sanlock_core::ondisk::leader::LEADER_RECORD_SIZE;
use sanlock_core::ondisk::{DeltaSector, LeaderKind, LeaderRecord, Name, RawLeader, SectorSize};

const MIB: u64 = 1 << 20;

fn sanlock(args: &[&str]) -> common::Run {
    run(&ours(), args, None)
}

fn p(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

#[test]
fn lockspace_init_writes_its_area_and_nothing_around_it() {
    // sanlock's tests put guard bytes after the area; we also fill the MiB before it.
    let s = Scratch::new("guard-ls");
    let f = s.path("ls");
    create_file(&f, 2 * MIB);
    fill(&f, 0, MIB as usize, b'X');
    let out = sanlock(&["direct", "init", "-s", &format!("LS:0:{}:1M", p(&f))]);
    assert_eq!(
        (out.stdout.as_str(), out.code),
        ("init done 0\n", 0),
        "{out:?}"
    );
    assert_same_bytes(
        &read_at(&f, 0, MIB as usize),
        &[b'X'; MIB as usize],
        "before the area",
    );
    check_guard(&f, 2 * MIB);
    let sector = DeltaSector::decode(&read_at(&f, MIB + 1999 * 512, 512), MIB).unwrap();
    assert_eq!(sector.leader.space_name.as_bytes(), b"LS");
    assert!(read_at(&f, MIB + 2000 * 512, 48 * 512)
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn resource_init_4k_8m_writes_its_area_and_nothing_around_it() {
    let s = Scratch::new("guard-res");
    let f = s.path("res");
    create_file(&f, 16 * MIB);
    fill(&f, 0, 8 * MIB as usize, b'X');
    let res = format!("LS:R:{}:8M", p(&f));
    let out = sanlock(&["direct", "init", "-r", &res, "-Z", "4096", "-A", "8M"]);
    assert_eq!(out.stdout, "init done 0\n", "{out:?}");
    assert_same_bytes(
        &read_at(&f, 0, 8 << 20),
        &vec![b'X'; 8 << 20],
        "before the area",
    );
    check_guard(&f, 16 * MIB);
    let leader = LeaderRecord::decode(&read_at(&f, 8 * MIB, 4096), LeaderKind::Paxos, 8 * MIB);
    let leader = leader.unwrap();
    assert_eq!(leader.sector_size(), SectorSize::Bytes4096);
    assert_eq!(leader.num_hosts, 2000);
}

#[test]
fn init_refuses_an_offset_that_is_not_a_multiple_of_the_align_size() {
    // sanlock 3.8.5 writes there; a lease off its alignment is one no host will find.
    let s = Scratch::new("misaligned");
    let f = s.path("disk");
    create_file(&f, 16 * MIB);
    fill(&f, 0, 16 * MIB as usize, 0xA5);
    let before = read_all(&f);
    let path = p(&f);
    for line in [
        format!("direct init -s LS:0:{path}:4096"),
        format!("direct init -r LS:R:{path}:1M -Z 4096 -A 8M"),
        format!("direct init -r LS:R:{path}:512"),
    ] {
        let out = sanlock(&line.split_whitespace().collect::<Vec<_>>());
        assert_eq!(
            (out.stdout.as_str(), out.code),
            ("init done -22\n", 1),
            "{line}"
        );
        assert!(
            out.stderr.contains("is not a multiple of the align size"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
    }
    assert_same_bytes(&read_all(&f), &before, "file after refused inits");
}

#[test]
fn init_of_a_missing_path_fails_with_sanlocks_codes_and_a_reason() {
    // 3.8.5: -ENODEV for a lockspace, the open's errno (-ENOENT) for a resource.
    let s = Scratch::new("missing");
    let missing = p(&s.path("no/such/file"));
    let out = sanlock(&["direct", "init", "-s", &format!("LS:0:{missing}:0")]);
    assert_eq!((out.stdout.as_str(), out.code), ("init done -19\n", 1));
    assert!(
        out.stderr.contains(&missing) && out.stderr.contains("No such file"),
        "{}",
        out.stderr
    );
    let out = sanlock(&["direct", "init", "-r", &format!("LS:R:{missing}:0")]);
    assert_eq!((out.stdout.as_str(), out.code), ("init done -2\n", 1));
    assert!(!s.path("no").exists(), "nothing was created");
}

#[test]
fn init_extends_a_short_regular_file_as_sanlock_does() {
    let s = Scratch::new("extend");
    let f = s.path("empty");
    std::fs::File::create(&f).unwrap();
    let out = sanlock(&["direct", "init", "-r", &format!("LS:R:{}:2M", p(&f))]);
    assert_eq!(out.stdout, "init done 0\n");
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 3 * MIB);
}

#[test]
fn read_leader_prints_zeros_where_sanlock_prints_stack_garbage() {
    // 3.8.5 prints an uninitialised record when the disk does not open.
    let out = sanlock(&["direct", "read_leader", "-s", "LS:1:/no/such/disk:0"]);
    assert_eq!(out.code, 1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "read_leader done -19");
    assert_eq!(lines[1], "magic 0x0");
    assert_eq!(lines.len(), 18);
    assert!(lines[1..]
        .iter()
        .all(|l| l.ends_with(" 0") || l.ends_with(" 0x0") || l.ends_with("_name ")));
}

#[test]
fn dump_bounds_the_mode_block_scan_to_the_chunk_read() {
    // 3.8.5 reads mode blocks past its buffer for 4K/8M leases after a 4K/1M one and crashes
    // (wire.md §6.5); the 4K/1M lease sets the chunk size, the 8M ones claim 2000 hosts.
    let s = Scratch::new("dump-bound");
    let f = s.path("res");
    create_file(&f, 24 * MIB);
    let init = |res: String, align: &str| {
        let out = sanlock(&["direct", "init", "-r", &res, "-Z", "4096", "-A", align]);
        assert_eq!(out.stdout, "init done 0\n");
    };
    init(format!("LS:small:{}:0", p(&f)), "1M");
    init(format!("LS:big1:{}:8M", p(&f)), "8M");
    init(format!("LS:big2:{}:16M", p(&f)), "8M");
    let out = sanlock(&["direct", "dump", &format!("{}:0:24M", p(&f)), "-f", "2"]);
    assert_eq!(out.code, 0, "{out:?}");
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec![
                "00000000",
                "LS",
                "small",
                "0000000000",
                "0000",
                "0000",
                "0/0/0"
            ],
            vec![
                "08388608",
                "LS",
                "big1",
                "0000000000",
                "0000",
                "0000",
                "0/0/0"
            ],
            vec![
                "16777216",
                "LS",
                "big2",
                "0000000000",
                "0000",
                "0000",
                "0/0/0"
            ],
        ]
    );
}

#[test]
fn init_on_a_block_device_too_small_for_the_area_is_refused() {
    require_loop_devices!();
    let s = Scratch::new("small-dev");
    let backing = s.path("backing");
    std::fs::write(&backing, vec![0x5A; 512 * 1024]).unwrap();
    let dev = LoopDevice::attach(&backing, 512);
    let out = sanlock(&[
        "direct",
        "init",
        "-s",
        &format!("LS:0:{}:0", p(&dev.device)),
    ]);
    assert_eq!(
        (out.stdout.as_str(), out.code),
        ("init done -28\n", 1),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("does not fit on the device"),
        "{}",
        out.stderr
    );
    assert_same_bytes(
        &read_all(&dev.device),
        &[0x5A; 512 * 1024],
        "device after refusal",
    );
}

#[test]
fn init_of_a_512_byte_lockspace_on_a_4k_device_is_refused_a_resource_written() {
    // O_DIRECT cannot write 512 bytes there; 3.8.5 writes the lockspace area, then fails on
    // the commit.
    require_loop_devices!();
    let s = Scratch::new("4k-dev");
    let backing = s.path("backing");
    std::fs::write(&backing, vec![0u8; 16 << 20]).unwrap();
    let dev = LoopDevice::attach(&backing, 4096);
    let before = read_all(&dev.device);
    let init_512 = |kind: &str, locator: String| {
        sanlock(&["direct", "init", kind, &locator, "-Z", "512", "-A", "1M"])
    };
    let out = init_512("-s", format!("LS:0:{}:0", p(&dev.device)));
    assert_eq!(
        (out.stdout.as_str(), out.code),
        ("init done -22\n", 1),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("4096-byte logical sectors"),
        "{}",
        out.stderr
    );
    assert_same_bytes(&read_all(&dev.device), &before, "device after refusal");
    // A resource is one write of its whole area, which the device takes, as 3.8.5's does.
    let out = init_512("-r", format!("LS:R:{}:1M", p(&dev.device)));
    assert_eq!(
        (out.stdout.as_str(), out.code),
        ("init done 0\n", 0),
        "{out:?}"
    );
    let leader = RawLeader::parse(&read_at(&dev.device, MIB, 4096)[..LEADER_RECORD_SIZE]).unwrap();
    assert_eq!(
        (leader.sector_size, &leader.resource_name),
        (512, &Name::truncated(b"R"))
    );
    // Without sizes the device's own sector size is used: 4096 with the legacy 8M align.
    let out = sanlock(&[
        "direct",
        "init",
        "-s",
        &format!("LS:0:{}:8M", p(&dev.device)),
    ]);
    assert_eq!(out.stdout, "init done 0\n", "{out:?}");
    let sector = DeltaSector::decode(&read_at(&dev.device, 8 * MIB, 4096), 8 * MIB).unwrap();
    assert_eq!(sector.leader.geometry.area_bytes(), 8 * MIB);
}

#[test]
fn read_leader_of_two_disks_that_disagree_is_leader_diff() {
    // paxos_lease.c _leader_read_num: no leader on a majority of disks → SANLK_LEADER_DIFF,
    // -222 (3.8.5 prints the same; an earlier copy of the code here said -221).
    let s = Scratch::new("leader-diff");
    let (a, b) = (s.path("a"), s.path("b"));
    create_file(&a, MIB);
    create_file(&b, MIB);
    assert_eq!(
        sanlock(&["direct", "init", "-r", &format!("LS:R:{}:0", p(&a))]).code,
        0
    );
    let out = sanlock(&[
        "direct",
        "init",
        "-r",
        &format!("LS:R:{}:0", p(&b)),
        "-n",
        "4",
    ]);
    assert_eq!(out.code, 0);
    let out = sanlock(&[
        "direct",
        "read_leader",
        "-r",
        &format!("LS:R:{}:0:{}:0", p(&a), p(&b)),
    ]);
    assert_eq!(out.stdout.lines().next(), Some("read_leader done -222"));
    assert_eq!(out.code, 1);
}
