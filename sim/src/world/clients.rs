//! A host's client processes and its daemon's client table (`sanlock_machine::clients`, the
//! daemon's own code): processes start and register, die on their own or by a signal; the
//! daemon hears of a death when it reaps it, and carries out what the table decides.

use sanlock_machine::clients::{Effect, Key};
use sanlock_machine::recovery::StopSignal;
use sanlock_machine::wire::payload::RES_PERSISTENT;
use sanlock_machine::wire::WireResource;

use super::*;

/// The killpath program the simulated clients set: its argument is the pid it stops.
const KILLPATH: &[u8] = b"/usr/libexec/sim-killpath";

impl World {
    /// A new client process on host `n` registers with the daemon.
    pub(super) fn spawn(&mut self, n: usize) {
        if self.nodes[n].host.is_none() {
            return;
        }
        let pid = self.next_pid;
        self.next_pid += 1;
        let stubborn = if self.pct(self.p.unkillable_pct) {
            Stubborn::Unkillable
        } else if self.pct(self.p.ignore_term_pct) {
            Stubborn::IgnoresTerm
        } else {
            Stubborn::No
        };
        let killpath = self.pct(self.p.killpath_pct);
        let node = &mut self.nodes[n];
        let Some(ci) = node.table.alloc(pid) else {
            return;
        };
        node.table.register(ci, 0);
        if killpath {
            let args = pid.to_string().into_bytes();
            node.table.set_killpath(ci, KILLPATH.to_vec(), args, 0);
        }
        let proc = Proc {
            ci,
            stubborn,
            exiting: false,
            exited: false,
            holds: BTreeMap::new(),
        };
        node.procs.insert(pid, proc);
        self.table_effects(n, None);
    }

    /// The key of resource `r`.
    pub(super) fn key(&self, r: usize) -> Key {
        (self.space, self.resources[r])
    }

    /// A random live client of host `n` with no command under way.
    pub(super) fn idle_client(&mut self, n: usize) -> Option<i32> {
        let node = &self.nodes[n];
        let idle: Vec<i32> = node
            .procs
            .iter()
            .filter(|(_, p)| !p.exiting && !p.exited)
            .filter(|(_, p)| node.table.target(p.ci, u32::MAX).is_some())
            .map(|(&pid, _)| pid)
            .collect();
        if idle.is_empty() {
            return None;
        }
        Some(idle[self.rng.below(idle.len() as u64) as usize])
    }

    /// The client whose command under way is about resource `r`.
    pub(super) fn client_on(&self, n: usize, r: usize) -> Option<(usize, Cmd)> {
        self.nodes[n].table.iter().find_map(|(ci, c)| match c.job {
            Some(
                cmd @ (Cmd::Acquire { r: x, .. } | Cmd::Release { r: x } | Cmd::Convert { r: x }),
            ) if x == r => Some((ci, cmd)),
            _ => None,
        })
    }

    /// The command of client `ci` finished: a client that died meanwhile loses everything now.
    pub(super) fn command_done(&mut self, n: usize, ci: usize) {
        let failed = self.failed_set(n);
        let table = &mut self.nodes[n].table;
        let Some(c) = table.get_mut(ci) else { return };
        let release = matches!(c.job.take(), Some(Cmd::Release { .. }));
        let dead = c.dead();
        table.command_ended(ci, release, &failed);
        self.table_effects(n, None);
        if dead {
            // What a dead client's command leaves as orphans is released later (REL_ORPHAN),
            // as for a client that died idle.
            self.release_orphans_later(n);
        }
        self.holders_check(n);
    }

    /// Schedules REL_ORPHAN for each orphan host `n`'s daemon keeps.
    pub(super) fn release_orphans_later(&mut self, n: usize) {
        let orphans: Vec<usize> = (0..self.cfg.resources)
            .filter(|&r| {
                let key = self.key(r);
                self.nodes[n]
                    .table
                    .tokens
                    .get(&key)
                    .is_some_and(|t| t.orphan)
            })
            .collect();
        for r in orphans {
            let at = self.now + self.uniform(self.p.hold_max);
            self.act_at(at, n, Act::ReleaseOrphans { r });
        }
    }

    /// The lockspaces of host `n` that no longer renew.
    pub(super) fn failed_set(&self, n: usize) -> std::collections::BTreeSet<Name> {
        let mut set = std::collections::BTreeSet::new();
        if self.nodes[n].failed {
            set.insert(self.space);
        }
        set
    }

    /// Records that client `ci` of host `n` holds `r`, as the daemon does on `Acquired`.
    pub(super) fn hold(
        &mut self,
        n: usize,
        ci: usize,
        r: usize,
        shared: bool,
        lver: u64,
        persistent: bool,
    ) {
        let key = self.key(r);
        let resource = WireResource {
            lockspace_name: key.0,
            name: key.1,
            flags: if persistent { RES_PERSISTENT } else { 0 },
            ..WireResource::default()
        };
        self.nodes[n].table.hold(ci, resource, shared, lver);
    }

