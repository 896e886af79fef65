//! Requests that read or write a lease area once and are done: WRITE/READ_LOCKSPACE,
//! WRITE/READ_RESOURCE, READ_RESOURCE_OWNERS, ALIGN (wire.md §4.16-4.21), and the geometry probe
//! that add_lockspace makes before the core takes over. They block; the daemon runs
//! them on a blocking thread, off its event loop.

use sanlock_backends::disk::{Disk, DiskKind};
use sanlock_core::ondisk::leader::LEADER_RECORD_SIZE;
use sanlock_core::ondisk::{DblockSector, Geometry, LeaderKind, Name, RawLeader, SectorSize};
use sanlock_core::rv::SANLK_LEADER_MAGIC;
use sanlock_core::HostId;

use crate::direct::init;
use crate::wire::payload::{RES_SHARED, SIZE_FLAGS};
use crate::wire::{WireHost, WireLockspace, WireResource};

const EINVAL: i32 = -22;
const ENODEV: i32 = -19;
const ERANGE: i32 = -34;

/// The geometry a request's flags give: `Ok(None)` for neither bit, -1 when only one of the
/// sector and align bits is set (sizeflags.c), -EINVAL for a pair that is no geometry.
pub fn given_geometry(flags: u32) -> Result<Option<Geometry>, i32> {
    use sanlock_core::ondisk::AlignSize;
    let sector = SectorSize::from_api_flags(flags);
    let align = AlignSize::from_api_flags(flags);
    match (sector, align) {
        (None, None) => Ok(None),
        (Some(_), None) | (None, Some(_)) => Err(-1),
        (Some(_), Some(_)) => Geometry::from_api_flags(flags).map_err(|_| EINVAL),
    }
}

/// The API flag bits of a geometry (SECTOR* | ALIGN*).
pub fn geometry_flags(g: Geometry) -> u32 {
    g.sector_size().api_flag() | g.align_size().api_flag()
}

/// WRITE_LOCKSPACE: `io_timeout` 0 means 10. An empty path or a failed open is -ENODEV.
pub fn write_lockspace(ls: &WireLockspace, io_timeout: u32) -> i32 {
    if ls.disk.path.is_empty() {
        return ENODEV;
    }
    let given = match given_geometry(ls.flags) {
        Ok(g) => g,
        Err(rv) => return rv,
    };
    let io_timeout = if io_timeout == 0 { 10 } else { io_timeout };
    init::write_lockspace(
        &ls.disk.path,
        ls.disk.offset,
        ls.name,
        given,
        io_timeout as u16,
    )
}

/// WRITE_RESOURCE: num_hosts comes from `data` (§4.19); `clear` writes a cleared lease.
pub fn write_resource(res: &WireResource, num_hosts: u32, clear: bool) -> i32 {
    if res.num_disks == 0 || res.num_disks > 4 {
        return ERANGE;
    }
    let given = match given_geometry(res.flags) {
        Ok(g) => g,
        Err(rv) => return rv,
    };
    let disks: Vec<(&[u8], u64)> = res
        .disks
        .iter()
        .map(|d| (d.path.as_slice(), d.offset))
        .collect();
    init::write_resource(
        res.lockspace_name,
        res.name,
        &disks,
        given,
        u64::from(num_hosts),
        clear,
    )
}

/// The first leader of an area, and the geometry it and the device agree on. `given` must
/// match what is on disk (-EINVAL), and a block device's sectors must not be larger than the
/// lease's (-EINVAL).
fn read_first_leader(
    disk: &Disk,
    offset: u64,
    given: Option<Geometry>,
) -> Result<(RawLeader, Geometry), i32> {
    let device_sector = match disk.kind() {
        DiskKind::File => SectorSize::Bytes512,
        DiskKind::Block { .. } => disk.sector_size().ok_or(EINVAL)?,
    };
    let read_len = given.map_or(device_sector, |g| g.sector_size()).as_usize();
    if given.is_some_and(|g| g.sector_size().bytes() < device_sector.bytes()) {
        return Err(EINVAL);
    }
    let buf = disk.read(offset, read_len).map_err(|e| e.rv())?;
    let raw = RawLeader::parse(&buf.as_ref()[..LEADER_RECORD_SIZE]).map_err(|_| EINVAL)?;
    let geometry = match raw.geometry() {
        Ok(g) => g,
        // No record here: the caller's magic check reports it.
        Err(_) => return Ok((raw, given.unwrap_or(Geometry::legacy(device_sector)))),
    };
    if given.is_some_and(|g| g != geometry)
        || geometry.sector_size().bytes() < device_sector.bytes()
    {
        return Err(EINVAL);
    }
    Ok((raw, geometry))
}

fn open(path: &[u8], open_rv: impl Fn(i32) -> i32) -> Result<Disk, i32> {
    if path.is_empty() {
        return Err(ENODEV);
    }
    Disk::open(path).map_err(|e| open_rv(e.rv()))
}

