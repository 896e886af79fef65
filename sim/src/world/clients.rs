//! A host's client processes: they start, connect and register with the daemon (some set a
//! killpath), and die on their own or by a signal; the daemon hears of a death when it reaps
//! it (its pidfd and its connection), and decides the rest itself.

use super::*;

/// The killpath program the simulated clients set: its argument is the pid it stops.
const KILLPATH: &[u8] = b"/usr/libexec/sim-killpath";

impl World {
    /// A new client process on host `n` connects and registers with the daemon.
    pub(super) fn spawn(&mut self, n: usize) {
        let pid = self.next_pid;
        let Some(engine) = self.nodes[n].daemon.as_mut() else {
            return;
        };
        let Some(ci) = engine.connect(pid) else {
            return;
        };
        self.next_pid += 1;
        let stubborn = if self.pct(self.p.unkillable_pct) {
            Stubborn::Unkillable
        } else if self.pct(self.p.ignore_term_pct) {
            Stubborn::IgnoresTerm
        } else {
            Stubborn::No
        };
        let killpath = self.pct(self.p.killpath_pct);
        let proc = Proc {
            ci,
            stubborn,
            exiting: false,
            exited: false,
            holds: BTreeMap::new(),
        };
        self.nodes[n].procs.insert(pid, proc);
        self.input(n, Input::Register { ci });
        if killpath {
            let (header, call) = requests::killpath(KILLPATH, pid.to_string().into_bytes(), 0);
            self.call(n, ci, pid, header, call, Cmd::Killpath);
        }
    }

    /// A random live client of host `n` with no request under way.
    pub(super) fn idle_client(&mut self, n: usize) -> Option<i32> {
        let node = &self.nodes[n];
        let engine = node.daemon.as_ref()?;
        let idle: Vec<i32> = node
            .procs
            .iter()
            .filter(|(_, p)| !p.exiting && !p.exited)
            .filter(|(&pid, _)| !self.busy(n, pid))
            .filter(|(_, p)| engine.clients().target(p.ci, u32::MAX).is_some())
            .map(|(&pid, _)| pid)
            .collect();
        if idle.is_empty() {
            return None;
        }
        Some(idle[self.rng.below(idle.len() as u64) as usize])
    }

    /// Schedules REL_ORPHAN for each orphan host `n`'s daemon keeps.
    pub(super) fn release_orphans_later(&mut self, n: usize) {
        let Some(engine) = self.nodes[n].daemon.as_ref() else {
            return;
        };
        let orphans: Vec<usize> = (0..self.cfg.resources)
            .filter(|&r| {
                let key = (self.space, self.resources[r]);
                engine.clients().tokens.get(&key).is_some_and(|t| t.orphan)
            })
            .collect();
        for r in orphans {
            let at = self.now + self.uniform(self.p.hold_max);
            self.act_at(at, n, Act::ReleaseOrphans { r });
        }
    }

    /// Process `pid` of host `n` exits (on its own, or `signalled`): it holds nothing from
    /// now on; its daemon hears of it when it reaps it.
    pub(super) fn exit(&mut self, n: usize, pid: i32, signalled: bool) {
        let inc = self.nodes[n].inc;
        let busy = self.busy(n, pid);
        let Some(p) = self.nodes[n].procs.get_mut(&pid) else {
            return;
        };
        if p.exited {
            return;
        }
        p.exited = true;
        let held: Vec<usize> = p.holds.keys().copied().collect();
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
    /// it releases or orphans its leases; a replacement starts later.
    pub(super) fn reap(&mut self, n: usize, pid: i32) {
        let Some(p) = self.nodes[n].procs.remove(&pid) else {
            return;
        };
        let busy = self.busy(n, pid);
        self.input(n, Input::ProcessExited { ci: p.ci, pid });
        self.input(n, Input::Closed { ci: p.ci });
        if busy {
            // What its command leaves as orphans is released later (REL_ORPHAN).
            self.release_orphans_later(n);
        } else {
            self.check_dead_client(n, pid, p.ci, &p.holds);
        }
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
