//! `sanlock-bench`: our daemon and sanlock 3.8.5's side by side on the same disk, with the same
//! client, rounds interleaved, and the table of figures with their ratios (docs/PERFORMANCE.md).
//!
//! ```text
//! sanlock-bench [--quick] [--rounds R] [--held N,N,...] [--ours PATH] [--c PATH] [--dir DIR]
//! ```
//! Defaults: the `sanlock` beside this program, `/usr/sbin/sanlock` when present (else ours
//! alone), `/var/tmp/sanlock-bench` (O_DIRECT needs a real file system, not tmpfs), 3 rounds.

mod daemons;
mod procfs;
mod work;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use daemons::{write_resources, Daemon};

/// How much of everything.
struct Plan {
    rounds: usize,
    ops: usize,
    length: Duration,
    held: Vec<usize>,
    /// Held leases at which the idle lockspaces are measured (with 10 lockspaces joined).
    idle_held: usize,
    idle: Duration,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            rounds: 3,
            ops: 300,
            length: Duration::from_secs(3),
            held: vec![0, 300, 2000, 10_000],
            idle_held: 2000,
            idle: Duration::from_secs(30),
        }
    }

    fn quick() -> Plan {
        Plan {
            rounds: 1,
            ops: 100,
            length: Duration::from_secs(2),
            held: vec![0, 300, 1000],
            idle_held: 1000,
            idle: Duration::from_secs(10),
        }
    }
}

type Figures = BTreeMap<String, f64>;

/// How long the disk is left alone after the lease files are written, before any timing.
const SETTLE: Duration = Duration::from_secs(5);

fn main() {
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("sanlock-bench: {e}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<(), String> {
    let mut plan = Plan::full();
    let mut ours = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("sanlock");
    let mut c = Some(PathBuf::from("/usr/sbin/sanlock")).filter(|p| p.exists());
    let mut dir = PathBuf::from("/var/tmp/sanlock-bench");
    let mut rounds = None;
    let mut held = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => plan = Plan::quick(),
            "--rounds" => rounds = Some(value()?.parse().map_err(|e| format!("--rounds: {e}"))?),
            "--ours" => ours = PathBuf::from(value()?),
            "--c" => c = Some(PathBuf::from(value()?)),
            "--no-c" => c = None,
            "--dir" => dir = PathBuf::from(value()?),
            "--held" => held = Some(parse_held(&value()?)?),
            _ => {
                return Err(format!(
                    "unknown argument {arg:?} (see docs/PERFORMANCE.md)"
                ))
            }
        }
    }
    if let Some(r) = rounds {
        plan.rounds = r;
    }
    if let Some(held) = held {
        // The idle figures are taken at the largest count asked for but one (or the only one).
        plan.idle_held = held[held.len().saturating_sub(2)];
        plan.held = held;
    }
    raise_fd_limit();
    let mut daemons: Vec<(&'static str, PathBuf)> = vec![("ours", ours)];
    if let Some(c) = c {
        daemons.push(("C 3.8.5", c));
    } else {
        println!("no C sanlock (/usr/sbin/sanlock): ours alone");
    }
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); daemons.len()];
    let t0 = Instant::now();
    for round in 0..plan.rounds {
        // Interleaved, and each round starts with the other daemon.
        let mut order: Vec<usize> = (0..daemons.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (label, binary) = &daemons[i];
            eprintln!(
                "round {}/{}: {label} ({:.0} s so far)",
                round + 1,
                plan.rounds,
                t0.elapsed().as_secs_f64()
            );
            let figures = measure(&plan, label, binary, &dir.join(format!("d{i}")))?;
            results[i].push(figures);
        }
    }
    print_table(&plan, &daemons, &results);
    Ok(())
}

