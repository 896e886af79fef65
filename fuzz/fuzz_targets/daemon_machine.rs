//! The checker's model of daemons on a shared disk, walked along the path the bytes choose,
//! every property checked after each step.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sanlock_sim::fuzzing::walk(data));
