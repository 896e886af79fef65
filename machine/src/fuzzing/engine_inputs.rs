//! The `engine_inputs` fuzz target: a shell played from the input's bytes around the daemon's
//! engine, with in-memory disks holding a real lockspace and lease.

use std::collections::BTreeSet;
use std::time::Duration;

use sanlock_core::io::{IoError, IoRequest, IoResult};
use sanlock_core::memdisk::MemDisk;
use sanlock_core::ondisk::{
    lockspace_init, resource_init, Geometry, Name, ResourceInit, SectorSize,
};
use sanlock_core::Time;

use crate::daemon::config::DaemonConfig;
use crate::daemon::request_parse::{parse_request, Parse, Parsed};
use crate::daemon::{Action, Call, DiskNo, Engine, Input, ReplyTo, Waiter};
use crate::watchdog::Keeper;
use crate::wire::{WireDisk, WireLockspace, WireOptions, WireResource};

/// The daemon's engine fed any sequence of inputs the bytes spell: connections opened,
/// registered, closed and their processes gone; requests of any command with any payload
/// (decoded by the connection's parser) and the usual ones on the real lockspace and lease
/// (add, acquire, release, remove); the host's I/O completed, failed or timed out in
/// any order; time passing. After each input: no request is answered twice, every lease held
/// belongs to a live slot. Panics when a property breaks (or the engine panics).
pub fn engine_inputs(data: &[u8]) {
    EngineWorld::new().run(data);
}

const PATHS: [&[u8]; 2] = [b"/f/ls", b"/f/res"];

struct EngineWorld {
    engine: Engine,
    now: Time,
    disks: Vec<MemDisk>,
    conns: Vec<usize>,
    io: Vec<(DiskNo, IoRequest)>,
    next_reply: u64,
    answered: BTreeSet<ReplyTo>,
}

/// The bytes, read front to back; zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

fn name(s: &[u8]) -> Name {
    Name::truncated(s)
}

impl EngineWorld {
    fn new() -> EngineWorld {
        let g = Geometry::legacy(SectorSize::Bytes512);
        let ls = lockspace_init(g, name(b"LS"), 1);
        let mut image = ls.area;
        image[..512].copy_from_slice(&ls.commit_sector);
        let res = resource_init(&ResourceInit {
            geometry: g,
            space_name: name(b"LS"),
            resource_name: name(b"R1"),
            num_hosts: 4,
            clear_at_s: None,
        });
        let cfg = DaemonConfig {
            use_watchdog: false,
            kill_grace_s: 2,
            ..DaemonConfig::default()
        };
        let now = Time::new(Duration::from_secs(1000));
        EngineWorld {
            engine: Engine::new(cfg, name(b"host1"), 7, Keeper::Off, now),
            now,
            disks: vec![MemDisk::from_bytes(image), MemDisk::from_bytes(res)],
            conns: Vec::new(),
            io: Vec::new(),
            next_reply: 0,
            answered: BTreeSet::new(),
        }
    }

    fn run(&mut self, data: &[u8]) {
        let mut b = Bytes(data);
        let mut steps = 0;
        while !b.0.is_empty() && steps < 300 {
            steps += 1;
            self.step(&mut b);
            self.settle();
            self.check();
        }
    }

    fn conn(&self, b: &mut Bytes) -> Option<usize> {
        let n = self.conns.len();
        (n > 0).then(|| self.conns[usize::from(b.u8()) % n])
    }

    fn call(&mut self, ci: usize, header: crate::wire::Header, call: Call) {
        let to = ReplyTo(self.next_reply);
        self.next_reply += 1;
        let (waiter, _) = Waiter::new(header, to);
        self.engine
            .handle(self.now, Input::Call { ci, waiter, call });
    }

