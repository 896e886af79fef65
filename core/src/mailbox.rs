//! Host messages with acknowledgements (our extension; docs/MESSAGES.md): one lockspace's
//! mailbox, as a pure machine the [`crate::host::Host`] feeds with its scans and writes.
//!
//! A message is a sanlock event (set_event's generation, event, data in our leader, the
//! target's bit in our bitmap) plus, in our mailbox block, its target and number. A receiver
//! of ours delivers it once, and only then acknowledges it in its own block; the ack stays
//! there for as long as the sender still shows that message, so no ack can vanish while its
//! sender waits, whatever the senders' and the receiver's renewal schedules (the problem the
//! host_message design left open). A block holds four acks; further senders wait for a slot,
//! none is evicted. One message is under way per lockspace; more wait in order.

use std::collections::{BTreeMap, VecDeque};

use crate::hosts::{HostState, HostTable};
use crate::ids::{Generation, HostId, MessageSeq};
use crate::mutants::{Mutant, Mutations};
use crate::ondisk::mailbox::ACK_SLOTS;
use crate::ondisk::{Ack, Geometry, HostEvent, MailboxBlock, Outgoing, RawLeader};
use crate::time::Time;

/// A message to send: the sanlock event it carries and its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// Its number.
    pub seq: MessageSeq,
    /// The target host_id.
    pub target: HostId,
    /// The event as set_event carries it (its generation: the target's, or 0 for any).
    pub event: HostEvent,
}

/// What the mailbox reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MailEvent {
    /// A message for us, new in this generation of its sender: deliver it, then ack it
    /// ([`crate::host::Host::ack_message`]).
    Received {
        /// The sender.
        from: HostId,
        /// The sender's generation.
        from_generation: Generation,
        /// The sender's number for it.
        seq: MessageSeq,
        /// The event it carries.
        event: HostEvent,
    },
    /// Our ack of that message is on disk: the write carrying it completed.
    AckWritten {
        /// The sender.
        from: HostId,
        /// The sender's generation.
        from_generation: Generation,
        /// The message.
        seq: MessageSeq,
    },
    /// Our message is on disk (the write carrying it completed).
    Sent {
        /// The message.
        seq: MessageSeq,
    },
    /// The target acknowledged our message.
    Acked {
        /// The message.
        seq: MessageSeq,
        /// The target's generation, in whose sector the ack was.
        target_generation: Generation,
    },
    /// The target's sector has no mailbox block: it cannot acknowledge (a C host). The
    /// message stays on disk a while as a plain event, then the next one goes.
    NoAckSupport {
        /// The message.
        seq: MessageSeq,
    },
}

/// The message under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Sending {
    msg: Message,
    /// A write carrying it completed.
    written: bool,
    /// The target cannot ack: the message is taken off once a C host's renewal has surely
    /// read it (after this time).
    linger_until: Option<Time>,
}

/// One lockspace's messages and acks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mailbox {
    our: HostId,
    next_seq: u32,
    queue: VecDeque<Message>,
    sending: Option<Sending>,
    slots: [Option<Ack>; ACK_SLOTS],
    /// Acks with no free slot yet, in the order delivered.
    unslotted: VecDeque<Ack>,
    /// Acks placed whose write has not completed yet.
    unwritten: Vec<Ack>,
    /// The last message delivered from each sender: (its generation's low bits, number).
    delivered: BTreeMap<HostId, (u32, MessageSeq)>,
    events: VecDeque<MailEvent>,
    mutants: Mutations,
}

impl Mailbox {
    /// The mailbox of host `our`.
    pub fn new(our: HostId) -> Self {
        Mailbox {
            our,
            next_seq: 1,
            queue: VecDeque::new(),
            sending: None,
            slots: [None; ACK_SLOTS],
            unslotted: VecDeque::new(),
            unwritten: Vec::new(),
            delivered: BTreeMap::new(),
            events: VecDeque::new(),
            mutants: Mutations::default(),
        }
    }