/// READ_LOCKSPACE: (result, io_timeout from disk, the lockspace to send back). host_id 0
/// means 1; flags are replaced by the geometry on disk.
pub fn read_lockspace(ls: &WireLockspace) -> (i32, u32, WireLockspace) {
    let mut out = ls.clone();
    if out.host_id == 0 {
        out.host_id = 1;
    }
    let run = || -> Result<(u32, Name, Geometry), i32> {
        let given = given_geometry(ls.flags).map_err(|_| EINVAL)?;
        let disk = open(&ls.disk.path, |_| ENODEV)?;
        let (first, geometry) = read_first_leader(&disk, ls.disk.offset, given)?;
        if first.magic != LeaderKind::Delta.magic() {
            return Err(SANLK_LEADER_MAGIC);
        }
        let host = HostId::new(out.host_id)
            .filter(|&h| geometry.contains_host(h))
            .ok_or(EINVAL)?;
        let at = ls.disk.offset + geometry.sector_offset(geometry.delta_sector(host));
        let buf = disk
            .read(at, geometry.sector_size().as_usize())
            .map_err(|e| e.rv())?;
        let raw = RawLeader::parse(&buf.as_ref()[..LEADER_RECORD_SIZE]).map_err(|_| EINVAL)?;
        raw.check_as_sanlock(LeaderKind::Delta, &first.space_name, None, None)?;
        Ok((u32::from(raw.io_timeout), raw.space_name, geometry))
    };
    match run() {
        Ok((io_timeout, name, geometry)) => {
            out.name = name;
            out.flags = geometry_flags(geometry);
            (0, io_timeout, out)
        }
        Err(rv) => (rv, 0, out),
    }
}

/// Reads and checks a resource's leader as READ_RESOURCE does: empty names are taken from
/// disk, given ones must match (-226/-227).
fn read_resource_leader(res: &WireResource) -> Result<(Disk, RawLeader, Geometry), i32> {
    if res.num_disks == 0 || res.num_disks > 4 || res.disks.is_empty() {
        return Err(ERANGE);
    }
    let given = given_geometry(res.flags).map_err(|_| EINVAL)?;
    let d = &res.disks[0];
    let disk = open(&d.path, |rv| rv)?;
    let (raw, geometry) = read_first_leader(&disk, d.offset, given)?;
    let space = if res.lockspace_name.is_empty() {
        raw.space_name
    } else {
        res.lockspace_name
    };
    let name = if res.name.is_empty() {
        raw.resource_name
    } else {
        res.name
    };
    raw.check_as_sanlock(LeaderKind::Paxos, &space, Some(&name), None)?;
    Ok((disk, raw, geometry))
}

/// READ_RESOURCE: (result, the resource to send back, always).
pub fn read_resource(res: &WireResource) -> (i32, WireResource) {
    let mut out = res.clone();
    out.disks.clear();
    match read_resource_leader(res) {
        Ok((_, raw, geometry)) => {
            out.lockspace_name = raw.space_name;
            out.name = raw.resource_name;
            out.lver = raw.lver;
            out.flags = (out.flags & !SIZE_FLAGS & !RES_SHARED) | geometry_flags(geometry);
            (0, out)
        }
        Err(rv) => (rv, out),
    }
}

/// READ_RESOURCE_OWNERS: (result, the resource as sent with lver and SHARED filled in, the
/// owners: the EX owner when the leader's timestamp is set, and every SH holder).
pub fn read_resource_owners(res: &WireResource) -> (i32, WireResource, Vec<WireHost>) {
    let mut out = res.clone();
    out.disks.clear();
    let run = || -> Result<(u64, bool, Vec<WireHost>), i32> {
        let (disk, raw, geometry) = read_resource_leader(res)?;
        let mut owners = Vec::new();
        if raw.timestamp != 0 && raw.owner_id != 0 {
            owners.push(WireHost {
                host_id: raw.owner_id,
                generation: raw.owner_generation,
                timestamp: raw.timestamp,
                ..WireHost::default()
            });
        }
        let hosts = raw.num_hosts.clamp(1, u64::from(geometry.max_hosts()));
        let ss = geometry.sector_size().as_usize();
        let first = geometry.sector_offset(geometry.dblock_sector(HostId::new(1).unwrap()));
        let buf = disk
            .read(res.disks[0].offset + first, hosts as usize * ss)
            .map_err(|e| e.rv())?;
        let mut shared = false;
        for (i, sector) in buf.as_ref().chunks(ss).enumerate() {
            let Ok(s) = DblockSector::decode(sector, first + (i * ss) as u64) else {
                continue;
            };
            if s.mode.shared {
                shared = true;
                owners.push(WireHost {
                    host_id: i as u64 + 1,
                    generation: s.mode.generation.0,
                    ..WireHost::default()
                });
            }
        }
        Ok((raw.lver, shared, owners))
    };
    match run() {
        Ok((lver, shared, owners)) => {
            out.lver = lver;
            if shared {
                out.flags |= RES_SHARED;
            }
            (0, out, owners)
        }
        Err(rv) => (rv, out, Vec::new()),
    }
}

/// ALIGN: the alignment in bytes for the disk's sector size (1 MiB for 512, 8 MiB for 4096;
/// a file counts as 512), -ENODEV for an empty path or a failed open.
pub fn align(path: &[u8]) -> i32 {
    let disk = match open(path, |_| ENODEV) {
        Ok(d) => d,
        Err(rv) => return rv,
    };
    let sector = match disk.kind() {
        DiskKind::File => Some(SectorSize::Bytes512),
        DiskKind::Block { .. } => disk.sector_size(),
    };
    match sector {
        Some(s) => Geometry::legacy(s).area_bytes() as i32,
        None => EINVAL,
    }
}

/// The geometry of the lockspace at `path`/`offset`, for add_lockspace: -ENODEV if it will
/// not open, -223 without a delta lease record there.
pub fn probe_lockspace(path: &[u8], offset: u64) -> Result<Geometry, i32> {
    let disk = open(path, |_| ENODEV)?;
    let (raw, geometry) = read_first_leader(&disk, offset, None)?;
    if raw.magic != LeaderKind::Delta.magic() {
        return Err(SANLK_LEADER_MAGIC);
    }
    Ok(geometry)
}
