//! One conformance suite, run against every storage backend: ordering, concurrency, alignment,
//! deadlines and late completions, short files, out-of-range offsets, read-only disks, fault
//! injection, and areas written through the backend read back by C sanlock's `direct dump`.
//!
//! | rig | backend | disk |
//! | --- | --- | --- |
//! | `file` | FileStorage | a file under /var/tmp |
//! | `uring_512`, `uring_4096` | UringStorage | a loop device (`losetup --sector-size`), root only |
//! | `nfs` | NfsStorage | a file exported by nfs-ganesha on 127.0.0.1, root only |

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Ganesha, LoopDevice, Scratch};
use sanlock_backends::faults::{Fault, FaultKind, Faulty};
use sanlock_backends::file::FileStorage;
use sanlock_backends::nfs::{NfsStorage, NfsTarget};
use sanlock_backends::storage::{EINVAL, ENOSPC, EROFS};
use sanlock_backends::uring::UringStorage;
use sanlock_backends::{clock, Completed, DiskId, Io, Storage};
use sanlock_core::io::{IoError, IoId, IoOp};

const DISK_SIZE: u64 = 8 << 20;

/// A backend with one disk, and the local path where the test can look at the same bytes.
struct Rig {
    storage: Box<dyn Storage>,
    disk: DiskId,
    local: PathBuf,
    ss: usize,
    /// Block devices have a size; files grow.
    fixed: bool,
    next_id: u64,
    _keep: Vec<Box<dyn std::any::Any>>,
}

impl Rig {
    fn io(&mut self, offset: u64, op: IoOp, timeout: Duration) -> Io {
        self.next_id += 1;
        Io {
            id: IoId(self.next_id),
            disk: self.disk,
            offset,
            op,
            deadline: clock::now() + timeout,
        }
    }

    fn read(&mut self, offset: u64, len: usize) -> Io {
        self.io(offset, IoOp::Read { len }, Duration::from_secs(10))
    }

    fn write(&mut self, offset: u64, data: Vec<u8>) -> Io {
        self.io(offset, IoOp::Write { data }, Duration::from_secs(10))
    }

    /// Submits and waits for exactly these I/Os; returns their results in submission order.
    async fn run(&mut self, ios: Vec<Io>) -> Vec<Result<Vec<u8>, IoError>> {
        let ids: Vec<IoId> = ios.iter().map(|io| io.id).collect();
        self.storage.submit(ios);
        let mut got: Vec<Completed> = Vec::new();
        while got.len() < ids.len() {
            let batch = self.storage.completions().await;
            assert!(
                !batch.is_empty(),
                "completions() returned nothing with I/O in flight"
            );
            got.extend(batch);
        }
        assert_eq!(got.len(), ids.len(), "an I/O completed twice");
        ids.iter()
            .map(|id| {
                let c = got
                    .iter()
                    .find(|c| c.id == *id)
                    .expect("each I/O completes");
                c.result.clone().map(|b| b.to_vec())
            })
            .collect()
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_mul(31).wrapping_add((i % 251) as u8))
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn file_rig(scratch: &Scratch) -> Option<Rig> {
    let path = scratch.path("disk");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(DISK_SIZE)
        .unwrap();
    let mut storage = FileStorage::new();
    let disk = storage.open(path.to_str().unwrap()).unwrap();
    Some(Rig {
        storage: Box::new(storage),
        disk,
        local: path,
        ss: 512,
        fixed: false,
        next_id: 0,
        _keep: Vec::new(),
    })
}

/// An io_uring backend, or a one-line reason why there is none (a seccomp profile or
/// `kernel.io_uring_disabled` refuses the ring). Call inside a runtime.
fn uring_storage() -> Option<UringStorage> {
    match UringStorage::new() {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("skipped: io_uring is not available here ({e})");
            None
        }
    }
}

async fn uring_rig(scratch: &Scratch, ss: u32) -> Option<Rig> {
    if let Err(why) = common::loop_devices_available() {
        eprintln!("skipped: {why}");
        return None;
    }
    let mut storage = uring_storage()?;
    let backing = scratch.path("backing");
    std::fs::File::create(&backing)
        .unwrap()
        .set_len(DISK_SIZE)
        .unwrap();
    let dev = LoopDevice::attach(&backing, ss);
    let disk = storage.open(dev.device.to_str().unwrap()).unwrap();
    assert_eq!(storage.disk(disk).unwrap().sector_size.bytes(), ss);
    assert_eq!(storage.disk(disk).unwrap().size, Some(DISK_SIZE));
    Some(Rig {
        storage: Box::new(storage),
        disk,
        local: dev.device.clone(),
        ss: ss as usize,
        fixed: true,
        next_id: 0,
        _keep: vec![Box::new(dev)],
    })
}

