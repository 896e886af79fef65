//! A client of the daemon's socket, as libsanlock is one (wire.md §3): each call opens a
//! connection, sends one request and reads its reply. Results are what libsanlock returns:
//! the reply's signed `data`, -errno for socket errors, -1 for a short reply header. Used by the
//! `sanlock client` actions, the demo and the tests.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use crate::wire::payload::{LOCKSPACE_LEN, RESOURCE_LEN};
use crate::wire::{Cmd, Header, WireHost, WireLockspace, WireResource, WireState, HEADER_LEN};

/// The run directory: `$SANLOCK_RUN_DIR` (an empty value as is), else `/run/sanlock`.
pub fn run_dir() -> PathBuf {
    match std::env::var_os("SANLOCK_RUN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from("/run/sanlock"),
    }
}

/// `<run dir>/sanlock.sock`.
pub fn socket_path() -> PathBuf {
    run_dir().join("sanlock.sock")
}

/// One connection to the daemon.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
}

impl Connection {
    /// Connects to the daemon of this process's run directory: -ENOENT without a socket file,
    /// -ECONNREFUSED for a stale one.
    pub fn open() -> Result<Connection, i32> {
        Self::open_at(&socket_path())
    }

    /// Connects to the daemon listening at `path` (a benchmark talks to two daemons).
    pub fn open_at(path: &std::path::Path) -> Result<Connection, i32> {
        // sanlock cuts the address to 106 bytes plus NUL, with no error.
        let bytes = path.as_os_str().as_bytes();
        let path = std::ffi::OsStr::from_bytes(&bytes[..bytes.len().min(106)]);
        UnixStream::connect(path)
            .map(|stream| Connection { stream })
            .map_err(|e| neg_errno(&e))
    }

    /// Sends a header and its payload.
    pub fn send(&mut self, header: Header, payload: &[u8]) -> Result<(), i32> {
        let mut msg = header.encode().to_vec();
        msg.extend_from_slice(payload);
        self.stream.write_all(&msg).map_err(|e| neg_errno(&e))
    }

    /// Sends a request for `cmd` with its payload; the header's length counts the payload.
    pub fn request(
        &mut self,
        cmd: Cmd,
        cmd_flags: u32,
        data: u32,
        data2: u32,
        payload: &[u8],
    ) -> Result<(), i32> {
        let header = Header::request(cmd, cmd_flags, data, data2, payload.len());
        self.send(header, payload)
    }

