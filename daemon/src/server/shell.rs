//! The shell's hands: what the engine's actions become — replies handed to connections,
//! signals, killpath programs, pidfd watches, and disk probes and opens on blocking threads,
//! whose results come back as messages. Nothing here decides anything.

use rustix::process::{pidfd_open, Pid, PidfdFlags, Signal};
use sanlock_machine::recovery::StopSignal;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::UnboundedSender;

use sanlock_backends::disk::Disk;
use sanlock_core::ondisk::rindex::RindexHeader;
use sanlock_core::ondisk::SectorSize;

use super::messages::{Action, Msg, ReplyBook, RindexJob};
use super::watchdog::WatchdogIo;
use super::{disk_ops, log, storage};
use crate::rindex;
use crate::wire::{Cmd, WireRentry};

/// Does what a turn of the engine asked for, in order, then closes the connections of waiters
/// dropped unanswered. Returns the event listeners found gone.
pub(super) fn perform(
    actions: Vec<Action>,
    tx: &UnboundedSender<Msg>,
    book: &mut ReplyBook,
    watchdog: &mut WatchdogIo,
    sinks: &mut std::collections::BTreeMap<u64, UnboundedSender<Vec<u8>>>,
) -> Vec<u64> {
    let mut gone = Vec::new();
    let mut replies = Vec::new();
    for action in actions {
        match action {
            Action::Reply { to, reply } => replies.push((to, reply)),
            Action::Signal { pid, signal } => {
                if let Some(p) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(p, as_rustix(signal));
                }
            }
            Action::RunKillpath(argv) => run_killpath(&argv),
            Action::WatchPid { ci, pid } => watch_pid(tx, ci, pid),
            Action::Probe {
                space_id,
                path,
                offset,
            } => {
                let (tx, tx2) = (tx.clone(), tx.clone());
                on_blocking_thread(
                    "lockspace probe",
                    move || {
                        let result = disk_ops::probe_lockspace(&path, offset);
                        let _ = tx.send(Msg::Probed { space_id, result });
                    },
                    move || {
                        let result = Err(EIO);
                        let _ = tx2.send(Msg::Probed { space_id, result });
                    },
                );
            }
            Action::RindexFormat { job } => {
                let (tx, tx2, failed) = (tx.clone(), tx.clone(), job.clone());
                on_blocking_thread(
                    "rindex format",
                    move || {
                        let rv = rindex::format(&job.rx);
                        answer_from_thread(&tx, job, rv, &WireRentry::default());
                    },
                    move || answer_from_thread(&tx2, failed, EIO, &WireRentry::default()),
                );
            }
            Action::RindexRead {
                job,
                nolock,
                locked,
                sector,
            } => rindex_read(tx, job, nolock, locked, sector),
            Action::RindexChange { mut job } => {
                let (tx, tx2, mut failed) = (tx.clone(), tx.clone(), job.clone());
                on_blocking_thread(
                    "rindex change",
                    move || {
                        let header = job.header.expect("read before");
                        let result = match rindex::open(&job.rx) {
                            Err(rv) => (rv, WireRentry::default()),
                            Ok(disk) => disk_steps(&job, &disk, &header),
                        };
                        job.result = Some(result);
                        let _ = tx.send(Msg::RindexChanged { job });
                    },
                    // The rindex lease is still given back: the engine goes on from the result.
                    move || {
                        failed.result = Some((EIO, WireRentry::default()));
                        let _ = tx2.send(Msg::RindexChanged { job: failed });
                    },
                );
            }
            Action::Watchdog(order) => watchdog.carry_out(order, tx),
            Action::Log(level, line) => log::log(level as i32, &line),
            Action::ReplyLogDump { to, header } => {
                let text = log::dump();
                let mut h = header;
                h.version = crate::wire::SM_PROTO;
                h.data = text.len() as u32;
                let mut bytes = h.encode().to_vec();
                bytes.extend_from_slice(&text);
                replies.push((to, super::messages::Reply::close(bytes)));
            }
            Action::Event { listener, bytes } => {
                let sent = sinks.get(&listener).is_some_and(|s| s.send(bytes).is_ok());
                if !sent {
                    sinks.remove(&listener);
                    gone.push(listener);
                }
            }
            Action::Metrics { path, text } => {
                // A file system that stalls holds up this thread, never the engine.
                on_blocking_thread("metrics write", move || write_metrics(&path, &text), || {});
            }
            Action::Open { path } => {
                let (tx, tx2, failed) = (tx.clone(), tx.clone(), path.clone());
                on_blocking_thread(
                    "disk open",
                    move || {
                        let result = storage::open_disk(&path);
                        let _ = tx.send(Msg::DiskOpened { path, result });
                    },
                    move || {
                        let result = Err(sanlock_backends::disk::DiskError {
                            op: "open",
                            path: failed.clone(),
                            offset: None,
                            errno: -EIO,
                            reason: "the open panicked".into(),
                        });
                        let _ = tx2.send(Msg::DiskOpened {
                            path: failed,
                            result,
                        });
                    },
                );
            }
        }
    }
    book.deliver(replies);
    gone
}

/// -EIO: what an operation that panicked answers.
const EIO: i32 = -5;

/// Runs `f` on a blocking thread. A panic in it is caught and logged, and `otherwise` tells
/// the engine the operation failed, so that nothing (a lockspace being added, a rindex marked
/// busy, a client's request) waits for it until the daemon restarts.
fn on_blocking_thread(
    what: &'static str,
    f: impl FnOnce() + Send + 'static,
    otherwise: impl FnOnce() + Send + 'static,
) {
    tokio::task::spawn_blocking(move || {
        let run = move || {
            super::inject::maybe_panic(what);
            f()
        };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).is_err() {
            log::log(log::ERR, &format!("{what} panicked; it fails with -EIO"));
            otherwise();
        }
    });
}

