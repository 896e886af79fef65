//! A deterministic simulator and an exhaustive model checker for sanlock-rs's core: many hosts
//! run the unchanged `sanlock_core::host::Host` against a simulated shared disk, with faults,
//! clocks and a watchdog, and checkers look for two hosts holding one lease.
//!
//! - [`world`]: the random simulator (`sanlock-sim run`), one seed per run;
//! - [`check`]: the exhaustive checker for 2-3 hosts (`sanlock-sim check`);
//! - [`invariants`]: the properties both check.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod clock;
pub mod config;
pub mod disk;
pub mod invariants;
pub mod queue;
pub mod stats;
pub mod timeline;
pub mod world;

pub use config::{FaultSet, Params, SimConfig};
pub use world::{Outcome, Stats, World};
