//! Holds a resource lease while a child process runs, as `sanlock client command` does, and
//! lets it go when the child exits.
//!
//! `lease_for_child LOCKSPACE NAME PATH OFFSET COMMAND [ARG…]`: the lockspace must be joined.
//! Prints `acquired`, the child's output, then `released` and exits with the child's status.

use std::process::{Command, ExitCode};

use sanlock_client::{AcquireFlags, Client, Disk, ReleaseFlags, Resource};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ls, name, path, offset, command, rest @ ..] = &args[..] else {
        eprintln!("usage: lease_for_child LOCKSPACE NAME PATH OFFSET COMMAND [ARG...]");
        return ExitCode::from(2);
    };
    match run(ls, name, path, offset, command, rest) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lease_for_child: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    ls: &str,
    name: &str,
    path: &str,
    offset: &str,
    command: &str,
    args: &[String],
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let offset: u64 = offset.parse()?;
    let lease = Resource::new(ls, name, Disk::new(path, offset))?;
    // The registration is this process's life to the daemon: were we killed, the daemon would
    // release the lease (or, with a killpath, first ask us to stop the child).
    let mut me = Client::new().register()?;
    me.acquire(std::slice::from_ref(&lease), AcquireFlags::NONE)?;
    println!("acquired {ls}:{name} lver {:?}", me.inquire()?[0].lver);
    let status = Command::new(command).args(args).status()?;
    me.release(&[lease], ReleaseFlags::NONE)?;
    println!("released");
    Ok(ExitCode::from(status.code().unwrap_or(1) as u8))
}
