//! Deliberate bugs for the simulator's own tests: each one breaks a rule the algorithms rely on,
//! and `sim`'s mutant suite shows that the random simulator and the exhaustive checker both
//! catch it. A mutant can only be switched on with the `mutants` feature (through
//! [`crate::host::HostConfig`]); without it [`Mutations::has`] is a constant `false` and the
//! checks compile away.

/// One deliberate bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mutant {
    /// Phase 1 of a ballot writes our dblock but never reads the others: we propose ourselves.
    SkipPhase1Read,
    /// An owner whose delta lease did not change for one sample is taken as dead, without
    /// waiting host_dead_seconds.
    NoOwnerDeadWait,
    /// The owner is judged dead by comparing its on-disk timestamp (its clock) with ours.
    OwnerDeadByLocalClock,
    /// Every host uses the ballot numbers of host_id 1: two hosts can run the same ballot.
    SameBallotForAllHosts,
    /// A dblock with a larger mbal does not make us lose the ballot.
    IgnoreLargerMbal,
    /// An exclusive ballot ignores the SHARED mode blocks of other hosts.
    IgnoreModeBlocks,
    /// A paxos leader with a bad checksum is used as if its checksum were right.
    TrustBadChecksum,
    /// A release does not set the RELEASED flag in our dblock.
    ReleaseWithoutDblockFlag,
    /// The delta lease acquire reads its claim back at once, without the 2N wait for racers.
    SkipDeltaShortWait,
    /// The watchdog is armed with expire = renewal + 8N + 60 instead of renewal + 8N.
    LateWatchdogExpire,
    /// Ballot reads stay bounded to the host_ids a lockspace read once saw in use, however old
    /// that read (a host that joined since is not read).
    StaleReadBound,
    /// A host message is acknowledged as soon as a scan finds it, before the daemon has
    /// delivered it.
    AckBeforeDelivery,
    /// With every ack slot taken, a new ack overwrites one whose sender still waits.
    AckOverwrite,
    /// A ballot phase on a multi-disk lease is decided by the first disk written and read,
    /// the others not waited for.
    PhaseByMinority,
    /// A multi-disk lease's leader is read from its first disk only, as if it had one.
    LeaderFromOneDisk,
}

impl Mutant {
    /// Every mutant, in declaration order.
    pub const ALL: [Mutant; 15] = [
        Mutant::SkipPhase1Read,
        Mutant::NoOwnerDeadWait,
        Mutant::OwnerDeadByLocalClock,
        Mutant::SameBallotForAllHosts,
        Mutant::IgnoreLargerMbal,
        Mutant::IgnoreModeBlocks,
        Mutant::TrustBadChecksum,
        Mutant::ReleaseWithoutDblockFlag,
        Mutant::SkipDeltaShortWait,
        Mutant::LateWatchdogExpire,
        Mutant::StaleReadBound,
        Mutant::AckBeforeDelivery,
        Mutant::AckOverwrite,
        Mutant::PhaseByMinority,
        Mutant::LeaderFromOneDisk,
    ];

    /// A kebab-case name for command lines and reports.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::SkipPhase1Read => "skip-phase1-read",
            Mutant::NoOwnerDeadWait => "no-owner-dead-wait",
            Mutant::OwnerDeadByLocalClock => "owner-dead-by-local-clock",
            Mutant::SameBallotForAllHosts => "same-ballot-for-all-hosts",
            Mutant::IgnoreLargerMbal => "ignore-larger-mbal",
            Mutant::IgnoreModeBlocks => "ignore-mode-blocks",
            Mutant::TrustBadChecksum => "trust-bad-checksum",
            Mutant::ReleaseWithoutDblockFlag => "release-without-dblock-flag",
            Mutant::SkipDeltaShortWait => "skip-delta-short-wait",
            Mutant::LateWatchdogExpire => "late-watchdog-expire",
            Mutant::StaleReadBound => "stale-read-bound",
            Mutant::AckBeforeDelivery => "ack-before-delivery",
            Mutant::AckOverwrite => "ack-overwrite",
            Mutant::PhaseByMinority => "phase-by-minority",
            Mutant::LeaderFromOneDisk => "leader-from-one-disk",
        }
    }
}

/// The mutant a machine runs with: none, unless the `mutants` feature is on and one was asked
/// for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Mutations {
    #[cfg(feature = "mutants")]
    active: Option<Mutant>,
}

impl Mutations {
    #[cfg(feature = "mutants")]
    pub(crate) fn new(active: Option<Mutant>) -> Self {
        Mutations { active }
    }

    /// Whether `mutant` is switched on.
    #[inline]
    pub(crate) fn has(self, mutant: Mutant) -> bool {
        #[cfg(feature = "mutants")]
        {
            self.active == Some(mutant)
        }
        #[cfg(not(feature = "mutants"))]
        {
            let _ = mutant;
            false
        }
    }
}
