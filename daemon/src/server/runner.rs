//! The daemon's loop — the shell around the engine. It owns what the engine must not: the
//! listening socket, the channel its connection tasks and helper threads write to, each
//! request's reply channel, the backends that run the host's I/O, the watchdog's connections
//! and the event listeners' channels. Each turn it reads the clock once, hands the engine one
//! input (a message, a connection, I/O completions, or a timer), then does what the engine
//! decided: the host's I/O to the backends, the actions to `shell::perform`. It decides
//! nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use sanlock_backends::clock;
use sanlock_backends::storage::{sleep_until, Io, Storage};
use sanlock_core::Time;
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use super::log;
use super::messages::{Call, Input, Msg, Reply, ReplyBook, Waiter};
use super::storage::DaemonStorage;

/// Messages (or connections) taken in one turn of the loop at most, so that timers and I/O
/// completions wait for no more than this many.
const BATCH: usize = 64;
use super::watchdog::WatchdogIo;
use crate::wire::{Header, HEADER_LEN};
use sanlock_machine::daemon::{DiskNo, Engine};

/// The loop and everything of the daemon that is not a decision.
pub struct Runner {
    engine: Engine,
    tx: mpsc::UnboundedSender<Msg>,
    replies: ReplyBook,
    storage: DaemonStorage,
    watchdog: WatchdogIo,
    /// The event listeners' channels, by listener id.
    sinks: BTreeMap<u64, mpsc::UnboundedSender<Vec<u8>>>,
    next_listener: u64,
}

impl Runner {
    /// The loop around `engine`: messages come on `tx`'s channel, the host's I/O runs on
    /// `storage`, the watchdog is driven through `watchdog`.
    pub fn new(
        engine: Engine,
        tx: mpsc::UnboundedSender<Msg>,
        storage: DaemonStorage,
        watchdog: WatchdogIo,
    ) -> Self {
        Runner {
            engine,
            tx,
            replies: ReplyBook::default(),
            storage,
            watchdog,
            sinks: BTreeMap::new(),
            next_listener: 1,
        }
    }

