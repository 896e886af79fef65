//! What a run is: the knobs on the command line, and everything else drawn from the seed.

use std::fmt;
use std::time::Duration;

use sanlock_core::rng::Rng;

/// Which faults a run injects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultSet {
    /// I/Os that fail with EIO (a failed write may still have landed).
    pub io_errors: bool,
    /// I/Os that outlive their io_timeout (a hung write may land after it).
    pub hangs: bool,
    /// Reads that return a sector with its timestamp word zeroed and the checksum not matching.
    pub corruption: bool,
    /// The daemon stalls for a while (its processes and wdmd keep running).
    pub pauses: bool,
    /// The machine powers off and boots again later.
    pub crashes: bool,
    /// The host loses its path to the disk for a while (its I/O hangs or fails).
    pub disk_loss: bool,
    /// Clocks run up to 100 ppm fast or slow.
    pub drift: bool,
}

impl FaultSet {
    /// Every fault.
    pub const ALL: FaultSet = FaultSet {
        io_errors: true,
        hangs: true,
        corruption: true,
        pauses: true,
        crashes: true,
        disk_loss: true,
        drift: true,
    };

    const NAMES: [&'static str; 7] = [
        "errors",
        "hangs",
        "corruption",
        "pauses",
        "crashes",
        "disk-loss",
        "drift",
    ];

    fn flag(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "errors" => &mut self.io_errors,
            "hangs" => &mut self.hangs,
            "corruption" => &mut self.corruption,
            "pauses" => &mut self.pauses,
            "crashes" => &mut self.crashes,
            "disk-loss" => &mut self.disk_loss,
            "drift" => &mut self.drift,
            _ => return None,
        })
    }

    /// `all`, `none`, or a comma-separated list of fault names.
    pub fn parse(text: &str) -> Result<FaultSet, String> {
        match text {
            "all" => return Ok(FaultSet::ALL),
            "none" => return Ok(FaultSet::default()),
            _ => {}
        }
        let mut set = FaultSet::default();
        for name in text.split(',') {
            let Some(flag) = set.flag(name.trim()) else {
                return Err(format!(
                    "unknown fault {name:?}: expected all, none or a list of {}",
                    FaultSet::NAMES.join(", ")
                ));
            };
            *flag = true;
        }
        Ok(set)
    }

    /// Whether any fault is on.
    pub fn any(&self) -> bool {
        *self != FaultSet::default()
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut copy = *self;
        let on: Vec<&str> = FaultSet::NAMES
            .into_iter()
            .filter(|n| copy.flag(n).is_some_and(|f| *f))
            .collect();
        if on.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", on.join(","))
        }
    }
}

/// A run as asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Hosts, 1 to 2000.
    pub hosts: usize,
    /// Resource leases, each on its own 1 MiB after the lockspace (per disk).
    pub resources: usize,
    /// Disks each resource lease is on (1-4), each its own MiB of the shared image: on three
    /// or four, one disk (the same of every lease) fails, hangs or is replaced by a zeroed
    /// one from a time the seed picks to the end of the run.
    pub lease_disks: usize,
    /// Picks every other parameter.
    pub seed: u64,
    /// Simulated seconds with faults and random work; a liveness phase follows.
    pub seconds: u64,
    /// Client processes per host (registered with its daemon; each holds any number of
    /// leases, and may die holding them or mid-acquire).
    pub clients: usize,
    /// Faults to inject.
    pub faults: FaultSet,
    /// Run the liveness phase after the faults stop.
    pub liveness: bool,
    /// Keep the whole timeline (not only the newest entries) to print it.
    pub keep_timeline: bool,
    /// Every run has late joiners with io_timeout 2 among hosts with io_timeout 10, on a
    /// lockspace initialised with io_timeout 1 (else the seed picks them): ballots run while
    /// hosts join for the first time and ballot read bounds have lapsed.
    pub late_joins: bool,
    /// Hosts send each other messages and fences (docs/MESSAGES.md): every 20-60 s a target
    /// is picked and the other joined hosts message it at once, one of them sometimes
    /// fencing it instead. Off by default: on, it changes every seed's run.
    pub messages: bool,
    /// The deliberate bug every host runs with.
    #[cfg(feature = "mutants")]
    pub mutant: Option<sanlock_core::mutants::Mutant>,
    /// The deliberate bug every host's daemon machine runs with.
    #[cfg(feature = "mutants")]
    pub daemon_mutant: Option<sanlock_machine::mutants::DaemonMutant>,
}

