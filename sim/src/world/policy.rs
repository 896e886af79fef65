//! What a host's client processes ask of their daemon and when: acquire (some die before the
//! answer), convert, let go (by RELEASE, or by dying holding the lease), request a lease held
//! elsewhere, and release orphans. Each is a request on the process's registered connection,
//! as python3-sanlock sends it.

use sanlock_machine::wire::WireResource;

use super::*;
use crate::requests::{RES_PERSISTENT, RES_SHARED};

impl World {
    pub(super) fn act(&mut self, n: usize, act: Act) {
        let inc = self.nodes[n].inc;
        if self.nodes[n].daemon.is_none() {
            return;
        }
        match act {
            Act::Join => self.join(n),
            Act::Spawn => self.spawn(n),
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
                self.nodes[n].faulted.insert(r, false);
                let mut flags = 0;
                if shared {
                    flags |= RES_SHARED;
                }
                if persistent {
                    flags |= RES_PERSISTENT;
                }
                let (header, call) = requests::acquire(self.resource(r, flags));
                let cmd = Cmd::Acquire {
                    r,
                    persistent,
                    shared,
                };
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
                self.call(n, ci, pid, header, call, cmd);
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
                if self.busy(n, pid) || self.requested(n, r) {
                    // A command of this process is under way: let go once it has finished.
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
                if let Some(p) = self.nodes[n].procs.get_mut(&pid) {
                    p.holds.remove(&r);
                }
                self.inv.dropped(r, n);
                self.nodes[n].faulted.insert(r, false);
                let (header, call) = requests::release(self.resource(r, 0));
                self.call(n, ci, pid, header, call, Cmd::Release { r });
            }
            Act::Convert { r } => {
                let Some(&pid) = self.nodes[n].holders.get(&r) else {
                    return;
                };
                let p = &self.nodes[n].procs[&pid];
                let ci = p.ci;
                if p.exiting || p.exited || self.requested(n, r) {
                    return;
                }
                if self.busy(n, pid) {
                    return;
                }
                let Some(shared) = self.inv.holding(r, n) else {
                    return;
                };
                if !shared {
                    // Asking to downgrade gives up exclusive use at once.
                    let _ = self.inv.converted(r, n, true);
                }
                self.nodes[n].faulted.insert(r, false);
                let res = self.resource(r, if shared { 0 } else { RES_SHARED });
                let (header, call) = requests::convert(res);
                self.call(n, ci, pid, header, call, Cmd::Convert { r });
            }
            Act::Request { r } => {
                let force_mode = if self.rng.below(2) == 0 {
                    ForceMode::Force
                } else {
                    ForceMode::Graceful
                };
                // `sanlock client request`, on a connection of its own.
                let Some(ci) = self.nodes[n].daemon.as_mut().and_then(|d| d.connect(0)) else {
                    return;
                };
                let (header, call) = requests::request(self.resource(r, 0), force_mode.value());
                self.call(n, ci, 0, header, call, Cmd::Request { ci });
            }
            Act::Message { target, fence } => self.send_message(n, target, fence),
            Act::ReleaseOrphans { r } => {
                // REL_ORPHAN from some client: the orphan's lease is released.
                let key = (self.space, self.resources[r]);
                let orphan = self.nodes[n]
                    .daemon
                    .as_ref()
                    .and_then(|d| d.clients().tokens.get(&key))
                    .is_some_and(|t| t.orphan);
                if !orphan {
                    return;
                }
                let Some(pid) = self.idle_client(n) else {
                    let at = self.now + Duration::from_secs(1);
                    self.act_at(at, n, act);
                    return;
                };
                let ci = self.nodes[n].procs[&pid].ci;
                let (header, call) = requests::release_orphans(self.resource(r, 0));
                self.call(n, ci, pid, header, call, Cmd::ReleaseOrphans);
            }
        }
    }

    /// Resource `r` as a request names it, on the shared disk.
    fn resource(&self, r: usize, flags: u32) -> WireResource {
        let offsets: Vec<u64> = (0..self.cfg.lease_disks)
            .map(|k| self.lease_offset(r, k))
            .collect();
        requests::resource_on(self.space, self.resources[r], &offsets, flags)
    }

    /// Whether a request about resource `r` waits for host `n`'s reply.
    pub(super) fn requested(&self, n: usize, r: usize) -> bool {
        self.nodes[n]
            .pending
            .values()
            .any(|p| p.cmd.resource() == Some(r))
    }

    /// Whether process `pid` of host `n` waits for a reply.
    pub(super) fn busy(&self, n: usize, pid: i32) -> bool {
        self.nodes[n].pending.values().any(|p| p.pid == pid)
    }

    /// Whether host `n` may start an acquire of `r`: no process here holds it, no request is
    /// under way on it, and it is not an orphan here.
    fn free_here(&self, n: usize, r: usize) -> bool {
        let node = &self.nodes[n];
        let key = (self.space, self.resources[r]);
        !node.holders.contains_key(&r)
            && !self.requested(n, r)
            && !node
                .daemon
                .as_ref()
                .is_some_and(|d| d.clients().tokens.contains_key(&key))
    }

    /// Random work happens before the liveness phase.
    pub(super) fn busy_phase(&self) -> bool {
        !self.calm_over
    }
}
