//! One client connection: read a header, judge it, read exactly the payload its command
//! defines, and either answer it here (the disk-only requests, on a blocking thread) or hand
//! it to the engine and send what the engine answers (wire.md §1.3). A bad header gets no reply
//! and the connection stays open; EOF is the client's death when it registered.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::disk_ops;
use super::log;
use super::messages::{Call, Msg, Reply};
use crate::wire::payload::{HOST_EVENT_LEN, MAX_DISKS};
use crate::wire::{
    Cmd, Header, WireDisk, WireHostEvent, WireLockspace, WireOptions, WireRentry, WireResource,
    WireRindex, DISK_LEN, HEADER_LEN, LOCKSPACE_LEN, OPTIONS_LEN, RENTRY_LEN, RESOURCE_LEN,
    RINDEX_LEN,
};

const E2BIG: i32 = -7;
const ERANGE: i32 = -34;
const ENOTCONN: i32 = -107;
const EIO: i32 = -5;
/// SANLK_MAX_RESOURCES.
const MAX_RESOURCES: u32 = 8;
/// SANLK_HELPER_PATH_LEN and SANLK_HELPER_ARGS_LEN: the killpath payload's two fields.
const KILLPATH_FIELD: usize = 128;
/// RESTRICT_ALL: every later message is dropped.
const RESTRICT_ALL: u32 = 1;

/// A payload read came up short: the peer closed or sent less than the command defines.
struct Short;

/// Why a request got no answer of its own.
enum Fail {
    /// Its payload came up short: answered -ENOTCONN, and the connection closes.
    Short,
    /// Its disk operation panicked: answered -EIO; the connection and the daemon go on.
    Panicked,
}

impl From<Short> for Fail {
    fn from(_: Short) -> Fail {
        Fail::Short
    }
}

/// Tells the engine the connection is gone however `serve` ends, a panic in it included, so
/// that its client slot is freed (unless it became an event fd, whose slot went then).
struct Closing {
    ci: usize,
    engine: mpsc::UnboundedSender<Msg>,
    detached: bool,
}

impl Drop for Closing {
    fn drop(&mut self) {
        if std::thread::panicking() {
            log::log(
                log::ERR,
                &format!("ci {} connection task panicked", self.ci),
            );
        }
        if !self.detached {
            let _ = self.engine.send(Msg::Closed { ci: self.ci });
        }
    }
}

/// Serves one connection until it closes.
pub async fn serve(ci: usize, mut stream: UnixStream, engine: mpsc::UnboundedSender<Msg>) {
    let mut restrict_all = false;
    let mut closing = Closing {
        ci,
        engine: engine.clone(),
        detached: false,
    };
    loop {
        let mut buf = [0u8; HEADER_LEN];
        if stream.read_exact(&mut buf).await.is_err() {
            break;
        }
        let header = Header::decode(&buf);
        if restrict_all {
            log::log(
                log::ERR,
                &format!("ci {ci} cmd {} on restricted connection", header.cmd),
            );
            continue;
        }
        if let Some(why) = header.refusal() {
            log::log(
                log::ERR,
                &format!(
                    "ci {ci} {why}: magic {:x} version {:x} cmd {}",
                    header.magic, header.version, header.cmd
                ),
            );
            continue;
        }
        let cmd = Cmd::from_u32(header.cmd).expect("refusal checked the command");
        if cmd == Cmd::Restrict {
            restrict_all = header.cmd_flags & RESTRICT_ALL != 0;
        }
        let detached = &mut closing.detached;
        let reply = match handle(ci, cmd, header, &mut stream, &engine, detached).await {
            Ok(Some(reply)) => reply,
            Ok(None) => continue,
            Err(Fail::Short) => Reply::close(header.result(ENOTCONN).encode().to_vec()),
            Err(Fail::Panicked) => Reply::keep(header.result(EIO)),
        };
        if !reply.bytes.is_empty() && stream.write_all(&reply.bytes).await.is_err() {
            break;
        }
        if reply.close {
            break;
        }
    }
}

