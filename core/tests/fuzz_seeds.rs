//! Replays the fuzz target's seed corpus (fuzz/seeds/decode_sector) through the same entry
//! point, so that every seed keeps decoding without a panic in the ordinary test run.

use std::fs;
use std::path::Path;

#[test]
fn every_fuzz_seed_decodes_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/decode_sector");
    let mut count = 0;
    for entry in fs::read_dir(&dir).expect("the seed folder exists") {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        sanlock_core::fuzzing::decode_sector(&bytes);
        count += 1;
    }
    assert!(
        count >= 20,
        "expected the committed seeds, found {count} in {}",
        dir.display()
    );
}
