//! The checker's daemons: each host's client table (`sanlock_machine::clients`, the daemon's
//! own code) with its working process (which acquires, releases, may die) and idle ones, and
//! the daemon's properties checked as the table decides: only holders are stopped, nobody is
//! SIGKILLed within the kill grace, a dead client keeps nothing, a persistent lease outlives
//! its dead holder as an orphan.

use sanlock_machine::clients::Effect;
use sanlock_machine::recovery::StopSignal;
use sanlock_machine::wire::payload::RES_PERSISTENT;
use sanlock_machine::wire::WireResource;

use super::*;

/// The slot of each host's working process (registered first).
pub(in crate::check) const WORKER_CI: usize = 0;
/// Its pid; the idle clients' follow.
const WORKER_PID: i32 = 100;

/// The command under way for the working process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(in crate::check) enum Cmd {
    Acquire { persistent: bool },
    Release,
}

/// Whether the working process of `hs` has an acquire under way.
pub(in crate::check) fn acquiring(hs: &HostState) -> bool {
    hs.table
        .get(WORKER_CI)
        .is_some_and(|c| matches!(c.job, Some(Cmd::Acquire { .. })))
}

impl Model {
    /// Host `h`'s processes register with its daemon: the working one, then the idle ones.
    pub(super) fn register_clients(&self, state: &mut State, h: usize) {
        #[cfg(feature = "mutants")]
        state.hosts[h]
            .keeper
            .set_mutant(self.scenario.daemon_mutant);
        let table = &mut state.hosts[h].table;
        #[cfg(feature = "mutants")]
        table.set_mutant(self.scenario.daemon_mutant);
        for k in 0..=self.scenario.idle_clients[h] {
            let ci = table.alloc(WORKER_PID + i32::from(k)).expect("a free slot");
            table.register(ci, 0);
        }
        if self.scenario.killpath[h] {
            table.set_killpath(WORKER_CI, b"/sim/killpath".to_vec(), Vec::new(), 1);
        }
        table.take_effects();
    }

    fn failed_set(&self, hs: &HostState) -> std::collections::BTreeSet<Name> {
        hs.failed.then_some(self.space).into_iter().collect()
    }

    /// The host acquired the lease for the working process (which may have died meanwhile).
    pub(super) fn acquired(
        &self,
        s: &mut State,
        h: usize,
        shared: bool,
        lver: u64,
    ) -> Result<(), Violation> {
        let key = (self.space, self.resource);
        let hs = &mut s.hosts[h];
        let persistent = match hs.table.get(WORKER_CI).and_then(|c| c.job) {
            Some(Cmd::Acquire { persistent }) => persistent,
            _ => false,
        };
        let resource = WireResource {
            lockspace_name: key.0,
            name: key.1,
            flags: if persistent { RES_PERSISTENT } else { 0 },
            ..WireResource::default()
        };
        hs.table.hold(WORKER_CI, resource, shared, lver);
        if hs.alive {
            hs.holding = Some(shared);
        } else {
            // Died before the answer: the process never held it; the daemon gives it back.
            s.inv.dropped(0, h);
            if hs.table.drop_holder(WORKER_CI, key) {
                self.release_lease(s, h);
            }
        }
        self.command_done(s, h)
    }

    /// Starts the host's release of the lease for the daemon, unless the host dropped it.
    pub(super) fn release_lease(&self, s: &mut State, h: usize) -> bool {
        let now = self.local(h, s.now_ms);
        let hs = &mut s.hosts[h];
        let Some(host) = hs.host.as_mut() else {
            return false;
        };
        if host.held(self.space, self.resource).is_none() || hs.busy {
            return false;
        }
        hs.busy = true;
        host.release(now, self.space, self.resource);
        true
    }

    /// The working process's command finished: a process that died meanwhile loses all.
    pub(super) fn command_done(&self, s: &mut State, h: usize) -> Result<(), Violation> {
        let failed = self.failed_set(&s.hosts[h]);
        let table = &mut s.hosts[h].table;
        let Some(c) = table.get_mut(WORKER_CI) else {
            return Ok(());
        };
        let release = matches!(c.job.take(), Some(Cmd::Release));
        table.command_ended(WORKER_CI, release, &failed);
        self.table_effects(s, h, None)
    }

    /// The working process of host `h` dies on its own; its daemon hears at once.
    pub(super) fn die(&self, s: &mut State, h: usize) -> Result<(), Violation> {
        let busy = acquiring(&s.hosts[h]);
        let held = s.hosts[h].holding.is_some();
        self.exit(s, h);
        self.table_effects(s, h, None)?;
        if !busy && held {
            self.check_dead_client(s, h)?;
        }
        self.drain(s, h)
    }

