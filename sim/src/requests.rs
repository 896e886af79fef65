//! The requests the simulated client processes and tools send a daemon's engine, decoded as
//! the socket server hands them over (the header python3-sanlock and `sanlock client` send,
//! and the payload): shared by the random simulator and the checker. Leases live on one
//! disk, `DISK_PATH`.

use sanlock_core::ondisk::Name;
use sanlock_machine::daemon::Call;
pub use sanlock_machine::wire::payload::{RES_PERSISTENT, RES_SHARED};
use sanlock_machine::wire::{Cmd, Header, WireDisk, WireHostEvent, WireLockspace, WireResource};

/// The path of the shared disk, as the daemons are told it.
pub const DISK_PATH: &[u8] = b"/sim/disk";
/// SANLK_REL_ORPHAN.
const REL_ORPHAN: u32 = 4;
/// SANLK_REQUEST_NEXT_LVER.
const REQUEST_NEXT_LVER: u32 = 1;
/// SANLK_KILLPATH_PID: the holder's pid is appended to the killpath's arguments.
pub const KILLPATH_PID: u32 = 1;
/// The header's data2 for "this connection's own process".
const SELF: u32 = u32::MAX;

/// Resource `name` of `space`, its lease at `offset` on the shared disk.
pub fn resource(space: Name, name: Name, offset: u64, flags: u32) -> WireResource {
    resource_on(space, name, &[offset], flags)
}

/// Resource `name` of `space`, its lease on several disks: at each of `offsets` of the shared
/// image (each region stands for a disk of its own).
pub fn resource_on(space: Name, name: Name, offsets: &[u64], flags: u32) -> WireResource {
    WireResource {
        lockspace_name: space,
        name,
        flags,
        num_disks: offsets.len() as u32,
        disks: offsets
            .iter()
            .map(|&offset| WireDisk {
                path: DISK_PATH.to_vec(),
                offset,
            })
            .collect(),
        ..WireResource::default()
    }
}

/// ADD_LOCKSPACE of `space` (at offset 0) as `host_id`.
pub fn add_lockspace(space: Name, host_id: u64, io_timeout_s: u64) -> (Header, Call) {
    let ls = WireLockspace {
        name: space,
        host_id,
        flags: 0,
        disk: WireDisk {
            path: DISK_PATH.to_vec(),
            offset: 0,
        },
    };
    let header = Header::request(Cmd::AddLockspace, 0, io_timeout_s as u32, 0, 0);
    (header, Call::AddLockspace(ls))
}

/// ACQUIRE of `res` for the connection's own process.
pub fn acquire(res: WireResource) -> (Header, Call) {
    let call = Call::Acquire {
        resources: vec![res],
        options: Default::default(),
    };
    (Header::request(Cmd::Acquire, 0, 0, SELF, 0), call)
}

/// RELEASE of `res` for the connection's own process.
pub fn release(res: WireResource) -> (Header, Call) {
    (
        Header::request(Cmd::Release, 0, 0, SELF, 0),
        Call::Release(vec![res]),
    )
}

/// RELEASE with REL_ORPHAN: the daemon's orphans of `res`.
pub fn release_orphans(res: WireResource) -> (Header, Call) {
    let header = Header::request(Cmd::Release, REL_ORPHAN, 0, SELF, 0);
    (header, Call::Release(vec![res]))
}

/// CONVERT of `res` to the mode its flags say (RES_SHARED or not).
pub fn convert(res: WireResource) -> (Header, Call) {
    (
        Header::request(Cmd::Convert, 0, 0, SELF, 0),
        Call::Convert(res),
    )
}

/// REQUEST for `res` with `force_mode` (1 FORCE, 2 GRACEFUL), for the leader's next version.
pub fn request(res: WireResource, force_mode: u32) -> (Header, Call) {
    let header = Header::request(Cmd::Request, REQUEST_NEXT_LVER, force_mode, 0, 0);
    (header, Call::Request(res))
}

/// KILLPATH `path` with `args` (and `flags`, e.g. [`KILLPATH_PID`]) for the connection's own
/// process.
pub fn killpath(path: &[u8], args: Vec<u8>, flags: u32) -> (Header, Call) {
    let call = Call::Killpath {
        path: path.to_vec(),
        args,
    };
    (Header::request(Cmd::Killpath, flags, 0, SELF, 0), call)
}

/// MESSAGE_SEND (or FENCE) in `space` to `host_id`: event `event` with `data`, waiting until
/// it resolves (docs/MESSAGES.md).
pub fn message(space: Name, host_id: u64, event: u64, data: u64, fence: bool) -> (Header, Call) {
    let cmd = if fence { Cmd::Fence } else { Cmd::MessageSend };
    let call = Call::Message {
        ls: WireLockspace {
            name: space,
            ..WireLockspace::default()
        },
        event: WireHostEvent {
            host_id,
            generation: 0,
            event,
            data,
        },
        fence,
    };
    (Header::request(cmd, 0, u32::MAX, 0, 0), call)
}

/// REG_EVENT for `space`: the connection becomes listener `listener`.
pub fn reg_event(space: Name, listener: u64) -> (Header, Call) {
    let call = Call::RegEvent {
        ls: WireLockspace {
            name: space,
            ..WireLockspace::default()
        },
        listener,
    };
    (Header::request(Cmd::RegEvent, 0, 0, 0, 0), call)
}
