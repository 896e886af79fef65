//! The daemon's storage: io_uring where the kernel allows it (block devices and files, both
//! with O_DIRECT), else worker threads doing `pread`/`pwrite` on O_DIRECT. One per daemon,
//! with each path opened once.
//!
//! A daemon run in-process by a test may carry a [`FaultSwitch`]: rules set on it from another
//! thread (hang, fail, delay or corrupt the I/O of a path) apply to I/O submitted from then on,
//! through the backends' fault wrapper. The `sanlock` binary never has one.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sanlock_backends::disk::{Disk, DiskError};
use sanlock_backends::faults::{Fault, FaultKind, Faulty};
use sanlock_backends::file::FileStorage;
use sanlock_backends::uring::UringStorage;
use sanlock_backends::{Completed, DiskId, DiskInfo, Io, Stats, Storage};

/// A disk opened for the backends, not yet handed to one.
pub struct OpenedDisk(Disk, DiskInfo);

/// Opens the disk at `path` as the backends want it (O_DIRECT, read-only where that is all
/// the permissions allow). It may block: call it on a blocking thread.
pub fn open_disk(path: &[u8]) -> Result<OpenedDisk, DiskError> {
    let text = std::str::from_utf8(path).map_err(|_| DiskError {
        op: "open",
        path: path.to_vec(),
        offset: None,
        errno: 22,
        reason: "path is not UTF-8".into(),
    })?;
    let (disk, info) = sanlock_backends::disk::open_for_backend(text, None)?;
    Ok(OpenedDisk(disk, info))
}

/// io_uring or threads.
pub enum Backend {
    /// One ring (boxed: it is much larger than the thread pool's handle).
    Uring(Box<UringStorage>),
    /// Worker threads.
    Threads(FileStorage),
}

/// Fault rules by path, shared with whoever injects them (tests).
#[derive(Clone, Default)]
pub struct FaultSwitch {
    rules: Arc<Mutex<Option<Vec<PathFault>>>>,
}

/// One rule: I/O on `path` overlapping `range` (bytes) gets `kind`.
#[derive(Clone, Debug)]
pub struct PathFault {
    /// The disk, as the daemon was asked to open it.
    pub path: Vec<u8>,
    /// The byte range.
    pub range: Range<u64>,
    /// What happens to matching I/O.
    pub kind: FaultKind,
}

impl FaultSwitch {
    /// Replaces the rules; `vec![]` clears them.
    pub fn set(&self, rules: Vec<PathFault>) {
        *self.rules.lock().unwrap_or_else(|e| e.into_inner()) = Some(rules);
    }

    fn take(&self) -> Option<Vec<PathFault>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A backend and the disks it has open, by path.
pub struct DaemonStorage {
    io: Layer,
    by_path: BTreeMap<Vec<u8>, DiskId>,
    switch: Option<FaultSwitch>,
}

enum Layer {
    Plain(Backend),
    Faulty(Box<Faulty<Backend>>),
}

impl DaemonStorage {
    /// io_uring if it can be set up (inside the tokio runtime), else threads.
    pub fn new() -> Self {
        DaemonStorage {
            io: Layer::Plain(Backend::new()),
            by_path: BTreeMap::new(),
            switch: None,
        }
    }

    /// The same backend behind the fault wrapper, its rules set through `switch`.
    pub fn with_faults(switch: FaultSwitch) -> Self {
        DaemonStorage {
            io: Layer::Faulty(Box::new(Faulty::new(Backend::new()))),
            by_path: BTreeMap::new(),
            switch: Some(switch),
        }
    }

    /// Which backend runs.
    pub fn kind(&self) -> &'static str {
        match self.backend() {
            Backend::Uring(_) => "io_uring",
            Backend::Threads(_) => "threads",
        }
    }

