//! The liveness phase: once the faults have stopped and the hosts have worked without them,
//! every free resource must be acquirable by a host that waits for it.

use super::*;

impl World {
    /// The faults have stopped, every host restarted and worked without faults, then every
    /// process exited: for every resource that is free (no running host holds it, works on it,
    /// or met a fault on it) one joined host starts acquiring it, retrying every 3 s; it must
    /// succeed by the deadline.
    pub(super) fn liveness_start(&mut self) {
        self.note(
            0,
            "liveness phase: one waiting acquire per free resource".into(),
        );
        for r in 0..self.cfg.resources {
            let Some(leader) = self.lease_leader(r) else {
                self.stats.liveness_skipped += 1;
                continue;
            };
            let owner = (leader.owner_id, leader.owner_generation);
            let owner_node = (0..self.nodes.len()).find(|&o| {
                self.nodes[o].daemon.as_ref().is_some_and(|d| {
                    self.nodes[o].host_id.get() == owner.0
                        && d.host().generation(self.space).map(|g| g.0) == Some(owner.1)
                })
            });
            // Free: no running host holds it, works on it, or left a fault's traces on it.
            let free = (0..self.nodes.len()).all(|o| {
                let node = &self.nodes[o];
                let key = (self.space, self.resources[r]);
                node.daemon.as_ref().is_none_or(|d| {
                    !node.holders.contains_key(&r)
                        && !self.requested(o, r)
                        && !d.clients().tokens.contains_key(&key)
                        && !d.host().busy(key.0, key.1)
                        && node.clean.get(&r) != Some(&false)
                        && !node.releasing.contains(&r)
                })
            });
            if !free {
                self.stats.liveness_skipped += 1;
                continue;
            }
            // A joined host that is not the owner and uses its own host_id.
            let candidates: Vec<usize> = (0..self.nodes.len())
                .filter(|&o| Some(o) != owner_node && self.nodes[o].joined)
                .filter(|&o| self.nodes[o].host_id.get() == o as u64 + 1)
                .collect();
            if candidates.is_empty() {
                self.stats.liveness_skipped += 1;
                continue;
            }
            let pick = candidates[self.rng.below(candidates.len() as u64) as usize];
            self.stats.liveness_checked += 1;
            self.waiting.insert(r, (pick, false));
            let at = self.now + Duration::from_secs(1);
            let act = Act::Acquire { r, shared: false };
            self.act_at(at, pick, act);
        }
    }

    pub(super) fn liveness_deadline(&mut self) {
        for n in 0..self.nodes.len() {
            for &r in self.nodes[n].holders.keys() {
                if let Some(w) = self.waiting.get_mut(&r) {
                    if w.0 == n {
                        w.1 = true;
                    }
                }
            }
        }
        let stuck: Vec<(usize, usize)> = self
            .waiting
            .iter()
            .filter(|(_, &(_, got))| !got)
            .map(|(&r, &(n, _))| (r, n))
            .collect();
        if let Some(&(r, n)) = stuck.first() {
            let found = self.lease_leader(r);
            let leader = found
                .map(|l| {
                    format!(
                        "lver {} owner host_id {} generation {} timestamp {} write_id {}",
                        l.lver, l.owner_id, l.owner_generation, l.timestamp, l.write_id
                    )
                })
                .unwrap_or_else(|| "unreadable or not agreed on a majority of disks".into());
            let owner = found.and_then(|l| (l.owner_id as usize).checked_sub(1));
            let mut hosts = vec![n];
            hosts.extend(owner);
            self.fail(
                format!(
                    "liveness: resource {r} was free when the faults had stopped, but host{n} \
                     waited {:.0}s without acquiring it (leader: {leader})",
                    self.patience().as_secs_f64()
                ),
                hosts,
            );
        }
    }

    /// Resource `r`'s leader: valid and the same (first 152 bytes) on a majority of its disks.
    fn lease_leader(&self, r: usize) -> Option<RawLeader> {
        crate::disk::agreed_leader((0..self.cfg.lease_disks).map(|d| {
            let offset = self.lease_offset(r, d) as usize;
            &self.disk.bytes()[offset..offset + SECTOR]
        }))
    }

    /// Called from the Acquired path during the liveness phase: remember success.
    pub(super) fn liveness_got(&mut self, n: usize, r: usize) {
        if let Some(w) = self.waiting.get_mut(&r) {
            if w.0 == n {
                w.1 = true;
            }
        }
    }
}