/// Replaces the metrics file whole: written beside it, then renamed over it, so that
/// node_exporter never reads half a file. A failure is logged and the next renewal tries again.
fn write_metrics(path: &std::path::Path, text: &str) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        log::log(
            log::WARNING,
            &format!("metrics file {}: {e}", path.display()),
        );
    }
}

/// Runs a killpath program (no wait: a thread reaps it), as sanlock's helper forks it.
pub fn run_killpath(argv: &[Vec<u8>]) {
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = std::process::Command::new(std::ffi::OsStr::from_bytes(&argv[0]));
    cmd.args(argv[1..].iter().map(|a| std::ffi::OsStr::from_bytes(a)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    match cmd.spawn() {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => log::log(
            log::ERR,
            &format!("killpath {}: {e}", String::from_utf8_lossy(&argv[0])),
        ),
    }
}

/// Watches process `pid` of slot `ci` with a pidfd: [`Msg::ProcessExited`] when it exits.
pub(super) fn watch_pid(tx: &UnboundedSender<Msg>, ci: usize, pid: i32) {
    let Some(fd) = Pid::from_raw(pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok()) else {
        return;
    };
    let tx = tx.clone();
    tokio::spawn(async move {
        // SAFETY: the pidfd is moved into the AsyncFd and closed only when it drops.
        if let Ok(afd) = unsafe { AsyncFd::register(fd) } {
            let _ = afd.readable().await;
            let _ = tx.send(Msg::ProcessExited { ci, pid });
        }
    });
}

/// A signal of recovery as rustix names it.
fn as_rustix(s: StopSignal) -> Signal {
    match s {
        StopSignal::Term => Signal::TERM,
        StopSignal::Kill => Signal::KILL,
    }
}

/// Answers from a blocking thread: through the engine's channel, after what the thread sent
/// before it.
fn answer_from_thread(tx: &UnboundedSender<Msg>, job: RindexJob, rv: i32, entry: &WireRentry) {
    let (waiter, reply) = job.reply(rv, entry);
    let _ = tx.send(Msg::Answer { waiter, reply });
}

/// The operation's own disk steps, once the header is read (and, for create, delete and
/// rebuild, the rindex_lease held).
fn disk_steps(job: &RindexJob, disk: &Disk, header: &RindexHeader) -> (i32, WireRentry) {
    let h = job.waiter.header;
    match job.cmd {
        Cmd::LookupRindex => rindex::lookup(disk, header, &job.entry),
        Cmd::UpdateRindex => rindex::update(disk, header, &job.entry, h.cmd_flags),
        Cmd::CreateResource => {
            rindex::create_locked(disk, &job.rx, header, job.entry.name, u64::from(h.data2))
        }
        Cmd::DeleteResource => rindex::delete_locked(disk, &job.rx, header, &job.entry),
        _ => (rindex::rebuild_locked(disk, header), WireRentry::default()),
    }
}

/// A rindex operation's first disk steps on a blocking thread: open the index and read its
/// header; then a locked operation goes back to take its lease, any other makes its change and
/// answers (its lockspace freed first, so that the client's next call never finds it busy).
fn rindex_read(
    tx: &UnboundedSender<Msg>,
    mut job: RindexJob,
    nolock: bool,
    locked: bool,
    sector: Option<SectorSize>,
) {
    let tx = tx.clone();
    let space = job.rx.lockspace_name;
    let (tx2, failed) = (tx.clone(), job.clone());
    let otherwise = move || {
        if !nolock {
            let _ = tx2.send(Msg::RindexDone { space });
        }
        answer_from_thread(&tx2, failed, EIO, &WireRentry::default());
    };
    on_blocking_thread(
        "rindex read",
        move || {
            let header = rindex::open(&job.rx)
                .and_then(|disk| Ok((rindex::read_header(&disk, &job.rx, sector)?, disk)));
            let (header, disk) = match header {
                Ok(h) => h,
                Err(rv) => {
                    if !nolock {
                        let _ = tx.send(Msg::RindexDone { space });
                    }
                    answer_from_thread(&tx, job, rv, &WireRentry::default());
                    return;
                }
            };
            if locked {
                job.header = Some(header);
                let _ = tx.send(Msg::RindexHeader { job });
                return;
            }
            let (rv, out) = disk_steps(&job, &disk, &header);
            if !nolock {
                let _ = tx.send(Msg::RindexDone { space });
            }
            answer_from_thread(&tx, job, rv, &out);
        },
        otherwise,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_operation_that_panics_on_its_thread_is_reported_failed() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let tx2 = tx.clone();
        on_blocking_thread(
            "test probe",
            || panic!("injected"),
            move || {
                let _ = tx2.send(Msg::Probed {
                    space_id: 3,
                    result: Err(EIO),
                });
            },
        );
        match rx.recv().await {
            Some(Msg::Probed { space_id, result }) => {
                assert_eq!((space_id, result.err()), (3, Some(EIO)));
            }
            _ => panic!("no failure reported"),
        }
        // One that does not panic reports itself; `otherwise` is not called.
        let tx3 = tx.clone();
        on_blocking_thread(
            "test probe",
            move || {
                let _ = tx3.send(Msg::Probed {
                    space_id: 4,
                    result: Err(-2),
                });
            },
            move || {
                let _ = tx.send(Msg::Probed {
                    space_id: 99,
                    result: Err(EIO),
                });
            },
        );
        assert!(matches!(
            rx.recv().await,
            Some(Msg::Probed { space_id: 4, .. })
        ));
        assert!(rx.recv().await.is_none(), "otherwise ran after a success");
    }
}
