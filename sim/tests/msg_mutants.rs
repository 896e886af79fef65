//! The messaging mutant suite: every deliberate slip of the member machine
//! (`sanlock_core::messenger::Slip`) is caught by the checker, in the scenario that exercises
//! it, and by the random simulator within a few seeds. Run with `cargo test -p sanlock-sim
//! --features mutants --test msg_mutants`.

use sanlock_core::messenger::Slip;
use sanlock_sim::msgs::{explore, random_run, random_scenario, MsgScenario};

/// The checker scenario that exercises each slip.
fn scenario(slip: Slip) -> &'static str {
    match slip {
        // Two senders of big messages: one's payload write meets the other's published slot.
        Slip::SkipToken => "two-big",
        // One sender, two receivers, two messages: a receiver slow to process or to take ACK
        // back is left behind.
        Slip::AckBeforeProcessed | Slip::DropMessageBeforeAck => "one-sender",
    }
}

#[test]
fn the_checker_and_the_random_simulator_catch_every_slip() {
    for slip in Slip::ALL {
        let s = MsgScenario::named(scenario(slip)).expect("a scenario");
        let r = explore(&s, Some(slip), 5_000_000);
        let (v, path) = r.violation.unwrap_or_else(|| {
            panic!(
                "{}: the checker missed it ({} states)",
                slip.name(),
                r.states
            )
        });
        println!(
            "{:<24} checker ({}): {} states, {} moves: {v}",
            slip.name(),
            s.name,
            r.states,
            path.len()
        );
        let caught = (1..=200).find_map(|seed| {
            let s = random_scenario(seed);
            random_run(&s, Some(slip), seed, 2_000_000)
                .err()
                .map(|(step, v)| (seed, step, v))
        });
        let (seed, step, v) =
            caught.unwrap_or_else(|| panic!("{}: 200 random seeds missed it", slip.name()));
        println!(
            "{:<24} simulator: seed {seed}, step {step}: {v}",
            slip.name()
        );
    }
}
