//! The timed events of a simulated world, in time order: events due at one instant come out in
//! the order they were scheduled, so a seed replays exactly. Every test world uses it (core's
//! safety runs, the random simulator), beside [`crate::flight`] for their I/O.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

/// Events of type `E`, each due at a world time.
#[derive(Debug)]
pub struct Agenda<E> {
    heap: BinaryHeap<Due<E>>,
    next: u64,
}

/// One event and its place: ordered by time, then by scheduling order, never by the event.
#[derive(Debug)]
struct Due<E> {
    at: Duration,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Due<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Due<E> {}

impl<E> PartialOrd for Due<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Due<E> {
    /// Reversed: the heap is a max-heap and the earliest event comes out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl<E> Default for Agenda<E> {
    fn default() -> Self {
        Agenda {
            heap: BinaryHeap::new(),
            next: 0,
        }
    }
}

impl<E> Agenda<E> {
    /// Nothing scheduled.
    pub fn new() -> Self {
        Self::default()
    }

    /// `event` is due at `at`.
    pub fn schedule(&mut self, at: Duration, event: E) {
        let seq = self.next;
        self.next += 1;
        self.heap.push(Due { at, seq, event });
    }

    /// The earliest event and when it is due.
    pub fn pop(&mut self) -> Option<(Duration, E)> {
        self.heap.pop().map(|due| (due.at, due.event))
    }

    /// Events still to come.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_at_one_instant_run_in_scheduling_order() {
        let mut a = Agenda::new();
        a.schedule(Duration::from_secs(2), "late");
        a.schedule(Duration::from_secs(1), "first");
        a.schedule(Duration::from_secs(1), "second");
        a.schedule(Duration::ZERO, "earliest");
        assert_eq!(a.len(), 4);
        let order: Vec<_> = std::iter::from_fn(|| a.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, ["earliest", "first", "second", "late"]);
        assert!(a.is_empty());
    }
}
