//! When our own feeder feeds a watchdog device (algorithms.md §6.4), as wdmd decides it: every
//! 10 s while no armed lockspace expires within 10 s; not at all once one does, so the device
//! resets the host 60 s after the last feed; the magic close when nothing is armed. Pure: the
//! daemon's shell writes to the device.

use std::collections::BTreeMap;
use std::time::Duration;

use sanlock_core::ondisk::Name;
use sanlock_core::Time;

/// Feeds happen this often (wdmd's test interval).
pub const FEED_INTERVAL: Duration = Duration::from_secs(10);
/// The device fires this long after the last feed (watchdog_fire_timeout).
pub const FIRE_TIMEOUT: Duration = Duration::from_secs(60);

/// What to do to the device now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Feed {
    /// Feed it (opening it first if it is closed).
    Feed,
    /// Stop feeding: an armed lockspace expires within the interval. The device fires at
    /// `fire_at` (said once, when feeding stops).
    Stop { fire_at: Time },
    /// The magic close: nothing is armed, the device stops counting.
    Close,
}

/// The feeder's state: each armed lockspace's expiry, the last feed, whether feeding stopped
/// and whether the device is open.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Feeder {
    armed: BTreeMap<Name, Time>,
    last_feed: Option<Time>,
    stopped: bool,
    open: bool,
}

impl Feeder {
    /// A lockspace renewed: it must be fed until `expire`.
    pub fn arm(&mut self, space: Name, expire: Time) {
        self.armed.insert(space, expire);
    }

    /// A lockspace stopped with nothing held: it no longer holds the device.
    pub fn disarm(&mut self, space: Name) {
        self.armed.remove(&space);
    }

    /// The once-a-second check at `now`: what to do to the device, if anything.
    pub fn check(&mut self, now: Time) -> Option<Feed> {
        if self.armed.is_empty() {
            if !self.open {
                return None;
            }
            self.open = false;
            self.last_feed = None;
            self.stopped = false;
            return Some(Feed::Close);
        }
        self.open = true;
        if self.armed.values().any(|&e| now + FEED_INTERVAL >= e) {
            if self.stopped {
                return None;
            }
            self.stopped = true;
            let fire_at = self.last_feed.map_or(now, |t| t + FIRE_TIMEOUT);
            return Some(Feed::Stop { fire_at });
        }
        self.stopped = false;
        if self.last_feed.is_some_and(|t| now < t + FEED_INTERVAL) {
            return None;
        }
        self.last_feed = Some(now);
        Some(Feed::Feed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Time {
        Time::from_secs(s)
    }

    fn ls() -> Name {
        Name::new(b"LS").unwrap()
    }

    /// The checks from `from` to `to` seconds, one a second: (second, what).
    fn run(f: &mut Feeder, from: u64, to: u64) -> Vec<(u64, Feed)> {
        (from..=to)
            .filter_map(|s| f.check(t(s)).map(|a| (s, a)))
            .collect()
    }

    #[test]
    fn fed_every_ten_seconds_while_renewals_keep_the_expiry_away() {
        // wdmd's test interval; expire = renewal + 8N (N = 10: 80 s ahead).
        let mut f = Feeder::default();
        assert_eq!(run(&mut f, 0, 5), [], "nothing armed, nothing opened");
        let mut feeds = Vec::new();
        for s in 100..=130 {
            f.arm(ls(), t(s + 80));
            feeds.extend(f.check(t(s)).map(|a| (s, a)));
        }
        assert_eq!(
            feeds,
            [
                (100, Feed::Feed),
                (110, Feed::Feed),
                (120, Feed::Feed),
                (130, Feed::Feed)
            ]
        );
    }

    #[test]
    fn feeding_stops_once_an_expiry_is_within_ten_seconds_and_the_device_fires_60_s_after_the_last_feed(
    ) {
        // Renewals stopped: the last arm expires at 180. Feeds at 100..=160, then at 170 the
        // expiry is within 10 s: stop, said once; the device fires at 160 + 60.
        let mut f = Feeder::default();
        f.arm(ls(), t(180));
        assert_eq!(
            run(&mut f, 100, 200),
            [
                (100, Feed::Feed),
                (110, Feed::Feed),
                (120, Feed::Feed),
                (130, Feed::Feed),
                (140, Feed::Feed),
                (150, Feed::Feed),
                (160, Feed::Feed),
                (170, Feed::Stop { fire_at: t(220) }),
            ]
        );
        // A renewal that comes back in time re-arms further: feeding resumes.
        f.arm(ls(), t(300));
        assert_eq!(run(&mut f, 201, 201), [(201, Feed::Feed)]);
    }

    #[test]
    fn the_device_is_closed_when_nothing_is_armed() {
        let mut f = Feeder::default();
        f.arm(ls(), t(180));
        assert_eq!(f.check(t(100)), Some(Feed::Feed));
        f.disarm(ls());
        assert_eq!(f.check(t(101)), Some(Feed::Close));
        assert_eq!(f.check(t(102)), None, "closed once");
        f.arm(ls(), t(300));
        assert_eq!(
            f.check(t(103)),
            Some(Feed::Feed),
            "reopened and fed at once"
        );
    }
}
