//! `sanlock`: a drop-in for sanlock 3.8.5's command line and daemon.

use std::io::Write;
use std::os::unix::ffi::OsStringExt;

fn main() {
    let argv: Vec<Vec<u8>> = std::env::args_os().map(OsStringExt::into_vec).collect();
    let outcome = sanlock_daemon::run(&argv);
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not turn a result into a panic.
    let _ = stdout.write_all(&outcome.stdout);
    let _ = stdout.flush();
    std::process::exit(outcome.code);
}
