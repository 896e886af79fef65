//! What a host's client processes ask of their daemon and when: acquire (some die before the
//! answer), convert, let go (by RELEASE, or by dying holding the lease), request a lease held
//! elsewhere, and release orphans.

use super::*;

impl World {
    pub(super) fn act(&mut self, n: usize, act: Act) {
        let now = self.local(n);
        let inc = self.nodes[n].inc;
        if self.nodes[n].host.is_none() {
            return;
        }
        match act {
            Act::Join => return self.join(n),
            Act::Spawn => return self.spawn(n),
            Act::Think => {
                if !self.nodes[n].joined || !self.busy_phase() {
                    return;
                }
                let r = self.rng.below(self.cfg.resources as u64) as usize;
                if self.free_here(n, r) {
                    let shared = self.pct(self.p.shared_pct);
                    self.act(n, Act::Acquire { r, shared });
                }
                let at = self.now + self.uniform(self.p.think_max);
                self.act_at(at, n, Act::Think);
                return;
            }
            Act::Acquire { r, shared } => {
                if !self.free_here(n, r) {
                    return;
                }
                let Some(pid) = self.idle_client(n) else {
                    if self.waiting.get(&r).is_some_and(|&(h, _)| h == n) {
                        // The liveness phase's acquire waits for a client.
                        let at = self.now + Duration::from_secs(1);
                        self.act_at(at, n, act);
                    }
                    return;
                };
                let persistent = self.busy_phase() && self.pct(self.p.persistent_pct);
                let dies = self.busy_phase() && self.pct(self.p.death_pct / 3);
                let ci = self.nodes[n].procs[&pid].ci;
                let node = &mut self.nodes[n];
                if let Some(c) = node.table.get_mut(ci) {
                    c.job = Some(Cmd::Acquire { r, persistent });
                }
                node.ops.insert(r, Op::Acquire { shared });
                node.faulted.insert(r, false);
                let request = AcquireRequest {
                    shared,
                    ..AcquireRequest::default()
                };
                let (space, res) = (self.space, self.resources[r]);
                let offset = (r as u64 + 1) * MIB;
                let host = self.nodes[n].host.as_mut().expect("checked");
                host.acquire(now, space, res, offset, request);
                if dies {
                    // The process dies with its acquire under way.
                    let at = self.now + self.millis(3_000);
                    let ev = Ev::Exit {
                        n,
                        inc,
                        pid,
                        signalled: false,
                    };
                    self.agenda.schedule(at, ev);
                }
            }
            Act::Release { r } => {
                let Some(&pid) = self.nodes[n].holders.get(&r) else {
                    return;
                };
                let p = &self.nodes[n].procs[&pid];
                let ci = p.ci;
                if p.exiting || p.exited {
                    return;
                }
                let busy = self.nodes[n].table.target(ci, u32::MAX).is_none();
                if busy || self.nodes[n].ops.contains_key(&r) {
                    // A command of this client is under way: let go once it has finished.
                    let at = self.now + Duration::from_secs(1);
                    self.act_at(at, n, act);
                    return;
                }
                if self.busy_phase() && self.pct(self.p.death_pct) {
                    // It dies holding its leases; the daemon releases (or orphans) them.
                    self.nodes[n].procs.get_mut(&pid).expect("live").exiting = true;
                    let ev = Ev::Exit {
                        n,
                        inc,
                        pid,
                        signalled: false,
                    };
                    self.agenda.schedule(self.now, ev);
                    return;
                }
                // RELEASE: it holds the lease no more once it asks.
                self.nodes[n].holders.remove(&r);
                self.nodes[n]
                    .procs
                    .get_mut(&pid)
                    .expect("live")
                    .holds
                    .remove(&r);
                self.inv.dropped(r, n);
                let key = self.key(r);
                if self.nodes[n].table.drop_holder(ci, key) {
                    if let Some(c) = self.nodes[n].table.get_mut(ci) {
                        c.job = Some(Cmd::Release { r });
                    }
                    if !self.release_lease(n, r) {
                        // Nothing to write (a failed lockspace dropped it): answered at once.
                        self.command_done(n, ci);
                    }
                } else {
                    self.nodes[n].table.release_answered(ci);
                    self.table_effects(n, None);
                }
            }
            Act::Convert { r } => {
                let Some(&pid) = self.nodes[n].holders.get(&r) else {
                    return;
                };
                let p = &self.nodes[n].procs[&pid];
                let ci = p.ci;
                if p.exiting || p.exited || self.nodes[n].ops.contains_key(&r) {
                    return;
                }
                if self.nodes[n].table.target(ci, u32::MAX).is_none() {
                    return;
                }
                let Some(shared) = self.inv.holding(r, n) else {
                    return;
                };
                if !shared {
                    // Asking to downgrade gives up exclusive use at once.
                    let _ = self.inv.converted(r, n, true);
                }
                let node = &mut self.nodes[n];
                if let Some(c) = node.table.get_mut(ci) {
                    c.job = Some(Cmd::Convert { r });
                }
                node.ops.insert(r, Op::Convert);
                node.faulted.insert(r, false);
                let (space, res) = (self.space, self.resources[r]);
                let host = self.nodes[n].host.as_mut().expect("checked");
                host.convert(now, space, res, !shared);
            }
            Act::Request { r } => {
                let force_mode = if self.rng.below(2) == 0 {
                    ForceMode::Force
                } else {
                    ForceMode::Graceful
                };
                let args = RequestArgs {
                    lver: None,
                    force_mode,
                    next_lver: true,
                };
                let (space, res) = (self.space, self.resources[r]);
                let offset = (r as u64 + 1) * MIB;
                let host = self.nodes[n].host.as_mut().expect("checked");
                host.request(now, space, res, offset, args);
            }
            Act::ReleaseOrphans { r } => {
                // REL_ORPHAN from some client: the orphan's lease is released.
                let key = self.key(r);
                let orphan = self.nodes[n]
                    .table
                    .tokens
                    .get(&key)
                    .is_some_and(|t| t.orphan);
                if !orphan {
                    return;
                }
                if self.nodes[n].ops.contains_key(&r) {
                    let at = self.now + Duration::from_secs(1);
                    self.act_at(at, n, act);
                    return;
                }
                self.nodes[n].table.tokens.remove(&key);
                self.release_lease(n, r);
            }
        }
        self.drain(n);
    }

    /// Whether host `n` may start an acquire of `r`: no process here holds it, no operation
    /// is under way on it, and it is not an orphan here.
    fn free_here(&self, n: usize, r: usize) -> bool {
        let node = &self.nodes[n];
        !node.holders.contains_key(&r)
            && !node.ops.contains_key(&r)
            && !node.table.tokens.contains_key(&self.key(r))
            && self.client_on(n, r).is_none()
    }

    /// Random work happens before the liveness phase.
    pub(super) fn busy_phase(&self) -> bool {
        !self.calm_over
    }
}
