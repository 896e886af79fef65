//! The daemons under test: each started fresh in a run directory of its own, on lease files of
//! its own, with the same options (no watchdog, debug log to nowhere, as two hosts on one
//! machine run in the tests).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sanlock_core::ondisk::{
    lockspace_init, resource_init, Geometry, Name, ResourceInit, SectorSize,
};
use sanlock_daemon::client::Connection;
use sanlock_daemon::wire::{Cmd, WireDisk, WireLockspace, WireResource};

/// One lease area: 512-byte sectors, 1 MiB, 2000 hosts (what `write_resource` gives a file).
pub const AREA: u64 = 1 << 20;

/// A daemon process and where it keeps everything.
pub struct Daemon {
    pub label: &'static str,
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    /// Starts `binary` as a daemon in `dir` (made empty first).
    pub fn start(label: &'static str, binary: &Path, dir: &Path) -> Result<Daemon, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = Command::new(binary)
            .args(["daemon", "-D", "-w", "0", "-l", "0", "-h", "0"])
            .args(["-U", "root", "-G", "root", "-e", "bench"])
            .env("SANLOCK_RUN_DIR", dir)
            .env("SANLOCK_PRIVILEGED", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {}: {e}", binary.display()))?;
        let socket = dir.join("sanlock.sock");
        let daemon = Daemon {
            label,
            child,
            dir: dir.to_path_buf(),
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Connection::open_at(&daemon.socket).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{label}: no socket after 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    /// The daemon's pid (for /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new connection to it.
    pub fn connect(&self) -> Result<Connection, String> {
        Connection::open_at(&self.socket).map_err(|e| format!("{}: connect: {e}", self.label))
    }

    /// A file of this daemon's, under its run directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Joins lockspace `name` (its own file, written here) as host_id 1 with io_timeout 1.
    pub fn join(&self, name: &str) -> Result<WireLockspace, String> {
        let path = self.file(&format!("{name}.lockspace"));
        write_lockspace(&path, name)?;
        let ls = WireLockspace {
            name: lease_name(name),
            host_id: 1,
            flags: 0,
            disk: disk(&path, 0),
        };
        let mut payload = Vec::new();
        ls.encode_into(&mut payload);
        let rv = self.call(Cmd::AddLockspace, 0, 1, 0, &payload)?;
        if rv != 0 {
            return Err(format!("{}: add_lockspace {name}: {rv}", self.label));
        }
        Ok(ls)
    }

    /// One request on a connection of its own; the reply's result.
    pub fn call(
        &self,
        cmd: Cmd,
        flags: u32,
        data: u32,
        data2: u32,
        payload: &[u8],
    ) -> Result<i32, String> {
        let mut c = self.connect()?;
        c.request(cmd, flags, data, data2, payload)
            .map_err(|e| format!("{}: send: {e}", self.label))?;
        let h = c
            .recv_header()
            .map_err(|e| format!("{}: reply: {e}", self.label))?;
        Ok(h.rv())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A lease name from a short string.
pub fn lease_name(s: &str) -> Name {
    Name::new(s.as_bytes()).expect("bench names are short")
}

/// The wire form of a disk at `offset` of `path`.
pub fn disk(path: &Path, offset: u64) -> WireDisk {
    WireDisk {
        path: path.as_os_str().as_encoded_bytes().to_vec(),
        offset,
    }
}

fn geometry() -> Geometry {
    Geometry::legacy(SectorSize::Bytes512)
}

/// Writes only the sectors that are not zero: a sparse area reads back whole.
fn write_sparse(file: &File, offset: u64, area: &[u8]) -> Result<(), String> {
    for (i, sector) in area.chunks(512).enumerate() {
        if sector.iter().any(|&b| b != 0) {
            file.write_all_at(sector, offset + i as u64 * 512)
                .map_err(|e| format!("write: {e}"))?;
        }
    }
    Ok(())
}

fn write_lockspace(path: &Path, name: &str) -> Result<(), String> {
    let init = lockspace_init(geometry(), lease_name(name), 1);
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.set_len(AREA).map_err(|e| e.to_string())?;
    write_sparse(&file, 0, &init.area)?;
    file.write_all_at(&init.commit_sector, 0)
        .map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())
}

/// `count` resource leases of lockspace `space`, named `{prefix}{i}`, one per MiB of one file;
/// returns their wire forms. The first `dense` areas are written whole (their reads reach the
/// disk and count in /proc/PID/io); the rest only where not zero (a hole reads as zeros, and
/// 10,000 leases stay cheap to make).
pub fn write_resources(
    path: &Path,
    space: &str,
    prefix: &str,
    count: usize,
    dense: usize,
) -> Result<Vec<WireResource>, String> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.set_len(count as u64 * AREA)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("{prefix}{i}");
        let area = resource_init(&ResourceInit {
            geometry: geometry(),
            space_name: lease_name(space),
            resource_name: lease_name(&name),
            num_hosts: 0,
            clear_at_s: None,
        });
        let offset = i as u64 * AREA;
        if i < dense {
            file.write_all_at(&area, offset)
                .map_err(|e| format!("write: {e}"))?;
        } else {
            write_sparse(&file, offset, &area)?;
        }
        out.push(WireResource {
            lockspace_name: lease_name(space),
            name: lease_name(&name),
            lver: 0,
            data64: 0,
            data32: 0,
            flags: 0,
            num_disks: 1,
            disks: vec![disk(path, offset)],
        });
    }
    file.sync_all().map_err(|e| e.to_string())?;
    Ok(out)
}
