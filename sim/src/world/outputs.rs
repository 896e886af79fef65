//! What the simulated daemon does with a host's outputs, and the checks they trigger.

use super::*;

impl World {
    pub(super) fn output(&mut self, n: usize, out: Output) {
        let inc = self.nodes[n].inc;
        match &out {
            Output::WatchdogArm { expire, .. } => {
                self.nodes[n].armed = Some(*expire);
                return;
            }
            Output::WatchdogDisarm { .. } => {
                self.nodes[n].armed = None;
                return;
            }
            // The renewal history is the daemon's; the timeline records the renewals' I/O.
            Output::Renewal { .. } => return,
            _ => self.timeline.push(self.now, n, What::Output(out.clone())),
        }
        match out {
            Output::Joined { .. } => {
                self.nodes[n].joined = true;
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
                let at = self.now + Duration::from_secs(1) + self.millis(20_000);
                self.act_at(at, n, Act::Join);
            }
            Output::LockspaceFailed { .. } => {
                self.stats.lockspace_failures += 1;
                self.nodes[n].joined = false;
            }
            Output::StopHolders { graceful, .. } => {
                self.nodes[n].stopping = true;
                let held: Vec<usize> = self.nodes[n].holders.keys().copied().collect();
                if held.is_empty() {
                    self.agenda.schedule(
                        self.now,
                        Ev::Reap {
                            n,
                            inc,
                            r: usize::MAX,
                        },
                    );
                }
                for r in held {
                    self.signal(n, r, graceful);
                }
            }
            Output::StopHolder {
                resource_name,
                graceful,
                ..
            } => {
                if let Some(r) = self.resources.iter().position(|x| *x == resource_name) {
                    self.signal(n, r, graceful);
                }
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
                let broken = match self.inv.acquired(r, n, shared, leader.lver.0, owner) {
                    Ok(()) => None,
                    Err(Broken::Exclusion(v)) => Some(v),
                    Err(Broken::Version(v)) if self.regressed[r] => {
                        // sanlock 3.8.5's versions are only as monotonic as its leader
                        // writes land in order: counted, not a violation (docs/SIMULATION.md).
                        self.stats.lver_reuses += 1;
                        self.note(n, format!("lver reused after a stale leader write: {v}"));
                        None
                    }
                    Err(Broken::Version(v)) => Some(v),
                };
                if let Some(v) = broken {
                    self.fail_on_resource(n, r, v);
                }
                let stubborn = if self.pct(self.p.unkillable_pct) {
                    Stubborn::Unkillable
                } else if self.pct(self.p.ignore_term_pct) {
                    Stubborn::IgnoresTerm
                } else {
                    Stubborn::No
                };
                let holder = Holder {
                    stubborn,
                    exiting: false,
                };
                self.nodes[n].holders.insert(r, holder);
                self.liveness_got(n, r);
                if self.nodes[n].stopping {
                    // Acquired while the lockspace is being stopped: it is stopped too.
                    self.signal(n, r, false);
                }
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
                if let Err(v) = self.inv.converted(r, n, shared) {
                    self.fail_on_resource(n, r, v);
                }
            }
            paxos::Event::ConvertFailed { .. } => {}
            paxos::Event::Released => {
                self.stats.released += 1;
            }
            paxos::Event::ReleaseFailed { .. } => {}
            paxos::Event::NeedHostStatus { .. } | paxos::Event::NeedOwnerStatus { .. } => {}
        }
    }
}
