//! Requests that read or write a lease area once and are done: WRITE/READ_LOCKSPACE,
//! WRITE/READ_RESOURCE, READ_RESOURCE_OWNERS, ALIGN (wire.md §4.16-4.21), and the geometry probe
//! that add_lockspace makes before the core takes over. They block; the daemon runs
//! them on a blocking thread, off its event loop.

use sanlock_backends::disk::{AlignedBuf, Disk, DiskKind};
use sanlock_core::ondisk::dblock::{MBLOCK_OFFSET, MBLOCK_SHARED};
use sanlock_core::ondisk::leader::LEADER_RECORD_SIZE;
use sanlock_core::ondisk::{AlignSize, Geometry, LeaderKind, RawLeader, RawModeBlock, SectorSize};
use sanlock_core::rv::{
    SANLK_ADDLS_SIZES, SANLK_LEADER_MAGIC, SANLK_LEADER_SECTORSIZE, SANLK_LEADER_VERSION,
};

use crate::direct::init;
use crate::wire::payload::{RES_SHARED, SIZE_FLAGS};
use crate::wire::{WireHost, WireLockspace, WireResource};

const EINVAL: i32 = -22;
const ENODEV: i32 = -19;
const ERANGE: i32 = -34;

/// The geometry a writer's flags give: `Ok(None)` for neither bit, -1 (-EPERM) when only one
/// of the sector and align bits is set or the pair is no geometry, as sizeflags.c answers.
pub fn given_geometry(flags: u32) -> Result<Option<Geometry>, i32> {
    let sector = SectorSize::from_api_flags(flags);
    let align = AlignSize::from_api_flags(flags);
    match (sector, align) {
        (None, None) => Ok(None),
        (Some(_), None) | (None, Some(_)) => Err(-1),
        (Some(_), Some(_)) => Geometry::from_api_flags(flags).map_err(|_| -1),
    }
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

fn open(path: &[u8], open_rv: impl Fn(i32) -> i32) -> Result<Disk, i32> {
    if path.is_empty() {
        return Err(ENODEV);
    }
    Disk::open(path).map_err(|e| open_rv(e.rv()))
}

/// The sector and align sizes a read request's flags name, each on its own: readers take them
/// as hints for what to read, never as a geometry to check the pair of (cmd.c passes each
/// through as it is).
#[derive(Clone, Copy)]
struct Hints {
    sector: Option<SectorSize>,
    align: Option<AlignSize>,
}

impl Hints {
    fn of(flags: u32) -> Self {
        Hints {
            sector: SectorSize::from_api_flags(flags),
            align: AlignSize::from_api_flags(flags),
        }
    }
}

/// The sizes a leader names: its sector size when 512 or 4096, and its align flag or, without
/// one, the legacy align of that sector size.
fn leader_sizes(raw: &RawLeader) -> (Option<SectorSize>, Option<AlignSize>) {
    let sector = SectorSize::from_bytes(u64::from(raw.sector_size));
    let align = AlignSize::from_leader_flags(raw.flags)
        .or_else(|| sector.map(|s| Geometry::legacy(s).align_size()));
    (sector, align)
}

/// The API size flags of a leader's sizes (none for a size it does not name).
fn leader_size_flags(raw: &RawLeader) -> u32 {
    let (sector, align) = leader_sizes(raw);
    sector.map_or(0, SectorSize::api_flag) | align.map_or(0, AlignSize::api_flag)
}

fn leader_at(disk: &Disk, offset: u64, len: usize) -> Result<RawLeader, i32> {
    let buf = disk.read(offset, len).map_err(|e| e.rv())?;
    RawLeader::parse(&buf.as_ref()[..LEADER_RECORD_SIZE]).map_err(|_| EINVAL)
}

/// READ_LOCKSPACE: (result, io_timeout from disk, the lockspace to send back). host_id 0
/// means 1. The record read is host_id's sector counted in the hinted sector size, else in
/// the one the first leader names; it is checked for magic, version, name and checksum only,
/// as sanlock does, and on success the flags become the sizes it names.
pub fn read_lockspace(ls: &WireLockspace) -> (i32, u32, WireLockspace) {
    let mut out = ls.clone();
    if out.host_id == 0 {
        out.host_id = 1;
    }
    let run = || -> Result<RawLeader, i32> {
        let disk = open(&ls.disk.path, |_| ENODEV)?;
        let sector = match Hints::of(ls.flags).sector {
            Some(s) => s,
            None => {
                // The first 4 KiB hold one 4K record or eight 512-byte ones: either way the
                // first leader names the sector size.
                let first = leader_at(&disk, ls.disk.offset, 4096)?;
                if first.magic != LeaderKind::Delta.magic() {
                    return Err(SANLK_LEADER_MAGIC);
                }
                if first.version & 0xFFFF_0000 != LeaderKind::Delta.version() & 0xFFFF_0000 {
                    return Err(SANLK_LEADER_VERSION);
                }
                leader_sizes(&first).0.ok_or(EINVAL)?
            }
        };
        let at = (out.host_id - 1)
            .checked_mul(u64::from(sector.bytes()))
            .and_then(|o| o.checked_add(ls.disk.offset))
            .ok_or(EINVAL)?;
        let raw = leader_at(&disk, at, sector.as_usize())?;
        let name = if ls.name.is_empty() {
            raw.space_name
        } else {
            ls.name
        };
        raw.check_as_sanlock(LeaderKind::Delta, &name, None, None)?;
        Ok(raw)
    };
    match run() {
        Ok(raw) => {
            out.name = raw.space_name;
            out.flags = (out.flags & !SIZE_FLAGS) | leader_size_flags(&raw);
            (0, u32::from(raw.io_timeout), out)
        }
        Err(rv) => (rv, 0, out),
    }
}

/// READ_RESOURCE: (result, the resource to send back, always). One leader read in the hinted
/// sector size (else 4 KiB, which holds the leader whatever the lease's); empty names are
/// taken from disk, given ones must match (-226/-227). On success the size flags become the
/// ones the leader names.
pub fn read_resource(res: &WireResource) -> (i32, WireResource) {
    let mut out = res.clone();
    out.disks.clear();
    let run = || -> Result<RawLeader, i32> {
        if res.num_disks == 0 || res.num_disks > 4 || res.disks.is_empty() {
            return Err(ERANGE);
        }
        let d = &res.disks[0];
        let disk = open(&d.path, |rv| rv)?;
        let len = Hints::of(res.flags)
            .sector
            .map_or(4096, SectorSize::as_usize);
        let raw = leader_at(&disk, d.offset, len)?;
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
        Ok(raw)
    };
    match run() {
        Ok(raw) => {
            out.lockspace_name = raw.space_name;
            out.name = raw.resource_name;
            out.lver = raw.lver;
            if leader_sizes(&raw).0.is_some() {
                out.flags = (out.flags & !SIZE_FLAGS) | leader_size_flags(&raw);
            }
            (0, out)
        }
        Err(rv) => (rv, out),
    }
}

/// The whole area of a resource lease and its leader, read in the hinted sizes, else in the
/// smaller sector size with its legacy align and then again in the sizes the leader names.
/// A hint the leader contradicts is -EINVAL, as is a leader that names no sizes.
fn read_area(disk: &Disk, offset: u64, hints: Hints) -> Result<(AlignedBuf, RawLeader, u64), i32> {
    let mut sector = hints.sector.unwrap_or(SectorSize::Bytes512);
    let mut align = hints
        .align
        .unwrap_or_else(|| Geometry::legacy(sector).align_size());
    // Two reads at most: the guess, then the leader's own sizes.
    for _ in 0..2 {
        let area = disk
            .read(offset, align.bytes() as usize)
            .map_err(|e| e.rv())?;
        let raw = RawLeader::parse(&area.as_ref()[..LEADER_RECORD_SIZE]).map_err(|_| EINVAL)?;
        let (on_disk_sector, on_disk_align) = leader_sizes(&raw);
        if hints.sector.is_some_and(|s| s.bytes() != raw.sector_size)
            || hints.align.is_some_and(|a| Some(a) != on_disk_align)
        {
            return Err(EINVAL);
        }
        let (Some(s), Some(a)) = (on_disk_sector, on_disk_align) else {
            return Err(EINVAL);
        };
        if (s, a) == (sector, align) {
            return Ok((area, raw, u64::from(s.bytes())));
        }
        (sector, align) = (s, a);
    }
    Err(EINVAL)
}

/// READ_RESOURCE_OWNERS: (result, the resource as sent with lver and SHARED filled in, the
/// owners: the EX owner when the leader's timestamp is set, then every other host whose mode
/// block says SHARED). Names are compared as given, never taken from disk.
pub fn read_resource_owners(res: &WireResource) -> (i32, WireResource, Vec<WireHost>) {
    let mut out = res.clone();
    out.disks.clear();
    let run = || -> Result<(u64, bool, Vec<WireHost>), i32> {
        if res.num_disks == 0 || res.num_disks > 4 || res.disks.is_empty() {
            return Err(ERANGE);
        }
        let d = &res.disks[0];
        let disk = open(&d.path, |rv| rv)?;
        let (area, raw, ss) = read_area(&disk, d.offset, Hints::of(res.flags))?;
        raw.check_as_sanlock(
            LeaderKind::Paxos,
            &res.lockspace_name,
            Some(&res.name),
            None,
        )?;
        let mut owners = Vec::new();
        let ex_owner = (raw.timestamp != 0 && raw.owner_id != 0).then_some(raw.owner_id);
        if let Some(owner) = ex_owner {
            owners.push(WireHost {
                host_id: owner,
                generation: raw.owner_generation,
                timestamp: raw.timestamp,
                ..WireHost::default()
            });
        }
        // Mode blocks of the first num_hosts dblock sectors, within the area read.
        let area = area.as_ref();
        let dblocks = raw.num_hosts.min(area.len() as u64 / ss - 2);
        let mut shared = false;
        for i in 0..dblocks {
            let at = ((2 + i) * ss) as usize + MBLOCK_OFFSET;
            let Ok(mode) = RawModeBlock::parse(&area[at..]) else {
                continue;
            };
            if mode.flags & MBLOCK_SHARED == 0 {
                continue;
            }
            shared = true;
            if ex_owner != Some(i + 1) {
                owners.push(WireHost {
                    host_id: i + 1,
                    generation: mode.generation,
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

/// The geometry of the lockspace at `path`/`offset`, for add_lockspace (lockspace.c reads
/// the first 4 KiB for it): -ENODEV if it will not open, -223/-224 without a delta lease
/// record there, -225 for a sector size neither 512 nor 4096, -230 for sizes that make no
/// geometry, -EINVAL for sectors smaller than a block device's.
pub fn probe_lockspace(path: &[u8], offset: u64) -> Result<Geometry, i32> {
    let disk = open(path, |_| ENODEV)?;
    let raw = leader_at(&disk, offset, 4096)?;
    if raw.magic != LeaderKind::Delta.magic() {
        return Err(SANLK_LEADER_MAGIC);
    }
    if raw.version & 0xFFFF_0000 != LeaderKind::Delta.version() & 0xFFFF_0000 {
        return Err(SANLK_LEADER_VERSION);
    }
    let sector = leader_sizes(&raw).0.ok_or(SANLK_LEADER_SECTORSIZE)?;
    let geometry = raw.geometry().map_err(|_| SANLK_ADDLS_SIZES)?;
    if let DiskKind::Block { logical_sector, .. } = disk.kind() {
        if sector.bytes() < logical_sector {
            return Err(EINVAL);
        }
    }
    Ok(geometry)
}
