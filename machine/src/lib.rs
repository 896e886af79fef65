//! What the sanlock daemon decides, as pure code beside the core: the socket protocol as bytes
//! (`wire`), the recovery kill policy (`recovery`), our watchdog feeder's policy
//! (`watchdog`), a client's lease slots (`lease_slots`), and (issue 16, under way) the rest of
//! the daemon machine. The same fence as core's: no I/O, no clock, no threads, no tokio
//! (`clippy.toml`, `tests/dependencies.rs`).

pub mod clients;
pub mod daemon;
pub mod fuzzing;
pub mod lease_slots;
pub mod mutants;
pub mod recovery;
pub mod renewal_history;
pub mod watchdog;
/// The socket protocol as bytes, a crate of its own so that clients need nothing else of ours.
pub use sanlock_wire as wire;
