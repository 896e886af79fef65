//! What a waiting `sanlock client` action is waiting for, on stderr, when stderr is a terminal:
//! add_lockspace, an acquire blocked on an owner that may be dead, rem_lockspace and shutdown.
//! Once a second it asks the daemon (SHOW, on a connection of its own) and rewrites one line;
//! the line is cleared when the action ends. Never in a pipe or a file, so scripts read
//! sanlock's exact output.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use sanlock_client::Client;

/// The progress line of one action, while it lasts.
pub struct Progress {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts reporting for `label` the daemon's waits that `mine` picks, if stderr is a
    /// terminal; None otherwise.
    pub fn start(
        label: String,
        mine: impl Fn(&Value) -> bool + Send + 'static,
    ) -> Option<Progress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            // A daemon that does not answer SHOW (sanlock 3.8.5's) is asked once.
            let client = Client::new().with_timeout(Duration::from_secs(1));
            let mut ask = true;
            let mut shown = false;
            // Quiet for the first second: most actions end before.
            while stopped.recv_timeout(Duration::from_secs(1))
                == Err(mpsc::RecvTimeoutError::Timeout)
            {
                let waits = match ask.then(|| super::show::waits(&client)) {
                    Some(Ok(waits)) => waits,
                    Some(Err(_)) => {
                        ask = false;
                        Vec::new()
                    }
                    None => Vec::new(),
                };
                let line = match waits.iter().find(|w| mine(w)) {
                    Some(w) => format!("{label}: {}", super::show::describe_wait(w)),
                    None => format!("{label}: {}s so far", t0.elapsed().as_secs()),
                };
                let mut err = std::io::stderr().lock();
                // Carriage return and erase-line: one line, rewritten in place.
                let _ = write!(err, "\r\x1b[K{line}");
                let _ = err.flush();
                shown = true;
            }
            if shown {
                let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
            }
        });
        Some(Progress {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A wait of operation `op` on lockspace `lockspace` (any lockspace when None).
pub fn wait_of(op: &'static str, lockspace: Option<String>) -> impl Fn(&Value) -> bool {
    move |w| {
        w["op"] == op
            && lockspace
                .as_ref()
                .is_none_or(|ls| w["lockspace"] == ls.as_str())
    }
}

/// A wait of an acquire of one of `resources` (lockspace, resource names).
pub fn acquire_of(resources: Vec<(String, String)>) -> impl Fn(&Value) -> bool {
    move |w| {
        w["op"] == "acquire"
            && resources
                .iter()
                .any(|(ls, r)| w["lockspace"] == ls.as_str() && w["resource"] == r.as_str())
    }
}
