//! The io_uring backend, for block devices (it runs files too): one ring per backend, many
//! I/Os in flight. An I/O still in the ring at its deadline is reported timed out then, and an
//! async cancel is sent for it (block I/O rarely can be cancelled; a linked timeout per I/O
//! would cost every I/O a kernel timer for the rare one that needs it). Its buffer stays in
//! the backend's slot table until the kernel posts the completion (a device that never
//! answers keeps the slot, as a pending aio keeps sanlock's buffer). The ring's file
//! descriptor is polled by tokio, so waiting costs no thread.
//!
//! Offsets and lengths are checked against the device's logical sector size (BLKSSZGET) and
//! size before anything is queued.

use std::collections::{BTreeMap, VecDeque};
use std::io;

use async_trait::async_trait;
use io_uring::{opcode, squeue, types, IoUring};
use sanlock_core::io::{IoError, IoId, IoOp};
use tokio::io::unix::AsyncFd;

use crate::buffers::BufferPool;
use crate::disk::{AlignedBuf, Disk, DiskError};
use crate::storage::{Completed, Deadlines, DiskId, DiskInfo, Io, Stats, Storage};

/// Submission queue entries; each I/O takes one, and one more if it has to be cancelled.
const RING_ENTRIES: u32 = 256;
/// I/Os in the ring at once; the rest wait in the backlog. Half the entries, so the completion
/// queue (twice the entries) never overflows.
const MAX_IN_RING: usize = (RING_ENTRIES / 2) as usize;
/// user_data of a cancel request's own completion, which says nothing we need.
const CANCEL_TAG: u64 = u64::MAX;
/// ECANCELED: the I/O was cancelled after its deadline.
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
    pool: BufferPool,
}

struct Slot {
    id: IoId,
    len: usize,
    write: bool,
    buf: AlignedBuf,
    /// A cancel was sent after its deadline.
    cancelled: bool,
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
            pool: BufferPool::default(),
        })
    }

    /// Opens a block device (or a file: 512-byte sectors) read-write, or read-only when that is
    /// all the permissions allow.
    pub fn open(&mut self, path: &str) -> Result<DiskId, DiskError> {
        let (disk, info) = crate::disk::open_for_backend(path, None)?;
        Ok(self.adopt(disk, info))
    }

    /// Takes a disk opened elsewhere with [`crate::disk::open_for_backend`] (a daemon opens on
    /// a thread of its own, since an open may block on a hung device or server).
    pub fn adopt(&mut self, disk: Disk, info: DiskInfo) -> DiskId {
        self.disks.push((info, disk));
        DiskId(self.disks.len() - 1)
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
            self.push(io);
            queued = true;
        }
        let waiting = !self.ring.get_mut().submission().is_empty();
        if queued || waiting {
            // EINTR, EAGAIN or EBUSY leave the entries queued; the next call submits them, and
            // their deadlines bound the wait meanwhile.
            let _ = self.ring.get_mut().submit();
        }
    }

    fn push(&mut self, io: Io) {
        let (write, len, buf) = match io.op {
            IoOp::Read { len } => (false, len, self.pool.take(len)),
            IoOp::Write { data } => (true, data.len(), self.pool.copy_of(&data)),
        };
        let key = self.next_slot;
        self.next_slot += 1;
        let mut slot = Slot {
            id: io.id,
            len,
            write,
            buf,
            cancelled: false,
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
        let entry = entry.user_data(key);
        // SAFETY: the buffer lives in `slot`, which stays in `self.slots` until the kernel
        // posts this entry's completion (see `reap`), or is leaked by `Drop` if it never does;
        // the fd belongs to a disk that lives as long as the ring.
        unsafe { self.push_entry(&entry) };
        self.slots.insert(key, slot);
    }

    /// Queues one entry, submitting first if the queue is full (the ring holds at most half
    /// its entries in I/Os, so room comes back at once).
    ///
    /// # Safety
    /// As for `io_uring::SubmissionQueue::push`: what the entry points at outlives its use.
    unsafe fn push_entry(&mut self, entry: &squeue::Entry) {
        let ring = self.ring.get_mut();
        if ring.submission().is_full() {
            let _ = ring.submit();
        }
        // SAFETY: passed on from the caller.
        unsafe { ring.submission().push(entry) }.expect("room after submitting");
    }

    /// Sends an async cancel for each I/O whose deadline has passed (reported timed out
    /// already), once.
    fn cancel_overdue(&mut self) {
        let overdue: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, slot)| !slot.cancelled && !self.deadlines.is_pending(slot.id))
            .map(|(&key, _)| key)
            .collect();
        for key in &overdue {
            let cancel = opcode::AsyncCancel::new(*key).build().user_data(CANCEL_TAG);
            // SAFETY: a cancel points at nothing in memory.
            unsafe { self.push_entry(&cancel) };
            if let Some(slot) = self.slots.get_mut(key) {
                slot.cancelled = true;
            }
        }
        if !overdue.is_empty() {
            let _ = self.ring.get_mut().submit();
        }
    }

    /// Takes every completion the kernel has posted.
    fn reap(&mut self) {
        let now = crate::clock::now();
        let mut done = Vec::new();
        for cqe in self.ring.get_mut().completion() {
            if cqe.user_data() != CANCEL_TAG {
                done.push((cqe.user_data(), cqe.result()));
            }
        }
        for (key, res) in done {
            let Some(slot) = self.slots.remove(&key) else {
                continue;
            };
            let outcome = match res {
                n if n < 0 && -n == ECANCELED => Err(IoError::TimedOut),
                n if n < 0 => Err(IoError::Failed(-n)),
                n if usize::try_from(n).ok() != Some(slot.len) => Err(IoError::Short),
                _ => Ok(()),
            };
            let result = match outcome {
                Ok(()) if !slot.write => Ok(self.pool.into_bytes(slot.buf)),
                other => {
                    self.pool.give(slot.buf);
                    other.map(|()| bytes::Bytes::new())
                }
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
            let info = self.disks.get(io.disk.0).map(|(info, _)| info);
            if self.deadlines.admit(&io, info) {
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
            self.cancel_overdue();
            if self.deadlines.has_ready() || self.deadlines.is_idle() {
                return self.deadlines.take_ready();
            }
            let deadline = self.deadlines.next_deadline().expect("not idle");
            tokio::select! {
                biased;
                guard = self.ring.readable() => match guard {
                    // Cleared before reaping: a completion posted after this wakes us again.
                    Ok(mut guard) => guard.clear_ready(),
                    // The reactor is going away (the runtime shuts down): no panic in the
                    // daemon's loop; the deadlines still report every I/O.
                    Err(_) => crate::storage::sleep_until(deadline).await,
                },
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
