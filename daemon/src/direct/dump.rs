//! `direct dump path[:offset[:size]] [-f 1|2] [-Z -A]`: print every lease found in a range of a
//! disk, an align-size chunk at a time (direct.c `direct_dump`, wire.md §6.5).
//!
//! Unlike 3.8.5, the mode-block scan stops at the end of the chunk read; 3.8.5 follows a
//! leader's num_hosts past its buffer and crashes on 4K/8M areas after a 4K/1M one.

use sanlock_core::ondisk::bitmap::HOSTID_BITMAP_OFFSET;
use sanlock_core::ondisk::dblock::{MBLOCK_OFFSET, MBLOCK_SHARED};
use sanlock_core::ondisk::leader::{DELTA_DISK_MAGIC, LEADER_RECORD_SIZE, PAXOS_DISK_MAGIC};
use sanlock_core::ondisk::rindex::{RINDEX_DISK_MAGIC, RINDEX_ENTRY_SIZE};
use sanlock_core::ondisk::{
    AlignSize, Geometry, HostBitmap, Name, RawDblock, RawLeader, RawModeBlock, RawRequest,
    RawRindexHeader, RindexEntry, SectorSize,
};

use super::ENODEV;
use crate::cli::locators::DumpPath;
use crate::cli::options::Options;
use sanlock_backends::disk::Disk;

const MIB: u64 = 1 << 20;
/// How far the size search looks: one probe per MiB, 1024 of them.
const SIZE_PROBES: u64 = 1024;

/// The sizes a dump walks with. Any 512/4096 sector with any align, as 3.8.5 accepts them from
/// a leader's fields; `max_hosts` is 0 for pairs outside sanlock's table.
#[derive(Clone, Copy, Debug)]
struct DumpSizes {
    sector: SectorSize,
    align: AlignSize,
}

impl DumpSizes {
    fn sector_count(self) -> u64 {
        self.align.bytes() / u64::from(self.sector.bytes())
    }

    fn max_hosts(self) -> u16 {
        Geometry::new(self.sector, self.align).map_or(0, Geometry::max_hosts)
    }
}

/// Runs `direct dump`.
pub fn run(options: &Options, out: &mut Vec<u8>) -> i32 {
    let dump = options
        .dump_path
        .as_ref()
        .expect("the parser requires dump's path");
    if dump.offset % MIB != 0 {
        out.extend_from_slice(b"WARNING: dump offset should be a multiple of 1048576 bytes.\n");
    }
    let disk = match Disk::open(&dump.path) {
        Ok(disk) => disk,
        Err(_) => {
            out.extend_from_slice(b"Device ");
            out.extend_from_slice(&dump.path);
            out.extend_from_slice(b" not found.\n");
            return ENODEV;
        }
    };
    let sizes = match find_sizes(&disk, dump, options) {
        Ok(sizes) => sizes,
        Err(rv) => {
            out.extend_from_slice(b"Cannot find sector_size and align_size, set with -A and -Z.\n");
            return rv;
        }
    };
    let force_mode = options.force_mode;

    out.extend_from_slice(
        format!(
            "{:>8} {:>36} {:>48} {:>10} {:>4} {:>4} {}{}\n",
            "offset",
            "lockspace",
            "resource",
            "timestamp",
            "own",
            "gen",
            "lver",
            if force_mode != 0 { "/req/mode" } else { "" }
        )
        .as_bytes(),
    );

    let ss = u64::from(sizes.sector.bytes());
    let chunk_len = sizes.align.bytes();
    let end_sector = if dump.size != 0 { dump.size / ss } else { 0 };
    let mut sector_nr = 0u64;
    while end_sector == 0 || sector_nr < end_sector {
        let chunk_offset = dump.offset + sector_nr * ss;
        // A failed or short read shows as zeros, as in 3.8.5, which ignores the error.
        let chunk = disk.read(chunk_offset, chunk_len as usize).ok();
        let data = chunk.as_ref().map_or(&[][..], |c| c.as_ref());
        let magic = data
            .get(..4)
            .map_or(0, |m| u32::from_le_bytes(m.try_into().unwrap()));
        let chunk = Chunk {
            data,
            offset: chunk_offset,
            sizes,
        };
        match magic {
            DELTA_DISK_MAGIC => chunk.dump_delta(force_mode, out),
            PAXOS_DISK_MAGIC => chunk.dump_paxos(force_mode, out),
            RINDEX_DISK_MAGIC => chunk.dump_rindex(force_mode, out),
            _ if end_sector == 0 => break,
            _ => {}
        }
        sector_nr += sizes.sector_count();
    }
    0
}

