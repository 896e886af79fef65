use super::*;
use crate::lease_model::LeaseModel;
use crate::ondisk::{Geometry, SectorSize};

fn area() -> MessagingArea {
    MessagingArea::new(0, Geometry::legacy(SectorSize::Bytes512)).unwrap()
}

fn config(host: u64) -> MessengerConfig {
    MessengerConfig {
        area: area(),
        host_id: HostId::new(host).unwrap(),
        generation: Generation(1),
        poll: Duration::from_millis(100),
        retry: Duration::from_millis(10),
        retry_max: Duration::from_millis(200),
        notify_every: Duration::from_secs(1),
        seed: host,
        stagger: Duration::ZERO,
    }
}

/// Members on a [`LeaseModel`], every call answered at once; programs process at once unless
/// told to hold.
struct Cluster {
    now: Time,
    model: LeaseModel,
    members: Vec<Messenger>,
    delivered: Vec<Vec<(u64, Vec<u8>)>>,
    holding: Vec<bool>,
    unprocessed: Vec<Option<u64>>,
    sent: Vec<(usize, SendId, u64)>,
    events: Vec<(usize, Event)>,
    gone: Vec<bool>,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let mut c = Cluster {
            now: Time::from_secs(100),
            model: LeaseModel::new(area()),
            members: (1..=n as u64).map(|h| Messenger::new(config(h))).collect(),
            delivered: vec![Vec::new(); n],
            holding: vec![false; n],
            unprocessed: vec![None; n],
            sent: Vec::new(),
            events: Vec::new(),
            gone: vec![false; n],
        };
        for i in 0..n {
            c.members[i].join(c.now);
            c.run_until(|c| c.members[i].is_member());
        }
        c
    }

    fn drain(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.members.len() {
            if self.gone[i] {
                continue;
            }
            while let Some(out) = self.members[i].poll_output() {
                any = true;
                let now = self.now;
                match out {
                    Output::Lease { id, lease, op } => {
                        let r = self.model.lease(i, lease, &op);
                        self.members[i].complete(now, id, r);
                    }
                    Output::Read { id, offset, len } => {
                        let r = self.model.read(offset, len);
                        self.members[i].complete(now, id, Ok(r));
                    }
                    Output::Write { id, offset, data } => {
                        self.model.write(i, offset, data).expect("protocol kept");
                        self.members[i].complete(now, id, Ok(Vec::new()));
                    }
                    Output::Notify { .. } => {
                        for j in 0..self.members.len() {
                            if j != i && !self.gone[j] {
                                self.members[j].wake(now);
                            }
                        }
                    }
                    Output::Event(Event::Deliver(d)) => {
                        self.delivered[i].push((d.seq, d.payload));
                        if self.holding[i] {
                            self.unprocessed[i] = Some(d.seq);
                        } else {
                            self.members[i].processed(now, d.seq);
                        }
                    }
                    Output::Event(Event::Sent { id, seq }) => self.sent.push((i, id, seq)),
                    Output::Event(e) => self.events.push((i, e)),
                }
            }
        }
        any
    }

    /// Runs, moving time to the next deadline, until `done` (at most 10 minutes).
    fn run_until(&mut self, done: impl Fn(&Cluster) -> bool) {
        let limit = self.now + Duration::from_secs(600);
        loop {
            while self.drain() {}
            if done(self) {
                return;
            }
            let next = (0..self.members.len())
                .filter(|&i| !self.gone[i])
                .filter_map(|i| self.members[i].poll_timeout())
                .min()
                .expect("something to wait for");
            assert!(next <= limit, "stuck: {:?}", self.events);
            self.now = self.now.max(next);
            for i in 0..self.members.len() {
                if !self.gone[i] {
                    self.members[i].handle_timeout(self.now);
                }
            }
        }
    }

    fn send(&mut self, i: usize, payload: &[u8]) -> SendId {
        self.members[i].send(self.now, payload.to_vec())
    }

    fn is_sent(&self, id: SendId, from: usize) -> bool {
        self.sent.iter().any(|&(i, s, _)| i == from && s == id)
    }

    /// Runs for `secs` of model time.
    fn run_for(&mut self, secs: u64) {
        let until = self.now + Duration::from_secs(secs);
        loop {
            while self.drain() {}
            let next = (0..self.members.len())
                .filter(|&i| !self.gone[i])
                .filter_map(|i| self.members[i].poll_timeout())
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for i in 0..self.members.len() {
                        if !self.gone[i] {
                            self.members[i].handle_timeout(self.now);
                        }
                    }
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
    }
}

