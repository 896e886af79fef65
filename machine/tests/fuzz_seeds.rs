//! Replays the `wire_request` fuzz target's minimised corpus (fuzz/seeds/wire_request) through
//! its entry point, so that every request it holds keeps parsing as promised in the ordinary
//! test run.

use std::fs;
use std::path::Path;

#[test]
fn every_wire_request_seed_parses_as_promised() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/wire_request");
    let mut count = 0;
    for entry in fs::read_dir(&dir).expect("the seed folder exists") {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        sanlock_machine::fuzzing::wire_request(&bytes);
        count += 1;
    }
    assert!(count >= 20, "expected the committed seeds, found {count}");
}
