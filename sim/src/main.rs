//! `sanlock-sim`: the simulator's command line.
//!
//! ```text
//! sanlock-sim run   --hosts 8 --resources 4 --clients 4 --seed S --faults all --seconds 3600 [--timeline]
//! sanlock-sim sweep --hosts 8 --resources 4 --clients 4 --seeds 1..100 --seconds 600 [--faults all]
//! sanlock-sim check --hosts 2 --resources 1 [--scenario NAME] [--max-states N]
//! sanlock-sim bench
//! ```

use std::process::ExitCode;
use std::time::Instant;

use sanlock_sim::check::{self, Scenario};
use sanlock_sim::{FaultSet, Outcome, SimConfig, World};

const USAGE: &str = "usage:
  sanlock-sim run   [--hosts N] [--resources N] [--clients N] [--seed S] [--faults all|none|LIST] [--seconds N] [--lease-disks N] [--no-liveness] [--late-joins] [--messages] [--timeline]
  sanlock-sim sweep [--hosts N] [--resources N] [--clients N] [--seeds A..B] [--faults ...] [--seconds N] [--late-joins] [--messages]
  sanlock-sim check [--hosts 2|3] [--resources 1] [--scenario NAME] [--horizon SECONDS] [--max-states N]
  sanlock-sim bench
clients: processes per host that register with its daemon, acquire, convert, release, and die
faults: all, none, or a comma-separated list of errors,hangs,corruption,pauses,crashes,disk-loss,drift
scenarios: see `sanlock-sim check --scenario help`";

struct Args(Vec<String>);

impl Args {
    fn take(&mut self, flag: &str) -> Option<String> {
        let i = self.0.iter().position(|a| a == flag)?;
        self.0.remove(i);
        if i < self.0.len() {
            Some(self.0.remove(i))
        } else {
            None
        }
    }

    fn flag(&mut self, flag: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|a| a != flag);
        before != self.0.len()
    }

    fn number<T: std::str::FromStr>(&mut self, flag: &str, default: T) -> Result<T, String> {
        match self.take(flag) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{flag} wants a number, not {v:?}")),
        }
    }

    fn done(self) -> Result<(), String> {
        match self.0.first() {
            None => Ok(()),
            Some(extra) => Err(format!("unexpected argument {extra:?}")),
        }
    }
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() || argv[0] == "-h" || argv[0] == "--help" {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let command = argv.remove(0);
    let args = Args(argv);
    let result = match command.as_str() {
        "run" => run(args),
        "sweep" => sweep(args),
        "check" => check(args),
        "bench" => bench(args),
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sanlock-sim: {e}");
            ExitCode::from(2)
        }
    }
}

fn config(args: &mut Args, seed: u64) -> Result<SimConfig, String> {
    let hosts = args.number("--hosts", 8)?;
    let resources = args.number("--resources", 4)?;
    let seconds = args.number("--seconds", 3600)?;
    let clients = args.number("--clients", 4)?;
    let mut cfg = SimConfig::new(hosts, resources, seed, seconds);
    cfg.clients = clients;
    cfg.lease_disks = args.number("--lease-disks", 1)?;
    if let Some(f) = args.take("--faults") {
        cfg.faults = FaultSet::parse(&f)?;
    }
    cfg.liveness = !args.flag("--no-liveness");
    cfg.late_joins = args.flag("--late-joins");
    cfg.messages = args.flag("--messages");
    cfg.validate()?;
    Ok(cfg)
}