/// One NFS server at a time: ganesha keeps some state in fixed places.
static NFS_SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[allow(
    clippy::await_holding_lock,
    reason = "a test-wide lock that serialises NFS servers across test threads, each with its own runtime"
)]
async fn nfs_rig(scratch: &Scratch) -> Option<Rig> {
    if let Some(why) = Ganesha::unavailable() {
        eprintln!("skipped: {why}");
        return None;
    }
    let serial = NFS_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let server = Ganesha::start(scratch);
    let local = server.export.join("disk");
    std::fs::File::create(&local)
        .unwrap()
        .set_len(DISK_SIZE)
        .unwrap();
    let mut target = NfsTarget::new("127.0.0.1", server.export.to_str().unwrap(), "disk");
    target.ports = Some((server.mount_port, server.nfs_port));
    let mut storage = NfsStorage::new();
    let disk = storage
        .open(&target, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!storage.disk(disk).unwrap().read_only);
    Some(Rig {
        storage: Box::new(storage),
        disk,
        local,
        ss: 512,
        fixed: false,
        next_id: 0,
        _keep: vec![Box::new(server), Box::new(serial)],
    })
}

/// Every case, for one rig maker.
macro_rules! conformance {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            fn with_rig(label: &str, case: impl AsyncFnOnce(&mut Rig, &Scratch)) {
                let scratch = Scratch::new(label);
                let rt = runtime();
                rt.block_on(async {
                    let Some(mut rig) = ($make)(&scratch).await else {
                        return;
                    };
                    case(&mut rig, &scratch).await;
                });
            }

            #[test]
            fn writes_are_read_back_and_seen_by_other_readers() {
                with_rig("conf-rw", async |rig, _| writes_are_read_back(rig).await);
            }

            #[test]
            fn a_batch_runs_concurrently_and_each_io_completes_once() {
                with_rig("conf-batch", async |rig, _| {
                    a_batch_completes_once(rig).await
                });
            }

            #[test]
            fn misaligned_and_out_of_range_ios_never_reach_the_disk() {
                with_rig("conf-align", async |rig, _| {
                    misaligned_are_refused(rig).await
                });
            }

            #[test]
            fn a_deadline_passed_is_a_timeout_and_the_late_completion_is_dropped() {
                with_rig("conf-late", async |rig, _| late_completions(rig).await);
            }

            #[test]
            fn reads_past_the_end_are_short_or_refused() {
                with_rig("conf-short", async |rig, _| past_the_end(rig).await);
            }

            #[test]
            fn injected_faults_delay_fail_hang_and_corrupt() {
                with_rig("conf-faults", async |rig, _| faults(rig).await);
            }

            #[test]
            fn areas_written_through_the_backend_are_dumped_alike_by_c_sanlock() {
                with_rig("conf-dump", async |rig, scratch| {
                    dumped_by_c(rig, scratch).await
                });
            }
        }
    };
}

conformance!(file, file_rig);
conformance!(uring_512, async |s: &Scratch| uring_rig(s, 512).await);
conformance!(uring_4096, async |s: &Scratch| uring_rig(s, 4096).await);
conformance!(nfs, nfs_rig);

async fn writes_are_read_back(rig: &mut Rig) {
    let ss = rig.ss;
    let spots = [0u64, 3 * ss as u64, 1 << 20, DISK_SIZE - 2 * ss as u64];
    for (i, &off) in spots.iter().enumerate() {
        let data = pattern(i as u8 + 1, 2 * ss);
        let w = rig.write(off, data.clone());
        assert_eq!(rig.run(vec![w]).await, vec![Ok(Vec::new())]);
        let r = rig.read(off, 2 * ss);
        assert_eq!(rig.run(vec![r]).await, vec![Ok(data.clone())], "at {off}");
        // Written through to the disk: another reader sees it.
        assert_eq!(common::read_at(&rig.local, off, 2 * ss), data);
    }
    // A later write to the same sectors wins.
    let w = rig.write(0, vec![0xA5; ss]);
    rig.run(vec![w]).await;
    let r = rig.read(0, ss);
    assert_eq!(rig.run(vec![r]).await, vec![Ok(vec![0xA5; ss])]);
}