/// Reads `cmd`'s payload and answers it. `Ok(None)`: nothing to send (REGISTER).
async fn handle(
    ci: usize,
    cmd: Cmd,
    header: Header,
    stream: &mut UnixStream,
    engine: &mpsc::UnboundedSender<Msg>,
    detached: &mut bool,
) -> Result<Option<Reply>, Fail> {
    let call = match cmd {
        Cmd::Register => {
            let _ = engine.send(Msg::Register { ci });
            return Ok(None);
        }
        Cmd::Version => Call::Version,
        Cmd::Restrict => Call::Restrict,
        Cmd::Shutdown => Call::Shutdown,
        Cmd::ShutdownWait => Call::ShutdownWait,
        Cmd::Status => Call::Status,
        Cmd::Show => Call::Show,
        Cmd::LogDump => Call::LogDump,
        Cmd::GetLockspaces => Call::GetLockspaces,
        Cmd::Inquire => Call::Inquire,
        Cmd::AddLockspace => Call::AddLockspace(read_lockspace(stream).await?),
        Cmd::InqLockspace => Call::InqLockspace(read_lockspace(stream).await?),
        Cmd::RemLockspace => Call::RemLockspace(read_lockspace(stream).await?),
        Cmd::GetHosts => Call::GetHosts(read_lockspace(stream).await?),
        Cmd::HostStatus => Call::HostStatus(read_lockspace(stream).await?),
        Cmd::Renewal => Call::Renewal(read_lockspace(stream).await?),
        Cmd::Acquire => {
            if header.data > MAX_RESOURCES {
                // Checked before the payload; what was sent is drained (§4.4 step 1).
                drain(stream, header.length).await;
                return Ok(Some(Reply::keep(header.result(E2BIG))));
            }
            let mut resources = Vec::new();
            for _ in 0..header.data {
                let Some(r) = read_resource(stream, true).await? else {
                    return Ok(Some(Reply::keep(header.result(ERANGE))));
                };
                resources.push(r);
            }
            let options = WireOptions::decode(&read_bytes(stream, OPTIONS_LEN).await?);
            Call::Acquire { resources, options }
        }
        Cmd::Release => {
            // REL_ALL reads no payload, whatever data says (§4.5).
            let count = if header.cmd_flags & 1 != 0 {
                0
            } else if header.cmd_flags & 4 != 0 {
                // REL_ORPHAN: one resource (a name, or empty for all of a lockspace).
                1
            } else if header.cmd_flags & 2 != 0 {
                2
            } else {
                header.data.min(MAX_RESOURCES)
            };
            let mut resources = Vec::new();
            for _ in 0..count {
                resources.push(WireResource::decode(
                    &read_bytes(stream, RESOURCE_LEN).await?,
                ));
            }
            Call::Release(resources)
        }
        Cmd::Convert => Call::Convert(WireResource::decode(
            &read_bytes(stream, RESOURCE_LEN).await?,
        )),
        Cmd::WriteLockspace => {
            let ls = read_lockspace(stream).await?;
            let rv = blocking(move || disk_ops::write_lockspace(&ls, header.data2)).await?;
            return Ok(Some(Reply::keep(header.result(rv))));
        }
        Cmd::ReadLockspace => {
            let ls = read_lockspace(stream).await?;
            let (rv, io_timeout, out) = blocking(move || disk_ops::read_lockspace(&ls)).await?;
            let mut reply = header.result(rv);
            reply.data2 = io_timeout;
            reply.length = (HEADER_LEN + LOCKSPACE_LEN) as u32;
            let mut bytes = reply.encode().to_vec();
            out.encode_into(&mut bytes);
            return Ok(Some(Reply::keep_bytes(bytes)));
        }
        Cmd::WriteResource => {
            let Some(res) = read_resource(stream, true).await? else {
                return Ok(Some(Reply::keep(header.result(ERANGE))));
            };
            let clear = header.cmd_flags & 1 != 0;
            let rv = blocking(move || disk_ops::write_resource(&res, header.data, clear)).await?;
            return Ok(Some(Reply::keep(header.result(rv))));
        }
        Cmd::ReadResource => {
            let Some(res) = read_resource(stream, true).await? else {
                return Ok(Some(Reply::keep(header.result(ERANGE))));
            };
            let (rv, out) = blocking(move || disk_ops::read_resource(&res)).await?;
            let mut reply = header.result(rv);
            reply.length = (HEADER_LEN + RESOURCE_LEN) as u32;
            let mut bytes = reply.encode().to_vec();
            out.encode_into(&mut bytes, false);
            return Ok(Some(Reply::keep_bytes(bytes)));
        }
        Cmd::ReadResourceOwners => {
            let Some(res) = read_resource(stream, true).await? else {
                return Ok(Some(Reply::keep(header.result(ERANGE))));
            };
            let (rv, out, owners) = blocking(move || disk_ops::read_resource_owners(&res)).await?;
            let mut reply = header.result(rv);
            reply.data2 = owners.len() as u32;
            reply.length =
                (HEADER_LEN + RESOURCE_LEN + owners.len() * crate::wire::HOST_LEN) as u32;
            let mut bytes = reply.encode().to_vec();
            out.encode_into(&mut bytes, false);
            for o in &owners {
                o.encode_into(&mut bytes);
            }
            return Ok(Some(Reply::keep_bytes(bytes)));
        }
        Cmd::Align => {
            let disk = WireDisk::decode(&read_bytes(stream, DISK_LEN).await?);
            let rv = blocking(move || disk_ops::align(&disk.path)).await?;
            return Ok(Some(Reply::keep(header.result(rv))));
        }
        Cmd::RegEvent => {
            let ls = read_lockspace(stream).await?;
            // The host_event that follows is unused (§4.22).
            let _ = read_bytes(stream, HOST_EVENT_LEN).await?;
            let (sink, events) = mpsc::unbounded_channel();
            let (tx, rx) = oneshot::channel();
            let msg = Msg::RegEvent {
                ci,
                header,
                ls,
                sink,
                reply: tx,
            };
            let reply = if engine.send(msg).is_ok() {
                rx.await.unwrap_or_else(|_| Reply::close(Vec::new()))
            } else {
                Reply::close(Vec::new())
            };
            let ok = <&[u8; HEADER_LEN]>::try_from(&reply.bytes[..])
                .is_ok_and(|b| Header::decode(b).rv() == 0);
            if !ok {
                return Ok(Some(reply));
            }
            // The connection is now the event fd: its slot goes, as sanlock frees the client
            // and keeps only its dup.
            let _ = engine.send(Msg::Closed { ci });
            *detached = true;
            if stream.write_all(&reply.bytes).await.is_ok() {
                event_sink(stream, events).await;
            }
            return Ok(Some(Reply::close(Vec::new())));
        }
        Cmd::SetEvent => {
            let ls = read_lockspace(stream).await?;
            let event = WireHostEvent::decode(&read_bytes(stream, HOST_EVENT_LEN).await?);
            Call::SetEvent { ls, event }
        }
        Cmd::EndEvent => Call::EndEvent(read_lockspace(stream).await?),
        Cmd::MessageSend | Cmd::Fence => {
            let ls = read_lockspace(stream).await?;
            let event = WireHostEvent::decode(&read_bytes(stream, HOST_EVENT_LEN).await?);
            Call::Message {
                ls,
                event,
                fence: cmd == Cmd::Fence,
            }
        }
        Cmd::MessageStatus => Call::MessageStatus(read_lockspace(stream).await?),
        Cmd::SetConfig => Call::SetConfig(read_lockspace(stream).await?),
        Cmd::ExamineLockspace => Call::Examine {
            space: read_lockspace(stream).await?.name,
            resource: None,
        },
        Cmd::ExamineResource => {
            let res = WireResource::decode(&read_bytes(stream, RESOURCE_LEN).await?);
            Call::Examine {
                space: res.lockspace_name,
                resource: Some(res.name),
            }
        }
        Cmd::Request => {
            let Some(res) = read_resource(stream, true).await? else {
                return Ok(Some(Reply::keep(header.result(ERANGE))));
            };
            Call::Request(res)
        }
        Cmd::Killpath => {
            let path = read_bytes(stream, KILLPATH_FIELD).await?;
            let args = read_bytes(stream, KILLPATH_FIELD).await?;
            Call::Killpath {
                path: c_string(&path),
                args: c_string(&args),
            }
        }
        Cmd::SetLvb => {
            let res = WireResource::decode(&read_bytes(stream, RESOURCE_LEN).await?);
            let lvb_len = (header.length as usize).saturating_sub(HEADER_LEN + RESOURCE_LEN);
            if lvb_len > 4096 {
                // Refused before the LVB is read (cmd_set_lvb); what follows stays unread.
                return Ok(Some(Reply::keep(header.result(E2BIG))));
            }
            let lvb = read_bytes(stream, lvb_len).await?;
            Call::SetLvb { res, lvb }
        }
        Cmd::GetLvb => Call::GetLvb(WireResource::decode(
            &read_bytes(stream, RESOURCE_LEN).await?,
        )),
        Cmd::FormatRindex | Cmd::RebuildRindex => {
            let rx = WireRindex::decode(&read_bytes(stream, RINDEX_LEN).await?);
            Call::Rindex {
                cmd,
                rx,
                entry: WireRentry::default(),
            }
        }
        Cmd::UpdateRindex | Cmd::LookupRindex | Cmd::CreateResource | Cmd::DeleteResource => {
            let rx = WireRindex::decode(&read_bytes(stream, RINDEX_LEN).await?);
            let entry = WireRentry::decode(&read_bytes(stream, RENTRY_LEN).await?);
            Call::Rindex { cmd, rx, entry }
        }
    };
    Ok(Some(ask(engine, ci, header, call).await))
}

