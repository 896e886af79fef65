//! The engine's lease requests for a registered client (wire.md §4.4-4.7): acquire of up to
//! eight resources in order, release, inquire, convert, and the host's answers to them.

use sanlock_core::ondisk::Name;
use sanlock_core::paxos::{self, AcquireRequest};
use sanlock_core::quorum::{majority, LeaseDisks};
use sanlock_core::Lver;

use super::engine::*;
use super::messages::*;
use crate::wire::payload::{RES_LVER, RES_SHARED};
use crate::wire::{WireOptions, WireResource, HEADER_LEN};

/// How the start of one resource's acquire went.
pub(super) enum Start {
    /// The host is acquiring it.
    Acquiring,
    /// Held at once (a second SH holder here, or an adopted orphan).
    Held,
    /// Its disk is not open yet: open it, then start again.
    NeedsDisk(Vec<u8>),
}

/// SANLK_ACQUIRE_ORPHAN: adopting an orphan is allowed.
const ACQUIRE_ORPHAN: u32 = 2;
/// SANLK_ACQUIRE_ORPHAN_ONLY: adopt only, never create.
const ACQUIRE_ORPHAN_ONLY: u32 = 4;
/// SANLK_REL_RENAME: the second resource names the first's new name.
const REL_RENAME: u32 = 2;
/// SANLK_REL_ORPHAN: release orphans.
const REL_ORPHAN: u32 = 4;
/// -EUCLEAN: an orphan is in the way.
const EUCLEAN: i32 = -117;

impl Engine {
    pub(super) fn acquire(
        &mut self,
        ci: usize,
        resources: Vec<WireResource>,
        options: WireOptions,
        waiter: Waiter,
    ) {
        let flags = waiter.header.cmd_flags;
        let Some(c) = self.client_mut(ci) else {
            return self.answer(waiter, EBUSY);
        };
        c.owner_name = options.owner_name;
        // Every lockspace must be usable before anything starts (§4.4 step 6).
        if resources
            .iter()
            .any(|r| !self.space_usable(&r.lockspace_name))
        {
            return self.answer(waiter, ENOSPC);
        }
        let mut todo = resources;
        todo.reverse();
        self.client_mut(ci).expect("checked").job = Some(Job::Acquire {
            waiter,
            todo,
            done: Vec::new(),
            flags,
            unopened: Vec::new(),
        });
        self.acquire_next(ci);
    }

    /// Starts the next resource of client `ci`'s acquire, or answers it.
    pub(super) fn acquire_next(&mut self, ci: usize) {
        loop {
            let Some(Client {
                job:
                    Some(Job::Acquire {
                        todo,
                        flags,
                        unopened,
                        ..
                    }),
                ..
            }) = self.client_mut(ci)
            else {
                return;
            };
            let flags = *flags;
            let Some(res) = todo.pop() else {
                return self.finish_acquire(ci, 0);
            };
            let unopened = std::mem::take(unopened);
            match self.start_acquire(ci, &res, flags, &unopened) {
                Ok(Start::Acquiring) => return,
                Ok(Start::Held) => {}
                Ok(Start::NeedsDisk(path)) => {
                    // Taken up again from this resource once its disk is open.
                    if let Some(Client {
                        job:
                            Some(Job::Acquire {
                                todo,
                                unopened: kept,
                                ..
                            }),
                        ..
                    }) = self.client_mut(ci)
                    {
                        todo.push(res);
                        *kept = unopened;
                    }
                    return self.open_then(path, AfterOpen::Acquire { ci });
                }
                Err(rv) => return self.finish_acquire(ci, rv),
            }
        }
    }

    /// A disk of client `ci`'s next resource would not open: a lease on several disks goes
    /// on without it (whether enough are left is judged when it starts); one on a single disk
    /// fails with the open's error.
    pub(super) fn acquire_without(&mut self, ci: usize, path: &[u8], rv: i32) {
        let Some(Client {
            job: Some(Job::Acquire { todo, unopened, .. }),
            ..
        }) = self.client_mut(ci)
        else {
            return;
        };
        if todo.last().is_none_or(|res| res.disks.len() < 2) {
            return self.finish_acquire(ci, rv);
        }
        unopened.push((path.to_vec(), rv));
        if self.client(ci).is_some_and(|c| c.dead()) {
            return self.finish_acquire(ci, 0);
        }
        self.acquire_next(ci);
    }

