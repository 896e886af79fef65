//! Storage backends: they run sanlock-core's I/O requests against real disks, each bounded by
//! its deadline, so that the daemon never hangs on storage.
//!
//! | backend | for | how |
//! | --- | --- | --- |
//! | [`file::FileStorage`] | files on local or kernel-mounted NFS file systems | `pread`/`pwrite` on `O_DIRECT \| O_SYNC`, on worker threads |
//! | [`uring::UringStorage`] | block devices (SAN LUNs, LVs, loop devices) | one io_uring, many I/Os in flight, linked timeouts |
//! | [`nfs::NfsStorage`] | files on an NFSv3 server, without a kernel mount | NFSv3 from user space, FILE_SYNC writes, a deadline per RPC |
//! | [`faults::Faulty`] | tests | wraps any backend: delays, errors, hangs, corrupt sectors |
pub mod clock;
pub mod disk;
pub mod faults;
pub mod file;
pub mod nfs;

pub mod storage;
pub mod uring;

pub use storage::{Completed, DiskId, DiskInfo, Io, Stats, Storage};
