//! sanlock's result codes (sanlock 3.8.5 sanlock_rv.h; algorithms.md §14), in one place so that
//! no module carries its own copy of a number.

/// Success, where sanlock records a result rather than returning 0 (lease_status).
pub const SANLK_OK: i32 = 1;
/// General error; also an operation stopped (lockspace removed, daemon stopping).
pub const SANLK_ERROR: i32 = -201;
/// An I/O did not complete in time.
pub const SANLK_AIO_TIMEOUT: i32 = -202;
/// A dblock read failed.
pub const SANLK_DBLOCK_READ: i32 = -210;
/// A dblock write failed.
pub const SANLK_DBLOCK_WRITE: i32 = -211;
/// A dblock carries a later lease version: someone else got this one.
pub const SANLK_DBLOCK_LVER: i32 = -212;
/// A dblock carries a larger ballot number.
pub const SANLK_DBLOCK_MBAL: i32 = -213;
/// A dblock failed its checksum.
pub const SANLK_DBLOCK_CHECKSUM: i32 = -214;
/// The leader read failed (or no majority of disks could be read).
pub const SANLK_LEADER_READ: i32 = -220;
/// The leader write failed.
pub const SANLK_LEADER_WRITE: i32 = -221;
/// The disks' leaders disagree.
pub const SANLK_LEADER_DIFF: i32 = -222;
/// The lease does not exist on storage (bad or cleared magic).
pub const SANLK_LEADER_MAGIC: i32 = -223;
/// Unsupported leader version.
pub const SANLK_LEADER_VERSION: i32 = -224;
/// The leader's sector size is neither 512 nor 4096.
pub const SANLK_LEADER_SECTORSIZE: i32 = -225;
/// The leader names another lockspace.
pub const SANLK_LEADER_LOCKSPACE: i32 = -226;
/// The leader names another resource.
pub const SANLK_LEADER_RESOURCE: i32 = -227;
/// The lease's num_hosts is below the local host_id.
pub const SANLK_LEADER_NUMHOSTS: i32 = -228;
/// Leader checksum mismatch.
pub const SANLK_LEADER_CHECKSUM: i32 = -229;
/// add_lockspace: the lockspace's sector and align sizes make no geometry.
pub const SANLK_ADDLS_SIZES: i32 = -230;
/// The lease has another version than the one asked for.
pub const SANLK_ACQUIRE_LVER: i32 = -240;
/// The lockspace of the lease is not joined.
pub const SANLK_ACQUIRE_LOCKSPACE: i32 = -241;
/// The owner's host is alive.
pub const SANLK_ACQUIRE_IDLIVE: i32 = -243;
/// Another host committed the version we were after.
pub const SANLK_ACQUIRE_OWNED: i32 = -244;
/// Our ballot committed another host's value.
pub const SANLK_ACQUIRE_OTHER: i32 = -245;
/// Shared acquire retries used up while others passed through.
pub const SANLK_ACQUIRE_SHRETRY: i32 = -246;
/// Owned by a host that may be dead; not waiting (OWNER_NOWAIT).
pub const SANLK_ACQUIRE_OWNED_RETRY: i32 = -247;
/// Release found another lease version.
pub const SANLK_RELEASE_LVER: i32 = -250;
/// Release found another owner.
pub const SANLK_RELEASE_OWNER: i32 = -251;
/// Our delta record changed owner under us.
pub const SANLK_RENEW_OWNER: i32 = -260;
/// Our delta record is not what we last wrote.
pub const SANLK_RENEW_DIFF: i32 = -261;
/// Another host holds or just took the host_id.
pub const SANLK_HOSTID_BUSY: i32 = -262;
/// The request record has a bad magic.
pub const SANLK_REQUEST_MAGIC: i32 = -270;
/// The request record has a bad major version.
pub const SANLK_REQUEST_VERSION: i32 = -271;
/// The lease is already at (or past) the version requested.
pub const SANLK_REQUEST_OLD: i32 = -272;
/// A request for a later version is already recorded.
pub const SANLK_REQUEST_LVER: i32 = -273;
/// The rindex header's magic is wrong.
pub const SANLK_RINDEX_MAGIC: i32 = -274;
/// The rindex header's major version is wrong.
pub const SANLK_RINDEX_VERSION: i32 = -275;
/// The rindex header names another lockspace.
pub const SANLK_RINDEX_LOCKSPACE: i32 = -276;
/// The rindex header's offset, or an entry's, is not the one given.
pub const SANLK_RINDEX_OFFSET: i32 = -277;
/// The name recorded at an offset is not the one given.
pub const SANLK_RINDEX_DIFF: i32 = -278;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sanlock_rv_h() {
        // algorithms.md §14, from sanlock 3.8.5 sanlock_rv.h.
        let table = [
            (SANLK_OK, 1),
            (SANLK_ERROR, -201),
            (SANLK_AIO_TIMEOUT, -202),
            (SANLK_DBLOCK_READ, -210),
            (SANLK_DBLOCK_WRITE, -211),
            (SANLK_DBLOCK_LVER, -212),
            (SANLK_DBLOCK_MBAL, -213),
            (SANLK_DBLOCK_CHECKSUM, -214),
            (SANLK_LEADER_READ, -220),
            (SANLK_LEADER_WRITE, -221),
            (SANLK_LEADER_DIFF, -222),
            (SANLK_LEADER_MAGIC, -223),
            (SANLK_LEADER_VERSION, -224),
            (SANLK_LEADER_SECTORSIZE, -225),
            (SANLK_LEADER_LOCKSPACE, -226),
            (SANLK_LEADER_RESOURCE, -227),
            (SANLK_LEADER_NUMHOSTS, -228),
            (SANLK_LEADER_CHECKSUM, -229),
            (SANLK_ADDLS_SIZES, -230),
            (SANLK_ACQUIRE_LVER, -240),
            (SANLK_ACQUIRE_LOCKSPACE, -241),
            (SANLK_ACQUIRE_IDLIVE, -243),
            (SANLK_ACQUIRE_OWNED, -244),
            (SANLK_ACQUIRE_OTHER, -245),
            (SANLK_ACQUIRE_SHRETRY, -246),
            (SANLK_ACQUIRE_OWNED_RETRY, -247),
            (SANLK_RELEASE_LVER, -250),
            (SANLK_RELEASE_OWNER, -251),
            (SANLK_RENEW_OWNER, -260),
            (SANLK_RENEW_DIFF, -261),
            (SANLK_HOSTID_BUSY, -262),
            (SANLK_REQUEST_MAGIC, -270),
            (SANLK_REQUEST_VERSION, -271),
            (SANLK_REQUEST_OLD, -272),
            (SANLK_REQUEST_LVER, -273),
        ];
        for (code, expected) in table {
            assert_eq!(code, expected);
        }
    }
}
