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
    /// A RESET was acknowledged: never fed again, whatever is armed.
    firing: bool,
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

    /// Stop feeding for good: the device resets the host (a RESET message).
    pub fn fire(&mut self) {
        self.firing = true;
    }

    /// The once-a-second check at `now`: what to do to the device, if anything.
    pub fn check(&mut self, now: Time) -> Option<Feed> {
        if self.firing {
            if self.stopped || !self.open {
                return None;
            }
            self.stopped = true;
            let fire_at = self.last_feed.map_or(now, |t| t + FIRE_TIMEOUT);
            return Some(Feed::Stop { fire_at });
        }
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

/// SANLK_WD_ERROR: `-w 1` with neither wdmd nor a device.
pub const SANLK_WD_ERROR: i32 = -203;

/// How the daemon keeps the host honest, as its engine decides it: the way chosen at start
/// (wdmd, our own feeder, none) and, for our feeder, its policy. The shell holds the wdmd
/// connections and the device and does what each [`Order`] says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Keeper {
    /// `-w 0`.
    #[default]
    Off,
    /// `-w 1` with nothing to drive: lockspaces cannot be joined.
    Unavailable,
    /// wdmd: the lockspaces registered with it.
    Wdmd(Registered),
    /// Our own feeder of a device (or a stand-in file).
    Feeder(Feeder),
}

/// The lockspaces registered with wdmd.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Registered {
    spaces: std::collections::BTreeSet<Name>,
    /// Lockspaces told to expire now (a RESET): kept registered, never renewed again.
    firing: std::collections::BTreeSet<Name>,
    #[cfg(feature = "mutants")]
    mutant: Option<crate::mutants::DaemonMutant>,
}

/// What the watchdog's shell is to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// Connect lockspace `space` (add number `space_id`) to wdmd: REGISTER, REFCOUNT_SET,
    /// STATUS; the shell says how it went.
    Register {
        space_id: u32,
        space: Name,
        host_id: u64,
    },
    /// TEST_LIVE after a renewal (seconds).
    TestLive {
        space: Name,
        renewal: u64,
        expire: u64,
    },
    /// TEST_LIVE 0 0 and REFCOUNT_CLEAR: the lockspace no longer holds the watchdog.
    Clear { space: Name },
    /// Do this to our device at `now`.
    Device { feed: Feed, now: Time },
}

impl Keeper {
    /// The way chosen, for metrics: wdmd, device, off or unavailable.
    pub fn mode(&self) -> &'static str {
        match self {
            Keeper::Off => "off",
            Keeper::Unavailable => "unavailable",
            Keeper::Wdmd(_) => "wdmd",
            Keeper::Feeder(_) => "device",
        }
    }

    /// Whether a lockspace may be joined at all.
    pub fn available(&self) -> Result<(), i32> {
        match self {
            Keeper::Unavailable => Err(SANLK_WD_ERROR),
            _ => Ok(()),
        }
    }

    /// A lockspace is about to join: with wdmd it registers first (the join waits for the
    /// answer); `None`: join at once.
    pub fn register(&mut self, space_id: u32, space: Name, host_id: u64) -> Option<Order> {
        let Keeper::Wdmd(registered) = self else {
            return None;
        };
        registered.spaces.insert(space);
        Some(Order::Register {
            space_id,
            space,
            host_id,
        })
    }

    /// A lockspace renewed at `renewal`: it must be fed until `expire`.
    pub fn arm(&mut self, space: Name, renewal: Time, expire: Time) -> Option<Order> {
        match self {
            Keeper::Off | Keeper::Unavailable => None,
            Keeper::Feeder(f) => {
                f.arm(space, expire);
                None
            }
            Keeper::Wdmd(registered)
                if registered.mutated(crate::mutants::DaemonMutant::NoTestLive)
                    || registered.firing.contains(&space) =>
            {
                None
            }
            Keeper::Wdmd(registered) => {
                registered.spaces.contains(&space).then(|| Order::TestLive {
                    space,
                    renewal: renewal.secs(),
                    expire: expire.secs(),
                })
            }
        }
    }

    /// A lockspace stopped with nothing held (or never joined): it no longer holds the
    /// watchdog.
    pub fn disarm(&mut self, space: Name) -> Option<Order> {
        match self {
            Keeper::Off | Keeper::Unavailable => None,
            Keeper::Feeder(f) => {
                f.disarm(space);
                None
            }
            Keeper::Wdmd(registered) if registered.firing.contains(&space) => None,
            Keeper::Wdmd(registered) => registered
                .spaces
                .remove(&space)
                .then_some(Order::Clear { space }),
        }
    }

    /// A RESET was acknowledged in lockspace `space`: let the watchdog reset the host. wdmd
    /// is told the lockspace expired now, and the lockspace stays registered; our feeder
    /// stops feeding for good. Without a watchdog (`-w 0`) there is nothing to fire.
    pub fn fire(&mut self, space: Name, now: Time) -> Option<Order> {
        match self {
            Keeper::Off | Keeper::Unavailable => None,
            Keeper::Feeder(f) => {
                f.fire();
                None
            }
            Keeper::Wdmd(registered) => {
                if !registered.spaces.contains(&space) {
                    return None;
                }
                registered.firing.insert(space);
                Some(Order::TestLive {
                    space,
                    renewal: now.secs(),
                    expire: now.secs(),
                })
            }
        }
    }

    /// Runs with a deliberate bug (the mutant suite).
    #[cfg(feature = "mutants")]
    pub fn set_mutant(&mut self, mutant: Option<crate::mutants::DaemonMutant>) {
        if let Keeper::Wdmd(registered) = self {
            registered.mutant = mutant;
        }
    }

    /// The once-a-second check of our own feeder.
    pub fn check(&mut self, now: Time) -> Option<Order> {
        let Keeper::Feeder(f) = self else {
            return None;
        };
        f.check(now).map(|feed| Order::Device { feed, now })
    }
}

