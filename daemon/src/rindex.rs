//! Resource index operations (wire.md §4.29, algorithms.md §13, ondisk.md §6) as blocking disk
//! steps. `direct format/lookup/update/rebuild` run them alone; the daemon runs them on a
//! blocking thread and, for create, delete and rebuild, holds the index's `rindex_lease`
//! (a paxos lease taken through the core host) around the steps marked "locked".

use sanlock_backends::disk::{AlignedBuf, Disk};
use sanlock_core::ondisk::rindex::{RindexEntry, RindexHeader, RINDEX_HEADER_SIZE};
use sanlock_core::ondisk::{Geometry, LeaderKind, Name, Problem, RawLeader, SectorSize};
use sanlock_core::rv::{
    SANLK_RINDEX_DIFF, SANLK_RINDEX_LOCKSPACE, SANLK_RINDEX_MAGIC, SANLK_RINDEX_OFFSET,
    SANLK_RINDEX_VERSION,
};

use crate::direct::init;
use crate::wire::{WireRentry, WireRindex};

const ENOENT: i32 = -2;
const EINVAL: i32 = -22;
/// -EMSGSIZE: a read past the end of the device.
const EMSGSIZE: i32 = -90;

/// SANLK_RXUP_ADD / SANLK_RXUP_REM (update's cmd_flags).
pub const RXUP_ADD: u32 = 0x1_0000;
/// See [`RXUP_ADD`].
pub const RXUP_REM: u32 = 0x2_0000;

/// The index's disk, opened.
pub fn open(rx: &WireRindex) -> Result<Disk, i32> {
    Disk::open(&rx.disk.path).map_err(|e| e.rv())
}

/// format: the header and zeroed entries (one align-size write), then a fresh `rindex_lease`.
/// The geometry comes from the flags, else the disk's sector size (legacy align).
pub fn format(rx: &WireRindex) -> i32 {
    let disk = match open(rx) {
        Ok(d) => d,
        Err(rv) => return rv,
    };
    let geometry = match crate::server::disk_ops::given_geometry(rx.flags) {
        Ok(Some(g)) => g,
        Ok(None) => match disk.sector_size() {
            Some(ss) => Geometry::legacy(ss),
            None => return EINVAL,
        },
        Err(rv) => return rv,
    };
    let header = RindexHeader::format(
        geometry,
        rx.lockspace_name,
        rx.max_resources,
        rx.disk.offset,
    );
    let mut area = vec![0u8; geometry.area_bytes() as usize];
    area[..RINDEX_HEADER_SIZE].copy_from_slice(&header.encode());
    if let Err(e) = disk.write(rx.disk.offset, &AlignedBuf::from_slice(&area)) {
        return e.rv();
    }
    init_lease(
        rx,
        &header,
        Name::truncated(b"rindex_lease"),
        header.rindex_lease_offset(),
        0,
        false,
    )
}

/// Reads and checks the header (magic, major version, lockspace, offset, in sanlock's order),
/// reading `sector` bytes: the lockspace's sector size, or 4096 without one.
pub fn read_header(
    disk: &Disk,
    rx: &WireRindex,
    sector: Option<SectorSize>,
) -> Result<RindexHeader, i32> {
    let len = sector.map_or(4096, SectorSize::as_usize);
    let bytes = disk.read(rx.disk.offset, len).map_err(|e| e.rv())?;
    let header =
        RindexHeader::decode(bytes.as_ref(), rx.disk.offset).map_err(|e| match e.problem {
            Problem::Version { .. } => SANLK_RINDEX_VERSION,
            _ => SANLK_RINDEX_MAGIC,
        })?;
    if !header.lockspace_name.matches(&rx.lockspace_name) {
        return Err(SANLK_RINDEX_LOCKSPACE);
    }
    if header.rx_offset != rx.disk.offset {
        return Err(SANLK_RINDEX_OFFSET);
    }
    Ok(header)
}

