//! Pieces shared by core's integration tests: the golden sectors, and the timed-action queue and
//! jitter of the multi-host safety drivers.
#![allow(dead_code)] // each test file uses a different part

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use sanlock_core::rng::Rng;

/// A sector written by sanlock 3.8.5 (core/testdata, made by capture.sh).
#[macro_export]
macro_rules! golden {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/",
            $name,
            ".sector"
        ))
    };
}

/// Actions for simulated hosts, run in time order; actions due at the same time run in the
/// order they were scheduled, so a seed replays exactly.
pub struct Queue<A> {
    heap: BinaryHeap<Reverse<(Duration, usize)>>,
    actions: Vec<Option<(usize, A)>>,
}

impl<A> Queue<A> {
    /// An empty queue.
    pub fn new() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            actions: Vec::new(),
        }
    }

    /// Runs `action` for host `node` at `at`.
    pub fn schedule(&mut self, at: Duration, node: usize, action: A) {
        let key = self.actions.len();
        self.actions.push(Some((node, action)));
        self.heap.push(Reverse((at, key)));
    }

    /// The next action: when, for which host, what.
    pub fn pop(&mut self) -> Option<(Duration, usize, A)> {
        let Reverse((at, key)) = self.heap.pop()?;
        let (node, action) = self.actions[key].take().expect("each action runs once");
        Some((at, node, action))
    }
}

/// A random delay of 0 ..= `max_ms` milliseconds.
pub fn millis(rng: &mut Rng, max_ms: u64) -> Duration {
    Duration::from_millis(rng.below(max_ms + 1))
}

/// Fails a safety run: the seed to replay it, the violation, and the newest `tail` steps of
/// its timeline, newest first.
pub fn report_violation(
    seed: u64,
    hosts: usize,
    violation: &str,
    timeline: &[String],
    tail: usize,
) -> ! {
    let steps: Vec<&str> = timeline
        .iter()
        .rev()
        .take(tail)
        .map(String::as_str)
        .collect();
    panic!(
        "seed {seed}, {hosts} hosts: {violation}\nlast steps, newest first:\n{}",
        steps.join("\n")
    );
}
