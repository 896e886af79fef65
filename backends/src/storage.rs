//! The one storage trait every backend implements, and the deadline book they share.
//!
//! A backend runs the core's I/O requests: [`Storage::submit`] takes a batch, each I/O naming
//! its disk, offset, read length or bytes to write, the core's id and its deadline;
//! [`Storage::completions`] waits for the next completions. Every I/O completes exactly once:
//! with its bytes, with an error, or — when its deadline passes first — as
//! [`IoError::TimedOut`] at that deadline. The kernel or server may still be working on it then;
//! its buffer stays with the backend until it is done (as sanlock's diskio keeps an aio buffer),
//! and that late completion is counted and dropped.

use std::collections::{BTreeMap, VecDeque};

use async_trait::async_trait;
use sanlock_core::io::{IoError, IoId, IoOp, IoResult};
use sanlock_core::ondisk::SectorSize;
use sanlock_core::Time;

/// EINVAL: an I/O that is not whole sectors, or names no open disk.
pub const EINVAL: i32 = 22;
/// EROFS: a write to a disk opened read-only.
pub const EROFS: i32 = 30;
/// ENOSPC: an I/O past the end of a fixed-size disk (a block device).
pub const ENOSPC: i32 = 28;

/// Names a disk opened by a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiskId(pub usize);

/// What a backend knows of an open disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    /// How it was named (a path, or server:export/path).
    pub name: String,
    /// Offsets and lengths must be multiples of this.
    pub sector_size: SectorSize,
    /// Bytes on a fixed-size disk (a block device); `None` for a file, which writes extend.
    pub size: Option<u64>,
    /// Opened without write permission: writes fail with EROFS.
    pub read_only: bool,
}

/// One I/O for a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Io {
    /// The core's id, returned with the completion.
    pub id: IoId,
    /// Which open disk.
    pub disk: DiskId,
    /// Byte offset on the disk.
    pub offset: u64,
    /// Read `len` bytes, or write these.
    pub op: IoOp,
    /// When the I/O is reported failed if not complete (monotonic clock, [`crate::clock`]).
    pub deadline: Time,
}

impl Io {
    /// The core's request `r`, on `disk`.
    pub fn on(disk: DiskId, r: sanlock_core::io::IoRequest) -> Io {
        Io {
            id: r.id,
            disk,
            offset: r.offset,
            op: r.op,
            deadline: r.deadline,
        }
    }
}

/// A finished I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    /// The id it was submitted with.
    pub id: IoId,
    /// Bytes read (empty for a write), or why it failed.
    pub result: IoResult,
}

/// Counters every backend keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// I/Os submitted and not yet reported.
    pub in_flight: usize,
    /// I/Os reported as timed out at their deadline.
    pub timed_out: u64,
    /// Completions that arrived after their I/O was reported timed out (dropped).
    pub late: u64,
    /// I/Os whose buffers the kernel or server still holds after a timeout.
    pub abandoned_buffers: usize,
}

/// Runs I/O requests with deadlines. One per daemon (or per test); not shared between threads.
#[async_trait]
pub trait Storage: Send {
    /// What the backend knows of an open disk.
    fn disk(&self, disk: DiskId) -> Option<&DiskInfo>;

    /// Queues I/Os. One that cannot run (not whole sectors, past the end of a fixed disk, a
    /// write to a read-only disk, an unknown disk, a duplicate id) completes at once with an
    /// error; the others run concurrently, in no promised order.
    fn submit(&mut self, ios: Vec<Io>);

    /// Waits until at least one I/O has completed or passed its deadline, and returns all
    /// those that have. Returns an empty list at once when nothing is in flight.
    async fn completions(&mut self) -> Vec<Completed>;

    /// The counters.
    fn stats(&self) -> Stats;
}

/// A boxed backend is a backend (so wrappers such as [`crate::faults::Faulty`] take any).
#[async_trait]
impl Storage for Box<dyn Storage> {
    fn disk(&self, disk: DiskId) -> Option<&DiskInfo> {
        (**self).disk(disk)
    }

    fn submit(&mut self, ios: Vec<Io>) {
        (**self).submit(ios);
    }

    async fn completions(&mut self) -> Vec<Completed> {
        (**self).completions().await
    }

    fn stats(&self) -> Stats {
        (**self).stats()
    }
}

