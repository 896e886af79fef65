//! The engine's side of the client table (`crate::clients`, which decides): what the
//! table's effects become (actions, host releases, log lines), and the shell's means to carry
//! out the actions of this layer (a pidfd watch, a killpath run, a signal).

use std::collections::BTreeSet;

use crate::clients::Effect;
use sanlock_core::ondisk::Name;
use sanlock_core::Time;

use super::engine::{Client, Engine};
use super::messages::Action;

impl Engine {
    /// The lockspaces that no longer renew (a dead holder's persistent lease is no orphan
    /// there).
    fn failed_spaces(&self) -> BTreeSet<Name> {
        self.spaces
            .iter()
            .filter(|s| s.failed)
            .map(|s| s.ls.name)
            .collect()
    }

    /// Takes up what the client table decided: its signals, killpaths and pid watches become
    /// actions, its releases go to the host, its lines to the log.
    pub(super) fn table_effects(&mut self) {
        for effect in self.table.take_effects() {
            match effect {
                Effect::WatchPid { ci, pid } => self.actions.push(Action::WatchPid { ci, pid }),
                Effect::Signal { pid, signal } => self.actions.push(Action::Signal { pid, signal }),
                Effect::RunKillpath(argv) => self.actions.push(Action::RunKillpath(argv)),
                Effect::Release(key) => self.release_key(key),
                Effect::Log(level, line) => self.log(level, line),
            }
        }
    }

    /// The slot `ci`, if used.
    pub(super) fn client(&self, ci: usize) -> Option<&Client> {
        self.table.get(ci)
    }

    /// The slot `ci`, if used.
    pub(super) fn client_mut(&mut self, ci: usize) -> Option<&mut Client> {
        self.table.get_mut(ci)
    }

    /// REGISTER: the connection becomes the process's liveness; no reply.
    pub(super) fn register(&mut self, ci: usize) {
        self.table.register(ci, crate::wire::Cmd::Register as u32);
        self.table_effects();
    }

    /// Connection `ci` closed: an unregistered slot is freed; a registered client is dead and
    /// its leases are released (§4.1).
    pub(super) fn client_closed(&mut self, ci: usize) {
        let failed = self.failed_spaces();
        self.table.closed(ci, &failed);
        self.table_effects();
        self.holders_check(self.now);
    }

    /// The pidfd of slot `ci`'s process fired. The slot may have been reused meanwhile.
    pub(super) fn process_exited(&mut self, ci: usize, pid: i32) {
        let failed = self.failed_spaces();
        self.table.process_exited(ci, pid, &failed);
        self.table_effects();
        self.holders_check(self.now);
    }

    /// Releases every lease of a dead client; its slot is freed once its connection is gone
    /// too.
    pub(super) fn release_all(&mut self, ci: usize) {
        let failed = self.failed_spaces();
        self.table.release_all(ci, &failed);
        self.table_effects();
        self.holders_check(self.now);
    }

    /// StopHolders from the host: the table decides whom to stop and how.
    pub(super) fn stop_holders(&mut self, space: Name, graceful: bool) {
        let grace = self.cfg.kill_grace_s > 0;
        self.table.stop_holders(self.now, space, graceful, grace);
        self.table_effects();
        self.holders_check(self.now);
    }

    /// KILLPATH: the target client's program for recovery and GRACEFUL requests.
    pub(super) fn set_killpath(&mut self, ci: usize, path: Vec<u8>, args: Vec<u8>, flags: u32) {
        self.table.set_killpath(ci, path, args, flags);
    }

    /// Tells the host about lockspaces being stopped whose holders are all gone.
    pub(super) fn holders_check(&mut self, now: Time) {
        for space in self.table.emptied() {
            if !self.removal_blocked(space) {
                self.table.end_killing(space);
                self.host.holders_gone(now, space);
            }
        }
    }
}
