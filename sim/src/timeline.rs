//! What happened, per host, for the report of a failing run: I/Os, the host's outputs, process
//! and fault events. Entries are kept as values and only formatted when printed; a digest of
//! every entry shows that one seed gives one run.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use sanlock_core::host::{Output, Target};

/// How an I/O went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Completed after this long.
    Done(Duration),
    /// Failed with EIO after this long; a write may have landed anyway.
    Failed {
        /// Whether a write reached the disk.
        landed: bool,
    },
    /// Outlived its deadline: completes long after it.
    Hung {
        /// Whether a write reached the disk (perhaps after the deadline).
        landed: bool,
    },
    /// A read that returns one sector with its timestamp word zeroed.
    Corrupted,
}

/// One entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum What {
    /// An I/O the host started.
    Io {
        /// Whose.
        target: Target,
        /// Read or write.
        write: bool,
        /// Where.
        offset: u64,
        /// How many bytes.
        len: usize,
        /// How it goes.
        fate: Fate,
    },
    /// Something the host reported.
    Output(Output),
    /// Anything else (faults, processes, the policy).
    Note(String),
}

/// The newest entries of a run, and a digest of all of them.
#[derive(Debug)]
pub struct Timeline {
    entries: VecDeque<(Duration, usize, What)>,
    cap: usize,
    digest: Fnv,
    total: u64,
}

impl Timeline {
    /// Keeps the newest `cap` entries.
    pub fn new(cap: usize) -> Self {
        Timeline {
            entries: VecDeque::new(),
            cap,
            digest: Fnv::default(),
            total: 0,
        }
    }

    /// Records `what` of host `host` at world time `at`.
    pub fn push(&mut self, at: Duration, host: usize, what: What) {
        at.hash(&mut self.digest);
        host.hash(&mut self.digest);
        what.hash(&mut self.digest);
        self.total += 1;
        if self.entries.len() == self.cap {
            self.entries.pop_front();
        }
        self.entries.push_back((at, host, what));
    }

    /// A digest of every entry so far: equal for equal runs.
    pub fn digest(&self) -> u64 {
        self.digest.finish()
    }

    /// Entries recorded (including dropped ones).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The newest `tail` entries, oldest first, and for each host involved its own newest
    /// entries: one line each.
    pub fn render(&self, tail: usize, hosts: &[usize]) -> String {
        let mut out = String::new();
        let skip = self.entries.len().saturating_sub(tail);
        let _ = writeln!(
            out,
            "timeline (newest {} of {} entries):",
            tail.min(self.entries.len()),
            self.total
        );
        for (at, host, what) in self.entries.iter().skip(skip) {
            let _ = writeln!(out, "{}", line(*at, *host, what));
        }
        for &h in hosts {
            let _ = writeln!(out, "host{h} alone (newest {tail}):");
            let mine: Vec<_> = self.entries.iter().filter(|(_, n, _)| *n == h).collect();
            for (at, host, what) in mine.iter().skip(mine.len().saturating_sub(tail)) {
                let _ = writeln!(out, "{}", line(*at, *host, what));
            }
        }
        out
    }
}

fn line(at: Duration, host: usize, what: &What) -> String {
    let text = match what {
        What::Io {
            target,
            write,
            offset,
            len,
            fate,
        } => format!(
            "{} {len} B @{offset} for {} -> {}",
            if *write { "write" } else { "read " },
            target_name(target),
            match fate {
                Fate::Done(d) => format!("ok in {:.1} ms", d.as_secs_f64() * 1e3),
                Fate::Failed { landed } => format!("EIO (landed: {landed})"),
                Fate::Hung { landed } => format!("hangs past its deadline (landed: {landed})"),
                Fate::Corrupted => "a corrupted sector".into(),
            }
        ),
        What::Output(o) => format!("{o:?}"),
        What::Note(n) => n.clone(),
    };
    format!("{:>12.3}s host{host:<4} {text}", at.as_secs_f64())
}

fn target_name(t: &Target) -> String {
    match t {
        Target::Lockspace(n) => format!("lockspace {n}"),
        Target::Resource(_, r) => format!("resource {r}"),
        Target::Request(_, r) => format!("request on {r}"),
        Target::Examine(_, r) => format!("examine of {r}"),
    }
}

/// FNV-1a, 64 bits: a fixed hash, the same in every process.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
}
