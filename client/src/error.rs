//! What a call can fail with: one of sanlock's own result codes (-201 … -278), an errno the
//! daemon returned, or trouble on the socket. `Error::code` gives back the number libsanlock
//! would have returned, so a program can print what `sanlock client` prints.

use std::path::PathBuf;

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $value:literal, $message:literal;)*) => {
        /// sanlock's result codes (sanlock_rv.h of 3.8.5), each with what it means.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// The number on the wire (negative).
            pub fn value(self) -> i32 {
                match self {
                    $(Code::$variant => $value,)*
                }
            }

            /// The code with this number, if sanlock has one.
            pub fn from_value(value: i32) -> Option<Code> {
                match value {
                    $($value => Some(Code::$variant),)*
                    _ => None,
                }
            }

            /// What the code means, in a few words.
            pub fn message(self) -> &'static str {
                match self {
                    $(Code::$variant => $message,)*
                }
            }
        }
    };
}

codes! {
    /// SANLK_ERROR.
    Error = -201, "general failure, or the operation was stopped (lockspace removed, daemon stopping)";
    /// SANLK_AIO_TIMEOUT.
    AioTimeout = -202, "a disk I/O did not complete within the I/O timeout";
    /// SANLK_WD_ERROR.
    WatchdogError = -203, "the watchdog (wdmd) could not be armed";
    /// SANLK_DBLOCK_READ.
    DblockRead = -210, "reading a ballot block failed";
    /// SANLK_DBLOCK_WRITE.
    DblockWrite = -211, "writing a ballot block failed";
    /// SANLK_DBLOCK_LVER.
    DblockLver = -212, "another host got this lease version first";
    /// SANLK_DBLOCK_MBAL.
    DblockMbal = -213, "a ballot with a larger number is under way";
    /// SANLK_DBLOCK_CHECKSUM.
    DblockChecksum = -214, "a ballot block has a bad checksum";
    /// SANLK_LEADER_READ.
    LeaderRead = -220, "reading the lease's leader record failed";
    /// SANLK_LEADER_WRITE.
    LeaderWrite = -221, "writing the lease's leader record failed";
    /// SANLK_LEADER_DIFF.
    LeaderDiff = -222, "the disks' leader records disagree";
    /// SANLK_LEADER_MAGIC.
    LeaderMagic = -223, "no lease on disk at this place (bad or cleared magic)";
    /// SANLK_LEADER_VERSION.
    LeaderVersion = -224, "the lease on disk has an unsupported version";
    /// SANLK_LEADER_SECTORSIZE.
    LeaderSectorSize = -225, "the lease on disk has a sector size other than 512 or 4096";
    /// SANLK_LEADER_LOCKSPACE.
    LeaderLockspace = -226, "the lease on disk belongs to another lockspace";
    /// SANLK_LEADER_RESOURCE.
    LeaderResource = -227, "the lease on disk names another resource";
    /// SANLK_LEADER_NUMHOSTS.
    LeaderNumHosts = -228, "the lease on disk allows fewer hosts than our host id";
    /// SANLK_LEADER_CHECKSUM.
    LeaderChecksum = -229, "the leader record has a bad checksum";
    /// SANLK_ADDLS_SIZES.
    AddLockspaceSizes = -230, "the lockspace's sector and align sizes do not go together";
    /// SANLK_ADDLS_INVALID_HOSTID.
    AddLockspaceInvalidHostId = -231, "the host id is above the lockspace's max_hosts";
    /// SANLK_ACQUIRE_LVER.
    AcquireLver = -240, "the lease is at another version than the one asked for";
    /// SANLK_ACQUIRE_LOCKSPACE.
    AcquireLockspace = -241, "the lease's lockspace is not joined";
    /// SANLK_ACQUIRE_IDDISK.
    AcquireIdDisk = -242, "the lockspace's disk could not be opened";
    /// SANLK_ACQUIRE_IDLIVE.
    AcquireIdLive = -243, "the lease is held by a live host";
    /// SANLK_ACQUIRE_OWNED.
    AcquireOwned = -244, "another host took the lease during our ballot";
    /// SANLK_ACQUIRE_OTHER.
    AcquireOther = -245, "our ballot committed another host as owner";
    /// SANLK_ACQUIRE_SHRETRY.
    AcquireShRetry = -246, "a host held the lease briefly while we asked for it shared; try again";
    /// SANLK_ACQUIRE_OWNED_RETRY.
    AcquireOwnedRetry = -247, "the lease's owner may be dead; not waiting for it (OWNER_NOWAIT)";
    /// SANLK_RELEASE_LVER.
    ReleaseLver = -250, "the lease on disk is at another version than the one we hold";
    /// SANLK_RELEASE_OWNER.
    ReleaseOwner = -251, "the lease on disk is no longer ours";
    /// SANLK_RENEW_OWNER.
    RenewOwner = -260, "our host id lease was taken by another host";
    /// SANLK_RENEW_DIFF.
    RenewDiff = -261, "our host id lease changed on disk under us";
    /// SANLK_HOSTID_BUSY.
    HostIdBusy = -262, "the host id is held by another live host";
    /// SANLK_REQUEST_MAGIC.
    RequestMagic = -270, "the lease's request record is missing";
    /// SANLK_REQUEST_VERSION.
    RequestVersion = -271, "the lease's request record has an unsupported version";
    /// SANLK_REQUEST_OLD.
    RequestOld = -272, "the lease version asked for is not newer than the lease's";
    /// SANLK_REQUEST_LVER.
    RequestLver = -273, "a request for a newer lease version is already recorded";
    /// SANLK_RINDEX_MAGIC.
    RindexMagic = -274, "no resource index at this place";
    /// SANLK_RINDEX_VERSION.
    RindexVersion = -275, "the resource index has an unsupported version";
    /// SANLK_RINDEX_LOCKSPACE.
    RindexLockspace = -276, "the resource index belongs to another lockspace";
    /// SANLK_RINDEX_OFFSET.
    RindexOffset = -277, "the resource index's offset does not match";
    /// SANLK_RINDEX_DIFF.
    RindexDiff = -278, "the resource index entry does not match the resource";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message(), self.value())
    }
}

