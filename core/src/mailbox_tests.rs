//! Host messages between hosts over one in-memory lockspace (docs/MESSAGES.md).

use std::time::Duration;

use crate::host::{Host, HostConfig, JoinRequest, Output};
use crate::ids::{Generation, HostId, MessageSeq};
use crate::mailbox::MailEvent;
use crate::memdisk::MemDisk;
use crate::ondisk::{
    lockspace_init, DeltaSector, Geometry, HostEvent, LeaderKind, MailboxBlock, Name, RawLeader,
    SectorSize,
};
use crate::time::Time;

const N: u64 = 10;

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

fn host(n: u64) -> HostId {
    HostId::new(n).unwrap()
}

fn g512() -> Geometry {
    Geometry::legacy(SectorSize::Bytes512)
}

/// Hosts 1..=n of ours in one lockspace, every I/O completed at once. `auto_ack`: each host
/// acknowledges what it receives at once (as the daemon does after delivering).
struct Cluster {
    hosts: Vec<Host>,
    disk: MemDisk,
    now: Time,
    log: Vec<(usize, Time, MailEvent)>,
    auto_ack: bool,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let ls = lockspace_init(g512(), name("LS"), N as u16);
        let mut area = ls.area;
        area[..512].copy_from_slice(&ls.commit_sector);
        let mut c = Cluster {
            hosts: Vec::new(),
            disk: MemDisk::from_bytes(area),
            now: Time::from_secs(1000),
            log: Vec::new(),
            auto_ack: true,
        };
        for i in 0..n {
            let mut config = HostConfig::new(name(&format!("host{}", i + 1)));
            config.event_poll = true;
            let mut h = Host::new(config);
            h.join(
                c.now,
                JoinRequest {
                    space_name: name("LS"),
                    host_id: host(i as u64 + 1),
                    geometry: g512(),
                    offset: 0,
                    io_timeout_s: N,
                },
            );
            c.hosts.push(h);
        }
        c.run_for(3 * N);
        c.log.clear();
        c
    }

    fn settle(&mut self) {
        loop {
            let mut quiet = true;
            for i in 0..self.hosts.len() {
                while let Some((_, req)) = self.hosts[i].poll_io() {
                    quiet = false;
                    let result = self.disk.apply(&req);
                    self.hosts[i].handle_io(self.now, req.id, result);
                }
                while let Some(out) = self.hosts[i].poll_output() {
                    if let Output::Mail { event, .. } = out {
                        quiet = false;
                        self.log.push((i, self.now, event));
                        if let MailEvent::Received {
                            from,
                            from_generation,
                            seq,
                            ..
                        } = event
                        {
                            if self.auto_ack {
                                self.hosts[i].ack_message(
                                    self.now,
                                    name("LS"),
                                    from,
                                    from_generation,
                                    seq,
                                );
                            }
                        }
                    }
                }
            }
            if quiet {
                return;
            }
        }
    }

    fn run_for(&mut self, secs: u64) {
        let until = self.now + Duration::from_secs(secs);
        self.settle();
        loop {
            let next = self.hosts.iter().filter_map(Host::poll_timeout).min();
            match next {
                Some(next) if next <= until => {
                    self.now = self.now.max(next);
                    for h in &mut self.hosts {
                        h.handle_timeout(self.now);
                    }
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn sector(&self, h: u64) -> Vec<u8> {
        let at = (h as usize - 1) * 512;
        self.disk.bytes()[at..at + 512].to_vec()
    }

    fn events_of(&self, i: usize) -> Vec<MailEvent> {
        self.log
            .iter()
            .filter(|(j, _, _)| *j == i)
            .map(|(_, _, e)| *e)
            .collect()
    }

    fn first_at(&self, i: usize, want: MailEvent) -> Option<Time> {
        self.log
            .iter()
            .find(|(j, _, e)| *j == i && *e == want)
            .map(|(_, t, _)| *t)
    }
}

fn ev(event: u64, data: u64) -> HostEvent {
    HostEvent {
        generation: 0,
        event,
        data,
    }
}

#[test]
fn every_sector_of_ours_carries_the_marker_and_a_leader_sanlock_accepts() {
    let c = Cluster::new(2);
    for h in [1, 2] {
        let sector = c.sector(h);
        assert_eq!(&sector[200..204], b"ACK1");
        assert_eq!(MailboxBlock::decode(&sector), Some(MailboxBlock::default()));
        // What a C host checks of our sector: the leader and its checksum over 0..168.
        let raw = RawLeader::parse(&sector).unwrap();
        raw.check_as_sanlock(LeaderKind::Delta, &name("LS"), None, None)
            .unwrap();
        assert!(DeltaSector::decode(&sector, 0).is_ok());
    }
}

#[test]
fn a_message_is_delivered_once_then_acked_and_the_sender_sees_the_ack_within_2n() {
    let mut c = Cluster::new(2);
    c.auto_ack = false;
    let seq = c.hosts[0]
        .send_message(c.now, name("LS"), 2, ev(1, 0x55))
        .unwrap();
    assert_eq!(seq, MessageSeq(1));
    c.run_for(4 * N);
    let gen1 = c.hosts[0].generation(name("LS")).unwrap();
    let received = MailEvent::Received {
        from: host(1),
        from_generation: gen1,
        seq,
        event: ev(1, 0x55),
    };
    assert_eq!(
        c.events_of(1),
        vec![received],
        "delivered once, though seen at many reads"
    );
    assert_eq!(c.events_of(0), vec![MailEvent::Sent { seq }]);
    // Not delivered by the daemon yet: no ack on disk, whatever the time.
    assert!(!MailboxBlock::decode(&c.sector(2))
        .unwrap()
        .acknowledges(host(1), gen1, seq));
    let block1 = MailboxBlock::decode(&c.sector(1)).unwrap();
    assert_eq!(
        block1.outgoing.map(|o| (o.target, o.seq)),
        Some((host(2), seq))
    );
    let raw1 = RawLeader::parse(&c.sector(1)).unwrap();
    assert_eq!((raw1.write_generation, raw1.write_timestamp), (1, 0x55));

    let acked_from = c.now;
    c.hosts[1].ack_message(c.now, name("LS"), host(1), gen1, seq);
    c.run_for(4 * N);
    let written = c
        .first_at(
            1,
            MailEvent::AckWritten {
                from: host(1),
                from_generation: gen1,
                seq,
            },
        )
        .expect("ack written");
    let gen2 = c.hosts[1].generation(name("LS")).unwrap();
    let acked = c
        .first_at(
            0,
            MailEvent::Acked {
                seq,
                target_generation: gen2,
            },
        )
        .expect("acked");
    assert!(written <= acked);
    // The ack goes out at once; the sender reads every N (renewals and peeks).
    assert!(acked.saturating_since(acked_from) <= Duration::from_secs(2 * N));
    // With auto-acking, from send to ack within 2 renewal intervals.
    c.auto_ack = true;
    c.log.clear();
    let t0 = c.now;
    let seq2 = c.hosts[0]
        .send_message(c.now, name("LS"), 2, ev(1, 2))
        .unwrap();
    c.run_for(8 * N);
    let acked2 = c
        .first_at(
            0,
            MailEvent::Acked {
                seq: seq2,
                target_generation: gen2,
            },
        )
        .unwrap();
    assert!(
        acked2.saturating_since(t0) <= Duration::from_secs(4 * N),
        "{acked2:?}"
    );
    // The sender took the message off; the receiver then freed the slot.
    assert_eq!(MailboxBlock::decode(&c.sector(1)).unwrap().outgoing, None);
    assert_eq!(MailboxBlock::decode(&c.sector(2)).unwrap().acks, [None; 4]);
    assert_eq!(RawLeader::parse(&c.sector(1)).unwrap().write_generation, 0);
}

#[test]
fn six_senders_to_one_receiver_are_all_acked_though_a_block_holds_four() {
    let mut c = Cluster::new(7);
    let mut seqs = Vec::new();
    for i in 0..6 {
        seqs.push(
            c.hosts[i]
                .send_message(c.now, name("LS"), 7, ev(3, i as u64))
                .unwrap(),
        );
    }
    // Step through time, checking that no ack leaves the receiver's block while its sender
    // still shows that message.
    let mut max_slots = 0;
    for _ in 0..(16 * N) {
        let before = MailboxBlock::decode(&c.sector(7)).unwrap();
        c.run_for(1);
        let after = MailboxBlock::decode(&c.sector(7)).unwrap();
        max_slots = max_slots.max(after.acks.iter().flatten().count());
        for ack in before.acks.iter().flatten() {
            if !after.acks.contains(&Some(*ack)) {
                let sender = MailboxBlock::decode(&c.sector(ack.from.get())).unwrap();
                assert_ne!(
                    sender.outgoing.map(|o| (o.target, o.seq)),
                    Some((host(7), ack.seq)),
                    "ack of {ack:?} removed while its sender waits"
                );
            }
        }
    }
    assert_eq!(max_slots, 4);
    let gen7 = c.hosts[6].generation(name("LS")).unwrap();
    for (i, seq) in seqs.into_iter().enumerate() {
        let acked = MailEvent::Acked {
            seq,
            target_generation: gen7,
        };
        assert!(c.first_at(i, acked).is_some(), "sender {} not acked", i + 1);
    }
    let received = c
        .events_of(6)
        .into_iter()
        .filter(|e| matches!(e, MailEvent::Received { .. }))
        .count();
    assert_eq!(received, 6);
}

#[test]
fn a_target_without_a_mailbox_block_gets_a_plain_event_and_no_ack_support() {
    // Host 2 is "C": its sector is rewritten each second as sanlock writes it (zeros at
    // 200..256), the timestamp moving.
    let mut c = Cluster::new(2);
    let seq = c.hosts[0]
        .send_message(c.now, name("LS"), 2, ev(1, 9))
        .unwrap();
    for _ in 0..(2 * N) {
        let mut s = DeltaSector::decode(&c.sector(2), 512).unwrap();
        s.mailbox = None;
        s.leader.timestamp = c.now.secs();
        let bytes = s.encode();
        assert!(bytes[200..256].iter().all(|&b| b == 0));
        c.disk.bytes_mut()[512..1024].copy_from_slice(&bytes);
        c.run_for(1);
    }
    assert_eq!(
        c.events_of(0),
        vec![MailEvent::Sent { seq }, MailEvent::NoAckSupport { seq }]
    );
    // The event and the bit are on disk as set_event puts them, for a C host to read.
    let s1 = c.sector(1);
    let raw = RawLeader::parse(&s1).unwrap();
    assert_eq!(
        (raw.write_id, raw.write_generation, raw.write_timestamp),
        (0, 1, 9)
    );
    assert_eq!(s1[256] & 0x02, 0x02);
    // It stays up for 3N after our write, then the next message may go.
    c.run_for(4 * N);
    assert_eq!(MailboxBlock::decode(&c.sector(1)).unwrap().outgoing, None);
}

#[test]
fn a_message_for_another_generation_of_ours_is_neither_delivered_nor_acked() {
    let mut c = Cluster::new(2);
    let gen2 = c.hosts[1].generation(name("LS")).unwrap();
    let old = HostEvent {
        generation: gen2.0 + 5,
        event: 1,
        data: 0,
    };
    c.hosts[0].send_message(c.now, name("LS"), 2, old).unwrap();
    c.run_for(6 * N);
    assert!(c.events_of(1).is_empty());
    assert_eq!(MailboxBlock::decode(&c.sector(2)).unwrap().acks, [None; 4]);
}

#[test]
fn set_event_waits_for_messages_and_messages_for_a_pending_event() {
    let mut c = Cluster::new(2);
    let flags = crate::host::SetEventFlags::default();
    c.hosts[0]
        .set_event(c.now, name("LS"), 2, ev(7, 0), flags)
        .unwrap();
    assert_eq!(
        c.hosts[0].send_message(c.now, name("LS"), 2, ev(1, 0)),
        Err(-16)
    );
    let mut c = Cluster::new(2);
    c.hosts[0]
        .send_message(c.now, name("LS"), 2, ev(1, 0))
        .unwrap();
    assert_eq!(
        c.hosts[0].set_event(c.now, name("LS"), 2, ev(7, 0), flags),
        Err(-16)
    );
    assert_eq!(
        c.hosts[0].send_message(c.now, name("LS"), 1, ev(1, 0)),
        Err(-22),
        "to ourselves"
    );
    assert_eq!(
        c.hosts[0].send_message(c.now, name("LS"), 2, ev(0, 0)),
        Err(-22),
        "event 0"
    );
    assert_eq!(
        c.hosts[0].send_message(c.now, name("XX"), 2, ev(1, 0)),
        Err(-2)
    );
}

#[test]
fn an_ack_stays_when_its_senders_sector_reads_back_damaged() {
    // A corrupted read shows the sender's timestamp as 0 with a checksum that no longer
    // matches: it says nothing, so the ack stays (found by the simulator).
    use crate::hosts::HostTable;
    use crate::mailbox::Mailbox;
    use crate::ondisk::Outgoing;
    let mut c = Cluster::new(2);
    c.auto_ack = false;
    let seq = c.hosts[0]
        .send_message(c.now, name("LS"), 2, ev(1, 1))
        .unwrap();
    c.run_for(2 * N);
    let gen1 = c.hosts[0].generation(name("LS")).unwrap();
    let mut area = c.disk.bytes()[..2 * 512].to_vec();
    let mut mailbox = Mailbox::new(host(2));
    mailbox.ack(host(1), gen1, seq);
    assert!(mailbox.block().acknowledges(host(1), gen1, seq));
    let table = HostTable::new(
        name("LS"),
        host(2),
        g512(),
        crate::timeouts::Timeouts::new(N),
        Duration::from_secs(6 * N),
    );
    let out = MailboxBlock::decode(&area[..512]).unwrap().outgoing;
    assert_eq!(
        out,
        Some(Outgoing {
            target: host(2),
            seq
        })
    );
    area[152..160].fill(0); // the timestamp, checksum left as it was
    mailbox.scan(c.now, &area, g512(), Generation(1), &table);
    assert!(mailbox.block().acknowledges(host(1), gen1, seq));
    // The same sector, intact but no longer showing the message: the slot frees.
    let mut s = DeltaSector::decode(&c.disk.bytes()[..512], 0).unwrap();
    s.mailbox = Some(MailboxBlock::default());
    area[..512].copy_from_slice(&s.encode());
    mailbox.scan(c.now, &area, g512(), Generation(1), &table);
    assert!(!mailbox.block().acknowledges(host(1), gen1, seq));
}
