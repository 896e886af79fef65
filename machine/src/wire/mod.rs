//! sanlock 3.8.5's client socket protocol (`shared/spec/wire.md` §2): the header and the
//! payload structs, as bytes. Both the daemon and the client library use these and nothing
//! else to talk.

pub mod header;
pub mod payload;

pub use header::{Cmd, Header, HEADER_LEN, SM_MAGIC, SM_PROTO, VERSION_NUM};
pub use payload::{
    WireDisk, WireHost, WireHostEvent, WireLockspace, WireOptions, WireRentry, WireResource,
    WireRindex, WireState, DISK_LEN, HOST_LEN, LOCKSPACE_LEN, OPTIONS_LEN, RENTRY_LEN,
    RESOURCE_LEN, RINDEX_LEN, STATE_LEN,
};