    /// Starts client `ci`'s acquire of `res`: how it went, or the acquire's error. `unopened`:
    /// its disks that failed to open (a lease on several disks goes on without a minority).
    pub(super) fn start_acquire(
        &mut self,
        ci: usize,
        res: &WireResource,
        flags: u32,
        unopened: &[(Vec<u8>, i32)],
    ) -> Result<Start, i32> {
        let key = (res.lockspace_name, res.name);
        let shared = res.flags & RES_SHARED != 0;
        if !self.space_usable(&key.0) {
            return Err(ENOSPC);
        }
        match self.pending.get(&key) {
            Some(Pending::Release { .. }) => return Err(EAGAIN),
            Some(_) => return Err(EBUSY),
            None => {}
        }
        if let Some(t) = self.table.tokens.get_mut(&key) {
            if t.orphan {
                // An orphan is adopted only when asked for, in its own mode (§8.5).
                if flags & (ACQUIRE_ORPHAN | ACQUIRE_ORPHAN_ONLY) == 0 || t.shared != shared {
                    return Err(EUCLEAN);
                }
                t.orphan = false;
                t.holders = vec![ci];
                t.flags = res.flags;
                self.acquired(ci, key);
                return Ok(Start::Held);
            }
            if t.shared && shared && !t.holders.contains(&ci) {
                t.holders.push(ci);
                self.acquired(ci, key);
                return Ok(Start::Held);
            }
            return Err(EEXIST);
        }
        if self.host.busy(key.0, key.1) {
            return Err(EBUSY);
        }
        if flags & ACQUIRE_ORPHAN_ONLY != 0 {
            return Err(ENOENT);
        }
        let Some(offsets) =
            LeaseDisks::new(&res.disks.iter().map(|d| d.offset).collect::<Vec<_>>())
        else {
            return Err(EINVAL);
        };
        let space_geometry = self
            .spaces
            .iter()
            .find(|s| s.ls.name == key.0)
            .and_then(|s| s.geometry);
        let mut placed = Vec::with_capacity(res.disks.len());
        for disk in &res.disks {
            if let Some(g) = space_geometry {
                if disk.offset % g.area_bytes() != 0 {
                    return Err(EINVAL);
                }
            }
            match self.disks.get(&disk.path).copied() {
                Some(id) => placed.push(Some(id)),
                // Its I/O fails at once (ENODEV): one disk down of several.
                None if unopened.iter().any(|(p, _)| *p == disk.path) => placed.push(None),
                None => return Ok(Start::NeedsDisk(disk.path.clone())),
            }
        }
        let opened = placed.iter().flatten().count();
        if !majority(placed.len(), opened) {
            // Too few disks to decide anything: the first open's error, as a single disk.
            return Err(unopened.first().map_or(EINVAL, |(_, rv)| *rv));
        }
        if opened < placed.len() {
            self.log(
                Level::Warning,
                format!(
                    "acquire {}:{} without {} of its {} disks",
                    key.0,
                    key.1,
                    placed.len() - opened,
                    placed.len()
                ),
            );
        }
        self.routes.set_lease_disks(key.0, key.1, placed);
        let request = AcquireRequest {
            lver: (res.flags & RES_LVER != 0).then_some(Lver(res.lver)),
            owner_nowait: flags & 8 != 0,
            shared,
            lvb: flags & 1 != 0,
        };
        self.pending.insert(
            key,
            Pending::Acquire {
                ci,
                resource: res.clone(),
                lvb: request.lvb,
            },
        );
        self.host.acquire(self.now, key.0, key.1, offsets, request);
        Ok(Start::Acquiring)
    }

    /// Client `ci` now holds `key`, as part of its acquire under way (which undoes it if a
    /// later resource fails).
    fn acquired(&mut self, ci: usize, key: (Name, Name)) {
        self.table.add_lease(ci, key);
        if let Some(Client {
            job: Some(Job::Acquire { done, .. }),
            ..
        }) = self.client_mut(ci)
        {
            done.push(key);
        }
    }

