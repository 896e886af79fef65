//! What a lease machine is waiting for and until when, for people watching: `sanlock client
//! show` and the progress a waiting `sanlock client` prints. Nothing decides on these.

use crate::{Generation, HostId, Time};

/// One wait of a delta or paxos lease machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wait {
    /// Joining: the host id was last held under another host name; waiting until that holder
    /// is certainly dead or has renewed.
    HostIdHolder {
        /// When the wait ends.
        until: Time,
    },
    /// Joining: our claim is written; giving a host racing for the same host id time to
    /// overwrite it.
    HostIdSettle {
        /// When the wait ends.
        until: Time,
    },
    /// Acquiring: the lease's owner has not been seen renewing; waiting until it is certainly
    /// dead (its 8N + 60 seconds of silence).
    OwnerDead {
        /// The owner.
        owner: HostId,
        /// Its generation.
        generation: Generation,
        /// When it is certainly dead, if it stays silent.
        until: Time,
    },
    /// Acquiring: backing off after a ballot another host won.
    Backoff {
        /// When the next ballot starts.
        until: Time,
    },
    /// A disk read or write, given up at its deadline.
    Io {
        /// The I/O's deadline.
        until: Time,
    },
}

impl Wait {
    /// When the wait ends at the latest.
    pub fn until(&self) -> Time {
        match *self {
            Wait::HostIdHolder { until }
            | Wait::HostIdSettle { until }
            | Wait::OwnerDead { until, .. }
            | Wait::Backoff { until }
            | Wait::Io { until } => until,
        }
    }
}
