//! `direct next_free PATH[:OFFSET]`: the first align-size area, from OFFSET on, that holds no
//! delta, paxos or rindex magic (direct.c `direct_next_free`). It prints only the offset,
//! relative to OFFSET; a read past the end counts as free, as in sanlock.

use sanlock_backends::disk::Disk;
use sanlock_core::ondisk::leader::{DELTA_DISK_MAGIC, PAXOS_DISK_MAGIC};
use sanlock_core::ondisk::rindex::RINDEX_DISK_MAGIC;
use sanlock_core::ondisk::{AlignSize, Geometry, RawLeader, SectorSize};

use super::{given_sizes, ENODEV};
use crate::cli::options::Options;

/// Prints the offset and returns 0, or returns the error (nothing printed).
pub fn run(options: &Options, out: &mut Vec<u8>) -> i32 {
    let Some(arg) = options.dump_path.as_ref().map(|d| d.raw.clone()) else {
        return 1;
    };
    // The path ends at the first colon; the offset is read as atoll would (no `M`).
    let (path, offset) = match arg.iter().position(|&b| b == b':') {
        Some(c) => (&arg[..c], atoll(&arg[c + 1..])),
        None => (&arg[..], 0),
    };
    let Ok(disk) = Disk::open(path) else {
        return ENODEV;
    };
    let (mut sector, mut align) = given_sizes(options);
    if sector == 0 || align == 0 {
        match leader_sizes(&disk, offset) {
            Some((s, a)) => (sector, align) = (s, a),
            None => return -1,
        }
    }
    let Some(ss) = SectorSize::from_bytes(u64::from(sector)) else {
        return super::EINVAL;
    };
    let step = align;
    let mut at = 0u64;
    loop {
        let magic = disk
            .read(offset + at, ss.as_usize())
            .ok()
            .and_then(|b| RawLeader::parse(b.as_ref()).ok())
            .map_or(0, |l| l.magic);
        if magic != DELTA_DISK_MAGIC && magic != PAXOS_DISK_MAGIC && magic != RINDEX_DISK_MAGIC {
            out.extend_from_slice(format!("{at}\n").as_bytes());
            return 0;
        }
        at += step;
    }
}

/// The sector and align size of the leader at `offset` (direct.c
/// `direct_read_leader_sizes`): delta and paxos leaders only.
fn leader_sizes(disk: &Disk, offset: u64) -> Option<(u32, u64)> {
    let buf = disk.read(offset, 4096).ok()?;
    let raw = RawLeader::parse(buf.as_ref()).ok()?;
    if raw.magic != DELTA_DISK_MAGIC && raw.magic != PAXOS_DISK_MAGIC {
        return None;
    }
    let ss = SectorSize::from_bytes(u64::from(raw.sector_size))?;
    let align = AlignSize::from_leader_flags(raw.flags)
        .map_or_else(|| Geometry::legacy(ss).area_bytes(), AlignSize::bytes);
    Some((raw.sector_size, align))
}

fn atoll(s: &[u8]) -> u64 {
    let digits: Vec<u8> = s.iter().copied().take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}
