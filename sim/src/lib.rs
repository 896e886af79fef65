//! A deterministic simulator and an exhaustive model checker for sanlock-rs's daemon: many
//! hosts each run the daemon's engine (`sanlock_machine::daemon`, with the unchanged core
//! `Host` inside) against a simulated shared disk, with client processes, faults, clocks, wdmd
//! and a watchdog, and checkers look for two hosts holding one lease and for a daemon that
//! stops, releases or keeps the wrong thing.
//!
//! - [`world`]: the random simulator (`sanlock-sim run`), one seed per run;
//! - [`check`]: the exhaustive checker for 2-3 hosts (`sanlock-sim check`);
//! - [`invariants`]: the properties both check;
//! - [`requests`]: the requests their client processes send;
//! - [`msgs`]: cluster messaging's member machines, checked and simulated on a lease model.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod clock;
pub mod config;
pub mod disk;
pub mod fuzzing;
pub mod invariants;
pub mod mail;
pub mod msgs;
pub mod requests;
pub mod stats;
pub mod timeline;
pub mod world;

pub use config::{FaultSet, Params, SimConfig};
pub use world::{Outcome, Stats, World};
