//! Cluster messaging on leases (docs/MESSAGING.md): md-cluster's TOKEN / MESSAGE / ACK
//! protocol, as the pure machine of one member. It asks for lease operations (acquire,
//! convert, release, set_lvb, get_lvb: calls sanlock 3.8.5's socket protocol has) and for
//! reads and writes of the messaging area; the shell runs them through the daemon and the
//! disk and hands the results back. Lease modes: EX plays DLM's EX, SH plays CR and PR.
//!
//! A member holds ACK SH. A sender takes TOKEN EX (one sender at a time), writes a payload too
//! big for the LVB into the data slot the current message does not use, takes MESSAGE EX,
//! puts the message record in its LVB and converts MESSAGE to SH (the LVB goes to disk), wakes
//! the members, and converts ACK to EX: that succeeds only when no live member holds ACK SH.
//! Then ACK back to SH, MESSAGE and TOKEN released. A member that sees a new message number
//! (an event, or its own re-read of the LVB) takes MESSAGE SH, reads the record, hands the
//! message to its program, and only once the program says it was processed releases ACK,
//! takes ACK SH again, and only then lets MESSAGE go: holding MESSAGE until ACK is back keeps
//! the next sender out (it needs MESSAGE EX) until every member can be waited for again.

use std::collections::VecDeque;
use std::time::Duration;

use crate::ids::{Generation, HostId};
use crate::ondisk::message_lvb::{MessageRecord, MessagingArea, MsgLease, Place};
use crate::ondisk::sanlock_crc32c;
use crate::rng::Rng;
use crate::time::Time;

/// -EBADMSG: the area holds something that is not a message (after retries).
pub const EBADMSG: i32 = -74;
/// -EMSGSIZE: a payload bigger than a data slot.
pub const EMSGSIZE: i32 = -90;
/// -ESHUTDOWN: the member left before the send went out.
pub const ESHUTDOWN: i32 = -108;

/// Results that end a member: the lease, the lockspace or the area is not what we need.
/// Everything else a lease call returns (busy, owned, I/O trouble) is tried again.
const FATAL: [i32; 5] = [-2, -7, -17, -22, -241];

/// Looks at a held leader before a shared acquire is tried anyway (its owner may be dead:
/// only the daemon's acquire finds out).
const LOOKS: u32 = 20;

/// Whether a leader sector read shows the lease held (a timestamp): a shared acquire now would
/// meet the holder.
fn leader_held(read: &Result<Vec<u8>, i32>) -> bool {
    read.as_ref()
        .ok()
        .and_then(|b| crate::ondisk::RawLeader::parse(b).ok())
        .is_some_and(|l| l.timestamp != 0)
}

/// Reads of a record or a payload that fail their checksum before the member gives up.
const BAD_READS: u32 = 5;

/// What a member is set up with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessengerConfig {
    /// Where the area is.
    pub area: MessagingArea,
    /// Our host_id in the lockspace (the record names the sender).
    pub host_id: HostId,
    /// Our generation there.
    pub generation: Generation,
    /// How often an idle member re-reads the MESSAGE LVB (the fallback wake-up).
    pub poll: Duration,
    /// The first wait after a busy lease; it grows to `retry_max` while the lease stays busy.
    pub retry: Duration,
    /// The longest wait between tries.
    pub retry_max: Duration,
    /// How often a sender waiting for ACK wakes the members again.
    pub notify_every: Duration,
    /// Seeds the retry jitter.
    pub seed: u64,
    /// Members take MESSAGE SH and ACK SH this long apart, by host_id (modulo 8): shared
    /// acquires that meet each other's short hold sleep up to a second in sanlock.
    pub stagger: Duration,
}

/// A lease call for the shell to make through the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LeaseOp {
    /// Acquire (with SANLK_ACQUIRE_LVB for MESSAGE).
    Acquire {
        /// SH rather than EX.
        shared: bool,
    },
    /// Convert a held lease.
    Convert {
        /// To SH rather than to EX.
        shared: bool,
    },
    /// Release.
    Release,
    /// set_lvb (written when an EX hold is converted or released).
    SetLvb(Vec<u8>),
    /// get_lvb (the value read at acquire): completes with the bytes.
    GetLvb,
}

/// A number naming one request, to match its completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// A number naming one send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SendId(pub u64);

/// A message handed to the program.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Delivered {
    /// Its number in the one order every member sees.
    pub seq: u64,
    /// The sender's host_id.
    pub from: HostId,
    /// The bytes sent.
    pub payload: Vec<u8>,
}

/// What a member reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A member now; messages after `seq` will be delivered.
    Joined {
        /// The latest message number when we joined.
        seq: u64,
    },
    /// Process it, then call [`Messenger::processed`].
    Deliver(Delivered),
    /// Every live member has processed this send.
    Sent {
        /// Which send.
        id: SendId,
        /// Its number.
        seq: u64,
    },
    /// A send that will not go out.
    SendFailed {
        /// Which send.
        id: SendId,
        /// Why (-errno or a sanlock code).
        rv: i32,
    },
    /// No longer a member.
    Left,
    /// The member stopped: a lease call failed for good, or the area holds no messages.
    Failed {
        /// Why.
        rv: i32,
    },
}

