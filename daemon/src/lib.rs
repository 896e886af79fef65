//! The `sanlock` program: command line, `direct` actions and (later) the daemon, as a library
//! so that tests can call its parts.

pub mod cli;
pub mod demo;
pub mod direct;
pub mod msg;
pub mod rindex;
pub mod server;
pub use sanlock_backends::disk;
/// The libsanlock-style client layer, from the client crate.
pub use sanlock_client::raw as client;
/// The socket protocol as bytes (it lives with the daemon machine, which is pure).
pub use sanlock_machine::wire;

use cli::options::{self, DirectAction, Mode};
use cli::usage::USAGE;

/// What a run of `sanlock` printed and how it ends.
pub struct Outcome {
    /// Bytes for stdout.
    pub stdout: Vec<u8>,
    /// The exit status.
    pub code: i32,
}

/// Runs `sanlock` with `argv` (program name first): parse, then carry out the action.
pub fn run(argv: &[Vec<u8>]) -> Outcome {
    // `sanlock demo` is ours (the README's main job); sanlock has no such action, and its usage
    // text stays sanlock's.
    if argv.get(1).is_some_and(|a| a == b"demo") && argv.len() == 2 {
        return Outcome {
            stdout: Vec::new(),
            code: demo::run(),
        };
    }
    // `sanlock client show …` is ours (`--json` is not sanlock's option syntax).
    if argv.get(1).is_some_and(|a| a == b"client") && argv.get(2).is_some_and(|a| a == b"show") {
        let (stdout, code) = cli::show::run(&argv[3..]);
        return Outcome { stdout, code };
    }
    // `sanlock msg …` is ours too (docs/MESSAGING.md); it streams its own output.
    if argv.get(1).is_some_and(|a| a == b"msg") {
        return Outcome {
            stdout: Vec::new(),
            code: cli::msg::run(&argv[2..]),
        };
    }
    let cl = match options::parse(argv) {
        Ok(cl) => cl,
        Err(exit) => {
            let mut stdout = Vec::new();
            if exit.usage {
                stdout.extend_from_slice(USAGE.as_bytes());
            }
            stdout.extend_from_slice(&exit.stdout);
            return Outcome {
                stdout,
                code: exit.code,
            };
        }
    };
    for warning in &cl.warnings {
        eprintln!("sanlock: {warning}");
    }
    let mut stdout = cl.notes.concat();
    let rv = match cl.mode {
        Mode::Direct(DirectAction::Init) => direct::init::run(&cl.options, &mut stdout),
        Mode::Direct(DirectAction::ReadLeader) => {
            direct::read_leader::run(&cl.options, &mut stdout)
        }
        Mode::Direct(DirectAction::Dump) => direct::dump::run(&cl.options, &mut stdout),
        Mode::Direct(DirectAction::NextFree) => direct::next_free::run(&cl.options, &mut stdout),
        Mode::Direct(DirectAction::WriteLeader) => {
            direct::write_leader::run(&cl.options, &mut stdout)
        }
        Mode::Direct(
            action @ (DirectAction::Format
            | DirectAction::Rebuild
            | DirectAction::Lookup
            | DirectAction::Update),
        ) => direct::rindex::run(action, &cl.options, &mut stdout),
        Mode::Direct(
            action @ (DirectAction::AcquireId
            | DirectAction::RenewId
            | DirectAction::ReleaseId
            | DirectAction::Acquire
            | DirectAction::Release),
        ) => direct::leases::run(action, &cl.options, &mut stdout),
        Mode::Client(action) => cli::client_actions::run(action, &cl.options, &mut stdout),
        Mode::Daemon => {
            return Outcome {
                stdout,
                code: server::run(argv, &cl.options),
            }
        }
    };
    // sanlock exits 0 only when the action's result is exactly 0.
    Outcome {
        stdout,
        code: i32::from(rv != 0),
    }
}