#[test]
fn an_inline_message_reaches_every_other_member_before_send_returns() {
    let mut c = Cluster::new(3);
    let id = c.send(0, b"hello");
    c.run_until(|c| c.is_sent(id, 0));
    assert_eq!(c.sent, vec![(0, id, 1)]);
    assert_eq!(c.delivered[0], vec![], "a sender does not deliver its own");
    for i in 1..3 {
        assert_eq!(c.delivered[i], vec![(1, b"hello".to_vec())]);
    }
    // Everything is given back but each member's ACK SH.
    for i in 0..3 {
        assert_eq!(c.model.holds(i, MsgLease::Ack), Some(true));
        assert_eq!(c.model.holds(i, MsgLease::Message), None);
        assert_eq!(c.model.holds(i, MsgLease::Token), None);
    }
    let rec = c.model.published().unwrap();
    assert_eq!((rec.seq, rec.from.get(), rec.place), (1, 1, Place::Inline));
}

#[test]
fn big_payloads_go_through_the_two_data_slots_in_turn() {
    let mut c = Cluster::new(2);
    let big: Vec<u8> = (0..2000u32).map(|i| (i * 7) as u8).collect();
    let mut places = Vec::new();
    for n in 0..3u8 {
        let mut p = big.clone();
        p[0] = n;
        let id = c.send(0, &p);
        c.run_until(|c| c.is_sent(id, 0));
        places.push(c.model.published().unwrap().place);
        assert_eq!(c.delivered[1].last().unwrap().1, p);
    }
    assert_eq!(places, vec![Place::Slot(0), Place::Slot(1), Place::Slot(0)]);
    c.members[0].send(c.now, vec![0; (512 << 10) + 1]);
    c.run_for(1);
    assert!(c
        .events
        .iter()
        .any(|e| matches!(e, (0, Event::SendFailed { rv: EMSGSIZE, .. }))));
}

#[test]
fn a_send_waits_until_every_member_has_processed() {
    let mut c = Cluster::new(3);
    c.holding[2] = true;
    let id = c.send(0, b"m");
    c.run_for(30);
    assert!(!c.is_sent(id, 0), "member 2 has not processed");
    assert_eq!(c.model.holds(2, MsgLease::Message), Some(true));
    c.holding[2] = false;
    let seq = c.unprocessed[2].take().unwrap();
    c.members[2].processed(c.now, seq);
    c.run_until(|c| c.is_sent(id, 0));
}

#[test]
fn a_dead_member_holds_a_send_up_until_its_holds_expire() {
    let mut c = Cluster::new(3);
    c.gone[2] = true;
    c.model.crash(2);
    let id = c.send(0, b"m");
    c.run_for(60);
    assert!(!c.is_sent(id, 0));
    c.model.expire(2);
    c.run_until(|c| c.is_sent(id, 0));
    assert_eq!(c.delivered[1], vec![(1, b"m".to_vec())]);
}

#[test]
fn two_senders_take_turns_and_every_member_sees_one_order() {
    let mut c = Cluster::new(3);
    let mut ids = Vec::new();
    for n in 0..10u8 {
        ids.push((0, c.send(0, &[b'a', n])));
        ids.push((1, c.send(1, &[b'b', n])));
    }
    c.run_until(|c| ids.iter().all(|&(i, id)| c.is_sent(id, i)));
    let seqs: Vec<u64> = c.delivered[2].iter().map(|d| d.0).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    // Members 0 and 1 deliver the other's messages, in the order member 2 saw them.
    for i in 0..2 {
        let others: Vec<_> = c.delivered[2]
            .iter()
            .filter(|d| d.1[0] != [b'a', b'b'][i])
            .cloned()
            .collect();
        assert_eq!(c.delivered[i], others);
    }
}