    /// Starts the host's release of `r` for the daemon (no client waits), unless the host has
    /// dropped it already (a failed lockspace).
    pub(super) fn release_lease(&mut self, n: usize, r: usize) -> bool {
        let now = self.local(n);
        let (space, res) = (self.space, self.resources[r]);
        let node = &mut self.nodes[n];
        let Some(host) = node.host.as_mut() else {
            return false;
        };
        if host.held(space, res).is_none() || node.ops.contains_key(&r) {
            return false;
        }
        node.ops.insert(r, Op::Release);
        node.faulted.insert(r, false);
        host.release(now, space, res);
        true
    }

    /// Carries out what host `n`'s client table decided. `graceful`: these came from a
    /// StopHolders within (true) or after (false) the grace.
    pub(super) fn table_effects(&mut self, n: usize, graceful: Option<bool>) {
        let effects = self.nodes[n].table.take_effects();
        for effect in effects {
            match effect {
                // The simulator tells the daemon of each exit itself (reap).
                Effect::WatchPid { .. } => {}
                Effect::Log(_, line) => self.note(n, format!("daemon: {line}")),
                Effect::Release(key) => {
                    if let Some(r) = self.resources.iter().position(|x| *x == key.1) {
                        self.release_lease(n, r);
                    }
                }
                Effect::Signal { pid, signal } => {
                    self.check_signalled(n, pid, graceful, Some(signal));
                    self.signal(n, pid, signal == StopSignal::Term);
                }
                Effect::RunKillpath(argv) => {
                    let pid = argv
                        .get(1)
                        .and_then(|a| std::str::from_utf8(a).ok())
                        .and_then(|a| a.parse().ok());
                    if let Some(pid) = pid {
                        self.check_signalled(n, pid, graceful, None);
                        self.signal(n, pid, true);
                    }
                }
            }
        }
        self.drain(n);
    }

    /// Tells host `n` about a lockspace being stopped that no client holds a lease of.
    pub(super) fn holders_check(&mut self, n: usize) {
        let now = self.local(n);
        let node = &mut self.nodes[n];
        for space in node.table.emptied() {
            node.table.end_killing(space);
            if let Some(host) = node.host.as_mut() {
                host.holders_gone(now, space);
            }
        }
        self.drain(n);
    }

    /// Process `pid` of host `n` exits (on its own, or `signalled`): it holds nothing from
    /// now on; its daemon hears of it when it reaps it.
    pub(super) fn exit(&mut self, n: usize, pid: i32, signalled: bool) {
        let inc = self.nodes[n].inc;
        let Some(p) = self.nodes[n].procs.get_mut(&pid) else {
            return;
        };
        if p.exited {
            return;
        }
        p.exited = true;
        let held: Vec<usize> = p.holds.keys().copied().collect();
        let ci = p.ci;
        let busy = self.nodes[n].table.get(ci).is_some_and(|c| c.job.is_some());
        for &r in &held {
            self.nodes[n].holders.remove(&r);
            self.inv.dropped(r, n);
        }
        if signalled {
            self.stats.killed += 1;
        } else if !held.is_empty() || busy {
            self.stats.client_deaths += 1;
        }
        let what = if held.is_empty() {
            "no lease".to_string()
        } else {
            held.iter()
                .map(|r| format!("R{r}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let how = if signalled { "is stopped" } else { "dies" };
        self.note(n, format!("process {pid} holding {what} {how}"));
        self.agenda.schedule(self.now, Ev::Reap { n, inc, pid });
    }

    /// The daemon of host `n` learns that process `pid` exited (its pidfd and its connection):
    /// the table releases or orphans its leases; a replacement starts later.
    pub(super) fn reap(&mut self, n: usize, pid: i32) {
        let Some(p) = self.nodes[n].procs.remove(&pid) else {
            return;
        };
        let failed = self.failed_set(n);
        let busy = self.nodes[n]
            .table
            .get(p.ci)
            .is_some_and(|c| c.job.is_some());
        let table = &mut self.nodes[n].table;
        table.process_exited(p.ci, pid, &failed);
        table.closed(p.ci, &failed);
        self.table_effects(n, None);
        if !busy {
            self.check_dead_client(n, pid, p.ci, &p.holds);
        }
        self.holders_check(n);
        let at = self.now + self.millis(10_000);
        self.act_at(at, n, Act::Spawn);
    }

    /// Makes process `pid` of host `n` stop, as SIGTERM/killpath (graceful) or SIGKILL would.
    pub(super) fn signal(&mut self, n: usize, pid: i32, graceful: bool) {
        let inc = self.nodes[n].inc;
        let Some(p) = self.nodes[n].procs.get_mut(&pid) else {
            return;
        };
        let stops = match p.stubborn {
            Stubborn::No => true,
            Stubborn::IgnoresTerm => !graceful,
            Stubborn::Unkillable => false,
        };
        if !stops || p.exiting || p.exited {
            return;
        }
        p.exiting = true;
        let delay = if graceful {
            self.millis(2_000)
        } else {
            self.millis(300)
        };
        let ev = Ev::Exit {
            n,
            inc,
            pid,
            signalled: true,
        };
        self.agenda.schedule(self.now + delay, ev);
    }
}
