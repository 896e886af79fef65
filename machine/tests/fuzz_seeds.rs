//! Replays the daemon-side fuzz targets' minimised corpora (fuzz/seeds/wire_request,
//! fuzz/seeds/engine_inputs) through their entry points, so that every input they hold keeps
//! passing in the ordinary test run.

use std::fs;
use std::path::Path;

/// Feeds every file of fuzz/seeds/`target` to `run`; there must be at least 20.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut count = 0;
    for entry in fs::read_dir(&dir).expect("the seed folder exists") {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        run(&bytes);
        count += 1;
    }
    assert!(count >= 20, "expected the committed seeds, found {count}");
}

#[test]
fn every_wire_request_seed_parses_as_promised() {
    replay("wire_request", sanlock_machine::fuzzing::wire_request);
}

#[test]
fn every_engine_inputs_seed_keeps_the_engines_properties() {
    replay("engine_inputs", sanlock_machine::fuzzing::engine_inputs);
}
