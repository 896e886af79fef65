//! `sanlock msg init|listen|send` (ours; docs/MESSAGING.md): cluster messaging on a messaging
//! area of a lockspace, through the daemon of `$SANLOCK_RUN_DIR`.
//!
//! - `msg init -s LS -a PATH:OFFSET` writes the area's three leases and zeroes its data slots,
//!   refusing a place that holds another lease or a held messaging lease.
//! - `msg listen -s LS -a PATH:OFFSET [-c COUNT] [-p MS]` joins as this host's member and
//!   prints each message on a line of its own (after MS milliseconds of "work", for demos),
//!   then tells the member it is processed; it exits after COUNT messages; it also serves
//!   `msg send` on this host through `<run dir>/msg-LS.sock`.
//! - `msg send -s LS -a PATH:OFFSET TEXT…` exits 0 once every live member has processed TEXT:
//!   through the local listener if one runs, else as a member of its own for the send.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;

use sanlock_core::ondisk::message_lvb::{MessagingArea, MsgLease};
use sanlock_core::ondisk::{Geometry, LeaderKind, Name, RawLeader, SectorSize};

use crate::direct::init::write_resource;
use crate::disk::{AlignedBuf, Disk};
use crate::msg::{AreaPlace, JoinOptions, Messenger};

const USAGE: &str =
    "usage: sanlock msg init|listen|send -s LOCKSPACE -a PATH:OFFSET [-c COUNT] [TEXT...]\n";

struct Args {
    action: String,
    space: String,
    place: AreaPlace,
    count: Option<u64>,
    /// Milliseconds a listener spends "processing" each message before printing it.
    pause_ms: u64,
    text: Vec<String>,
}

fn parse(argv: &[Vec<u8>]) -> Result<Args, String> {
    let mut it = argv.iter().map(|a| String::from_utf8_lossy(a).into_owned());
    let action = it.next().ok_or("no action")?;
    let (mut space, mut place, mut count, mut text) = (None, None, None, Vec::new());
    let mut pause_ms = 0;
    while let Some(a) = it.next() {
        match a.as_str() {
            "-s" => space = Some(it.next().ok_or("-s needs a lockspace name")?),
            "-a" => {
                let v = it.next().ok_or("-a needs PATH:OFFSET")?;
                let (path, offset) = v.rsplit_once(':').ok_or("-a needs PATH:OFFSET")?;
                let offset = offset
                    .parse()
                    .map_err(|_| format!("-a: offset {offset:?} is not a number"))?;
                place = Some(AreaPlace {
                    path: path.as_bytes().to_vec(),
                    offset,
                });
            }
            "-c" => {
                let v = it.next().ok_or("-c needs a count")?;
                count = Some(
                    v.parse()
                        .map_err(|_| format!("-c: {v:?} is not a number"))?,
                );
            }
            "-p" => {
                let v = it.next().ok_or("-p needs milliseconds")?;
                pause_ms = v
                    .parse()
                    .map_err(|_| format!("-p: {v:?} is not a number"))?;
            }
            _ => text.push(a),
        }
    }
    Ok(Args {
        action,
        space: space.ok_or("-s LOCKSPACE is required")?,
        place: place.ok_or("-a PATH:OFFSET is required")?,
        count,
        pause_ms,
        text,
    })
}

/// The `msg` actions, as the dispatch in [`run`] knows them.
pub const ACTIONS: [&str; 3] = ["init", "listen", "send"];

/// Runs `sanlock msg …` (argv after "msg"); the exit status.
pub fn run(argv: &[Vec<u8>]) -> i32 {
    let args = match parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sanlock msg: {e}");
            eprint!("{USAGE}");
            return 1;
        }
    };
    let result = match args.action.as_str() {
        "init" => init(&args),
        "listen" => listen(&args),
        "send" => send(&args),
        other => Err(format!(
            "unknown action {other:?}; one of {}",
            ACTIONS.join(", ")
        )),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sanlock msg {}: {e}", args.action);
            1
        }
    }
}

fn socket_path(space: &str) -> PathBuf {
    crate::client::run_dir().join(format!("msg-{space}.sock"))
}