impl Registered {
    fn mutated(&self, _m: crate::mutants::DaemonMutant) -> bool {
        #[cfg(feature = "mutants")]
        return self.mutant == Some(_m);
        #[cfg(not(feature = "mutants"))]
        false
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
    fn after_fire_the_device_is_never_fed_again_even_with_nothing_armed() {
        let mut f = Feeder::default();
        f.arm(ls(), t(1000));
        assert_eq!(run(&mut f, 0, 0), [(0, Feed::Feed)]);
        f.fire();
        f.disarm(ls());
        // Fires 60 s after the last feed; no feed, no magic close.
        assert_eq!(run(&mut f, 1, 200), [(1, Feed::Stop { fire_at: t(60) })]);
    }

    #[test]
    fn after_fire_wdmd_hears_the_lockspace_expired_and_is_never_cleared() {
        let mut k = Keeper::Wdmd(Registered::default());
        assert!(k.register(1, ls(), 1).is_some());
        assert_eq!(
            k.fire(ls(), t(500)),
            Some(Order::TestLive {
                space: ls(),
                renewal: 500,
                expire: 500
            })
        );
        assert_eq!(k.arm(ls(), t(510), t(590)), None, "no renewal un-fires it");
        assert_eq!(k.disarm(ls()), None, "leaving does not clear it");
        assert_eq!(Keeper::Off.fire(ls(), t(500)), None);
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

    #[test]
    fn the_keeper_orders_wdmd_only_for_registered_lockspaces_and_clears_each_once() {
        let ls = Name::new(b"LS").unwrap();
        let t = |s| Time::new(Duration::from_secs(s));
        let mut wdmd = Keeper::Wdmd(Default::default());
        assert_eq!(wdmd.arm(ls, t(10), t(90)), None, "not registered yet");
        assert_eq!(
            wdmd.register(7, ls, 1),
            Some(Order::Register {
                space_id: 7,
                space: ls,
                host_id: 1
            })
        );
        assert_eq!(
            wdmd.arm(ls, t(10), t(90)),
            Some(Order::TestLive {
                space: ls,
                renewal: 10,
                expire: 90
            })
        );
        assert_eq!(wdmd.check(t(11)), None, "wdmd feeds the device itself");
        assert_eq!(wdmd.disarm(ls), Some(Order::Clear { space: ls }));
        assert_eq!(wdmd.disarm(ls), None);

        assert_eq!(Keeper::Unavailable.available(), Err(SANLK_WD_ERROR));
        assert_eq!(Keeper::Off.available(), Ok(()));
        let mut off = Keeper::Off;
        assert_eq!(off.register(1, ls, 1), None, "joins at once");

        let mut feeder = Keeper::Feeder(Feeder::default());
        assert_eq!(feeder.register(1, ls, 1), None);
        assert_eq!(feeder.arm(ls, t(10), t(90)), None);
        assert_eq!(
            feeder.check(t(11)),
            Some(Order::Device {
                feed: Feed::Feed,
                now: t(11)
            })
        );
    }
}
