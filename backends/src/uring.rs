//! The io_uring backend, for block devices (it runs files too): one ring per backend, many
//! I/Os in flight, each read or write linked to a timeout at its deadline so the kernel tries
//! to cancel it then. Whatever the kernel manages, the I/O is reported timed out at its
//! deadline; its buffer stays in the backend's slot table until the kernel posts the
//! completion (a device that never answers keeps the slot, as a pending aio keeps sanlock's
//! buffer). The ring's file descriptor is polled by tokio, so waiting costs no thread.
//!
//! Offsets and lengths are checked against the device's logical sector size (BLKSSZGET) and
//! size before anything is queued.

use std::collections::{BTreeMap, VecDeque};
use std::io;

use async_trait::async_trait;
use io_uring::{opcode, squeue, types, IoUring};
use sanlock_core::io::{IoError, IoId, IoOp};
use tokio::io::unix::AsyncFd;

use crate::disk::{AlignedBuf, Disk, DiskError, DiskKind};
use crate::storage::{check, Completed, Deadlines, DiskId, DiskInfo, Io, Stats, Storage};

/// Submission queue entries; each I/O takes two (the I/O and its linked timeout).
const RING_ENTRIES: u32 = 256;
/// I/Os in the ring at once; the rest wait in the backlog. Half the entries, so the completion
/// queue (twice the entries) never overflows.
const MAX_IN_RING: usize = (RING_ENTRIES / 2) as usize;
/// user_data of a linked timeout's own completion, which says nothing we need.
const TIMEOUT_TAG: u64 = u64::MAX;
/// ECANCELED: the linked timeout cancelled the I/O at its deadline.
const ECANCELED: i32 = 125;

/// The io_uring backend.
pub struct UringStorage {
    ring: AsyncFd<IoUring>,
    disks: Vec<(DiskInfo, Disk)>,
    deadlines: Deadlines,
    /// I/Os in the ring by user_data: the buffer the kernel uses stays here until it is done.
    slots: BTreeMap<u64, Slot>,
    next_slot: u64,
    backlog: VecDeque<Io>,
}

struct Slot {
    id: IoId,
    len: usize,
    write: bool,
    buf: AlignedBuf,
    /// The linked timeout's time; the kernel reads it when the entry is submitted.
    _timeout: Box<types::Timespec>,
}

