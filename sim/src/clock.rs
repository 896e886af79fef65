//! A host's monotonic clock as a function of the world's time: its own origin (the host booted
//! at some other moment) and a bounded rate error, as a real quartz clock has.

use std::time::Duration;

use sanlock_core::Time;

/// One host's clock: `local = offset + global × (1 + ppm / 10⁶)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostClock {
    offset: Duration,
    ppm: i64,
}

const MILLION: i128 = 1_000_000;

impl HostClock {
    /// A clock reading `offset` at world time zero, running `ppm` parts per million fast
    /// (negative: slow).
    pub fn new(offset: Duration, ppm: i64) -> Self {
        assert!(
            ppm.abs() < 100_000,
            "a clock off by {ppm} ppm is not a clock"
        );
        HostClock { offset, ppm }
    }

    /// The host's reading at world time `global`.
    pub fn local(&self, global: Duration) -> Time {
        let g = global.as_nanos() as i128;
        let local = self.offset.as_nanos() as i128 + g + g * self.ppm as i128 / MILLION;
        Time::new(nanos(local))
    }

    /// The first world time at which the host reads `local` or later (world time zero if it
    /// already did at zero).
    pub fn global(&self, local: Time) -> Duration {
        let since = local.since_boot().as_nanos() as i128 - self.offset.as_nanos() as i128;
        if since <= 0 {
            return Duration::ZERO;
        }
        let mut g = since * MILLION / (MILLION + self.ppm as i128);
        // Integer division may land a nanosecond early; step until the reading is reached.
        while self.local(nanos(g)) < local {
            g += 1;
        }
        nanos(g)
    }
}

fn nanos(n: i128) -> Duration {
    let n = u128::try_from(n.max(0)).expect("non-negative");
    Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_clock_reaches_a_reading_earlier_in_world_time() {
        let fast = HostClock::new(Duration::from_secs(500), 100);
        let slow = HostClock::new(Duration::from_secs(500), -100);
        let g = Duration::from_secs(10_000);
        assert_eq!(fast.local(g), Time::new(Duration::from_secs(10_501)));
        assert_eq!(slow.local(g), Time::new(Duration::from_secs(10_499)));
        for clock in [fast, slow, HostClock::new(Duration::from_millis(3), 0)] {
            for t in [0u64, 1, 999, 123_456_789_012] {
                let local = Time::new(Duration::from_nanos(t) + Duration::from_secs(600));
                let at = clock.global(local);
                assert!(clock.local(at) >= local);
                assert!(at.is_zero() || clock.local(at - Duration::from_nanos(1)) < local);
            }
        }
    }
}
