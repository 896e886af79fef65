//! A lockspace's renewal history as `sanlock client renewal` shows it (lockspace.c): one
//! record per successful renewal, the failed attempts after it counted against it, at most
//! `-H` records kept.

use std::collections::VecDeque;

use sanlock_core::host::RenewalTimes;

/// One successful renewal and the failed attempts after it (lockspace.c renewal history).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RenewalRecord {
    /// The renewal's timestamp (s).
    pub timestamp: u64,
    /// Its read's time.
    pub read_ms: u64,
    /// Its write's time.
    pub write_ms: u64,
    /// Timed-out attempts after it.
    pub next_timeouts: u32,
    /// Failed attempts after it.
    pub next_errors: u32,
}

/// The records, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RenewalHistory(VecDeque<RenewalRecord>);

impl RenewalHistory {
    /// Adds a renewal attempt to a history of at most `keep` records: a success is a new record,
    /// a failure counts against the last one (a timeout apart from other errors).
    pub fn record(&mut self, keep: usize, outcome: Result<RenewalTimes, i32>) {
        let history = &mut self.0;
        match outcome {
            Ok(t) => {
                if keep == 0 {
                    return;
                }
                if history.len() >= keep {
                    history.pop_front();
                }
                history.push_back(RenewalRecord {
                    timestamp: t.timestamp_s,
                    read_ms: t.read_ms,
                    write_ms: t.write_ms,
                    ..RenewalRecord::default()
                });
            }
            Err(rv) => {
                if let Some(last) = history.back_mut() {
                    if rv == sanlock_core::rv::SANLK_AIO_TIMEOUT {
                        last.next_timeouts += 1;
                    } else {
                        last.next_errors += 1;
                    }
                }
            }
        }
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The records, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &RenewalRecord> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: u64) -> Result<RenewalTimes, i32> {
        Ok(RenewalTimes {
            timestamp_s: t,
            read_ms: 3,
            write_ms: 1,
        })
    }

    #[test]
    fn the_renewal_history_keeps_h_records_and_counts_failures_against_the_last() {
        // lockspace.c: a success adds a record, a failure bumps next_timeouts / next_errors.
        let mut h = RenewalHistory::default();
        h.record(3, Err(-202));
        assert!(h.is_empty(), "nothing to count a failure against yet");
        for t in [10, 12, 14, 16] {
            h.record(3, ok(t));
        }
        h.record(3, Err(-202));
        h.record(3, Err(-202));
        h.record(3, Err(-5));
        let stamps: Vec<u64> = h.iter().map(|r| r.timestamp).collect();
        assert_eq!(stamps, [12, 14, 16]);
        assert_eq!((h.0[2].next_timeouts, h.0[2].next_errors), (2, 1));
        assert_eq!((h.0[2].read_ms, h.0[2].write_ms), (3, 1));
        let mut none = RenewalHistory::default();
        none.record(0, ok(1));
        assert!(none.is_empty(), "-H 0 keeps no history");
    }
}
