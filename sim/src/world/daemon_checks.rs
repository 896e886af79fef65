//! The daemon's properties, checked as its engine decides (the processes' view against
//! the daemon's): a dead client keeps nothing, a persistent lease outlives its dead holder as
//! an orphan, only holders are stopped, nobody is SIGKILLed within the kill grace, and the
//! watchdog is not disarmed while a process holds a lease.

use sanlock_machine::recovery::StopSignal;

use super::*;

impl World {
    /// Host `n`'s daemon stops process `pid` (a signal, or a killpath when `signal` is none),
    /// for a StopHolders within the grace (`Some(true)`), after it, or for a request (`None`).
    pub(super) fn check_signalled(
        &mut self,
        n: usize,
        pid: i32,
        graceful: Option<bool>,
        signal: Option<StopSignal>,
    ) {
        self.inv_checks_daemon();
        let holds = self.nodes[n].procs.get(&pid).map(|p| p.holds.len());
        if holds.unwrap_or(0) == 0 {
            let v = format!(
                "host{n}'s daemon stopped process {pid}, which holds no lease ({})",
                if holds.is_some() { "alive" } else { "gone" }
            );
            return self.fail(v, vec![n]);
        }
        if graceful == Some(true) && signal == Some(StopSignal::Kill) {
            let v = format!(
                "host{n}'s daemon sent SIGKILL to process {pid} within the kill grace ({}s)",
                self.p.kill_grace_s
            );
            self.fail(v, vec![n]);
        }
    }

    /// Host `n`'s daemon has reaped process `pid` (slot `ci`), which held `holds` (resource,
    /// persistent) and had no command under way: none of them may still be its; each persistent
    /// one whose lockspace renews (joined, not failed, not being left) must be an orphan, the
    /// others released.
    pub(super) fn check_dead_client(
        &mut self,
        n: usize,
        pid: i32,
        ci: usize,
        holds: &BTreeMap<usize, bool>,
    ) {
        for (&r, &persistent) in holds {
            self.inv_checks_daemon();
            let key = (self.space, self.resources[r]);
            let node = &self.nodes[n];
            let token = node
                .daemon
                .as_ref()
                .and_then(|d| d.clients().tokens.get(&key));
            if token.is_some_and(|t| t.holders.contains(&ci)) {
                let v = format!("host{n}'s daemon kept R{r} for process {pid}, which is dead");
                return self.fail(v, vec![n]);
            }
            // Orphans live in a lockspace that goes on renewing: one being left (a RESET,
            // rem_lockspace) or gone keeps none (found by the simulator: seed 487, late joins,
            // messages — a RESET whose unkillable persistent holder died as the host left).
            let space_stays = node.daemon.as_ref().is_some_and(|d| {
                d.host().generation(self.space).is_some() && !d.host().leaving(self.space)
            });
            if persistent && !node.failed && space_stays {
                if !token.is_some_and(|t| t.orphan) {
                    let v = format!(
                        "host{n}'s daemon let go of persistent R{r} when its holder {pid} died, \
                         instead of keeping it as an orphan"
                    );
                    return self.fail(v, vec![n]);
                }
                self.stats.orphans += 1;
                let at = self.now + self.uniform(self.p.hold_max);
                self.act_at(at, n, Act::ReleaseOrphans { r });
            }
        }
    }

    /// Host `n` disarmed its watchdog: no process of it may hold a lease.
    pub(super) fn check_disarm(&mut self, n: usize) {
        self.inv_checks_daemon();
        if let Some((&r, &pid)) = self.nodes[n].holders.iter().next() {
            let v = format!("host{n} disarmed its watchdog while process {pid} holds R{r}");
            self.fail(v, vec![n]);
        }
    }

    /// Host `n`'s daemon has just been told to stop its holders (at 8N after its last renewal,
    /// or the lockspace is going): every process holding a lease has been stopped — signalled,
    /// its killpath run — or is on its way out.
    pub(super) fn check_all_stopped(&mut self, n: usize) {
        self.inv_checks_daemon();
        let node = &self.nodes[n];
        let missed = node.procs.iter().find(|(_, p)| {
            !p.holds.is_empty()
                && !p.exited
                && !p.exiting
                && node
                    .daemon
                    .as_ref()
                    .and_then(|d| d.clients().get(p.ci))
                    .is_some_and(|c| !c.dead() && !c.kill.stopping())
        });
        if let Some((&pid, p)) = missed {
            let r = p.holds.keys().next().copied().unwrap_or(0);
            let v = format!(
                "host{n}'s daemon was told to stop its holders, but process {pid} (holding R{r}) \
                 was not stopped"
            );
            self.fail(v, vec![n]);
        }
    }

    /// Host `n` is being reset by its watchdog: if a process of it still holds a lease, the
    /// reset comes no later than 8N + 60 s after the last renewal the host armed it with.
    pub(super) fn check_reset_in_time(&mut self, n: usize) {
        self.inv_checks_daemon();
        let node = &self.nodes[n];
        let Some((&r, &pid)) = node.holders.iter().next() else {
            return;
        };
        let now = self.local(n);
        let n_s = self.io_timeout_s(n);
        let bound = node
            .last_renewal
            .map(|t| t + Duration::from_secs(8 * n_s + 60) + Duration::from_secs(1));
        if bound.is_none_or(|b| now > b) {
            let v = format!(
                "host{n} is reset at {:.1}s with process {pid} holding R{r}, later than its last \
                 renewal ({:?}) + 8N + 60 s",
                now.since_boot().as_secs_f64(),
                node.last_renewal.map(|t| t.since_boot().as_secs_f64())
            );
            self.fail(v, vec![n]);
        }
    }

    fn inv_checks_daemon(&mut self) {
        self.inv.count_check();
    }
}
