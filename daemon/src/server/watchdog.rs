//! The watchdog, as wdmd would run it for us (algorithms.md §6.4): each lockspace arms it with
//! an expiry (last renewal + 8N); it is fed every 10 s while no armed expiry is within 10 s,
//! and then no more, so the device resets the host 60 s after its last feed. `-w 0` disables
//! it. The device is `/dev/watchdog`, or a stand-in file (config key `watchdog_file`, or
//! `$SANLOCK_WATCHDOG_FILE`) that gets one line per feed: `<monotonic ms> feed`, and one line
//! `<monotonic ms> stop fire_at <ms>` when feeding stops, so tests can see both.
//!
//! Not built yet: speaking wdmd's socket protocol when wdmd runs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::time::Duration;

use sanlock_core::ondisk::Name;
use sanlock_core::Time;

use super::engine::Engine;
use super::log;

/// Feeds happen this often (wdmd's test interval).
const FEED_INTERVAL: Duration = Duration::from_secs(10);
/// The device fires this long after the last feed (watchdog_fire_timeout).
pub const FIRE_TIMEOUT: Duration = Duration::from_secs(60);

/// Armed lockspaces and the device.
#[derive(Default)]
pub struct Watchdog {
    armed: BTreeMap<Name, Time>,
    device: Option<File>,
    last_feed: Option<Time>,
    stopped: bool,
}

/// Opens the device (or the stand-in) when the daemon uses a watchdog. An error means the
/// watchdog cannot be used: lockspaces cannot be joined (SANLK_WD_ERROR).
pub fn open(engine: &mut Engine) -> Result<(), String> {
    if !engine.cfg.use_watchdog {
        return Ok(());
    }
    let path = engine
        .cfg
        .watchdog_file
        .clone()
        .unwrap_or_else(|| "/dev/watchdog".into());
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(engine.cfg.watchdog_file.is_some())
        .open(&path)
        .map_err(|e| format!("watchdog {}: {e}", path.display()))?;
    engine.watchdog.device = Some(file);
    Ok(())
}

/// A lockspace renewed: it must be fed until `expire`.
pub fn arm(engine: &mut Engine, space: Name, expire: Time) {
    engine.watchdog.armed.insert(space, expire);
}

/// A lockspace stopped cleanly: it no longer holds the watchdog.
pub fn disarm(engine: &mut Engine, space: Name) {
    engine.watchdog.armed.remove(&space);
}

/// The once-a-second check: feed when due and every armed expiry is more than 10 s away.
pub fn check(engine: &mut Engine, now: Time) {
    let wd = &mut engine.watchdog;
    let Some(device) = wd.device.as_mut() else {
        return;
    };
    let failing = wd
        .armed
        .values()
        .any(|&expire| now + FEED_INTERVAL >= expire);
    if failing {
        if !wd.stopped {
            wd.stopped = true;
            let fire_at = wd.last_feed.map_or(now, |t| t + FIRE_TIMEOUT);
            let _ = writeln!(
                device,
                "{} stop fire_at {}",
                now.since_boot().as_millis(),
                fire_at.since_boot().as_millis()
            );
            log::log(
                log::ERR,
                "watchdog feeding stopped: a lockspace is about to expire",
            );
        }
        return;
    }
    wd.stopped = false;
    if wd.last_feed.is_some_and(|t| now < t + FEED_INTERVAL) {
        return;
    }
    wd.last_feed = Some(now);
    let _ = writeln!(device, "{} feed", now.since_boot().as_millis());
}
