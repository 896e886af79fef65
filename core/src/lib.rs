//! The pure core of sanlock-rs: what sanlock 3.8.5 writes on disk, and (later) the delta and paxos
//! lease state machines. Nothing here reads a clock, touches a file, spawns a thread or draws
//! entropy; callers hand in bytes and times and get bytes and decisions back.
//!
//! Start with [`ondisk`]: every record of `shared/spec/ondisk.md`, with encode and decode, and the
//! lease geometry that says where each record lives.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agenda;
pub mod delta;
pub mod flight;
pub mod fuzzing;
pub mod host;
pub mod hosts;
pub mod ids;
pub mod io;
pub mod lease_model;
pub mod mailbox;
pub mod memdisk;
pub mod messenger;
pub mod mutants;
pub mod ondisk;
pub mod paxos;
pub mod quorum;
pub mod requests;
pub mod rng;
pub mod routes;
pub mod rv;
pub mod time;
pub mod timeouts;
pub mod timers;
pub mod waits;

pub use ids::{Generation, HostId, Lver, MessageSeq};
pub use time::Time;
pub use timeouts::Timeouts;
