//! What the simulated daemon's shell does with the engine's actions, and the checks that the
//! host's outputs (observed as the engine took them up) and the replies trigger.

use sanlock_machine::clients::Level;
use sanlock_machine::recovery::StopSignal;

use super::*;

impl World {
    /// Carries out one action of host `n`'s daemon, as the daemon's shell would.
    pub(super) fn action(&mut self, n: usize, action: Action) {
        match action {
            Action::Reply { to, reply } => {
                self.reply(n, to, reply.rv().unwrap_or(-32), &reply.bytes)
            }
            Action::Signal { pid, signal } => {
                let context = self.nodes[n].stop_context;
                self.check_signalled(n, pid, context, Some(signal));
                self.signal(n, pid, signal == StopSignal::Term);
            }
            Action::RunKillpath(argv) => {
                let pid = argv
                    .get(1)
                    .and_then(|a| std::str::from_utf8(a).ok())
                    .and_then(|a| a.parse().ok());
                if let Some(pid) = pid {
                    let context = self.nodes[n].stop_context;
                    self.check_signalled(n, pid, context, None);
                    self.signal(n, pid, true);
                }
            }
            // The simulator tells the daemon of each exit itself (reap).
            Action::WatchPid { .. } => {}
            Action::Probe { space_id, .. } => {
                let input = Input::Probed {
                    space_id,
                    result: Ok(geometry()),
                };
                self.feed(n, input);
            }
            Action::Open { path } => {
                let input = Input::DiskOpened {
                    path,
                    result: Ok(DiskNo(0)),
                };
                self.feed(n, input);
            }
            Action::Watchdog(order) => {
                if let Order::Register { space_id, .. } = order {
                    // The simulated wdmd takes every registration.
                    let input = Input::WdmdRegistered {
                        space_id,
                        result: Ok(()),
                    };
                    self.feed(n, input);
                }
                self.wdmd_order(n, Some(order));
            }
            Action::Log(level, line) => {
                if (level as u8) <= Level::Warning as u8 {
                    self.note(n, format!("daemon: {line}"));
                }
            }
            Action::Event { listener, bytes } => self.event_delivered(listener, &bytes),
            Action::ReplyLogDump { .. } | Action::Metrics { .. } => {}
            Action::RindexFormat { .. }
            | Action::RindexRead { .. }
            | Action::RindexChange { .. } => {
                unreachable!("the simulated clients use no resource index")
            }
        }
    }

    /// Hands host `n`'s daemon an answer from its shell; what it decides is taken up by the
    /// drain under way.
    fn feed(&mut self, n: usize, input: Input) {
        let now = self.local(n);
        if let Some(engine) = self.nodes[n].daemon.as_mut() {
            engine.handle(now, input);
        }
    }

    /// Host `n`'s daemon answered request `to` with `rv`.
    pub(super) fn reply(&mut self, n: usize, to: ReplyTo, rv: i32, bytes: &[u8]) {
        let Some(p) = self.nodes[n].pending.remove(&to) else {
            return;
        };
        match p.cmd {
            Cmd::Join { ci } => {
                self.feed(n, Input::Closed { ci });
                if rv == 0 && self.cfg.messages {
                    self.reg_event(n);
                }
                if rv != 0 {
                    self.note(n, format!("add_lockspace {rv}"));
                    let at = self.now + Duration::from_secs(1) + self.millis(20_000);
                    self.act_at(at, n, Act::Join);
                }
            }
            Cmd::Request { ci } | Cmd::RegEvent { ci } => self.feed(n, Input::Closed { ci }),
            Cmd::Message {
                ci,
                target,
                data,
                fence,
                from_gen,
            } => {
                self.feed(n, Input::Closed { ci });
                self.message_answered(n, target, data, fence, from_gen, rv, bytes);
            }
            Cmd::ReleaseOrphans | Cmd::Killpath => {}
            Cmd::Release { .. } | Cmd::Convert { .. } => {}
            Cmd::Acquire { r, persistent, .. } => {
                self.acquire_answered(n, p.pid, r, persistent, rv);
            }
        }
    }

