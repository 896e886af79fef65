//! What the benchmark asks of a daemon, as its clients would: registered processes that
//! acquire and release, many at once, and a flood of cheap commands.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sanlock_daemon::client::{acquire_payload, names_payload, Connection};
use sanlock_daemon::wire::{Cmd, WireResource};

use crate::daemons::Daemon;

/// A registered connection, as python3-sanlock's `register()` gives one: its leases go with it.
pub struct Client {
    conn: Connection,
    label: &'static str,
}

/// "This process" in a lease command's pid field (libsanlock sends -1).
const SELF_PID: u32 = u32::MAX;

impl Client {
    /// Registers a new client of `daemon`.
    pub fn register(daemon: &Daemon) -> Result<Client, String> {
        let mut conn = daemon.connect()?;
        // REGISTER has no reply: the connection is the client from now on.
        conn.request(Cmd::Register, 0, 0, 0, &[])
            .map_err(|e| format!("{}: register: {e}", daemon.label))?;
        Ok(Client {
            conn,
            label: daemon.label,
        })
    }

    fn command(&mut self, cmd: Cmd, n: usize, payload: &[u8]) -> Result<(), String> {
        self.conn
            .request(cmd, 0, n as u32, SELF_PID, payload)
            .map_err(|e| format!("{}: {cmd:?}: {e}", self.label))?;
        let reply = self
            .conn
            .recv_header()
            .map_err(|e| format!("{}: {cmd:?} reply: {e}", self.label))?;
        match reply.rv() {
            0 => Ok(()),
            rv => Err(format!("{}: {cmd:?}: {rv}", self.label)),
        }
    }

    /// Acquires `resources` (at most 8) exclusively, in one request.
    pub fn acquire(&mut self, resources: &[WireResource]) -> Result<(), String> {
        self.command(Cmd::Acquire, resources.len(), &acquire_payload(resources))
    }

    /// Releases them.
    pub fn release(&mut self, resources: &[WireResource]) -> Result<(), String> {
        self.command(Cmd::Release, resources.len(), &names_payload(resources))
    }
}

/// Times `ops` acquire+release pairs of `resources` by one client.
pub fn acquire_release(
    daemon: &Daemon,
    resources: &[WireResource],
    ops: usize,
) -> Result<Vec<Duration>, String> {
    let mut client = Client::register(daemon)?;
    let mut times = Vec::with_capacity(ops);
    for _ in 0..ops {
        let t0 = Instant::now();
        client.acquire(resources)?;
        client.release(resources)?;
        times.push(t0.elapsed());
    }
    Ok(times)
}

/// Times `ops` releases of `resources` (each after an untimed acquire).
pub fn releases(
    daemon: &Daemon,
    resources: &[WireResource],
    ops: usize,
) -> Result<Vec<Duration>, String> {
    let mut client = Client::register(daemon)?;
    let mut times = Vec::with_capacity(ops);
    for _ in 0..ops {
        client.acquire(resources)?;
        let t0 = Instant::now();
        client.release(resources)?;
        times.push(t0.elapsed());
    }
    Ok(times)
}

/// Acquire+release pairs per second with one client per resource, all at once, for `length`.
pub fn throughput(
    daemon: &Daemon,
    resources: &[WireResource],
    length: Duration,
) -> Result<f64, String> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in resources {
        clients.push(Client::register(daemon)?);
    }
    let t0 = Instant::now();
    let result = std::thread::scope(|scope| {
        let workers: Vec<_> = clients
            .into_iter()
            .zip(resources)
            .map(|(mut client, resource)| {
                let (done, stop) = (done.clone(), stop.clone());
                scope.spawn(move || -> Result<(), String> {
                    let one = std::slice::from_ref(resource);
                    while !stop.load(Ordering::Relaxed) {
                        client.acquire(one)?;
                        client.release(one)?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        std::thread::sleep(length);
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("a worker panicked".into())))
            .collect::<Result<Vec<()>, String>>()
    });
    result?;
    Ok(done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64())
}

/// Replies per second to `threads` clients each sending VERSION on a new connection, as
/// libsanlock's one-shot calls do, for `length`.
pub fn flood(daemon: &Daemon, threads: usize, length: Duration) -> Result<f64, String> {
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<(), String> {
                    while !stop.load(Ordering::Relaxed) {
                        let rv = daemon.call(Cmd::Version, 0, 0, 0, &[])?;
                        if rv < 0 {
                            return Err(format!("{}: version: {rv}", daemon.label));
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        std::thread::sleep(length);
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("a worker panicked".into())))
            .collect::<Result<Vec<()>, String>>()
    })?;
    Ok(done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64())
}

/// Clients holding `resources`, 8 to a client (sanlock's most per client).
pub fn hold(daemon: &Daemon, resources: &[WireResource]) -> Result<Vec<Client>, String> {
    resources
        .chunks(8)
        .map(|chunk| {
            let mut client = Client::register(daemon)?;
            client.acquire(chunk)?;
            Ok(client)
        })
        .collect()
}