    /// The deliberate bug to run with (core::mutants).
    pub(crate) fn set_mutations(&mut self, mutants: Mutations) {
        self.mutants = mutants;
    }

    /// Queues a message; it goes out when those before it are done. Returns its number.
    pub fn send(&mut self, target: HostId, event: HostEvent) -> MessageSeq {
        let seq = MessageSeq(self.next_seq);
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        self.queue.push_back(Message { seq, target, event });
        self.start_next();
        seq
    }

    /// Takes message `seq` off (the sender stopped waiting): the next one goes. Whether it
    /// was still queued or under way.
    pub fn cancel(&mut self, seq: MessageSeq) -> bool {
        if self.sending.is_some_and(|s| s.msg.seq == seq) {
            self.sending = None;
            self.start_next();
            return true;
        }
        let before = self.queue.len();
        self.queue.retain(|m| m.seq != seq);
        before != self.queue.len()
    }

    /// The message under way, whose event our renewals carry.
    pub fn current(&self) -> Option<Message> {
        self.sending.map(|s| s.msg)
    }

    /// Whether messages are under way or queued.
    pub fn busy(&self) -> bool {
        self.sending.is_some() || !self.queue.is_empty()
    }

    /// The block our next writes carry.
    pub fn block(&self) -> MailboxBlock {
        MailboxBlock {
            outgoing: self.sending.map(|s| Outgoing {
                target: s.msg.target,
                seq: s.msg.seq,
            }),
            acks: self.slots,
        }
    }

    /// A scan found message `seq` from `from` (in its `from_generation`) aimed at us, who are
    /// in `our_generation`. Reported once per message; one for another generation of ours
    /// (an earlier incarnation's target) is ignored.
    pub fn received(
        &mut self,
        from: HostId,
        from_generation: Generation,
        seq: MessageSeq,
        event: HostEvent,
        our_generation: Generation,
    ) {
        if event.generation != 0 && event.generation != our_generation.0 {
            return;
        }
        let key = (from_generation.0 as u32, seq);
        if self.delivered.get(&from) == Some(&key) {
            return;
        }
        self.delivered.insert(from, key);
        self.events.push_back(MailEvent::Received {
            from,
            from_generation,
            seq,
            event,
        });
        if self.mutants.has(Mutant::AckBeforeDelivery) {
            // The bug: acknowledged as soon as seen, whether or not anyone delivered it.
            self.ack(from, from_generation, seq);
        }
    }

    /// The message was delivered: acknowledge it in the next write (in a free slot, else
    /// once one frees).
    pub fn ack(&mut self, from: HostId, from_generation: Generation, seq: MessageSeq) {
        let ack = Ack::new(from, from_generation, seq);
        if self.slots.contains(&Some(ack)) || self.unslotted.contains(&ack) {
            return;
        }
        // An older message of the same sender no longer needs its slot.
        for slot in self.slots.iter_mut() {
            if slot.is_some_and(|a| a.from == from) {
                *slot = None;
            }
        }
        self.unslotted.retain(|a| a.from != from);
        self.unslotted.push_back(ack);
        self.fill_slots();
    }

    fn fill_slots(&mut self) {
        while let Some(&ack) = self.unslotted.front() {
            let free = self.slots.iter().position(Option::is_none);
            // The bug: with no slot free, a new ack takes one anyway.
            let free = match free {
                None if self.mutants.has(Mutant::AckOverwrite) => {
                    Some(ack.seq.0 as usize % ACK_SLOTS)
                }
                free => free,
            };
            let Some(i) = free else { return };
            self.unslotted.pop_front();
            self.slots[i] = Some(ack);
            self.unwritten.push(ack);
        }
    }

