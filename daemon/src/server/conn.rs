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
use crate::wire::{Cmd, Header, WireLockspace, HEADER_LEN, LOCKSPACE_LEN, RESOURCE_LEN};
use sanlock_machine::daemon::request_parse::{parse_request, DiskCall, Parse, Parsed};

const ENOTCONN: i32 = -107;
const EIO: i32 = -5;
/// RESTRICT_ALL: every later message is dropped.
const RESTRICT_ALL: u32 = 1;

/// Why a request got no answer of its own.
enum Fail {
    /// Its payload came up short: answered -ENOTCONN, and the connection closes.
    Short,
    /// Its disk operation panicked: answered -EIO; the connection and the daemon go on.
    Panicked,
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

/// Reads `cmd`'s payload, exactly as much as the parser asks for, and answers it.
/// `Ok(None)`: nothing to send (REGISTER).
async fn handle(
    ci: usize,
    cmd: Cmd,
    header: Header,
    stream: &mut UnixStream,
    engine: &mpsc::UnboundedSender<Msg>,
    detached: &mut bool,
) -> Result<Option<Reply>, Fail> {
    let mut payload = Vec::new();
    let parsed = loop {
        match parse_request(cmd, &header, &payload) {
            Parse::Need(n) => {
                let have = payload.len();
                payload.resize(n, 0);
                stream
                    .read_exact(&mut payload[have..])
                    .await
                    .map_err(|_| Fail::Short)?;
            }
            Parse::Done(parsed, _) => break parsed,
        }
    };
    let call = match parsed {
        Parsed::Register => {
            let _ = engine.send(Msg::Register { ci });
            return Ok(None);
        }
        Parsed::Call(call) => call,
        Parsed::Refused { rv, drain } => {
            if drain > 0 {
                let mut buf = vec![0u8; drain];
                let _ = stream.read_exact(&mut buf).await;
            }
            return Ok(Some(Reply::keep(header.result(rv))));
        }
        Parsed::Disk(disk) => return disk_call(header, disk).await.map(Some),
        Parsed::RegEvent(ls) => return reg_event(ci, header, ls, stream, engine, detached).await,
    };
    Ok(Some(ask(engine, ci, header, call).await))
}

/// Answers a disk-only request from a blocking thread.
async fn disk_call(header: Header, disk: DiskCall) -> Result<Reply, Fail> {
    Ok(match disk {
        DiskCall::WriteLockspace(ls) => {
            let rv = blocking(move || disk_ops::write_lockspace(&ls, header.data2)).await?;
            Reply::keep(header.result(rv))
        }
        DiskCall::ReadLockspace(ls) => {
            let (rv, io_timeout, out) = blocking(move || disk_ops::read_lockspace(&ls)).await?;
            let mut reply = header.result(rv);
            reply.data2 = io_timeout;
            reply.length = (HEADER_LEN + LOCKSPACE_LEN) as u32;
            let mut bytes = reply.encode().to_vec();
            out.encode_into(&mut bytes);
            Reply::keep_bytes(bytes)
        }
        DiskCall::WriteResource { res, clear } => {
            let rv = blocking(move || disk_ops::write_resource(&res, header.data, clear)).await?;
            Reply::keep(header.result(rv))
        }
        DiskCall::ReadResource(res) => {
            let (rv, out) = blocking(move || disk_ops::read_resource(&res)).await?;
            let mut reply = header.result(rv);
            reply.length = (HEADER_LEN + RESOURCE_LEN) as u32;
            let mut bytes = reply.encode().to_vec();
            out.encode_into(&mut bytes, false);
            Reply::keep_bytes(bytes)
        }
        DiskCall::ReadResourceOwners(res) => {
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
            Reply::keep_bytes(bytes)
        }
        DiskCall::Align(disk) => {
            let rv = blocking(move || disk_ops::align(&disk.path)).await?;
            Reply::keep(header.result(rv))
        }
    })
}

/// REG_EVENT: on success the connection becomes the lockspace's event fd and serves its
/// events until it closes.
async fn reg_event(
    ci: usize,
    header: Header,
    ls: WireLockspace,
    stream: &mut UnixStream,
    engine: &mpsc::UnboundedSender<Msg>,
    detached: &mut bool,
) -> Result<Option<Reply>, Fail> {
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
    let ok =
        <&[u8; HEADER_LEN]>::try_from(&reply.bytes[..]).is_ok_and(|b| Header::decode(b).rv() == 0);
    if !ok {
        return Ok(Some(reply));
    }
    // The connection is now the event fd: its slot goes, as sanlock frees the client and keeps
    // only its dup.
    let _ = engine.send(Msg::Closed { ci });
    *detached = true;
    if stream.write_all(&reply.bytes).await.is_ok() {
        event_sink(stream, events).await;
    }
    Ok(Some(Reply::close(Vec::new())))
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

/// Runs a disk operation on a blocking thread. A panic in it fails this request alone (logged;
/// answered -EIO), not the connection's task, whose slot would then never be freed.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Fail> {
    let run = move || {
        super::inject::maybe_panic("disk operation");
        f()
    };
    match tokio::task::spawn_blocking(run).await {
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
