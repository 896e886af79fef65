//! I/O as values: what a state machine asks its driver to read or write, and what comes back.
//! The driver (daemon backend, simulator, model checker) executes requests and hands in
//! completions with the same id; the machine owns the deadline of each request.

use std::fmt;

use crate::time::Time;

pub use crate::rv::SANLK_AIO_TIMEOUT;

/// Names one I/O request of one state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IoId(pub u64);

impl fmt::Display for IoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "io#{}", self.0)
    }
}

/// A read or a write of whole sectors.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IoOp {
    /// Read `len` bytes.
    Read {
        /// Bytes to read, a multiple of the sector size.
        len: usize,
    },
    /// Write these bytes (whole sectors, already encoded).
    Write {
        /// The sectors to write.
        data: Vec<u8>,
    },
}

/// Which of a machine's disks an I/O is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiskRef {
    /// The lockspace's disk (delta leases; a paxos acquire reads the owner's delta lease there).
    Lockspace,
    /// One of the resource lease's disks (the first, for a lease on one disk).
    Lease(crate::quorum::LeaseDisk),
}

impl DiskRef {
    /// The first (or only) disk of a resource lease.
    pub const LEASE: DiskRef = DiskRef::Lease(crate::quorum::LeaseDisk::FIRST);
}

/// One I/O the driver should run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IoRequest {
    /// Returned with the completion.
    pub id: IoId,
    /// Which disk.
    pub disk: DiskRef,
    /// Byte offset from the start of the disk.
    pub offset: u64,
    /// What to do.
    pub op: IoOp,
    /// When the machine stops waiting for it (io_timeout); a later completion is ignored.
    pub deadline: Time,
}

/// Why an I/O failed, as far as the lease algorithms care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoError {
    /// The device or file reported an error (errno).
    Failed(i32),
    /// Fewer bytes than asked (sanlock: -EMSGSIZE).
    Short,
    /// No completion by the deadline (sanlock: SANLK_AIO_TIMEOUT).
    TimedOut,
}

impl IoError {
    /// The result sanlock reports for this failure.
    pub const fn rv(self) -> i32 {
        match self {
            IoError::Failed(errno) => -errno,
            IoError::Short => -90,
            IoError::TimedOut => SANLK_AIO_TIMEOUT,
        }
    }
}

/// A completion: the bytes read (empty for a write), or the failure. `Bytes`, so that a
/// backend can hand over its aligned I/O buffer without copying a megabyte per renewal.
pub type IoResult = Result<bytes::Bytes, IoError>;

/// An I/O a machine is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Pending {
    pub(crate) id: IoId,
    pub(crate) deadline: Time,
}

/// What a completion means to the machine that asked for it.
pub(crate) enum Completion {
    /// Act on this result (a completion at or past the deadline arrives as a timeout).
    Deliver(IoResult),
    /// A completion for an I/O already given up: counted, nothing else.
    Ignore,
}

/// The I/O bookkeeping every machine shares: ids, deadlines, I/Os given up at their deadline,
/// late completions, the outgoing queue, and the rule that `now` never goes back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct IoBook {
    next_io: u64,
    abandoned: Vec<IoId>,
    late_completions: u64,
    last_now: Time,
    out: std::collections::VecDeque<IoRequest>,
}

impl IoBook {
    /// Gives back the room its queues grew to, where they are empty.
    pub(crate) fn shed(&mut self) {
        if self.out.is_empty() {
            self.out = std::collections::VecDeque::new();
        }
        if self.abandoned.is_empty() {
            self.abandoned = Vec::new();
        }
    }

    /// Asserts time goes forward and remembers it.
    pub(crate) fn tick(&mut self, now: Time) {
        assert!(
            now >= self.last_now,
            "time went backwards: {now} < {}",
            self.last_now
        );
        self.last_now = now;
    }

    /// Queues an I/O due `timeout` from now.
    pub(crate) fn submit(
        &mut self,
        now: Time,
        disk: DiskRef,
        offset: u64,
        op: IoOp,
        timeout: std::time::Duration,
    ) -> Pending {
        let id = IoId(self.next_io);
        self.next_io += 1;
        let deadline = now + timeout;
        self.out.push_back(IoRequest {
            id,
            disk,
            offset,
            op,
            deadline,
        });
        Pending { id, deadline }
    }

    /// Judges a completion against the I/O the machine waits for. Past its deadline the I/O
    /// has failed, whatever it returned: a host that stalled must not act on stale bytes.
    /// Panics on a completion nobody asked for (a driver bug).
    pub(crate) fn complete(
        &mut self,
        now: Time,
        id: IoId,
        waiting: Option<Pending>,
        result: IoResult,
    ) -> Completion {
        if let Some(at) = self.abandoned.iter().position(|&a| a == id) {
            self.abandoned.swap_remove(at);
            self.late_completions += 1;
            return Completion::Ignore;
        }
        match waiting {
            Some(io) if io.id == id && now >= io.deadline => {
                self.late_completions += 1;
                Completion::Deliver(Err(IoError::TimedOut))
            }
            Some(io) if io.id == id => Completion::Deliver(result),
            _ => panic!("completion for {id}, which this machine did not ask for"),
        }
    }

    /// Whether the I/O waited for has passed its deadline; if so it is given up.
    pub(crate) fn expired(&mut self, now: Time, waiting: Option<Pending>) -> bool {
        match waiting {
            Some(io) if now >= io.deadline => {
                self.abandoned.push(io.id);
                true
            }
            _ => false,
        }
    }

    /// Gives up the I/O waited for (abort).
    pub(crate) fn abandon(&mut self, waiting: Option<Pending>) {
        if let Some(io) = waiting {
            self.abandoned.push(io.id);
        }
    }

    /// The next queued I/O.
    pub(crate) fn poll(&mut self) -> Option<IoRequest> {
        self.out.pop_front()
    }

    /// Completions that arrived after their I/O was given up or past its deadline.
    pub(crate) fn late_completions(&self) -> u64 {
        self.late_completions
    }
}