    /// Process `pid` of host `n` has its answer to acquiring `r`.
    fn acquire_answered(&mut self, n: usize, pid: i32, r: usize, persistent: bool, rv: i32) {
        let alive = self.nodes[n].procs.get(&pid).is_some_and(|p| !p.exited);
        if rv != 0 || !alive {
            // Not the process's (a dead one never held it): what the host took, the daemon
            // gives back.
            self.inv.dropped(r, n);
        }
        if rv != 0 {
            self.stats.refused += 1;
            if self.waiting.get(&r).is_some_and(|&(h, _)| h == n) {
                let at = self.now + Duration::from_secs(3);
                self.act_at(at, n, Act::Acquire { r, shared: false });
            } else if rv != -17 && alive && self.busy_phase() && self.pct(self.p.request_pct) {
                let at = self.now + self.millis(2_000);
                self.act_at(at, n, Act::Request { r });
            }
            return;
        }
        if !alive {
            return;
        }
        self.nodes[n].holders.insert(r, pid);
        if let Some(p) = self.nodes[n].procs.get_mut(&pid) {
            p.holds.insert(r, persistent);
        }
        self.liveness_got(n, r);
        let mut at = self.now + self.uniform(self.p.hold_max);
        if !self.busy_phase() {
            // Holders let go soon: the liveness phase needs them gone.
            at = self.now + self.millis(1_000);
        } else if self.pct(self.p.convert_pct) {
            self.act_at(at, n, Act::Convert { r });
            at += self.uniform(self.p.hold_max);
        }
        self.act_at(at, n, Act::Release { r });
    }

    /// A host output, as host `n`'s daemon took it up.
    pub(super) fn output(&mut self, n: usize, out: Output) {
        match &out {
            // What wdmd is told comes as the daemon's orders; the renewal history is the
            // daemon's; the timeline records the renewals' I/O.
            Output::WatchdogArm { .. } | Output::WatchdogDisarm { .. } | Output::Renewal { .. } => {
                return
            }
            _ => self.timeline.push(self.now, n, What::Output(out.clone())),
        }
        match out {
            Output::Joined { .. } => {
                self.nodes[n].joined = true;
                self.nodes[n].failed = false;
                // A new generation: traces left by the old one belong to a dead host.
                self.nodes[n].clean.clear();
                self.nodes[n].releasing.clear();
                let host_id = self.nodes[n].host_id;
                let others: Vec<usize> = (0..self.nodes.len())
                    .filter(|&o| o != n && self.nodes[o].host_id == host_id)
                    .filter(|&o| {
                        let local = self.local(o);
                        self.nodes[o]
                            .daemon
                            .as_ref()
                            .is_some_and(|d| d.host().delta_live(self.space, local))
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
            // The add's reply says it failed; it is asked again from there.
            Output::JoinFailed { .. } => self.nodes[n].joined = false,
            Output::Left { .. } => {
                self.nodes[n].joined = false;
                let at = self.now + Duration::from_secs(1) + self.millis(20_000);
                self.act_at(at, n, Act::Join);
            }
            Output::LockspaceFailed { .. } => {
                self.stats.lockspace_failures += 1;
                self.nodes[n].joined = false;
                self.nodes[n].failed = true;
            }
            Output::StopHolders { graceful, .. } => {
                self.nodes[n].stop_context = Some(graceful);
                self.nodes[n].stop_check = true;
            }
            Output::StopHolder { .. } => self.nodes[n].stop_context = None,
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

    fn resource_event(&mut self, n: usize, r: usize, event: paxos::Event) {
        let clean = self.nodes[n].faulted.get(&r) != Some(&true);
        // A failed release leaves the leader held until its retry succeeds (every error on a
        // lease of several disks, a timeout on one); one given up leaves it for good.
        match event {
            paxos::Event::ReleaseFailed { .. } => {
                self.nodes[n].releasing.insert(r);
            }
            paxos::Event::ReleaseRetried { rv: 0 } => {
                self.nodes[n].releasing.remove(&r);
            }
            _ => {}
        }
        if !clean {
            // Sticky until this generation ends: a fault's traces (a leader naming us, a
            // stale mode block) outlive the operation that met it.
            self.nodes[n].clean.insert(r, false);
        }
        match event {
            paxos::Event::Acquired { leader, .. } => {
                let shared = self.nodes[n]
                    .pending
                    .values()
                    .any(|p| matches!(p.cmd, Cmd::Acquire { r: x, shared: true, .. } if x == r));
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
                if let Err(Broken::Exclusion(v) | Broken::Version(v)) =
                    self.inv.acquired(r, n, shared, leader.lver.0, owner)
                {
                    self.fail_on_resource(n, r, v);
                }
            }
            paxos::Event::Converted { shared } => {
                self.stats.converted += 1;
                if self.nodes[n].holders.contains_key(&r) {
                    if let Err(v) = self.inv.converted(r, n, shared) {
                        self.fail_on_resource(n, r, v);
                    }
                }
            }
            paxos::Event::Released => self.stats.released += 1,
            _ => {}
        }
    }
}
