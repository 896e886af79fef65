//! The daemon's engine fed any sequence of connections, requests (any command, any payload),
//! I/O completions, failures, timeouts and time, its properties checked after each.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sanlock_machine::fuzzing::engine_inputs(data));
