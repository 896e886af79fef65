//! The random simulator end to end: a sweep of seeds with every fault, replay bit for bit, and
//! the large configurations. The longer sweep of docs/SIMULATION.md is
//! `cargo run --release -p sanlock-sim -- sweep --seeds 1..1000 --seconds 3600`.

use sanlock_sim::{FaultSet, SimConfig, Stats, World};

fn sweep(
    hosts: usize,
    resources: usize,
    seeds: std::ops::RangeInclusive<u64>,
    seconds: u64,
) -> Stats {
    let mut total = Stats::default();
    for seed in seeds {
        let cfg = SimConfig::new(hosts, resources, seed, seconds);
        let (o, log) = World::new(cfg).run();
        if let Some((v, involved)) = &o.violation {
            panic!(
                "seed {seed} ({hosts} hosts, {resources} resources, {seconds}s): {v}\n{}\nreplay: \
                 sanlock-sim run --hosts {hosts} --resources {resources} --seed {seed} --seconds {seconds}",
                log.render(60, involved)
            );
        }
        let s = o.stats;
        total.acquired_ex += s.acquired_ex;
        total.acquired_sh += s.acquired_sh;
        total.converted += s.converted;
        total.resets += s.resets;
        total.killed += s.killed;
        total.lockspace_failures += s.lockspace_failures;
        total.liveness_checked += s.liveness_checked;
        total.io_errors += s.faults();
        total.stale_leader_writes += s.stale_leader_writes;
        total.client_deaths += s.client_deaths;
        total.orphans += s.orphans;
    }
    total
}

/// The issue-16 configuration: 4 hosts, 4 resources, 8 client processes per host that die
/// holding leases or mid-acquire, for an hour with every fault; the daemon's client table
/// decides what the dead lose, and the daemon's properties are checked at every decision.
#[test]
fn client_processes_that_die_holding_leases_or_mid_acquire_break_nothing() {
    let mut total = Stats::default();
    for seed in 1..=12 {
        let mut cfg = SimConfig::new(4, 4, seed, 3600);
        cfg.clients = 8;
        let (o, log) = World::new(cfg).run();
        if let Some((v, involved)) = &o.violation {
            panic!(
                "seed {seed}: {v}\n{}\nreplay: sanlock-sim run --hosts 4 --resources 4 \
                 --clients 8 --seed {seed} --faults all --seconds 3600",
                log.render(60, involved)
            );
        }
        total.client_deaths += o.stats.client_deaths;
        total.orphans += o.stats.orphans;
        total.killed += o.stats.killed;
        total.acquired_ex += o.stats.acquired_ex;
    }
    println!("{total:?}");
    // Not vacuous: clients died holding leases, persistent ones became orphans, recovery
    // stopped holders.
    assert!(total.client_deaths > 200 && total.orphans > 20, "{total:?}");
    assert!(total.killed > 20 && total.acquired_ex > 1_000, "{total:?}");
}

/// The CI sweep: every fault, 8 hosts on 4 resources for an hour each, and small worlds.
#[test]
fn a_sweep_of_seeds_with_every_fault_finds_no_violation() {
    let t = sweep(8, 4, 1..=24, 3600);
    println!("{t:?}");
    // Not vacuous: leases changed hands, faults hit, recovery and the liveness phase ran.
    assert!(t.acquired_ex > 5_000 && t.acquired_sh > 500, "{t:?}");
    assert!(t.io_errors > 500 && t.resets > 10 && t.killed > 50, "{t:?}");
    assert!(t.lockspace_failures > 20 && t.converted > 100, "{t:?}");
    assert!(t.liveness_checked >= 80, "{t:?}");
}

#[test]
fn small_worlds_with_every_fault_find_no_violation() {
    let two = sweep(2, 1, 1..=40, 1800);
    let three = sweep(3, 2, 100..=130, 1800);
    assert!(
        two.acquired_ex > 300 && three.acquired_ex > 300,
        "{two:?} {three:?}"
    );
}

#[test]
fn a_seed_replays_bit_for_bit() {
    let run = |seed| {
        let (o, log) = World::new(SimConfig::new(6, 3, seed, 1200)).run();
        (o.digest, o.stats, log.total())
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a.0, run(8).0);
    assert!(a.2 > 1000, "a real run: {} timeline entries", a.2);
}

#[test]
fn faults_can_be_switched_off_and_then_none_are_injected() {
    let mut cfg = SimConfig::new(4, 2, 3, 1800);
    cfg.faults = FaultSet::default();
    let (o, _) = World::new(cfg).run();
    assert!(o.violation.is_none());
    assert_eq!(o.stats.faults(), 0);
    assert_eq!(o.stats.resets, 0);
    assert!(
        o.stats.acquired_ex + o.stats.acquired_sh > 100,
        "{:?}",
        o.stats
    );
}

#[test]
fn two_thousand_hosts_share_a_lockspace() {
    let mut cfg = SimConfig::new(2000, 2, 1, 40);
    cfg.liveness = false;
    let (o, _) = World::new(cfg).run();
    assert!(o.violation.is_none(), "{:?}", o.violation);
    assert!(
        o.stats.reads > 2000,
        "every host joined and renewed: {:?}",
        o.stats
    );
}