fn run(mut args: Args) -> Result<bool, String> {
    let seed = args.number("--seed", 1)?;
    let mut cfg = config(&mut args, seed)?;
    let timeline = args.flag("--timeline");
    cfg.keep_timeline = timeline;
    args.done()?;
    let started = Instant::now();
    let (outcome, log) = World::new(cfg.clone()).run();
    let wall = started.elapsed();
    print_summary(&cfg, &outcome, wall.as_secs_f64());
    if timeline {
        println!("{}", log.render(usize::MAX, &[]));
    }
    match &outcome.violation {
        None => Ok(true),
        Some((v, hosts)) => {
            println!("{}", log.render(60, hosts));
            println!("VIOLATION (seed {}): {v}", cfg.seed);
            println!(
                "replay: sanlock-sim run --hosts {} --resources {} --clients {} --seed {} --faults {} --seconds {}{}{}{}",
                cfg.hosts,
                cfg.resources,
                cfg.clients,
                cfg.seed,
                cfg.faults,
                cfg.seconds,
                if cfg.lease_disks > 1 {
                    format!(" --lease-disks {}", cfg.lease_disks)
                } else {
                    String::new()
                },
                if cfg.late_joins { " --late-joins" } else { "" },
                if cfg.messages { " --messages" } else { "" }
            );
            Ok(false)
        }
    }
}

fn print_summary(cfg: &SimConfig, o: &Outcome, wall: f64) {
    let s = &o.stats;
    let p = &o.params;
    println!(
        "seed {} hosts {} resources {} faults {} | io_timeout {}s (lockspace init {}s) kill_grace {}s latency<={}ms drift<={}ppm{}",
        cfg.seed,
        cfg.hosts,
        cfg.resources,
        cfg.faults,
        p.io_timeout_s,
        p.lockspace_io_timeout_s,
        p.kill_grace_s,
        p.latency.as_millis(),
        p.drift_ppm,
        if p.late_joiner { ", the upper half joins late" } else { "" }
    );
    println!(
        "simulated {:.0}s in {:.2}s wall: {} events, {} I/Os ({} reads, {} writes), {:.1} MiB read",
        o.simulated.as_secs_f64(),
        wall,
        s.events,
        s.reads + s.writes,
        s.reads,
        s.writes,
        s.bytes_read as f64 / (1 << 20) as f64
    );
    println!(
        "acquisitions {} ({} EX, {} SH), refused {}, converts {}, releases {}",
        s.acquired_ex + s.acquired_sh,
        s.acquired_ex,
        s.acquired_sh,
        s.refused,
        s.converted,
        s.released
    );
    println!(
        "faults injected {}: {} I/O errors, {} hung I/Os, {} corrupted reads, {} pauses, {} crashes, {} disk losses",
        s.faults(),
        s.io_errors,
        s.hangs,
        s.corruptions,
        s.pauses,
        s.crashes,
        s.disk_losses
    );
    println!(
        "clients: {} per host, {} client deaths, {} orphans; recovery: {} lockspace failures, \
         {} processes stopped by signal, {} watchdog resets",
        cfg.clients, s.client_deaths, s.orphans, s.lockspace_failures, s.killed, s.resets
    );
    if cfg.messages {
        let m = s.messages;
        println!(
            "messages {}: {} acked, {} no ack support, {} target dead, {} timed out; fences {}, {} done",
            m[0], m[1], m[2], m[3], m[4], s.fences[0], s.fences[1]
        );
    }
    println!(
        "invariant checks {}; liveness: {} resources checked, {} skipped; digest {:016x}; {}",
        o.checks,
        s.liveness_checked,
        s.liveness_skipped,
        o.digest,
        if o.violation.is_some() {
            "VIOLATION"
        } else {
            "ok"
        }
    );
}