    pub(super) fn finish_acquire(&mut self, ci: usize, rv: i32) {
        self.metrics.acquire(rv);
        let Some(c) = self.client_mut(ci) else { return };
        let Some(Job::Acquire { waiter, done, .. }) = c.job.take() else {
            return;
        };
        let dead = c.dead();
        if rv < 0 || dead {
            // The first failure undoes what this command took (§4.4 step 7); a holder that
            // died meanwhile gets -ENOTTY and keeps nothing, its earlier leases included.
            let mut left = Vec::new();
            for key in done {
                if self.drop_holder(ci, key) {
                    left.push(key);
                }
            }
            let rv = if rv < 0 { rv } else { ENOTTY };
            if dead {
                self.answer(waiter, rv);
                self.release_all(ci);
                return;
            }
            if left.is_empty() {
                return self.answer(waiter, rv);
            }
            // sanlock answers once the undo is on disk: an acquire right after it must not
            // find the lease still being released (-EAGAIN).
            self.client_mut(ci).expect("the client").job = Some(Job::Release {
                waiter,
                left,
                rv,
                command: false,
            });
            return;
        }
        self.answer(waiter, 0);
    }

    pub(super) fn release(&mut self, ci: usize, resources: Vec<WireResource>, waiter: Waiter) {
        let flags = waiter.header.cmd_flags;
        let keys: Vec<(Name, Name)> = if flags & 1 != 0 {
            self.client(ci)
                .map(|c| c.leases.to_vec())
                .unwrap_or_default()
        } else if flags & REL_ORPHAN != 0 {
            let rv = match resources.first() {
                Some(r) => self.release_orphans(r.lockspace_name, r.name),
                None => EINVAL,
            };
            return self.release_answered(ci, waiter, rv);
        } else if flags & REL_RENAME != 0 {
            let [r, new] = &resources[..] else {
                return self.release_answered(ci, waiter, EINVAL);
            };
            let key = (r.lockspace_name, r.name);
            if !self.client(ci).is_some_and(|c| c.leases.contains(&key)) {
                return self.release_answered(ci, waiter, EPERM);
            }
            self.rename_to.insert(key, new.name);
            vec![key]
        } else {
            let held = self
                .client(ci)
                .map(|c| c.leases.to_vec())
                .unwrap_or_default();
            let mut keys = Vec::new();
            for r in &resources {
                let key = (r.lockspace_name, r.name);
                if !held.contains(&key) {
                    // A name this client does not hold: -1 (§4.5).
                    return self.release_answered(ci, waiter, EPERM);
                }
                keys.push(key);
            }
            keys
        };
        let mut left = Vec::new();
        for key in keys {
            if self.drop_holder(ci, key) {
                left.push(key);
            } else {
                // Other holders keep it (SH): no release, so no rename either.
                self.rename_to.remove(&key);
            }
        }
        if left.is_empty() {
            return self.release_answered(ci, waiter, 0);
        }
        self.client_mut(ci).expect("target exists").job = Some(Job::Release {
            waiter,
            left,
            rv: 0,
            command: true,
        });
    }

    /// Answers client `ci`'s RELEASE. A live client left holding nothing is no longer being
    /// stopped: its kill state is cleared, so that it may acquire again once its lockspace is
    /// back, as libvirt's pause-on-lock-failure does (cmd.c `cmd_release`: "clear kill state").
    fn release_answered(&mut self, ci: usize, waiter: Waiter, rv: i32) {
        self.table.release_answered(ci);
        self.table_effects();
        self.answer(waiter, rv);
    }

    /// Takes `ci` off the holders of `key`; the last holder's leaving releases the lease (as
    /// client `ci`'s job). Returns whether the host is releasing on its behalf.
    pub(super) fn drop_holder(&mut self, ci: usize, key: (Name, Name)) -> bool {
        let last = self.table.drop_holder(ci, key);
        if last {
            self.start_release(key, Some(ci));
        }
        last
    }