    /// A write of our sector carrying `block` completed.
    pub fn written(&mut self, block: Option<MailboxBlock>) {
        let Some(block) = block else { return };
        let acks = &block.acks;
        let mut done = Vec::new();
        self.unwritten.retain(|a| {
            let on_disk = acks.contains(&Some(*a));
            if on_disk {
                done.push(*a);
            }
            !on_disk
        });
        for a in done {
            self.events.push_back(MailEvent::AckWritten {
                from: a.from,
                from_generation: Generation(u64::from(a.from_generation)),
                seq: a.seq,
            });
        }
        if let Some(s) = self.sending.as_mut() {
            let carried = block.outgoing
                == Some(Outgoing {
                    target: s.msg.target,
                    seq: s.msg.seq,
                });
            if carried && !s.written {
                s.written = true;
                self.events.push_back(MailEvent::Sent { seq: s.msg.seq });
            }
        }
    }

    /// A read of the lockspace (`area`, from its start; a peek may be shorter) at `now`, we
    /// being in `our_generation`: frees the slots of acks their senders no longer wait for,
    /// and looks for the ack of our message.
    pub fn scan(
        &mut self,
        now: Time,
        area: &[u8],
        geometry: Geometry,
        our_generation: Generation,
        table: &HostTable,
    ) {
        let ss = geometry.sector_size().as_usize();
        let sector_of = |h: HostId| area.get(h.index() * ss..(h.index() + 1) * ss);
        let our = self.our;
        // An ack stays while its sender still shows that message to us, alive.
        let wanted = |a: &Ack| -> bool {
            let Some(sector) = sector_of(a.from) else {
                return true; // not in this (short) read
            };
            let dead = matches!(
                table.state(a.from, now),
                Some(HostState::Dead | HostState::Free)
            );
            let Ok(raw) = RawLeader::parse(sector) else {
                return false;
            };
            if raw.checksum != raw.computed_checksum() {
                return true; // a damaged read says nothing (a corrupted timestamp reads as 0)
            }
            !dead
                && raw.timestamp != 0
                && raw.owner_generation as u32 == a.from_generation
                && MailboxBlock::decode(sector).and_then(|b| b.outgoing)
                    == Some(Outgoing {
                        target: our,
                        seq: a.seq,
                    })
        };
        for slot in self.slots.iter_mut() {
            if slot.is_some_and(|a| !wanted(&a)) {
                *slot = None;
            }
        }
        self.unslotted.retain(|a| wanted(a));
        self.unwritten.retain(|a| self.slots.contains(&Some(*a)));
        self.fill_slots();

        if let Some(s) = self.sending {
            if let Some(sector) = sector_of(s.msg.target) {
                let block = MailboxBlock::decode(sector);
                if block.is_some_and(|b| b.acknowledges(our, our_generation, s.msg.seq)) {
                    let target_generation =
                        Generation(RawLeader::parse(sector).map_or(0, |r| r.owner_generation));
                    self.events.push_back(MailEvent::Acked {
                        seq: s.msg.seq,
                        target_generation,
                    });
                    self.sending = None;
                    self.start_next();
                } else if block.is_none() && s.written && s.linger_until.is_none() {
                    // A C host's renewal (every 2N') has read it 3N' after our write.
                    let n = RawLeader::parse(sector).map_or(10, |r| u64::from(r.io_timeout));
                    let linger = std::time::Duration::from_secs(3 * n.max(1));
                    if let Some(s) = self.sending.as_mut() {
                        s.linger_until = Some(now + linger);
                    }
                    self.events
                        .push_back(MailEvent::NoAckSupport { seq: s.msg.seq });
                } else if s.linger_until.is_some_and(|t| now >= t) {
                    self.sending = None;
                    self.start_next();
                }
            }
        }
    }

    fn start_next(&mut self) {
        if self.sending.is_none() {
            self.sending = self.queue.pop_front().map(|msg| Sending {
                msg,
                written: false,
                linger_until: None,
            });
        }
    }

    /// The next report.
    pub fn poll_event(&mut self) -> Option<MailEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
#[path = "mailbox_tests.rs"]
mod tests;
