//! The small worlds the exhaustive checker explores. Each names what its hosts do and which
//! faults may happen; the state space is bounded by the number of acquires, the fault budget
//! and a time horizon.

/// One configuration to explore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it shows.
    pub about: &'static str,
    /// host_id of each host (equal ids: hosts racing for one delta lease).
    pub host_ids: [u64; 3],
    /// Boot time of each host's clock, in seconds before world time zero.
    pub offsets_s: [u64; 3],
    /// Acquires each host's process may make.
    pub acquire_budget: [u8; 3],
    /// Whether each host acquires shared.
    pub shared_mode: [bool; 3],
    /// The window of world time (s) in which each host's process may ask for the lease.
    pub acquire_from_s: [u64; 3],
    /// End of that window.
    pub acquire_until_s: [u64; 3],
    /// Whether a holder exits by itself (else only signals or a reset end it).
    pub holders_exit: [bool; 3],
    /// Faults allowed in one run.
    pub faults: u8,
    /// Fault kinds: failed I/O, hung I/O, corrupted leader reads, a lost disk.
    pub fail: bool,
    /// Hung I/O.
    pub hang: bool,
    /// Slow I/O (completing at a later instant, before its deadline).
    pub slow: bool,
    /// Corrupted reads.
    pub corrupt: bool,
    /// A holder's host losing its disk (before `lose_disk_by_s`).
    pub lose_disk: bool,
    /// No disk is lost after this world time (s).
    pub lose_disk_by_s: u64,
    /// Holders ignore every signal (only the watchdog ends them).
    pub unkillable: bool,
    /// Whether each host's process may die on its own with an acquire under way or holding
    /// the lease (its daemon then releases the lease, or keeps it as an orphan).
    pub may_die: [bool; 3],
    /// Whether each host's process acquires the lease persistent (an orphan if it dies).
    pub persistent: [bool; 3],
    /// Registered processes on each host that never ask for a lease.
    pub idle_clients: [u8; 3],
    /// Whether each host's working process sets a killpath (run instead of SIGTERM).
    pub killpath: [bool; 3],
    /// kill_grace_seconds of every host (0: SIGKILL at once).
    pub kill_grace_s: u64,
    /// io_timeout N.
    pub io_timeout_s: u64,
    /// The io_timeout written into the lockspace at init (a first join's 2N wait uses it);
    /// 0: the hosts' N.
    pub lockspace_io_timeout_s: u64,
    /// World time (s) at which each host asks to join the lockspace.
    pub join_at_s: [u64; 3],
    /// No step after this world time.
    pub horizon_s: u64,
    /// Host messages each host sends to host0 (docs/MESSAGES.md), from `mail_from_s` on.
    pub messages: [u8; 3],
    /// Fences each host asks of host0.
    pub fences: [u8; 3],
    /// Disks the resource lease is on (1-4), each its own MiB of the image after the
    /// lockspace's.
    pub lease_disks: u8,
    /// Whether the lease's last disk may break once, at any step: fail every I/O from then
    /// on, hang every I/O from then on, or be replaced by a zeroed disk that then works.
    pub disk_fault: bool,
    /// Each host's I/O completes (or fails, or hangs) in the order it was issued: the hosts'
    /// I/O still interleave every way, each host's own does not (what keeps a lease on three
    /// disks, three times the I/O, within reach).
    pub in_order: bool,
    /// The window of world time (s) in which hosts may message or fence.
    pub mail_from_s: u64,
    /// End of that window.
    pub mail_until_s: u64,
    /// The deliberate bug every host runs with.
    #[cfg(feature = "mutants")]
    pub mutant: Option<sanlock_core::mutants::Mutant>,
    /// The deliberate bug every host's daemon machine runs with.
    #[cfg(feature = "mutants")]
    pub daemon_mutant: Option<sanlock_machine::mutants::DaemonMutant>,
}

