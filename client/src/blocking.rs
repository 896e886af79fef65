//! The blocking form: [`Client`] opens a connection per call, as libsanlock does;
//! [`Registration`] is a process's registered connection, which the daemon watches as that
//! process's life; [`Events`] is a connection registered for a lockspace's events.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::calls::{self, Call};
use crate::error::{Error, Result};
use crate::raw::Connection;
use crate::types::Event;
use crate::Name;
use sanlock_wire::EVENT_CB_LEN as EVENT_LEN;

/// The failure a raw (libsanlock-style) transport result stands for.
pub(crate) fn transport_error(path: &Path, rv: i32) -> Error {
    if rv == -1 {
        Error::ShortReply {
            path: path.to_path_buf(),
        }
    } else {
        Error::Socket {
            path: path.to_path_buf(),
            source: std::io::Error::from_raw_os_error(-rv),
        }
    }
}

/// A client of one daemon: each call opens its own connection.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
    timeout: Option<std::time::Duration>,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// The daemon of this process's run directory ([`crate::default_socket`]).
    pub fn new() -> Client {
        Client::at(crate::default_socket())
    }

    /// The daemon listening at `socket`.
    pub fn at(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
            timeout: None,
        }
    }

    /// The same client, whose calls fail (a socket error, EAGAIN) when the daemon has not
    /// answered within `timeout`: for asking something of a daemon that may not know the
    /// call (sanlock 3.8.5 leaves an unknown command unanswered).
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Client {
        self.timeout = Some(timeout);
        self
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn connect(&self) -> Result<Connection> {
        let mut c =
            Connection::open_at(&self.socket).map_err(|rv| transport_error(&self.socket, rv))?;
        if self.timeout.is_some() {
            c.set_timeout(self.timeout)
                .map_err(|rv| transport_error(&self.socket, rv))?;
        }
        Ok(c)
    }

    pub(crate) fn run<T>(&self, call: Call<T>) -> Result<T> {
        let reply = self
            .connect()?
            .exchange(&call.request)
            .map_err(|rv| transport_error(&self.socket, rv))?;
        (call.decode)(reply)
    }

    /// Registers this process (REGISTER): the connection returned is its liveness; when it
    /// closes (the process exits), the daemon releases or orphans its leases.
    pub fn register(&self) -> Result<Registration> {
        let mut connection = self.connect()?;
        connection
            .exchange(&crate::proto::register())
            .map_err(|rv| transport_error(&self.socket, rv))?;
        Ok(Registration {
            connection,
            socket: self.socket.clone(),
        })
    }

    /// Registers for the events of lockspace `name` (REG_EVENT).
    pub fn reg_event(&self, name: &Name) -> Result<Events> {
        let call = calls::reg_event(name)?;
        let mut connection = self.connect()?;
        let reply = connection
            .exchange(&call.request)
            .map_err(|rv| transport_error(&self.socket, rv))?;
        (call.decode)(reply)?;
        Ok(Events {
            stream: connection.into_stream(),
            client: self.clone(),
            name: *name,
        })
    }
}

/// A registered connection: the leases acquired on it are this process's.
#[derive(Debug)]
pub struct Registration {
    connection: Connection,
    socket: PathBuf,
}

impl Registration {
    pub(crate) fn run<T>(&mut self, call: Call<T>) -> Result<T> {
        let reply = self
            .connection
            .exchange(&call.request)
            .map_err(|rv| transport_error(&self.socket, rv))?;
        (call.decode)(reply)
    }

    /// The connection, for a program that passes it on (the daemon watches it, not the pid).
    pub fn into_stream(self) -> UnixStream {
        self.connection.into_stream()
    }
}

/// Events set for this host in one lockspace, as they arrive.
#[derive(Debug)]
pub struct Events {
    stream: UnixStream,
    client: Client,
    name: Name,
}

impl Events {
    /// Waits for the next event.
    pub fn next_event(&mut self) -> Result<Event> {
        let mut buf = [0u8; EVENT_LEN];
        self.stream
            .read_exact(&mut buf)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::ShortReply {
                    path: self.client.socket.clone(),
                },
                _ => Error::Socket {
                    path: self.client.socket.clone(),
                    source: e,
                },
            })?;
        Ok(Event::decode(&buf))
    }

    /// Stops the events (END_EVENT), as libsanlock's end_event does: a word on the event
    /// connection, then the request on a new one.
    pub fn end(mut self) -> Result<()> {
        // The daemon may already have closed it; the request below is what counts.
        let _ = self.stream.write_all(&1u32.to_le_bytes());
        drop(self.stream);
        self.client.run(calls::end_event(&self.name)?)
    }
}

impl Iterator for Events {
    type Item = Result<Event>;

    /// The next event; None once the daemon has closed the connection.
    fn next(&mut self) -> Option<Result<Event>> {
        match self.next_event() {
            Err(Error::ShortReply { .. }) => None,
            other => Some(other),
        }
    }
}
