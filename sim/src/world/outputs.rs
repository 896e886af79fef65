//! What the simulated daemon does with a host's outputs, and the checks they trigger.

use super::*;

impl World {
    pub(super) fn output(&mut self, n: usize, out: Output) {
        match &out {
            Output::WatchdogArm {
                space_name,
                renewal,
                expire,
            } => {
                let order = self.nodes[n].keeper.arm(*space_name, *renewal, *expire);
                return self.wdmd_order(n, order);
            }
            Output::WatchdogDisarm { space_name } => {
                let order = self.nodes[n].keeper.disarm(*space_name);
                return self.wdmd_order(n, order);
            }
            // The renewal history is the daemon's; the timeline records the renewals' I/O.
            Output::Renewal { .. } => return,
            _ => self.timeline.push(self.now, n, What::Output(out.clone())),
        }
        match out {
            Output::Joined { .. } => {
                self.nodes[n].joined = true;
                self.nodes[n].failed = false;
                // A new generation: traces left by the old one belong to a dead host.
                self.nodes[n].clean.clear();
                let host_id = self.nodes[n].host_id;
                let others: Vec<usize> = (0..self.nodes.len())
                    .filter(|&o| o != n && self.nodes[o].host_id == host_id)
                    .filter(|&o| {
                        let local = self.local(o);
                        self.nodes[o]
                            .host
                            .as_ref()
                            .is_some_and(|h| h.delta_live(self.space, local))
                    })
                    .collect();
                if let Err(v) = self.inv.joined(n, host_id.get(), &others) {
                    let mut hosts = vec![n];
                    hosts.extend(others);
                    self.fail(v, hosts);
                }
                let at = self.now + self.uniform(self.p.think_max);
                self.act_at(at, n, Act::Think);
            }
            Output::JoinFailed { .. } | Output::Left { .. } => {
                self.nodes[n].joined = false;
                // Whatever of its leases the daemon still lists goes with the lockspace.
                let space = self.space;
                self.nodes[n].table.forget_space(space);
                let at = self.now + Duration::from_secs(1) + self.millis(20_000);
                self.act_at(at, n, Act::Join);
            }
            Output::LockspaceFailed { .. } => {
                self.stats.lockspace_failures += 1;
                self.nodes[n].joined = false;
                self.nodes[n].failed = true;
            }
            Output::StopHolders {
                space_name,
                graceful,
            } => {
                let now = self.local(n);
                let grace = self.p.kill_grace_s > 0;
                let table = &mut self.nodes[n].table;
                table.stop_holders(now, space_name, graceful, grace);
                self.table_effects(n, Some(graceful));
                self.check_all_stopped(n);
                self.holders_check(n);
            }
            Output::StopHolder {
                space_name,
                resource_name,
                graceful,
            } => {
                let table = &mut self.nodes[n].table;
                table.stop_holder((space_name, resource_name), graceful);
                self.table_effects(n, None);
            }
            Output::Resource {
                resource_name,
                event,
                ..
            } => {
                let r = self
                    .resources
                    .iter()
                    .position(|x| *x == resource_name)
                    .expect("our resources");
                self.resource_event(n, r, event);
            }
            _ => {}
        }
    }

