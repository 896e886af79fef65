//! What the benchmark asks of a daemon, as its clients would: registered processes that
//! acquire and release, many at once, and a flood of cheap commands.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sanlock_daemon::client::{acquire_payload, names_payload, Connection};
use sanlock_daemon::wire::payload::RES_PERSISTENT;
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
    timed(daemon, resources, ops, true)
}

/// Times `ops` releases of `resources` (each after an untimed acquire).
pub fn releases(
    daemon: &Daemon,
    resources: &[WireResource],
    ops: usize,
) -> Result<Vec<Duration>, String> {
    timed(daemon, resources, ops, false)
}

/// `ops` acquire+release pairs by one client: each pair's time, or each release's.
fn timed(
    daemon: &Daemon,
    resources: &[WireResource],
    ops: usize,
    pair: bool,
) -> Result<Vec<Duration>, String> {
    let mut client = Client::register(daemon)?;
    let mut times = Vec::with_capacity(ops);
    for _ in 0..ops {
        let t0 = Instant::now();
        client.acquire(resources)?;
        let t1 = Instant::now();
        client.release(resources)?;
        times.push(if pair { t0.elapsed() } else { t1.elapsed() });
    }
    Ok(times)
}

/// Acquire+release pairs per second with one client per resource, all at once, for `length`.
pub fn throughput(
    daemon: &Daemon,
    resources: &[WireResource],
    length: Duration,
) -> Result<f64, String> {
    let mut workers = Vec::new();
    for resource in resources {
        let mut client = Client::register(daemon)?;
        let one = std::slice::from_ref(resource);
        workers.push(move || -> Result<(), String> {
            client.acquire(one)?;
            client.release(one)
        });
    }
    rate(length, workers)
}

/// Replies per second to `threads` clients each sending VERSION on a new connection, as
/// libsanlock's one-shot calls do, for `length`.
pub fn flood(daemon: &Daemon, threads: usize, length: Duration) -> Result<f64, String> {
    let version = || match daemon.call(Cmd::Version, 0, 0, 0, &[])? {
        rv if rv < 0 => Err(format!("{}: version: {rv}", daemon.label)),
        _ => Ok(()),
    };
    rate(length, vec![version; threads])
}

/// Runs each of `workers` over and over, each on a thread of its own, for `length`: the runs
/// completed per second.
fn rate<W>(length: Duration, workers: Vec<W>) -> Result<f64, String>
where
    W: FnMut() -> Result<(), String> + Send,
{
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        let threads: Vec<_> = workers
            .into_iter()
            .map(|mut work| {
                let (done, stop) = (&done, &stop);
                scope.spawn(move || -> Result<(), String> {
                    while !stop.load(Ordering::Relaxed) {
                        work()?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        std::thread::sleep(length);
        stop.store(true, Ordering::Relaxed);
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err("a worker panicked".into())))
            .collect::<Result<Vec<()>, String>>()
    })?;
    Ok(done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64())
}

/// The daemon holds `resources` as orphans: persistent leases taken by clients (8 each,
/// sanlock's most per client) that then went away. sanlock serves at most 1022 clients, so
/// 10,000 leases cannot all have a live holder.
pub fn hold(daemon: &Daemon, resources: &[WireResource]) -> Result<(), String> {
    for chunk in resources.chunks(8) {
        let persistent: Vec<WireResource> = chunk
            .iter()
            .map(|r| WireResource {
                flags: r.flags | RES_PERSISTENT,
                ..r.clone()
            })
            .collect();
        let mut client = Client::register(daemon)?;
        client.acquire(&persistent)?;
    }
    Ok(())
}