async fn a_batch_completes_once(rig: &mut Rig) {
    let ss = rig.ss;
    let writes: Vec<Io> = (0..64u64)
        .map(|i| rig.write(i * ss as u64, pattern(i as u8, ss)))
        .collect();
    let results = rig.run(writes).await;
    assert!(results.iter().all(|r| r == &Ok(Vec::new())));
    let reads: Vec<Io> = (0..64u64).map(|i| rig.read(i * ss as u64, ss)).collect();
    let results = rig.run(reads).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r, Ok(pattern(i as u8, ss)), "sector {i}");
    }
    // A whole 1 MiB lease area read, as a renewal does.
    let r = rig.read(0, 1 << 20);
    let got = rig.run(vec![r]).await.remove(0).unwrap();
    assert_eq!(&got[..ss], &pattern(0, ss)[..]);
    assert_eq!(rig.storage.stats().in_flight, 0);
    // Nothing in flight: completions() returns at once.
    assert!(rig.storage.completions().await.is_empty());
}

async fn misaligned_are_refused(rig: &mut Rig) {
    let ss = rig.ss;
    let before = common::read_at(&rig.local, 0, 4 * ss);
    let ios = vec![
        rig.write(ss as u64 / 2, vec![1; ss]),
        rig.write(0, vec![1; 100]),
        rig.read(0, 0),
        rig.read(7, ss),
    ];
    let results = rig.run(ios).await;
    assert!(
        results.iter().all(|r| *r == Err(IoError::Failed(EINVAL))),
        "{results:?}"
    );
    assert_eq!(
        common::read_at(&rig.local, 0, 4 * ss),
        before,
        "nothing written"
    );
    let mut bad = rig.read(0, ss);
    bad.disk = DiskId(99);
    assert_eq!(rig.run(vec![bad]).await, vec![Err(IoError::Failed(EINVAL))]);
    // A duplicate id while the first is in flight is refused; the first still completes.
    let a = rig.read(0, ss);
    let b = Io { ..a.clone() };
    rig.storage.submit(vec![a, b]);
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(rig.storage.completions().await);
    }
    assert!(got.iter().any(|c| c.result == Err(IoError::Failed(EINVAL))));
    assert!(got.iter().any(|c| c.result.is_ok()));
}

async fn late_completions(rig: &mut Rig) {
    // A deadline that has already passed: reported timed out at once (a backend may not even
    // start it).
    let mut io = rig.read(0, 1 << 20);
    io.deadline = clock::now();
    let started = std::time::Instant::now();
    assert_eq!(rig.run(vec![io]).await, vec![Err(IoError::TimedOut)]);
    assert!(started.elapsed() < Duration::from_millis(200));
    // A deadline that passes while the kernel (or server) works on a 1 MiB read: reported
    // timed out at the deadline; the real completion comes later and is counted, not
    // delivered, and the buffer is held until then. Retried when the read beat its deadline,
    // or when the backend, busy, gave it up before starting it (nothing comes late then).
    let mut seen_late = false;
    for _ in 0..50 {
        let late_before = rig.storage.stats().late;
        let mut io = rig.read(0, 1 << 20);
        io.deadline = clock::now() + Duration::from_micros(300);
        match rig.run(vec![io]).await.remove(0) {
            Err(IoError::TimedOut) => {}
            other => {
                assert!(other.is_ok(), "{other:?}");
                continue;
            }
        }
        let t0 = std::time::Instant::now();
        while rig.storage.stats().abandoned_buffers > 0 && t0.elapsed() < Duration::from_secs(10) {
            let r = rig.read(0, rig.ss);
            assert!(rig.run(vec![r]).await[0].is_ok());
        }
        if rig.storage.stats().late > late_before {
            seen_late = true;
            break;
        }
    }
    let stats = rig.storage.stats();
    assert!(seen_late, "no late completion in 50 tries: {stats:?}");
    assert_eq!(stats.in_flight, 0, "{stats:?}");
    assert!(stats.timed_out >= 2, "{stats:?}");
    // Once the kernel or server has answered, no buffer is held for it any more.
    assert_eq!(stats.abandoned_buffers, 0, "{stats:?}");
}

