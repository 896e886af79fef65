//! The safety properties checked after every step of a run, from the processes' point of view:
//! a process holds a resource from the moment its acquire succeeds until it exits or its host
//! is reset.

use std::collections::BTreeMap;

/// A broken property, in words.
pub type Violation = String;

/// Which property an acquisition broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Broken {
    /// Two holders where one must be alone.
    Exclusion(Violation),
    /// A lease version acquired twice, or not above an earlier one.
    Version(Violation),
}

/// What the checkers know about every resource and host_id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Invariants {
    /// Per resource: the hosts whose process holds it, and whether shared.
    holders: Vec<BTreeMap<usize, bool>>,
    /// Per resource: who each lease version was acquired by (host_id, generation).
    decided: Vec<BTreeMap<u64, (u64, u64)>>,
    /// Per resource: the largest lver acquired exclusively.
    max_ex_lver: Vec<u64>,
    checks: u64,
}

impl Invariants {
    /// Nothing held yet, on `resources` resources.
    pub fn new(resources: usize) -> Self {
        Invariants {
            holders: vec![BTreeMap::new(); resources],
            decided: vec![BTreeMap::new(); resources],
            max_ex_lver: vec![0; resources],
            checks: 0,
        }
    }

    /// Property evaluations so far.
    pub fn checks(&self) -> u64 {
        self.checks
    }

    /// Whether host `n`'s process holds resource `r`, and how.
    pub fn holding(&self, r: usize, n: usize) -> Option<bool> {
        self.holders[r].get(&n).copied()
    }

    /// Host `n`'s process now holds `r` (shared or not) at lease version `lver`, owner
    /// (host_id, generation) on disk. Checks: no exclusive holder beside it, and none at all
    /// if it is exclusive; one owner per lease version; an exclusive acquire's version above
    /// every version acquired before it, a shared one's above every exclusive one.
    pub fn acquired(
        &mut self,
        r: usize,
        n: usize,
        shared: bool,
        lver: u64,
        owner: (u64, u64),
    ) -> Result<(), Broken> {
        self.checks += 1;
        self.conflicts(r, n, shared, "acquired")
            .map_err(Broken::Exclusion)?;
        self.holders[r].insert(n, shared);
        if shared {
            // Shared versions are not unique: see docs/SIMULATION.md (a late leader write
            // can take the leader back to an older version, and a shared hold's ballot vote
            // does not survive the holder's next ballot).
            return Ok(());
        }
        self.checks += 2;
        if let Some(&first) = self.decided[r].get(&lver) {
            if first != owner {
                return Err(Broken::Version(format!(
                    "resource {r} lver {lver} acquired by host_id {} generation {} after host_id {} \
                     generation {} acquired it",
                    owner.0, owner.1, first.0, first.1
                )));
            }
        }
        self.decided[r].insert(lver, owner);
        let floor = self.max_ex_lver[r];
        if lver <= floor {
            return Err(Broken::Version(format!(
                "resource {r} acquired EX at lver {lver}, not above lver {floor} acquired EX before"
            )));
        }
        self.max_ex_lver[r] = lver;
        Ok(())
    }

    /// Host `n`'s holder of `r` now uses it in the other mode.
    pub fn converted(&mut self, r: usize, n: usize, shared: bool) -> Result<(), Violation> {
        self.checks += 1;
        if self.holders[r].contains_key(&n) {
            self.conflicts(r, n, shared, "converted")?;
            self.holders[r].insert(n, shared);
        }
        Ok(())
    }

    /// Counts a check made elsewhere (the daemon's properties, world/daemon_checks.rs).
    pub fn count_check(&mut self) {
        self.checks += 1;
    }

    /// Host `n`'s process no longer holds `r` (it exited, or its host was reset).
    pub fn dropped(&mut self, r: usize, n: usize) {
        self.holders[r].remove(&n);
    }

    /// Host `n` joined on a host_id that `others` (hosts whose delta lease on the same host_id
    /// is live at this instant) also hold.
    pub fn joined(&mut self, n: usize, host_id: u64, others: &[usize]) -> Result<(), Violation> {
        self.checks += 1;
        match others.first() {
            None => Ok(()),
            Some(other) => Err(format!(
                "host{n} acquired the delta lease of host_id {host_id} while host{other}'s is live"
            )),
        }
    }

    fn conflicts(&self, r: usize, n: usize, shared: bool, what: &str) -> Result<(), Violation> {
        for (&other, &other_shared) in &self.holders[r] {
            if other != n && !(shared && other_shared) {
                return Err(format!(
                    "host{n} {what} resource {r} {} while host{other} holds it {}",
                    mode(shared),
                    mode(other_shared)
                ));
            }
        }
        Ok(())
    }
}

fn mode(shared: bool) -> &'static str {
    if shared {
        "SH"
    } else {
        "EX"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_exclusive_holders_or_one_beside_shared_ones_are_caught() {
        let mut inv = Invariants::new(1);
        inv.acquired(0, 1, true, 1, (2, 1)).unwrap();
        inv.acquired(0, 2, true, 2, (3, 1)).unwrap();
        let Broken::Exclusion(e) = inv.acquired(0, 3, false, 3, (4, 1)).unwrap_err() else {
            panic!("an exclusion")
        };
        assert!(
            e.contains("host3 acquired resource 0 EX while host1 holds it SH"),
            "{e}"
        );
        inv.dropped(0, 1);
        inv.dropped(0, 2);
        inv.acquired(0, 3, false, 4, (4, 1)).unwrap();
        assert!(inv.converted(0, 3, true).is_ok());
        let mut two = Invariants::new(1);
        two.acquired(0, 0, false, 5, (1, 1)).unwrap();
        assert!(two.acquired(0, 1, false, 6, (2, 1)).is_err());
    }

    #[test]
    fn a_version_has_one_owner_and_versions_grow() {
        let mut inv = Invariants::new(1);
        inv.acquired(0, 0, false, 5, (1, 1)).unwrap();
        inv.dropped(0, 0);
        let Broken::Version(e) = inv.acquired(0, 1, false, 5, (2, 1)).unwrap_err() else {
            panic!("a version")
        };
        assert!(e.contains("lver 5 acquired by host_id 2"), "{e}");
        let mut inv = Invariants::new(1);
        inv.acquired(0, 0, false, 5, (1, 1)).unwrap();
        inv.dropped(0, 0);
        let Broken::Version(e) = inv.acquired(0, 1, false, 4, (2, 1)).unwrap_err() else {
            panic!("a version")
        };
        assert!(e.contains("not above lver 5"), "{e}");
        assert!(inv.joined(1, 3, &[0]).is_err());
        assert!(inv.joined(1, 3, &[]).is_ok());
    }
}
