//! `direct init -s LOCKSPACE [-o t] [-Z -A]` and `direct init -r RESOURCE [-n N] [-z 1] [-Z -A]`
//! (main.c `do_direct_init`, delta_lease.c `delta_lease_init`, paxos_lease.c
//! `paxos_lease_init`).
//!
//! Before any write we check what sanlock does not: the offset is a multiple of the align size,
//! the area fits on a block device, and the device accepts the writes: a lockspace's commit is
//! one lease sector written alone, so its sectors may not be smaller than the device's; a
//! resource is one write of its whole area, which a device with larger sectors takes (as
//! 3.8.5's does). A refusal writes nothing.

use sanlock_core::ondisk::{lockspace_init, resource_init, Geometry, Name, ResourceInit};

use super::{geometry_from_options, monotime_s, EINVAL, ENODEV};
use crate::cli::locators::ResourceArg;
use crate::cli::options::Options;
use sanlock_backends::disk::{AlignedBuf, Disk, DiskKind};

/// -ENOSPC: the area does not fit on the device.
const ENOSPC: i32 = -28;

/// Runs `direct init` and prints `init done <rv>`.
pub fn run(options: &Options, out: &mut Vec<u8>) -> i32 {
    let rv = if !options.lockspace.path.is_empty() {
        init_lockspace(options)
    } else if let Some(res) = options.resources.first() {
        init_resource(options, res)
    } else {
        EINVAL
    };
    out.extend_from_slice(format!("init done {rv}\n").as_bytes());
    rv
}

fn init_lockspace(options: &Options) -> i32 {
    let ls = &options.lockspace;
    let given = match geometry_from_options(options) {
        Ok(given) => given,
        Err(rv) => return rv,
    };
    // delta_lease_init stores the int io_timeout in a u16 field.
    write_lockspace(
        &ls.path,
        ls.offset,
        ls.name,
        given,
        options.io_timeout_arg as u16,
    )
}

/// Writes a fresh lockspace area (`direct init -s`, and the daemon's WRITE_LOCKSPACE): the
/// geometry given, else the device's sector size with its legacy align. Refuses, writing
/// nothing, an area that is misaligned, does not fit a block device or has sectors smaller
/// than the device's.
pub fn write_lockspace(
    path: &[u8],
    offset: u64,
    name: Name,
    given: Option<Geometry>,
    io_timeout: u16,
) -> i32 {
    // sanlock reports any open failure of a lockspace as -ENODEV.
    let disk = match Disk::open(path) {
        Ok(disk) => disk,
        Err(e) => {
            eprintln!("sanlock: {e}");
            return ENODEV;
        }
    };
    let geometry = match given.or_else(|| disk.sector_size().map(Geometry::legacy)) {
        Some(geometry) => geometry,
        None => {
            return refuse(
                &disk,
                "its logical sector size is neither 512 nor 4096",
                EINVAL,
            )
        }
    };
    if let Err(rv) = check_area(&disk, offset, geometry, Writes::CommitSector, &name) {
        return rv;
    }
    let init = lockspace_init(geometry, name, io_timeout);
    let result = disk
        .write(offset, &AlignedBuf::from_slice(&init.area))
        .and_then(|()| disk.write(offset, &AlignedBuf::from_slice(&init.commit_sector)));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sanlock: {e}");
            e.rv()
        }
    }
}

fn init_resource(options: &Options, res: &ResourceArg) -> i32 {
    if res.disks.is_empty() || res.disks[0].path.is_empty() {
        return ENODEV;
    }
    let given = match geometry_from_options(options) {
        Ok(given) => given,
        Err(rv) => return rv,
    };
    // paxos_lease_init keeps n only when 1 <= n <= max_hosts; a negative -n would be stored as
    // a huge u64 by 3.8.5, which no reader could use, so it means max_hosts here.
    let num_hosts = u64::try_from(options.num_hosts).unwrap_or(0);
    let disks: Vec<(&[u8], u64)> = res
        .disks
        .iter()
        .map(|d| (d.path.as_slice(), d.offset))
        .collect();
    write_resource(
        res.lockspace_name,
        res.name,
        &disks,
        given,
        num_hosts,
        options.clear,
    )
}

