//! I/O as values: what a state machine asks its driver to read or write, and what comes back.
//! The driver (daemon backend, simulator, model checker) executes requests and hands in
//! completions with the same id; the machine owns the deadline of each request.

use std::fmt;

use crate::time::Time;

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
    /// The resource lease's disk.
    Lease,
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

/// sanlock_rv.h: an I/O did not complete in time.
pub const SANLK_AIO_TIMEOUT: i32 = -202;

/// A completion: the bytes read (empty for a write), or the failure.
pub type IoResult = Result<Vec<u8>, IoError>;
