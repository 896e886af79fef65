//! The daemon's counters and their Prometheus text form (ours), for node_exporter's textfile
//! collector: renewal latency per lockspace as a histogram, renewal failures, I/O timeouts and
//! errors, leases held, acquires by result and the watchdog's state. The engine counts as it
//! goes and, when a metrics file is configured, hands the text to the shell after each renewal.
//!
//! Counting never feeds a decision, so the counters are left out of the engine's equality and
//! hash: the model checker, which tells states apart by them, sees the same state space.

use std::collections::BTreeMap;
use std::fmt::Write;

use sanlock_core::ondisk::Name;
use sanlock_core::Time;

use super::engine::{Engine, SpaceState};

/// Upper bounds of the renewal histogram's buckets, in seconds (a renewal is one read of the
/// lockspace and one sector write; past 10 s it has already failed at the default io_timeout).
const BUCKETS_S: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// One lockspace's renewal times.
#[derive(Clone, Debug, Default)]
struct Histogram {
    /// Renewals at or under each bound (cumulative when written).
    buckets: [u64; BUCKETS_S.len()],
    count: u64,
    sum_ms: u64,
}

impl Histogram {
    fn record(&mut self, ms: u64) {
        let secs = ms as f64 / 1000.0;
        if let Some(i) = BUCKETS_S.iter().position(|&b| secs <= b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_ms += ms;
    }
}

/// What the daemon has counted since it started.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    renewals: BTreeMap<Name, Histogram>,
    renewal_failures: BTreeMap<Name, u64>,
    io_timeouts: u64,
    io_errors: u64,
    acquires: BTreeMap<i32, u64>,
    /// Lockspaces holding the watchdog, with the expiry their last renewal set.
    armed: BTreeMap<Name, Time>,
}

// Observations only: see the module's comment.
impl PartialEq for Metrics {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Metrics {}

impl std::hash::Hash for Metrics {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl Metrics {
    /// A renewal took `ms` (Ok) or failed.
    pub fn renewal(&mut self, space: Name, outcome: Result<u64, i32>) {
        match outcome {
            Ok(ms) => self.renewals.entry(space).or_default().record(ms),
            Err(_) => *self.renewal_failures.entry(space).or_default() += 1,
        }
    }

    /// An I/O completed with `result` (its error, if any).
    pub fn io(&mut self, error: Option<sanlock_core::io::IoError>) {
        match error {
            Some(sanlock_core::io::IoError::TimedOut) => self.io_timeouts += 1,
            Some(_) => self.io_errors += 1,
            None => {}
        }
    }

    /// A client's ACQUIRE was answered with `rv`.
    pub fn acquire(&mut self, rv: i32) {
        *self.acquires.entry(rv).or_default() += 1;
    }

