//! Which disk each lockspace's and each lease's I/O goes to: the table every driver of a
//! [`crate::host::Host`] keeps (the daemon, the backends' `HostDriver`), with one rule for
//! placing a request. `D` is the driver's name for an open disk.

use std::collections::BTreeMap;

use crate::host::Target;
use crate::io::DiskRef;
use crate::ondisk::Name;

/// The disks of the lockspaces and leases a driver has named.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Routes<D> {
    lockspaces: BTreeMap<Name, D>,
    leases: BTreeMap<(Name, Name), D>,
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
        self.leases.insert((space, resource), disk);
    }

    /// Where an I/O of `target` goes: a delta lease's to its lockspace's disk; a lease's to
    /// the lease's disk, or to its lockspace's when the request says so (the owner's delta
    /// lease). `None`: nobody named that disk (the driver fails the I/O rather than guess).
    pub fn place(&self, target: &Target, disk: DiskRef) -> Option<D> {
        match (target, disk) {
            (Target::Lockspace(ls), _) => self.lockspaces.get(ls),
            (target, DiskRef::Lockspace) => {
                target.lease().and_then(|(ls, _)| self.lockspaces.get(ls))
            }
            (target, DiskRef::Lease) => target
                .lease()
                .and_then(|(ls, res)| self.leases.get(&(*ls, *res))),
        }
        .copied()
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
            routes.place(&Target::Lockspace(ls), DiskRef::Lease),
            Some(1)
        );
        assert_eq!(
            routes.place(&Target::Resource(ls, r), DiskRef::Lease),
            Some(2)
        );
        assert_eq!(
            routes.place(&Target::Resource(ls, r), DiskRef::Lockspace),
            Some(1),
            "an owner's delta lease is read on the lockspace's disk"
        );
        assert_eq!(
            routes.place(&Target::Examine(ls, r), DiskRef::Lease),
            Some(2)
        );
        let other = Name::new(b"R2").unwrap();
        assert_eq!(
            routes.place(&Target::Request(ls, other), DiskRef::Lease),
            None
        );
    }
}
