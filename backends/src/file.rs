//! The O_DIRECT file backend with worker threads: lease files (on local file systems or
//! kernel-mounted NFS) and block devices, for hosts where io_uring is not allowed (a seccomp
//! profile, `kernel.io_uring_disabled`). Each I/O is a blocking `pread`/`pwrite` on
//! `O_DIRECT | O_SYNC`, as sanlock's diskio does without aio, run on a worker thread so that a
//! hung file system stalls only that thread: the I/O is reported timed out at its deadline and
//! its buffer stays with the thread until the kernel returns.
//!
//! Where io_uring is available, [`crate::uring::UringStorage`] runs files too, faster: handing
//! each I/O to a thread and its completion back costs two thread wake-ups, about as much as a
//! 512-byte synchronous write on a virtual machine (see the storage benchmark).
//!
//! Files use 512-byte sectors, as sanlock assumes (`FileStorage::open_with_sector_size` says
//! otherwise); block devices their logical sector size.

use std::sync::Arc;

use async_trait::async_trait;
use sanlock_core::io::{IoError, IoId, IoOp, IoResult};
use sanlock_core::ondisk::SectorSize;

use crate::buffers::BufferPool;
use crate::disk::{AlignedBuf, Disk, DiskError, EMSGSIZE};
use crate::storage::{Completed, DiskId, DiskInfo, Inbox, Io, Stats, Storage};
use crate::workers::Workers;

/// -EAGAIN: no thread could be started for an I/O.
const EAGAIN: i32 = 11;
/// -EIO: an I/O that panicked.
const EIO: i32 = 5;

#[cfg(test)]
thread_local! {
    /// Spawns from this thread fail (a test's injection; tests run on threads of their own).
    static FAIL_SPAWNS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether thread spawns are made to fail (a test's injection; never outside tests).
fn spawn_fails() -> bool {
    #[cfg(test)]
    {
        FAIL_SPAWNS.get()
    }
    #[cfg(not(test))]
    {
        false
    }
}

/// Threads the backend may grow to. Beyond it I/Os wait for a thread (and time out at their
/// deadline if none frees up): a hung file system cannot make the daemon spawn without end.
pub const MAX_WORKERS: usize = 64;

/// The O_DIRECT file backend.
pub struct FileStorage {
    disks: Vec<(DiskInfo, Arc<Disk>)>,
    inbox: Inbox,
    workers: Workers<Job>,
    pool: BufferPool,
}

struct Job {
    id: IoId,
    deadline: sanlock_core::Time,
    disk: Arc<Disk>,
    offset: u64,
    write: bool,
    buf: AlignedBuf,
    done: tokio::sync::mpsc::UnboundedSender<(IoId, IoResult)>,
    pool: BufferPool,
}

impl Default for FileStorage {
    fn default() -> Self {
        FileStorage::new()
    }
}

impl FileStorage {
    /// A backend with no disks and no threads yet.
    pub fn new() -> Self {
        FileStorage {
            disks: Vec::new(),
            inbox: Inbox::default(),
            workers: Workers::new("sanlock-io", MAX_WORKERS, run),
            pool: BufferPool::default(),
        }
    }

    /// Opens a lease file or block device (read-write, or read-only when that is all the
    /// permissions allow). Files get 512-byte sectors.
    pub fn open(&mut self, path: &str) -> Result<DiskId, DiskError> {
        self.open_with_sector_size(path, None)
    }

    /// As [`FileStorage::open`], with the sector size of a file given (4096 for a file made
    /// for 4K leases).
    pub fn open_with_sector_size(
        &mut self,
        path: &str,
        file_sector: Option<SectorSize>,
    ) -> Result<DiskId, DiskError> {
        let (disk, info) = crate::disk::open_for_backend(path, file_sector)?;
        Ok(self.adopt(disk, info))
    }

    /// Takes a disk opened elsewhere with [`crate::disk::open_for_backend`] (a daemon opens on
    /// a thread of its own, since an open may block on a hung device or server).
    pub fn adopt(&mut self, disk: Disk, info: DiskInfo) -> DiskId {
        self.disks.push((info, Arc::new(disk)));
        DiskId(self.disks.len() - 1)
    }
}

/// One I/O on a worker thread: the blocking `pread`/`pwrite`, its buffer back to the pool
/// (or lent to the caller as the bytes read), its result to the inbox.
fn run(mut job: Job) {
    if crate::clock::now() >= job.deadline {
        // Reported timed out already, while it waited for a thread: not worth starting.
        job.pool.give(job.buf);
        return;
    }
    // A panic in the I/O fails that I/O; the thread and its counts go on.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if job.write {
            job.disk.write(job.offset, &job.buf)
        } else {
            job.disk.read_into(job.offset, &mut job.buf)
        }
    }))
    .unwrap_or_else(|_| {
        Err(crate::disk::DiskError {
            op: if job.write { "write" } else { "read" },
            path: Vec::new(),
            offset: Some(job.offset),
            errno: EIO,
            reason: "the I/O panicked".to_string(),
        })
    });
    let result = match outcome {
        Ok(()) if !job.write => Ok(job.pool.into_bytes(job.buf)),
        other => {
            job.pool.give(job.buf);
            other
                .map(|()| bytes::Bytes::new())
                .map_err(|e| match e.errno {
                    EMSGSIZE => IoError::Short,
                    errno => IoError::Failed(errno),
                })
        }
    };
    // The backend may be gone; a late completion has nowhere to go, which is fine.
    let _ = job.done.send((job.id, result));
}

