//! The engine's lockspace requests (wire.md §4.10-4.14): add, inq, rem, get_lockspaces,
//! get_hosts, shutdown, the once-a-second check that applies removes and completes adds, and
//! the renewal history.

use super::DiskNo;
use sanlock_core::host::JoinRequest;
use sanlock_core::ondisk::{Geometry, Name};
use sanlock_core::{HostId, Time};

use super::engine::*;
use super::messages::*;
use crate::wire::payload::{LSF_ADD, LSF_REM};
use crate::wire::{Header, WireLockspace, HEADER_LEN, LOCKSPACE_LEN};

impl Engine {
    pub(super) fn add_lockspace(&mut self, ls: WireLockspace, waiter: Waiter) {
        let asynchronous = waiter.header.cmd_flags & 1 != 0;
        if ls.name.is_empty() || ls.host_id == 0 || ls.disk.path.is_empty() {
            return self.answer(waiter, EINVAL);
        }
        let same = |s: &Space| {
            s.ls.name == ls.name
                && s.ls.disk == ls.disk
                && s.ls.host_id == ls.host_id
                && s.state != SpaceState::Removed
        };
        if let Some(s) = self.spaces.iter().find(|s| same(s)) {
            return self.answer(
                waiter,
                match s.state {
                    SpaceState::Adding => EINPROGRESS,
                    SpaceState::Active | SpaceState::RemPending => EEXIST,
                    SpaceState::Removing | SpaceState::Removed => EAGAIN,
                },
            );
        }
        let conflict = self.spaces.iter().any(|s| {
            s.state != SpaceState::Removed && ((s.ls.name == ls.name) || s.ls.disk == ls.disk)
        });
        if conflict {
            return self.answer(waiter, EINVAL);
        }
        if HostId::new(ls.host_id).is_none() {
            return self.answer(waiter, SANLK_ADDLS_INVALID_HOSTID);
        }
        if let Err(rv) = self.watchdog.available() {
            return self.answer(waiter, rv);
        }
        let io_timeout = if waiter.header.data == 0 {
            10
        } else {
            waiter.header.data
        };
        let space_id = self.next_space_id;
        self.next_space_id += 1;
        let add_waiter = if asynchronous {
            self.answer(waiter, 0);
            None
        } else {
            Some(waiter)
        };
        self.log(
            Level::Info,
            format!(
                "s{space_id} lockspace {}:{}:{}:{}",
                String::from_utf8_lossy(ls.name.as_bytes()),
                ls.host_id,
                String::from_utf8_lossy(&ls.disk.path),
                ls.disk.offset
            ),
        );
        let (path, offset) = (ls.disk.path.clone(), ls.disk.offset);
        self.spaces.push(Space {
            ls,
            space_id,
            io_timeout,
            state: SpaceState::Adding,
            geometry: None,
            failed: false,
            add_started: self.now,
            activate_at: None,
            hosts_ready_at: None,
            add_waiter,
            rem_waiters: Vec::new(),
            history: Default::default(),
            used: false,
            used_by_orphans: false,
            used_retries: 0,
            listeners: Vec::new(),
            rindex_busy: false,
            lease_status: LeaseStatus::default(),
        });
        self.actions.push(Action::Probe {
            space_id,
            path,
            offset,
        });
    }

    pub(super) fn probed(&mut self, space_id: u32, result: Result<Geometry, i32>) {
        let Some(i) = self.spaces.iter().position(|s| s.space_id == space_id) else {
            return;
        };
        if self.spaces[i].state != SpaceState::Adding {
            // Removed while probing: the add reports -1 (§4.12), and wdmd lets go of it.
            return self.add_failed(i, EPERM);
        }
        let geometry = match result {
            Ok(g) => g,
            Err(rv) => return self.add_failed(i, rv),
        };
        let space = &self.spaces[i];
        if !HostId::new(space.ls.host_id).is_some_and(|h| geometry.contains_host(h)) {
            return self.add_failed(i, SANLK_ADDLS_INVALID_HOSTID);
        }
        let path = space.ls.disk.path.clone();
        self.spaces[i].geometry = Some(geometry);
        match self.disks.get(&path).copied() {
            Some(disk) => self.lockspace_disk_opened(space_id, Ok(disk)),
            None => self.open_then(path, AfterOpen::Join { space_id }),
        }
    }