fn sweep(mut args: Args) -> Result<bool, String> {
    let range = args.take("--seeds").unwrap_or_else(|| "1..20".into());
    let (a, b) = range
        .split_once("..")
        .ok_or_else(|| format!("--seeds wants A..B, not {range:?}"))?;
    let (a, b): (u64, u64) = (
        a.parse().map_err(|_| format!("bad seed range {range:?}"))?,
        b.parse().map_err(|_| format!("bad seed range {range:?}"))?,
    );
    let cfg = config(&mut args, a)?;
    args.done()?;
    let started = Instant::now();
    let (mut events, mut ios, mut acquisitions, mut faults, mut checks) = (0, 0, 0, 0, 0);
    for seed in a..b {
        let cfg = SimConfig {
            seed,
            ..cfg.clone()
        };
        let (o, log) = World::new(cfg.clone()).run();
        events += o.stats.events;
        ios += o.stats.reads + o.stats.writes;
        acquisitions += o.stats.acquired_ex + o.stats.acquired_sh;
        faults += o.stats.faults();
        checks += o.checks;
        if let Some((v, hosts)) = &o.violation {
            print_summary(&cfg, &o, 0.0);
            println!("{}", log.render(60, hosts));
            println!("VIOLATION (seed {seed}): {v}");
            return Ok(false);
        }
    }
    println!(
        "{} seeds ({range}) of {} hosts x {} resources x {}s, faults {}: ok; {events} events, \
         {ios} I/Os, {acquisitions} acquisitions, {faults} faults, {checks} invariant checks in {:.1}s",
        b - a,
        cfg.hosts,
        cfg.resources,
        cfg.seconds,
        cfg.faults,
        started.elapsed().as_secs_f64()
    );
    Ok(true)
}

fn check(mut args: Args) -> Result<bool, String> {
    let hosts = args.number("--hosts", 2)?;
    let resources = args.number("--resources", 1)?;
    let max_states = args.number("--max-states", 5_000_000)?;
    let scenario = args.take("--scenario").unwrap_or_else(|| "basic".into());
    let horizon = match args.take("--horizon") {
        None => None,
        Some(h) => Some(
            h.parse()
                .map_err(|_| format!("--horizon wants seconds, not {h:?}"))?,
        ),
    };
    args.done()?;
    if scenario == "help" {
        for s in Scenario::ALL {
            println!("{:<16} {}", s.name(), s.describe());
        }
        return Ok(true);
    }
    let mut scenario = Scenario::from_name(&scenario)
        .ok_or_else(|| format!("unknown scenario {scenario:?} (try --scenario help)"))?;
    if let Some(h) = horizon {
        scenario.horizon_s = h;
    }
    if resources != 1 {
        return Err("the exhaustive checker models exactly 1 resource".into());
    }
    if !(2..=3).contains(&hosts) {
        return Err("the exhaustive checker models 2 or 3 hosts".into());
    }
    let model = check::Model::new(hosts, scenario);
    let report = check::explore(&model, max_states);
    println!("{report}");
    Ok(report.counterexample.is_none() && report.complete)
}

fn bench(args: Args) -> Result<bool, String> {
    args.done()?;
    let started = Instant::now();
    let mut ios = 0;
    let mut simulated = 0.0;
    for seed in 1..=4 {
        let cfg = SimConfig::new(8, 4, seed, 3600);
        let (o, _) = World::new(cfg).run();
        ios += o.stats.reads + o.stats.writes;
        simulated += o.simulated.as_secs_f64();
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "random simulator: 4 runs of 8 hosts x 4 resources x 3600 s, all faults: {ios} simulated I/Os \
         in {wall:.2}s = {:.0} I/Os per second ({:.0} simulated seconds per second)",
        ios as f64 / wall,
        simulated / wall
    );
    let started = Instant::now();
    let mut cfg = SimConfig::new(2000, 4, 1, 120);
    cfg.liveness = false;
    let (o, _) = World::new(cfg).run();
    let wall = started.elapsed().as_secs_f64();
    println!(
        "random simulator: 2000 hosts x 4 resources x 120 s (no liveness phase): {} I/Os in \
         {wall:.2}s = {:.0} I/Os per second",
        o.stats.reads + o.stats.writes,
        (o.stats.reads + o.stats.writes) as f64 / wall
    );
    let mut ok = true;
    for name in ["basic", "watchdog", "faults"] {
        let scenario = Scenario::from_name(name).expect("a scenario");
        let report = check::explore(&check::Model::new(2, scenario), 50_000_000);
        println!(
            "exhaustive checker (2 hosts, {name}): {} states in {:.2}s = {:.0} states per second",
            report.states,
            report.seconds,
            report.states as f64 / report.seconds
        );
        ok &= report.counterexample.is_none();
    }
    Ok(ok)
}