/// Runs that found holes in core, kept as regressions: seed 88 (3 hosts) had an exclusive
/// acquire clear a live shared hold whose generation its stale monitor had never seen; seed 395
/// had a lockspace stop without stopping a holder whose lease was being converted; seed 335
/// (8 clients per host) had a host win again a version it had won and released, after a late
/// leader write took the leader back, while another host won the next version; seed 284 (the
/// same, the daemon's engine running) had a shared release after a failed SH→EX convert write
/// an earlier dblock over the version's chosen value.
#[test]
fn runs_that_found_holes_pass() {
    for (hosts, resources, seed, seconds) in
        [(3, 1, 88, 1800), (8, 4, 295, 3600), (8, 4, 395, 3600)]
    {
        sweep(hosts, resources, seed..=seed, seconds);
    }
    for seed in [284, 335] {
        let mut cfg = SimConfig::new(4, 4, seed, 3600);
        cfg.clients = 8;
        let (o, log) = World::new(cfg).run();
        if let Some((v, involved)) = &o.violation {
            panic!("seed {seed}: {v}\n{}", log.render(60, involved));
        }
    }
}

/// Host messages and fences (`--messages`): bursts of five to seven senders to one receiver
/// and fences, with every fault, keep the three message properties; and the run that found a
/// fencer with a failing lockspace taking a live target for dead (late joins, an hour).
#[test]
fn host_messages_and_fences_keep_their_properties() {
    let mut acked = 0;
    let mut fenced = 0;
    let mut runs: Vec<SimConfig> = (1..=10)
        .map(|seed| {
            let mut cfg = SimConfig::new(8, 4, seed, 900);
            cfg.messages = true;
            cfg
        })
        .collect();
    // Late joins for an hour: seeds where a fencer whose own reads had stopped took a live
    // target for dead (before `HostTable::seen_dead`; seed 7 found it first, 8 and 20 do as
    // the code stands).
    for seed in [7, 8, 20] {
        let mut found = SimConfig::new(8, 4, seed, 3600);
        found.late_joins = true;
        found.messages = true;
        runs.push(found);
    }
    // Seed 40 found a daemon that resumed after a 96 s stop clearing a live shared hold by
    // its stale monitor's clock (holder silence is now measured between our own scans); seed
    // 487 a check that wanted an orphan kept in a lockspace a RESET was leaving.
    for seed in [40, 487] {
        let mut found = SimConfig::new(8, 4, seed, 3600);
        found.late_joins = true;
        found.messages = true;
        runs.push(found);
    }
    for cfg in runs {
        let seed = cfg.seed;
        let (o, log) = World::new(cfg).run();
        if let Some((v, involved)) = &o.violation {
            panic!("seed {seed}: {v}\n{}", log.render(60, involved));
        }
        acked += o.stats.messages[1];
        fenced += o.stats.fences[1];
    }
    // Not vacuous: messages were acked and fences returned.
    assert!(
        acked > 500 && fenced > 20,
        "acked {acked}, fences done {fenced}"
    );
}

/// Leases on three and four disks, one of which fails, hangs or is replaced by a zeroed one
/// for the rest of the run while another fails one I/O in ten: no violation, the liveness
/// phase included (with sanlock's LEADER_DIFF rule a third of such runs left a lease that no
/// host could take; docs/SIMULATION.md has the figures over more seeds).
#[test]
fn leases_on_several_disks_with_one_broken_find_no_violation() {
    let mut checked = 0;
    let mut acquired = 0;
    for (disks, seeds) in [(3, 1..=30), (4, 1..=10), (2, 1..=10)] {
        for seed in seeds {
            let mut cfg = SimConfig::new(8, 4, seed, 900);
            cfg.lease_disks = disks;
            let (o, log) = World::new(cfg).run();
            if let Some((v, involved)) = &o.violation {
                panic!(
                    "seed {seed} ({disks} disks): {v}\n{}\nreplay: sanlock-sim run --seed {seed} \
                     --seconds 900 --lease-disks {disks}",
                    log.render(60, involved)
                );
            }
            checked += o.stats.liveness_checked;
            acquired += o.stats.acquired_ex;
        }
    }
    assert!(checked > 80 && acquired > 3_000, "{checked} {acquired}");
}

/// Runs on several disks that found holes (docs/SIMULATION.md, "Leases on several disks"):
/// four disks seed 57 (a phase 1 hid our retract: a lease named a live host holding nothing),
/// three disks seed 109 (a value our phase 1 carried RELEASED, committed by another host, was
/// held while a third host took the lease), four disks seeds 90 and 96 (a phase 1 hid a
/// RELEASED of ours, then failed without a retract) and 139 (a leader set back two versions:
/// every ballot lost to a later dblock); three disks seeds 1235 (a convert to shared whose
/// write reached one disk let a second host in) and 1326 (a disk replaced by a zeroed one
/// taken for a shared holder's word).
#[test]
fn runs_on_several_disks_that_found_holes_pass() {
    for (disks, seed) in [
        (4, 57),
        (3, 109),
        (4, 90),
        (4, 96),
        (4, 139),
        (3, 1235),
        (3, 1326),
    ] {
        let mut cfg = SimConfig::new(8, 4, seed, 900);
        cfg.lease_disks = disks;
        let (o, log) = World::new(cfg).run();
        if let Some((v, involved)) = &o.violation {
            panic!(
                "seed {seed} ({disks} disks): {v}\n{}",
                log.render(60, involved)
            );
        }
    }
}