    /// The disk of lockspace `space_id` (probed) is open for the host's I/O, or failed to open.
    pub(super) fn lockspace_disk_opened(&mut self, space_id: u32, disk: Result<DiskNo, i32>) {
        let Some(i) = self.spaces.iter().position(|s| s.space_id == space_id) else {
            return;
        };
        if self.spaces[i].state != SpaceState::Adding {
            return self.add_failed(i, EPERM);
        }
        let Ok(disk) = disk else {
            return self.add_failed(i, -19);
        };
        let space = &self.spaces[i];
        let (name, host_id) = (space.ls.name, space.ls.host_id);
        self.routes.set_lockspace(name, disk);
        // As lockspace.c: wdmd is connected after the disk checks and before the delta lease.
        match self.watchdog.register(space_id, name, host_id) {
            Some(order) => self.order_watchdog(Some(order)),
            None => self.join(i),
        }
    }

    /// wdmd answered (or failed) the registration of lockspace `space_id`.
    pub(super) fn wdmd_registered(&mut self, space_id: u32, result: Result<(), String>) {
        let Some(i) = self.spaces.iter().position(|s| s.space_id == space_id) else {
            return;
        };
        if self.spaces[i].state != SpaceState::Adding {
            return self.add_failed(i, EPERM);
        }
        match result {
            Ok(()) => self.join(i),
            Err(e) => {
                self.log(
                    Level::Err,
                    format!("s{space_id} connect_watchdog failed: {e}"),
                );
                self.add_failed(i, crate::watchdog::SANLK_WD_ERROR);
            }
        }
    }

    /// Starts the delta lease of lockspace `i`, probed (and registered with wdmd).
    fn join(&mut self, i: usize) {
        let space = &self.spaces[i];
        let join = JoinRequest {
            space_name: space.ls.name,
            host_id: HostId::new(space.ls.host_id).expect("checked when probed"),
            geometry: space.geometry.expect("probed"),
            offset: space.ls.disk.offset,
            io_timeout_s: u64::from(space.io_timeout),
        };
        self.host.join(self.now, join);
    }

    pub(super) fn add_failed(&mut self, i: usize, rv: i32) {
        let s = self.spaces.remove(i);
        let order = self.watchdog.disarm(s.ls.name);
        self.order_watchdog(order);
        self.log(
            Level::Err,
            format!("s{} add_lockspace fail result {rv}", s.space_id),
        );
        if let Some(w) = s.add_waiter {
            self.answer(w, rv);
        }
    }

    /// INQ_LOCKSPACE's answer: the same name, path and offset; host_id 0 matches any (§4.11).
    pub(super) fn inq(&self, ls: &WireLockspace) -> i32 {
        let found = self.spaces.iter().find(|s| {
            s.ls.name == ls.name
                && s.ls.disk == ls.disk
                && (ls.host_id == 0 || ls.host_id == s.ls.host_id)
        });
        match found.map(|s| s.state) {
            Some(SpaceState::Active | SpaceState::RemPending) => 0,
            Some(SpaceState::Adding | SpaceState::Removing | SpaceState::Removed) => EINPROGRESS,
            None => ENOENT,
        }
    }