impl Scenario {
    /// Two or three hosts join, race for one exclusive lease and release it, with no fault:
    /// the default of `sanlock-sim check`.
    pub const BASIC: Scenario = Scenario {
        name: "basic",
        about: "the hosts join, race for the lease once each and release it; no faults",
        host_ids: [1, 2, 3],
        offsets_s: [1000, 5000, 9000],
        acquire_budget: [1, 1, 1],
        shared_mode: [false, false, false],
        acquire_from_s: [0, 0, 0],
        acquire_until_s: [u64::MAX, u64::MAX, u64::MAX],
        holders_exit: [true, true, true],
        faults: 0,
        fail: false,
        hang: false,
        slow: false,
        corrupt: false,
        lose_disk: false,
        lose_disk_by_s: 0,
        unkillable: false,
        may_die: [false, false, false],
        persistent: [false, false, false],
        idle_clients: [0, 0, 0],
        killpath: [false, false, false],
        kill_grace_s: 0,
        io_timeout_s: 2,
        lockspace_io_timeout_s: 0,
        join_at_s: [0, 0, 0],
        horizon_s: 7,
        messages: [0, 0, 0],
        fences: [0, 0, 0],
        lease_disks: 1,
        disk_fault: false,
        in_order: false,
        mail_from_s: 0,
        mail_until_s: 0,
        #[cfg(feature = "mutants")]
        daemon_mutant: None,
        #[cfg(feature = "mutants")]
        mutant: None,
    };

