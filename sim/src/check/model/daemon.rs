//! The checker's daemons: each host runs the daemon's engine (`sanlock_machine::daemon`,
//! with the client table and the watchdog policy inside), played by a shell that hands it
//! decoded requests and carries out its actions. Its working process acquires, releases and
//! may die; idle ones stay registered. The daemon's properties are checked as it decides:
//! only holders are stopped, nobody is SIGKILLed within the kill grace, a dead client keeps
//! nothing, a persistent lease outlives its dead holder as an orphan, the watchdog is not
//! cleared under a holder.

use sanlock_machine::recovery::StopSignal;

use super::*;

/// The slot of each host's working process (registered first).
pub(in crate::check) const WORKER_CI: usize = 0;
/// Its pid; the idle clients' follow.
pub(in crate::check) const WORKER_PID: i32 = 100;

/// A request waiting for its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(in crate::check) enum Cmd {
    /// ADD_LOCKSPACE on connection `ci`.
    Join {
        ci: usize,
    },
    Acquire {
        persistent: bool,
    },
    Release,
    Killpath,
    /// REG_EVENT on connection `ci` (handed over as the event fd once answered).
    RegEvent {
        ci: usize,
    },
    /// MESSAGE_SEND or FENCE to host0 on connection `ci`, with `data`, sent in our
    /// generation `from_gen`.
    Message {
        ci: usize,
        data: u64,
        fence: bool,
        from_gen: u64,
    },
}

/// Whether the working process of `hs` has an acquire under way.
pub(in crate::check) fn acquiring(hs: &HostState) -> bool {
    hs.pending
        .values()
        .any(|c| matches!(c, Cmd::Acquire { .. }))
}

impl Model {
    /// Host `h`'s processes connect and register with its daemon: the working one (with its
    /// killpath, if the scenario gives it one), then the idle ones.
    pub(super) fn register_clients(&self, s: &mut State, h: usize) -> Result<(), Violation> {
        for k in 0..=self.scenario.idle_clients[h] {
            let pid = WORKER_PID + i32::from(k);
            let Some(ci) = s.hosts[h].daemon.as_mut().and_then(|d| d.connect(pid)) else {
                return Err(format!("host{h}'s daemon has no slot for process {pid}"));
            };
            self.input(s, h, Input::Register { ci })?;
        }
        if self.scenario.killpath[h] {
            // The holder's pid is appended when it runs.
            let (header, call) =
                requests::killpath(b"/sim/killpath", Vec::new(), requests::KILLPATH_PID);
            self.call(s, h, WORKER_CI, header, call, Cmd::Killpath)?;
        }
        Ok(())
    }