#[test]
fn a_member_joining_while_a_sender_waits_lets_it_through_without_delivering_it() {
    let mut c = Cluster::new(2);
    c.holding[1] = true;
    let id = c.send(0, b"first");
    c.run_for(5);
    // Member 1 got the message but has not processed; a third member joins meanwhile.
    c.members.push(Messenger::new(config(3)));
    c.delivered.push(Vec::new());
    c.holding.push(false);
    c.unprocessed.push(None);
    c.gone.push(false);
    let now = c.now;
    c.members[2].join(now);
    c.run_for(5);
    // It joins (ACK is SH all round) and, having seen message 1 published and its round not
    // complete, lets ACK go again without delivering it, holding MESSAGE until the round is
    // done: the sender waits only for member 1.
    assert!(c.members[2].is_member());
    assert_eq!(c.model.holds(2, MsgLease::Ack), None);
    assert_eq!(c.model.holds(2, MsgLease::Message), Some(true));
    assert!(!c.is_sent(id, 0));
    c.holding[1] = false;
    let seq = c.unprocessed[1].take().unwrap();
    c.members[1].processed(c.now, seq);
    c.run_until(|c| c.is_sent(id, 0) && c.members[2].is_member());
    assert_eq!(c.delivered[2], vec![]);
    let id = c.send(0, b"second");
    c.run_until(|c| c.is_sent(id, 0));
    assert_eq!(c.delivered[2], vec![(2, b"second".to_vec())]);
}

#[test]
fn leaving_gives_everything_back_and_fails_queued_sends() {
    let mut c = Cluster::new(2);
    c.members[1].leave(c.now);
    c.run_until(|c| c.members[1].is_done());
    assert_eq!(c.model.holds(1, MsgLease::Ack), None);
    let id = c.send(1, b"late");
    c.run_for(1);
    assert!(c
        .events
        .contains(&(1, Event::SendFailed { id, rv: ESHUTDOWN })));
    // The one left can send alone.
    let id = c.send(0, b"alone");
    c.run_until(|c| c.is_sent(id, 0));
}

#[test]
fn a_fatal_lease_result_fails_the_member_and_its_sends() {
    let mut m = Messenger::new(config(1));
    m.join(Time::from_secs(1));
    let Some(Output::Lease { id, .. }) = m.poll_output() else {
        panic!("an acquire first")
    };
    let send = m.send(Time::from_secs(1), b"x".to_vec());
    m.complete(Time::from_secs(1), id, Err(-2));
    let out: Vec<_> = std::iter::from_fn(|| m.poll_output()).collect();
    assert_eq!(
        out,
        vec![
            Output::Event(Event::SendFailed { id: send, rv: -2 }),
            Output::Event(Event::Failed { rv: -2 })
        ]
    );
    assert!(m.is_done());
}

#[test]
fn a_sender_dying_mid_round_leaves_its_round_to_the_next_token_holder() {
    let mut c = Cluster::new(3);
    let first = c.send(0, b"orphan");
    while c.drain() {}
    // Member 0 published and is waiting for ACK EX; members 1 and 2 processed and wait for
    // the round. Member 0's host dies holding TOKEN, MESSAGE SH and ACK SH.
    assert_eq!(c.model.published().unwrap().seq, 1);
    c.gone[0] = true;
    c.model.crash(0);
    let next = c.send(1, b"next");
    c.run_for(60);
    assert!(
        !c.is_sent(next, 1),
        "TOKEN is the dead sender's until host_dead"
    );
    c.model.expire(0);
    c.run_until(|c| c.is_sent(next, 1));
    assert!(!c.is_sent(first, 0));
    assert_eq!(
        c.delivered[2],
        vec![(1, b"orphan".to_vec()), (2, b"next".to_vec())]
    );
    assert_eq!(c.delivered[1], vec![(1, b"orphan".to_vec())]);
    for i in 1..3 {
        assert_eq!(c.model.holds(i, MsgLease::Ack), Some(true));
        assert_eq!(c.model.holds(i, MsgLease::Message), None);
    }
}