    /// The disk at `path`, opened now if it was not yet. It may block: for the `direct`
    /// actions, which have no event loop; the daemon opens with [`open_disk`] on a blocking
    /// thread and hands the disk to [`DaemonStorage::adopt`].
    pub fn open(&mut self, path: &[u8]) -> Result<DiskId, DiskError> {
        if let Some(id) = self.opened(path) {
            return Ok(id);
        }
        let opened = open_disk(path)?;
        Ok(self.adopt(path, opened))
    }

    /// The disk at `path`, if it is open.
    pub fn opened(&self, path: &[u8]) -> Option<DiskId> {
        self.by_path.get(path).copied()
    }

    /// Takes the disk at `path`, opened by [`open_disk`] off the event loop. A path opened
    /// meanwhile keeps its first disk.
    pub fn adopt(&mut self, path: &[u8], opened: OpenedDisk) -> DiskId {
        if let Some(id) = self.opened(path) {
            return id;
        }
        let OpenedDisk(disk, info) = opened;
        let id = match self.backend_mut() {
            Backend::Uring(u) => u.adopt(disk, info),
            Backend::Threads(t) => t.adopt(disk, info),
        };
        self.by_path.insert(path.to_vec(), id);
        id
    }

    fn backend(&self) -> &Backend {
        match &self.io {
            Layer::Plain(b) => b,
            Layer::Faulty(f) => f.inner(),
        }
    }

    fn backend_mut(&mut self) -> &mut Backend {
        match &mut self.io {
            Layer::Plain(b) => b,
            Layer::Faulty(f) => f.inner_mut(),
        }
    }

    /// Applies rules set on the switch since the last submit.
    fn refresh_faults(&mut self) {
        let Some(rules) = self.switch.as_ref().and_then(FaultSwitch::take) else {
            return;
        };
        let faults = rules
            .into_iter()
            .filter_map(|r| {
                let disk = *self.by_path.get(&r.path)?;
                Some(Fault::new(disk, r.range, r.kind))
            })
            .collect();
        if let Layer::Faulty(f) = &mut self.io {
            f.set_faults(faults);
        }
    }
}

impl Default for DaemonStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl Backend {
    fn new() -> Self {
        match UringStorage::new() {
            Ok(u) => Backend::Uring(Box::new(u)),
            Err(_) => Backend::Threads(FileStorage::new()),
        }
    }
}

#[async_trait]
impl Storage for Backend {
    fn disk(&self, disk: DiskId) -> Option<&DiskInfo> {
        match self {
            Backend::Uring(u) => u.disk(disk),
            Backend::Threads(t) => t.disk(disk),
        }
    }

    fn submit(&mut self, ios: Vec<Io>) {
        match self {
            Backend::Uring(u) => u.submit(ios),
            Backend::Threads(t) => t.submit(ios),
        }
    }

    async fn completions(&mut self) -> Vec<Completed> {
        match self {
            Backend::Uring(u) => u.completions().await,
            Backend::Threads(t) => t.completions().await,
        }
    }

    fn stats(&self) -> Stats {
        match self {
            Backend::Uring(u) => u.stats(),
            Backend::Threads(t) => t.stats(),
        }
    }
}

#[async_trait]
impl Storage for DaemonStorage {
    fn disk(&self, disk: DiskId) -> Option<&DiskInfo> {
        self.backend().disk(disk)
    }

    fn submit(&mut self, ios: Vec<Io>) {
        self.refresh_faults();
        match &mut self.io {
            Layer::Plain(b) => b.submit(ios),
            Layer::Faulty(f) => f.submit(ios),
        }
    }

    async fn completions(&mut self) -> Vec<Completed> {
        match &mut self.io {
            Layer::Plain(b) => b.completions().await,
            Layer::Faulty(f) => f.completions().await,
        }
    }

    fn stats(&self) -> Stats {
        match &self.io {
            Layer::Plain(b) => b.stats(),
            Layer::Faulty(f) => f.stats(),
        }
    }
}
