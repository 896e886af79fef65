//! The clock deadlines are read against: CLOCK_MONOTONIC, as sanlock's `monotime()`, so that
//! the core's `Time` values, the daemon's and the backends' agree.

use std::time::Duration;

use rustix::time::{clock_gettime, ClockId};
use sanlock_core::Time;

/// Now, on the monotonic clock.
pub fn now() -> Time {
    let ts = clock_gettime(ClockId::Monotonic);
    let secs = u64::try_from(ts.tv_sec).expect("the monotonic clock is not negative");
    let nanos = u32::try_from(ts.tv_nsec).expect("tv_nsec is below 10^9");
    Time::new(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_goes_forward() {
        let a = super::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::now();
        assert!(b > a);
        assert!(b.saturating_since(a) >= std::time::Duration::from_millis(2));
    }
}
