//! Opening a lease disk and moving whole sectors, as sanlock's diskio.c does for the `direct`
//! actions: `O_RDWR | O_DIRECT | O_SYNC`, page-aligned buffers, files treated as 512-byte
//! sectors, block devices asked for their logical sector size.
//!
//! [`Disk::read`] and [`Disk::write`] are plain blocking I/O, for the command line's `direct`
//! actions and for the file backend's worker threads; the daemon's I/O, with deadlines, goes
//! through a [`crate::Storage`].

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use rustix::fd::OwnedFd;
use rustix::fs::{self, FileType, Mode, OFlags};
use rustix::io::Errno;

use sanlock_core::ondisk::SectorSize;

/// Buffers are aligned to this; it satisfies O_DIRECT for both sector sizes.
const BUFFER_ALIGN: usize = 4096;

/// An open lease disk: a regular file or a block device.
pub struct Disk {
    fd: OwnedFd,
    path: Vec<u8>,
    kind: DiskKind,
    read_only: bool,
}

/// What sits behind a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskKind {
    /// A regular file: sanlock assumes 512-byte sectors and writes may extend it.
    File,
    /// A block device with its logical sector size and its size in bytes.
    Block {
        /// BLKSSZGET.
        logical_sector: u32,
        /// Bytes on the device.
        size: u64,
    },
}

/// A failed disk operation, with the errno sanlock would report.
#[derive(Debug)]
pub struct DiskError {
    /// What was being done.
    pub op: &'static str,
    /// The path.
    pub path: Vec<u8>,
    /// Byte offset, for reads and writes.
    pub offset: Option<u64>,
    /// The error number (positive).
    pub errno: i32,
    /// Why, in words.
    pub reason: String,
}

impl DiskError {
    /// The negative errno sanlock returns for this failure.
    pub fn rv(&self) -> i32 {
        -self.errno
    }
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, String::from_utf8_lossy(&self.path))?;
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// EMSGSIZE: sanlock's result for a read or write that moved fewer bytes than asked.
pub const EMSGSIZE: i32 = 90;

impl Disk {
    /// Opens `path` as sanlock does (diskio.c `open_disk`) and learns its kind.
    pub fn open(path: &[u8]) -> Result<Disk, DiskError> {
        Disk::open_with(path, OFlags::RDWR)
    }

    /// Opens `path` for reading only (O_RDONLY | O_DIRECT), for readers of disks they may not
    /// write.
    pub fn open_read_only(path: &[u8]) -> Result<Disk, DiskError> {
        Disk::open_with(path, OFlags::RDONLY)
    }

    fn open_with(path: &[u8], access: OFlags) -> Result<Disk, DiskError> {
        let fail = |op, e: Errno| DiskError {
            op,
            path: path.to_vec(),
            offset: None,
            errno: e.raw_os_error(),
            reason: std::io::Error::from(e).to_string(),
        };
        let os_path = OsStr::from_bytes(path);
        let fd = fs::open(
            os_path,
            access | OFlags::DIRECT | OFlags::SYNC | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail("open", e))?;
        let stat = fs::fstat(&fd).map_err(|e| fail("fstat", e))?;
        let kind = match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => DiskKind::File,
            FileType::BlockDevice => {
                let logical_sector = fs::ioctl_blksszget(&fd).map_err(|e| fail("BLKSSZGET", e))?;
                let size = fs::seek(&fd, fs::SeekFrom::End(0)).map_err(|e| fail("seek", e))?;
                DiskKind::Block {
                    logical_sector,
                    size,
                }
            }
            _ => {
                return Err(DiskError {
                    op: "open",
                    path: path.to_vec(),
                    offset: None,
                    errno: 22,
                    reason: "not a regular file or a block device".to_string(),
                })
            }
        };
        // A read-only block device (`losetup -r`, a write-protected LUN) opens read-write and
        // fails each write; say so up front.
        let device_read_only = matches!(kind, DiskKind::Block { .. }) && block_read_only(&fd);
        Ok(Disk {
            fd,
            path: path.to_vec(),
            kind,
            read_only: access == OFlags::RDONLY || device_read_only,
        })
    }

    /// Whether it was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The open file descriptor (for a backend's own submission path).
    pub fn fd(&self) -> rustix::fd::BorrowedFd<'_> {
        use rustix::fd::AsFd;
        self.fd.as_fd()
    }

    /// The path it was opened with.
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// File or block device.
    pub fn kind(&self) -> DiskKind {
        self.kind
    }

    /// The sector size sanlock assumes for this disk: 512 for files, the device's logical size
    /// for block devices (`None` when it is neither 512 nor 4096).
    pub fn sector_size(&self) -> Option<SectorSize> {
        match self.kind {
            DiskKind::File => Some(SectorSize::Bytes512),
            DiskKind::Block { logical_sector, .. } => {
                SectorSize::from_bytes(u64::from(logical_sector))
            }
        }
    }

    /// Reads exactly `len` bytes at `offset`. A short read (past the end of a file) fails with
    /// EMSGSIZE, as sanlock's aio path reports it.
    pub fn read(&self, offset: u64, len: usize) -> Result<AlignedBuf, DiskError> {
        let mut buf = AlignedBuf::zeroed(len);
        self.read_into(offset, &mut buf)?;
        Ok(buf)
    }

    /// Fills `buf` from `offset` (see [`Disk::read`]).
    pub fn read_into(&self, offset: u64, buf: &mut AlignedBuf) -> Result<(), DiskError> {
        let len = buf.as_ref().len();
        let mut done = 0;
        while done < len {
            match rustix::io::pread(&self.fd, &mut buf.as_mut()[done..], offset + done as u64) {
                Ok(0) => return Err(self.short("read", offset, done, len)),
                Ok(n) => done += n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(self.errno("read", offset, e)),
            }
        }
        Ok(())
    }

    /// Writes all of `data` at `offset`; the open is O_SYNC, so it is on disk on return.
    pub fn write(&self, offset: u64, data: &AlignedBuf) -> Result<(), DiskError> {
        let bytes = data.as_ref();
        let mut done = 0;
        while done < bytes.len() {
            match rustix::io::pwrite(&self.fd, &bytes[done..], offset + done as u64) {
                Ok(0) => return Err(self.short("write", offset, done, bytes.len())),
                Ok(n) => done += n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(self.errno("write", offset, e)),
            }
        }
        Ok(())
    }

    fn errno(&self, op: &'static str, offset: u64, e: Errno) -> DiskError {
        DiskError {
            op,
            path: self.path.clone(),
            offset: Some(offset),
            errno: e.raw_os_error(),
            reason: std::io::Error::from(e).to_string(),
        }
    }

    fn short(&self, op: &'static str, offset: u64, done: usize, len: usize) -> DiskError {
        DiskError {
            op,
            path: self.path.clone(),
            offset: Some(offset),
            errno: EMSGSIZE,
            reason: format!("only {done} of {len} bytes (past the end of the disk?)"),
        }
    }
}