/// Hands `call` to the engine and waits for its answer.
async fn ask(engine: &mpsc::UnboundedSender<Msg>, ci: usize, header: Header, call: Call) -> Reply {
    let (tx, rx) = oneshot::channel();
    if engine
        .send(Msg::Call {
            ci,
            header,
            call,
            reply: tx,
        })
        .is_err()
    {
        return Reply::close(Vec::new());
    }
    rx.await.unwrap_or_else(|_| Reply::close(Vec::new()))
}

/// A registered event fd (§4.22): sends each event_cb the engine hands over, and ends when the
/// client writes the value 1 (end_event), closes, or a send fails. Other 4-byte values are
/// read and ignored, as sanlock's END_EVENT does.
async fn event_sink(stream: &mut UnixStream, mut events: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut word = [0u8; 4];
    let mut have = 0;
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return };
                // sanlock sends with MSG_DONTWAIT: a client that does not read loses its slot.
                match stream.try_write(&ev) {
                    Ok(n) if n == ev.len() => {}
                    _ => return,
                }
            }
            n = stream.read(&mut word[have..]) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    have += n;
                    if have == 4 {
                        if u32::from_le_bytes(word) == 1 {
                            return;
                        }
                        have = 0;
                    }
                }
            },
        }
    }
}

/// A NUL-padded field up to its first NUL (its last byte counts as NUL, as sanlock forces).
fn c_string(field: &[u8]) -> Vec<u8> {
    let field = &field[..field.len() - 1];
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    field[..end].to_vec()
}

