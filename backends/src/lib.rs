//! Storage backends: they run sanlock-core's I/O requests against real disks, each bounded by
//! its deadline, so that the daemon never hangs on storage. All of them open disks as sanlock
//! does (`O_DIRECT | O_SYNC`), check every I/O against the disk's sector size and size before it
//! is queued, report each I/O exactly once (bytes, error, or timed out at its deadline), and
//! keep a buffer the kernel or server may still use until it is done with it.
//!
//! | backend | for | how |
//! | --- | --- | --- |
//! | [`uring::UringStorage`] | block devices (SAN LUNs, LVs, loop devices) and files | one io_uring, many I/Os in flight, linked timeouts |
//! | [`file::FileStorage`] | the same, where io_uring is not allowed | `pread`/`pwrite` on `O_DIRECT \| O_SYNC`, on worker threads |
//! | [`nfs::NfsStorage`] | files on an NFSv3 server, without a kernel mount | NFSv3 from user space, FILE_SYNC writes, a deadline per RPC |
//! | [`faults::Faulty`] | tests | wraps any backend: delays, errors, hangs, corrupt sectors |
pub mod buffers;
pub mod clock;
pub mod disk;
pub mod drive;
pub mod faults;
pub mod file;
pub mod nfs;
pub mod storage;
mod sync;
pub mod uring;
pub mod workers;

#[cfg(all(test, sanlock_loom))]
mod loom_models;

pub use storage::{Completed, DiskId, DiskInfo, Io, Stats, Storage};
