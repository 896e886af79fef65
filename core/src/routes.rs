//! Which disk each lockspace's and each lease's I/O goes to: the table every driver of a
//! [`crate::host::Host`] keeps (the daemon, the backends' `HostDriver`), with one rule for
//! placing a request and one way of taking the host's queued I/O. `D` is the driver's name
//! for an open disk.

use std::collections::BTreeMap;

use crate::host::{Host, Target};
use crate::io::{DiskRef, IoError, IoRequest};
use crate::ondisk::Name;
use crate::Time;

/// ENODEV: what an I/O for a lockspace or lease whose disk was never named fails with.
pub const ENODEV: i32 = 19;

/// The disks of the lockspaces and leases a driver has named.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Routes<D> {
    lockspaces: BTreeMap<Name, D>,
    /// Each lease's disks, in the order the lease names them.
    /// Each lease's disks, in the order the lease names them (none: one that would not open).
    leases: BTreeMap<(Name, Name), Vec<Option<D>>>,
}

impl<D> Default for Routes<D> {
    fn default() -> Self {
        Routes {
            lockspaces: BTreeMap::new(),
            leases: BTreeMap::new(),
        }
    }
}

impl<D: Copy> Routes<D> {
    /// Lockspace `space` is on `disk`.
    pub fn set_lockspace(&mut self, space: Name, disk: D) {
        self.lockspaces.insert(space, disk);
    }

    /// The lease of `resource` in `space` is on `disk`.
    pub fn set_lease(&mut self, space: Name, resource: Name, disk: D) {
        self.leases.insert((space, resource), vec![Some(disk)]);
    }

    /// A request or examine of `resource` in `space` goes to `disk` (its request record is on
    /// the lease's first disk), unless the lease's disks are named already — by an acquire,
    /// whose routes for a lease on several disks must stay whole.
    pub fn name_lease_if_unnamed(&mut self, space: Name, resource: Name, disk: D) {
        self.leases
            .entry((space, resource))
            .or_insert_with(|| vec![Some(disk)]);
    }

    /// The lease of `resource` in `space` is on these disks, in the lease's order; the I/O of
    /// a disk given as `None` (it would not open) fails at once with ENODEV.
    pub fn set_lease_disks(&mut self, space: Name, resource: Name, disks: Vec<Option<D>>) {
        self.leases.insert((space, resource), disks);
    }

    /// Where an I/O of `target` goes: a delta lease's to its lockspace's disk; a lease's to
    /// the lease's disk, or to its lockspace's when the request says so (the owner's delta
    /// lease). `None`: nobody named that disk (the driver fails the I/O rather than guess).
    pub fn place(&self, target: &Target, disk: DiskRef) -> Option<D> {
        match (target, disk) {
            (Target::Lockspace(ls), _) => self.lockspaces.get(ls).copied(),
            (target, DiskRef::Lockspace) => target
                .lease()
                .and_then(|(ls, _)| self.lockspaces.get(ls))
                .copied(),
            (target, DiskRef::Lease(d)) => target
                .lease()
                .and_then(|(ls, res)| self.leases.get(&(*ls, *res)))
                .and_then(|disks| disks.get(d.index()).copied().flatten()),
        }
    }

    /// Takes every I/O `host` has queued, each with the disk it goes to; one for a disk nobody
    /// named fails at once with ENODEV (handed back to the host at `now`).
    pub fn take_placed(&self, host: &mut Host, now: Time) -> Vec<(D, IoRequest)> {
        let mut placed = Vec::new();
        let mut unplaced = Vec::new();
        while let Some((target, request)) = host.poll_io() {
            match self.place(&target, request.disk) {
                Some(disk) => placed.push((disk, request)),
                None => unplaced.push(request.id),
            }
        }
        for id in unplaced {
            host.handle_io(now, id, Err(IoError::Failed(ENODEV)));
        }
        placed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_goes_to_the_disk_its_target_and_reference_name() {
        let (ls, r) = (Name::new(b"LS").unwrap(), Name::new(b"R").unwrap());
        let mut routes = Routes::default();
        assert_eq!(
            routes.place(&Target::Lockspace(ls), DiskRef::Lockspace),
            None
        );
        routes.set_lockspace(ls, 1);
        routes.set_lease(ls, r, 2);
        assert_eq!(
            routes.place(&Target::Lockspace(ls), DiskRef::LEASE),
            Some(1)
        );
        assert_eq!(
            routes.place(&Target::Resource(ls, r), DiskRef::LEASE),
            Some(2)
        );
        assert_eq!(
            routes.place(&Target::Resource(ls, r), DiskRef::Lockspace),
            Some(1),
            "an owner's delta lease is read on the lockspace's disk"
        );
        assert_eq!(
            routes.place(&Target::Examine(ls, r), DiskRef::LEASE),
            Some(2)
        );
        let other = Name::new(b"R2").unwrap();
        assert_eq!(
            routes.place(&Target::Request(ls, other), DiskRef::LEASE),
            None
        );
    }

    #[test]
    fn a_request_keeps_the_routes_an_acquire_gave_a_lease_on_several_disks() {
        use crate::quorum::LeaseDisk;
        let (ls, r) = (Name::new(b"LS").unwrap(), Name::new(b"R").unwrap());
        let mut routes = Routes::default();
        routes.set_lease_disks(ls, r, vec![Some(1), None, Some(3)]);
        routes.name_lease_if_unnamed(ls, r, 1);
        let on = |d| {
            routes.place(
                &Target::Resource(ls, r),
                DiskRef::Lease(LeaseDisk::new(d).unwrap()),
            )
        };
        assert_eq!([on(0), on(1), on(2)], [Some(1), None, Some(3)]);
        let other = Name::new(b"R2").unwrap();
        routes.name_lease_if_unnamed(ls, other, 7);
        assert_eq!(
            routes.place(&Target::Request(ls, other), DiskRef::LEASE),
            Some(7)
        );
    }

    #[test]
    fn io_for_a_disk_nobody_named_fails_with_enodev_and_the_rest_is_placed() {
        use crate::host::{HostConfig, JoinRequest, Output};
        use crate::ondisk::{Geometry, SectorSize};
        use crate::HostId;
        let (ls, other) = (Name::new(b"LS").unwrap(), Name::new(b"OTHER").unwrap());
        let mut host = Host::new(HostConfig::new(Name::new(b"h").unwrap()));
        let now = Time::from_secs(100);
        for space_name in [ls, other] {
            host.join(
                now,
                JoinRequest {
                    space_name,
                    host_id: HostId::new(1).unwrap(),
                    geometry: Geometry::legacy(SectorSize::Bytes512),
                    offset: 0,
                    io_timeout_s: 10,
                },
            );
        }
        let mut routes = Routes::default();
        routes.set_lockspace(ls, 7u8);
        let placed = routes.take_placed(&mut host, now);
        assert_eq!(placed.len(), 1, "LS's first read");
        assert_eq!(placed[0].0, 7);
        assert!(host.poll_io().is_none(), "everything was taken");
        let failed: Vec<Output> = std::iter::from_fn(|| host.poll_output()).collect();
        assert!(
            failed.iter().any(|o| matches!(o,
                Output::JoinFailed { space_name, rv } if *space_name == other && *rv == -ENODEV)),
            "{failed:?}"
        );
    }
}
