//! Latency and IOPS of the backends next to fio's, in one run, on the same file and loop device:
//! 512-byte O_DIRECT|O_SYNC random writes (a lease write) and 1 MiB O_DIRECT random reads (a
//! renewal's read), one I/O in flight at a time, as the lease algorithms issue them.
//!
//! `cargo bench -p sanlock-backends --bench storage [-- --seconds S --rounds R]`
//!
//! Each configuration runs R rounds of S seconds, interleaved with the others so that drift in
//! the device hits all alike; the median round is printed. The file backend is compared with
//! fio's psync engine (both: one blocking pread/pwrite per I/O), the io_uring backend with fio's
//! io_uring engine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sanlock_backends::file::FileStorage;
use sanlock_backends::uring::UringStorage;
use sanlock_backends::{clock, DiskId, Io, Storage};
use sanlock_core::io::{IoId, IoOp};

const FILE_SIZE: u64 = 64 << 20;
/// 512-byte writes land in the first MiB, as lease writes do.
const WRITE_SPAN: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Workload {
    Write512,
    Read1M,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Workload::Write512 => "512 B write",
            Workload::Read1M => "1 MiB read",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Figures {
    iops: f64,
    mean_us: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let seconds = opt("--seconds", 2);
    let rounds = opt("--rounds", 3) as usize;
    if Command::new("fio").arg("--version").output().is_err() {
        eprintln!("fio is not installed (apt-get install fio)");
        std::process::exit(2);
    }
    let dir = PathBuf::from("/var/tmp/sanlock-rs-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("file");
    make_backing(&file);
    let mut targets = vec![("file", file.clone(), None)];
    let backing = dir.join("loop-backing");
    let loop_dev = if rustix::process::geteuid().is_root() {
        make_backing(&backing);
        let out = Command::new("losetup")
            .args(["--find", "--show", "--direct-io=on", "--sector-size", "512"])
            .arg(&backing)
            .output()
            .unwrap();
        if out.status.success() {
            let dev = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
            targets.push(("loop device", dev.clone(), Some(dev.clone())));
            Some(dev)
        } else {
            eprintln!("no loop device: {}", String::from_utf8_lossy(&out.stderr));
            None
        }
    } else {
        eprintln!("not root: the loop device is skipped");
        None
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secs = Duration::from_secs(seconds);
    println!(
        "queue depth 1, {rounds} rounds of {seconds} s each, median round; fio --direct=1 (--sync=1 for writes)"
    );
    println!(
        "{:<12} {:<12} {:<22} {:>10} {:>12} {:>9}",
        "target", "workload", "engine", "IOPS", "mean lat us", "vs fio"
    );
    // Shortfall of IOPS against fio's same engine: [threads vs psync, io_uring vs io_uring].
    let mut worst = [0.0f64; 2];
    for (label, path, _) in &targets {
        for workload in [Workload::Write512, Workload::Read1M] {
            let mut runs: [Vec<Figures>; 4] = Default::default();
            for _ in 0..rounds {
                runs[0].push(fio(path, workload, "psync", secs));
                runs[1].push(rt.block_on(ours(path, workload, false, secs)));
                runs[2].push(fio(path, workload, "io_uring", secs));
                runs[3].push(rt.block_on(ours(path, workload, true, secs)));
            }
            let m: Vec<Figures> = runs.iter().map(|r| median(r)).collect();
            let names = [
                "fio psync",
                "sanlock-rs threads",
                "fio io_uring",
                "sanlock-rs io_uring",
            ];
            for (i, (name, f)) in names.iter().zip(&m).enumerate() {
                let versus = if i % 2 == 1 {
                    let ratio = f.iops / m[i - 1].iops;
                    worst[i / 2] = worst[i / 2].max(1.0 - ratio);
                    format!("{:+.1}%", (ratio - 1.0) * 100.0)
                } else {
                    String::new()
                };
                println!(
                    "{:<12} {:<12} {:<22} {:>10.0} {:>12.1} {:>9}",
                    label,
                    workload.label(),
                    name,
                    f.iops,
                    f.mean_us,
                    versus
                );
            }
        }
    }
    println!(
        "largest IOPS shortfall: io_uring backend vs fio io_uring {:.1}%; file backend (threads) vs fio psync {:.1}%",
        worst[1] * 100.0,
        worst[0] * 100.0
    );
    if let Some(dev) = loop_dev {
        let _ = Command::new("losetup").arg("-d").arg(&dev).status();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn make_backing(path: &Path) {
    // Written out, not sparse: O_SYNC writes to holes would measure block allocation.
    let status = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "oflag=direct", "status=none"])
        .arg(format!("of={}", path.display()))
        .arg(format!("count={}", FILE_SIZE >> 20))
        .status()
        .unwrap();
    assert!(status.success());
}

fn median(runs: &[Figures]) -> Figures {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.iops.total_cmp(&b.iops));
    sorted[sorted.len() / 2]
}

fn fio(path: &Path, workload: Workload, engine: &str, secs: Duration) -> Figures {
    let mut cmd = Command::new("fio");
    cmd.arg("--name=bench")
        .arg(format!("--filename={}", path.display()))
        .arg("--direct=1")
        .arg(format!("--ioengine={engine}"))
        .arg("--iodepth=1")
        .arg("--time_based")
        .arg(format!("--runtime={}", secs.as_secs()))
        .arg("--output-format=json")
        .arg("--randseed=1");
    let section = match workload {
        Workload::Write512 => {
            cmd.args(["--rw=randwrite", "--bs=512", "--sync=1"])
                .arg(format!("--size={WRITE_SPAN}"));
            "write"
        }
        Workload::Read1M => {
            cmd.args(["--rw=randread", "--bs=1M"])
                .arg(format!("--size={FILE_SIZE}"));
            "read"
        }
    };
    let out = cmd.output().expect("run fio");
    assert!(
        out.status.success(),
        "fio: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("fio's JSON");
    let job = &json["jobs"][0][section];
    Figures {
        iops: job["iops"].as_f64().expect("iops"),
        mean_us: job["lat_ns"]["mean"].as_f64().expect("lat_ns.mean") / 1000.0,
    }
}

async fn ours(path: &Path, workload: Workload, uring: bool, secs: Duration) -> Figures {
    let path = path.to_str().unwrap();
    let (mut storage, disk): (Box<dyn Storage>, DiskId) = if uring {
        let mut s = UringStorage::new().unwrap();
        let d = s.open(path).unwrap();
        (Box::new(s), d)
    } else {
        let mut s = FileStorage::new();
        let d = s.open(path).unwrap();
        (Box::new(s), d)
    };
    // The same kind of offsets fio picks: uniform, aligned to the block size.
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |span: u64, bs: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % (span / bs)) * bs
    };
    let data = vec![0x5Au8; 512];
    let start = Instant::now();
    let mut n = 0u64;
    let mut total = Duration::ZERO;
    while start.elapsed() < secs {
        n += 1;
        let op = match workload {
            Workload::Write512 => (next(WRITE_SPAN, 512), IoOp::Write { data: data.clone() }),
            Workload::Read1M => (next(FILE_SIZE, 1 << 20), IoOp::Read { len: 1 << 20 }),
        };
        let t = Instant::now();
        storage.submit(vec![Io {
            id: IoId(n),
            disk,
            offset: op.0,
            op: op.1,
            deadline: clock::now() + Duration::from_secs(10),
        }]);
        let done = storage.completions().await;
        total += t.elapsed();
        assert!(done.len() == 1 && done[0].result.is_ok(), "{done:?}");
    }
    let elapsed = start.elapsed();
    Figures {
        iops: n as f64 / elapsed.as_secs_f64(),
        mean_us: total.as_secs_f64() * 1e6 / n as f64,
    }
}