/// Checks an I/O against its disk before it goes anywhere near the disk.
pub fn check(io: &Io, info: Option<&DiskInfo>) -> Result<(), IoError> {
    let Some(info) = info else {
        return Err(IoError::Failed(EINVAL));
    };
    let len = match &io.op {
        IoOp::Read { len } => *len as u64,
        IoOp::Write { data } => {
            if info.read_only {
                return Err(IoError::Failed(EROFS));
            }
            data.len() as u64
        }
    };
    let ss = u64::from(info.sector_size.bytes());
    if len == 0 || len % ss != 0 || io.offset % ss != 0 {
        return Err(IoError::Failed(EINVAL));
    }
    if let Some(size) = info.size {
        if io.offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(IoError::Failed(ENOSPC));
        }
    }
    Ok(())
}

/// The deadline book: which I/Os are waited for and until when, what is ready to report, and
/// what came too late. Every backend reports through one of these.
#[derive(Debug, Default)]
pub struct Deadlines {
    pending: BTreeMap<IoId, Time>,
    ready: VecDeque<Completed>,
    timed_out: u64,
    late: u64,
}

impl Deadlines {
    /// Starts waiting for `io`; a refused I/O (see [`check`]) or a duplicate id is reported
    /// at once, and `false` returned so the caller does not run it.
    pub fn start(&mut self, io: &Io, refusal: Result<(), IoError>) -> bool {
        let refusal = match refusal {
            Ok(()) if self.pending.contains_key(&io.id) => Err(IoError::Failed(EINVAL)),
            other => other,
        };
        if let Err(e) = refusal {
            self.ready.push_back(Completed {
                id: io.id,
                result: Err(e),
            });
            return false;
        }
        self.pending.insert(io.id, io.deadline);
        true
    }

    /// [`check`]s `io` against its disk and starts waiting for it if it passes; false when it
    /// was refused (reported at once) and must not run.
    pub fn admit(&mut self, io: &Io, disk: Option<&DiskInfo>) -> bool {
        self.start(io, check(io, disk))
    }

    /// A completion from the kernel or server at `now`. After its deadline it is a timeout,
    /// whatever it carries; after the timeout was reported it is dropped.
    pub fn finish(&mut self, now: Time, id: IoId, result: IoResult) {
        match self.pending.remove(&id) {
            Some(deadline) if now >= deadline => {
                self.timed_out += 1;
                self.late += 1;
                self.ready.push_back(Completed {
                    id,
                    result: Err(IoError::TimedOut),
                });
            }
            Some(_) => self.ready.push_back(Completed { id, result }),
            None => self.late += 1,
        }
    }

    /// Whether `id` is still waited for (neither completed nor timed out).
    pub fn is_pending(&self, id: IoId) -> bool {
        self.pending.contains_key(&id)
    }

    /// Reports every I/O whose deadline is at or before `now` as timed out.
    pub fn expire(&mut self, now: Time) {
        if self.next_deadline().is_none_or(|d| d > now) {
            return;
        }
        let expired: Vec<IoId> = self
            .pending
            .iter()
            .filter(|(_, &deadline)| deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.pending.remove(&id);
            self.timed_out += 1;
            self.ready.push_back(Completed {
                id,
                result: Err(IoError::TimedOut),
            });
        }
    }

    /// The earliest deadline still waited for.
    pub fn next_deadline(&self) -> Option<Time> {
        self.pending.values().min().copied()
    }

    /// Whether anything is ready to report.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether anything is waited for or ready.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.ready.is_empty()
    }

    /// Takes what is ready.
    pub fn take_ready(&mut self) -> Vec<Completed> {
        self.ready.drain(..).collect()
    }

    /// The counters (the backend adds its abandoned buffers).
    pub fn stats(&self) -> Stats {
        Stats {
            in_flight: self.pending.len(),
            timed_out: self.timed_out,
            late: self.late,
            abandoned_buffers: 0,
        }
    }
}

/// The completion side of backends whose I/O finishes on other threads or tasks: they send
/// `(id, result)` here, and [`Inbox::completions`] judges them against the deadlines.
#[derive(Debug)]
pub struct Inbox {
    /// The deadline book.
    pub deadlines: Deadlines,
    tx: tokio::sync::mpsc::UnboundedSender<(IoId, IoResult)>,
    rx: tokio::sync::mpsc::UnboundedReceiver<(IoId, IoResult)>,
}

impl Default for Inbox {
    fn default() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Inbox {
            deadlines: Deadlines::default(),
            tx,
            rx,
        }
    }
}

impl Inbox {
    /// Where workers send completions.
    pub fn sender(&self) -> tokio::sync::mpsc::UnboundedSender<(IoId, IoResult)> {
        self.tx.clone()
    }