async fn past_the_end(rig: &mut Rig) {
    let ss = rig.ss;
    let at_end = rig.read(DISK_SIZE, ss);
    let straddling = rig.read(DISK_SIZE - ss as u64, 2 * ss);
    let far = rig.read(u64::MAX - ss as u64 + 1, ss);
    let results = rig.run(vec![at_end, straddling, far]).await;
    if rig.fixed {
        // A block device has a size: refused before the device sees them.
        assert!(
            results.iter().all(|r| *r == Err(IoError::Failed(ENOSPC))),
            "{results:?}"
        );
    } else {
        // A file is shorter than asked: a short read (sanlock: -EMSGSIZE), or EINVAL from the
        // kernel for an offset no file can have.
        assert_eq!(results[0], Err(IoError::Short));
        assert_eq!(results[1], Err(IoError::Short));
        assert!(results[2].is_err(), "{:?}", results[2]);
    }
}

async fn faults(rig: &mut Rig) {
    let ss = rig.ss as u64;
    let disk = rig.disk;
    let storage = std::mem::replace(&mut rig.storage, Box::new(FileStorage::new()));
    let mut faulty = Faulty::new(storage);
    faulty.set_faults(vec![
        Fault::new(disk, 0..ss, FaultKind::Hang),
        Fault::new(disk, ss..2 * ss, FaultKind::Error(5)),
        Fault::new(
            disk,
            2 * ss..3 * ss,
            FaultKind::Delay(Duration::from_millis(150)),
        ),
        Fault::new(disk, 3 * ss..4 * ss, FaultKind::Corrupt),
        Fault::new(
            disk,
            4 * ss..5 * ss,
            FaultKind::Delay(Duration::from_secs(5)),
        ),
    ]);
    rig.storage = Box::new(faulty);
    let t = |ms| Duration::from_millis(ms);
    let start = clock::now();
    let hang = rig.io(0, IoOp::Read { len: ss as usize }, t(300));
    let err = rig.io(
        ss,
        IoOp::Write {
            data: vec![1; ss as usize],
        },
        t(300),
    );
    let slow = rig.io(2 * ss, IoOp::Read { len: ss as usize }, t(1000));
    let bad = rig.io(
        3 * ss,
        IoOp::Read {
            len: 2 * ss as usize,
        },
        t(1000),
    );
    let too_slow = rig.io(4 * ss, IoOp::Read { len: ss as usize }, t(400));
    let (hang_id, slow_id, too_slow_id) = (hang.id, slow.id, too_slow.id);
    rig.storage.submit(vec![hang, err, slow, bad, too_slow]);
    let mut got: Vec<(Completed, Duration)> = Vec::new();
    while got.len() < 5 {
        for c in rig.storage.completions().await {
            got.push((c, clock::now().saturating_since(start)));
        }
    }
    let find = |id| got.iter().find(|(c, _)| c.id == id).unwrap().clone();
    let (c, at) = find(hang_id);
    assert_eq!(c.result, Err(IoError::TimedOut));
    assert!(at >= t(300) && at < t(700), "hung I/O reported at {at:?}");
    assert_eq!(
        got[0].0.result,
        Err(IoError::Failed(5)),
        "the error comes first, at once"
    );
    let (c, at) = find(slow_id);
    assert!(c.result.is_ok());
    assert!(at >= t(150) && at < t(900), "delayed I/O at {at:?}");
    let (c, at) = find(too_slow_id);
    assert_eq!(c.result, Err(IoError::TimedOut));
    assert!(at >= t(400) && at < t(900), "over-delayed I/O at {at:?}");
    let (c, _) = got
        .iter()
        .find(|(c, _)| c.id.0 == slow_id.0 + 1)
        .unwrap()
        .clone();
    let bytes = c.result.unwrap();
    assert_eq!(
        bytes[0], 0xFF,
        "the first byte of the corrupt sector is inverted"
    );
    assert_eq!(
        bytes[ss as usize], 0,
        "the sector after the range is untouched"
    );
    assert_eq!(
        common::read_at(&rig.local, ss, ss as usize),
        vec![0; ss as usize],
        "no write"
    );
}

