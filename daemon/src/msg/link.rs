//! The calls a messaging member makes to its daemon, each one sanlock 3.8.5's socket protocol
//! has (so a C daemon serves them as well as ours): REGISTER, ACQUIRE, CONVERT, RELEASE,
//! SET_LVB, GET_LVB on the registered connection; GET_LOCKSPACES, GET_HOSTS, SET_EVENT and
//! REG_EVENT on connections of their own.

use std::io::Read;
use std::path::{Path, PathBuf};

use sanlock_core::messenger::LeaseOp;
use sanlock_core::ondisk::message_lvb::MsgLease;
use sanlock_core::ondisk::Name;

use crate::client::{
    acquire_payload, lockspace_payload, names_payload, resource_payload, Connection,
};
use crate::wire::payload::{LOCKSPACE_LEN, RES_SHARED};
use crate::wire::{Cmd, WireDisk, WireHostEvent, WireLockspace, WireResource, HEADER_LEN};

/// "This process" in a lease command's pid field (libsanlock sends -1).
const SELF_PID: u32 = u32::MAX;
/// SANLK_ACQUIRE_LVB: keep the LVB sector (needed for set_lvb / get_lvb).
const ACQUIRE_LVB: u32 = 1;
/// SANLK_ACQUIRE_OWNER_NOWAIT / SANLK_CONVERT_OWNER_NOWAIT: fail at once (-247) rather than
/// wait to learn whether the owner is alive.
const OWNER_NOWAIT: u32 = 8;
/// A lease busy this long gets one acquire that waits: only a waiting acquire takes the lease
/// of an owner that died.
const WAIT_AFTER: std::time::Duration = std::time::Duration::from_secs(20);
/// SANLK_SETEV_REPLACE_EVENT | SANLK_SETEV_ALL_HOSTS.
const SETEV_REPLACE_ALL: u32 = 0x8 | 0x10;
/// The event number a messaging wake-up carries (its data is the message number).
pub const MSG_EVENT: u64 = 0x6d73_6731; // "msg1"

/// A registered connection to one daemon: the member's leases live as long as it.
pub struct Link {
    socket: PathBuf,
    conn: Connection,
    space: Name,
    disk_path: Vec<u8>,
    area: sanlock_core::ondisk::message_lvb::MessagingArea,
    /// Since when each lease has answered busy, without a success.
    busy_since: [Option<std::time::Instant>; 3],
}

impl Link {
    /// Registers with the daemon listening at `socket`.
    pub fn register(
        socket: &Path,
        space: Name,
        disk_path: &[u8],
        area: sanlock_core::ondisk::message_lvb::MessagingArea,
    ) -> Result<Link, i32> {
        let mut conn = Connection::open_at(socket)?;
        // REGISTER has no reply: the connection is the client from now on.
        conn.request(Cmd::Register, 0, 0, 0, &[])?;
        Ok(Link {
            socket: socket.to_path_buf(),
            conn,
            space,
            disk_path: disk_path.to_vec(),
            area,
            busy_since: [None; 3],
        })
    }

    fn resource(&self, lease: MsgLease, shared: bool, with_disk: bool) -> WireResource {
        let disks = if with_disk {
            vec![WireDisk {
                path: self.disk_path.clone(),
                offset: self.area.lease_offset(lease),
            }]
        } else {
            Vec::new()
        };
        WireResource {
            lockspace_name: self.space,
            name: Name::new(lease.resource_name().as_bytes()).expect("a short name"),
            flags: if shared { RES_SHARED } else { 0 },
            num_disks: disks.len() as u32,
            disks,
            ..WireResource::default()
        }
    }

    fn command(
        &mut self,
        cmd: Cmd,
        flags: u32,
        count: u32,
        payload: &[u8],
    ) -> Result<Vec<u8>, i32> {
        // Lease commands name "this process" in data2; the LVB calls carry a length there
        // (0: one sector), as libsanlock sends them.
        let data2 = match cmd {
            Cmd::SetLvb | Cmd::GetLvb => 0,
            _ => SELF_PID,
        };
        self.conn.request(cmd, flags, count, data2, payload)?;
        let h = self.conn.recv_header()?;
        // A failed GET_LVB's length claims bytes that never come (wire.md §4.23).
        let body = (h.length as usize).saturating_sub(HEADER_LEN);
        let extra = if body > 0 && h.rv() >= 0 {
            self.conn.recv_exact(body)?
        } else {
            Vec::new()
        };
        match h.rv() {
            rv if rv < 0 => Err(rv),
            _ => Ok(extra),
        }
    }

