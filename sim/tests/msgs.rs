//! Cluster messaging (docs/MESSAGING.md): every checker scenario explored to the end with no
//! property broken, and random schedules of three to five members with deaths.

use sanlock_sim::msgs::{explore, random_run, random_scenario, MsgScenario};

#[test]
fn every_ordering_of_the_checker_scenarios_keeps_the_properties() {
    for s in MsgScenario::all() {
        let r = explore(&s, None, 5_000_000);
        println!(
            "{:<14} {:>9} states, complete {}",
            s.name, r.states, r.complete
        );
        if let Some((v, path)) = r.violation {
            panic!("{}: {v}\n{path:?}", s.name);
        }
        assert!(r.complete, "{}: cut at the state bound", s.name);
    }
}

#[test]
fn random_schedules_keep_the_properties() {
    let mut steps = 0;
    for seed in 1..=300 {
        let s = random_scenario(seed);
        match random_run(&s, None, seed, 2_000_000) {
            Ok(n) => steps += n,
            Err((step, v)) => panic!("seed {seed} ({s:?}), step {step}: {v}"),
        }
    }
    println!("300 random schedules, {steps} moves");
}