/// `--held 0,2000,10000`: the counts of held leases to measure at, ascending.
fn parse_held(list: &str) -> Result<Vec<usize>, String> {
    let held = list
        .split(',')
        .map(|n| {
            n.trim()
                .parse::<usize>()
                .map_err(|e| format!("--held {list:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if held.is_empty() || held.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("--held {list:?}: counts must be ascending"));
    }
    Ok(held)
}

/// Every figure of one daemon, fresh.
fn measure(plan: &Plan, label: &'static str, binary: &Path, dir: &Path) -> Result<Figures, String> {
    let daemon = Daemon::start(label, binary, dir)?;
    let pid = daemon.pid();
    let mut f = Figures::new();
    daemon.join("LS")?;
    let max_held = plan.held.iter().copied().max().unwrap_or(0);
    // The measured leases are written whole; the held ones sparse.
    let measured = 1 + 8 + 32 + 1;
    let leases = daemon.file("leases");
    let all = write_resources(&leases, "LS", "R", measured + max_held, measured)?;
    let (single, rest) = all.split_at(1);
    let (eight, rest) = rest.split_at(8);
    let (parallel, rest) = rest.split_at(32);
    let (probe, held) = rest.split_at(1);
    // Writing 10,000 lease areas and syncing them keeps the disk busy for a while after (our
    // first timed run then read 1.9 MiB per acquire+release: the lockspace's renewals lagged
    // and the read bound lapsed). Timing starts two renewal intervals later, for both daemons,
    // as leases are made long before they are used.
    std::thread::sleep(SETTLE);

    let before = procfs::read(pid)?;
    let times = work::acquire_release(&daemon, single, plan.ops)?;
    let after = procfs::read(pid)?;
    f.insert("latency 1".into(), ms(median(&times)));
    f.insert("latency 1 p99".into(), ms(percentile(&times, 99)));
    f.insert(
        "KiB read".into(),
        (after.read_bytes - before.read_bytes) as f64 / 1024.0 / plan.ops as f64,
    );
    let times = work::acquire_release(&daemon, eight, plan.ops / 3)?;
    f.insert("latency 8".into(), ms(median(&times)));
    for clients in [1, 8, 32] {
        let rate = work::throughput(&daemon, &parallel[..clients], plan.length)?;
        f.insert(format!("ops/s {clients}"), rate);
    }
    f.insert("flood".into(), work::flood(&daemon, 64, plan.length)?);

    let mut holding = 0;
    for &count in &plan.held {
        work::hold(&daemon, &held[holding..count])?;
        holding = count;
        let times = work::acquire_release(&daemon, probe, plan.ops / 3)?;
        f.insert(format!("held {count} latency"), ms(median(&times)));
        let times = work::releases(&daemon, probe, plan.ops / 3)?;
        f.insert(format!("held {count} release"), ms(median(&times)));
        f.insert(
            format!("held {count} rss"),
            procfs::read(pid)?.rss as f64 / (1 << 20) as f64,
        );
        if count == plan.idle_held {
            let (cpu, reads) = idle(plan, &daemon, pid)?;
            f.insert("idle cpu".into(), cpu);
            f.insert("idle reads".into(), reads);
        }
    }
    Ok(f)
}

/// Joins 9 more lockspaces, then watches the daemon do nothing but renew: CPU % and MiB read
/// per minute.
fn idle(plan: &Plan, daemon: &Daemon, pid: u32) -> Result<(f64, f64), String> {
    std::thread::scope(|scope| {
        let joins: Vec<_> = (1..10)
            .map(|i| scope.spawn(move || daemon.join(&format!("LS{i}")).map(|_| ())))
            .collect();
        joins
            .into_iter()
            .map(|j| j.join().unwrap_or_else(|_| Err("a join panicked".into())))
            .collect::<Result<Vec<()>, String>>()
    })?;
    let before = procfs::read(pid)?;
    let threads_before = procfs::thread_cpu(pid)?;
    let t0 = Instant::now();
    std::thread::sleep(plan.idle);
    let threads_after = procfs::thread_cpu(pid)?;
    let after = procfs::read(pid)?;
    let secs = t0.elapsed().as_secs_f64();
    // Per-thread nanoseconds when no thread exited meanwhile, else the process's ticks.
    let spent =
        procfs::cpu_between(&threads_before, &threads_after).unwrap_or(after.cpu - before.cpu);
    let cpu = spent.as_secs_f64() / secs * 100.0;
    let reads = (after.read_bytes - before.read_bytes) as f64 / (1 << 20) as f64 / secs * 60.0;
    Ok((cpu, reads))
}

/// The table's rows, in order: the key of each figure, and its label with the unit.
fn rows(plan: &Plan) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = [
        ("latency 1", "acquire+release, 1 lease, median (ms)"),
        ("latency 1 p99", "acquire+release, 1 lease, p99 (ms)"),
        (
            "latency 8",
            "acquire+release, 8 leases in one request, median (ms)",
        ),
        ("ops/s 1", "acquire+release per second, 1 client (/s)"),
        ("ops/s 8", "acquire+release per second, 8 clients (/s)"),
        ("ops/s 32", "acquire+release per second, 32 clients (/s)"),
        ("KiB read", "read per acquire+release (/proc/PID/io) (KiB)"),
    ]
    .map(|(key, label)| (key.to_string(), label.to_string()))
    .into();
    for &h in &plan.held {
        rows.push((
            format!("held {h} latency"),
            format!("acquire+release with {h} leases held, median (ms)"),
        ));
        rows.push((
            format!("held {h} release"),
            format!("release with {h} leases held, median (ms)"),
        ));
        rows.push((
            format!("held {h} rss"),
            format!("daemon RSS with {h} leases held (MiB)"),
        ));
    }
    let idle = format!("idle CPU, 10 lockspaces + {} held (%)", plan.idle_held);
    rows.push(("idle cpu".into(), idle));
    for (key, label) in [
        ("idle reads", "lockspace reads while idle (MiB/min)"),
        ("flood", "VERSION replies per second, 64 threads (/s)"),
    ] {
        rows.push((key.into(), label.into()));
    }
    rows
}

fn print_table(plan: &Plan, daemons: &[(&'static str, PathBuf)], results: &[Vec<Figures>]) {
    println!(
        "\n{} round(s), median of rounds; {}",
        plan.rounds,
        daemons
            .iter()
            .map(|(l, p)| format!("{l} = {}", p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut header = format!("| {:<58} |", "figure");
    for (label, _) in daemons {
        header += &format!(" {label:>10} |");
    }
    if daemons.len() == 2 {
        header += " ours/C |";
    }
    println!("{header}");
    println!(
        "|{}|",
        vec!["---"; daemons.len() + 1 + usize::from(daemons.len() == 2)].join("|")
    );
    for (key, label) in rows(plan) {
        let values: Vec<Option<f64>> = results
            .iter()
            .map(|rounds| {
                let mut v: Vec<f64> = rounds.iter().filter_map(|f| f.get(&key).copied()).collect();
                v.sort_by(f64::total_cmp);
                v.get(v.len() / 2).copied()
            })
            .collect();
        let mut line = format!("| {label:<58} |");
        for v in &values {
            line += &match v {
                Some(v) => format!(" {:>10} |", format_value(*v)),
                None => format!(" {:>10} |", "-"),
            };
        }
        if let [Some(a), Some(b)] = values[..] {
            line += &format!(" {:>6.2} |", if b == 0.0 { f64::NAN } else { a / b });
        }
        println!("{line}");
    }
}

fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(times: &[Duration]) -> Duration {
    percentile(times, 50)
}

fn percentile(times: &[Duration], p: usize) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// Thousands of held leases are hundreds of connections: lift the soft limit on open files to
/// the hard one (the daemons inherit it).
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}
