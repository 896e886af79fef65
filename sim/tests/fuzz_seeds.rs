//! Replays the `daemon_machine` fuzz target's minimised corpus (fuzz/seeds/daemon_machine): each
//! input is a walk through the checker's model, every property checked after each step.

use std::fs;
use std::path::Path;

#[test]
fn every_daemon_machine_seed_walks_without_breaking_a_property() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/daemon_machine");
    let mut count = 0;
    for entry in fs::read_dir(&dir).expect("the seed folder exists") {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        sanlock_sim::fuzzing::walk(&bytes);
        count += 1;
    }
    assert!(count >= 20, "expected the committed seeds, found {count}");
}
