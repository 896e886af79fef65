//! The daemon's log: an in-memory ring of 1 MiB for `log_dump`, stderr with `-D`, and
//! `/var/log/sanlock.log` at the logfile priority (wire.md §1.1, §4.26). Lines look like
//! sanlock's: `2026-11-21 04:24:50 806 [12923]: text` (local time, monotonic seconds, tid).
//!
//! Once the daemon runs ([`start_writer`]), the writes to stderr, the file and syslog happen
//! on a thread of their own, as sanlock's log thread does them: a full disk, a throttled page
//! cache or a stalled journald never holds up a renewal or a client's reply.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

/// LOG_ERR.
pub const ERR: i32 = 3;
/// LOG_WARNING.
pub const WARNING: i32 = 4;
/// LOG_INFO.
pub const INFO: i32 = 6;
/// LOG_DEBUG.
pub const DEBUG: i32 = 7;

/// The ring's size.
const RING_BYTES: usize = 1 << 20;
const LOG_FILE: &str = "/var/log/sanlock.log";
/// How long [`flush`] waits for the writer at exit.
const FLUSH_WAIT: Duration = Duration::from_secs(2);
/// Lines waiting for the writer at most; past that they reach only the ring (sanlock's log
/// buffer overwrites what its thread has not written, too).
const WRITER_BACKLOG: usize = 4096;

struct Log {
    ring: VecDeque<u8>,
    to_stderr: bool,
    file_priority: i32,
    syslog_priority: i32,
    writes: Writes,
    /// Lines the writer had no room for since the last one it took.
    dropped: u64,
}

/// Where a line's writes are made: here, or on the writer thread.
enum Writes {
    Inline(Outputs),
    Thread(mpsc::SyncSender<Job>),
}

/// The file and the syslog socket (stderr is the process's).
struct Outputs {
    file: Option<std::fs::File>,
    syslog: Option<std::os::unix::net::UnixDatagram>,
}

/// One line's writes: what goes to stderr and the file, what to syslog.
struct Line {
    text: String,
    to_stderr: bool,
    to_file: bool,
    syslog: Option<String>,
}

enum Job {
    Line(Line),
    /// Answered once every line before it is written.
    Flush(mpsc::Sender<()>),
}

/// LOG_DAEMON, the facility sanlock logs under.
const LOG_DAEMON: i32 = 3 << 3;

static LOG: Mutex<Option<Log>> = Mutex::new(None);

/// Starts logging: to stderr too when `to_stderr` (-D); to the log file at `file_priority`
/// and more urgent; to syslog at `syslog_priority` and more urgent. Writes are made inline
/// until [`start_writer`].
pub fn init(to_stderr: bool, file_priority: i32, syslog_priority: i32) {
    let syslog = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect("/dev/log").map(|()| s))
        .ok();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(LOG_FILE)
        .ok();
    *LOG.lock().unwrap_or_else(|e| e.into_inner()) = Some(Log {
        ring: VecDeque::with_capacity(64 * 1024),
        to_stderr,
        file_priority,
        syslog_priority,
        writes: Writes::Inline(Outputs { file, syslog }),
        dropped: 0,
    });
}

/// Moves the writes to a thread of their own. Called once the daemon runs as its final user
/// (a thread started before the drop would keep root's ids).
pub fn start_writer() {
    let mut guard = LOG.lock().unwrap_or_else(|e| e.into_inner());
    let Some(log) = guard.as_mut() else { return };
    let (tx, rx) = mpsc::sync_channel(WRITER_BACKLOG);
    let Writes::Inline(outputs) = std::mem::replace(&mut log.writes, Writes::Thread(tx)) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("sanlock-log".into())
        .spawn(move || {
            let mut outputs = outputs;
            for job in rx {
                match job {
                    Job::Line(line) => outputs.write(&line),
                    Job::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
    if spawned.is_err() {
        // No thread: the lines are lost from stderr, the file and syslog, not from the ring.
        log.ring.extend(b"log writer thread failed to start\n");
    }
}

/// Waits (up to 2 s) until every line logged so far is written: at exit.
pub fn flush() {
    let (tx, rx) = mpsc::channel();
    {
        let guard = LOG.lock().unwrap_or_else(|e| e.into_inner());
        let Some(Log {
            writes: Writes::Thread(writer),
            ..
        }) = guard.as_ref()
        else {
            return;
        };
        if writer.try_send(Job::Flush(tx)).is_err() {
            return;
        }
    }
    let _ = rx.recv_timeout(FLUSH_WAIT);
}

/// Logs one line at `priority` (syslog numbers). Every line goes to the ring at once; the
/// other writes are the writer thread's.
pub fn log(priority: i32, text: &str) {
    let mono = sanlock_backends::clock::now().secs();
    let text_line = format!(
        "{} {} [{}]: {}\n",
        local_time(),
        mono,
        rustix::thread::gettid().as_raw_nonzero(),
        text
    );
    let mut guard = LOG.lock().unwrap_or_else(|e| e.into_inner());
    let Some(log) = guard.as_mut() else {
        return;
    };
    log.ring.extend(text_line.as_bytes());
    let excess = log.ring.len().saturating_sub(RING_BYTES);
    log.ring.drain(..excess);
    let line = Line {
        text: text_line,
        to_stderr: log.to_stderr,
        to_file: priority <= log.file_priority,
        syslog: (priority <= log.syslog_priority).then(|| {
            format!(
                "<{}>sanlock[{}]: {text}",
                LOG_DAEMON + priority,
                std::process::id()
            )
        }),
    };
    match &mut log.writes {
        Writes::Inline(outputs) => outputs.write(&line),
        Writes::Thread(writer) => {
            if log.dropped > 0 {
                let note = Line {
                    text: format!("{} log lines not written: the log was slow\n", log.dropped),
                    to_stderr: log.to_stderr,
                    to_file: true,
                    syslog: None,
                };
                if writer.try_send(Job::Line(note)).is_ok() {
                    log.dropped = 0;
                }
            }
            if log.dropped > 0 || writer.try_send(Job::Line(line)).is_err() {
                log.dropped += 1;
            }
        }
    }
}

impl Outputs {
    fn write(&mut self, line: &Line) {
        if line.to_stderr {
            let _ = std::io::stderr().write_all(line.text.as_bytes());
        }
        if line.to_file {
            if let Some(f) = self.file.as_mut() {
                let _ = f.write_all(line.text.as_bytes());
            }
        }
        if let (Some(msg), Some(s)) = (&line.syslog, self.syslog.as_ref()) {
            let _ = s.send(msg.as_bytes());
        }
    }
}

/// The ring, oldest first, without the last line's newline (what LOG_DUMP sends).
pub fn dump() -> Vec<u8> {
    let guard = LOG.lock().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<u8> = guard
        .as_ref()
        .map(|l| l.ring.iter().copied().collect())
        .unwrap_or_default();
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (we carry no time zone database; sanlock prints local time,
/// which is UTC on the hosts we test on).
fn local_time() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn calendar_dates_from_day_numbers() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_778), (2026, 11, 21));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