    /// Releases a lease nobody holds any more, with no one waiting for the result.
    pub(super) fn release_key(&mut self, key: (Name, Name)) {
        self.table.tokens.remove(&key);
        self.start_release(key, None);
    }

    /// REL_ORPHAN: releases the orphans of a lockspace (all, or the one named); the result
    /// is how many (§4.5).
    fn release_orphans(&mut self, space: Name, name: Name) -> i32 {
        let keys: Vec<(Name, Name)> = self
            .table
            .tokens
            .iter()
            .filter(|((l, r), t)| t.orphan && *l == space && (name.is_empty() || *r == name))
            .map(|(k, _)| *k)
            .collect();
        for &key in &keys {
            self.release_key(key);
        }
        keys.len() as i32
    }

    /// Hands the host a release (a dirty LVB and a rename go with it).
    fn start_release(&mut self, key: (Name, Name), ci: Option<usize>) {
        self.pending.insert(key, Pending::Release { ci });
        let now = self.now;
        let host = &mut self.host;
        if let Some(lvb) = self.lvb_to_write.remove(&key) {
            host.set_lvb(key.0, key.1, lvb);
        }
        match self.rename_to.remove(&key) {
            Some(new_name) => host.release_renamed(now, key.0, key.1, new_name),
            None => host.release(now, key.0, key.1),
        }
    }

    pub(super) fn inquire(&mut self, ci: usize, waiter: Waiter) {
        let Some(c) = self.client(ci) else {
            return self.answer(waiter, EBUSY);
        };
        let mut parts = Vec::new();
        for key in c.leases.iter() {
            let Some(t) = self.table.tokens.get(key) else {
                continue;
            };
            parts.push(super::status::resource_string(
                &t.resource,
                t.shared,
                t.lver,
            ));
        }
        let count = parts.len() as u32;
        let mut h = waiter.header.result(0);
        h.data2 = count;
        if parts.is_empty() {
            self.send_reply(waiter, Reply::keep(h));
            return;
        }
        let text = parts.join(&b' ');
        if parts.iter().any(|p| p.contains(&b' ')) {
            // A lease string with a space, even escaped, fails the whole inquire (§4.6).
            h.data = (-81i32) as u32;
            self.send_reply(waiter, Reply::keep(h));
            return;
        }
        h.length = (HEADER_LEN + text.len() + 1) as u32;
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(&text);
        bytes.push(0);
        self.send_reply(waiter, Reply::keep_bytes(bytes));
    }

    pub(super) fn convert(&mut self, ci: usize, res: WireResource, waiter: Waiter) {
        let key = (res.lockspace_name, res.name);
        let held = self.client(ci).is_some_and(|c| c.leases.contains(&key));
        let Some(t) = self.table.tokens.get(&key).filter(|_| held) else {
            return self.answer(waiter, ENOENT);
        };
        let to_shared = res.flags & RES_SHARED != 0;
        if t.shared == to_shared {
            return self.answer(waiter, EALREADY);
        }
        if !to_shared && t.holders.len() > 1 {
            // Other local SH holders: the lease cannot become ours alone.
            return self.answer(waiter, EAGAIN);
        }
        self.pending.insert(key, Pending::Convert { ci });
        self.client_mut(ci).expect("target exists").job = Some(Job::Convert { waiter });
        if to_shared {
            // EX→SH writes a value set with set_lvb first, as an exclusive release would
            // (algorithms.md §9.5).
            if let Some(lvb) = self.lvb_to_write.remove(&key) {
                self.host.set_lvb(key.0, key.1, lvb);
            }
        }
        self.host.convert(self.now, key.0, key.1, to_shared);
    }

