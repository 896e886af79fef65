//! Lists the leases a registered process holds and releases them: what a supervisor does for
//! a process it is about to stop (`sanlock client inquire -p PID`, then `release -p PID`).
//!
//! `inquire_release PID`: prints each lease, one per line, then `released N`.

use std::process::ExitCode;

use sanlock_client::{Client, ReleaseFlags};

fn main() -> ExitCode {
    let Some(Ok(pid)) = std::env::args().nth(1).map(|a| a.parse::<i32>()) else {
        eprintln!("usage: inquire_release PID");
        return ExitCode::from(2);
    };
    let client = Client::new();
    let run = || -> sanlock_client::Result<usize> {
        let leases = client.inquire(pid)?;
        for lease in &leases {
            println!(
                "{}:{} {:?} lver {:?} on {}",
                String::from_utf8_lossy(lease.lockspace.as_bytes()),
                String::from_utf8_lossy(lease.name.as_bytes()),
                lease.mode,
                lease.lver,
                lease.disks[0].path.display()
            );
        }
        if !leases.is_empty() {
            client.release(pid, &leases, ReleaseFlags::NONE)?;
        }
        Ok(leases.len())
    };
    match run() {
        Ok(n) => {
            println!("released {n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The typed error keeps sanlock's number, for scripts that expect it.
            eprintln!("inquire_release: {e} (code {})", e.code());
            ExitCode::FAILURE
        }
    }
}