async fn dumped_by_c(rig: &mut Rig, scratch: &Scratch) {
    let Some(c) = common::c_sanlock() else {
        eprintln!("skipped: sanlock 3.8.5 is not installed (apt-get install sanlock)");
        return;
    };
    // C sanlock makes the areas in a plain file; we copy them through the backend.
    let reference = scratch.path("reference");
    common::create_file(&reference, 3 << 20);
    let z = rig.ss.to_string();
    let ls = format!("LS:0:{}:0", reference.display());
    let res = format!("LS:R1:{}:1048576", reference.display());
    for args in [
        vec!["direct", "init", "-Z", &z, "-A", "1M", "-s", &ls],
        vec!["direct", "init", "-Z", &z, "-A", "1M", "-r", &res],
    ] {
        let out = common::run(&c, &args, None);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
    }
    let area = common::read_at(&reference, 0, 2 << 20);
    let chunk = 256 << 10;
    let writes: Vec<Io> = (0..area.len() / chunk)
        .map(|i| {
            rig.write(
                (i * chunk) as u64,
                area[i * chunk..(i + 1) * chunk].to_vec(),
            )
        })
        .collect();
    assert!(rig.run(writes).await.iter().all(Result::is_ok));
    let dump = |path: &Path| {
        let out = common::run(
            &c,
            &[
                "direct",
                "dump",
                path.to_str().unwrap(),
                "-Z",
                &z,
                "-A",
                "1M",
            ],
            None,
        );
        assert_eq!(out.code, 0, "{out:?}");
        out.stdout
    };
    let theirs = dump(&reference);
    assert!(theirs.contains("LS") && theirs.contains("R1"), "{theirs}");
    let path = rig.local.clone();
    assert_eq!(dump(&path), theirs);
    // And back: what C wrote is what the backend reads.
    let r = rig.read(1 << 20, rig.ss);
    assert_eq!(
        rig.run(vec![r]).await.remove(0).unwrap(),
        area[1 << 20..(1 << 20) + rig.ss]
    );
}

/// A read returns `content`, and a write is refused with EROFS before it reaches the disk.
async fn reads_but_refuses_writes(storage: &mut dyn Storage, disk: DiskId, content: u8) {
    let deadline = clock::now() + Duration::from_secs(5);
    let read = Io {
        id: IoId(1),
        disk,
        offset: 0,
        op: IoOp::Read { len: 512 },
        deadline,
    };
    let write = Io {
        id: IoId(2),
        op: IoOp::Write { data: vec![0; 512] },
        ..read.clone()
    };
    storage.submit(vec![read, write]);
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(storage.completions().await);
    }
    got.sort_by_key(|c| c.id);
    assert_eq!(got[0].result, Ok(vec![content; 512].into()));
    assert_eq!(got[1].result, Err(IoError::Failed(EROFS)));
}

#[test]
fn a_read_only_file_opens_for_reading_and_refuses_writes() {
    let scratch = Scratch::new("conf-ro");
    let path = scratch.path("ro");
    std::fs::write(&path, vec![7u8; 4096]).unwrap();
    // Root ignores permission bits; an immutable file refuses writes even to root.
    let immutable = std::process::Command::new("chattr")
        .arg("+i")
        .arg(&path)
        .status()
        .is_ok_and(|s| s.success());
    if !immutable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        if rustix::process::geteuid().is_root() {
            eprintln!("skipped: chattr +i failed and root ignores file modes");
            return;
        }
    }
    let rt = runtime();
    let result = std::panic::catch_unwind(|| {
        rt.block_on(async {
            // The same for both backends that open files.
            for uring in [false, true] {
                let p = path.to_str().unwrap();
                let (storage, disk): (Box<dyn Storage>, DiskId) = if uring {
                    let Some(mut s) = uring_storage() else {
                        continue;
                    };
                    let d = s.open(p).unwrap();
                    (Box::new(s), d)
                } else {
                    let mut s = FileStorage::new();
                    let d = s.open(p).unwrap();
                    (Box::new(s), d)
                };
                let mut storage = storage;
                assert!(storage.disk(disk).unwrap().read_only, "uring: {uring}");
                reads_but_refuses_writes(&mut *storage, disk, 7).await;
            }
        });
    });
    if immutable {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&path)
            .status();
    }
    result.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 4096]);
}

#[test]
fn a_read_only_loop_device_opens_for_reading_and_refuses_writes() {
    require_loop_devices!();
    let scratch = Scratch::new("conf-ro-loop");
    let backing = scratch.path("backing");
    std::fs::write(&backing, vec![9u8; 1 << 20]).unwrap();
    let dev = LoopDevice::attach_read_only(&backing, 512);
    runtime().block_on(async {
        let Some(mut storage) = uring_storage() else {
            return;
        };
        let disk = storage.open(dev.device.to_str().unwrap()).unwrap();
        assert!(storage.disk(disk).unwrap().read_only);
        reads_but_refuses_writes(&mut storage, disk, 9).await;
    });
}

