//! What the daemon's connection tasks and helper threads send its loop ([`Msg`]: with the
//! channels the replies and events go back on), and the loop's book of the replies owed. The
//! engine's own vocabulary (inputs, requests, replies, actions) is `sanlock_machine::daemon`'s,
//! re-exported here.

use std::collections::BTreeMap;

use sanlock_core::ondisk::{Geometry, Name};
use tokio::sync::{mpsc, oneshot};

pub use sanlock_machine::daemon::messages::*;

use super::storage::OpenedDisk;
use crate::wire::{Header, WireLockspace};

/// What connections and helper tasks tell the engine.
pub enum Msg {
    /// REG_EVENT on connection `ci`, answered on `reply`; on success its events go to `sink`.
    RegEvent {
        ci: usize,
        header: Header,
        ls: WireLockspace,
        sink: mpsc::UnboundedSender<Vec<u8>>,
        reply: oneshot::Sender<Reply>,
    },
    /// A request, to answer on `reply`.
    Call {
        /// The connection's slot.
        ci: usize,
        /// The request's header (replies are built from it).
        header: Header,
        /// What was asked.
        call: Call,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// REGISTER on connection `ci`.
    Register {
        /// The connection's slot.
        ci: usize,
    },
    /// Connection `ci` closed (EOF or error).
    Closed {
        /// The connection's slot.
        ci: usize,
    },
    /// The geometry probe of a lockspace being added finished.
    Probed {
        /// The lockspace.
        space_id: u32,
        /// Its geometry, or the add's result.
        result: Result<Geometry, i32>,
    },
    /// A disk opened off the loop ([`Engine::open_then`]).
    DiskOpened {
        /// As it was named.
        path: Vec<u8>,
        /// The disk, or why it did not open.
        result: Result<OpenedDisk, sanlock_backends::disk::DiskError>,
    },
    /// A reply made off the loop (a rindex operation's blocking thread).
    Answer {
        /// Whose.
        waiter: Waiter,
        /// What.
        reply: Reply,
    },
    /// A lockspace being added is registered with wdmd, or could not be.
    WdmdRegistered {
        /// The lockspace.
        space_id: u32,
        /// How it went.
        result: Result<(), String>,
    },
    /// The registered process `pid` of slot `ci` exited (its pidfd fired).
    ProcessExited {
        /// The slot.
        ci: usize,
        /// The pid it had registered with.
        pid: i32,
    },
    /// SIGTERM, SIGINT or SIGHUP: a non-forced shutdown.
    Signal,
    /// A rindex operation that held no lease finished (it answered its client itself).
    RindexDone {
        /// Its lockspace.
        space: Name,
    },
    /// A locked rindex operation read its header: the lease is next.
    RindexHeader {
        /// The operation.
        job: RindexJob,
    },
    /// A locked rindex operation made its change: the lease goes back.
    RindexChanged {
        /// The operation.
        job: RindexJob,
    },
}

/// The loop's side of the replies owed: each connection task's channel, by reply.
#[derive(Default)]
pub(super) struct ReplyBook {
    next: u64,
    owed: BTreeMap<ReplyTo, (oneshot::Sender<Reply>, std::sync::Weak<()>)>,
}

impl ReplyBook {
    /// A waiter for a request whose answer goes to `reply`.
    pub(super) fn waiter(&mut self, header: Header, reply: oneshot::Sender<Reply>) -> Waiter {
        let to = ReplyTo(self.next);
        self.next += 1;
        let (waiter, alive) = Waiter::new(header, to);
        self.owed.insert(to, (reply, alive));
        waiter
    }

    /// Sends what the engine answered, then closes the connections of waiters dropped
    /// unanswered.
    pub(super) fn deliver(&mut self, outbox: Vec<(ReplyTo, Reply)>) {
        for (to, reply) in outbox {
            if let Some((tx, _)) = self.owed.remove(&to) {
                let _ = tx.send(reply);
            }
        }
        let dropped: Vec<ReplyTo> = self
            .owed
            .iter()
            .filter(|(_, (_, alive))| alive.strong_count() == 0)
            .map(|(&to, _)| to)
            .collect();
        for to in dropped {
            if let Some((tx, _)) = self.owed.remove(&to) {
                let _ = tx.send(Reply::close(Vec::new()));
            }
        }
    }

    /// Takes the channel of a reply that the loop itself sends later (at exit).
    pub(super) fn take(&mut self, waiter: Waiter) -> Option<oneshot::Sender<Reply>> {
        self.owed.remove(&waiter.to).map(|(tx, _)| tx)
    }
}
