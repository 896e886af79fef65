//! Disks are opened off the event loop: an open can block on a hung device or NFS server, and
//! sanlock's opens block only the lockspace or command thread that makes them, never its main
//! loop. What needs a disk that is not open yet parks here and runs again once it is.

use super::DiskNo;

use super::engine::{Engine, Level};
use super::messages::{Action, AfterOpen};

impl Engine {
    /// Opens `path` on a blocking thread and runs `then` when it is open (or failed to open).
    /// Everything parked on one path waits for one open.
    pub(super) fn open_then(&mut self, path: Vec<u8>, then: AfterOpen) {
        let waiting = self.opening.entry(path.clone()).or_default();
        waiting.push(then);
        if waiting.len() > 1 {
            return;
        }
        self.actions.push(Action::Open { path });
    }

    /// An open started by [`Engine::open_then`] finished: the disk goes to the storage and what
    /// waited for it runs again (or fails with the open's error).
    pub(super) fn disk_opened(&mut self, path: Vec<u8>, result: Result<DiskNo, (i32, String)>) {
        let result: Result<DiskNo, i32> = match result {
            Ok(disk) => {
                self.disks.insert(path.clone(), disk);
                Ok(disk)
            }
            Err((rv, why)) => {
                self.log(Level::Err, format!("open error: {why}"));
                Err(rv)
            }
        };
        for then in self.opening.remove(&path).unwrap_or_default() {
            match (then, result) {
                (AfterOpen::Join { space_id }, result) => {
                    self.lockspace_disk_opened(space_id, result);
                }
                (AfterOpen::Acquire { ci }, Ok(_)) => {
                    if self.client(ci).is_some_and(|c| c.dead()) {
                        // Died while its disk opened: the acquire ends, giving back what it
                        // took.
                        self.finish_acquire(ci, 0);
                    } else {
                        self.acquire_next(ci);
                    }
                }
                (AfterOpen::Acquire { ci }, Err(rv)) => self.acquire_without(ci, &path, rv),
                (AfterOpen::Request { res, waiter }, Ok(_)) => self.request(res, waiter),
                (AfterOpen::Request { waiter, .. }, Err(rv)) => self.answer(waiter, rv),
                (AfterOpen::Rindex { job }, Ok(_)) => self.rindex_header_read(job),
                (AfterOpen::Rindex { job }, Err(rv)) => self.rindex_refused(job, rv),
            }
        }
    }
}
