//! The rindex commands in the daemon (wire.md §4.29): one operation per lockspace at a time;
//! the disk steps are actions the shell runs on blocking threads (`crate::rindex`), and create, delete and rebuild
//! hold the index's `rindex_lease` — an ordinary paxos lease taken by the host with
//! OWNER_NOWAIT — around their changes, as sanlock does, so C and Rust hosts exclude each other.

use sanlock_core::ondisk::{Geometry, Name};
use sanlock_core::paxos::AcquireRequest;

use super::engine::*;
use super::messages::*;
use crate::wire::{Cmd, WireRentry, WireRindex};

/// SANLK_RX_NO_LOCKSPACE: lookup, update and rebuild without a joined lockspace.
const RX_NO_LOCKSPACE: u32 = 1;

/// The internal lease's name.
fn rindex_lease_name() -> Name {
    Name::truncated(b"rindex_lease")
}

impl Engine {
    pub(super) fn rindex(&mut self, cmd: Cmd, rx: WireRindex, entry: WireRentry, waiter: Waiter) {
        let flags = waiter.header.cmd_flags;
        let job = RindexJob {
            cmd,
            rx,
            entry,
            waiter,
            header: None,
            result: None,
        };
        if cmd == Cmd::FormatRindex {
            // Format needs no lockspace and takes no lease (rindex.c `rindex_format`).
            self.actions.push(Action::RindexFormat { job });
            return;
        }
        let nolock = flags & RX_NO_LOCKSPACE != 0
            && matches!(
                cmd,
                Cmd::LookupRindex | Cmd::UpdateRindex | Cmd::RebuildRindex
            );
        let mut sector = None;
        if !nolock {
            let name = job.rx.lockspace_name;
            let killing = self.table.killing(&name);
            let rv = match self.active_space(&name) {
                None => ENOENT,
                Some(s) if s.failed || killing => ENOSPC,
                Some(s) if s.rindex_busy => EBUSY,
                Some(s) => {
                    s.rindex_busy = true;
                    sector = s.geometry.map(|g| g.sector_size());
                    0
                }
            };
            if rv != 0 {
                return self.answer_rindex(job, rv, &WireRentry::default());
            }
        }
        let locked = !nolock
            && matches!(
                cmd,
                Cmd::CreateResource | Cmd::DeleteResource | Cmd::RebuildRindex
            );
        self.actions.push(Action::RindexRead {
            job,
            nolock,
            locked,
            sector,
        });
    }

    /// The operation on lockspace `space` is over: another may start.
    pub(super) fn end_rindex_op(&mut self, space: Name) {
        if let Some(s) = self.spaces.iter_mut().find(|s| s.ls.name == space) {
            s.rindex_busy = false;
        }
    }

    /// A locked operation ends before taking its lease: answered `rv`.
    pub(super) fn rindex_refused(&mut self, job: RindexJob, rv: i32) {
        self.end_rindex_op(job.rx.lockspace_name);
        self.answer_rindex(job, rv, &WireRentry::default());
    }

    /// Answers an operation from the loop.
    fn answer_rindex(&mut self, job: RindexJob, rv: i32, entry: &WireRentry) {
        let (waiter, reply) = job.reply(rv, entry);
        self.send_reply(waiter, reply);
    }

    /// The header of a locked operation was read: take the rindex_lease.
    pub(super) fn rindex_header_read(&mut self, job: RindexJob) {
        let space = job.rx.lockspace_name;
        let header = job.header.expect("read before");
        let key = (space, rindex_lease_name());
        let space_geometry: Option<Geometry> = self
            .spaces
            .iter()
            .find(|s| s.ls.name == space)
            .and_then(|s| s.geometry);
        let refuse = Engine::rindex_refused;
        if !self.space_usable(&space) {
            return refuse(self, job, ENOSPC);
        }
        if space_geometry != Some(header.geometry) {
            self.log(
                Level::Err,
                "rindex: an index whose geometry differs from its lockspace's is not supported",
            );
            return refuse(self, job, EINVAL);
        }
        if self.pending.contains_key(&key) || self.table.tokens.contains_key(&key) {
            return refuse(self, job, EBUSY);
        }
        let Some(id) = self.disks.get(&job.rx.disk.path).copied() else {
            let path = job.rx.disk.path.clone();
            return self.open_then(path, AfterOpen::Rindex { job });
        };
        self.routes.set_lease(key.0, key.1, id);
        self.pending.insert(key, Pending::Rindex);
        let request = AcquireRequest {
            lver: None,
            owner_nowait: true,
            shared: false,
            lvb: false,
        };
        self.rindex_jobs.insert(space, job);
        self.host.acquire(
            self.now,
            key.0,
            key.1,
            sanlock_core::quorum::LeaseDisks::one(header.rindex_lease_offset()),
            request,
        );
    }

    /// The host answered about a rindex_lease: taken (make the change), refused, or given
    /// back (answer the command).
    pub(super) fn rindex_lease_event(&mut self, space: Name, event: sanlock_core::paxos::Event) {
        use sanlock_core::paxos::Event;
        let Some(mut job) = self.rindex_jobs.remove(&space) else {
            return;
        };
        match event {
            Event::Acquired { .. } => self.actions.push(Action::RindexChange { job }),
            Event::AcquireFailed { rv } => {
                self.end_rindex_op(space);
                self.answer_rindex(job, rv, &WireRentry::default());
            }
            _ => {
                // Released (or its release failed: the change is made either way).
                self.end_rindex_op(space);
                let (rv, entry) = job.result.take().unwrap_or((0, WireRentry::default()));
                self.answer_rindex(job, rv, &entry);
            }
        }
    }

    /// The change under the lease is done: give the lease back, then answer.
    pub(super) fn rindex_changed(&mut self, job: RindexJob) {
        let space = job.rx.lockspace_name;
        let key = (space, rindex_lease_name());
        self.rindex_jobs.insert(space, job);
        self.pending.insert(key, Pending::Rindex);
        self.host.release(self.now, key.0, key.1);
    }
}