/// `-Z`/`-A` when both are given, else the first delta or paxos leader found at the offset or
/// a MiB multiple after it (up to 1 GiB, or the dump size).
fn find_sizes(disk: &Disk, dump: &DumpPath, options: &Options) -> Result<DumpSizes, i32> {
    if let (Some(sector), Some(align)) = (
        SectorSize::from_bytes(options.sector_size as u64),
        options.align_size,
    ) {
        return Ok(DumpSizes { sector, align });
    }
    let mut rv = -1;
    for probe in 0..SIZE_PROBES {
        let offset = dump.offset + probe * MIB;
        if dump.size != 0 && probe > 0 && offset >= dump.offset + dump.size {
            break;
        }
        let raw = match disk.read(offset, 4096) {
            Ok(buf) => RawLeader::parse(buf.as_ref()).expect("4096 bytes hold a leader"),
            Err(e) => {
                rv = e.rv();
                continue;
            }
        };
        if raw.magic != DELTA_DISK_MAGIC && raw.magic != PAXOS_DISK_MAGIC {
            rv = -1;
            continue;
        }
        // A leader whose sector size is neither 512 nor 4096 cannot be walked; keep looking.
        let Some(sector) = SectorSize::from_bytes(u64::from(raw.sector_size)) else {
            continue;
        };
        let align = AlignSize::from_leader_flags(raw.flags)
            .unwrap_or(Geometry::legacy(sector).align_size());
        return Ok(DumpSizes { sector, align });
    }
    Err(rv)
}

/// One align-size chunk read from the dump range, and where it was read.
#[derive(Clone, Copy)]
struct Chunk<'a> {
    data: &'a [u8],
    offset: u64,
    sizes: DumpSizes,
}