    /// See [`Storage::completions`].
    pub async fn completions(&mut self) -> Vec<Completed> {
        loop {
            while let Ok((id, result)) = self.rx.try_recv() {
                self.deadlines.finish(crate::clock::now(), id, result);
            }
            self.deadlines.expire(crate::clock::now());
            if self.deadlines.has_ready() || self.deadlines.is_idle() {
                return self.deadlines.take_ready();
            }
            let deadline = self.deadlines.next_deadline().expect("not idle");
            tokio::select! {
                got = self.rx.recv() => {
                    let (id, result) = got.expect("the inbox holds a sender");
                    self.deadlines.finish(crate::clock::now(), id, result);
                }
                () = sleep_until(deadline) => {}
            }
        }
    }
}

/// Sleeps until `deadline` on the monotonic clock (at once if it has passed).
pub async fn sleep_until(deadline: Time) {
    let now = crate::clock::now();
    if deadline > now {
        tokio::time::sleep(deadline.saturating_since(now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(size: Option<u64>, read_only: bool) -> DiskInfo {
        DiskInfo {
            name: "d".into(),
            sector_size: SectorSize::Bytes512,
            size,
            read_only,
        }
    }

    fn io(offset: u64, op: IoOp) -> Io {
        Io {
            id: IoId(1),
            disk: DiskId(0),
            offset,
            op,
            deadline: Time::from_secs(10),
        }
    }

    #[test]
    fn only_whole_sectors_inside_a_fixed_disk_and_writes_to_writable_disks_pass() {
        let rw = info(Some(4096), false);
        let read = |off, len| io(off, IoOp::Read { len });
        let write = |off, len| io(off, IoOp::Write { data: vec![0; len] });
        assert_eq!(check(&read(0, 512), Some(&rw)), Ok(()));
        assert_eq!(check(&read(3584, 512), Some(&rw)), Ok(()));
        assert_eq!(
            check(&read(100, 512), Some(&rw)),
            Err(IoError::Failed(EINVAL))
        );
        assert_eq!(
            check(&read(0, 100), Some(&rw)),
            Err(IoError::Failed(EINVAL))
        );
        assert_eq!(check(&read(0, 0), Some(&rw)), Err(IoError::Failed(EINVAL)));
        assert_eq!(
            check(&read(4096, 512), Some(&rw)),
            Err(IoError::Failed(ENOSPC))
        );
        assert_eq!(
            check(&read(u64::MAX - 511, 512), Some(&rw)),
            Err(IoError::Failed(ENOSPC))
        );
        assert_eq!(check(&read(1 << 40, 512), Some(&info(None, false))), Ok(()));
        assert_eq!(
            check(&write(0, 512), Some(&info(None, true))),
            Err(IoError::Failed(EROFS))
        );
        assert_eq!(check(&read(0, 512), Some(&info(None, true))), Ok(()));
        assert_eq!(check(&read(0, 512), None), Err(IoError::Failed(EINVAL)));
    }

    #[test]
    fn the_book_reports_each_io_once_and_drops_what_comes_after_its_deadline() {
        let mut d = Deadlines::default();
        let a = io(0, IoOp::Read { len: 512 });
        let b = Io {
            id: IoId(2),
            ..a.clone()
        };
        let c = Io {
            id: IoId(3),
            deadline: Time::from_secs(20),
            ..a.clone()
        };
        assert!(d.start(&a, Ok(())));
        assert!(!d.start(&a, Ok(())), "a duplicate id is refused");
        assert!(d.start(&b, Ok(())));
        assert!(d.start(&c, Ok(())));
        assert_eq!(d.next_deadline(), Some(Time::from_secs(10)));
        d.finish(Time::from_secs(5), IoId(1), Ok(vec![1].into()));
        d.expire(Time::from_secs(10));
        d.finish(Time::from_secs(11), IoId(2), Ok(vec![2].into()));
        d.finish(Time::from_secs(20), IoId(3), Ok(vec![3].into()));
        let got: Vec<(u64, IoResult)> = d
            .take_ready()
            .into_iter()
            .map(|c| (c.id.0, c.result))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, Err(IoError::Failed(EINVAL))),
                (1, Ok(vec![1].into())),
                (2, Err(IoError::TimedOut)),
                (3, Err(IoError::TimedOut)),
            ]
        );
        let s = d.stats();
        assert_eq!((s.in_flight, s.timed_out, s.late), (0, 2, 2));
        assert!(d.is_idle());
    }
}