impl UringStorage {
    /// A backend with its ring. Call inside a tokio runtime with I/O enabled.
    pub fn new() -> io::Result<Self> {
        let ring = IoUring::new(RING_ENTRIES)?;
        // SAFETY: the ring owns its fd, and AsyncFd owns the ring: the fd stays open exactly as
        // long as it is registered.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(UringStorage {
            ring,
            disks: Vec::new(),
            deadlines: Deadlines::default(),
            slots: BTreeMap::new(),
            next_slot: 0,
            backlog: VecDeque::new(),
        })
    }

    /// Opens a block device (or a file: 512-byte sectors) read-write, or read-only when that is
    /// all the permissions allow.
    pub fn open(&mut self, path: &str) -> Result<DiskId, DiskError> {
        let disk = match Disk::open(path.as_bytes()) {
            // EACCES, EROFS, or EPERM (an immutable file): read what we may.
            Err(e) if matches!(e.errno, 1 | 13 | 30) => Disk::open_read_only(path.as_bytes())?,
            other => other?,
        };
        let sector_size = disk.sector_size().ok_or_else(|| DiskError {
            op: "open",
            path: path.as_bytes().to_vec(),
            offset: None,
            errno: 22,
            reason: "logical sector size is neither 512 nor 4096".into(),
        })?;
        let size = match disk.kind() {
            DiskKind::File => None,
            DiskKind::Block { size, .. } => Some(size),
        };
        let info = DiskInfo {
            name: path.to_string(),
            sector_size,
            size,
            read_only: disk.is_read_only(),
        };
        self.disks.push((info, disk));
        Ok(DiskId(self.disks.len() - 1))
    }

    /// Moves backlog I/Os into the ring while there is room, and submits.
    fn fill_ring(&mut self) {
        let now = crate::clock::now();
        let mut queued = false;
        while self.slots.len() < MAX_IN_RING {
            let Some(io) = self.backlog.pop_front() else {
                break;
            };
            if io.deadline <= now {
                // Never got into the ring: the deadline book reports it at its deadline.
                continue;
            }
            self.push(io, now);
            queued = true;
        }
        let waiting = !self.ring.get_mut().submission().is_empty();
        if queued || waiting {
            // EINTR, EAGAIN or EBUSY leave the entries queued; the next call submits them, and
            // their deadlines bound the wait meanwhile.
            let _ = self.ring.get_mut().submit();
        }
    }

    fn push(&mut self, io: Io, now: sanlock_core::Time) {
        let (write, len, buf) = match io.op {
            IoOp::Read { len } => (false, len, AlignedBuf::zeroed(len)),
            IoOp::Write { data } => (true, data.len(), AlignedBuf::from_slice(&data)),
        };
        let left = io.deadline.saturating_since(now);
        let timeout = Box::new(
            types::Timespec::new()
                .sec(left.as_secs())
                .nsec(left.subsec_nanos()),
        );
        let key = self.next_slot;
        self.next_slot += 1;
        let mut slot = Slot {
            id: io.id,
            len,
            write,
            buf,
            _timeout: timeout,
        };
        let fd = types::Fd(std::os::fd::AsRawFd::as_raw_fd(
            &self.disks[io.disk.0].1.fd(),
        ));
        let len32 = u32::try_from(len).expect("checked: a lease I/O is far below 4 GiB");
        let ptr = slot.buf.as_mut().as_mut_ptr();
        let entry = if write {
            opcode::Write::new(fd, ptr.cast_const(), len32)
                .offset(io.offset)
                .build()
        } else {
            opcode::Read::new(fd, ptr, len32).offset(io.offset).build()
        };
        let entry = entry.user_data(key).flags(squeue::Flags::IO_LINK);
        let timeout_entry = opcode::LinkTimeout::new(&*slot._timeout)
            .build()
            .user_data(TIMEOUT_TAG);
        let ring = self.ring.get_mut();
        // Two free entries: the ring has twice as many as I/Os it holds at once.
        let mut sq = ring.submission();
        // SAFETY: the buffer and the timespec live in `slot`, which stays in `self.slots`
        // until the kernel posts this entry's completion (see `reap`), or is leaked by `Drop`
        // if it never does; the fd belongs to a disk that lives as long as the ring.
        unsafe {
            sq.push(&entry).expect("room for the I/O entry");
            sq.push(&timeout_entry)
                .expect("room for its linked timeout");
        }
        drop(sq);
        self.slots.insert(key, slot);
    }

    /// Takes every completion the kernel has posted.
    fn reap(&mut self) {
        let now = crate::clock::now();
        let mut done = Vec::new();
        for cqe in self.ring.get_mut().completion() {
            if cqe.user_data() != TIMEOUT_TAG {
                done.push((cqe.user_data(), cqe.result()));
            }
        }
        for (key, res) in done {
            let Some(slot) = self.slots.remove(&key) else {
                continue;
            };
            let result = match res {
                n if n < 0 && -n == ECANCELED => Err(IoError::TimedOut),
                n if n < 0 => Err(IoError::Failed(-n)),
                n if usize::try_from(n).ok() != Some(slot.len) => Err(IoError::Short),
                _ if slot.write => Ok(Vec::new()),
                _ => Ok(slot.buf.as_ref().to_vec()),
            };
            self.deadlines.finish(now, slot.id, result);
        }
    }
}

#[async_trait]
impl Storage for UringStorage {
    fn disk(&self, disk: DiskId) -> Option<&DiskInfo> {
        self.disks.get(disk.0).map(|(info, _)| info)
    }

    fn submit(&mut self, ios: Vec<Io>) {
        for io in ios {
            let refusal = check(&io, self.disk(io.disk));
            if self.deadlines.start(&io, refusal) {
                self.backlog.push_back(io);
            }
        }
        self.fill_ring();
    }

    async fn completions(&mut self) -> Vec<Completed> {
        loop {
            self.reap();
            self.fill_ring();
            self.deadlines.expire(crate::clock::now());
            if self.deadlines.has_ready() || self.deadlines.is_idle() {
                return self.deadlines.take_ready();
            }
            let deadline = self.deadlines.next_deadline().expect("not idle");
            tokio::select! {
                guard = self.ring.readable() => {
                    // Cleared before reaping: a completion posted after this wakes us again.
                    guard.expect("polling the ring").clear_ready();
                }
                () = crate::storage::sleep_until(deadline) => {}
            }
        }
    }

    fn stats(&self) -> Stats {
        let mut stats = self.deadlines.stats();
        stats.abandoned_buffers = self.slots.len().saturating_sub(stats.in_flight);
        stats
    }
}

impl Drop for UringStorage {
    /// The kernel may still write into the buffers of I/Os it has not finished (a hung
    /// device): those are leaked rather than freed under it. Nothing blocks here.
    fn drop(&mut self) {
        self.reap();
        std::mem::forget(std::mem::take(&mut self.slots));
    }
}
