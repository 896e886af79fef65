//! sanlock 3.8.5's client socket protocol (`shared/spec/wire.md` §2): the header and the
//! payload structs, as bytes. Both the daemon and the client crate (`sanlock-client`) use these
//! and nothing else to talk. Pure as core is: no I/O, no clock, no threads.

#![forbid(unsafe_code)]

pub mod header;
pub mod payload;

/// Names of lockspaces and resources: 48-byte fields (core's type, shared with the disk format).
pub use sanlock_core::ondisk::Name;

pub use header::{Cmd, Header, HEADER_LEN, SM_MAGIC, SM_PROTO, VERSION_NUM};
pub use payload::{
    WireDisk, WireEventCb, WireHost, WireHostEvent, WireLockspace, WireMessageStatus, WireOptions,
    WireRentry, WireResource, WireRindex, WireState, DISK_LEN, EVENT_CB_LEN, HOST_LEN,
    LOCKSPACE_LEN, MESSAGE_STATUS_LEN, OPTIONS_LEN, RENTRY_LEN, RESOURCE_LEN, RINDEX_LEN,
    STATE_LEN,
};

/// Escapes a path for display (status, inquire, `read -r`): a backslash before every unescaped
/// space or colon; existing escapes are kept (client.c `sanlock_path_export`).
pub fn export_path(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len() + 8);
    let mut bytes = path.iter().copied().take_while(|&b| b != 0);
    while let Some(b) = bytes.next() {
        // SANLK_PATH_LEN: 1024 bytes, the terminating NUL included.
        if out.len() >= 1024 - 1 {
            break;
        }
        match b {
            b'\\' => {
                out.push(b);
                match bytes.next() {
                    Some(next) => out.push(next),
                    None => break,
                }
            }
            b' ' | b':' => {
                out.push(b'\\');
                out.push(b);
            }
            _ => out.push(b),
        }
    }
    out
}