    /// Carries out one action of host `h`'s daemon.
    pub(super) fn action(&self, s: &mut State, h: usize, action: Action) -> Result<(), Violation> {
        match action {
            Action::Reply { to, reply } => {
                self.reply(s, h, to, reply.rv().unwrap_or(-32), &reply.bytes)?
            }
            Action::Signal { pid, signal } => {
                let hs = &s.hosts[h];
                if pid != WORKER_PID || !hs.alive || hs.holding.is_none() {
                    return Err(format!(
                        "host{h}'s daemon signalled process {pid}, which holds no lease"
                    ));
                }
                if hs.stop_context == Some(true) && signal == StopSignal::Kill {
                    return Err(format!(
                        "host{h}'s daemon sent SIGKILL within the kill grace ({}s)",
                        self.scenario.kill_grace_s
                    ));
                }
                if !self.scenario.unkillable {
                    s.hosts[h].stopped = true;
                }
            }
            Action::RunKillpath(argv) => {
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
            Action::Probe { space_id, .. } => {
                let result = Ok(geometry());
                self.feed(s, h, Input::Probed { space_id, result });
            }
            Action::Open { path } => {
                let result = Ok(DiskNo(0));
                self.feed(s, h, Input::DiskOpened { path, result });
            }
            Action::Watchdog(order) => match order {
                Order::Register { space_id, .. } => {
                    // The simulated wdmd takes every registration.
                    let result = Ok(());
                    self.feed(s, h, Input::WdmdRegistered { space_id, result });
                }
                Order::TestLive { expire, .. } => {
                    s.hosts[h].armed = Some(Time::from_secs(expire));
                }
                Order::Clear { .. } => {
                    s.hosts[h].armed = None;
                    if s.hosts[h].holding.is_some() {
                        return Err(format!(
                            "host{h} disarmed its watchdog while its process holds the lease"
                        ));
                    }
                }
                Order::Device { .. } => unreachable!("a wdmd keeper drives no device"),
            },
            Action::Event { bytes, .. } => self.event_delivered(s, h, &bytes),
            Action::Log(..) | Action::WatchPid { .. } | Action::Metrics { .. } => {}
            Action::ReplyLogDump { .. }
            | Action::RindexFormat { .. }
            | Action::RindexRead { .. }
            | Action::RindexChange { .. } => unreachable!("not asked for in the checker"),
        }
        Ok(())
    }

    /// Hands host `h`'s daemon an answer of its shell; the drain under way takes up the rest.
    fn feed(&self, s: &mut State, h: usize, input: Input) {
        let now = self.local(h, s.now_ms);
        if let Some(engine) = s.hosts[h].daemon.as_mut() {
            engine.handle(now, input);
        }
    }

    /// Host `h`'s daemon answered request `to` with `rv`.
    fn reply(
        &self,
        s: &mut State,
        h: usize,
        to: ReplyTo,
        rv: i32,
        bytes: &[u8],
    ) -> Result<(), Violation> {
        let Some(cmd) = s.hosts[h].pending.remove(&to) else {
            return Ok(());
        };
        match cmd {
            Cmd::Join { ci } => {
                s.hosts[h].joined = rv == 0;
                self.feed(s, h, Input::Closed { ci });
                if rv == 0 && self.mail() {
                    self.reg_event(s, h)?;
                }
            }
            Cmd::RegEvent { ci } => self.feed(s, h, Input::Closed { ci }),
            Cmd::Message {
                ci,
                data,
                fence,
                from_gen,
            } => {
                self.feed(s, h, Input::Closed { ci });
                self.message_answered(s, h, data, fence, from_gen, rv, bytes)?;
            }
            Cmd::Acquire { .. } => {
                let hs = &mut s.hosts[h];
                hs.busy = false;
                if rv == 0 && hs.alive {
                    hs.holding = Some(self.scenario.shared(h));
                } else {
                    // Refused, or the process died before the answer: not the process's; what
                    // the host took, the daemon gives back.
                    s.inv.dropped(0, h);
                }
            }
            Cmd::Release | Cmd::Killpath => {}
        }
        Ok(())
    }

    /// The working process of host `h` dies on its own; its daemon hears at once.
    pub(super) fn die(&self, s: &mut State, h: usize) -> Result<(), Violation> {
        let busy = acquiring(&s.hosts[h]);
        let held = s.hosts[h].holding.is_some();
        self.exit(s, h)?;
        if !busy && held {
            self.check_dead_client(s, h)?;
        }
        Ok(())
    }

    /// The working process of host `h`, stopped by its daemon, exits; its daemon hears at once.
    pub(super) fn stopped_exit(&self, s: &mut State, h: usize) -> Result<(), Violation> {
        self.exit(s, h)
    }

    fn exit(&self, s: &mut State, h: usize) -> Result<(), Violation> {
        if s.hosts[h].holding.take().is_some() {
            s.inv.dropped(0, h);
        }
        let hs = &mut s.hosts[h];
        hs.alive = false;
        hs.stopped = false;
        let (ci, pid) = (WORKER_CI, WORKER_PID);
        self.input(s, h, Input::ProcessExited { ci, pid })?;
        self.input(s, h, Input::Closed { ci })
    }

    /// The working process died holding the lease and its daemon reaped it: the lease is no
    /// longer its; if persistent, with the lockspace renewing, it is an orphan.
    fn check_dead_client(&self, s: &State, h: usize) -> Result<(), Violation> {
        let hs = &s.hosts[h];
        let key = (self.space, self.resource);
        let token = hs
            .daemon
            .as_ref()
            .and_then(|d| d.clients().tokens.get(&key));
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

    /// Told to stop its holders: the working process, if it holds the lease, has been
    /// stopped (or is gone).
    pub(super) fn check_all_stopped(&self, s: &State, h: usize) -> Result<(), Violation> {
        let hs = &s.hosts[h];
        let stopped = hs
            .daemon
            .as_ref()
            .and_then(|d| d.clients().get(WORKER_CI))
            .is_none_or(|c| c.dead() || c.kill.stopping());
        if hs.alive && hs.holding.is_some() && !stopped {
            return Err(format!(
                "host{h}'s daemon was told to stop its holders, but its holder was not stopped"
            ));
        }
        Ok(())
    }
}
