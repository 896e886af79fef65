//! One client connection: read a header, judge it, read exactly the payload its command
//! defines, and either answer it here (the disk-only requests, on a blocking thread) or hand
//! it to the engine and send what the engine answers (wire.md §1.3). A bad header gets no reply
//! and the connection stays open; EOF is the client's death when it registered.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::disk_ops;
use super::engine::{Call, Msg, Reply};
use super::log;
use crate::wire::payload::{HOST_EVENT_LEN, MAX_DISKS};
use crate::wire::{
    Cmd, Header, WireDisk, WireLockspace, WireOptions, WireResource, DISK_LEN, HEADER_LEN,
    LOCKSPACE_LEN, OPTIONS_LEN, RESOURCE_LEN,
};

const E2BIG: i32 = -7;
const ERANGE: i32 = -34;
const ENOTCONN: i32 = -107;
/// SANLK_MAX_RESOURCES.
const MAX_RESOURCES: u32 = 8;
/// RESTRICT_ALL: every later message is dropped.
const RESTRICT_ALL: u32 = 1;

/// A payload read came up short: the peer closed or sent less than the command defines.
struct Short;

/// Serves one connection until it closes.
pub async fn serve(ci: usize, mut stream: UnixStream, engine: mpsc::UnboundedSender<Msg>) {
    let mut restrict_all = false;
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
        let reply = match handle(ci, cmd, header, &mut stream, &engine).await {
            Ok(Some(reply)) => reply,
            Ok(None) => continue,
            Err(Short) => Reply::close(header.result(ENOTCONN).encode().to_vec()),
        };
        if !reply.bytes.is_empty() && stream.write_all(&reply.bytes).await.is_err() {
            break;
        }
        if reply.close {
            break;
        }
    }
    let _ = engine.send(Msg::Closed { ci });
}

/// Reads `cmd`'s payload and answers it. `Ok(None)`: nothing to send (REGISTER).
async fn handle(
    ci: usize,
    cmd: Cmd,
    header: Header,
    stream: &mut UnixStream,
    engine: &mpsc::UnboundedSender<Msg>,
) -> Result<Option<Reply>, Short> {
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
            let rv = blocking(move || disk_ops::write_lockspace(&ls, header.data2)).await;
            return Ok(Some(Reply::keep(header.result(rv))));
        }
        Cmd::ReadLockspace => {
            let ls = read_lockspace(stream).await?;
            let (rv, io_timeout, out) = blocking(move || disk_ops::read_lockspace(&ls)).await;
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
            let rv = blocking(move || disk_ops::write_resource(&res, header.data, clear)).await;
            return Ok(Some(Reply::keep(header.result(rv))));
        }
        Cmd::ReadResource => {
            let Some(res) = read_resource(stream, true).await? else {
                return Ok(Some(Reply::keep(header.result(ERANGE))));
            };
            let (rv, out) = blocking(move || disk_ops::read_resource(&res)).await;
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
            let (rv, out, owners) = blocking(move || disk_ops::read_resource_owners(&res)).await;
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
            let rv = blocking(move || disk_ops::align(&disk.path)).await;
            return Ok(Some(Reply::keep(header.result(rv))));
        }
        Cmd::RegEvent | Cmd::SetEvent => {
            // Read what the command carries, then answer what is not built yet.
            let _ = read_lockspace(stream).await?;
            let _ = read_bytes(stream, HOST_EVENT_LEN).await?;
            return Ok(Some(not_built(cmd, header)));
        }
        Cmd::EndEvent | Cmd::SetConfig | Cmd::ExamineLockspace => {
            let _ = read_lockspace(stream).await?;
            return Ok(Some(not_built(cmd, header)));
        }
        Cmd::ExamineResource | Cmd::GetLvb => {
            let _ = read_bytes(stream, RESOURCE_LEN).await?;
            return Ok(Some(not_built(cmd, header)));
        }
        Cmd::Request => {
            let _ = read_resource(stream, true).await?;
            return Ok(Some(not_built(cmd, header)));
        }
        Cmd::Killpath => {
            let _ = read_bytes(stream, 256).await?;
            return Ok(Some(not_built(cmd, header)));
        }
        Cmd::SetLvb => {
            let _ = read_bytes(stream, RESOURCE_LEN).await?;
            let lvb_len = (header.length as usize).saturating_sub(HEADER_LEN + RESOURCE_LEN);
            drain(stream, lvb_len.min(4096) as u32).await;
            return Ok(Some(not_built(cmd, header)));
        }
        Cmd::FormatRindex
        | Cmd::RebuildRindex
        | Cmd::UpdateRindex
        | Cmd::LookupRindex
        | Cmd::CreateResource
        | Cmd::DeleteResource => {
            let _ = read_lockspace(stream).await?;
            if cmd != Cmd::FormatRindex && cmd != Cmd::RebuildRindex {
                let _ = read_bytes(stream, 64).await?;
            }
            return Ok(Some(not_built(cmd, header)));
        }
    };
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
        return Ok(Some(Reply::close(Vec::new())));
    }
    Ok(Some(rx.await.unwrap_or_else(|_| Reply::close(Vec::new()))))
}

/// The commands of the next issue (events, requests, LVB, rindex, killpath) answer -EOPNOTSUPP
/// until they are built, and say so in the log, rather than pretend to succeed.
fn not_built(cmd: Cmd, header: Header) -> Reply {
    log::log(
        log::ERR,
        &format!("{cmd:?} is not implemented in sanlock-rs yet: -EOPNOTSUPP"),
    );
    Reply::keep(header.result(-95))
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

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a disk operation does not panic")
}
