//! The exhaustive checker (`sanlock-sim check`): for 2-3 hosts on one resource it explores
//! every order of I/O completions, faults and timeouts a [`Scenario`] allows, depth first,
//! remembering a fingerprint of every state seen, and checks the properties of
//! [`crate::invariants`] after every step. A violation comes back with the path to it.

mod explore;
mod fingerprint;
mod model;
mod scenario;

pub use explore::{explore, Report};
pub use fingerprint::Fingerprinter;
pub(crate) use fingerprint::{forget_interned, interned};
pub use model::{DiskBreak, Model, State, Step};
pub use scenario::Scenario;