/// Writes the three leases after checking that nothing else lives there.
fn init(args: &Args) -> Result<(), String> {
    let name = Name::new(args.space.as_bytes()).map_err(|e| e.to_string())?;
    let disk = Disk::open(&args.place.path).map_err(|e| e.to_string())?;
    let geometry = Geometry::legacy(disk.sector_size().unwrap_or(SectorSize::Bytes512));
    let area = MessagingArea::new(args.place.offset, geometry).map_err(|e| e.to_string())?;
    if args.place.offset % area.lease_len() != 0 {
        return Err(format!(
            "offset {} is not a multiple of the lease size {}",
            args.place.offset,
            area.lease_len()
        ));
    }
    let ss = geometry.sector_size().as_usize();
    for lease in MsgLease::ALL {
        let at = area.lease_offset(lease);
        let sector = disk.read(at, ss).map_err(|e| e.to_string())?;
        let Some(l) = RawLeader::parse(sector.as_ref())
            .ok()
            .and_then(|raw| raw.verify(LeaderKind::Paxos).ok())
        else {
            continue;
        };
        if l.resource_name.as_bytes() != lease.resource_name().as_bytes() || l.space_name != name {
            return Err(format!(
                "offset {at} holds resource {}:{}; not overwriting it",
                l.space_name, l.resource_name
            ));
        }
        if l.timestamp != 0 {
            if let Some(owner) = l.owner_id {
                return Err(format!(
                    "{} is held by host {owner} (generation {}); not overwriting it",
                    lease.resource_name(),
                    l.owner_generation.0
                ));
            }
        }
    }
    // The data slots must not hold a lease of anyone's either.
    let slots = area.slot_offset(0);
    let sector = disk.read(slots, ss).map_err(|e| e.to_string())?;
    if let Some(l) = RawLeader::parse(sector.as_ref())
        .ok()
        .and_then(|raw| raw.verify(LeaderKind::Paxos).ok())
    {
        return Err(format!(
            "offset {slots} (the data slots) holds resource {}:{}; not overwriting it",
            l.space_name, l.resource_name
        ));
    }
    for lease in MsgLease::ALL {
        let res = Name::new(lease.resource_name().as_bytes()).expect("a short name");
        let rv = write_resource(
            name,
            res,
            &[(&args.place.path, area.lease_offset(lease))],
            Some(geometry),
            0,
            false,
        );
        if rv != 0 {
            return Err(format!("writing {}: {rv}", lease.resource_name()));
        }
    }
    disk.write(slots, &AlignedBuf::zeroed(area.lease_len() as usize))
        .map_err(|e| e.to_string())?;
    println!(
        "msg init done: {} at {}:{}",
        args.space,
        String::from_utf8_lossy(&args.place.path),
        args.place.offset
    );
    Ok(())
}

fn listen(args: &Args) -> Result<(), String> {
    let m = Arc::new(
        Messenger::join(&args.space, &args.place, &JoinOptions::default())
            .map_err(|e| e.to_string())?,
    );
    eprintln!(
        "sanlock msg listen: host {} joined {} after message {}",
        m.host_id(),
        args.space,
        m.joined_at()
    );
    // We hold the member lock, so a socket file left here is a dead listener's.
    let sock = socket_path(&args.space);
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|e| format!("{}: {e}", sock.display()))?;
    let server = m.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let m = server.clone();
            std::thread::spawn(move || serve_send(&m, conn));
        }
    });
    let mut out = std::io::stdout().lock();
    let mut n = 0;
    while args.count.is_none_or(|c| n < c) {
        let msg = m.recv().map_err(|e| e.to_string())?;
        std::thread::sleep(std::time::Duration::from_millis(args.pause_ms));
        let text = String::from_utf8_lossy(&msg.payload).replace('\n', "\\n");
        writeln!(out, "{text}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())?;
        msg.processed();
        n += 1;
    }
    let _ = std::fs::remove_file(&sock);
    Ok(())
}

/// One forwarded send: the payload until EOF in, "0 SEQ" or "RV" out.
fn serve_send(m: &Messenger, mut conn: UnixStream) {
    let mut payload = Vec::new();
    if conn.read_to_end(&mut payload).is_err() {
        return;
    }
    let reply = match m.send(&payload) {
        Ok(seq) => format!("0 {seq}\n"),
        Err(crate::msg::MsgError::SendFailed { rv } | crate::msg::MsgError::Stopped { rv }) => {
            format!("{rv}\n")
        }
        Err(_) => "-5\n".to_string(),
    };
    let _ = conn.write_all(reply.as_bytes());
}

fn send(args: &Args) -> Result<(), String> {
    let payload = args.text.join(" ").into_bytes();
    // A listener that holds the member lock but has not bound its socket yet is still
    // joining: wait for it rather than fail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let m = loop {
        if let Ok(conn) = UnixStream::connect(socket_path(&args.space)) {
            return forward(conn, &payload);
        }
        match Messenger::join(&args.space, &args.place, &JoinOptions::default()) {
            Ok(m) => break Arc::new(m),
            Err(crate::msg::MsgError::Busy { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    // A member only for this send: others' messages meanwhile are ours to let through, and
    // nothing here has a use for them.
    let drain = m.clone();
    std::thread::spawn(move || {
        while let Ok(msg) = drain.recv() {
            msg.processed();
        }
    });
    let seq = m.send(&payload).map_err(|e| e.to_string())?;
    println!("msg send done: message {seq}");
    m.leave();
    Ok(())
}

/// Hands the payload to this host's listener; its answer.
fn forward(mut conn: UnixStream, payload: &[u8]) -> Result<(), String> {
    conn.write_all(payload).map_err(|e| e.to_string())?;
    conn.shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(conn)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("0"), Some(seq)) => {
            println!("msg send done: message {seq}");
            Ok(())
        }
        (Some(rv), _) => Err(format!("the local listener's send failed: {rv}")),
        _ => Err("the local listener closed without an answer".into()),
    }
}