impl SimConfig {
    /// A run of `hosts` hosts on `resources` resources for `seconds`, with every fault.
    pub fn new(hosts: usize, resources: usize, seed: u64, seconds: u64) -> Self {
        SimConfig {
            hosts,
            resources,
            lease_disks: 1,
            seed,
            seconds,
            clients: 4,
            faults: FaultSet::ALL,
            liveness: true,
            messages: false,
            keep_timeline: false,
            late_joins: false,
            #[cfg(feature = "mutants")]
            mutant: None,
            #[cfg(feature = "mutants")]
            daemon_mutant: None,
        }
    }

    /// Checks the ranges the simulator supports.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=2000).contains(&self.hosts) {
            return Err(format!("--hosts {} is outside 1..=2000", self.hosts));
        }
        if !(1..=4).contains(&self.lease_disks) {
            return Err(format!(
                "--lease-disks {} is outside 1..=4",
                self.lease_disks
            ));
        }
        if !(1..=64).contains(&self.resources) {
            return Err(format!("--resources {} is outside 1..=64", self.resources));
        }
        if !(1..=64).contains(&self.clients) {
            return Err(format!("--clients {} is outside 1..=64", self.clients));
        }
        if self.seconds == 0 {
            return Err("--seconds must be at least 1".into());
        }
        Ok(())
    }
}

/// Everything the seed picks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// io_timeout N of the lockspace, in seconds.
    pub io_timeout_s: u64,
    /// kill_grace_seconds of every host.
    pub kill_grace_s: u64,
    /// An ordinary I/O takes up to this long.
    pub latency: Duration,
    /// Per million I/Os: slow but in time, failed, hung, corrupted reads.
    pub slow_ppm: u64,
    /// Failed I/Os per million.
    pub error_ppm: u64,
    /// Hung I/Os per million.
    pub hang_ppm: u64,
    /// Corrupted reads per million.
    pub corrupt_ppm: u64,
    /// Per host and hour: pauses, crashes, disk losses.
    pub pauses_per_hour: u64,
    /// Crashes per host and hour.
    pub crashes_per_hour: u64,
    /// Disk losses per host and hour.
    pub losses_per_hour: u64,
    /// Largest clock rate error, in ppm.
    pub drift_ppm: i64,
    /// Percent of acquires that ask for a shared lease.
    pub shared_pct: u64,
    /// Percent of holders that convert before they release.
    pub convert_pct: u64,
    /// Percent of refused acquires followed by a request to the holder.
    pub request_pct: u64,
    /// Percent of holders that ignore SIGTERM (they stop only on SIGKILL).
    pub ignore_term_pct: u64,
    /// Percent of holders that no signal stops (stuck in the kernel): only a reset ends them.
    pub unkillable_pct: u64,
    /// Longest hold, and longest pause between a host's acquires.
    pub hold_max: Duration,
    /// Longest think time between acquire attempts.
    pub think_max: Duration,
    /// Percent of boots that pick another host's host_id (a misconfigured host).
    pub wrong_host_id_pct: u64,
    /// Host 1 is a clone of host 0: both boot at one instant and join host_id 1 together.
    pub clone_start: bool,
    /// Percent of client processes that set a killpath (run instead of SIGTERM).
    pub killpath_pct: u64,
    /// Percent of acquires that ask for a persistent lease (an orphan when its holder dies).
    pub persistent_pct: u64,
    /// Percent of holders that die (exit without RELEASE) rather than release; the same share
    /// of acquires see their process die before the answer.
    pub death_pct: u64,
    /// The io_timeout written into the lockspace at init (what a first join's 2N wait uses),
    /// when shorter than the hosts' own: their renewals are further apart than a joiner's
    /// wait, so ballot read bounds (core::hosts::ReadBound) lapse between renewals.
    pub lockspace_io_timeout_s: u64,
    /// The upper half of the hosts (by host_id, never host 0 or 1) boot late, each somewhere
    /// in the first half of the run: their first joins come while the others run ballots.
    pub late_joiner: bool,
    /// The late joiners' own io_timeout, when not 0 (the others keep `io_timeout_s`): a
    /// joiner whose 2N wait is shorter than the others' renewal interval.
    pub late_io_timeout_s: u64,
}

