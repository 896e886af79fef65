//! Newtypes for the numbers the lease algorithms must never mix up.

use std::fmt;

/// A host's id in a lockspace: 1 ..= 2000 (the largest max_hosts of any geometry).
///
/// Which ids a given lockspace accepts depends on its geometry
/// ([`crate::ondisk::Geometry::max_hosts`]); this type only rules out 0 and ids no geometry has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(u16);

impl HostId {
    /// The largest host id of any geometry (sanlock's DEFAULT_MAX_HOSTS).
    pub const MAX: u16 = 2000;

    /// Use when turning a number from the user or the disk into a host id; `None` for 0 or
    /// anything above 2000.
    pub fn new(id: u64) -> Option<Self> {
        if (1..=u64::from(Self::MAX)).contains(&id) {
            Some(HostId(id as u16))
        } else {
            None
        }
    }

    /// The id as sanlock stores it in u64 fields.
    pub fn get(self) -> u64 {
        u64::from(self.0)
    }

    /// Zero-based index (host 1 is index 0): the delta-lease sector and bitmap bit number.
    pub fn index(self) -> usize {
        usize::from(self.0) - 1
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The generation of a host_id's delta lease: incremented by every acquire of that host_id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub u64);

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A paxos lease version: incremented by every successful acquire of the resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lver(pub u64);

impl fmt::Display for Lver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The number a sender gives each host message it sends (our extension, docs/MESSAGES.md):
/// counted up by the sending daemon from 1; acks name it. 0 is "none".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageSeq(pub u32);

impl fmt::Display for MessageSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_id_accepts_exactly_1_to_2000() {
        // sanlock 3.8.5 sizeflags.c: 2000 is the largest max_hosts of any geometry.
        assert_eq!(HostId::new(0), None);
        assert_eq!(HostId::new(1).map(HostId::index), Some(0));
        assert_eq!(HostId::new(2000).map(HostId::get), Some(2000));
        assert_eq!(HostId::new(2001), None);
        assert_eq!(HostId::new(u64::MAX), None);
    }
}