/// Writes a fresh (or, with `clear`, a cleared) resource lease on every disk (`direct init -r`,
/// and the daemon's WRITE_RESOURCE). Every disk must open, and every area pass the checks of
/// [`write_lockspace`], before anything is written.
pub fn write_resource(
    lockspace_name: Name,
    name: Name,
    disk_areas: &[(&[u8], u64)],
    given: Option<Geometry>,
    num_hosts: u64,
    clear: bool,
) -> i32 {
    let mut disks = Vec::with_capacity(disk_areas.len());
    for (path, _) in disk_areas {
        match Disk::open(path) {
            Ok(disk) => disks.push(disk),
            Err(e) => {
                // Every disk must open before anything is written; sanlock would write the
                // ones it could open.
                eprintln!("sanlock: {e}");
                return e.rv();
            }
        }
    }
    let geometry = match given.or_else(|| disks[0].sector_size().map(Geometry::legacy)) {
        Some(geometry) => geometry,
        None => {
            return refuse(
                &disks[0],
                "its logical sector size is neither 512 nor 4096",
                EINVAL,
            )
        }
    };
    for (disk, &(_, offset)) in disks.iter().zip(disk_areas) {
        if let Err(rv) = check_area(disk, offset, geometry, Writes::WholeArea, &name) {
            return rv;
        }
    }
    let area = AlignedBuf::from_slice(&resource_init(&ResourceInit {
        geometry,
        space_name: lockspace_name,
        resource_name: name,
        num_hosts,
        clear_at_s: clear.then(monotime_s),
    }));
    for (disk, &(_, offset)) in disks.iter().zip(disk_areas) {
        if let Err(e) = disk.write(offset, &area) {
            eprintln!("sanlock: {e}");
            return e.rv();
        }
    }
    0
}

/// How an area's initialisation reaches the disk, which decides the sector sizes it needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// The lockspace: the whole area, then its first sector alone to commit it.
    CommitSector,
    /// The resource: its whole area in one write.
    WholeArea,
}

/// Refuses an area that would not be a well-formed lease on this disk, before any write.
fn check_area(
    disk: &Disk,
    offset: u64,
    geometry: Geometry,
    writes: Writes,
    name: &Name,
) -> Result<(), i32> {
    let area = geometry.area_bytes();
    let label = match writes {
        Writes::CommitSector => format!("lockspace {name}"),
        Writes::WholeArea => format!("resource {name}"),
    };
    if offset % area != 0 {
        return Err(refuse(
            disk,
            &format!(
                "{label}: offset {offset} is not a multiple of the align size {area} \
                 (geometry {geometry})"
            ),
            EINVAL,
        ));
    }
    if let DiskKind::Block {
        logical_sector,
        size,
    } = disk.kind()
    {
        let sector = geometry.sector_size().bytes();
        let smallest_write = match writes {
            Writes::CommitSector => u64::from(sector),
            Writes::WholeArea => area,
        };
        if smallest_write % u64::from(logical_sector) != 0 {
            return Err(refuse(
                disk,
                &format!(
                    "{label}: the device has {logical_sector}-byte logical sectors, \
                     the lease {sector}-byte ones"
                ),
                EINVAL,
            ));
        }
        if logical_sector > sector {
            // 3.8.5 writes it too (its python suite marks the refusal it expected xfail); no
            // host can read the lease there with its own sector size, so say so.
            eprintln!(
                "sanlock: {label}: written with {sector}-byte sectors on a device of \
                 {logical_sector}-byte ones; it cannot be read there with its own sector size"
            );
        }
        if offset.checked_add(area).is_none_or(|end| end > size) {
            return Err(refuse(
                disk,
                &format!(
                    "{label}: the area {offset}..{} does not fit on the device of {size} bytes",
                    offset.saturating_add(area)
                ),
                ENOSPC,
            ));
        }
    }
    Ok(())
}

fn refuse(disk: &Disk, why: &str, rv: i32) -> i32 {
    eprintln!(
        "sanlock: init refused for {}: {why}; nothing was written",
        String::from_utf8_lossy(disk.path())
    );
    rv
}