/// What a member asks of its shell.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// Run a lease call; answer with [`Messenger::complete`].
    Lease {
        /// Its id.
        id: OpId,
        /// Which lease of the area.
        lease: MsgLease,
        /// The call.
        op: LeaseOp,
    },
    /// Read `len` bytes at `offset` of the area's disk; answer with [`Messenger::complete`].
    Read {
        /// Its id.
        id: OpId,
        /// Byte offset on the disk.
        offset: u64,
        /// Bytes (whole sectors).
        len: usize,
    },
    /// Write `data` at `offset`; answer with [`Messenger::complete`].
    Write {
        /// Its id.
        id: OpId,
        /// Byte offset on the disk.
        offset: u64,
        /// Whole sectors.
        data: Vec<u8>,
    },
    /// Wake the other members (set_event to every host); nothing to answer.
    Notify {
        /// The message just published.
        seq: u64,
    },
    /// A report for the program.
    Event(Event),
}

/// Deliberate slips from the protocol, for the simulator's and checker's own tests. Only the
/// `mutants` feature lets a machine run with one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slip {
    /// A receiver releases ACK as soon as it has handed the message over, before processed.
    AckBeforeProcessed,
    /// A sender never takes TOKEN.
    SkipToken,
    /// A receiver lets MESSAGE go before it holds ACK again.
    DropMessageBeforeAck,
}

impl Slip {
    /// All slips.
    pub const ALL: [Slip; 3] = [
        Slip::AckBeforeProcessed,
        Slip::SkipToken,
        Slip::DropMessageBeforeAck,
    ];

    /// A kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Slip::AckBeforeProcessed => "ack-before-processed",
            Slip::SkipToken => "skip-token",
            Slip::DropMessageBeforeAck => "drop-message-before-ack",
        }
    }
}

/// One step of an activity: the request it issues, and what its completion means.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    JoinMessage,
    JoinGetLvb,
    JoinAck {
        seen: u64,
    },
    JoinRound {
        seen: u64,
    },
    JoinRelease {
        seen: u64,
        round: u64,
    },
    Poll,
    PollRound,
    /// Read MESSAGE's leader before asking for it shared: while another host holds it (the
    /// sender converting, another member's short hold) a shared acquire would sleep in the
    /// daemon for up to a second.
    CycleLookMessage {
        looks: u32,
    },
    /// The same look at ACK's leader before taking ACK SH back.
    CycleLookAck {
        seq: u64,
        looks: u32,
    },
    CycleMessage,
    CycleGetLvb,
    CycleReadData {
        rec: MessageRecord,
    },
    CycleReleaseAck {
        seq: u64,
    },
    /// The slip: MESSAGE released before ACK is taken again.
    CycleReleaseEarly {
        seq: u64,
    },
    CycleAck {
        seq: u64,
    },
    CycleAckRound {
        seq: u64,
    },
    /// ACK taken back before its round was complete: let it go again.
    CycleAckTooEarly {
        seq: u64,
    },
    CycleRelease {
        seq: u64,
    },
    /// As TOKEN holder, the round of a sender that died: ACK EX, the round record, ACK SH.
    CompleteAck {
        seq: u64,
    },
    CompleteSetRound {
        seq: u64,
    },
    CompleteConvert {
        seq: u64,
    },
    SendToken,
    SendReadLvb,
    SendWriteData {
        rec: MessageRecord,
    },
    SendMessage {
        rec: MessageRecord,
    },
    SendGetLvb {
        rec: MessageRecord,
    },
    SendSetLvb {
        rec: MessageRecord,
    },
    SendConvertMessage {
        rec: MessageRecord,
    },
    SendAckEx {
        rec: MessageRecord,
    },
    SendSetRound {
        rec: MessageRecord,
    },
    SendAckSh {
        rec: MessageRecord,
    },
    SendReleaseMessage {
        rec: MessageRecord,
    },
    SendReleaseToken {
        seq: u64,
    },
    LeaveAck,
    LeaveMessage,
    LeaveToken,
}

/// Where a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Outside,
    Joining,
    Member,
    Leaving,
    Left,
    Failed,
}

/// What to do after a completion.
enum Then {
    Issue(Step),
    Wait(Step),
    Done,
}

