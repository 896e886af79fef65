//! `direct write_leader -s LOCKSPACE | -r RESOURCE -F FILE [-f 1]`: read the leader, override
//! the fields FILE names (`field value` lines, as `read_leader` prints them), and write it back
//! (main.c `do_direct_write_leader`, `read_file_leader`). The checksum is recomputed unless
//! `-f 1` asks to keep the file's (a lockspace leader only). A lockspace leader goes to its host_id's sector; a resource
//! leader to sector 0 of its lease; the rest of that sector is zeroed, as sanlock writes it.

use sanlock_backends::disk::{AlignedBuf, Disk};
use sanlock_core::ondisk::leader::LEADER_RECORD_SIZE;
use sanlock_core::ondisk::{Name, RawLeader, SectorSize};

use super::read_leader::{print_leader, read_delta, read_paxos};
use super::{EINVAL, ENODEV};
use crate::cli::options::Options;

/// Runs the action; prints what sanlock prints.
pub fn run(options: &Options, out: &mut Vec<u8>) -> i32 {
    let is_lockspace = options.resources.is_empty();
    let mut leader = if !options.lockspace.path.is_empty() {
        read_delta(options).1
    } else if let Some(res) = options.resources.first() {
        read_paxos(options, res).1
    } else {
        RawLeader::default()
    };
    let text = match options
        .file_path
        .as_ref()
        .map(|p| std::fs::read(bytes_path(p)))
    {
        Some(Ok(text)) => text,
        Some(Err(e)) => {
            let path = String::from_utf8_lossy(options.file_path.as_deref().unwrap_or_default());
            out.extend_from_slice(
                format!("open error {} {path}\n", e.raw_os_error().unwrap_or(0)).as_bytes(),
            );
            return -1;
        }
        None => {
            // fopen(NULL) fails with EFAULT in 3.8.5.
            out.extend_from_slice(b"open error 14 (null)\n");
            return -1;
        }
    };
    let keep_checksum = apply_file(&mut leader, &text, is_lockspace, out);
    let generated = leader.computed_checksum();
    match keep_checksum {
        None => {
            leader.checksum = generated;
            out.extend_from_slice(format!("use new generated checksum {generated:x}\n").as_bytes());
        }
        Some(given) if options.force_mode != 0 => {
            leader.checksum = given;
            out.extend_from_slice(
                format!(
                    "warning: using specified checksum {given:x} (generated is {generated:x})\n"
                )
                .as_bytes(),
            );
        }
        Some(_) => {
            leader.checksum = generated;
            out.extend_from_slice(format!("use new generated checksum {generated:x}\n").as_bytes());
        }
    }
    if !is_lockspace {
        // A paxos leader is always written with its computed checksum, `-f 1` or not
        // (paxos_lease.c `paxos_lease_leader_clobber`); the delta clobber keeps the given one.
        leader.checksum = generated;
    }
    let rv = write(options, &leader, is_lockspace);
    out.extend_from_slice(format!("write_leader done {rv}\n").as_bytes());
    if rv == 0 {
        print_leader(&leader, is_lockspace, out);
    }
    rv
}

fn bytes_path(p: &[u8]) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    std::path::PathBuf::from(std::ffi::OsStr::from_bytes(p))
}

/// Applies each `field value` line; returns the file's checksum field (0 when absent, as
/// sanlock's), to keep with `-f`. Unknown fields and malformed lines are reported and skipped.
fn apply_file(l: &mut RawLeader, text: &[u8], is_ls: bool, out: &mut Vec<u8>) -> Option<u32> {
    let mut checksum = 0u32;
    for line in text.split_inclusive(|&b| b == b'\n') {
        let mut words = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty());
        let (Some(field), Some(val)) = (words.next(), words.next()) else {
            out.extend_from_slice(b"ignore line: \"");
            out.extend_from_slice(line);
            out.extend_from_slice(b"\"\n");
            continue;
        };
        let hex = || {
            let v = val.strip_prefix(b"0x").unwrap_or(b"");
            u32::from_str_radix(&lossy(&take_while(v, |c| c.is_ascii_hexdigit())), 16).ok()
        };
        let num = || {
            lossy(&take_while(val, |c| c.is_ascii_digit()))
                .parse::<u64>()
                .ok()
        };
        let set32 = |dst: &mut u32, v: Option<u32>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        let set64 = |dst: &mut u64, v: Option<u64>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        match (field, is_ls) {
            (b"magic", _) => set32(&mut l.magic, hex()),
            (b"version", _) => set32(&mut l.version, hex()),
            (b"flags", _) => set32(&mut l.flags, hex()),
            (b"sector_size", _) => set32(&mut l.sector_size, num().map(|v| v as u32)),
            (b"num_hosts", _) => set64(&mut l.num_hosts, num()),
            (b"max_hosts", _) => set64(&mut l.max_hosts, num()),
            (b"owner_id", _) => set64(&mut l.owner_id, num()),
            (b"owner_generation", _) => set64(&mut l.owner_generation, num()),
            (b"lver", _) => set64(&mut l.lver, num()),
            (b"space_name", _) => l.space_name = Name::truncated(val),
            (b"resource_name", _) => l.resource_name = Name::truncated(val),
            (b"timestamp", _) => set64(&mut l.timestamp, num()),
            (b"checksum", _) => set32(&mut checksum, hex()),
            (b"io_timeout", _) => {
                if let Some(v) = num() {
                    l.io_timeout = v as u16;
                }
            }
            (b"extra1", true) | (b"write_id", false) => set64(&mut l.write_id, num()),
            (b"extra2", true) | (b"write_generation", false) => {
                set64(&mut l.write_generation, num())
            }
            (b"extra3", true) | (b"write_timestamp", false) => set64(&mut l.write_timestamp, num()),
            _ => {
                out.extend_from_slice(b"ignore field: \"");
                out.extend_from_slice(field);
                out.extend_from_slice(b"\"\n");
            }
        }
    }
    Some(checksum)
}

fn take_while(s: &[u8], f: impl Fn(u8) -> bool) -> Vec<u8> {
    s.iter().copied().take_while(|&c| f(c)).collect()
}

fn lossy(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

/// Writes the leader in a zeroed sector of its own size: the host_id's sector of the
/// lockspace, or sector 0 of the (single-disk) resource lease. A sector size other than 512
/// or 4096 is refused before anything is written.
fn write(options: &Options, leader: &RawLeader, is_ls: bool) -> i32 {
    let Some(ss) = SectorSize::from_bytes(u64::from(leader.sector_size)) else {
        eprintln!(
            "sanlock: write_leader refused: sector_size {} is neither 512 nor 4096",
            leader.sector_size
        );
        return EINVAL;
    };
    let (path, offset) = if is_ls {
        let ls = &options.lockspace;
        if ls.host_id == 0 {
            return EINVAL;
        }
        (
            &ls.path,
            ls.offset + (ls.host_id - 1) * u64::from(ss.bytes()),
        )
    } else {
        let Some(disk) = options.resources.first().and_then(|r| r.disks.first()) else {
            return -1;
        };
        (&disk.path, disk.offset)
    };
    let Ok(disk) = Disk::open(path) else {
        return ENODEV;
    };
    let mut sector = vec![0u8; ss.as_usize()];
    sector[..LEADER_RECORD_SIZE].copy_from_slice(&leader.to_bytes());
    match disk.write(offset, &AlignedBuf::from_slice(&sector)) {
        Ok(()) => 0,
        Err(e) => e.rv(),
    }
}
