//! Every timeout of sanlock 3.8.5 as a function of the lockspace io_timeout N and the watchdog
//! fire timeout (algorithms.md §2.1; sanlock 3.8.5 timeouts.c, main.c). Waits that concern
//! another host use *that host's* io_timeout, as found in its delta lease.

use std::time::Duration;

/// The watchdog fire timeout of 3.8.5: /dev/watchdog resets the host this long after its last
/// keepalive (a constant in 3.8.5; configurable later).
pub const WATCHDOG_FIRE_TIMEOUT_S: u64 = 60;
/// io_timeout when none is configured (DEFAULT_IO_TIMEOUT).
pub const DEFAULT_IO_TIMEOUT_S: u64 = 10;
/// Seconds between SIGTERM (or killpath) and SIGKILL in recovery (DEFAULT_GRACE_SEC).
pub const DEFAULT_KILL_GRACE_S: u64 = 40;

/// The timeouts of one lockspace, derived from its io_timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timeouts {
    io_timeout_s: u64,
    watchdog_fire_timeout_s: u64,
}

impl Timeouts {
    /// The timeouts for io_timeout `n_s` seconds (0 means the default 10, as in sanlock).
    pub const fn new(n_s: u64) -> Self {
        Timeouts {
            io_timeout_s: if n_s == 0 { DEFAULT_IO_TIMEOUT_S } else { n_s },
            watchdog_fire_timeout_s: WATCHDOG_FIRE_TIMEOUT_S,
        }
    }

    /// The timeouts another host runs by: its io_timeout from its delta lease, or ours when
    /// the lease carries 0 (algorithms.md §2.1, last paragraph).
    pub const fn of_other(self, other_io_timeout_s: u64) -> Self {
        if other_io_timeout_s == 0 {
            self
        } else {
            Timeouts::new(other_io_timeout_s)
        }
    }

    /// N in seconds.
    pub const fn io_timeout_s(self) -> u64 {
        self.io_timeout_s
    }

    /// Timeout of each lease I/O: N.
    pub const fn io_timeout(self) -> Duration {
        Duration::from_secs(self.io_timeout_s)
    }

    /// id_renewal_seconds = 2N: the least time between successful renewal timestamps.
    pub const fn id_renewal(self) -> Duration {
        Duration::from_secs(2 * self.io_timeout_s)
    }

    /// id_renewal_warn_seconds = 6N: warn when the last successful renewal is this old.
    pub const fn id_renewal_warn(self) -> Duration {
        Duration::from_secs(6 * self.io_timeout_s)
    }

    /// id_renewal_fail_seconds = 8N: the lockspace fails (recovery starts) at this age; also the
    /// watchdog expiry offset.
    pub const fn id_renewal_fail(self) -> Duration {
        Duration::from_secs(8 * self.io_timeout_s)
    }

    /// host_dead_seconds = 8N + watchdog fire timeout: a host silent this long has been reset.
    pub const fn host_dead(self) -> Duration {
        Duration::from_secs(8 * self.io_timeout_s + self.watchdog_fire_timeout_s)
    }

    /// The wait before taking a delta lease someone may hold: max(host_dead_seconds,
    /// delta_large_delay = 8N), with the previous owner's N (delta_lease.c).
    pub const fn delta_acquire_wait(self) -> Duration {
        let large = 8 * self.io_timeout_s;
        let dead = 8 * self.io_timeout_s + self.watchdog_fire_timeout_s;
        Duration::from_secs(if dead > large { dead } else { large })
    }

    /// delta_short_delay = 2N, with the N found in the lease on disk: the wait between writing
    /// a delta lease and reading it back.
    pub const fn delta_short_delay(self) -> Duration {
        Duration::from_secs(2 * self.io_timeout_s)
    }

    /// The default set_bitmap_seconds = 6N: how long a bitmap bit stays set.
    pub const fn set_bitmap(self) -> Duration {
        Duration::from_secs(6 * self.io_timeout_s)
    }

    /// Timeout of a renewal's write: host_dead_seconds, so it gets every chance.
    pub const fn renewal_write_timeout(self) -> Duration {
        self.host_dead()
    }

    /// The pause after a renewal's due time, or after a failed attempt (lockspace_thread sleeps
    /// 0.5 s before renewing).
    pub const fn renewal_pause(self) -> Duration {
        Duration::from_millis(500)
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::new(DEFAULT_IO_TIMEOUT_S)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_for_n_10_match_algorithms_2_1() {
        // algorithms.md §2.1, column N = 10.
        let t = Timeouts::new(10);
        let secs = |d: Duration| d.as_secs();
        assert_eq!(secs(t.io_timeout()), 10);
        assert_eq!(secs(t.id_renewal()), 20);
        assert_eq!(secs(t.id_renewal_warn()), 60);
        assert_eq!(secs(t.id_renewal_fail()), 80);
        assert_eq!(secs(t.host_dead()), 140);
        assert_eq!(secs(t.delta_acquire_wait()), 140);
        assert_eq!(secs(t.delta_short_delay()), 20);
        assert_eq!(secs(t.set_bitmap()), 60);
        assert_eq!(secs(t.renewal_write_timeout()), 140);
        assert_eq!(t.renewal_pause(), Duration::from_millis(500));
    }

    #[test]
    fn formulas_for_n_1_as_the_tests_use() {
        // io_timeout 1: renew every 2 s, fail at 8 s, dead at 68 s.
        let t = Timeouts::new(1);
        assert_eq!(t.id_renewal().as_secs(), 2);
        assert_eq!(t.id_renewal_fail().as_secs(), 8);
        assert_eq!(t.host_dead().as_secs(), 68);
        assert_eq!(t.delta_acquire_wait().as_secs(), 68);
    }

    #[test]
    fn zero_means_the_default_and_other_hosts_fall_back_to_ours() {
        assert_eq!(Timeouts::new(0), Timeouts::new(10));
        let ours = Timeouts::new(3);
        assert_eq!(ours.of_other(0), ours);
        assert_eq!(ours.of_other(10).host_dead().as_secs(), 140);
    }
}
