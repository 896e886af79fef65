//! Any bytes as a rindex header with its entries (searched and updated), and as an LVB and the
//! message record it carries.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sanlock_core::fuzzing::rindex_lvb(data));