    fn step(&mut self, b: &mut Bytes) {
        use crate::wire::{Cmd, Header};
        let ls = |host_id: u64| WireLockspace {
            name: name(b"LS"),
            host_id,
            flags: 0,
            disk: WireDisk {
                path: PATHS[0].to_vec(),
                offset: 0,
            },
        };
        let r1 = |shared: bool| WireResource {
            lockspace_name: name(b"LS"),
            name: name(b"R1"),
            flags: if shared { 0x4 } else { 0 },
            num_disks: 1,
            disks: vec![WireDisk {
                path: PATHS[1].to_vec(),
                offset: 0,
            }],
            ..WireResource::default()
        };
        match b.u8() % 12 {
            0 => {
                let pid = 100 + i32::from(b.u8());
                if let Some(ci) = self.engine.connect(pid) {
                    self.conns.push(ci);
                }
            }
            1 => {
                if let Some(ci) = self.conn(b) {
                    self.engine.handle(self.now, Input::Register { ci });
                }
            }
            2 => {
                if let Some(ci) = self.conn(b) {
                    self.conns.retain(|&c| c != ci);
                    self.engine.handle(self.now, Input::Closed { ci });
                }
            }
            3 => {
                if let Some(ci) = self.conn(b) {
                    let pid = self.engine.clients().get(ci).map_or(0, |c| c.pid);
                    self.engine
                        .handle(self.now, Input::ProcessExited { ci, pid });
                }
            }
            4 => {
                // Any command, any header fields, any payload.
                let Some(ci) = self.conn(b) else { return };
                let cmds: Vec<Cmd> = (1..=255).filter_map(Cmd::from_u32).collect();
                let cmd = cmds[usize::from(b.u8()) % cmds.len()];
                let mut header = Header::request(cmd, b.u32(), b.u32(), b.u32(), 0);
                header.length = b.u32() & 0xffff;
                let len = usize::from(b.u8()) * 8;
                let payload: Vec<u8> = (0..len).map(|_| b.u8()).collect();
                if let Parse::Done(Parsed::Call(call), _) = parse_request(cmd, &header, &payload) {
                    if !matches!(call, Call::RegEvent { .. }) {
                        self.call(ci, header, call);
                    }
                }
            }
            5 => {
                let Some(ci) = self.conn(b) else { return };
                let h = Header::request(Cmd::AddLockspace, 0, u32::from(b.u8() % 3), 0, 0);
                self.call(ci, h, Call::AddLockspace(ls(u64::from(b.u8() % 3))));
            }
            6 => {
                let Some(ci) = self.conn(b) else { return };
                let flags = u32::from(b.u8() % 8);
                let h = Header::request(Cmd::Acquire, flags, 1, u32::MAX, 0);
                let call = Call::Acquire {
                    resources: vec![r1(b.u8() % 2 == 1)],
                    options: WireOptions::default(),
                };
                self.call(ci, h, call);
            }
            7 => {
                let Some(ci) = self.conn(b) else { return };
                let h = Header::request(Cmd::Release, u32::from(b.u8() % 8), 1, u32::MAX, 0);
                self.call(ci, h, Call::Release(vec![r1(false)]));
            }
            8 => {
                let Some(ci) = self.conn(b) else { return };
                let flags = u32::from(b.u8() % 4);
                let h = Header::request(Cmd::RemLockspace, flags, 0, 0, 0);
                self.call(ci, h, Call::RemLockspace(ls(0)));
            }
            9 | 10 => {
                // Some of the host's I/O ends: done on the disk, failed, or timed out.
                let n = usize::from(b.u8() % 4) + 1;
                let mut done = Vec::new();
                for _ in 0..n {
                    // Two bytes each, whether or not there is I/O to end.
                    let (pick, fate) = (b.u8(), b.u8());
                    if self.io.is_empty() {
                        continue;
                    }
                    let i = usize::from(pick) % self.io.len();
                    let (disk, req) = self.io.remove(i);
                    let result: IoResult = match fate % 8 {
                        0 => Err(IoError::Failed(5)),
                        1 => Err(IoError::TimedOut),
                        _ => self.disks[disk.0].apply(&req),
                    };
                    done.push((req.id, result));
                }
                if !done.is_empty() {
                    self.engine.handle(self.now, Input::IoDone(done));
                }
            }
            _ => {
                self.now = self.now + Duration::from_millis(u64::from(b.u8()) * 100);
                self.engine.handle(self.now, Input::Timer);
            }
        }
    }

    /// Does what the engine asked, as the shell would, until it asks nothing more.
    fn settle(&mut self) {
        for _ in 0..64 {
            self.io.extend(self.engine.take_io());
            let actions = self.engine.take_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                match action {
                    Action::Reply { to, .. } => {
                        assert!(self.answered.insert(to), "request {to:?} answered twice");
                    }
                    Action::Probe { space_id, path, .. } => {
                        let result = if path == PATHS[0] {
                            Ok(Geometry::legacy(SectorSize::Bytes512))
                        } else {
                            Err(-2)
                        };
                        self.engine
                            .handle(self.now, Input::Probed { space_id, result });
                    }
                    Action::Open { path } => {
                        let result = PATHS
                            .iter()
                            .position(|p| *p == path.as_slice())
                            .map(DiskNo)
                            .ok_or((-2, "no such disk".to_string()));
                        self.engine
                            .handle(self.now, Input::DiskOpened { path, result });
                    }
                    _ => {}
                }
            }
        }
    }

    fn check(&self) {
        let clients = self.engine.clients();
        for (key, token) in &clients.tokens {
            for &h in &token.holders {
                assert!(
                    clients.get(h).is_some(),
                    "{key:?} held by slot {h}, which is free"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_acquire_and_release_spelled_in_bytes_run_through() {
        // The bytes a fuzzer starts from: connect (0), register (1), add (5); then I/O done
        // (9) and time (11) until joined; acquire (6) and I/O until held; release (7).
        let io_and_time = [9, 3, 0, 2, 0, 2, 0, 2, 0, 2, 11, 10];
        let mut w = EngineWorld::new();
        w.run(&[0, 1, 1, 0, 5, 0, 2, 1]);
        w.run(&io_and_time.repeat(40));
        let joined = w.engine.host().generation(name(b"LS"));
        assert!(joined.is_some(), "joined LS");
        w.run(&[6, 0, 0, 0]);
        w.run(&io_and_time.repeat(20));
        assert_eq!(w.engine.clients().tokens.len(), 1, "R1 held");
        w.run(&[7, 0, 0]);
        w.run(&io_and_time.repeat(10));
        assert!(w.engine.clients().tokens.is_empty(), "R1 released");
        assert!(w.answered.len() >= 3, "answered: {:?}", w.answered);
    }

    #[test]
    fn pseudo_random_inputs_break_nothing() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..300 {
            let data: Vec<u8> = (0..400)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            engine_inputs(&data);
        }
    }
}
