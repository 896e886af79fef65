//! Waits for events set on this host in a lockspace (`sanlock client set_event` on another
//! host, or on this one), with tokio, and prints each.
//!
//! `wait_events LOCKSPACE COUNT`: prints `event 0xE data 0xD from host H generation G` for each
//! of COUNT events, then ends its registration.

use std::process::ExitCode;

use sanlock_client::{name, AsyncClient};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ls, count] = &args[..] else {
        eprintln!("usage: wait_events LOCKSPACE COUNT");
        return ExitCode::from(2);
    };
    let Ok(count) = count.parse::<usize>() else {
        eprintln!("wait_events: COUNT must be a number");
        return ExitCode::from(2);
    };
    match run(ls, count).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wait_events: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(ls: &str, count: usize) -> sanlock_client::Result<()> {
    let mut events = AsyncClient::new().reg_event(&name(ls)?).await?;
    println!("listening");
    for _ in 0..count {
        let Some(event) = events.next().await else {
            break;
        };
        let e = event?;
        println!(
            "event {:#x} data {:#x} from host {} generation {}",
            e.event.event, e.event.data, e.from_host_id, e.from_generation
        );
    }
    events.end().await
}
