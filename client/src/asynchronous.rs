//! The tokio form: the same calls as [`crate::Client`], awaited; a registered connection; and a
//! lockspace's events as a [`futures_core::Stream`].

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::UnixStream;

use crate::calls::{self, Call};
use crate::error::{Error, Result};
use crate::proto::{Reply, Request, Shape};
use crate::types::Event;
use crate::Name;
use sanlock_wire::EVENT_CB_LEN as EVENT_LEN;
use sanlock_wire::{Header, HEADER_LEN};

fn socket_error(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        Error::ShortReply {
            path: path.to_path_buf(),
        }
    } else {
        Error::Socket {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

/// Sends `req` on `stream` and reads the reply its shape says (as `raw::Connection::exchange`).
async fn exchange(stream: &mut UnixStream, path: &Path, req: &Request) -> Result<Reply> {
    let io = |e| socket_error(path, e);
    stream.write_all(&req.bytes()).await.map_err(io)?;
    if req.shape == Shape::Nothing {
        return Ok(Reply::default());
    }
    let mut head = [0u8; HEADER_LEN];
    stream.read_exact(&mut head).await.map_err(io)?;
    let header = Header::decode(&head);
    let mut body = Vec::new();
    match req.shape.body_len(&header) {
        Some(len) => {
            body.resize(len, 0);
            stream.read_exact(&mut body).await.map_err(io)?;
        }
        None => {
            stream.read_to_end(&mut body).await.map_err(io)?;
        }
    }
    Ok(Reply { header, body })
}

/// A client of one daemon for tokio programs: each call opens its own connection.
#[derive(Clone, Debug)]
pub struct AsyncClient {
    socket: PathBuf,
}

impl Default for AsyncClient {
    fn default() -> Self {
        AsyncClient::new()
    }
}

impl AsyncClient {
    /// The daemon of this process's run directory ([`crate::default_socket`]).
    pub fn new() -> AsyncClient {
        AsyncClient::at(crate::default_socket())
    }

    /// The daemon listening at `socket`.
    pub fn at(socket: impl Into<PathBuf>) -> AsyncClient {
        AsyncClient {
            socket: socket.into(),
        }
    }

    async fn connect(&self) -> Result<UnixStream> {
        UnixStream::connect(&self.socket)
            .await
            .map_err(|e| socket_error(&self.socket, e))
    }

    pub(crate) async fn run<T>(&self, call: Call<T>) -> Result<T> {
        let mut stream = self.connect().await?;
        let reply = exchange(&mut stream, &self.socket, &call.request).await?;
        (call.decode)(reply)
    }

    /// Registers this process (REGISTER); see [`crate::Client::register`].
    pub async fn register(&self) -> Result<AsyncRegistration> {
        let mut stream = self.connect().await?;
        exchange(&mut stream, &self.socket, &crate::proto::register()).await?;
        Ok(AsyncRegistration {
            stream,
            socket: self.socket.clone(),
        })
    }

    /// The events of lockspace `name` as a stream (REG_EVENT).
    pub async fn reg_event(&self, name: &Name) -> Result<EventStream> {
        let call = calls::reg_event(name)?;
        let mut stream = self.connect().await?;
        let reply = exchange(&mut stream, &self.socket, &call.request).await?;
        (call.decode)(reply)?;
        Ok(EventStream {
            stream,
            client: self.clone(),
            name: *name,
            buf: [0; EVENT_LEN],
            filled: 0,
        })
    }
}

/// A registered connection for tokio programs: the leases acquired on it are this process's.
#[derive(Debug)]
pub struct AsyncRegistration {
    stream: UnixStream,
    socket: PathBuf,
}

impl AsyncRegistration {
    pub(crate) async fn run<T>(&mut self, call: Call<T>) -> Result<T> {
        let reply = exchange(&mut self.stream, &self.socket, &call.request).await?;
        (call.decode)(reply)
    }
}

/// Events set for this host in one lockspace; ends when the daemon closes the connection.
#[derive(Debug)]
pub struct EventStream {
    stream: UnixStream,
    client: AsyncClient,
    name: Name,
    buf: [u8; EVENT_LEN],
    filled: usize,
}

impl EventStream {
    /// The next event, or None once the daemon has closed the connection.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut *self), cx)).await
    }

    /// Stops the events (END_EVENT).
    pub async fn end(mut self) -> Result<()> {
        // The daemon may already have closed it; the request below is what counts.
        let _ = self.stream.write_all(&1u32.to_le_bytes()).await;
        drop(self.stream);
        self.client.run(calls::end_event(&self.name)?).await
    }
}

impl futures_core::Stream for EventStream {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        let this = self.get_mut();
        while this.filled < EVENT_LEN {
            let mut buf = ReadBuf::new(&mut this.buf[this.filled..]);
            match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Some(Err(socket_error(&this.client.socket, e))))
                }
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(None),
                Poll::Ready(Ok(())) => this.filled += buf.filled().len(),
            }
        }
        this.filled = 0;
        Poll::Ready(Some(Ok(Event::decode(&this.buf))))
    }
}