    pub(super) fn rem_lockspace(&mut self, ls: &WireLockspace, waiter: Waiter) {
        let asynchronous = waiter.header.cmd_flags & 1 != 0;
        let unused = waiter.header.cmd_flags & 2 != 0;
        let found = self.spaces.iter().position(|s| {
            s.ls.name == ls.name
                && s.ls.disk == ls.disk
                && (ls.host_id == 0 || ls.host_id == s.ls.host_id)
        });
        let Some(i) = found else {
            return self.answer(waiter, ENOENT);
        };
        match self.spaces[i].state {
            SpaceState::Removing | SpaceState::Removed | SpaceState::RemPending => {
                return self.answer(waiter, EINPROGRESS)
            }
            SpaceState::Adding => {
                // The add is cancelled and reports -1; this remove answers 0 (§4.12).
                self.cancel_add(i);
                return self.answer(waiter, 0);
            }
            SpaceState::Active => {}
        }
        let name = self.spaces[i].ls.name;
        if unused
            && (self.table.tokens.keys().any(|(l, _)| *l == name)
                || self.pending.keys().any(|(l, _)| *l == name))
        {
            return self.answer(waiter, EBUSY);
        }
        self.spaces[i].state = SpaceState::RemPending;
        if asynchronous {
            self.answer(waiter, 0);
        } else {
            self.spaces[i].rem_waiters.push(waiter);
        }
    }

    pub(super) fn cancel_add(&mut self, i: usize) {
        let name = self.spaces[i].ls.name;
        if self.spaces[i].geometry.is_some() {
            self.host.leave(self.now, name);
        }
        let s = &mut self.spaces[i];
        s.state = SpaceState::Removing;
        if let Some(w) = s.add_waiter.take() {
            self.answer(w, EPERM);
        }
    }

    pub(super) fn get_lockspaces(&self, header: Header) -> Vec<u8> {
        // Active first, then removing (LSF_REM), then adding (LSF_ADD); newest first in each.
        let mut list: Vec<(u32, &Space)> = Vec::new();
        for (flag, states) in [
            (0, &[SpaceState::Active, SpaceState::RemPending][..]),
            (LSF_REM, &[SpaceState::Removing, SpaceState::Removed][..]),
            (LSF_ADD, &[SpaceState::Adding][..]),
        ] {
            list.extend(
                self.spaces
                    .iter()
                    .rev()
                    .filter(|s| states.contains(&s.state))
                    .map(|s| (flag, s)),
            );
        }
        let mut h = header.result(0);
        h.data2 = list.len() as u32;
        h.length = (HEADER_LEN + list.len() * LOCKSPACE_LEN) as u32;
        let mut out = h.encode().to_vec();
        for (flag, s) in list {
            let ls = WireLockspace {
                flags: flag,
                ..s.ls.clone()
            };
            ls.encode_into(&mut out);
        }
        out
    }

    pub(super) fn get_hosts(&self, header: Header, ls: &WireLockspace) -> Vec<u8> {
        let now = self.now;
        let space = self.spaces.iter().find(|s| {
            s.ls.name == ls.name && matches!(s.state, SpaceState::Active | SpaceState::RemPending)
        });
        let table = self.host.hosts(ls.name);
        let result = match table {
            _ if space.is_none() => Err(ENOENT),
            _ if space.is_some_and(|s| s.hosts_ready_at.is_some_and(|t| now < t)) => Err(EAGAIN),
            None => Err(ENOENT),
            Some(t) if !t.scanned() => Err(EAGAIN),
            Some(t) => Ok(t),
        };
        let table = match result {
            Ok(t) => t,
            Err(rv) => return header.result(rv).encode().to_vec(),
        };
        let max = space
            .and_then(|s| s.geometry)
            .map_or(2000, |g| g.max_hosts());
        let mut hosts = Vec::new();
        for id in 1..=u64::from(max) {
            let h = HostId::new(id).expect("1..=2000");
            if ls.host_id != 0 && ls.host_id != id {
                continue;
            }
            let Some(st) = table.status(h) else { continue };
            if ls.host_id == 0 && st.timestamp == 0 {
                continue;
            }
            let state = table.state(h, now).map_or(1, |s| s.value());
            hosts.push(crate::wire::WireHost {
                host_id: id,
                generation: st.owner_generation.0,
                timestamp: st.timestamp,
                io_timeout: u32::from(st.io_timeout),
                flags: state,
            });
        }
        let mut h = header.result(0);
        h.data2 = hosts.len() as u32;
        h.length = (HEADER_LEN + hosts.len() * crate::wire::HOST_LEN) as u32;
        let mut out = h.encode().to_vec();
        for host in &hosts {
            host.encode_into(&mut out);
        }
        out
    }