#[test]
fn a_hung_nfs_server_fails_ios_at_their_deadline_and_the_caller_stays_responsive() {
    if let Some(why) = Ganesha::unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = NFS_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("nfs-hang");
    let server = Ganesha::start(&scratch);
    std::fs::File::create(server.export.join("disk"))
        .unwrap()
        .set_len(DISK_SIZE)
        .unwrap();
    let mut target = NfsTarget::new("127.0.0.1", server.export.to_str().unwrap(), "disk");
    target.ports = Some((server.mount_port, server.nfs_port));
    runtime().block_on(async {
        let mut storage = NfsStorage::new();
        let disk = storage
            .open(&target, Duration::from_secs(10))
            .await
            .unwrap();
        let io = |id, offset, op, ms| Io {
            id: IoId(id),
            disk,
            offset,
            op,
            deadline: clock::now() + Duration::from_millis(ms),
        };
        storage.submit(vec![io(1, 0, IoOp::Write { data: vec![5; 512] }, 5000)]);
        assert_eq!(storage.completions().await[0].result, Ok(Vec::new().into()));

        server.stop();
        // A task that should run every 10 ms, to see that waiting on NFS blocks nothing.
        let ticker = tokio::spawn(async {
            let mut worst = Duration::ZERO;
            let mut last = std::time::Instant::now();
            for _ in 0..200 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                worst = worst.max(last.elapsed());
                last = std::time::Instant::now();
            }
            worst
        });
        let start = clock::now();
        storage.submit(vec![
            io(2, 0, IoOp::Read { len: 1 << 20 }, 1000),
            io(3, 512, IoOp::Write { data: vec![6; 512] }, 1500),
        ]);
        let mut got = Vec::new();
        while got.len() < 2 {
            for c in storage.completions().await {
                got.push((c.id.0, c.result, clock::now().saturating_since(start)));
            }
        }
        got.sort_by_key(|g| g.0);
        for ((id, result, at), due) in got.iter().zip([1000u64, 1500]) {
            let summary = result.as_ref().map(|bytes| bytes.len()).map_err(|e| *e);
            assert_eq!(summary, Err(IoError::TimedOut), "io {id}: Ok = bytes read");
            let due = Duration::from_millis(due);
            assert!(
                *at >= due && *at < due + Duration::from_millis(500),
                "io {id} at {at:?}"
            );
        }
        let worst = ticker.await.unwrap();
        eprintln!(
            "hung server: I/Os reported at {:?}; worst ticker gap {worst:?}",
            got.iter().map(|g| g.2).collect::<Vec<_>>()
        );
        assert!(
            worst < Duration::from_millis(250),
            "the runtime stalled {worst:?}"
        );

        // A new mount against the hung server gives up at its timeout too.
        let t0 = std::time::Instant::now();
        let err = NfsStorage::new()
            .open(&target, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(t0.elapsed() < Duration::from_millis(800), "{err}");
        assert!(err.to_string().contains("no answer within"), "{err}");

        // The server comes back: the next I/O reconnects and works.
        server.resume();
        storage.submit(vec![io(4, 0, IoOp::Read { len: 512 }, 10_000)]);
        assert_eq!(
            storage.completions().await[0].result,
            Ok(vec![5; 512].into())
        );
        assert_eq!(storage.stats().timed_out, 2);
    });
}

#[test]
fn a_read_only_nfs_export_opens_for_reading_and_refuses_writes() {
    if let Some(why) = Ganesha::unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = NFS_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("nfs-ro");
    std::fs::create_dir_all(scratch.path("export")).unwrap();
    std::fs::write(scratch.path("export").join("disk"), vec![3u8; 4096]).unwrap();
    let server = Ganesha::start_read_only(&scratch);
    let mut target = NfsTarget::new("127.0.0.1", server.export.to_str().unwrap(), "disk");
    target.ports = Some((server.mount_port, server.nfs_port));
    runtime().block_on(async {
        let mut storage = NfsStorage::new();
        let disk = storage
            .open(&target, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(storage.disk(disk).unwrap().read_only);
        reads_but_refuses_writes(&mut storage, disk, 3).await;
    });
    assert_eq!(
        std::fs::read(server.export.join("disk")).unwrap(),
        vec![3u8; 4096]
    );
}
