//! The next deadline of each of many machines, kept in time order, so that a host holding
//! thousands of leases finds what is due (and when it must wake next) without asking every
//! machine: a held lease has no deadline and costs nothing here.

use std::collections::{BTreeMap, BTreeSet};

use crate::Time;

/// One deadline per key; keys without one are absent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Timers<K: Ord + Clone> {
    by_time: BTreeSet<(Time, K)>,
    by_key: BTreeMap<K, Time>,
}

impl<K: Ord + Clone> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            by_time: BTreeSet::new(),
            by_key: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone> Timers<K> {
    /// Sets (or with `None` clears) the deadline of `key`, replacing its earlier one.
    pub fn set(&mut self, key: &K, deadline: Option<Time>) {
        let old = self.by_key.get(key).copied();
        if old == deadline {
            return;
        }
        if let Some(old) = old {
            self.by_time.remove(&(old, key.clone()));
            self.by_key.remove(key);
        }
        if let Some(at) = deadline {
            self.by_time.insert((at, key.clone()));
            self.by_key.insert(key.clone(), at);
        }
    }

    /// The earliest deadline.
    pub fn first(&self) -> Option<Time> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns every key due at `now`, earliest first (ties in key order).
    pub fn take_due(&mut self, now: Time) -> Vec<K> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.by_time.first() {
            if *at > now {
                break;
            }
            let (_, key) = self.by_time.pop_first().expect("checked");
            self.by_key.remove(&key);
            due.push(key);
        }
        due
    }

    /// How many keys have a deadline.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no key has a deadline.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(s: u64) -> Time {
        Time::ZERO + Duration::from_secs(s)
    }

    #[test]
    fn a_later_deadline_replaces_the_earlier_and_none_clears_it() {
        let mut timers = Timers::default();
        timers.set(&"a", Some(t(5)));
        timers.set(&"b", Some(t(3)));
        assert_eq!(timers.first(), Some(t(3)));
        timers.set(&"b", Some(t(9)));
        assert_eq!(timers.first(), Some(t(5)));
        assert_eq!(timers.len(), 2);
        timers.set(&"a", None);
        timers.set(&"b", None);
        assert!(timers.is_empty());
        assert_eq!(timers.first(), None);
    }

    #[test]
    fn only_what_is_due_comes_out_earliest_first() {
        let mut timers = Timers::default();
        timers.set(&"late", Some(t(10)));
        timers.set(&"z", Some(t(2)));
        timers.set(&"a", Some(t(2)));
        timers.set(&"first", Some(t(1)));
        assert_eq!(timers.take_due(t(0)), Vec::<&str>::new());
        assert_eq!(timers.take_due(t(2)), vec!["first", "a", "z"]);
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.first(), Some(t(10)));
    }
}
