//! What a run reports.

use std::time::Duration;

use crate::config::Params;
use crate::invariants::Violation;

/// Counts a run reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events handled.
    pub events: u64,
    /// I/Os started (reads, writes).
    pub reads: u64,
    /// Writes started.
    pub writes: u64,
    /// Bytes the reads returned (a ballot's reads shrink with the lockspace's read bound).
    pub bytes_read: u64,
    /// Acquisitions by processes (exclusive, shared).
    pub acquired_ex: u64,
    /// Shared acquisitions.
    pub acquired_sh: u64,
    /// Refused acquires.
    pub refused: u64,
    /// Converts that succeeded.
    pub converted: u64,
    /// Releases that succeeded.
    pub released: u64,
    /// Faults injected, by kind.
    pub io_errors: u64,
    /// Hung I/Os.
    pub hangs: u64,
    /// Corrupted reads.
    pub corruptions: u64,
    /// Daemon pauses.
    pub pauses: u64,
    /// Power-offs.
    pub crashes: u64,
    /// Disk losses.
    pub disk_losses: u64,
    /// Hosts reset by their watchdog.
    pub resets: u64,
    /// Processes stopped by a signal (StopHolders or a request).
    pub killed: u64,
    /// Client processes that died on their own: holding leases, or with an acquire under way.
    pub client_deaths: u64,
    /// Leases of dead clients kept as orphans (persistent), and orphans released later.
    pub orphans: u64,
    /// Lockspaces that failed (renewal lost for 8N or corrupt).
    pub lockspace_failures: u64,
    /// Resources the liveness phase checked, and skipped (left ambiguous by faults).
    pub liveness_checked: u64,
    /// Resources the liveness phase could not judge.
    pub liveness_skipped: u64,
    /// Leader writes that landed after a leader write issued later (reordered or hung).
    pub stale_leader_writes: u64,
    /// Host messages (`--messages`): sent, and resolved as acked, no ack support, target
    /// dead, timed out.
    pub messages: [u64; 5],
    /// Fences: asked, and returned success.
    pub fences: [u64; 2],
}

impl Stats {
    /// All injected faults.
    pub fn faults(&self) -> u64 {
        self.io_errors
            + self.hangs
            + self.corruptions
            + self.pauses
            + self.crashes
            + self.disk_losses
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The first broken property, with the hosts involved, if any.
    pub violation: Option<(Violation, Vec<usize>)>,
    /// Counts.
    pub stats: Stats,
    /// Property evaluations.
    pub checks: u64,
    /// Digest of the whole timeline.
    pub digest: u64,
    /// World time at the end.
    pub simulated: Duration,
    /// The parameters the seed picked.
    pub params: Params,
}