/// The whole index area (align bytes from the header).
pub fn read_area(disk: &Disk, header: &RindexHeader) -> Result<Vec<u8>, i32> {
    let bytes = disk
        .read(header.rx_offset, header.geometry.area_bytes() as usize)
        .map_err(|e| e.rv())?;
    Ok(bytes.as_ref().to_vec())
}

fn write_entry(
    disk: &Disk,
    header: &RindexHeader,
    area: &[u8],
    i: u32,
    entry: &RindexEntry,
) -> Result<(), i32> {
    let (offset, sector) = header.sector_with(area, i, entry);
    disk.write(offset, &AlignedBuf::from_slice(&sector))
        .map_err(|e| e.rv())
}

/// A lease at `offset` in the index's geometry: fresh, or cleared (§5.8).
fn init_lease(
    rx: &WireRindex,
    header: &RindexHeader,
    name: Name,
    offset: u64,
    num_hosts: u64,
    clear: bool,
) -> i32 {
    init::write_resource(
        rx.lockspace_name,
        name,
        &[(rx.disk.path.as_slice(), offset)],
        Some(header.geometry),
        num_hosts,
        clear,
    )
}

/// The offset named in an entry must be a multiple of the index's align size.
fn check_offset(header: &RindexHeader, offset: u64) -> Result<(), i32> {
    if offset != 0 && offset % header.geometry.area_bytes() != 0 {
        return Err(SANLK_RINDEX_OFFSET);
    }
    Ok(())
}

/// lookup: by name → its offset; by offset → the name recorded there; neither → the first
/// free slot's offset; both → SANLK_RINDEX_DIFF unless they agree.
pub fn lookup(disk: &Disk, header: &RindexHeader, want: &WireRentry) -> (i32, WireRentry) {
    let area = match read_area(disk, header) {
        Ok(a) => a,
        Err(rv) => return (rv, WireRentry::default()),
    };
    if let Err(rv) = check_offset(header, want.offset) {
        return (rv, WireRentry::default());
    }
    let found = |name: Name, offset| WireRentry {
        name,
        offset,
        flags: 0,
    };
    match (want.name.is_empty(), want.offset) {
        (true, 0) => match header.find_free(&area) {
            Some(i) => (0, found(Name::EMPTY, header.lease_offset(i))),
            None => (ENOENT, WireRentry::default()),
        },
        (false, 0) => match header.find_name(&area, &want.name) {
            Some(i) => (0, found(want.name, header.lease_offset(i))),
            None => (ENOENT, WireRentry::default()),
        },
        (by_offset_only, offset) => {
            let Some(i) = header.index_of_lease(offset) else {
                return (SANLK_RINDEX_OFFSET, WireRentry::default());
            };
            let e = header.entry(&area, i);
            let rv = if !by_offset_only && !e.name.matches(&want.name) {
                SANLK_RINDEX_DIFF
            } else {
                0
            };
            (rv, found(e.name, offset))
        }
    }
}

/// update: writes (RXUP_ADD, name and offset needed) or clears (RXUP_REM, offset needed) the
/// entry of a lease offset; no lease I/O.
pub fn update(
    disk: &Disk,
    header: &RindexHeader,
    want: &WireRentry,
    flags: u32,
) -> (i32, WireRentry) {
    let area = match read_area(disk, header) {
        Ok(a) => a,
        Err(rv) => return (rv, WireRentry::default()),
    };
    if let Err(rv) = check_offset(header, want.offset) {
        return (rv, WireRentry::default());
    }
    let remove = flags & RXUP_REM != 0 && want.offset != 0;
    let add = !remove && flags & RXUP_ADD != 0 && !want.name.is_empty() && want.offset != 0;
    if !remove && !add {
        return (EINVAL, WireRentry::default());
    }
    let Some(i) = header.index_of_lease(want.offset) else {
        return (SANLK_RINDEX_OFFSET, WireRentry::default());
    };
    let entry = if remove {
        RindexEntry::default()
    } else {
        RindexEntry {
            res_offset: want.offset,
            name: want.name,
            ..RindexEntry::default()
        }
    };
    if let Err(rv) = write_entry(disk, header, &area, i, &entry) {
        return (rv, WireRentry::default());
    }
    let out = if remove {
        WireRentry::default()
    } else {
        WireRentry {
            name: want.name,
            offset: want.offset,
            flags: 0,
        }
    };
    (0, out)
}