    /// Runs until shutdown.
    pub async fn run(mut self, listener: UnixListener, mut rx: mpsc::UnboundedReceiver<Msg>) {
        log::log(
            log::INFO,
            &format!("storage backend {}", self.storage.kind()),
        );
        // After a failed accept (out of fds) the listener rests until the next check rather
        // than failing again at once and spinning the loop.
        let mut accept_resting = false;
        let mut rest_until = clock::now();
        loop {
            self.carry_out();
            if self.engine.finished() {
                break;
            }
            let wake = self.engine.poll_timeout();
            let in_flight = self.storage.stats().in_flight > 0;
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    self.message(clock::now(), msg);
                    // What else has arrived goes in the same turn, with one carry_out for all.
                    for _ in 0..BATCH {
                        let Ok(msg) = rx.try_recv() else { break };
                        self.message(clock::now(), msg);
                    }
                }
                accepted = listener.accept(), if !accept_resting => match accepted {
                    Ok((stream, _)) => {
                        self.connected(stream);
                        // Connections already waiting are taken in the same turn.
                        for _ in 0..BATCH {
                            let more = std::future::poll_fn(|cx| {
                                std::task::Poll::Ready(match listener.poll_accept(cx) {
                                    std::task::Poll::Ready(Ok((stream, _))) => Some(stream),
                                    _ => None,
                                })
                            })
                            .await;
                            let Some(stream) = more else { break };
                            self.connected(stream);
                        }
                    }
                    Err(e) => {
                        log::log(log::ERR, &format!("accept: {e}"));
                        accept_resting = true;
                        rest_until = clock::now() + Duration::from_secs(1);
                    }
                },
                done = self.storage.completions(), if in_flight => {
                    let done = done.into_iter().map(|c| (c.id, c.result)).collect();
                    self.engine.handle(clock::now(), Input::IoDone(done));
                }
                () = sleep_until(wake) => self.engine.handle(clock::now(), Input::Timer),
            }
            if accept_resting && clock::now() >= rest_until {
                accept_resting = false;
            }
        }
        self.carry_out();
        // SHUTDOWN_WAIT's reply: magic, version 1, length 32, cmd 0 (§4.28).
        let bye = Header {
            magic: crate::wire::SM_MAGIC,
            version: crate::wire::SM_PROTO,
            length: HEADER_LEN as u32,
            ..Header::default()
        };
        for w in self.engine.take_exit_waiters() {
            if let Some(tx) = self.replies.take(w) {
                let _ = tx.send(Reply::close(bye.encode().to_vec()));
            }
        }
        // Let the connections write those replies before the runtime stops.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        log::log(log::WARNING, "sanlock daemon exiting");
    }

    /// A new connection: a client slot and a task to serve it.
    fn connected(&mut self, stream: tokio::net::UnixStream) {
        let cred = stream.peer_cred().ok();
        let pid = cred.and_then(|c| c.pid()).unwrap_or(-1);
        match self.engine.connect_peer(pid, cred.map(|c| c.uid())) {
            Some(ci) => {
                tokio::spawn(super::conn::serve(ci, stream, self.tx.clone()));
            }
            // The table is full: the connection is not added (sanlock closes nothing either,
            // but we have no slot to poll it from).
            None => drop(stream),
        }
    }

    /// Hands a message to the engine, in its terms: a request gets its reply channel booked,
    /// a REG_EVENT its listener id (listeners gone are reported first), an opened disk goes to
    /// the backends.
    fn message(&mut self, now: Time, msg: Msg) {
        let input = match msg {
            Msg::Call {
                ci,
                header,
                call,
                reply,
            } => {
                if matches!(call, Call::EndEvent(_)) {
                    self.prune_listeners(now);
                }
                let waiter = self.replies.waiter(header, reply);
                Input::Call { ci, waiter, call }
            }
            Msg::RegEvent {
                ci,
                header,
                ls,
                sink,
                reply,
            } => {
                self.prune_listeners(now);
                let listener = self.next_listener;
                self.next_listener += 1;
                self.sinks.insert(listener, sink);
                let waiter: Waiter = self.replies.waiter(header, reply);
                let call = Call::RegEvent { ls, listener };
                Input::Call { ci, waiter, call }
            }
            Msg::Register { ci } => Input::Register { ci },
            Msg::Closed { ci } => Input::Closed { ci },
            Msg::ProcessExited { ci, pid } => Input::ProcessExited { ci, pid },
            Msg::Probed { space_id, result } => Input::Probed { space_id, result },
            Msg::WdmdRegistered { space_id, result } => Input::WdmdRegistered { space_id, result },
            Msg::DiskOpened { path, result } => {
                let result = match result {
                    Ok(opened) => Ok(DiskNo(self.storage.adopt(&path, opened).0)),
                    Err(e) => Err((e.rv(), e.to_string())),
                };
                Input::DiskOpened { path, result }
            }
            Msg::Answer { waiter, reply } => Input::Answer { waiter, reply },
            Msg::RindexDone { space } => Input::RindexDone { space },
            Msg::RindexHeader { job } => Input::RindexHeader { job },
            Msg::RindexChanged { job } => Input::RindexChanged { job },
            Msg::Signal => Input::Signal,
        };
        self.engine.handle(now, input);
    }

    /// Listeners whose connections ended lose their channels, and the engine hears which.
    fn prune_listeners(&mut self, now: Time) {
        let gone: Vec<u64> = self
            .sinks
            .iter()
            .filter(|(_, s)| s.is_closed())
            .map(|(&id, _)| id)
            .collect();
        for id in &gone {
            self.sinks.remove(id);
        }
        if !gone.is_empty() {
            self.engine.handle(now, Input::ListenersGone(gone));
        }
    }

    /// Does what the engine decided: the host's I/O to the backends, then the turn's actions.
    fn carry_out(&mut self) {
        loop {
            let io: Vec<Io> = self
                .engine
                .take_io()
                .into_iter()
                .map(|(disk, r)| Io::on(sanlock_backends::DiskId(disk.0), r))
                .collect();
            if !io.is_empty() {
                self.storage.submit(io);
            }
            let actions = self.engine.take_actions();
            if actions.is_empty() {
                return;
            }
            let gone = super::shell::perform(
                actions,
                &self.tx,
                &mut self.replies,
                &mut self.watchdog,
                &mut self.sinks,
            );
            if !gone.is_empty() {
                self.engine.handle(clock::now(), Input::ListenersGone(gone));
            }
        }
    }
}