/// Opens a lease disk for a storage backend: read-write, or read-only when that is all the
/// permissions allow (EACCES, EROFS, or EPERM for an immutable file); with what the backend
/// checks I/O against. Files get `file_sector` (sanlock assumes 512), block devices their
/// logical sector size and their size.
pub fn open_for_backend(
    path: &str,
    file_sector: Option<SectorSize>,
) -> Result<(Disk, crate::storage::DiskInfo), DiskError> {
    let disk = match Disk::open(path.as_bytes()) {
        Err(e) if matches!(e.errno, 1 | 13 | 30) => Disk::open_read_only(path.as_bytes())?,
        other => other?,
    };
    let (sector_size, size) = match disk.kind() {
        DiskKind::File => (file_sector.unwrap_or(SectorSize::Bytes512), None),
        DiskKind::Block { size, .. } => {
            let ss = disk.sector_size().ok_or_else(|| DiskError {
                op: "open",
                path: path.as_bytes().to_vec(),
                offset: None,
                errno: 22,
                reason: "logical sector size is neither 512 nor 4096".into(),
            })?;
            (ss, Some(size))
        }
    };
    let info = crate::storage::DiskInfo {
        name: path.to_string(),
        sector_size,
        size,
        read_only: disk.is_read_only(),
    };
    Ok((disk, info))
}

/// BLKROGET: whether a block device is read-only (an error counts as writable; writes will say).
fn block_read_only(fd: &OwnedFd) -> bool {
    const BLKROGET: rustix::ioctl::Opcode = 0x125e; // _IO(0x12, 94)
                                                    // SAFETY: BLKROGET writes one C int through the pointer the getter provides.
    let getter = unsafe { rustix::ioctl::Getter::<BLKROGET, std::ffi::c_int>::new() };
    // SAFETY: the fd is an open block device and the getter matches the ioctl's ABI.
    unsafe { rustix::ioctl::ioctl(fd, getter) }.is_ok_and(|ro| ro != 0)
}

/// A zero-initialised buffer whose start is 4096-byte aligned, as O_DIRECT wants. Built from an
/// over-allocated Vec, so no unsafe code is needed.
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        let storage = vec![0u8; len + BUFFER_ALIGN];
        let start = storage.as_ptr().align_offset(BUFFER_ALIGN);
        assert!(start < BUFFER_ALIGN, "align_offset on u8 always succeeds");
        AlignedBuf {
            storage,
            start,
            len,
        }
    }

    /// How many bytes it can hold without reallocating.
    pub fn capacity(&self) -> usize {
        self.storage.len() - self.start
    }

    /// The length it was made for: what it costs a pool's budget (its capacity is up to
    /// 4095 bytes more, depending on where the allocator put it).
    pub fn made_for(&self) -> usize {
        self.storage.len() - BUFFER_ALIGN
    }

    /// Makes it `len` bytes long, keeping its memory (and whatever bytes it held: the caller
    /// overwrites them). False, unchanged, when `len` exceeds its capacity.
    pub fn reuse(&mut self, len: usize) -> bool {
        if len > self.capacity() {
            return false;
        }
        self.len = len;
        true
    }

    /// A copy of `data` in an aligned buffer.
    pub fn from_slice(data: &[u8]) -> Self {
        let mut buf = AlignedBuf::zeroed(data.len());
        buf.as_mut().copy_from_slice(data);
        buf
    }
}

impl AsMut<[u8]> for AlignedBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_page_aligned() {
        for len in [0, 1, 512, 4096, 1 << 20] {
            let buf = AlignedBuf::zeroed(len);
            assert_eq!(buf.as_ref().as_ptr() as usize % BUFFER_ALIGN, 0);
            assert_eq!(buf.as_ref().len(), len);
            assert!(buf.as_ref().iter().all(|&b| b == 0));
        }
    }
}
