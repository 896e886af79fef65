//! The rindex commands in the daemon (wire.md §4.29): one operation per lockspace at a time;
//! the disk steps run on blocking threads (`crate::rindex`), and create, delete and rebuild
//! hold the index's `rindex_lease` — an ordinary paxos lease taken by the host with
//! OWNER_NOWAIT — around their changes, as sanlock does, so C and Rust hosts exclude each other.

use sanlock_backends::disk::Disk;
use sanlock_core::ondisk::rindex::RindexHeader;
use sanlock_core::ondisk::{Geometry, Name};
use sanlock_core::paxos::AcquireRequest;
use tokio::sync::mpsc::UnboundedSender;

use super::engine::*;
use super::log;
use super::messages::*;
use crate::rindex;
use crate::wire::{Cmd, Header, WireRentry, WireRindex, HEADER_LEN, RENTRY_LEN};

/// SANLK_RX_NO_LOCKSPACE: lookup, update and rebuild without a joined lockspace.
const RX_NO_LOCKSPACE: u32 = 1;

/// The internal lease's name.
fn rindex_lease_name() -> Name {
    Name::truncated(b"rindex_lease")
}

/// The reply of update, lookup, create and delete: the result and the entry, always.
fn rentry_reply(header: Header, rv: i32, entry: &WireRentry) -> Vec<u8> {
    let mut h = header.result(rv);
    h.length = (HEADER_LEN + RENTRY_LEN) as u32;
    let mut out = h.encode().to_vec();
    entry.encode_into(&mut out);
    out
}

/// The reply of an operation: the result and, for update, lookup, create and delete, the entry.
fn reply(job: RindexJob, rv: i32, entry: &WireRentry) -> (Waiter, Reply) {
    let bytes = match job.cmd {
        Cmd::RebuildRindex | Cmd::FormatRindex => job.waiter.header.result(rv).encode().to_vec(),
        _ => rentry_reply(job.waiter.header, rv, entry),
    };
    (job.waiter, Reply::keep_bytes(bytes))
}

/// Answers from a blocking thread: through the engine's channel, after what the thread sent
/// before it.
fn answer_from_thread(tx: &UnboundedSender<Msg>, job: RindexJob, rv: i32, entry: &WireRentry) {
    let (waiter, reply) = reply(job, rv, entry);
    let _ = tx.send(Msg::Answer { waiter, reply });
}

/// The operation's own disk steps, once the header is read (and, for create, delete and
/// rebuild, the rindex_lease held).
fn disk_steps(job: &RindexJob, disk: &Disk, header: &RindexHeader) -> (i32, WireRentry) {
    let h = job.waiter.header;
    match job.cmd {
        Cmd::LookupRindex => rindex::lookup(disk, header, &job.entry),
        Cmd::UpdateRindex => rindex::update(disk, header, &job.entry, h.cmd_flags),
        Cmd::CreateResource => {
            rindex::create_locked(disk, &job.rx, header, job.entry.name, u64::from(h.data2))
        }
        Cmd::DeleteResource => rindex::delete_locked(disk, &job.rx, header, &job.entry),
        _ => (rindex::rebuild_locked(disk, header), WireRentry::default()),
    }
}

impl Engine {
    pub(super) fn rindex(&mut self, cmd: Cmd, rx: WireRindex, entry: WireRentry, waiter: Waiter) {
        let flags = waiter.header.cmd_flags;
        let mut job = RindexJob {
            cmd,
            rx,
            entry,
            waiter,
            header: None,
            result: None,
        };
        if cmd == Cmd::FormatRindex {
            // Format needs no lockspace and takes no lease (rindex.c `rindex_format`).
            let rx = job.rx.clone();
            let tx = self.tx.clone();
            tokio::task::spawn_blocking(move || {
                let rv = rindex::format(&rx);
                answer_from_thread(&tx, job, rv, &WireRentry::default());
            });
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
        let space = job.rx.lockspace_name;
        let tx = self.tx.clone();
        let locked = !nolock
            && matches!(
                cmd,
                Cmd::CreateResource | Cmd::DeleteResource | Cmd::RebuildRindex
            );
        tokio::task::spawn_blocking(move || {
            let header = rindex::open(&job.rx)
                .and_then(|disk| Ok((rindex::read_header(&disk, &job.rx, sector)?, disk)));
            let (header, disk) = match header {
                Ok(h) => h,
                Err(rv) => {
                    if !nolock {
                        let _ = tx.send(Msg::RindexDone { space });
                    }
                    answer_from_thread(&tx, job, rv, &WireRentry::default());
                    return;
                }
            };
            if locked {
                job.header = Some(header);
                let _ = tx.send(Msg::RindexHeader { job });
                return;
            }
            let (rv, out) = disk_steps(&job, &disk, &header);
            // Free the lockspace before the client hears back: its next call comes through the
            // same channel, so it can never find this operation still running.
            if !nolock {
                let _ = tx.send(Msg::RindexDone { space });
            }
            answer_from_thread(&tx, job, rv, &out);
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
        let (waiter, reply) = reply(job, rv, entry);
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
            log::log(
                log::ERR,
                "rindex: an index whose geometry differs from its lockspace's is not supported",
            );
            return refuse(self, job, EINVAL);
        }
        if self.pending.contains_key(&key) || self.table.tokens.contains_key(&key) {
            return refuse(self, job, EBUSY);
        }
        let Some(id) = self.storage.opened(&job.rx.disk.path) else {
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
            header.rindex_lease_offset(),
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
            Event::Acquired { .. } => {
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || {
                    let header = job.header.expect("read before");
                    let result = match rindex::open(&job.rx) {
                        Err(rv) => (rv, WireRentry::default()),
                        Ok(disk) => disk_steps(&job, &disk, &header),
                    };
                    job.result = Some(result);
                    let _ = tx.send(Msg::RindexChanged { job });
                });
            }
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