impl Chunk<'_> {
    fn dump_delta(&self, force_mode: u32, out: &mut Vec<u8>) {
        let (data, chunk_offset, sizes) = (self.data, self.offset, self.sizes);
        let ss = sizes.sector.as_usize();
        for (i, sector) in data.chunks_exact(ss).enumerate() {
            let lr = RawLeader::parse(sector).expect("a sector holds a leader");
            if lr.magic == 0 || (lr.owner_id == 0 && lr.owner_generation == 0) {
                continue;
            }
            leader_columns(chunk_offset + (i * ss) as u64, &lr, out);
            if force_mode != 0 {
                let mut bits = [0u8; 256];
                bits.copy_from_slice(&sector[HOSTID_BITMAP_OFFSET..HOSTID_BITMAP_OFFSET + 256]);
                for host in HostBitmap::from_bytes(bits).hosts(sizes.max_hosts()) {
                    out.extend_from_slice(format!(" {host}").as_bytes());
                }
            }
            out.push(b'\n');
        }
    }

    fn dump_paxos(&self, force_mode: u32, out: &mut Vec<u8>) {
        let (data, chunk_offset, sizes) = (self.data, self.offset, self.sizes);
        let ss = sizes.sector.as_usize();
        let lr = RawLeader::parse(data).expect("a chunk holds a leader");
        leader_columns(chunk_offset, &lr, out);
        out.extend_from_slice(format!(" {}", lr.lver).as_bytes());
        if force_mode != 0 {
            let rr = RawRequest::parse(&data[ss..]).expect("a chunk holds a request record");
            out.extend_from_slice(format!("/{}/{}", rr.lver, rr.force_mode).as_bytes());
        }
        out.push(b'\n');

        // Host i's sector is 2 + i; stop where the chunk ends, whatever num_hosts claims.
        let hosts = lr.num_hosts.min(sizes.sector_count().saturating_sub(2));
        for i in 0..hosts as usize {
            let sector = &data[(2 + i) * ss..(3 + i) * ss];
            if force_mode > 1 {
                let d = RawDblock::parse(sector).expect("a sector holds a dblock");
                if d.mbal != 0 || d.inp != 0 || d.lver != 0 {
                    out.extend_from_slice(
                        format!(
                        "dblock[{i:04}] mbal {} bal {} inp {} inp2 {} inp3 {} lver {} sum {:x}\n",
                        d.mbal, d.bal, d.inp, d.inp2, d.inp3, d.lver, d.checksum
                    )
                        .as_bytes(),
                    );
                }
            }
            let mb =
                RawModeBlock::parse(&sector[MBLOCK_OFFSET..]).expect("a sector holds a mode block");
            if mb.flags & MBLOCK_SHARED != 0 {
                out.extend_from_slice(
                    format!("{:106}{:04} {:04} SH\n", "", i + 1, mb.generation).as_bytes(),
                );
            }
        }
    }

    fn dump_rindex(&self, force_mode: u32, out: &mut Vec<u8>) {
        let (data, chunk_offset, sizes) = (self.data, self.offset, self.sizes);
        let ss = sizes.sector.as_usize();
        let rh = RawRindexHeader::parse(data).expect("a chunk holds an rindex header");
        out.extend_from_slice(format!("{chunk_offset:08} ").as_bytes());
        right_aligned(out, &rh.lockspace_name, 36);
        out.extend_from_slice(
            format!(
                " rindex_header 0x{:x} {} {} {}\n",
                rh.flags, rh.sector_size as i32, rh.max_resources, rh.rx_offset
            )
            .as_bytes(),
        );
        if force_mode == 0 {
            return;
        }
        // Sector 0 holds the header; entries fill the sectors after it.
        for (i, sector) in data.chunks_exact(ss).enumerate().skip(1) {
            for (j, bytes) in sector.chunks_exact(RINDEX_ENTRY_SIZE).enumerate() {
                let entry = RindexEntry::decode(bytes, 0).expect("64 bytes hold an entry");
                if entry.is_free() {
                    continue;
                }
                let at = chunk_offset + (i * ss + j * RINDEX_ENTRY_SIZE) as u64;
                out.extend_from_slice(format!("{at:08} ").as_bytes());
                right_aligned(out, &rh.lockspace_name, 36);
                out.extend_from_slice(b" rentry ");
                out.extend_from_slice(entry.name.as_bytes());
                out.extend_from_slice(format!(" {}\n", entry.res_offset).as_bytes());
            }
        }
    }
}

/// `%08llu %36s %48s %010llu %04llu %04llu`: offset, names, timestamp, owner, generation.
fn leader_columns(offset: u64, lr: &RawLeader, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{offset:08} ").as_bytes());
    right_aligned(out, &lr.space_name, 36);
    out.push(b' ');
    right_aligned(out, &lr.resource_name, 48);
    out.extend_from_slice(
        format!(
            " {:010} {:04} {:04}",
            lr.timestamp, lr.owner_id, lr.owner_generation
        )
        .as_bytes(),
    );
}

/// printf's `%Ns` on a byte string: padded on the left to N bytes, never cut.
fn right_aligned(out: &mut Vec<u8>, name: &Name, width: usize) {
    let bytes = name.as_bytes();
    out.resize(out.len() + width.saturating_sub(bytes.len()), b' ');
    out.extend_from_slice(bytes);
}

// A delta sector's leader ends before its bitmap starts.
const _: () = assert!(LEADER_RECORD_SIZE <= HOSTID_BITMAP_OFFSET);
