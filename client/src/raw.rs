//! The daemon's socket as libsanlock sees it (wire.md §3): each call opens a connection, sends
//! one request and reads its reply, and results are what libsanlock returns: the reply's signed
//! `data`, -errno for socket errors, -1 for a short reply. The `sanlock client` actions use this
//! layer, since they print those numbers and pass any flags through; programs want the typed
//! [`crate::Client`] built on it.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use crate::proto::{self, Reply, Request, Shape};
pub use crate::proto::{acquire_payload, lockspace_payload, names_payload, resource_payload};
use sanlock_wire::{
    Cmd, Header, Name, WireHost, WireLockspace, WireResource, WireState, HEADER_LEN,
};

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
        let mut body = Vec::new();
        // A read error ends the stream as EOF does; the records read so far stand.
        let _ = self.stream.read_to_end(&mut body);
        proto::states(&body)
    }

    /// Sends `req` and reads the reply its shape says.
    pub fn exchange(&mut self, req: &Request) -> Result<Reply, i32> {
        self.stream
            .write_all(&req.bytes())
            .map_err(|e| neg_errno(&e))?;
        if req.shape == Shape::Nothing {
            return Ok(Reply::default());
        }
        let header = self.recv_header()?;
        let body = match req.shape.body_len(&header) {
            Some(len) => self.recv_exact(len)?,
            None => {
                let mut body = Vec::new();
                self.stream
                    .read_to_end(&mut body)
                    .map_err(|e| neg_errno(&e))?;
                body
            }
        };
        Ok(Reply { header, body })
    }

    /// Makes reads and writes on the connection fail with EAGAIN after `timeout` (None: wait
    /// for ever, the default).
    pub fn set_timeout(&mut self, timeout: Option<std::time::Duration>) -> Result<(), i32> {
        self.stream
            .set_read_timeout(timeout)
            .and_then(|()| self.stream.set_write_timeout(timeout))
            .map_err(|e| neg_errno(&e))
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

/// Opens a connection, sends `req` and reads its reply.
pub fn exchange(req: &Request) -> Result<Reply, i32> {
    Connection::open()?.exchange(req)
}

/// One request, one standard reply: the result.
pub fn call(cmd: Cmd, cmd_flags: u32, data: u32, data2: u32, payload: &[u8]) -> i32 {
    exchange(&Request::new(cmd, cmd_flags, data, data2, payload.to_vec()))
        .map(|r| r.rv())
        .unwrap_or_else(|e| e)
}

/// add_lockspace (ADD_ASYNC with `asynchronous`); `io_timeout` 0 means the daemon's 10 s.
pub fn add_lockspace(ls: &WireLockspace, asynchronous: bool, io_timeout: u32) -> i32 {
    let payload = lockspace_payload(ls);
    call(
        Cmd::AddLockspace,
        u32::from(asynchronous),
        io_timeout,
        0,
        &payload,
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
    let req = Request::new(Cmd::ReadLockspace, ls.flags, 0, 0, lockspace_payload(ls));
    exchange(&req)
        .map(|r| proto::lockspace_reply(&r))
        .unwrap_or_else(|e| (e, 0, None))
}

/// write_resource: `max_hosts` goes where the daemon reads num_hosts (§4.19).
pub fn write_resource(res: &WireResource, max_hosts: u32, num_hosts: u32, flags: u32) -> i32 {
    let payload = resource_payload(res);
    call(Cmd::WriteResource, flags, max_hosts, num_hosts, &payload)
}

/// read_resource: the result and the resource the daemon sent back (always sent).
pub fn read_resource(res: &WireResource) -> (i32, Option<WireResource>) {
    let req = Request::new(Cmd::ReadResource, res.flags, 0, 0, resource_payload(res));
    exchange(&req)
        .map(|r| proto::resource_reply(&r))
        .unwrap_or_else(|e| (e, None))
}

/// read_resource_owners: the result, the resource (lver and SHARED filled in) and the owners.
pub fn read_resource_owners(res: &WireResource) -> (i32, Option<WireResource>, Vec<WireHost>) {
    let req = Request::new(
        Cmd::ReadResourceOwners,
        res.flags,
        0,
        0,
        resource_payload(res),
    );
    exchange(&req)
        .map(|r| proto::owners_reply(&r))
        .unwrap_or_else(|e| (e, None, Vec::new()))
}

/// get_lockspaces: the result and the lockspaces with their ADD/REM flags.
pub fn get_lockspaces() -> (i32, Vec<WireLockspace>) {
    exchange(&Request::new(Cmd::GetLockspaces, 0, 0, 0, Vec::new()))
        .map(|r| proto::lockspaces_reply(&r))
        .unwrap_or_else(|e| (e, Vec::new()))
}

/// get_hosts: the result and the hosts (host_id 0: every host with a timestamp).
pub fn get_hosts(name: &Name, host_id: u64) -> (i32, Vec<WireHost>) {
    let ls = WireLockspace {
        name: *name,
        host_id,
        ..WireLockspace::default()
    };
    exchange(&Request::new(
        Cmd::GetHosts,
        0,
        0,
        0,
        lockspace_payload(&ls),
    ))
    .map(|r| proto::hosts_reply(&r))
    .unwrap_or_else(|e| (e, Vec::new()))
}

/// version: (result, daemon version number, daemon protocol).
pub fn version() -> (i32, u32, u32) {
    exchange(&Request::new(Cmd::Version, 0, 0, 0, Vec::new()))
        .map(|r| (r.rv(), r.header.data2, r.header.version))
        .unwrap_or_else(|e| (e, 0, 0))
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
    rx: &sanlock_wire::WireRindex,
    entry: &sanlock_wire::WireRentry,
) -> (i32, Option<sanlock_wire::WireRentry>) {
    exchange(&proto::rindex_entry(cmd, cmd_flags, data, data2, rx, entry))
        .map(|r| proto::rentry_reply(&r))
        .unwrap_or_else(|e| (e, None))
}

/// FORMAT_RINDEX or REBUILD_RINDEX.
pub fn rindex_call(cmd: Cmd, cmd_flags: u32, rx: &sanlock_wire::WireRindex) -> i32 {
    let mut payload = Vec::new();
    rx.encode_into(&mut payload);
    call(cmd, cmd_flags, 0, 0, &payload)
}

/// SET_EVENT for lockspace `name`.
pub fn set_event(name: &Name, event: &sanlock_wire::WireHostEvent, flags: u32) -> i32 {
    let mut payload = proto::name_payload(name);
    event.encode_into(&mut payload);
    call(Cmd::SetEvent, flags, 0, 0, &payload)
}

/// SET_CONFIG `cmd` on lockspace `name`.
pub fn set_config(name: &Name, cmd: u32) -> i32 {
    call(Cmd::SetConfig, 0, cmd, 0, &proto::name_payload(name))
}

/// A host message's request (our extension, docs/MESSAGES.md).
pub fn message_request(
    cmd: Cmd,
    name: &Name,
    event: Option<&sanlock_wire::WireHostEvent>,
    wait_s: u32,
    seq: u32,
) -> Request {
    let mut payload = proto::name_payload(name);
    if let Some(event) = event {
        event.encode_into(&mut payload);
    }
    Request::new(cmd, 0, wait_s, seq, payload)
}

/// MESSAGE_SEND: `event.event` and `event.data` to host `event.host_id` (of generation
/// `event.generation`, 0 for its current one) in lockspace `name`; waits up to `wait_s`
/// seconds for its ack (0: answers at once with its number).
pub fn message(
    name: &Name,
    event: &sanlock_wire::WireHostEvent,
    wait_s: u32,
) -> (i32, Option<sanlock_wire::WireMessageStatus>) {
    exchange(&message_request(
        Cmd::MessageSend,
        name,
        Some(event),
        wait_s,
        0,
    ))
    .map(|r| proto::message_reply(&r))
    .unwrap_or_else(|e| (e, None))
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
        let req = message_request(Cmd::MessageStatus, &Name::EMPTY, None, 0, 0);
        Ok(c.exchange(&req).is_ok())
    };
    run().unwrap_or(false)
}

/// MESSAGE_STATUS of message `seq`, waiting up to `wait_s` seconds for it to resolve.
pub fn message_status(
    name: &Name,
    seq: u32,
    wait_s: u32,
) -> (i32, Option<sanlock_wire::WireMessageStatus>) {
    exchange(&message_request(
        Cmd::MessageStatus,
        name,
        None,
        wait_s,
        seq,
    ))
    .map(|r| proto::message_reply(&r))
    .unwrap_or_else(|e| (e, None))
}

/// FENCE host `host_id` (of `generation`, 0 for its current one): returns 0 once it has
/// acknowledged RESET and left the lockspace, or is dead; waits up to `wait_s` seconds (0:
/// until it must be dead by its host_dead_seconds).
pub fn fence(
    name: &Name,
    host_id: u64,
    generation: u64,
    wait_s: u32,
) -> (i32, Option<sanlock_wire::WireMessageStatus>) {
    let event = sanlock_wire::WireHostEvent {
        host_id,
        generation,
        event: 0,
        data: 0,
    };
    exchange(&message_request(Cmd::Fence, name, Some(&event), wait_s, 0))
        .map(|r| proto::message_reply(&r))
        .unwrap_or_else(|e| (e, None))
}