impl Params {
    /// The parameters seed and faults pick.
    pub fn pick(seed: u64, faults: &FaultSet) -> Params {
        let mut rng = Rng::new(seed ^ 0x5EED_5EED_5EED_5EED);
        let mut pick = |values: &[u64]| values[rng.below(values.len() as u64) as usize];
        // Not 1: with 8N = 8 s, wdmd's check at expire - 10 s fails on every pass and the
        // watchdog resets the host 60 s after it joins (wdmd/main.c test_clients).
        let io_timeout_s = pick(&[2, 2, 3, 5, 10]);
        let on = |flag: bool, v: u64| if flag { v } else { 0 };
        Params {
            io_timeout_s,
            kill_grace_s: pick(&[0, 3, 10, 40]),
            latency: Duration::from_millis(pick(&[2, 10, 50, 200])),
            slow_ppm: pick(&[1_000, 10_000, 50_000]),
            error_ppm: on(faults.io_errors, pick(&[500, 2_000, 10_000])),
            hang_ppm: on(faults.hangs, pick(&[500, 2_000, 10_000])),
            corrupt_ppm: on(faults.corruption, pick(&[200, 1_000, 5_000])),
            pauses_per_hour: on(faults.pauses, pick(&[1, 2, 4])),
            crashes_per_hour: on(faults.crashes, pick(&[1, 2])),
            losses_per_hour: on(faults.disk_loss, pick(&[1, 2, 4])),
            drift_ppm: on(faults.drift, pick(&[20, 100])) as i64,
            shared_pct: pick(&[0, 20, 40]),
            convert_pct: pick(&[0, 20, 50]),
            request_pct: pick(&[0, 10, 30]),
            ignore_term_pct: pick(&[0, 20]),
            unkillable_pct: on(faults.crashes || faults.pauses, pick(&[0, 5, 20])),
            hold_max: Duration::from_secs(pick(&[5, 30, 120])),
            think_max: Duration::from_secs(pick(&[2, 10, 30])),
            wrong_host_id_pct: pick(&[0, 0, 5]),
            clone_start: pick(&[0, 1]) == 1,
            killpath_pct: pick(&[0, 30]),
            persistent_pct: pick(&[0, 10, 30]),
            death_pct: pick(&[10, 30]),
            lockspace_io_timeout_s: pick(&[io_timeout_s, io_timeout_s, 1]),
            late_joiner: pick(&[0, 1]) == 1,
            late_io_timeout_s: pick(&[0, 2]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_and_print_back() {
        assert_eq!(FaultSet::parse("all").unwrap(), FaultSet::ALL);
        assert!(!FaultSet::parse("none").unwrap().any());
        let set = FaultSet::parse("hangs,crashes").unwrap();
        assert!(set.hangs && set.crashes && !set.io_errors);
        assert_eq!(set.to_string(), "hangs,crashes");
        let err = FaultSet::parse("hangs,fire").unwrap_err();
        assert!(err.contains("\"fire\""), "{err}");
    }

    #[test]
    fn the_seed_picks_the_parameters() {
        assert_eq!(
            Params::pick(7, &FaultSet::ALL),
            Params::pick(7, &FaultSet::ALL)
        );
        let quiet = Params::pick(7, &FaultSet::default());
        assert_eq!(quiet.error_ppm + quiet.hang_ppm + quiet.crashes_per_hour, 0);
        let n: std::collections::BTreeSet<u64> = (0..64)
            .map(|s| Params::pick(s, &FaultSet::ALL).io_timeout_s)
            .collect();
        assert!(n.len() > 3, "{n:?}");
    }
}
