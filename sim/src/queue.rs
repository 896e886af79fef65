//! The world's agenda: events in time order; events due at the same instant run in the order
//! they were scheduled, so that a seed replays exactly.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// Timed events of type `E`.
#[derive(Debug)]
pub struct Agenda<E> {
    heap: BinaryHeap<Reverse<(Duration, u64)>>,
    events: std::collections::HashMap<u64, E>,
    next: u64,
}

impl<E> Default for Agenda<E> {
    fn default() -> Self {
        Agenda {
            heap: BinaryHeap::new(),
            events: std::collections::HashMap::new(),
            next: 0,
        }
    }
}

impl<E> Agenda<E> {
    /// Runs `event` at `at`.
    pub fn schedule(&mut self, at: Duration, event: E) {
        let key = self.next;
        self.next += 1;
        self.events.insert(key, event);
        self.heap.push(Reverse((at, key)));
    }

    /// The next event and its time.
    pub fn pop(&mut self) -> Option<(Duration, E)> {
        let Reverse((at, key)) = self.heap.pop()?;
        let event = self.events.remove(&key).expect("each event runs once");
        Some((at, event))
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_at_one_instant_run_in_scheduling_order() {
        let mut a = Agenda::default();
        a.schedule(Duration::from_secs(2), "late");
        a.schedule(Duration::from_secs(1), "first");
        a.schedule(Duration::from_secs(1), "second");
        let order: Vec<_> = std::iter::from_fn(|| a.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, ["first", "second", "late"]);
    }
}
