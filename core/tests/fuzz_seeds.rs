//! Replays the fuzz targets' corpora (fuzz/seeds/decode_sector: sectors sanlock 3.8.5 wrote;
//! fuzz/seeds/rindex_lvb: the minimised corpus of a fuzzing run) through the same entry points,
//! so that every input they hold keeps passing in the ordinary test run.

use std::fs;
use std::path::Path;

/// Feeds every file of fuzz/seeds/`target` to `run`; there must be at least `least` of them.
fn replay(target: &str, least: usize, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut count = 0;
    for entry in fs::read_dir(&dir).expect("the seed folder exists") {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        run(&bytes);
        count += 1;
    }
    assert!(
        count >= least,
        "expected the committed seeds, found {count} in {}",
        dir.display()
    );
}

#[test]
fn every_decode_sector_seed_decodes_without_panicking() {
    replay("decode_sector", 20, sanlock_core::fuzzing::decode_sector);
}

#[test]
fn every_rindex_lvb_seed_keeps_the_index_searches_promises() {
    replay("rindex_lvb", 20, sanlock_core::fuzzing::rindex_lvb);
}