    /// Reads a reply header: -1 when the daemon closed before a whole one came.
    pub fn recv_header(&mut self) -> Result<Header, i32> {
        let mut buf = [0u8; HEADER_LEN];
        match self.stream.read_exact(&mut buf) {
            Ok(()) => Ok(Header::decode(&buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(-1),
            Err(e) => Err(neg_errno(&e)),
        }
    }

    /// Reads exactly `len` bytes.
    pub fn recv_exact(&mut self, len: usize) -> Result<Vec<u8>, i32> {
        let mut buf = vec![0u8; len];
        match self.stream.read_exact(&mut buf) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(-1),
            Err(e) => Err(neg_errno(&e)),
        }
    }

    /// Reads state records until the daemon closes (STATUS, HOST_STATUS, RENEWAL streams).
    /// Records that follow a state (a lockspace or resource struct) come with it.
    pub fn recv_states(&mut self) -> Vec<(WireState, Vec<u8>)> {
        let mut out = Vec::new();
        while let Ok(head) = self.recv_exact(crate::wire::STATE_LEN) {
            let (mut state, str_len) = WireState::decode_head(&head);
            let Ok(mut text) = self.recv_exact(str_len) else {
                break;
            };
            if text.last() == Some(&0) {
                text.pop();
            }
            state.text = text;
            let extra = match state.kind {
                crate::wire::payload::state_kind::LOCKSPACE => {
                    self.recv_exact(LOCKSPACE_LEN).unwrap_or_default()
                }
                crate::wire::payload::state_kind::RESOURCE => {
                    let Ok(mut res) = self.recv_exact(RESOURCE_LEN) else {
                        break;
                    };
                    let r = WireResource::decode(&res);
                    let disks = (r.num_disks.min(4) as usize) * crate::wire::DISK_LEN;
                    res.extend(self.recv_exact(disks).unwrap_or_default());
                    res
                }
                _ => Vec::new(),
            };
            out.push((state, extra));
        }
        out
    }

    /// The raw fd, for `register` callers that keep the connection as their liveness.
    pub fn into_stream(self) -> UnixStream {
        self.stream
    }

    /// Wraps a stream already connected (a registered connection kept open).
    pub fn from_stream(stream: UnixStream) -> Connection {
        Connection { stream }
    }
}

/// One request, one standard reply: the result.
pub fn call(cmd: Cmd, cmd_flags: u32, data: u32, data2: u32, payload: &[u8]) -> i32 {
    let run = || -> Result<i32, i32> {
        let mut c = Connection::open()?;
        c.request(cmd, cmd_flags, data, data2, payload)?;
        Ok(c.recv_header()?.rv())
    };
    run().unwrap_or_else(|e| e)
}

/// Payload of one lockspace.
pub fn lockspace_payload(ls: &WireLockspace) -> Vec<u8> {
    let mut out = Vec::with_capacity(LOCKSPACE_LEN);
    ls.encode_into(&mut out);
    out
}

/// add_lockspace (ADD_ASYNC with `asynchronous`); `io_timeout` 0 means the daemon's 10 s.
pub fn add_lockspace(ls: &WireLockspace, asynchronous: bool, io_timeout: u32) -> i32 {
    call(
        Cmd::AddLockspace,
        u32::from(asynchronous),
        io_timeout,
        0,
        &lockspace_payload(ls),
    )
}

/// inq_lockspace: 0 joined, -EINPROGRESS being added or removed, -ENOENT otherwise.
pub fn inq_lockspace(ls: &WireLockspace, wait: bool) -> i32 {
    call(
        Cmd::InqLockspace,
        u32::from(wait),
        0,
        0,
        &lockspace_payload(ls),
    )
}

/// rem_lockspace (REM_ASYNC with `asynchronous`, REM_UNUSED with `unused`).
pub fn rem_lockspace(ls: &WireLockspace, asynchronous: bool, unused: bool) -> i32 {
    let flags = u32::from(asynchronous) | (u32::from(unused) << 1);
    call(Cmd::RemLockspace, flags, 0, 0, &lockspace_payload(ls))
}

/// write_lockspace: `io_timeout` 0 means 10.
pub fn write_lockspace(ls: &WireLockspace, io_timeout: u32) -> i32 {
    call(
        Cmd::WriteLockspace,
        ls.flags,
        0,
        io_timeout,
        &lockspace_payload(ls),
    )
}

/// read_lockspace: the result, the io_timeout from disk and the lockspace as the daemon
/// filled it in.
pub fn read_lockspace(ls: &WireLockspace) -> (i32, u32, Option<WireLockspace>) {
    let run = || -> Result<(i32, u32, Option<WireLockspace>), i32> {
        let mut c = Connection::open()?;
        c.request(Cmd::ReadLockspace, ls.flags, 0, 0, &lockspace_payload(ls))?;
        let h = c.recv_header()?;
        if h.rv() < 0 {
            return Ok((h.rv(), h.data2, None));
        }
        let body = c.recv_exact(LOCKSPACE_LEN)?;
        Ok((h.rv(), h.data2, Some(WireLockspace::decode(&body))))
    };
    run().unwrap_or_else(|e| (e, 0, None))
}

/// Payload of one resource with its disks.
pub fn resource_payload(res: &WireResource) -> Vec<u8> {
    let mut out = Vec::new();
    res.encode_into(&mut out, true);
    out
}

/// write_resource: `max_hosts` goes where the daemon reads num_hosts (§4.19).
pub fn write_resource(res: &WireResource, max_hosts: u32, num_hosts: u32, flags: u32) -> i32 {
    call(
        Cmd::WriteResource,
        flags,
        max_hosts,
        num_hosts,
        &resource_payload(res),
    )
}

/// read_resource: the result and the resource the daemon sent back (always sent).
pub fn read_resource(res: &WireResource) -> (i32, Option<WireResource>) {
    let run = || -> Result<(i32, Option<WireResource>), i32> {
        let mut c = Connection::open()?;
        c.request(Cmd::ReadResource, res.flags, 0, 0, &resource_payload(res))?;
        let h = c.recv_header()?;
        let body = c.recv_exact(RESOURCE_LEN)?;
        Ok((h.rv(), Some(WireResource::decode(&body))))
    };
    run().unwrap_or_else(|e| (e, None))
}

/// read_resource_owners: the result, the resource (lver and SHARED filled in) and the owners.
pub fn read_resource_owners(res: &WireResource) -> (i32, Option<WireResource>, Vec<WireHost>) {
    let run = || -> Result<(i32, Option<WireResource>, Vec<WireHost>), i32> {
        let mut c = Connection::open()?;
        c.request(
            Cmd::ReadResourceOwners,
            res.flags,
            0,
            0,
            &resource_payload(res),
        )?;
        let h = c.recv_header()?;
        if h.rv() < 0 {
            return Ok((h.rv(), None, Vec::new()));
        }
        let body = c.recv_exact(RESOURCE_LEN)?;
        let hosts = c.recv_exact(h.data2 as usize * crate::wire::HOST_LEN)?;
        let hosts = hosts
            .chunks(crate::wire::HOST_LEN)
            .map(WireHost::decode)
            .collect();
        Ok((h.rv(), Some(WireResource::decode(&body)), hosts))
    };
    run().unwrap_or_else(|e| (e, None, Vec::new()))
}

/// get_lockspaces: the result and the lockspaces with their ADD/REM flags.
pub fn get_lockspaces() -> (i32, Vec<WireLockspace>) {
    let run = || -> Result<(i32, Vec<WireLockspace>), i32> {
        let mut c = Connection::open()?;
        c.request(Cmd::GetLockspaces, 0, 0, 0, &[])?;
        let h = c.recv_header()?;
        if h.rv() < 0 && h.rv() != -28 {
            return Ok((h.rv(), Vec::new()));
        }
        let body = c.recv_exact(h.data2 as usize * LOCKSPACE_LEN)?;
        let list = body
            .chunks(LOCKSPACE_LEN)
            .map(WireLockspace::decode)
            .collect();
        Ok((h.rv(), list))
    };
    run().unwrap_or_else(|e| (e, Vec::new()))
}

/// get_hosts: the result and the hosts (host_id 0: every host with a timestamp).
pub fn get_hosts(name: &sanlock_core::ondisk::Name, host_id: u64) -> (i32, Vec<WireHost>) {
    let ls = WireLockspace {
        name: *name,
        host_id,
        ..WireLockspace::default()
    };
    let run = || -> Result<(i32, Vec<WireHost>), i32> {
        let mut c = Connection::open()?;
        c.request(Cmd::GetHosts, 0, 0, 0, &lockspace_payload(&ls))?;
        let h = c.recv_header()?;
        if h.rv() < 0 && h.rv() != -28 {
            return Ok((h.rv(), Vec::new()));
        }
        let body = c.recv_exact(h.data2 as usize * crate::wire::HOST_LEN)?;
        let hosts = body
            .chunks(crate::wire::HOST_LEN)
            .map(WireHost::decode)
            .collect();
        Ok((h.rv(), hosts))
    };
    run().unwrap_or_else(|e| (e, Vec::new()))
}

/// version: (result, daemon version number, daemon protocol).
pub fn version() -> (i32, u32, u32) {
    let run = || -> Result<(i32, u32, u32), i32> {
        let mut c = Connection::open()?;
        c.request(Cmd::Version, 0, 0, 0, &[])?;
        let h = c.recv_header()?;
        Ok((h.rv(), h.data2, h.version))
    };
    run().unwrap_or_else(|e| (e, 0, 0))
}

/// Payload of ACQUIRE: each resource with its disks, then a zeroed `sanlk_options`.
pub fn acquire_payload(resources: &[WireResource]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in resources {
        r.encode_into(&mut out, true);
    }
    crate::wire::WireOptions::default().encode_into(&mut out);
    out
}

/// Payload of RELEASE and CONVERT: resources without disks.
pub fn names_payload(resources: &[WireResource]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in resources {
        r.encode_into(&mut out, false);
    }
    out
}

fn neg_errno(e: &std::io::Error) -> i32 {
    -e.raw_os_error().unwrap_or(5)
}

/// A rindex request (everything but format and rebuild): the result and the entry the daemon
/// sends back (libsanlock copies it only on success).
pub fn rindex_entry_call(
    cmd: Cmd,
    cmd_flags: u32,
    data: u32,
    data2: u32,
    rx: &crate::wire::WireRindex,
    entry: &crate::wire::WireRentry,
) -> (i32, Option<crate::wire::WireRentry>) {
    let mut payload = Vec::new();
    rx.encode_into(&mut payload);
    entry.encode_into(&mut payload);
    let run = || -> Result<(i32, Option<crate::wire::WireRentry>), i32> {
        let mut c = Connection::open()?;
        let mut header = Header::request(cmd, cmd_flags, data, data2, payload.len());
        if cmd == Cmd::LookupRindex {
            // libsanlock counts a whole sanlk_resource here, though it sends a rentry.
            header.length = (crate::wire::HEADER_LEN
                + crate::wire::RINDEX_LEN
                + crate::wire::RESOURCE_LEN) as u32;
        }
        c.send(header, &payload)?;
        let h = c.recv_header()?;
        if h.rv() < 0 {
            return Ok((h.rv(), None));
        }
        let back = c.recv_exact(crate::wire::RENTRY_LEN)?;
        Ok((h.rv(), Some(crate::wire::WireRentry::decode(&back))))
    };
    run().unwrap_or_else(|e| (e, None))
}

/// FORMAT_RINDEX or REBUILD_RINDEX.
pub fn rindex_call(cmd: Cmd, cmd_flags: u32, rx: &crate::wire::WireRindex) -> i32 {
    let mut payload = Vec::new();
    rx.encode_into(&mut payload);
    call(cmd, cmd_flags, 0, 0, &payload)
}

/// SET_EVENT for lockspace `name`.
pub fn set_event(
    name: &sanlock_core::ondisk::Name,
    event: &crate::wire::WireHostEvent,
    flags: u32,
) -> i32 {
    let mut payload = lockspace_payload(&WireLockspace {
        name: *name,
        ..WireLockspace::default()
    });
    event.encode_into(&mut payload);
    call(Cmd::SetEvent, flags, 0, 0, &payload)
}

/// SET_CONFIG `cmd` on lockspace `name`.
pub fn set_config(name: &sanlock_core::ondisk::Name, cmd: u32) -> i32 {
    let payload = lockspace_payload(&WireLockspace {
        name: *name,
        ..WireLockspace::default()
    });
    call(Cmd::SetConfig, 0, cmd, 0, &payload)
}

/// A host message's reply (our extension, docs/MESSAGES.md): the result, and the message's
/// status when the daemon got as far as a message.
fn message_call(
    cmd: Cmd,
    name: &sanlock_core::ondisk::Name,
    event: Option<&crate::wire::WireHostEvent>,
    wait_s: u32,
    seq: u32,
) -> (i32, Option<crate::wire::WireMessageStatus>) {
    use crate::wire::{WireMessageStatus, MESSAGE_STATUS_LEN};
    let run = || -> Result<(i32, Option<WireMessageStatus>), i32> {
        let mut payload = lockspace_payload(&WireLockspace {
            name: *name,
            ..WireLockspace::default()
        });
        if let Some(event) = event {
            event.encode_into(&mut payload);
        }
        let mut c = Connection::open()?;
        c.request(cmd, 0, wait_s, seq, &payload)?;
        let h = c.recv_header()?;
        if (h.length as usize) < HEADER_LEN + MESSAGE_STATUS_LEN {
            return Ok((h.rv(), None));
        }
        let body = c.recv_exact(MESSAGE_STATUS_LEN)?;
        Ok((h.rv(), Some(WireMessageStatus::decode(&body))))
    };
    run().unwrap_or_else(|e| (e, None))
}

/// MESSAGE_SEND: `event.event` and `event.data` to host `event.host_id` (of generation
/// `event.generation`, 0 for its current one) in lockspace `name`; waits up to `wait_s`
/// seconds for its ack (0: answers at once with its number).
pub fn message(
    name: &sanlock_core::ondisk::Name,
    event: &crate::wire::WireHostEvent,
    wait_s: u32,
) -> (i32, Option<crate::wire::WireMessageStatus>) {
    message_call(Cmd::MessageSend, name, Some(event), wait_s, 0)
}

/// Whether the daemon answers our host-message commands: MESSAGE_STATUS of number 0, which
/// ours answers at once (-ENOENT); sanlock 3.8.5 leaves an unknown command unanswered, so no
/// answer within `within` means no.
pub fn supports_messages(within: std::time::Duration) -> bool {
    let run = || -> Result<bool, i32> {
        let mut c = Connection::open()?;
        c.stream
            .set_read_timeout(Some(within))
            .map_err(|e| neg_errno(&e))?;
        let payload = lockspace_payload(&WireLockspace::default());
        c.request(Cmd::MessageStatus, 0, 0, 0, &payload)?;
        Ok(c.recv_header().is_ok())
    };
    run().unwrap_or(false)
}

/// MESSAGE_STATUS of message `seq`, waiting up to `wait_s` seconds for it to resolve.
pub fn message_status(
    name: &sanlock_core::ondisk::Name,
    seq: u32,
    wait_s: u32,
) -> (i32, Option<crate::wire::WireMessageStatus>) {
    message_call(Cmd::MessageStatus, name, None, wait_s, seq)
}

/// FENCE host `host_id` (of `generation`, 0 for its current one): returns 0 once it has
/// acknowledged RESET and left the lockspace, or is dead; waits up to `wait_s` seconds (0:
/// until it must be dead by its host_dead_seconds).
pub fn fence(
    name: &sanlock_core::ondisk::Name,
    host_id: u64,
    generation: u64,
    wait_s: u32,
) -> (i32, Option<crate::wire::WireMessageStatus>) {
    let event = crate::wire::WireHostEvent {
        host_id,
        generation,
        event: 0,
        data: 0,
    };
    message_call(Cmd::Fence, name, Some(&event), wait_s, 0)
}