/// A call's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The daemon answered with one of sanlock's codes.
    #[error("sanlock: {0}")]
    Sanlock(Code),
    /// The daemon answered with an errno (positive here; -errno on the wire).
    #[error("sanlock: {} (-{})", strerror(*.0), .0)]
    Errno(i32),
    /// The daemon answered with a negative number that is neither.
    #[error("sanlock: unknown result {0}")]
    Unknown(i32),
    /// The daemon could not be reached or the connection failed.
    #[error("the daemon's socket {}: {source}", path.display())]
    Socket {
        /// The socket's path.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The daemon closed the connection before a whole reply came.
    #[error("the daemon's socket {}: closed before a whole reply", path.display())]
    ShortReply {
        /// The socket's path.
        path: PathBuf,
    },
    /// An argument cannot be sent (a name over 48 bytes, more than 4 disks, …); nothing was sent.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// The system's words for errno `n`, without std's " (os error n)".
fn strerror(n: i32) -> String {
    let text = std::io::Error::from_raw_os_error(n).to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// What calls return.
pub type Result<T> = std::result::Result<T, Error>;

/// errno values the daemon returns, for matching `Error::Errno`.
pub mod errno {
    /// The lockspace, resource or client is not known.
    pub const ENOENT: i32 = 2;
    /// No such process.
    pub const ESRCH: i32 = 3;
    /// A bad argument.
    pub const EINVAL: i32 = 22;
    /// Busy: the lease is held or in use, or the lockspace has leases.
    pub const EBUSY: i32 = 16;
    /// Already exists (a lockspace already added, a lease already held).
    pub const EEXIST: i32 = 17;
    /// Try again: the resource is being acquired or released by another request.
    pub const EAGAIN: i32 = 11;
    /// A limit was reached (too many leases, lockspaces, hosts).
    pub const ENOSPC: i32 = 28;
    /// The lockspace is being added or removed.
    pub const EINPROGRESS: i32 = 115;
    /// The operation timed out.
    pub const ETIMEDOUT: i32 = 110;
    /// Not permitted.
    pub const EPERM: i32 = 1;
    /// A message too long for its field.
    pub const EMSGSIZE: i32 = 90;
    /// The lockspace's host id lease failed (renewal lost).
    pub const EUCLEAN: i32 = 117;
}

impl Error {
    /// The error for a negative result the daemon sent.
    pub fn from_result(rv: i32) -> Error {
        if let Some(code) = Code::from_value(rv) {
            Error::Sanlock(code)
        } else if (-200..0).contains(&rv) {
            Error::Errno(-rv)
        } else {
            Error::Unknown(rv)
        }
    }

    /// The number libsanlock would have returned for this failure: the daemon's result, -errno
    /// for a socket error, -1 for a short reply, -EINVAL for an argument refused here.
    pub fn code(&self) -> i32 {
        match self {
            Error::Sanlock(code) => code.value(),
            Error::Errno(n) => -n,
            Error::Unknown(n) => *n,
            Error::Socket { source, .. } => -source.raw_os_error().unwrap_or(5),
            Error::ShortReply { .. } => -1,
            Error::Invalid(_) => -errno::EINVAL,
        }
    }

    /// Whether this is the daemon's errno `n` (see [`errno`]).
    pub fn is_errno(&self, n: i32) -> bool {
        matches!(self, Error::Errno(e) if *e == n)
    }
}

/// Ok for a result of 0 or more, else the error it names.
pub(crate) fn check(rv: i32) -> Result<i32> {
    if rv < 0 {
        Err(Error::from_result(rv))
    } else {
        Ok(rv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_the_numbers_are_sanlocks() {
        for value in -300..0 {
            if let Some(code) = Code::from_value(value) {
                assert_eq!(code.value(), value);
                assert_eq!(Error::from_result(value).code(), value);
            }
        }
        assert_eq!(Code::from_value(-243), Some(Code::AcquireIdLive));
        assert_eq!(Code::from_value(-262), Some(Code::HostIdBusy));
        assert_eq!(Code::from_value(-204), None);
    }

    #[test]
    fn errnos_and_unknown_results_keep_their_number() {
        let e = Error::from_result(-16);
        assert!(e.is_errno(errno::EBUSY));
        assert_eq!(e.code(), -16);
        assert_eq!(e.to_string(), "sanlock: Device or resource busy (-16)");
        assert_eq!(Error::from_result(-999).code(), -999);
        assert_eq!(
            Error::from_result(-243).to_string(),
            "sanlock: the lease is held by a live host (-243)"
        );
    }
}
