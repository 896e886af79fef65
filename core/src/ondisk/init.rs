//! The bytes that initialise a lease area: what `direct init -s/-r`, write_lockspace and
//! write_resource put on disk (ondisk.md §4.3, §5.7, §5.8). Pure: the caller writes them.

use super::geometry::{Geometry, SectorNr};
use super::leader::{LeaderRecord, RawLeader};
use super::name::Name;
use super::request::RequestRecord;

/// The two writes that initialise a lockspace, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockspaceInit {
    /// First write: the whole area. Every host's sector holds the same free leader, except that
    /// sector 0's has magic 0 (and a checksum computed with magic 0), so the lockspace is not
    /// valid until the second write lands.
    pub area: Vec<u8>,
    /// Second write, at the area's start: sector 0 with its magic, committing the lockspace.
    pub commit_sector: Vec<u8>,
}

/// Builds the writes of delta_lease.c `delta_lease_init` for `geometry`: max_hosts copies of a
/// free leader, zeros past them.
pub fn lockspace_init(geometry: Geometry, space_name: Name, io_timeout: u16) -> LockspaceInit {
    let leader = LeaderRecord::delta_init(geometry, space_name, io_timeout);
    let record = leader.encode();
    let sector_len = geometry.sector_size().as_usize();
    let mut area = vec![0u8; geometry.area_bytes() as usize];
    for host in 0..usize::from(geometry.max_hosts()) {
        let at = host * sector_len;
        area[at..at + record.len()].copy_from_slice(&record);
    }
    let uncommitted = RawLeader {
        magic: 0,
        ..leader.to_raw()
    }
    .sealed()
    .to_bytes();
    area[..uncommitted.len()].copy_from_slice(&uncommitted);

    let mut commit_sector = vec![0u8; sector_len];
    commit_sector[..record.len()].copy_from_slice(&record);
    LockspaceInit {
        area,
        commit_sector,
    }
}

/// What a resource's initialisation asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceInit {
    /// The lease's geometry.
    pub geometry: Geometry,
    /// The lockspace name.
    pub space_name: Name,
    /// The resource name.
    pub resource_name: Name,
    /// Dblocks in use; 0 or more than max_hosts means max_hosts.
    pub num_hosts: u64,
    /// `Some(now_s)` writes a cleared lease stamped with the writer's monotonic seconds.
    pub clear_at_s: Option<u64>,
}

/// Builds the one write of paxos_lease.c `paxos_lease_init`: the whole area, zero except the
/// leader in sector 0 and the request record in sector 1. Every dblock, mode block and (where it
/// lies inside the area) the LVB is erased.
pub fn resource_init(init: &ResourceInit) -> Vec<u8> {
    let mut leader = LeaderRecord::paxos_init(
        init.geometry,
        init.space_name,
        init.resource_name,
        init.num_hosts,
    );
    if let Some(now_s) = init.clear_at_s {
        leader = leader.cleared(now_s);
    }
    let mut area = vec![0u8; init.geometry.area_bytes() as usize];
    let record = leader.encode();
    area[..record.len()].copy_from_slice(&record);
    let request = RequestRecord::INIT.encode();
    let at = init.geometry.sector_offset(SectorNr::REQUEST) as usize;
    area[at..at + request.len()].copy_from_slice(&request);
    area
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::leader::{LeaderKind, DELTA_DISK_MAGIC};

    #[test]
    fn lockspace_area_holds_max_hosts_identical_sectors_then_zeros() {
        // ondisk.md §4.3 / §7.1: 2000 identical sectors (checksum 0xB0F174C0 for "LS"),
        // sectors 2000-2047 zero, sector 0 first written with magic 0.
        let g = Geometry::ALL[0];
        let init = lockspace_init(g, Name::new(b"LS").unwrap(), 10);
        assert_eq!(init.area.len(), 1 << 20);
        let sector1 = &init.area[512..1024];
        assert_eq!(&sector1[168..172], &0xB0F1_74C0u32.to_le_bytes());
        for host in 1..2000 {
            assert_eq!(
                &init.area[host * 512..host * 512 + 512],
                sector1,
                "sector {host}"
            );
        }
        assert!(init.area[2000 * 512..].iter().all(|&b| b == 0));
        assert_eq!(&init.area[..4], &[0, 0, 0, 0]);
        assert_eq!(init.commit_sector, sector1);
        let leader = LeaderRecord::decode(&init.commit_sector, LeaderKind::Delta, 0).unwrap();
        assert_eq!(leader.magic.value(), DELTA_DISK_MAGIC);
        assert_eq!(leader.io_timeout, 10);
    }

    #[test]
    fn resource_area_is_zero_but_leader_and_request() {
        // ondisk.md §5.7: only sectors 0 and 1 non-zero.
        for g in Geometry::ALL {
            let area = resource_init(&ResourceInit {
                geometry: g,
                space_name: Name::new(b"LS").unwrap(),
                resource_name: Name::new(b"R").unwrap(),
                num_hosts: 0,
                clear_at_s: None,
            });
            let ss = g.sector_size().as_usize();
            assert_eq!(area.len() as u64, g.area_bytes());
            assert!(area[200..ss].iter().all(|&b| b == 0));
            assert!(area[ss + 24..].iter().all(|&b| b == 0));
            let leader = LeaderRecord::decode(&area, LeaderKind::Paxos, 0).unwrap();
            assert_eq!(leader.num_hosts, u64::from(g.max_hosts()));
            assert_eq!(leader.max_hosts, u64::from(g.max_hosts()));
        }
    }

    #[test]
    fn resource_num_hosts_is_kept_only_within_1_to_max_hosts() {
        // paxos_lease.c: "if (!num_hosts || (num_hosts > max_hosts)) num_hosts = max_hosts".
        for (asked, got) in [(0, 250), (4, 4), (250, 250), (251, 250)] {
            let l = LeaderRecord::paxos_init(Geometry::ALL[1], Name::EMPTY, Name::EMPTY, asked);
            assert_eq!(l.num_hosts, got, "asked {asked}");
        }
    }
}
