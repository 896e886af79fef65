//! The member's thread: runs core's machine, makes its lease calls through the daemon, its
//! reads and writes on the disk, and passes messages and send results to the program.

use std::collections::HashMap;
use std::fs::File;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sanlock_core::messenger::{Event, Messenger, Output, SendId};
use sanlock_core::Time;

use super::link::Link;
use crate::disk::{AlignedBuf, Disk};

/// What the program (and the event listener) asks of the member's thread.
pub enum Command {
    Send(Vec<u8>, mpsc::Sender<Result<u64, i32>>),
    Processed(u64),
    Wake,
    Leave,
}

/// What the member's thread hands the program.
pub enum Delivery {
    Message {
        seq: u64,
        from: u64,
        payload: Vec<u8>,
    },
    Stopped(i32),
}

/// Everything the thread works with besides the machine.
pub struct Shell {
    pub link: Link,
    pub disk: Disk,
    pub deliveries: mpsc::Sender<Delivery>,
    pub joined: Option<mpsc::Sender<Result<u64, i32>>>,
    /// The per-host lock file, held for the member's life.
    pub _lock: File,
}

/// Runs the member until it left or failed.
pub fn run(mut m: Messenger, mut shell: Shell, rx: mpsc::Receiver<Command>) {
    let start = Instant::now();
    let now = || Time::new(start.elapsed());
    let mut sends: HashMap<SendId, mpsc::Sender<Result<u64, i32>>> = HashMap::new();
    let mut stopped = 0;
    // SANLOCK_MSG_TRACE=1: every request and report on stderr, with its time.
    let trace = std::env::var_os("SANLOCK_MSG_TRACE").is_some();
    m.join(now());
    loop {
        while let Some(out) = m.poll_output() {
            if trace {
                eprintln!("msg {:.3} {out:?}", start.elapsed().as_secs_f64());
            }
            match out {
                Output::Lease { id, lease, op } => {
                    let t = Instant::now();
                    let r = shell.link.lease(lease, &op);
                    if trace {
                        let rv = r.as_ref().map_or_else(|rv| *rv, |_| 0);
                        eprintln!("msg   -> {rv} in {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
                    }
                    m.complete(now(), id, r);
                }
                Output::Read { id, offset, len } => {
                    let r = shell
                        .disk
                        .read(offset, len)
                        .map(|buf| buf.as_ref().to_vec())
                        .map_err(|e| e.rv());
                    m.complete(now(), id, r);
                }
                Output::Write { id, offset, data } => {
                    let r = shell
                        .disk
                        .write(offset, &AlignedBuf::from_slice(&data))
                        .map(|()| Vec::new())
                        .map_err(|e| e.rv());
                    m.complete(now(), id, r);
                }
                Output::Notify { seq } => {
                    shell.link.notify(seq);
                }
                Output::Event(event) => match event {
                    Event::Joined { seq } => {
                        if let Some(j) = shell.joined.take() {
                            let _ = j.send(Ok(seq));
                        }
                    }
                    Event::Deliver(d) => {
                        let _ = shell.deliveries.send(Delivery::Message {
                            seq: d.seq,
                            from: d.from.get(),
                            payload: d.payload,
                        });
                    }
                    Event::Sent { id, seq } => {
                        if let Some(tx) = sends.remove(&id) {
                            let _ = tx.send(Ok(seq));
                        }
                    }
                    Event::SendFailed { id, rv } => {
                        if let Some(tx) = sends.remove(&id) {
                            let _ = tx.send(Err(rv));
                        }
                    }
                    Event::Left => stopped = -108,
                    Event::Failed { rv } => stopped = rv,
                },
            }
        }
        if m.is_done() {
            break;
        }
        let wait = m
            .poll_timeout()
            .map_or(Duration::from_secs(3600), |t| t.saturating_since(now()));
        match rx.recv_timeout(wait) {
            Ok(Command::Send(payload, tx)) => {
                let id = m.send(now(), payload);
                sends.insert(id, tx);
            }
            Ok(Command::Processed(seq)) => m.processed(now(), seq),
            Ok(Command::Wake) => m.wake(now()),
            Ok(Command::Leave) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if m.awaiting_processed().is_some() {
                    // Leaving with a message unprocessed: stop as a member that died would
                    // (the daemon releases our leases when the registration closes); never
                    // acknowledge what the program did not process.
                    stopped = -108;
                    break;
                }
                m.leave(now());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        m.handle_timeout(now());
    }
    if let Some(j) = shell.joined.take() {
        let _ = j.send(Err(stopped));
    }
    for (_, tx) in sends {
        let _ = tx.send(Err(stopped));
    }
    let _ = shell.deliveries.send(Delivery::Stopped(stopped));
}