/// One member of a messaging area.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Messenger {
    config: MessengerConfig,
    phase: Phase,
    /// The request in flight and the step it belongs to.
    pending: Option<(OpId, Step)>,
    /// A step to issue at a time (a busy lease tried again).
    waiting: Option<(Time, Step)>,
    /// A delivered message the program has not yet processed.
    awaiting: Option<u64>,
    /// A message we released ACK for; we hold MESSAGE SH until its round is complete and ACK
    /// is ours again.
    round_wait: Option<u64>,
    /// MESSAGE is held SH by us (only while `round_wait` or a cycle's steps).
    message_held: bool,
    next_op: u64,
    next_send: u64,
    sends: VecDeque<(SendId, Vec<u8>)>,
    token_held: bool,
    token_retry_at: Option<Time>,
    /// ACK's LVB was read since we took TOKEN: a round it shows incomplete then is one whose
    /// sender let TOKEN go without completing it.
    round_read_with_token: bool,
    /// An LVB was read since our last busy TOKEN: a member waiting for TOKEN still looks for
    /// messages (another sender may be waiting for us) between its tries.
    looked_since_token: bool,
    /// The highest message number seen in MESSAGE's LVB.
    lvb_seen: u64,
    /// The highest complete round seen in ACK's LVB.
    round_seen: u64,
    /// The last message whose round we took part in (ACK released and held again).
    acked: u64,
    /// The last message processed (or sent) by us.
    processed: u64,
    busy_tries: u32,
    bad_reads: u32,
    next_poll: Time,
    next_notify: Option<Time>,
    leave_asked: bool,
    rng: Rng,
    slip: Option<Slip>,
    outputs: VecDeque<Output>,
}

impl Messenger {
    /// A member-to-be; [`Messenger::join`] starts it.
    pub fn new(config: MessengerConfig) -> Self {
        let rng = Rng::new(config.seed);
        Messenger {
            config,
            phase: Phase::Outside,
            pending: None,
            waiting: None,
            awaiting: None,
            round_wait: None,
            message_held: false,
            next_op: 1,
            next_send: 1,
            sends: VecDeque::new(),
            token_held: false,
            token_retry_at: None,
            round_read_with_token: false,
            looked_since_token: true,
            lvb_seen: 0,
            round_seen: 0,
            acked: 0,
            processed: 0,
            busy_tries: 0,
            bad_reads: 0,
            next_poll: Time::ZERO,
            next_notify: None,
            leave_asked: false,
            rng,
            slip: None,
            outputs: VecDeque::new(),
        }
    }

    /// Runs with a deliberate slip (simulator tests only).
    #[cfg(feature = "mutants")]
    pub fn set_slip(&mut self, slip: Option<Slip>) {
        self.slip = slip;
    }

    /// Whether `slip` is on: always false without the `mutants` feature.
    fn slipped(&self, slip: Slip) -> bool {
        cfg!(feature = "mutants") && self.slip == Some(slip)
    }

    /// Joins: MESSAGE SH to read the latest number, ACK SH and its round, MESSAGE released.
    pub fn join(&mut self, now: Time) {
        if self.phase == Phase::Outside {
            self.phase = Phase::Joining;
            self.issue(now, Step::JoinMessage);
        }
    }

    /// Queues `payload` for every member; reports [`Event::Sent`] or [`Event::SendFailed`].
    pub fn send(&mut self, now: Time, payload: Vec<u8>) -> SendId {
        let id = SendId(self.next_send);
        self.next_send += 1;
        if payload.len() as u64 > self.config.area.slot_len() {
            self.report(Event::SendFailed { id, rv: EMSGSIZE });
        } else if matches!(self.phase, Phase::Left | Phase::Failed | Phase::Leaving) {
            self.report(Event::SendFailed { id, rv: ESHUTDOWN });
        } else {
            self.sends.push_back((id, payload));
            self.advance(now);
        }
        id
    }

    /// The program has processed message `seq` (the one delivered last).
    pub fn processed(&mut self, now: Time, seq: u64) {
        if self.awaiting == Some(seq) {
            self.awaiting = None;
            self.processed = self.processed.max(seq);
            self.issue(now, Step::CycleReleaseAck { seq });
        } else if self.slipped(Slip::AckBeforeProcessed) {
            self.processed = self.processed.max(seq);
        }
    }

    /// Leaves once the activity under way ends; queued sends fail.
    pub fn leave(&mut self, now: Time) {
        self.leave_asked = true;
        self.advance(now);
    }

    /// An event from another host arrived: re-read the LVBs now.
    pub fn wake(&mut self, now: Time) {
        self.next_poll = now;
        self.advance(now);
    }

    /// Time passed; extra calls are harmless.
    pub fn handle_timeout(&mut self, now: Time) {
        self.advance(now);
    }

    /// The completion of request `id`: bytes read, or the LVB for get_lvb, empty otherwise;
    /// or the call's negative result.
    pub fn complete(&mut self, now: Time, id: OpId, result: Result<Vec<u8>, i32>) {
        let Some((pid, step)) = self.pending.take() else {
            return;
        };
        if pid != id {
            self.pending = Some((pid, step));
            return;
        }
        match self.after(now, step, result) {
            Then::Issue(step) => self.issue(now, step),
            Then::Wait(step) => {
                let at = now + self.backoff();
                self.waiting = Some((at, step));
            }
            Then::Done => {}
        }
        self.advance(now);
    }