async fn read_bytes(stream: &mut UnixStream, len: usize) -> Result<Vec<u8>, Short> {
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await.map_err(|_| Short)?;
    Ok(buf)
}

async fn read_lockspace(stream: &mut UnixStream) -> Result<WireLockspace, Short> {
    Ok(WireLockspace::decode(
        &read_bytes(stream, LOCKSPACE_LEN).await?,
    ))
}

/// A resource and, with `disks`, its num_disks disks. `Ok(None)`: num_disks was 0 or above 4
/// (-ERANGE); no disks were read.
async fn read_resource(
    stream: &mut UnixStream,
    disks: bool,
) -> Result<Option<WireResource>, Short> {
    let mut res = WireResource::decode(&read_bytes(stream, RESOURCE_LEN).await?);
    if disks {
        if res.num_disks == 0 || res.num_disks > MAX_DISKS {
            return Ok(None);
        }
        for _ in 0..res.num_disks {
            res.disks
                .push(WireDisk::decode(&read_bytes(stream, DISK_LEN).await?));
        }
    }
    Ok(Some(res))
}

/// Reads and drops what a refused request sent after its header (bounded by what sanlock
/// would ever send: 8 resources of 4 disks and the options).
async fn drain(stream: &mut UnixStream, length: u32) {
    const MOST: usize = 8 * (RESOURCE_LEN + 4 * DISK_LEN) + OPTIONS_LEN;
    let len = (length as usize).saturating_sub(HEADER_LEN).min(MOST);
    let mut buf = vec![0u8; len];
    let _ = stream.read_exact(&mut buf).await;
}

/// Runs a disk operation on a blocking thread. A panic in it fails this request alone (logged;
/// answered -EIO), not the connection's task, whose slot would then never be freed.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Fail> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Ok(v),
        Err(e) => {
            log::log(log::ERR, &format!("disk operation failed: {e}"));
            Err(Fail::Panicked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_disk_operation_that_panics_fails_its_request_alone() {
        let failed = blocking(|| -> i32 { panic!("injected") }).await;
        assert!(matches!(failed, Err(Fail::Panicked)));
        assert!(matches!(blocking(|| 7).await, Ok(7)));
    }

    #[tokio::test]
    async fn a_connection_task_that_panics_still_frees_its_client_slot() {
        let (engine, mut seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let _closing = Closing {
                ci: 5,
                engine,
                detached: false,
            };
            panic!("injected");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert!(matches!(seen.recv().await, Some(Msg::Closed { ci: 5 })));
        // An event fd's slot went when it became one: nothing more is sent.
        let (engine, mut seen) = mpsc::unbounded_channel();
        drop(Closing {
            ci: 6,
            engine,
            detached: true,
        });
        assert!(seen.recv().await.is_none());
    }
}
