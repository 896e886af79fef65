//! The daemon machine: everything `sanlock daemon` decides, as pure code. One [`Engine`] holds
//! the core `Host`, the client table, the lockspaces with sanlock's lists, the pending
//! operations, lease commands under way, rindex jobs, event listeners and the watchdog's
//! policy; the daemon's shell hands it [`Input`]s with the time (`Engine::handle`), and
//! carries out the [`Action`]s and the host's I/O it decides (`take_actions`, `take_io`),
//! waking it by `poll_timeout`. No clock, threads, sockets or files here (the crate's fence).
//!
//! `engine.rs` holds the state, the dispatch and the host's outputs; each other file adds
//! `impl Engine` blocks for one part of the protocol: lockspaces (`spaces`), leases
//! (`leases`), the client table's effects (`clients`), requests and set_config (`requests`),
//! LVBs (`lvb`), events (`events`), host messages and fence (`host_messages`), rindex (`rindex_jobs`), disks opened off the loop
//! (`opens`) and the status replies (`status`). `messages` is the vocabulary.

pub mod config;
pub mod engine;
pub mod messages;

mod clients;
mod events;
mod host_messages;
mod leases;
mod lvb;
pub mod metrics;
mod opens;
pub mod request_parse;
mod requests;
mod rindex_jobs;
mod show;
mod spaces;
mod status;

pub use engine::{Engine, Happened, Turn};
pub use messages::{Action, Call, Input, Reply, ReplyTo, Waiter};
pub use status::resource_string;

/// An open disk, as the shell numbers it (its backends' disk id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiskNo(pub usize);
