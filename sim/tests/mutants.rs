//! The mutant suite: every deliberate bug of `sanlock_core::mutants` must be caught by the
//! random simulator (within a few seeds) and by the exhaustive checker (in the scenario that
//! exercises it); every deliberate bug of the daemon machine (`sanlock_machine::mutants`) by
//! the random simulator, whose hosts run the daemon's client table. Run with `cargo test -p
//! sanlock-sim --features mutants --test mutants`.

use sanlock_core::mutants::Mutant;
use sanlock_machine::mutants::DaemonMutant;
use sanlock_sim::check::{explore, Model, Scenario};
use sanlock_sim::{SimConfig, World};

/// The checker scenario that exercises each mutant; `None` where the checker's 2-3 hosts
/// cannot reach it (ack-overwrite needs five senders to one receiver: the simulator's bursts;
/// the multi-disk mutants need two disks of three failing within one ballot, or a liveness
/// property, beyond the multi-disk scenario's bounds: the simulator's runs of an hour with a
/// broken disk and random I/O errors, and core's paxos_safety, catch them).
fn scenario(m: Mutant) -> Option<&'static str> {
    Some(match m {
        Mutant::SkipPhase1Read
        | Mutant::NoOwnerDeadWait
        | Mutant::OwnerDeadByLocalClock
        | Mutant::SameBallotForAllHosts
        | Mutant::IgnoreLargerMbal => "basic",
        Mutant::ReleaseWithoutDblockFlag => "reacquire",
        Mutant::IgnoreModeBlocks => "shared",
        Mutant::TrustBadChecksum => "corrupt",
        Mutant::SkipDeltaShortWait => "same-host-id",
        Mutant::LateWatchdogExpire => "watchdog",
        Mutant::StaleReadBound => "late-join",
        Mutant::AckBeforeDelivery => "fence-stuck",
        Mutant::AckOverwrite | Mutant::PhaseByMinority | Mutant::LeaderFromOneDisk => return None,
    })
}

/// Whether the mutant breaks host messages (the simulator then runs with `--messages`).
fn about_messages(m: Mutant) -> bool {
    matches!(m, Mutant::AckBeforeDelivery | Mutant::AckOverwrite)
}

/// The first seed (of 1..=`seeds`) whose run of the configuration `cfg` makes for it finds a
/// violation.
fn first_violation(seeds: u64, cfg: impl Fn(u64) -> SimConfig) -> Option<(u64, String)> {
    (1..=seeds).find_map(|seed| {
        let (o, _) = World::new(cfg(seed)).run();
        o.violation.map(|(v, _)| (seed, v))
    })
}

/// The checker's counterexample in `s`, if any: states explored and the violation.
fn counterexample(s: Scenario) -> Option<(u64, String)> {
    let report = explore(&Model::new(2, s), 5_000_000);
    report
        .counterexample
        .map(|(v, path)| (report.states, format!("{v} (after {} steps)", path.len())))
}

/// The first seed whose simulator run with core mutant `m` finds a violation (the message
/// mutants only, as a quicker test of their own).
#[test]
fn the_random_simulator_catches_the_message_mutants() {
    for m in [Mutant::AckBeforeDelivery, Mutant::AckOverwrite] {
        let sim = simulator_kill(m, 20);
        println!("{:<28} {:?}", m.name(), sim);
        assert!(sim.is_some(), "{} survived 20 seeds", m.name());
    }
}

fn simulator_kill(m: Mutant, seeds: u64) -> Option<(u64, String)> {
    // Stale read bounds matter only while hosts join for the first time: late joiners, for
    // an hour.
    let late = m == Mutant::StaleReadBound;
    let disks = matches!(m, Mutant::PhaseByMinority | Mutant::LeaderFromOneDisk);
    first_violation(seeds, |seed| {
        let mut cfg = SimConfig::new(8, 4, seed, if late { 3600 } else { 900 });
        cfg.mutant = Some(m);
        cfg.late_joins = late;
        if disks {
            cfg.lease_disks = 3;
        }
        cfg.messages = about_messages(m);
        cfg
    })
}

/// The checker's counterexample for `m`: `Err` where no checker scenario can reach it.
fn checker_kill(m: Mutant) -> Result<Option<(u64, String)>, ()> {
    let mut s = Scenario::from_name(scenario(m).ok_or(())?).expect("a scenario");
    s.mutant = Some(m);
    Ok(counterexample(s))
}