#[async_trait]
impl Storage for FileStorage {
    fn disk(&self, disk: DiskId) -> Option<&DiskInfo> {
        self.disks.get(disk.0).map(|(info, _)| info)
    }

    fn submit(&mut self, ios: Vec<Io>) {
        for io in ios {
            let info = self.disks.get(io.disk.0).map(|(info, _)| info);
            if !self.inbox.deadlines.admit(&io, info) {
                continue;
            }
            let disk = Arc::clone(&self.disks[io.disk.0].1);
            let (write, buf) = match &io.op {
                IoOp::Read { len } => (false, self.pool.take(*len)),
                IoOp::Write { data } => (true, self.pool.copy_of(data)),
            };
            let job = Job {
                id: io.id,
                deadline: io.deadline,
                disk,
                offset: io.offset,
                write,
                buf,
                done: self.inbox.sender(),
                pool: self.pool.clone(),
            };
            if let Err(job) = self.workers.submit(job, spawn_fails()) {
                // No thread to run it: failed now, as a device error would.
                self.pool.give(job.buf);
                let _ = self
                    .inbox
                    .sender()
                    .send((io.id, Err(IoError::Failed(EAGAIN))));
            }
        }
    }

    async fn completions(&mut self) -> Vec<Completed> {
        self.inbox.completions().await
    }

    fn stats(&self) -> Stats {
        let mut stats = self.inbox.deadlines.stats();
        stats.abandoned_buffers = self.workers.running().saturating_sub(stats.in_flight);
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn read(id: u64) -> Io {
        Io {
            id: IoId(id),
            disk: DiskId(0),
            offset: 0,
            op: IoOp::Read { len: 512 },
            deadline: crate::clock::now() + Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn a_thread_that_cannot_be_spawned_fails_the_io_at_once_and_the_next_goes_through() {
        let dir = std::path::PathBuf::from(format!(
            "/var/tmp/sanlock-rs-tests/file-spawn-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let mut storage = FileStorage::new();
        storage.open(path.to_str().unwrap()).unwrap();
        FAIL_SPAWNS.set(true);
        storage.submit(vec![read(1)]);
        let got = tokio::time::timeout(Duration::from_secs(2), storage.completions())
            .await
            .expect("failed at once, not at the 10 s deadline");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].result, Err(IoError::Failed(EAGAIN)));
        FAIL_SPAWNS.set(false);
        storage.submit(vec![read(2)]);
        let got = storage.completions().await;
        assert_eq!(got[0].id, IoId(2));
        assert_eq!(got[0].result.as_ref().map(|b| b.len()), Ok(512));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