    /// Whether acquires may start in the lockspace: listed as active and not failing (§4.4
    /// step 6).
    pub(super) fn space_usable(&self, name: &Name) -> bool {
        self.spaces.iter().any(|s| {
            s.ls.name == *name
                && matches!(s.state, SpaceState::Active | SpaceState::RemPending)
                && !s.failed
        })
    }

    pub(super) fn shutdown(&mut self, force: bool) {
        if !force && !self.spaces.is_empty() {
            self.log(Level::Warning, "shutdown ignored: lockspaces exist");
            return;
        }
        self.shutting_down = true;
        let now = self.now;
        let names: Vec<(usize, Name, SpaceState)> = self
            .spaces
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.ls.name, s.state))
            .collect();
        for (i, name, state) in names {
            match state {
                SpaceState::Adding => self.cancel_add(i),
                SpaceState::Active | SpaceState::RemPending => {
                    if self.spaces[i].used || self.spaces[i].used_by_orphans {
                        // Applied by the next check, which honours set_config.
                        self.spaces[i].state = SpaceState::RemPending;
                        continue;
                    }
                    self.spaces[i].state = SpaceState::Removing;
                    self.host.leave(now, name);
                }
                SpaceState::Removing | SpaceState::Removed => {}
            }
        }
    }

    /// The once-a-second check (main.c `main_loop`): apply pending removes, drop removed
    /// lockspaces, re-answer waiting inquiries.
    pub(super) fn check(&mut self, now: Time) {
        let mut added = Vec::new();
        for s in &mut self.spaces {
            if s.state == SpaceState::Adding && s.activate_at.is_some_and(|t| now >= t) {
                s.state = SpaceState::Active;
                s.hosts_ready_at = Some(now + HOSTS_SCAN_DELAY);
                added.extend(s.add_waiter.take());
            }
        }
        for w in added {
            self.answer(w, 0);
        }
        let mut i = 0;
        while i < self.spaces.len() {
            match self.spaces[i].state {
                SpaceState::RemPending => {
                    let name = self.spaces[i].ls.name;
                    if self.removal_blocked(name) {
                        // set_config holds the removal back: holders are still killed, and
                        // the lockspace stays listed as it is (main.c `all_pids_dead`).
                        if !self.table.holders_of(name).is_empty() {
                            self.stop_holders(name, false);
                        }
                        i += 1;
                        continue;
                    }
                    self.spaces[i].state = SpaceState::Removing;
                    self.host.leave(now, name);
                    i += 1;
                }
                SpaceState::Removed => {
                    let s = self.spaces.remove(i);
                    for w in s.rem_waiters {
                        self.answer(w, 0);
                    }
                    if let Some(w) = s.add_waiter {
                        self.answer(w, EPERM);
                    }
                }
                _ => i += 1,
            }
        }
        let waiters = std::mem::take(&mut self.inq_waiters);
        for (ls, w) in waiters {
            let rv = self.inq(&ls);
            if rv == EINPROGRESS {
                self.inq_waiters.push((ls, w));
            } else {
                self.answer(w, rv);
            }
        }
        self.holders_check(now);
        self.messages_check(now);
        let order = self.watchdog.check(now);
        self.order_watchdog(order);
    }

    /// Lockspace `name` on sanlock's active list (joined, a remove not yet applied): what
    /// set_config, the event commands and the rindex commands require.
    pub(super) fn active_space(&mut self, name: &Name) -> Option<&mut Space> {
        self.spaces.iter_mut().find(|s| {
            s.ls.name == *name && matches!(s.state, SpaceState::Active | SpaceState::RemPending)
        })
    }

    pub(super) fn space_mut(&mut self, name: &Name) -> Option<&mut Space> {
        self.spaces
            .iter_mut()
            .find(|s| s.ls.name == *name && s.state != SpaceState::Removed)
    }
}