#[test]
fn the_random_simulator_and_the_checker_catch_every_mutant() {
    let mut lines = Vec::new();
    let mut sim_kills = 0;
    let mut check_kills = 0;
    let mut check_reachable = 0;
    for m in Mutant::ALL {
        // Stale read bounds need a late joiner racing a ballot: rare in random runs, and the
        // first seed to show one moves with every change to the lease machine (28 once
        // releases that timed out were retried; 137 once failed acquires freed their leader
        // as 3.8.5's §8.3 does and multi-disk rounds came).
        let seeds = if m == Mutant::StaleReadBound { 160 } else { 20 };
        let sim = simulator_kill(m, seeds);
        let check = checker_kill(m);
        sim_kills += usize::from(sim.is_some());
        check_kills += usize::from(matches!(check, Ok(Some(_))));
        check_reachable += usize::from(check.is_ok());
        lines.push(format!(
            "{:<28} simulator: {:<60} checker ({}): {}",
            m.name(),
            sim.map_or(format!("SURVIVED {seeds} seeds"), |(seed, v)| format!(
                "seed {seed}: {v}"
            )),
            scenario(m).unwrap_or("-"),
            match check {
                Ok(Some((states, v))) => format!("{states} states: {v}"),
                Ok(None) => "SURVIVED".into(),
                Err(()) => "not reachable with 2-3 hosts".into(),
            }
        ));
    }
    let n = Mutant::ALL.len();
    println!("{}", lines.join("\n"));
    println!(
        "kill count: simulator {sim_kills}/{n}, checker {check_kills}/{check_reachable} \
         (of {n}; the others need more hosts than it runs)"
    );
    assert_eq!(
        (sim_kills, check_kills),
        (n, check_reachable),
        "\n{}",
        lines.join("\n")
    );
    assert_eq!(
        check_reachable,
        n - 3,
        "only ack-overwrite and the multi-disk mutants are out of the checker's reach"
    );
}

/// The first seed (of 1..=`seeds`) whose run with daemon mutant `m` finds a violation.
fn simulator_kill_daemon(m: DaemonMutant, seeds: u64) -> Option<(u64, String)> {
    first_violation(seeds, |seed| {
        let mut cfg = SimConfig::new(4, 4, seed, 900);
        cfg.clients = 8;
        cfg.daemon_mutant = Some(m);
        cfg
    })
}

/// The checker scenario that exercises each daemon mutant.
fn daemon_scenario(m: DaemonMutant) -> &'static str {
    match m {
        DaemonMutant::KeepDeadClientLeases | DaemonMutant::DropOrphans => "client-dies",
        DaemonMutant::KillBeforeGrace
        | DaemonMutant::StopEveryClient
        | DaemonMutant::SkipKillpathHolders
        | DaemonMutant::HoldersGoneEarly => "client-stopped",
        DaemonMutant::NoTestLive => "watchdog",
    }
}

fn checker_kill_daemon(m: DaemonMutant) -> Option<(u64, String)> {
    let mut s = Scenario::from_name(daemon_scenario(m)).expect("a scenario");
    s.daemon_mutant = Some(m);
    counterexample(s)
}

#[test]
fn the_random_simulator_and_the_checker_catch_every_daemon_mutant() {
    let mut lines = Vec::new();
    let mut kills = 0;
    for m in DaemonMutant::ALL {
        let sim = simulator_kill_daemon(m, 20);
        let check = checker_kill_daemon(m);
        kills += usize::from(sim.is_some() && check.is_some());
        lines.push(format!(
            "{:<28} simulator: {:<60} checker ({}): {}",
            m.name(),
            sim.map_or("SURVIVED 20 seeds".into(), |(seed, v)| format!(
                "seed {seed}: {v}"
            )),
            daemon_scenario(m),
            check.map_or("SURVIVED".into(), |(states, v)| format!(
                "{states} states: {v}"
            )),
        ));
    }
    let n = DaemonMutant::ALL.len();
    println!("{}", lines.join("\n"));
    // Killed: caught by both the simulator and the checker.
    println!("daemon mutants killed: {kills}/{n}");
    assert_eq!(kills, n, "\n{}", lines.join("\n"));
}

#[test]
fn the_random_simulator_catches_the_multi_disk_mutants() {
    for m in [Mutant::PhaseByMinority, Mutant::LeaderFromOneDisk] {
        let sim = simulator_kill(m, 20);
        println!("{:<28} {:?}", m.name(), sim);
        assert!(sim.is_some(), "{} survived 20 seeds", m.name());
    }
}
