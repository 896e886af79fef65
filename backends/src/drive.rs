//! The one loop that runs a core [`Host`] on real storage: the host's I/O requests go to a
//! [`Storage`], their completions come back with the same ids, and the host's deadlines are
//! slept on the monotonic clock. Everything the host decides comes out as its [`Output`]s;
//! what to do about them (signal processes, feed a watchdog) is the caller's.
//!
//! The caller says which disk holds each lockspace and each resource lease; an I/O for a disk
//! nobody named fails with ENODEV rather than going anywhere.

use sanlock_core::host::{Host, Output};
use sanlock_core::ondisk::Name;
use sanlock_core::routes::Routes;
use sanlock_core::Time;

use crate::storage::{sleep_until, DiskId, Io, Storage};

/// A host and the storage its leases live on.
pub struct HostDriver<S> {
    host: Host,
    storage: S,
    routes: Routes<DiskId>,
}

impl<S: Storage> HostDriver<S> {
    /// Drives `host` on `storage`.
    pub fn new(host: Host, storage: S) -> Self {
        HostDriver {
            host,
            storage,
            routes: Routes::default(),
        }
    }

    /// The host, to join, acquire, release… (with [`crate::clock::now`] as the time).
    pub fn host_mut(&mut self) -> &mut Host {
        &mut self.host
    }

    /// The host, to look at.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The storage, to open disks.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// The disk holding lockspace `space_name`.
    pub fn set_lockspace_disk(&mut self, space_name: Name, disk: DiskId) {
        self.routes.set_lockspace(space_name, disk);
    }

    /// The disk holding the lease of `resource_name` in `space_name`.
    pub fn set_lease_disk(&mut self, space_name: Name, resource_name: Name, disk: DiskId) {
        self.routes.set_lease(space_name, resource_name, disk);
    }

    /// Runs the host until it has something to say (returned) or `until` passes (nothing).
    pub async fn run(&mut self, until: Time) -> Vec<Output> {
        loop {
            self.submit_io();
            let outputs: Vec<Output> = std::iter::from_fn(|| self.host.poll_output()).collect();
            if !outputs.is_empty() {
                return outputs;
            }
            let now = crate::clock::now();
            if now >= until {
                return Vec::new();
            }
            let wake = self.host.poll_timeout().map_or(until, |t| t.min(until));
            if self.storage.stats().in_flight == 0 {
                sleep_until(wake).await;
                self.host.handle_timeout(crate::clock::now());
                continue;
            }
            tokio::select! {
                done = self.storage.completions() => {
                    let now = crate::clock::now();
                    for c in done {
                        self.host.handle_io(now, c.id, c.result);
                    }
                    self.host.handle_timeout(now);
                }
                () = sleep_until(wake) => self.host.handle_timeout(crate::clock::now()),
            }
        }
    }

    /// Hands the host's queued I/O to the storage, each on the disk its target names.
    fn submit_io(&mut self) {
        let now = crate::clock::now();
        let batch: Vec<Io> = self
            .routes
            .take_placed(&mut self.host, now)
            .into_iter()
            .map(|(disk, request)| Io::on(disk, request))
            .collect();
        if !batch.is_empty() {
            self.storage.submit(batch);
        }
    }
}