    pub(super) fn resource_event(&mut self, key: (Name, Name), event: paxos::Event) {
        let pending = self.pending.remove(&key);
        match (pending, event) {
            (Some(Pending::Rindex), event) => self.rindex_lease_event(key.0, event),
            (
                Some(Pending::Acquire { ci, resource, lvb }),
                paxos::Event::Acquired {
                    leader,
                    lvb: lvb_read,
                },
            ) => {
                // Nothing set for an earlier hold of this lease may reach this one's release.
                self.lvb_to_write.remove(&key);
                self.rename_to.remove(&key);
                let res_id = self.next_res_id;
                self.next_res_id += 1;
                let shared = resource.flags & RES_SHARED != 0;
                let ss = leader.sector_size().as_usize();
                // ACQUIRE_LVB keeps a sector-sized buffer, filled with what the disk held.
                let lvb = lvb.then(|| {
                    let mut buf = vec![0u8; ss];
                    if let Some(read) = lvb_read {
                        let n = read.bytes().len().min(ss);
                        buf[..n].copy_from_slice(&read.bytes()[..n]);
                    }
                    buf
                });
                let token = self.table.hold(ci, resource, shared, leader.lver.0);
                token.res_id = res_id;
                token.lvb = lvb;
                self.acquired(ci, key);
                self.acquire_next(ci);
            }
            (Some(Pending::Acquire { ci, .. }), paxos::Event::AcquireFailed { rv }) => {
                self.finish_acquire(ci, rv);
            }
            (Some(Pending::Release { ci }), paxos::Event::Released) => {
                self.release_done(ci, key, 0);
            }
            (Some(Pending::Release { ci }), paxos::Event::ReleaseFailed { rv }) => {
                self.release_done(ci, key, rv);
            }
            (_, paxos::Event::ReleaseRetried { rv }) => {
                // A release that failed on I/O (its caller had the error) has ended in the
                // background.
                let (space, name) = key;
                let level = if rv == 0 { Level::Warning } else { Level::Err };
                self.log(
                    level,
                    format!(
                        "r {}:{} release retried after an I/O failure: {}",
                        String::from_utf8_lossy(space.as_bytes()),
                        String::from_utf8_lossy(name.as_bytes()),
                        if rv == 0 {
                            "released".into()
                        } else {
                            format!("error {rv}")
                        }
                    ),
                );
            }
            (Some(Pending::Convert { ci }), paxos::Event::Converted { shared }) => {
                let lver = self.host.held(key.0, key.1).map(|l| l.lver.0);
                if let Some(t) = self.table.tokens.get_mut(&key) {
                    t.shared = shared;
                    // SH→EX runs a ballot: the lease has a new version.
                    t.lver = lver.unwrap_or(t.lver);
                }
                self.finish_job(ci, 0);
            }
            (Some(Pending::Convert { ci }), paxos::Event::ConvertFailed { rv }) => {
                self.finish_job(ci, rv);
            }
            (pending, event) => {
                // A lockspace that stopped answers what was under way; anything else is
                // noted and dropped.
                if let Some(p) = pending {
                    match p {
                        Pending::Acquire { ci, .. } => self.finish_acquire(ci, ENOSPC),
                        Pending::Release { ci } => self.release_done(ci, key, 0),
                        Pending::Convert { ci } => self.finish_job(ci, ENOSPC),
                        Pending::Rindex => unreachable!("matched above"),
                    }
                }
                self.log(Level::Debug, format!("resource event {event:?}"));
            }
        }
    }

    pub(super) fn release_done(&mut self, ci: Option<usize>, key: (Name, Name), rv: i32) {
        let Some(ci) = ci else { return };
        let Some(c) = self.client_mut(ci) else { return };
        if let Some(Job::Release {
            left, rv: first, ..
        }) = c.job.as_mut()
        {
            left.retain(|k| *k != key);
            if *first == 0 {
                *first = rv;
            }
            if left.is_empty() {
                let rv = *first;
                self.finish_job(ci, rv);
            }
        } else if c.dead() {
            self.table.free_if_done(ci);
        }
    }

    pub(super) fn finish_job(&mut self, ci: usize, rv: i32) {
        let Some(c) = self.client_mut(ci) else { return };
        let dead = c.dead();
        match c.job.take() {
            Some(job @ Job::Acquire { .. }) => c.job = Some(job),
            Some(Job::Release {
                waiter,
                command: true,
                ..
            }) => self.release_answered(ci, waiter, rv),
            Some(Job::Release { waiter, .. } | Job::Convert { waiter }) => self.answer(waiter, rv),
            None => {}
        }
        if dead {
            self.release_all(ci);
        }
    }
}