    /// The working process of host `h`, stopped by its daemon, exits; its daemon hears at once.
    pub(super) fn stopped_exit(&self, s: &mut State, h: usize) -> Result<(), Violation> {
        self.exit(s, h);
        self.table_effects(s, h, None)?;
        self.drain(s, h)
    }

    fn exit(&self, s: &mut State, h: usize) {
        let failed = self.failed_set(&s.hosts[h]);
        if s.hosts[h].holding.take().is_some() {
            s.inv.dropped(0, h);
        }
        let hs = &mut s.hosts[h];
        hs.alive = false;
        hs.stopped = false;
        hs.table.process_exited(WORKER_CI, WORKER_PID, &failed);
        hs.table.closed(WORKER_CI, &failed);
    }

    /// The working process died holding the lease and its daemon reaped it: the lease is no
    /// longer its; if persistent, with the lockspace renewing, it is an orphan.
    fn check_dead_client(&self, s: &State, h: usize) -> Result<(), Violation> {
        let hs = &s.hosts[h];
        let token = hs.table.tokens.get(&(self.space, self.resource));
        if token.is_some_and(|t| t.holders.contains(&WORKER_CI)) {
            return Err(format!(
                "host{h}'s daemon kept the lease for its dead process"
            ));
        }
        if self.scenario.persistent[h] && !hs.failed && !token.is_some_and(|t| t.orphan) {
            return Err(format!(
                "host{h}'s daemon let go of the persistent lease when its holder died, instead \
                 of keeping it as an orphan"
            ));
        }
        Ok(())
    }

    /// Carries out what host `h`'s table decided (`graceful`: for a StopHolders within or
    /// after the grace), until it decides nothing more; then tells the host of a lockspace
    /// whose holders are gone.
    pub(super) fn table_effects(
        &self,
        s: &mut State,
        h: usize,
        graceful: Option<bool>,
    ) -> Result<(), Violation> {
        loop {
            let effects = s.hosts[h].table.take_effects();
            if effects.is_empty() {
                break;
            }
            for effect in effects {
                match effect {
                    Effect::WatchPid { .. } | Effect::Log(..) => {}
                    Effect::Release(_) => {
                        self.release_lease(s, h);
                    }
                    Effect::RunKillpath(argv) => {
                        // The killpath stops the process whose pid it was given, gracefully.
                        let pid = argv
                            .last()
                            .and_then(|a| std::str::from_utf8(a).ok())
                            .and_then(|a| a.parse::<i32>().ok());
                        let hs = &s.hosts[h];
                        if pid != Some(WORKER_PID) || !hs.alive || hs.holding.is_none() {
                            return Err(format!(
                                "host{h}'s daemon ran a killpath for {pid:?}, which holds no lease"
                            ));
                        }
                        if !self.scenario.unkillable {
                            s.hosts[h].stopped = true;
                        }
                    }
                    Effect::Signal { pid, signal } => {
                        let hs = &s.hosts[h];
                        if pid != WORKER_PID || !hs.alive || hs.holding.is_none() {
                            return Err(format!(
                                "host{h}'s daemon signalled process {pid}, which holds no lease"
                            ));
                        }
                        if graceful == Some(true) && signal == StopSignal::Kill {
                            return Err(format!(
                                "host{h}'s daemon sent SIGKILL within the kill grace ({}s)",
                                self.scenario.kill_grace_s
                            ));
                        }
                        if !self.scenario.unkillable {
                            s.hosts[h].stopped = true;
                        }
                    }
                }
            }
        }
        if graceful.is_some() {
            // Told to stop its holders: the working process, if it holds the lease, has been
            // stopped (or is gone).
            let hs = &s.hosts[h];
            let stopped = hs
                .table
                .get(WORKER_CI)
                .is_none_or(|c| c.dead() || c.kill.stopping());
            if hs.alive && hs.holding.is_some() && !stopped {
                return Err(format!(
                    "host{h}'s daemon was told to stop its holders, but its holder was not stopped"
                ));
            }
        }
        let now = self.local(h, s.now_ms);
        let hs = &mut s.hosts[h];
        for space in hs.table.emptied() {
            hs.table.end_killing(space);
            if let Some(host) = hs.host.as_mut() {
                host.holders_gone(now, space);
            }
        }
        Ok(())
    }
}
