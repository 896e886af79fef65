//! `direct read_leader -s LOCKSPACE | -r RESOURCE [-Z -A]`: read one leader record, check it
//! as sanlock would before using it, and print every field whatever the verdict
//! (main.c `do_direct_read_leader`, direct.c `do_delta_action` / `do_paxos_action`).
//!
//! Where 3.8.5 prints an uninitialised stack record (the disk did not open, the read failed)
//! we print zeros.

use sanlock_core::ondisk::leader::{DELTA_DISK_MAGIC, PAXOS_DISK_MAGIC};
use sanlock_core::ondisk::{LeaderKind, Name, RawLeader, SectorSize};
use sanlock_core::rv::{SANLK_LEADER_DIFF, SANLK_LEADER_READ};

use super::{given_sizes, EINVAL, ENODEV};
use crate::cli::locators::ResourceArg;
use crate::cli::options::Options;
use sanlock_backends::disk::Disk;

/// Runs `direct read_leader`, printing `read_leader done <rv>` and the record.
pub fn run(options: &Options, out: &mut Vec<u8>) -> i32 {
    let is_lockspace = options.resources.is_empty();
    let (rv, leader) = if !options.lockspace.path.is_empty() {
        read_delta(options)
    } else if let Some(res) = options.resources.first() {
        read_paxos(options, res)
    } else {
        (-1, RawLeader::default())
    };
    out.extend_from_slice(format!("read_leader done {rv}\n").as_bytes());
    print_leader(&leader, is_lockspace, out);
    rv
}

/// Prints a leader as sanlock's `print_leader` does; the write_* fields are `extra1..3` for a
/// lockspace (they carry events there).
pub fn print_leader(l: &RawLeader, is_lockspace: bool, out: &mut Vec<u8>) {
    let mut line = |key: &str, value: String| {
        out.extend_from_slice(format!("{key} {value}\n").as_bytes());
    };
    line("magic", format!("0x{:x}", l.magic));
    line("version", format!("0x{:x}", l.version));
    line("flags", format!("0x{:x}", l.flags));
    line("sector_size", l.sector_size.to_string());
    line("num_hosts", l.num_hosts.to_string());
    line("max_hosts", l.max_hosts.to_string());
    line("owner_id", l.owner_id.to_string());
    line("owner_generation", l.owner_generation.to_string());
    line("lver", l.lver.to_string());
    name_line(out, "space_name", &l.space_name);
    name_line(out, "resource_name", &l.resource_name);
    let mut line = |key: &str, value: String| {
        out.extend_from_slice(format!("{key} {value}\n").as_bytes());
    };
    line("timestamp", l.timestamp.to_string());
    line("checksum", format!("0x{:x}", l.checksum));
    line("io_timeout", l.io_timeout.to_string());
    let keys = if is_lockspace {
        ["extra1", "extra2", "extra3"]
    } else {
        ["write_id", "write_generation", "write_timestamp"]
    };
    line(keys[0], l.write_id.to_string());
    line(keys[1], l.write_generation.to_string());
    line(keys[2], l.write_timestamp.to_string());
}

