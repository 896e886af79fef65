//! Time as a value. Core never reads a clock: every input carries `now`, a reading of the
//! host's monotonic clock (CLOCK_MONOTONIC in the daemon, virtual time in the simulator).

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A reading of one host's monotonic clock: time since that host booted. Different hosts'
/// readings are never compared; the disk only carries them to be tested for change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(Duration);

impl Time {
    /// The clock's origin.
    pub const ZERO: Time = Time(Duration::ZERO);

    /// A reading `since_boot` after the origin.
    pub const fn new(since_boot: Duration) -> Self {
        Time(since_boot)
    }

    /// A reading of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Time(Duration::from_secs(secs))
    }

    /// Whole seconds since boot: what sanlock writes into timestamps (monotime()).
    pub const fn secs(self) -> u64 {
        self.0.as_secs()
    }

    /// Time since the origin.
    pub const fn since_boot(self) -> Duration {
        self.0
    }

    /// `self − earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, rhs: Duration) -> Time {
        Time(self.0 + rhs)
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    /// Panics if `rhs` is later: callers compare readings of one clock, which only goes forward.
    fn sub(self, rhs: Time) -> Duration {
        self.0
            .checked_sub(rhs.0)
            .expect("monotonic time went backwards")
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0.as_secs(), self.0.subsec_millis())
    }
}