    /// The watchdog is held by `space` until `expire`, or (None) no longer.
    pub fn watchdog(&mut self, space: Name, expire: Option<Time>) {
        match expire {
            Some(t) => self.armed.insert(space, t),
            None => self.armed.remove(&space),
        };
    }
}

/// A label value with Prometheus' escapes (backslash, quote, newline).
fn label(name: &Name) -> String {
    let mut out = String::new();
    for c in String::from_utf8_lossy(name.as_bytes()).chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

impl Engine {
    /// The metrics in Prometheus' text exposition format.
    pub fn metrics_text(&self) -> String {
        let m = &self.metrics;
        let mut out = String::new();
        head(
            &mut out,
            "sanlock_renewal_seconds",
            "histogram",
            "Time a delta-lease renewal took: the read of the lockspace and the write of our sector.",
        );
        for (space, h) in &m.renewals {
            let ls = label(space);
            let mut cumulative = 0;
            for (bound, n) in BUCKETS_S.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(out, "sanlock_renewal_seconds_bucket{{lockspace=\"{ls}\",le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(
                out,
                "sanlock_renewal_seconds_bucket{{lockspace=\"{ls}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "sanlock_renewal_seconds_sum{{lockspace=\"{ls}\"}} {}",
                h.sum_ms as f64 / 1000.0
            );
            let _ = writeln!(
                out,
                "sanlock_renewal_seconds_count{{lockspace=\"{ls}\"}} {}",
                h.count
            );
        }
        head(
            &mut out,
            "sanlock_renewal_failures_total",
            "counter",
            "Delta-lease renewals that failed.",
        );
        for s in &self.spaces {
            let n = m.renewal_failures.get(&s.ls.name).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "sanlock_renewal_failures_total{{lockspace=\"{}\"}} {n}",
                label(&s.ls.name)
            );
        }
        head(
            &mut out,
            "sanlock_io_timeouts_total",
            "counter",
            "Disk I/Os given up at their deadline.",
        );
        let _ = writeln!(out, "sanlock_io_timeouts_total {}", m.io_timeouts);
        head(
            &mut out,
            "sanlock_io_errors_total",
            "counter",
            "Disk I/Os that failed or came back short.",
        );
        let _ = writeln!(out, "sanlock_io_errors_total {}", m.io_errors);
        head(
            &mut out,
            "sanlock_lockspace_joined",
            "gauge",
            "1 for each lockspace joined and renewing, 0 while it is added, failing or left.",
        );
        for s in &self.spaces {
            let joined =
                matches!(s.state, SpaceState::Active | SpaceState::RemPending) && !s.failed;
            let _ = writeln!(
                out,
                "sanlock_lockspace_joined{{lockspace=\"{}\"}} {}",
                label(&s.ls.name),
                u8::from(joined)
            );
        }
        head(
            &mut out,
            "sanlock_leases_held",
            "gauge",
            "Resource leases held here, by lockspace and mode (orphans apart).",
        );
        let mut held: BTreeMap<(Name, &str), u64> = BTreeMap::new();
        for s in &self.spaces {
            for mode in ["exclusive", "shared", "orphan"] {
                held.insert((s.ls.name, mode), 0);
            }
        }
        for t in self.table.tokens.values() {
            let mode = match (t.orphan, t.shared) {
                (true, _) => "orphan",
                (false, true) => "shared",
                (false, false) => "exclusive",
            };
            *held.entry((t.resource.lockspace_name, mode)).or_default() += 1;
        }
        for ((space, mode), n) in held {
            let _ = writeln!(
                out,
                "sanlock_leases_held{{lockspace=\"{}\",mode=\"{mode}\"}} {n}",
                label(&space)
            );
        }
        head(
            &mut out,
            "sanlock_acquires_total",
            "counter",
            "Client ACQUIRE requests answered, by result (0, -errno or a sanlock code).",
        );
        let _ = writeln!(
            out,
            "sanlock_acquires_total{{result=\"0\"}} {}",
            m.acquires.get(&0).copied().unwrap_or(0)
        );
        for (rv, n) in m.acquires.iter().filter(|(rv, _)| **rv != 0) {
            let _ = writeln!(out, "sanlock_acquires_total{{result=\"{rv}\"}} {n}");
        }
        head(&mut out, "sanlock_watchdog_mode", "gauge", "The way the host is reset: wdmd, our own device feeder, none (off), or none available.");
        let mode = self.watchdog.mode();
        for name in ["wdmd", "device", "off", "unavailable"] {
            let _ = writeln!(
                out,
                "sanlock_watchdog_mode{{mode=\"{name}\"}} {}",
                u8::from(mode == name)
            );
        }
        head(
            &mut out,
            "sanlock_watchdog_armed",
            "gauge",
            "1 for each lockspace holding the watchdog.",
        );
        head(
            &mut out,
            "sanlock_watchdog_expire_seconds",
            "gauge",
            "Seconds until the watchdog fires unless the lockspace renews.",
        );
        for (space, expire) in &m.armed {
            let ls = label(space);
            let _ = writeln!(out, "sanlock_watchdog_armed{{lockspace=\"{ls}\"}} 1");
            let left = expire.saturating_since(self.now).as_secs();
            let _ = writeln!(
                out,
                "sanlock_watchdog_expire_seconds{{lockspace=\"{ls}\"}} {left}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_fall_in_the_buckets_at_or_above_them() {
        let mut h = Histogram::default();
        for ms in [1, 3, 3, 40, 20_000] {
            h.record(ms);
        }
        assert_eq!(h.buckets[0], 1, "1 ms ≤ 0.001 s");
        assert_eq!(h.buckets[2], 2, "3 ms in the 5 ms bucket");
        assert_eq!(h.buckets[5], 1, "40 ms in the 50 ms bucket");
        assert_eq!(h.buckets.iter().sum::<u64>(), 4, "20 s only in +Inf");
        assert_eq!((h.count, h.sum_ms), (5, 20_047));
    }

    #[test]
    fn label_values_are_escaped() {
        let n = Name::new(b"a\"b\\c").unwrap();
        assert_eq!(label(&n), "a\\\"b\\\\c");
    }
}
