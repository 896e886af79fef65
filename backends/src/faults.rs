//! Fault injection around any backend, for tests: per disk and byte range, delay completions,
//! fail I/Os with an errno, hang them (they time out at their deadline), or corrupt the sectors
//! a read returns.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use sanlock_core::io::{IoError, IoId, IoOp};
use sanlock_core::Time;

use crate::storage::{check, Completed, Deadlines, DiskId, DiskInfo, Io, Stats, Storage};

/// What happens to a matching I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Its completion is held back this long (past its deadline it times out).
    Delay(Duration),
    /// It fails at once with this errno, without reaching the disk.
    Error(i32),
    /// It never reaches the disk and never completes: it times out at its deadline.
    Hang,
    /// A read returns each sector in the range with its first byte inverted (a bad checksum).
    Corrupt,
}

/// One rule: I/Os on `disk` that overlap `range` (bytes), reads and/or writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The disk.
    pub disk: DiskId,
    /// The byte range.
    pub range: Range<u64>,
    /// Applies to reads.
    pub reads: bool,
    /// Applies to writes.
    pub writes: bool,
    /// What happens.
    pub kind: FaultKind,
}

impl Fault {
    /// `kind` on every I/O of `disk` overlapping `range`.
    pub fn new(disk: DiskId, range: Range<u64>, kind: FaultKind) -> Self {
        Fault {
            disk,
            range,
            reads: true,
            writes: true,
            kind,
        }
    }

    fn matches(&self, io: &Io) -> bool {
        let (len, write) = match &io.op {
            IoOp::Read { len } => (*len as u64, false),
            IoOp::Write { data } => (data.len() as u64, true),
        };
        let overlaps = io.offset < self.range.end && self.range.start < io.offset + len;
        io.disk == self.disk && overlaps && if write { self.writes } else { self.reads }
    }
}

/// A backend with faults injected.
pub struct Faulty<S> {
    inner: S,
    faults: Vec<Fault>,
    /// Hung and failed I/Os: their own deadline book.
    own: Deadlines,
    /// Completions held back until a time.
    delayed: VecDeque<(Time, Completed)>,
    /// Reads to corrupt when they complete: (id, disk, offset).
    corrupt: Vec<(IoId, DiskId, u64)>,
    /// Delays to apply to completions of these ids, and their deadlines.
    delays: Vec<(IoId, Duration, Time)>,
}

impl<S: Storage> Faulty<S> {
    /// Wraps `inner` with no faults.
    pub fn new(inner: S) -> Self {
        Faulty {
            inner,
            faults: Vec::new(),
            own: Deadlines::default(),
            delayed: VecDeque::new(),
            corrupt: Vec::new(),
            delays: Vec::new(),
        }
    }

    /// Replaces the rules (for I/Os submitted from now on).
    pub fn set_faults(&mut self, faults: Vec<Fault>) {
        self.faults = faults;
    }

    /// The wrapped backend (to open disks on it).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped backend, to open disks on it.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    fn corrupt_read(&self, completed: &mut Completed) {
        let Some(&(_, disk, offset)) = self.corrupt.iter().find(|c| c.0 == completed.id) else {
            return;
        };
        let Ok(read) = &completed.result else {
            return;
        };
        let Some(ss) = self.inner.disk(disk).map(|d| d.sector_size.as_usize()) else {
            return;
        };
        let mut bytes = read.to_vec();
        for fault in self.faults.iter().filter(|f| f.kind == FaultKind::Corrupt) {
            for (i, sector) in bytes.chunks_mut(ss).enumerate() {
                let at = offset + (i * ss) as u64;
                if fault.disk == disk && fault.range.contains(&at) {
                    sector[0] = !sector[0];
                }
            }
        }
        completed.result = Ok(bytes.into());
    }

    fn take_own_ready(&mut self, now: Time) -> Vec<Completed> {
        self.own.expire(now);
        let mut out = self.own.take_ready();
        while self.delayed.front().is_some_and(|(at, _)| *at <= now) {
            let (_, c) = self.delayed.pop_front().expect("checked");
            out.push(c);
        }
        out
    }

    /// Applies corruption and delays to what the inner backend completed.
    fn receive(&mut self, now: Time, completed: Vec<Completed>) -> Vec<Completed> {
        let mut out = Vec::new();
        for mut c in completed {
            self.corrupt_read(&mut c);
            self.corrupt.retain(|x| x.0 != c.id);
            match self.delays.iter().position(|d| d.0 == c.id) {
                Some(i) => {
                    let (_, delay, deadline) = self.delays.swap_remove(i);
                    // Held past its deadline, it times out there, as a slow disk's I/O would.
                    let release = now + delay;
                    let (at, c) = if release >= deadline {
                        let result = Err(IoError::TimedOut);
                        (deadline.max(now), Completed { id: c.id, result })
                    } else {
                        (release, c)
                    };
                    self.delayed.push_back((at, c));
                    self.delayed.make_contiguous().sort_by_key(|(at, _)| *at);
                }
                None => out.push(c),
            }
        }
        out
    }
}

#[async_trait]
impl<S: Storage> Storage for Faulty<S> {
    fn disk(&self, disk: DiskId) -> Option<&DiskInfo> {
        self.inner.disk(disk)
    }

    fn submit(&mut self, ios: Vec<Io>) {
        let mut pass = Vec::new();
        for io in ios {
            let fault = self.faults.iter().find(|f| f.matches(&io)).cloned();
            match fault.map(|f| f.kind) {
                Some(FaultKind::Error(errno)) => {
                    self.own.start(&io, Err(IoError::Failed(errno)));
                }
                Some(FaultKind::Hang) => {
                    let refusal = check(&io, self.inner.disk(io.disk));
                    self.own.start(&io, refusal);
                }
                Some(FaultKind::Delay(d)) => {
                    self.delays.push((io.id, d, io.deadline));
                    pass.push(io);
                }
                Some(FaultKind::Corrupt) => {
                    if matches!(io.op, IoOp::Read { .. }) {
                        self.corrupt.push((io.id, io.disk, io.offset));
                    }
                    pass.push(io);
                }
                None => pass.push(io),
            }
        }
        if !pass.is_empty() {
            self.inner.submit(pass);
        }
    }

    async fn completions(&mut self) -> Vec<Completed> {
        loop {
            let now = crate::clock::now();
            let ready = self.take_own_ready(now);
            if !ready.is_empty() {
                return ready;
            }
            let next_own = [
                self.own.next_deadline(),
                self.delayed.front().map(|(at, _)| *at),
            ]
            .into_iter()
            .flatten()
            .min();
            if self.inner.stats().in_flight == 0 {
                match next_own {
                    None => return Vec::new(),
                    Some(at) => crate::storage::sleep_until(at).await,
                }
                continue;
            }
            // No own deadline: wait for the inner backend alone.
            let own_wake = async {
                match next_own {
                    Some(at) => crate::storage::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                got = self.inner.completions() => {
                    let out = self.receive(crate::clock::now(), got);
                    if !out.is_empty() {
                        return out;
                    }
                }
                () = own_wake => {}
            }
        }
    }

    fn stats(&self) -> Stats {
        let inner = self.inner.stats();
        let own = self.own.stats();
        Stats {
            in_flight: inner.in_flight + own.in_flight + self.delayed.len(),
            timed_out: inner.timed_out + own.timed_out,
            late: inner.late + own.late,
            abandoned_buffers: inner.abandoned_buffers,
        }
    }
}
