//! The simulated daemon's policy: what a host's processes ask for and when, and how they end
//! (their own exit, a signal, or a reset).

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
            Act::Think => {
                if !self.nodes[n].joined || !self.busy_phase() {
                    return;
                }
                let r = self.rng.below(self.cfg.resources as u64) as usize;
                let node = &self.nodes[n];
                if !node.holders.contains_key(&r) && !node.ops.contains_key(&r) {
                    let shared = self.pct(self.p.shared_pct);
                    self.act(n, Act::Acquire { r, shared });
                }
                let at = self.now + self.uniform(self.p.think_max);
                self.act_at(at, n, Act::Think);
                return;
            }
            Act::Acquire { r, shared } => {
                if self.nodes[n].holders.contains_key(&r) || self.nodes[n].ops.contains_key(&r) {
                    return;
                }
                self.nodes[n].ops.insert(r, Op::Acquire { shared });
                self.nodes[n].faulted.insert(r, false);
                let request = AcquireRequest {
                    shared,
                    ..AcquireRequest::default()
                };
                let (space, res) = (self.space, self.resources[r]);
                let offset = (r as u64 + 1) * MIB;
                let host = self.nodes[n].host.as_mut().expect("checked");
                host.acquire(now, space, res, offset, request);
            }
            Act::Release { r } => {
                let busy = self.nodes[n].ops.contains_key(&r);
                let Some(h) = self.nodes[n].holders.get_mut(&r) else {
                    return;
                };
                if busy {
                    // A convert is under way: let go once it has finished.
                    let at = self.now + Duration::from_secs(1);
                    self.act_at(at, n, act);
                } else if !h.exiting {
                    h.exiting = true;
                    let ev = Ev::Exit {
                        n,
                        inc,
                        r,
                        signalled: false,
                    };
                    self.agenda.schedule(self.now, ev);
                }
                return;
            }
            Act::Convert { r } => {
                let Some(&h) = self.nodes[n].holders.get(&r) else {
                    return;
                };
                if h.exiting || self.nodes[n].ops.contains_key(&r) {
                    return;
                }
                let Some(shared) = self.inv.holding(r, n) else {
                    return;
                };
                if !shared {
                    // Asking to downgrade gives up exclusive use at once.
                    let _ = self.inv.converted(r, n, true);
                }
                self.nodes[n].ops.insert(r, Op::Convert);
                self.nodes[n].faulted.insert(r, false);
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
        }
        self.drain(n);
    }

    /// Random work happens before the liveness phase.
    pub(super) fn busy_phase(&self) -> bool {
        !self.calm_over
    }

    /// The daemon learns that a process exited: its lease is released (or only forgotten, on a
    /// failed lockspace); once a stopping lockspace has no processes left, recovery ends.
    pub(super) fn reap(&mut self, n: usize, r: usize) {
        let now = self.local(n);
        let space = self.space;
        let res = self.resources.get(r).copied();
        let node = &mut self.nodes[n];
        let Some(host) = node.host.as_mut() else {
            return;
        };
        if let Some(res) = res.filter(|&res| host.held(space, res).is_some()) {
            node.ops.insert(r, Op::Release);
            node.faulted.insert(r, false);
            host.release(now, space, res);
        }
        if self.nodes[n].stopping && self.nodes[n].holders.is_empty() {
            self.nodes[n].stopping = false;
            let host = self.nodes[n].host.as_mut().expect("checked");
            host.holders_gone(now, space);
        }
        self.drain(n);
    }

    /// Makes process `r` of host `n` stop, as SIGTERM/killpath (graceful) or SIGKILL would.
    pub(super) fn signal(&mut self, n: usize, r: usize, graceful: bool) {
        let inc = self.nodes[n].inc;
        let Some(h) = self.nodes[n].holders.get_mut(&r) else {
            return;
        };
        let stops = match h.stubborn {
            Stubborn::No => true,
            Stubborn::IgnoresTerm => !graceful,
            Stubborn::Unkillable => false,
        };
        if !stops || h.exiting {
            return;
        }
        h.exiting = true;
        let delay = if graceful {
            self.millis(2_000)
        } else {
            self.millis(300)
        };
        let ev = Ev::Exit {
            n,
            inc,
            r,
            signalled: true,
        };
        self.agenda.schedule(self.now + delay, ev);
    }
}