    /// Every scenario.
    pub const ALL: [Scenario; 14] = [
        Scenario::BASIC,
        Scenario {
            name: "multi-disk",
            about: "the lease is on three disks, the last of which may fail, hang or be \
                    replaced by a zeroed one",
            lease_disks: 3,
            disk_fault: true,
            in_order: true,
            ..Scenario::BASIC
        },
        Scenario {
            name: "reacquire",
            about: "host0 acquires once, host1 twice, each releasing; no faults",
            acquire_budget: [1, 2, 1],
            horizon_s: 7,
            ..Scenario::BASIC
        },
        Scenario {
            name: "faults",
            about: "one acquire each, and one I/O may fail, be slow, or hang past its deadline",
            acquire_budget: [1, 1, 1],
            faults: 1,
            fail: true,
            hang: true,
            slow: true,
            ..Scenario::BASIC
        },
        Scenario {
            name: "shared",
            about: "host0 holds the lease shared while host1 asks for it exclusively",
            acquire_budget: [1, 2, 1],
            shared_mode: [true, false, true],
            ..Scenario::BASIC
        },
        Scenario {
            name: "corrupt",
            about: "one read of a leader may return it with its timestamp zeroed",
            acquire_budget: [1, 1, 1],
            holders_exit: [false, true, true],
            faults: 1,
            corrupt: true,
            ..Scenario::BASIC
        },
        Scenario {
            name: "same-host-id",
            about: "two hosts with different names join on one host_id; one write may be slow",
            host_ids: [1, 1, 1],
            acquire_budget: [0, 0, 0],
            faults: 1,
            slow: true,
            horizon_s: 8,
            ..Scenario::BASIC
        },
        Scenario {
            name: "watchdog",
            about: "host0's holder cannot be killed and its host loses the disk; host1 then asks",
            acquire_budget: [1, 1, 0],
            acquire_from_s: [0, 12, 0],
            acquire_until_s: [u64::MAX, 13, 0],
            holders_exit: [false, false, false],
            faults: 1,
            lose_disk: true,
            lose_disk_by_s: 10,
            unkillable: true,
            horizon_s: 100,
            ..Scenario::BASIC
        },
        Scenario {
            name: "client-dies",
            about: "host0's process asks for the lease persistent and may die mid-acquire or \
                    holding it; host1's may die too; each daemon releases or orphans",
            may_die: [true, true, false],
            persistent: [true, false, false],
            ..Scenario::BASIC
        },
        Scenario {
            name: "client-stopped",
            about: "host0's holder (with a killpath, beside an idle client) is stopped by its \
                    daemon after host0 loses the disk, with a 10 s kill grace; host1 then asks",
            acquire_budget: [1, 1, 0],
            acquire_from_s: [0, 12, 0],
            acquire_until_s: [u64::MAX, 13, 0],
            holders_exit: [false, false, false],
            idle_clients: [1, 0, 0],
            killpath: [true, false, false],
            kill_grace_s: 10,
            faults: 1,
            lose_disk: true,
            lose_disk_by_s: 10,
            horizon_s: 100,
            ..Scenario::BASIC
        },
        Scenario {
            name: "late-join",
            about: "host0 joins at 0 and renews every 4 s; host1 joins at 5 s, its first join \
                    waiting 2 s (the lockspace was made with io_timeout 1); both ask at 7 s, \
                    while host0's read bound from its 4 s renewal has lapsed",
            lockspace_io_timeout_s: 1,
            join_at_s: [0, 5, 0],
            acquire_from_s: [7, 7, 0],
            horizon_s: 12,
            ..Scenario::BASIC
        },
        Scenario {
            name: "fence",
            about: "host0 holds the lease; host1 fences host0 at 4-5 s (its holder killed, host0 \
                    leaving the lockspace), then asks for the lease at 12 s",
            acquire_budget: [1, 1, 0],
            acquire_from_s: [0, 12, 0],
            acquire_until_s: [u64::MAX, 13, 0],
            holders_exit: [false, true, false],
            fences: [0, 1, 0],
            mail_from_s: 4,
            mail_until_s: 5,
            horizon_s: 20,
            ..Scenario::BASIC
        },
        Scenario {
            name: "fence-faults",
            about: "host0 holds the lease; host1 messages host0 and fences it at 4-5 s; one I/O \
                    may fail (a write lost) or hang past its deadline (a write landing late)",
            acquire_budget: [1, 0, 0],
            holders_exit: [false, false, false],
            messages: [0, 1, 0],
            fences: [0, 1, 0],
            mail_from_s: 4,
            mail_until_s: 5,
            faults: 1,
            fail: true,
            hang: true,
            horizon_s: 16,
            ..Scenario::BASIC
        },
        Scenario {
            name: "fence-stuck",
            about: "host0's holder cannot be killed; at 4-5 s host1 fences host0 and sends a \
                    message that goes out while host0 is leaving (its watchdog firing): acked \
                    only if delivered; the fence cannot return within the horizon",
            acquire_budget: [1, 0, 0],
            holders_exit: [false, false, false],
            unkillable: true,
            messages: [0, 1, 0],
            fences: [0, 1, 0],
            mail_from_s: 4,
            mail_until_s: 5,
            horizon_s: 30,
            ..Scenario::BASIC
        },
    ];

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name == name)
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What it shows.
    pub fn describe(&self) -> &'static str {
        self.about
    }

    pub(crate) fn host_id(&self, h: usize) -> u64 {
        self.host_ids[h]
    }

    pub(crate) fn lockspace_io_timeout_s(&self) -> u64 {
        match self.lockspace_io_timeout_s {
            0 => self.io_timeout_s,
            n => n,
        }
    }

    pub(crate) fn join_at_ms(&self, h: usize) -> u64 {
        self.join_at_s[h] * 1000
    }

    pub(crate) fn offset_ms(&self, h: usize) -> u64 {
        self.offsets_s[h] * 1000
    }

    pub(crate) fn acquires(&self, h: usize) -> u8 {
        self.acquire_budget[h]
    }

    pub(crate) fn may_acquire_at(&self, h: usize, now_ms: u64) -> bool {
        let s = now_ms / 1000;
        self.acquire_from_s[h] <= s && s <= self.acquire_until_s[h]
    }

    pub(crate) fn shared(&self, h: usize) -> bool {
        self.shared_mode[h]
    }

    pub(crate) fn releases(&self, h: usize) -> bool {
        self.holders_exit[h]
    }

    pub(crate) fn dies(&self, h: usize) -> bool {
        self.may_die[h]
    }
}
