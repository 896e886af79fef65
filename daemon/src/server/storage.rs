//! The daemon's storage: io_uring where the kernel allows it (block devices and files, both
//! with O_DIRECT), else worker threads doing `pread`/`pwrite` on O_DIRECT. One per daemon,
//! with each path opened once.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sanlock_backends::disk::DiskError;
use sanlock_backends::file::FileStorage;
use sanlock_backends::uring::UringStorage;
use sanlock_backends::{Completed, DiskId, DiskInfo, Io, Stats, Storage};

/// io_uring or threads.
pub enum Backend {
    /// One ring (boxed: it is much larger than the thread pool's handle).
    Uring(Box<UringStorage>),
    /// Worker threads.
    Threads(FileStorage),
}

/// A backend and the disks it has open, by path.
pub struct DaemonStorage {
    backend: Backend,
    by_path: BTreeMap<Vec<u8>, DiskId>,
}

impl DaemonStorage {
    /// io_uring if it can be set up (inside the tokio runtime), else threads.
    pub fn new() -> Self {
        let backend = match UringStorage::new() {
            Ok(u) => Backend::Uring(Box::new(u)),
            Err(_) => Backend::Threads(FileStorage::new()),
        };
        DaemonStorage {
            backend,
            by_path: BTreeMap::new(),
        }
    }

    /// Which backend runs.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Uring(_) => "io_uring",
            Backend::Threads(_) => "threads",
        }
    }

    /// The disk at `path`, opened now if it was not yet (-errno of the open on failure).
    pub fn open(&mut self, path: &[u8]) -> Result<DiskId, DiskError> {
        if let Some(&id) = self.by_path.get(path) {
            return Ok(id);
        }
        let text = std::str::from_utf8(path).map_err(|_| DiskError {
            op: "open",
            path: path.to_vec(),
            offset: None,
            errno: 22,
            reason: "path is not UTF-8".into(),
        })?;
        let id = match &mut self.backend {
            Backend::Uring(u) => u.open(text)?,
            Backend::Threads(t) => t.open(text)?,
        };
        self.by_path.insert(path.to_vec(), id);
        Ok(id)
    }
}

impl Default for DaemonStorage {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Storage for DaemonStorage {
    fn disk(&self, disk: DiskId) -> Option<&DiskInfo> {
        match &self.backend {
            Backend::Uring(u) => u.disk(disk),
            Backend::Threads(t) => t.disk(disk),
        }
    }

    fn submit(&mut self, ios: Vec<Io>) {
        match &mut self.backend {
            Backend::Uring(u) => u.submit(ios),
            Backend::Threads(t) => t.submit(ios),
        }
    }

    async fn completions(&mut self) -> Vec<Completed> {
        match &mut self.backend {
            Backend::Uring(u) => u.completions().await,
            Backend::Threads(t) => t.completions().await,
        }
    }

    fn stats(&self) -> Stats {
        match &self.backend {
            Backend::Uring(u) => u.stats(),
            Backend::Threads(t) => t.stats(),
        }
    }
}