    /// Runs one lease call of the member's machine.
    pub fn lease(&mut self, lease: MsgLease, op: &LeaseOp) -> Result<Vec<u8>, i32> {
        let lvb_flag = if lease == MsgLease::Token {
            0
        } else {
            ACQUIRE_LVB
        };
        // Acquires and converts of a contended lease answer at once; one busy for WAIT_AFTER
        // gets a waiting try.
        let slot = lease as usize;
        let contended = matches!(op, LeaseOp::Acquire { .. } | LeaseOp::Convert { .. });
        let nowait = match self.busy_since[slot] {
            _ if !contended => 0,
            Some(t) if t.elapsed() >= WAIT_AFTER => {
                self.busy_since[slot] = None;
                0
            }
            _ => OWNER_NOWAIT,
        };
        let name_only = |link: &Self| names_payload(&[link.resource(lease, false, false)]);
        let r = match op {
            LeaseOp::Acquire { shared } => {
                let res = self.resource(lease, *shared, true);
                self.command(Cmd::Acquire, lvb_flag | nowait, 1, &acquire_payload(&[res]))
            }
            LeaseOp::Convert { shared } => {
                let res = self.resource(lease, *shared, false);
                self.command(Cmd::Convert, nowait, 0, &names_payload(&[res]))
            }
            LeaseOp::Release => self.command(Cmd::Release, 0, 1, &name_only(self)),
            LeaseOp::SetLvb(bytes) => {
                let mut payload = resource_payload(&self.resource(lease, false, false));
                payload.extend_from_slice(bytes);
                self.command(Cmd::SetLvb, 0, 0, &payload)
            }
            LeaseOp::GetLvb => {
                let payload = resource_payload(&self.resource(lease, false, false));
                return self.command(Cmd::GetLvb, 0, 0, &payload);
            }
        };
        if contended {
            match &r {
                Ok(_) => self.busy_since[slot] = None,
                Err(_) => {
                    self.busy_since[slot].get_or_insert_with(std::time::Instant::now);
                }
            }
        }
        // Only GET_LVB's reply carries bytes the member wants.
        r.map(|_| Vec::new())
    }

    /// Wakes every other host's members (SET_EVENT to all hosts); a failure only costs the
    /// wake-up (the members re-read the LVB on their own).
    pub fn notify(&self, seq: u64) -> i32 {
        let mut payload = lockspace_payload(&WireLockspace {
            name: self.space,
            ..WireLockspace::default()
        });
        WireHostEvent {
            host_id: 1,
            generation: 0,
            event: MSG_EVENT,
            data: seq,
        }
        .encode_into(&mut payload);
        one_call(&self.socket, Cmd::SetEvent, SETEV_REPLACE_ALL, &payload).unwrap_or_else(|e| e)
    }
}

fn one_call(socket: &Path, cmd: Cmd, flags: u32, payload: &[u8]) -> Result<i32, i32> {
    let mut c = Connection::open_at(socket)?;
    c.request(cmd, flags, 0, 0, payload)?;
    Ok(c.recv_header()?.rv())
}

/// Our host_id and generation in `space`, from the daemon at `socket`.
pub fn our_host(socket: &Path, space: &Name) -> Result<(u64, u64), i32> {
    let mut c = Connection::open_at(socket)?;
    c.request(Cmd::GetLockspaces, 0, 0, 0, &[])?;
    let h = c.recv_header()?;
    if h.rv() < 0 && h.rv() != -28 {
        return Err(h.rv());
    }
    let body = c.recv_exact(h.data2 as usize * LOCKSPACE_LEN)?;
    let host_id = body
        .chunks(LOCKSPACE_LEN)
        .map(WireLockspace::decode)
        .find(|ls| ls.name == *space)
        .map(|ls| ls.host_id)
        .ok_or(-2)?;
    // GET_HOSTS for our own host_id gives our generation; just after a join it answers
    // -EAGAIN until the first scans are in (as 3.8.5 does).
    let payload = lockspace_payload(&WireLockspace {
        name: *space,
        host_id,
        ..WireLockspace::default()
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let body = loop {
        let mut c = Connection::open_at(socket)?;
        c.request(Cmd::GetHosts, 0, 0, 0, &payload)?;
        let h = c.recv_header()?;
        match h.rv() {
            -11 if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            rv if rv < 0 => return Err(rv),
            _ => break c.recv_exact(h.data2 as usize * crate::wire::HOST_LEN)?,
        }
    };
    let generation = body
        .chunks(crate::wire::HOST_LEN)
        .map(crate::wire::WireHost::decode)
        .find(|host| host.host_id == host_id)
        .map_or(0, |host| host.generation);
    Ok((host_id, generation))
}

/// A REG_EVENT registration for `space`: the connection the daemon's events arrive on.
pub fn register_events(socket: &Path, space: &Name) -> Result<std::os::unix::net::UnixStream, i32> {
    let mut c = Connection::open_at(socket)?;
    let mut payload = lockspace_payload(&WireLockspace {
        name: *space,
        ..WireLockspace::default()
    });
    WireHostEvent::default().encode_into(&mut payload);
    c.request(Cmd::RegEvent, 0, 0, 0, &payload)?;
    let rv = c.recv_header()?.rv();
    if rv < 0 {
        return Err(rv);
    }
    Ok(c.into_stream())
}

/// Calls `wake` for each messaging event on `stream`, until it closes (the daemon went, or the
/// member shut it down) or `wake` says stop.
pub fn listen_events(
    mut stream: std::os::unix::net::UnixStream,
    mut wake: impl FnMut(u64) -> bool,
) {
    let mut cb = [0u8; HEADER_LEN + 48];
    while stream.read_exact(&mut cb).is_ok() {
        let ev = WireHostEvent::decode(&cb[HEADER_LEN..HEADER_LEN + 32]);
        if ev.event == MSG_EVENT && !wake(ev.data) {
            break;
        }
    }
}