    /// The next request or report.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`Messenger::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Time> {
        if matches!(self.phase, Phase::Outside | Phase::Left | Phase::Failed) {
            return None;
        }
        let mut at: Option<Time> = None;
        let mut consider = |t: Time| at = Some(at.map_or(t, |a: Time| a.min(t)));
        if let Some((t, _)) = &self.waiting {
            consider(*t);
        }
        if let Some(t) = self.next_notify {
            consider(t);
        }
        if self.pending.is_none()
            && self.waiting.is_none()
            && self.awaiting.is_none()
            && self.phase == Phase::Member
        {
            consider(self.next_poll);
            if let Some(t) = self.token_retry_at.filter(|_| !self.sends.is_empty()) {
                consider(t);
            }
        }
        at
    }

    /// Whether it is a member (joined, not left or failed).
    pub fn is_member(&self) -> bool {
        self.phase == Phase::Member
    }

    /// Whether it left or failed: nothing more will happen.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Left | Phase::Failed)
    }

    /// The request in flight, if any (the checker completes it by id).
    pub fn pending_request(&self) -> Option<OpId> {
        self.pending.as_ref().map(|(id, _)| *id)
    }

    /// Forgets what only numbers requests and counts busy answers, so that two states that
    /// behave alike compare equal (for the model checker, whose retries take no time).
    pub fn canonicalize(&mut self) {
        let pending = self.pending.is_some();
        if let Some((id, _)) = &mut self.pending {
            *id = OpId(0);
        }
        for out in &mut self.outputs {
            match out {
                Output::Lease { id, .. } | Output::Read { id, .. } | Output::Write { id, .. } => {
                    *id = OpId(0)
                }
                _ => {}
            }
        }
        self.next_op = u64::from(pending);
        self.busy_tries = 0;
    }

    /// The message handed to the program and not yet processed, if any.
    pub fn awaiting_processed(&self) -> Option<u64> {
        self.awaiting
    }

    fn report(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    /// A wait for a busy lease: `retry`, growing with each busy answer in a row, plus jitter.
    fn backoff(&mut self) -> Duration {
        self.busy_tries = self.busy_tries.saturating_add(1);
        let base = self
            .config
            .retry
            .saturating_mul(self.busy_tries.min(16))
            .min(self.config.retry_max);
        let jitter = self.rng.below(self.config.retry.as_micros() as u64);
        base + Duration::from_micros(jitter)
    }

    fn issue(&mut self, now: Time, step: Step) {
        let _ = now;
        let id = OpId(self.next_op);
        self.next_op += 1;
        let area = self.config.area;
        let sector = area.geometry.sector_size().as_usize();
        let lease = |lease, op| Output::Lease { id, lease, op };
        let out = match &step {
            Step::JoinMessage | Step::CycleMessage => {
                lease(MsgLease::Message, LeaseOp::Acquire { shared: true })
            }
            Step::JoinGetLvb | Step::CycleGetLvb | Step::SendGetLvb { .. } => {
                lease(MsgLease::Message, LeaseOp::GetLvb)
            }
            Step::JoinAck { .. } | Step::CycleAck { .. } => {
                lease(MsgLease::Ack, LeaseOp::Acquire { shared: true })
            }
            Step::JoinRound { .. } | Step::CycleAckRound { .. } => {
                lease(MsgLease::Ack, LeaseOp::GetLvb)
            }
            Step::JoinRelease { .. }
            | Step::CycleRelease { .. }
            | Step::CycleReleaseEarly { .. }
            | Step::SendReleaseMessage { .. }
            | Step::LeaveMessage => lease(MsgLease::Message, LeaseOp::Release),
            Step::Poll | Step::SendReadLvb => Output::Read {
                id,
                offset: area.lvb_offset(MsgLease::Message),
                len: sector,
            },
            Step::PollRound => Output::Read {
                id,
                offset: area.lvb_offset(MsgLease::Ack),
                len: sector,
            },
            Step::CycleLookMessage { .. } => Output::Read {
                id,
                offset: area.lease_offset(MsgLease::Message),
                len: sector,
            },
            Step::CycleLookAck { .. } => Output::Read {
                id,
                offset: area.lease_offset(MsgLease::Ack),
                len: sector,
            },
            Step::CycleReadData { rec } => {
                let Place::Slot(slot) = rec.place else {
                    unreachable!("an inline message has no data to read")
                };
                Output::Read {
                    id,
                    offset: area.slot_offset(slot),
                    len: area.slot_io_len(rec.len as usize),
                }
            }
            Step::CycleReleaseAck { .. } | Step::CycleAckTooEarly { .. } | Step::LeaveAck => {
                lease(MsgLease::Ack, LeaseOp::Release)
            }
            Step::CompleteAck { .. } => lease(MsgLease::Ack, LeaseOp::Acquire { shared: false }),
            Step::CompleteSetRound { seq } => {
                lease(MsgLease::Ack, LeaseOp::SetLvb(self.round_record(*seq)))
            }
            Step::SendSetRound { rec } => {
                lease(MsgLease::Ack, LeaseOp::SetLvb(self.round_record(rec.seq)))
            }
            Step::CompleteConvert { .. } | Step::SendAckSh { .. } => {
                lease(MsgLease::Ack, LeaseOp::Convert { shared: true })
            }
            Step::SendToken => lease(MsgLease::Token, LeaseOp::Acquire { shared: false }),
            Step::SendWriteData { rec } => {
                let Place::Slot(slot) = rec.place else {
                    unreachable!("an inline message has no data to write")
                };
                let payload = &self.sends.front().expect("a send under way").1;
                let mut data = payload.clone();
                data.resize(area.slot_io_len(payload.len()), 0);
                Output::Write {
                    id,
                    offset: area.slot_offset(slot),
                    data,
                }
            }
            Step::SendMessage { .. } => {
                lease(MsgLease::Message, LeaseOp::Acquire { shared: false })
            }
            Step::SendSetLvb { rec } => lease(MsgLease::Message, LeaseOp::SetLvb(rec.encode())),
            Step::SendConvertMessage { .. } => {
                lease(MsgLease::Message, LeaseOp::Convert { shared: true })
            }
            Step::SendAckEx { .. } => lease(MsgLease::Ack, LeaseOp::Convert { shared: false }),
            Step::SendReleaseToken { .. } | Step::LeaveToken => {
                lease(MsgLease::Token, LeaseOp::Release)
            }
        };
        self.outputs.push_back(out);
        self.pending = Some((id, step));
    }

    /// The ACK LVB that says round `seq` is complete.
    fn round_record(&self, seq: u64) -> Vec<u8> {
        MessageRecord {
            seq,
            from: self.config.host_id,
            from_generation: self.config.generation.0 as u32,
            len: 0,
            place: Place::Inline,
            payload_crc: sanlock_crc32c(&[]),
            inline: Vec::new(),
        }
        .encode()
    }

    /// Starts whatever is next when nothing is under way.
    fn advance(&mut self, now: Time) {
        if let Some(t) = self.next_notify {
            if now >= t {
                if let Some(seq) = self.sending_seq() {
                    self.outputs.push_back(Output::Notify { seq });
                    self.next_notify = Some(now + self.config.notify_every);
                } else {
                    self.next_notify = None;
                }
            }
        }
        if self.pending.is_some() || self.awaiting.is_some() {
            return;
        }
        if let Some((at, step)) = self.waiting.clone() {
            if now >= at {
                self.waiting = None;
                self.issue(now, step);
            }
            return;
        }
        if self.phase != Phase::Member {
            return;
        }
        self.busy_tries = 0;
        let token_due = !self.sends.is_empty()
            && self.looked_since_token
            && self.token_retry_at.is_none_or(|t| now >= t);
        if self.leave_asked {
            self.phase = Phase::Leaving;
            for (id, _) in std::mem::take(&mut self.sends) {
                self.report(Event::SendFailed { id, rv: ESHUTDOWN });
            }
            if self.round_wait.take().is_some() {
                self.issue(now, Step::LeaveMessage);
            } else {
                self.issue(now, Step::LeaveAck);
            }
        } else if let Some(seq) = self.round_wait {
            if self.round_seen >= seq {
                self.staggered(now, Step::CycleLookAck { seq, looks: 0 });
            } else if self.token_held && self.round_read_with_token {
                // Its sender let TOKEN go without completing the round: it died.
                self.issue(now, Step::CompleteAck { seq });
            } else if self.token_held {
                // Its sender may have completed it and let TOKEN go since we last looked.
                self.issue(now, Step::PollRound);
            } else if token_due {
                self.start_token(now);
            } else if now >= self.next_poll {
                self.issue(now, Step::PollRound);
            }
        } else if self.lvb_seen > self.acked {
            self.staggered(now, Step::CycleLookMessage { looks: 0 });
        } else if self.token_held {
            self.issue(now, Step::SendReadLvb);
        } else if token_due {
            self.start_token(now);
        } else if now >= self.next_poll {
            self.issue(now, Step::Poll);
        }
    }

    /// Issues a shared acquire after our host's turn in the stagger.
    fn staggered(&mut self, now: Time, step: Step) {
        let turn = (self.config.host_id.get() - 1) % 8;
        let delay = self.config.stagger * turn as u32;
        if delay.is_zero() {
            self.issue(now, step);
        } else {
            self.waiting = Some((now + delay, step));
        }
    }

    fn start_token(&mut self, now: Time) {
        self.token_retry_at = None;
        if self.slipped(Slip::SkipToken) {
            self.token_held = true;
            self.round_read_with_token = false;
            self.advance(now);
        } else {
            self.issue(now, Step::SendToken);
        }
    }

    /// The number of the message we are waiting for acks of, if any.
    fn sending_seq(&self) -> Option<u64> {
        let of = |step: &Step| match step {
            Step::SendAckEx { rec } => Some(rec.seq),
            Step::CompleteAck { seq } => Some(*seq),
            _ => None,
        };
        self.pending
            .as_ref()
            .and_then(|(_, s)| of(s))
            .or_else(|| self.waiting.as_ref().and_then(|(_, s)| of(s)))
    }

    fn fail(&mut self, rv: i32) -> Then {
        self.phase = Phase::Failed;
        self.waiting = None;
        for (id, _) in std::mem::take(&mut self.sends) {
            self.report(Event::SendFailed { id, rv });
        }
        self.report(Event::Failed { rv });
        Then::Done
    }

    /// A lease call that failed: fatal, or busy (tried again after a wait).
    fn busy_or_fatal(&mut self, rv: i32, step: Step) -> Then {
        if FATAL.contains(&rv) {
            self.fail(rv)
        } else {
            Then::Wait(step)
        }
    }

    /// The step after a lease call that succeeded, or the same call again after a wait when
    /// the lease was busy.
    fn next_or_again(&mut self, result: Result<Vec<u8>, i32>, next: Step, again: Step) -> Then {
        match result {
            Ok(_) => Then::Issue(next),
            Err(rv) => self.busy_or_fatal(rv, again),
        }
    }

    /// A record or payload that failed its checks: tried again, up to [`BAD_READS`] in a row.
    fn bad_read(&mut self, step: Step) -> Then {
        self.bad_reads += 1;
        if self.bad_reads >= BAD_READS {
            self.fail(EBADMSG)
        } else {
            Then::Wait(step)
        }
    }

    /// A record read by get_lvb: the record (or none yet), or the member failed.
    fn lvb_record(&mut self, result: Result<Vec<u8>, i32>) -> Result<Option<MessageRecord>, Then> {
        match result.map(|lvb| MessageRecord::decode(&lvb)) {
            Ok(Ok(rec)) => Ok(rec),
            Ok(Err(_)) => Err(self.fail(EBADMSG)),
            Err(rv) => Err(self.fail(rv)),
        }
    }

    fn after(&mut self, now: Time, step: Step, result: Result<Vec<u8>, i32>) -> Then {
        match step {
            Step::JoinMessage => self.next_or_again(result, Step::JoinGetLvb, Step::JoinMessage),
            Step::JoinGetLvb => match self.lvb_record(result) {
                Ok(rec) => Then::Issue(Step::JoinAck {
                    seen: rec.map_or(0, |r| r.seq),
                }),
                Err(then) => then,
            },
            Step::JoinAck { seen } => {
                self.next_or_again(result, Step::JoinRound { seen }, Step::JoinAck { seen })
            }
            Step::JoinRound { seen } => match self.lvb_record(result) {
                Ok(rec) => Then::Issue(Step::JoinRelease {
                    seen,
                    round: rec.map_or(0, |r| r.seq),
                }),
                Err(then) => then,
            },
            Step::JoinRelease { seen, round } => {
                self.phase = Phase::Member;
                self.processed = seen;
                // A sender may be waiting for the members of `seen`: if its round is not
                // complete, one cycle of ours (without delivering it) lets it through.
                self.acked = if round >= seen {
                    seen
                } else {
                    seen.saturating_sub(1)
                };
                self.lvb_seen = seen;
                self.round_seen = round;
                self.next_poll = now;
                self.report(Event::Joined { seq: seen });
                Then::Done
            }
            Step::Poll => {
                if let Ok(Ok(Some(rec))) = result.map(|s| MessageRecord::decode(&s)) {
                    self.lvb_seen = self.lvb_seen.max(rec.seq);
                }
                self.looked_since_token = true;
                self.next_poll = now + self.config.poll;
                Then::Done
            }
            Step::PollRound => match result.map(|s| MessageRecord::decode(&s)) {
                Ok(Ok(rec)) => {
                    self.round_seen = self.round_seen.max(rec.map_or(0, |r| r.seq));
                    self.round_read_with_token = self.token_held;
                    self.looked_since_token = true;
                    self.next_poll = now + self.config.poll;
                    Then::Done
                }
                // A read that failed or a record that did not check: look again.
                _ => Then::Wait(Step::PollRound),
            },
            Step::CycleLookMessage { looks } => {
                if looks < LOOKS && leader_held(&result) {
                    Then::Wait(Step::CycleLookMessage { looks: looks + 1 })
                } else {
                    Then::Issue(Step::CycleMessage)
                }
            }
            Step::CycleLookAck { seq, looks } => {
                if looks < LOOKS && leader_held(&result) {
                    Then::Wait(Step::CycleLookAck {
                        seq,
                        looks: looks + 1,
                    })
                } else {
                    Then::Issue(Step::CycleAck { seq })
                }
            }
            Step::CycleMessage => match result {
                Ok(_) => {
                    self.message_held = true;
                    Then::Issue(Step::CycleGetLvb)
                }
                Err(rv) => self.busy_or_fatal(rv, Step::CycleMessage),
            },
            Step::CycleGetLvb => match result.map(|lvb| MessageRecord::decode(&lvb)) {
                Ok(Ok(rec)) => {
                    self.bad_reads = 0;
                    let Some(rec) = rec.filter(|r| r.seq > self.acked) else {
                        // Nothing to acknowledge after all.
                        self.lvb_seen = self.acked;
                        return Then::Issue(Step::CycleRelease { seq: self.acked });
                    };
                    self.lvb_seen = self.lvb_seen.max(rec.seq);
                    if rec.seq <= self.processed {
                        // The one we joined at: take part in its round without delivering.
                        Then::Issue(Step::CycleReleaseAck { seq: rec.seq })
                    } else if rec.place == Place::Inline {
                        self.deliver(&rec, rec.inline.clone())
                    } else {
                        Then::Issue(Step::CycleReadData { rec })
                    }
                }
                Ok(Err(_)) => self.bad_read(Step::CycleGetLvb),
                Err(rv) => self.fail(rv),
            },
            Step::CycleReadData { rec } => {
                let payload = result
                    .ok()
                    .and_then(|data| data.get(..rec.len as usize).map(<[u8]>::to_vec))
                    .filter(|p| sanlock_crc32c(p) == rec.payload_crc);
                match payload {
                    Some(p) => {
                        self.bad_reads = 0;
                        self.deliver(&rec, p)
                    }
                    None => self.bad_read(Step::CycleReadData { rec }),
                }
            }
            Step::CycleReleaseAck { seq } => {
                // A failed release leaves nothing held by us either way (3.8.5 drops the
                // token whatever the disk said).
                if self.slipped(Slip::DropMessageBeforeAck) {
                    return Then::Issue(Step::CycleReleaseEarly { seq });
                }
                self.round_wait = Some(seq);
                self.next_poll = now;
                Then::Done
            }
            Step::CycleReleaseEarly { seq } => {
                self.message_held = false;
                self.round_wait = Some(seq);
                self.next_poll = now;
                Then::Done
            }
            Step::CycleAck { seq } => {
                self.next_or_again(result, Step::CycleAckRound { seq }, Step::CycleAck { seq })
            }
            Step::CycleAckRound { seq } => match self.lvb_record(result) {
                Ok(rec) if rec.as_ref().is_some_and(|r| r.seq >= seq) => self.round_done(seq),
                Ok(_) => Then::Issue(Step::CycleAckTooEarly { seq }),
                Err(then) => then,
            },
            Step::CycleAckTooEarly { .. } => {
                // The round we saw complete on disk is not what our acquire read: look again.
                self.round_seen = 0;
                Then::Done
            }
            Step::CycleRelease { seq } => {
                self.message_held = false;
                self.acked = self.acked.max(seq);
                self.next_poll = now;
                Then::Done
            }
            Step::CompleteAck { seq } => self.next_or_again(
                result,
                Step::CompleteSetRound { seq },
                Step::CompleteAck { seq },
            ),
            Step::CompleteSetRound { seq } => self.next_or_again(
                result,
                Step::CompleteConvert { seq },
                Step::CompleteSetRound { seq },
            ),
            Step::CompleteConvert { seq } => match result {
                Ok(_) => {
                    self.round_seen = self.round_seen.max(seq);
                    self.outputs.push_back(Output::Notify { seq });
                    self.round_done(seq)
                }
                Err(rv) => self.busy_or_fatal(rv, Step::CompleteConvert { seq }),
            },
            Step::SendToken => match result {
                Ok(_) => {
                    self.token_held = true;
                    self.round_read_with_token = false;
                    Then::Done
                }
                Err(rv) if FATAL.contains(&rv) => self.fail(rv),
                Err(_) => {
                    // Another sender has it: serve as a member meanwhile, looking for its
                    // message before trying again, soon (no growing backoff: a sender lets
                    // TOKEN rest for a moment between its sends, and we must be quick then).
                    let jitter = self.rng.below(self.config.retry.as_micros() as u64);
                    self.token_retry_at =
                        Some(now + self.config.retry + Duration::from_micros(jitter));
                    self.looked_since_token = false;
                    self.next_poll = now;
                    Then::Done
                }
            },
            Step::SendReadLvb => match result.map(|s| MessageRecord::decode(&s)) {
                Ok(Ok(last)) => {
                    self.bad_reads = 0;
                    let last_seq = last.as_ref().map_or(0, |r| r.seq);
                    if last_seq > self.acked {
                        // A message whose round we have not taken part in (its sender died
                        // holding TOKEN): take part, completing the round, first.
                        self.lvb_seen = self.lvb_seen.max(last_seq);
                        return Then::Done;
                    }
                    let rec = self.prepare(last.as_ref());
                    if rec.place == Place::Inline {
                        Then::Issue(Step::SendMessage { rec })
                    } else {
                        Then::Issue(Step::SendWriteData { rec })
                    }
                }
                Ok(Err(_)) => self.bad_read(Step::SendReadLvb),
                Err(_) => Then::Wait(Step::SendReadLvb),
            },
            Step::SendWriteData { rec } => match result {
                Ok(_) => Then::Issue(Step::SendMessage { rec }),
                Err(_) => Then::Wait(Step::SendWriteData { rec }),
            },
            Step::SendMessage { rec } => self.next_or_again(
                result,
                Step::SendGetLvb { rec: rec.clone() },
                Step::SendMessage { rec },
            ),
            Step::SendGetLvb { rec } => match self.lvb_record(result) {
                Ok(cur) if cur.as_ref().map_or(0, |r| r.seq) + 1 == rec.seq => {
                    Then::Issue(Step::SendSetLvb { rec })
                }
                Ok(cur) => {
                    // The record moved since we read it (a sender outside TOKEN): number
                    // ours after it, and put a big payload in the slot it does not name; we
                    // hold MESSAGE EX, so no member is reading.
                    let rec = self.prepare(cur.as_ref());
                    if rec.place == Place::Inline {
                        Then::Issue(Step::SendSetLvb { rec })
                    } else {
                        Then::Issue(Step::SendWriteData { rec })
                    }
                }
                Err(then) => then,
            },
            Step::SendSetLvb { rec } => self.next_or_again(
                result,
                Step::SendConvertMessage { rec: rec.clone() },
                Step::SendSetLvb { rec },
            ),
            Step::SendConvertMessage { rec } => match result {
                Ok(_) => {
                    // Published: the record is on disk. Ours counts as processed by us.
                    self.processed = self.processed.max(rec.seq);
                    self.acked = self.acked.max(rec.seq);
                    self.lvb_seen = self.lvb_seen.max(rec.seq);
                    self.outputs.push_back(Output::Notify { seq: rec.seq });
                    self.next_notify = Some(now + self.config.notify_every);
                    Then::Issue(Step::SendAckEx { rec })
                }
                Err(rv) => self.busy_or_fatal(rv, Step::SendConvertMessage { rec }),
            },
            Step::SendAckEx { rec } => match result {
                Ok(_) => {
                    self.next_notify = None;
                    Then::Issue(Step::SendSetRound { rec })
                }
                Err(rv) => self.busy_or_fatal(rv, Step::SendAckEx { rec }),
            },
            Step::SendSetRound { rec } => self.next_or_again(
                result,
                Step::SendAckSh { rec: rec.clone() },
                Step::SendSetRound { rec },
            ),
            Step::SendAckSh { rec } => match result {
                Ok(_) => {
                    // The round is on disk: the members waiting for it take ACK back.
                    self.round_seen = self.round_seen.max(rec.seq);
                    self.outputs.push_back(Output::Notify { seq: rec.seq });
                    Then::Issue(Step::SendReleaseMessage { rec })
                }
                Err(rv) => self.busy_or_fatal(rv, Step::SendAckSh { rec }),
            },
            Step::SendReleaseMessage { rec } => {
                if self.slipped(Slip::SkipToken) {
                    self.finish_send(rec.seq, now);
                    Then::Done
                } else {
                    Then::Issue(Step::SendReleaseToken { seq: rec.seq })
                }
            }
            Step::SendReleaseToken { seq } => {
                self.finish_send(seq, now);
                Then::Done
            }
            Step::LeaveMessage => {
                self.message_held = false;
                if self.token_held {
                    Then::Issue(Step::LeaveToken)
                } else {
                    self.left()
                }
            }
            Step::LeaveAck => {
                if self.token_held {
                    Then::Issue(Step::LeaveToken)
                } else {
                    self.left()
                }
            }
            Step::LeaveToken => {
                self.token_held = false;
                self.left()
            }
        }
    }

    /// We hold ACK again after the round of `seq`: MESSAGE goes (unless the slip let it go
    /// already).
    fn round_done(&mut self, seq: u64) -> Then {
        self.round_wait = None;
        if self.message_held {
            Then::Issue(Step::CycleRelease { seq })
        } else {
            self.acked = self.acked.max(seq);
            Then::Done
        }
    }

    fn left(&mut self) -> Then {
        self.phase = Phase::Left;
        self.report(Event::Left);
        Then::Done
    }

    fn finish_send(&mut self, seq: u64, now: Time) {
        self.token_held = false;
        self.busy_tries = 0;
        let (id, _) = self.sends.pop_front().expect("a send under way");
        self.report(Event::Sent { id, seq });
        // TOKEN has no queue: leave it free for a few retry intervals before our next send,
        // so that a sender retrying it gets its turn (without this one busy sender starved
        // the other for seconds).
        self.token_retry_at = Some(now + self.config.retry * 4);
    }

    /// The record for the send at the head of the queue, numbered after `last`.
    fn prepare(&self, last: Option<&MessageRecord>) -> MessageRecord {
        let payload = &self.sends.front().expect("a send under way").1;
        let place = if payload.len() <= self.config.area.inline_max() {
            Place::Inline
        } else {
            // The slot the latest message does not use: a late reader of it is never
            // overwritten.
            match last.map(|r| r.place) {
                Some(Place::Slot(s)) => Place::Slot(1 - s),
                _ => Place::Slot(0),
            }
        };
        MessageRecord {
            seq: last.map_or(0, |r| r.seq) + 1,
            from: self.config.host_id,
            from_generation: self.config.generation.0 as u32,
            len: payload.len() as u32,
            place,
            payload_crc: sanlock_crc32c(payload),
            inline: if place == Place::Inline {
                payload.clone()
            } else {
                Vec::new()
            },
        }
    }

    fn deliver(&mut self, rec: &MessageRecord, payload: Vec<u8>) -> Then {
        self.report(Event::Deliver(Delivered {
            seq: rec.seq,
            from: rec.from,
            payload,
        }));
        if self.slipped(Slip::AckBeforeProcessed) {
            return Then::Issue(Step::CycleReleaseAck { seq: rec.seq });
        }
        self.awaiting = Some(rec.seq);
        Then::Done
    }
}

#[cfg(test)]
#[path = "messenger_tests.rs"]
mod tests;
