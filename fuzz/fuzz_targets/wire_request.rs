//! Any bytes as a request (header and payload) through the connection's parser, and as every
//! payload record of the socket protocol.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sanlock_machine::fuzzing::wire_request(data));
