//! `sanlock direct …`: actions that read and write lease areas without a daemon
//! (wire.md §6.5). Each returns sanlock's result value (0 or a negative errno / SANLK_* code)
//! and appends what sanlock prints to `out`; refusals of our own also explain themselves on
//! stderr, since sanlock's stdout has no words for them.

pub mod dump;
pub mod init;
pub mod leases;
pub mod next_free;
pub mod read_leader;
pub mod rindex;
pub mod write_leader;

use sanlock_core::ondisk::{AlignSize, Geometry, SectorSize};

use crate::cli::options::Options;

/// -EINVAL.
pub const EINVAL: i32 = -22;
/// -ENODEV.
pub const ENODEV: i32 = -19;

/// The sizes given with `-Z`/`-A`, as API flags would carry them: `Ok(None)` for neither, `-1`
/// (sanlock's result) for only one of them. `-Z` with a size other than 512/4096 sets no flag,
/// so sanlock then behaves as if `-Z` was not given (main.c `sanlk_lsf_sector_size_to_flag`).
pub fn geometry_from_options(options: &Options) -> Result<Option<Geometry>, i32> {
    let sector = SectorSize::from_bytes(options.sector_size as u64);
    match (sector, options.align_size) {
        (None, None) => Ok(None),
        (Some(sector), Some(align)) => Geometry::new(sector, align).map(Some).map_err(|_| -1),
        _ => Err(-1),
    }
}

/// The sizes a `direct` read uses: `-Z` and `-A` as given, in bytes, 0 when absent.
pub fn given_sizes(options: &Options) -> (u32, u64) {
    (
        options.sector_size as u32,
        options.align_size.map_or(0, AlignSize::bytes),
    )
}

/// The host's CLOCK_MONOTONIC in whole seconds: what sanlock stamps into `write_timestamp` of
/// a cleared lease.
pub fn monotime_s() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as u64
}