    pub(super) fn resource_event(&mut self, n: usize, r: usize, event: paxos::Event) {
        let op = self.nodes[n].ops.remove(&r);
        let clean = self.nodes[n].faulted.get(&r) != Some(&true)
            && !matches!(event, paxos::Event::ReleaseFailed { .. });
        if !clean {
            // Sticky until this generation ends: a fault's traces (a leader naming us, a
            // stale mode block) outlive the operation that met it.
            self.nodes[n].clean.insert(r, false);
        }
        // The client whose command this answers (none for the daemon's own releases).
        let client = self.client_on(n, r);
        match event {
            paxos::Event::Acquired { leader, .. } => {
                let shared = matches!(op, Some(Op::Acquire { shared: true }));
                if shared {
                    self.stats.acquired_sh += 1;
                } else {
                    self.stats.acquired_ex += 1;
                }
                let owner = (
                    leader.owner_id.map_or(0, HostId::get),
                    leader.owner_generation.0,
                );
                // Since seed 335 (docs/SIMULATION.md) an exclusive version is never won twice,
                // stale leader writes or not.
                let broken = match self.inv.acquired(r, n, shared, leader.lver.0, owner) {
                    Ok(()) => None,
                    Err(Broken::Exclusion(v) | Broken::Version(v)) => Some(v),
                };
                if let Some(v) = broken {
                    self.fail_on_resource(n, r, v);
                }
                let Some((ci, Cmd::Acquire { persistent, .. })) = client else {
                    // No client asked (cannot happen): the lease goes back.
                    self.inv.dropped(r, n);
                    self.release_lease(n, r);
                    return;
                };
                self.hold(n, ci, r, shared, leader.lver.0, persistent);
                let pid = self.nodes[n].table.get(ci).map_or(-1, |c| c.pid);
                let alive = self.nodes[n].procs.get(&pid).is_some_and(|p| !p.exited);
                if !alive {
                    // Its process died before the answer: it never held the lease, and the
                    // daemon gives it back as it finishes the command.
                    self.inv.dropped(r, n);
                    let key = self.key(r);
                    if let Some(c) = self.nodes[n].table.get_mut(ci) {
                        c.job = None;
                    }
                    if self.nodes[n].table.drop_holder(ci, key) {
                        self.release_lease(n, r);
                    }
                    self.command_done(n, ci);
                    return;
                }
                self.nodes[n].holders.insert(r, pid);
                if let Some(p) = self.nodes[n].procs.get_mut(&pid) {
                    p.holds.insert(r, persistent);
                }
                self.command_done(n, ci);
                self.liveness_got(n, r);
                let mut at = self.now + self.uniform(self.p.hold_max);
                if !self.busy_phase() {
                    // Holders let go soon: the liveness phase needs them gone.
                    at = self.now + self.millis(1_000);
                } else if self.pct(self.p.convert_pct) {
                    self.act_at(at, n, Act::Convert { r });
                    at += self.uniform(self.p.hold_max);
                }
                let release = Act::Release { r };
                self.act_at(at, n, release);
            }
            paxos::Event::AcquireFailed { rv } => {
                self.stats.refused += 1;
                if let Some((ci, _)) = client {
                    self.command_done(n, ci);
                }
                if self.waiting.get(&r).is_some_and(|&(h, _)| h == n) {
                    let at = self.now + Duration::from_secs(3);
                    let act = Act::Acquire { r, shared: false };
                    self.act_at(at, n, act);
                } else if rv != -17 && self.busy_phase() && self.pct(self.p.request_pct) {
                    let at = self.now + self.millis(2_000);
                    self.act_at(at, n, Act::Request { r });
                }
            }
            paxos::Event::Converted { shared } => {
                self.stats.converted += 1;
                if self.nodes[n].holders.contains_key(&r) {
                    if let Err(v) = self.inv.converted(r, n, shared) {
                        self.fail_on_resource(n, r, v);
                    }
                }
                let key = self.key(r);
                if let Some(t) = self.nodes[n].table.tokens.get_mut(&key) {
                    t.shared = shared;
                }
                if let Some((ci, _)) = client {
                    self.command_done(n, ci);
                }
            }
            paxos::Event::Released | paxos::Event::ReleaseFailed { .. } => {
                if matches!(event, paxos::Event::Released) {
                    self.stats.released += 1;
                }
                if let Some((ci, Cmd::Release { .. })) = client {
                    self.command_done(n, ci);
                }
            }
            paxos::Event::ConvertFailed { .. } => {
                if let Some((ci, _)) = client {
                    self.command_done(n, ci);
                }
            }
            paxos::Event::NeedHostStatus { .. } | paxos::Event::NeedOwnerStatus { .. } => {}
        }
    }
}