/// create (locked): the first free entry gets a fresh lease named `name`, then the entry.
/// Duplicate names are not refused, as in sanlock.
pub fn create_locked(
    disk: &Disk,
    rx: &WireRindex,
    header: &RindexHeader,
    name: Name,
    num_hosts: u64,
) -> (i32, WireRentry) {
    let area = match read_area(disk, header) {
        Ok(a) => a,
        Err(rv) => return (rv, WireRentry::default()),
    };
    let Some(i) = header.find_free(&area) else {
        return (ENOENT, WireRentry::default());
    };
    let offset = header.lease_offset(i);
    let rv = init_lease(rx, header, name, offset, num_hosts, false);
    if rv < 0 {
        return (rv, WireRentry::default());
    }
    let entry = RindexEntry {
        res_offset: offset,
        name,
        ..RindexEntry::default()
    };
    if let Err(rv) = write_entry(disk, header, &area, i, &entry) {
        return (rv, WireRentry::default());
    }
    // 3.8.5 fills in only the offset of the entry it sends back; the name stays zero.
    (
        0,
        WireRentry {
            name: Name::EMPTY,
            offset,
            flags: 0,
        },
    )
}

/// delete (locked): the named entry is zeroed, then its lease is cleared.
pub fn delete_locked(
    disk: &Disk,
    rx: &WireRindex,
    header: &RindexHeader,
    want: &WireRentry,
) -> (i32, WireRentry) {
    let area = match read_area(disk, header) {
        Ok(a) => a,
        Err(rv) => return (rv, WireRentry::default()),
    };
    let Some(i) = header.find_name(&area, &want.name) else {
        return (ENOENT, WireRentry::default());
    };
    if let Err(rv) = write_entry(disk, header, &area, i, &RindexEntry::default()) {
        return (rv, WireRentry::default());
    }
    let rv = init_lease(rx, header, want.name, header.lease_offset(i), 0, true);
    let out = WireRentry {
        name: want.name,
        offset: 0,
        flags: 0,
    };
    (rv.min(0), out)
}

/// rebuild (locked): every lease slot is read until the end of the device; each paxos leader
/// of this lockspace becomes an entry; the whole area is written once.
pub fn rebuild_locked(disk: &Disk, header: &RindexHeader) -> i32 {
    let mut area = match read_area(disk, header) {
        Ok(a) => a,
        Err(rv) => return rv,
    };
    let ss = header.geometry.sector_size().as_usize();
    area[ss..].fill(0);
    for i in 0..header.searched() {
        let offset = header.lease_offset(i);
        let sector = match disk.read(offset, ss) {
            Ok(b) => b,
            Err(e) if e.rv() == EMSGSIZE => break,
            Err(e) => return e.rv(),
        };
        let Ok(raw) = RawLeader::parse(sector.as_ref()) else {
            continue;
        };
        let is_lease = raw.magic == LeaderKind::Paxos.magic()
            && raw.checksum == raw.computed_checksum()
            && raw.space_name.matches(&header.lockspace_name);
        if is_lease {
            let entry = RindexEntry {
                res_offset: offset,
                name: raw.resource_name,
                ..RindexEntry::default()
            };
            let (_, sector) = header.sector_with(&area, i, &entry);
            let at = (header.entry_offset(i) - header.rx_offset) as usize / ss * ss;
            area[at..at + ss].copy_from_slice(&sector);
        }
    }
    match disk.write(header.rx_offset, &AlignedBuf::from_slice(&area)) {
        Ok(()) => 0,
        Err(e) => e.rv(),
    }
}