fn name_line(out: &mut Vec<u8>, key: &str, name: &Name) {
    out.extend_from_slice(key.as_bytes());
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

/// direct.c `do_delta_action(ACT_READ_LEADER)` then delta_lease.c `delta_lease_leader_read`.
pub(crate) fn read_delta(options: &Options) -> (i32, RawLeader) {
    let ls = &options.lockspace;
    if ls.host_id == 0 {
        return (EINVAL, RawLeader::default());
    }
    let Ok(disk) = Disk::open(&ls.path) else {
        return (ENODEV, RawLeader::default());
    };
    let (mut sector_size, align) = given_sizes(options);
    if sector_size == 0 || align == 0 {
        match probe_sizes(&disk, ls.offset) {
            Ok(sector) => sector_size = sector,
            Err(rv) => return (rv, RawLeader::default()),
        }
    }
    let Some(sector) = SectorSize::from_bytes(u64::from(sector_size)) else {
        return (EINVAL, RawLeader::default());
    };
    let offset = (ls.host_id - 1)
        .checked_mul(u64::from(sector.bytes()))
        .and_then(|o| o.checked_add(ls.offset));
    let Some(offset) = offset else {
        return (EINVAL, RawLeader::default());
    };
    let raw = match read_raw_leader(&disk, offset, sector) {
        Ok(raw) => raw,
        Err(rv) => return (rv, RawLeader::default()),
    };
    (
        verify_in_sanlock_order(&raw, LeaderKind::Delta, &ls.name, None),
        raw,
    )
}

/// direct.c `do_paxos_action(ACT_READ_LEADER)` then paxos_lease.c `paxos_lease_leader_read`:
/// one disk is read as is; several need a majority that read and agree.
pub(crate) fn read_paxos(options: &Options, res: &ResourceArg) -> (i32, RawLeader) {
    if res.disks.is_empty() {
        // 3.8.5 reads past its disk array here and fails with -1.
        return (-1, RawLeader::default());
    }
    let (sector_size, _) = given_sizes(options);
    // Without -Z sanlock reads 4096 bytes, which holds the leader whatever the sector size.
    let sector_size = if sector_size == 0 { 4096 } else { sector_size };
    let Some(sector) = SectorSize::from_bytes(u64::from(sector_size)) else {
        return (EINVAL, RawLeader::default());
    };
    let mut disks = Vec::new();
    let mut open_error = -1;
    for d in &res.disks {
        match Disk::open(&d.path) {
            Ok(disk) => disks.push((disk, d.offset)),
            Err(e) => open_error = e.rv(),
        }
    }
    if !majority(res.disks.len(), disks.len()) {
        return (open_error, RawLeader::default());
    }
    let check = |raw: &RawLeader| {
        verify_in_sanlock_order(raw, LeaderKind::Paxos, &res.lockspace_name, Some(&res.name))
    };
    if res.disks.len() == 1 {
        let (disk, offset) = &disks[0];
        return match read_raw_leader(disk, *offset, sector) {
            Ok(raw) => (check(&raw), raw),
            Err(rv) => (rv, RawLeader::default()),
        };
    }
    // paxos_lease.c _leader_read_num: count how often each good leader repeats.
    let mut good: Vec<(RawLeader, usize)> = Vec::new();
    let mut reads = 0;
    for (disk, offset) in &disks {
        let Ok(raw) = read_raw_leader(disk, *offset, sector) else {
            continue;
        };
        if check(&raw) != 0 {
            continue;
        }
        reads += 1;
        let same = |other: &RawLeader| {
            other.to_bytes()[..sanlock_core::ondisk::leader::LEADER_COMPARE_LEN]
                == raw.to_bytes()[..sanlock_core::ondisk::leader::LEADER_COMPARE_LEN]
        };
        match good.iter_mut().find(|(other, _)| same(other)) {
            Some((_, count)) => *count += 1,
            None => good.push((raw, 1)),
        }
    }
    if !majority(res.disks.len(), reads) {
        return (SANLK_LEADER_READ, RawLeader::default());
    }
    match good
        .iter()
        .find(|(_, count)| majority(res.disks.len(), *count))
    {
        Some((raw, _)) => (0, *raw),
        None => (SANLK_LEADER_DIFF, RawLeader::default()),
    }
}

/// diskio.c `majority_disks`: more than half; half is not enough.
fn majority(num_disks: usize, num: usize) -> bool {
    num * 2 > num_disks
}

/// direct.c `direct_read_leader_sizes`: 4096 bytes at the area's start; a delta or paxos magic
/// gives the sector size (the align size is not needed to read one leader).
pub(crate) fn probe_sizes(disk: &Disk, offset: u64) -> Result<u32, i32> {
    let buf = disk.read(offset, 4096).map_err(|e| e.rv())?;
    let raw = RawLeader::parse(buf.as_ref()).map_err(|_| -1)?;
    if raw.magic == DELTA_DISK_MAGIC || raw.magic == PAXOS_DISK_MAGIC {
        // Only the magic is checked here; a sector size other than 512 or 4096 is refused
        // by the read that follows, as read_sectors does.
        Ok(raw.sector_size)
    } else {
        Err(-1)
    }
}

fn read_raw_leader(disk: &Disk, offset: u64, sector: SectorSize) -> Result<RawLeader, i32> {
    let buf = disk.read(offset, sector.as_usize()).map_err(|e| e.rv())?;
    RawLeader::parse(buf.as_ref()).map_err(|_| -1)
}

/// sanlock's checks of a leader it is about to use, in its order; the host id is 0 here, so the
/// num_hosts check cannot fail.
fn verify_in_sanlock_order(
    raw: &RawLeader,
    kind: LeaderKind,
    space: &Name,
    resource: Option<&Name>,
) -> i32 {
    raw.check_as_sanlock(kind, space, resource, None)
        .err()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sanlock_core::ondisk::{Geometry, LeaderRecord};

    #[test]
    fn majority_needs_more_than_half() {
        // diskio.c majority_disks: 1 of 1, 2 of 3, 3 of 4; 1 of 2 is not.
        assert!(majority(1, 1));
        assert!(!majority(1, 0));
        assert!(!majority(2, 1));
        assert!(majority(3, 2));
        assert!(!majority(4, 2));
        assert!(majority(4, 3));
    }

    #[test]
    fn names_are_checked_before_the_checksum() {
        // paxos_lease.c _verify_leader: a wrong name wins over a wrong checksum.
        let g = Geometry::legacy(SectorSize::Bytes512);
        let ls = Name::new(b"LS").unwrap();
        let r = Name::new(b"R").unwrap();
        let mut raw = LeaderRecord::paxos_init(g, ls, r, 0).to_raw();
        assert_eq!(
            verify_in_sanlock_order(&raw, LeaderKind::Paxos, &ls, Some(&r)),
            0
        );
        raw.checksum ^= 1;
        let other = Name::new(b"X").unwrap();
        assert_eq!(
            verify_in_sanlock_order(&raw, LeaderKind::Paxos, &ls, Some(&other)),
            -227
        );
        assert_eq!(
            verify_in_sanlock_order(&raw, LeaderKind::Paxos, &other, Some(&r)),
            -226
        );
        assert_eq!(
            verify_in_sanlock_order(&raw, LeaderKind::Paxos, &ls, Some(&r)),
            -229
        );
        assert_eq!(
            verify_in_sanlock_order(&raw, LeaderKind::Delta, &ls, None),
            -223
        );
    }
}
