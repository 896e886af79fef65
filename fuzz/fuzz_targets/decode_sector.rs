//! Decode any bytes as every on-disk record; whatever decodes must re-encode to the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sanlock_core::fuzzing::decode_sector(data));
