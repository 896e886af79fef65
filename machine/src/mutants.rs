//! Deliberate bugs in the daemon machine, for the mutant suite (as `sanlock_core::mutants` for
//! the core): each must be caught by the simulator and the checker. Only a build with the
//! `mutants` feature can switch one on; the daemon never does.

/// A deliberate daemon bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DaemonMutant {
    /// A dead client's leases are kept for it, neither released nor orphaned.
    KeepDeadClientLeases,
    /// Recovery sends SIGKILL where the grace period asks for SIGTERM or the killpath.
    KillBeforeGrace,
    /// Recovery signals every registered client, holders of the lockspace or not.
    StopEveryClient,
    /// A persistent lease whose holder dies is released instead of kept as an orphan.
    DropOrphans,
    /// Recovery passes over holders that set a killpath (as if it had run already).
    SkipKillpathHolders,
    /// The host hears that a lockspace's holders are gone as soon as they are signalled, not
    /// when they have exited: its watchdog is disarmed under live holders.
    HoldersGoneEarly,
    /// wdmd is never told a lockspace's expire (no TEST_LIVE after a renewal): it never
    /// fires, and a host whose holders outlive its lease is never reset.
    NoTestLive,
}

impl DaemonMutant {
    /// Every mutant.
    pub const ALL: [DaemonMutant; 7] = [
        DaemonMutant::KeepDeadClientLeases,
        DaemonMutant::KillBeforeGrace,
        DaemonMutant::StopEveryClient,
        DaemonMutant::DropOrphans,
        DaemonMutant::SkipKillpathHolders,
        DaemonMutant::HoldersGoneEarly,
        DaemonMutant::NoTestLive,
    ];

    /// Its name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            DaemonMutant::KeepDeadClientLeases => "keep-dead-client-leases",
            DaemonMutant::KillBeforeGrace => "kill-before-grace",
            DaemonMutant::StopEveryClient => "stop-every-client",
            DaemonMutant::DropOrphans => "drop-orphans",
            DaemonMutant::SkipKillpathHolders => "skip-killpath-holders",
            DaemonMutant::HoldersGoneEarly => "holders-gone-early",
            DaemonMutant::NoTestLive => "no-test-live",
        }
    }
}
