//! Asking other hosts for their leases and answering them (wire.md §4.8-4.9, algorithms.md
//! §10): REQUEST writes a lease's request record and sets the owner's bit in our bitmap;
//! EXAMINE (or that bit seen in a renewal) makes the host read the request records of leases
//! held here, and a request for a newer version stops the holder: FORCE with SIGKILL,
//! GRACEFUL with the lease's killpath, else SIGTERM (RESTRICT swaps the signals).
//!
//! SET_CONFIG's USED / USED_BY_ORPHANS flags live here too: they hold a lockspace's removal
//! back (§12).

use sanlock_core::ondisk::{ForceMode, Name};
use sanlock_core::requests::RequestArgs;
use sanlock_core::Lver;

use super::engine::*;
use super::messages::*;
use crate::wire::WireResource;

/// SANLK_REQUEST_NEXT_LVER: without an lver, ask for the leader's lver + 1.
const REQUEST_NEXT_LVER: u32 = 1;
/// -ERANGE: a resource without disks, or with more than four.
const ERANGE: i32 = -34;

/// SET_CONFIG commands (SANLK_CONFIG_*).
const CONFIG_USED: u32 = 1;
const CONFIG_UNUSED: u32 = 2;
const CONFIG_USED_BY_ORPHANS: u32 = 4;
const CONFIG_UNUSED_BY_ORPHANS: u32 = 8;

impl Engine {
    /// SET_CONFIG on an active lockspace (§4.15).
    pub(super) fn set_config(&mut self, name: &Name, cmd: u32) -> i32 {
        let Some(s) = self.active_space(name) else {
            return ENOENT;
        };
        match cmd {
            CONFIG_USED | CONFIG_USED_BY_ORPHANS if s.failed => ENOSPC,
            CONFIG_USED => {
                s.used = true;
                0
            }
            CONFIG_UNUSED => {
                s.used = false;
                0
            }
            CONFIG_USED_BY_ORPHANS => {
                s.used_by_orphans = true;
                0
            }
            CONFIG_UNUSED_BY_ORPHANS => {
                s.used_by_orphans = false;
                0
            }
            _ => EINVAL,
        }
    }

    /// Whether set_config holds the stop of lockspace `name` back: USED, or USED_BY_ORPHANS
    /// while orphans of it remain (main.c `all_pids_dead`). Logged the first time and every
    /// 1000th.
    pub(super) fn removal_blocked(&mut self, name: Name) -> bool {
        let orphans = self.table.orphans(name);
        let Some(s) = self.spaces.iter_mut().find(|s| s.ls.name == name) else {
            return false;
        };
        let why = if s.used {
            "used external blocking lockspace removal".to_string()
        } else if s.used_by_orphans && orphans > 0 {
            format!("used by orphan {orphans} blocking lockspace removal")
        } else {
            return false;
        };
        let line = (s.used_retries % 1000 == 0).then(|| format!("s{} {why}", s.space_id));
        s.used_retries += 1;
        if let Some(line) = line {
            self.log(Level::Err, line);
        }
        true
    }

    /// REQUEST: the host reads the leader and writes the request record; answered at
    /// `RequestDone`.
    pub(super) fn request(&mut self, res: WireResource, waiter: Waiter) {
        let key = (res.lockspace_name, res.name);
        let Some(disk) = res.disks.first() else {
            return self.answer(waiter, ERANGE);
        };
        let killing = self.table.killing(&key.0);
        if !self.space_usable(&key.0) || killing {
            return self.answer(waiter, ENOSPC);
        }
        if self.request_waiters.contains_key(&key) {
            return self.answer(waiter, EBUSY);
        }
        let Some(force_mode) = ForceMode::from_value(waiter.header.data) else {
            self.log(
                Level::Err,
                format!("request force_mode {} unknown", waiter.header.data),
            );
            return self.answer(waiter, EINVAL);
        };
        let Some(id) = self.disks.get(&disk.path).copied() else {
            let path = disk.path.clone();
            return self.open_then(path, AfterOpen::Request { res, waiter });
        };
        self.routes.name_lease_if_unnamed(key.0, key.1, id);
        let args = RequestArgs {
            // sanlock takes the lver field whatever the flags say.
            lver: (res.lver != 0).then_some(Lver(res.lver)),
            force_mode,
            next_lver: waiter.header.cmd_flags & REQUEST_NEXT_LVER != 0,
        };
        self.request_waiters.insert(key, waiter);
        self.host.request(self.now, key.0, key.1, disk.offset, args);
    }

    /// The host finished a request.
    pub(super) fn request_done(&mut self, key: (Name, Name), rv: i32) {
        if let Some(w) = self.request_waiters.remove(&key) {
            self.answer(w, rv);
        }
    }

    /// The host read a request for a lease held here: its holder must stop (§10.2 step 3).
    pub(super) fn stop_holder(&mut self, key: (Name, Name), graceful: bool) {
        self.table.stop_holder(key, graceful);
        self.table_effects();
    }
}
