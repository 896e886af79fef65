//! Cluster messaging (docs/MESSAGING.md) under the checker and a random simulator: members
//! running core's unchanged member machine ([`sanlock_core::messenger`]) on a model of
//! sanlock's lease semantics ([`sanlock_core::lease_model`]). Every lease call, read and write
//! completes atomically at a moment the schedule chooses; the program processes a delivered
//! message at a moment of its own; hosts die (their holds stay until host_dead_seconds pass,
//! another moment) and processes die (their daemon releases what they held at once). Time does
//! not pass: waits and polls are moments like any other, so every ordering of them is tried.
//!
//! Properties, after every step:
//! - each member delivers message numbers in increasing order, and one number always carries
//!   the same bytes, and the same bytes one number (one total order, exactly once);
//! - a send that returned was processed by every member that was a member when it was asked
//!   for and is still alive;
//! - no payload write lands on the data slot the published message names;
//! - no member fails, and a state where work is left has a way forward (no deadlock).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use sanlock_core::lease_model::LeaseModel;
use sanlock_core::messenger::{Event, LeaseOp, Messenger, MessengerConfig, OpId, Output, Slip};
use sanlock_core::ondisk::message_lvb::{MessagingArea, MsgLease};
use sanlock_core::ondisk::{Geometry, SectorSize};
use sanlock_core::rng::Rng;
use sanlock_core::{Generation, HostId, Time};

/// What a run or an exploration is made of.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MsgScenario {
    /// Its name.
    pub name: &'static str,
    /// Members (one per host).
    pub members: usize,
    /// Messages each member sends, in order; `true` for one too big for the LVB.
    pub sends: Vec<Vec<bool>>,
    /// Members whose host may die (then, later, their holds expire).
    pub may_die: Vec<usize>,
    /// Members whose process may die (their daemon releases at once).
    pub may_quit: Vec<usize>,
    /// I/O failures the schedule may inject: a read or write of the area, or an acquire or
    /// convert, fails with -EIO and has no effect.
    pub faults: u32,
}

impl MsgScenario {
    /// The checker's scenarios.
    pub fn all() -> Vec<MsgScenario> {
        vec![
            MsgScenario {
                name: "two-big",
                members: 2,
                sends: vec![vec![true], vec![true]],
                may_die: vec![],
                may_quit: vec![],
                faults: 0,
            },
            MsgScenario {
                name: "one-sender",
                members: 3,
                sends: vec![vec![false, false], vec![], vec![]],
                may_die: vec![],
                may_quit: vec![],
                faults: 0,
            },
            MsgScenario {
                name: "dead-sender",
                members: 3,
                sends: vec![vec![false], vec![false], vec![]],
                may_die: vec![0],
                may_quit: vec![],
                faults: 0,
            },
            MsgScenario {
                name: "dead-receiver",
                members: 3,
                sends: vec![vec![false, true], vec![], vec![]],
                may_die: vec![2],
                may_quit: vec![1],
                faults: 0,
            },
            MsgScenario {
                name: "faults",
                members: 2,
                sends: vec![vec![true], vec![false]],
                may_die: vec![],
                may_quit: vec![],
                faults: 2,
            },
        ]
    }

    /// The scenario called `name`.
    pub fn named(name: &str) -> Option<MsgScenario> {
        Self::all().into_iter().find(|s| s.name == name)
    }
}

/// A request a member is waiting on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Inflight {
    Lease(OpId, MsgLease, LeaseOp),
    Read(OpId, u64, usize),
    Write(OpId, u64, Vec<u8>),
}

/// A member and what the world knows of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Member {
    m: Messenger,
    inflight: Option<Inflight>,
    joined: bool,
    dead: bool,
    /// Delivered: (number, payload).
    delivered: Vec<(u64, Vec<u8>)>,
    unprocessed: Option<u64>,
    processed: Vec<u64>,
    /// Sends asked for so far, and for each the members that were members then.
    asked: usize,
    witnesses: VecDeque<Vec<usize>>,
    sent: usize,
}

/// One state of the world.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MsgState {
    model: LeaseModel,
    members: Vec<Member>,
    /// The bytes each number carried when first delivered.
    numbers: BTreeMap<u64, Vec<u8>>,
    dead_hosts: Vec<usize>,
    faults: u32,
}

/// One step the schedule may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Move {
    /// Member i's request completes.
    Complete(usize),
    /// Member i's timers are due.
    Tick(usize),
    /// Member i's program processed the message it holds.
    Process(usize),
    /// Member i's program asks for its next send.
    Send(usize),
    /// Member i's host dies.
    Die(usize),
    /// host_dead_seconds passed for member i's host (or its process died).
    Expire(usize),
    /// Member i's process dies: its daemon releases what it held.
    Quit(usize),
    /// Member i's request fails with -EIO, with no effect.
    Fail(usize),
}

fn area() -> MessagingArea {
    MessagingArea::new(0, Geometry::legacy(SectorSize::Bytes512)).expect("512/1M")
}

/// The payload of member `i`'s `n`-th message.
fn payload(i: usize, n: usize, big: bool) -> Vec<u8> {
    let mut p = vec![b'a' + i as u8, b'0' + n as u8];
    if big {
        p.resize(700, b'a' + i as u8);
    }
    p
}

const NOW: Time = Time::ZERO;

impl MsgState {
    /// Every member joining, nothing else done.
    pub fn new(s: &MsgScenario, slip: Option<Slip>) -> MsgState {
        // Waits take no time: a retry or a poll is a move like any other.
        let step = Duration::ZERO;
        let members = (0..s.members)
            .map(|i| {
                let mut m = Messenger::new(MessengerConfig {
                    area: area(),
                    host_id: HostId::new(i as u64 + 1).expect("host_id"),
                    generation: Generation(1),
                    poll: step,
                    retry: step,
                    retry_max: step,
                    notify_every: step,
                    seed: i as u64 + 1,
                    stagger: step,
                });
                set_slip(&mut m, slip);
                m.join(NOW);
                Member {
                    m,
                    inflight: None,
                    joined: false,
                    dead: false,
                    delivered: Vec::new(),
                    unprocessed: None,
                    processed: Vec::new(),
                    asked: 0,
                    witnesses: VecDeque::new(),
                    sent: 0,
                }
            })
            .collect();
        let mut st = MsgState {
            model: LeaseModel::new(area()),
            members,
            numbers: BTreeMap::new(),
            dead_hosts: Vec::new(),
            faults: 0,
        };
        for i in 0..s.members {
            st.drain(i).expect("joining breaks nothing");
        }
        st
    }

    /// The moves the schedule may take now.
    pub fn moves(&self, s: &MsgScenario) -> Vec<Move> {
        let mut out = Vec::new();
        for (i, mb) in self.members.iter().enumerate() {
            if mb.dead {
                if self.dead_hosts.contains(&i) && self.model.dead().any(|d| d == i) {
                    out.push(Move::Expire(i));
                }
                continue;
            }
            if mb.inflight.is_some() {
                out.push(Move::Complete(i));
            }
            if mb.m.poll_timeout().is_some() {
                out.push(Move::Tick(i));
            }
            if mb.unprocessed.is_some() {
                out.push(Move::Process(i));
            }
            if mb.joined && mb.asked < s.sends[i].len() && mb.asked == mb.sent {
                out.push(Move::Send(i));
            }
            if s.may_die.contains(&i) {
                out.push(Move::Die(i));
            }
            if self.faults < s.faults
                && matches!(
                    mb.inflight,
                    Some(
                        Inflight::Read(..)
                            | Inflight::Write(..)
                            | Inflight::Lease(
                                _,
                                _,
                                LeaseOp::Acquire { .. } | LeaseOp::Convert { .. }
                            )
                    )
                )
            {
                out.push(Move::Fail(i));
            }
            if s.may_quit.contains(&i) {
                out.push(Move::Quit(i));
            }
        }
        out
    }

    /// Takes `mv`; a broken property is the error.
    pub fn apply(&mut self, s: &MsgScenario, mv: Move) -> Result<(), String> {
        match mv {
            Move::Complete(i) => {
                let r = self.members[i].inflight.take().expect("a request");
                let (id, result) = match r {
                    Inflight::Lease(id, lease, op) => (id, self.model.lease(i, lease, &op)),
                    Inflight::Read(id, offset, len) => (id, Ok(self.model.read(offset, len))),
                    Inflight::Write(id, offset, data) => {
                        self.model
                            .write(i, offset, data)
                            .map_err(|v| v.to_string())?;
                        (id, Ok(Vec::new()))
                    }
                };
                self.members[i].m.complete(NOW, id, result);
            }
            Move::Tick(i) => self.members[i].m.handle_timeout(NOW),
            Move::Process(i) => {
                let mb = &mut self.members[i];
                let seq = mb.unprocessed.take().expect("a message");
                mb.processed.push(seq);
                mb.m.processed(NOW, seq);
            }
            Move::Send(i) => {
                let witnesses: Vec<usize> = (0..self.members.len())
                    .filter(|&j| j != i && self.members[j].joined && !self.members[j].dead)
                    .collect();
                let mb = &mut self.members[i];
                let n = mb.asked;
                mb.asked += 1;
                mb.witnesses.push_back(witnesses);
                mb.m.send(NOW, payload(i, n, s.sends[i][n]));
            }
            Move::Die(i) => {
                self.members[i].dead = true;
                self.members[i].inflight = None;
                self.dead_hosts.push(i);
                self.model.crash(i);
                return Ok(());
            }
            Move::Expire(i) => {
                self.model.expire(i);
                return Ok(());
            }
            Move::Fail(i) => {
                self.faults += 1;
                let r = self.members[i].inflight.take().expect("a request");
                let (Inflight::Lease(id, ..) | Inflight::Read(id, ..) | Inflight::Write(id, ..)) =
                    r;
                self.members[i].m.complete(NOW, id, Err(-5));
            }
            Move::Quit(i) => {
                self.members[i].dead = true;
                self.members[i].inflight = None;
                self.model.expire(i);
                return Ok(());
            }
        }
        let i = match mv {
            Move::Complete(i)
            | Move::Tick(i)
            | Move::Process(i)
            | Move::Send(i)
            | Move::Fail(i) => i,
            _ => unreachable!(),
        };
        self.drain(i)
    }

    /// Takes member `i`'s outputs: its next request, and its reports (checked).
    fn drain(&mut self, i: usize) -> Result<(), String> {
        while let Some(out) = self.members[i].m.poll_output() {
            let inflight = match out {
                Output::Lease { id, lease, op } => Inflight::Lease(id, lease, op),
                Output::Read { id, offset, len } => Inflight::Read(id, offset, len),
                Output::Write { id, offset, data } => Inflight::Write(id, offset, data),
                Output::Notify { .. } => continue,
                Output::Event(e) => {
                    self.report(i, e)?;
                    continue;
                }
            };
            let mb = &mut self.members[i];
            assert!(mb.inflight.is_none(), "one request at a time");
            mb.inflight = Some(inflight);
        }
        let mb = &mut self.members[i];
        mb.m.canonicalize();
        let pending = mb.m.pending_request();
        if let Some(r) = &mut mb.inflight {
            let (Inflight::Lease(id, ..) | Inflight::Read(id, ..) | Inflight::Write(id, ..)) = r;
            *id = pending.expect("the request in flight");
        }
        Ok(())
    }

    fn report(&mut self, i: usize, e: Event) -> Result<(), String> {
        match e {
            Event::Joined { .. } => self.members[i].joined = true,
            Event::Deliver(d) => {
                let mb = &mut self.members[i];
                if let Some(&(last, _)) = mb.delivered.last() {
                    if d.seq <= last {
                        return Err(format!(
                            "member {i} delivered message {} after {last}",
                            d.seq
                        ));
                    }
                }
                if mb.delivered.iter().any(|(_, p)| *p == d.payload) {
                    return Err(format!("member {i} delivered the same bytes twice"));
                }
                match self.numbers.get(&d.seq) {
                    Some(p) if *p != d.payload => {
                        return Err(format!(
                            "message {} carried other bytes at member {i}",
                            d.seq
                        ))
                    }
                    None => {
                        if self.numbers.values().any(|p| *p == d.payload) {
                            return Err(format!(
                                "member {i} got bytes already delivered under another number as {}",
                                d.seq
                            ));
                        }
                        self.numbers.insert(d.seq, d.payload.clone());
                    }
                    _ => {}
                }
                mb.delivered.push((d.seq, d.payload));
                mb.unprocessed = Some(d.seq);
            }
            Event::Sent { seq, .. } => {
                let mb = &mut self.members[i];
                mb.sent += 1;
                let witnesses = mb.witnesses.pop_front().expect("a send asked for");
                for j in witnesses {
                    let w = &self.members[j];
                    if !w.dead && !w.processed.contains(&seq) {
                        return Err(format!(
                            "member {i}'s send of message {seq} returned before member {j} \
                             (a member when it was asked for, still alive) processed it"
                        ));
                    }
                }
            }
            Event::SendFailed { rv, .. } => return Err(format!("member {i}: a send failed: {rv}")),
            Event::Failed { rv } => return Err(format!("member {i} failed: {rv}")),
            Event::Left => {}
        }
        Ok(())
    }

    /// Whether work is left: a send asked for and not returned, by a live member.
    pub fn work_left(&self) -> bool {
        self.members.iter().any(|m| !m.dead && m.sent < m.asked)
    }

    fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

fn set_slip(m: &mut Messenger, slip: Option<Slip>) {
    #[cfg(feature = "mutants")]
    m.set_slip(slip);
    #[cfg(not(feature = "mutants"))]
    {
        let _ = m;
        assert!(slip.is_none(), "slips need the mutants feature");
    }
}

/// What an exploration found.
#[derive(Clone, Debug)]
pub struct MsgReport {
    /// Distinct states seen.
    pub states: u64,
    /// Whether every state was seen (not cut at the bound).
    pub complete: bool,
    /// The first broken property, with the moves that led there.
    pub violation: Option<(String, Vec<Move>)>,
}

/// Every ordering of `s`'s moves, breadth first, up to `max_states` states.
pub fn explore(s: &MsgScenario, slip: Option<Slip>, max_states: u64) -> MsgReport {
    let start = MsgState::new(s, slip);
    let mut seen: HashSet<u64> = HashSet::new();
    seen.insert(start.fingerprint());
    let mut queue: VecDeque<(MsgState, Vec<Move>)> = VecDeque::from([(start, Vec::new())]);
    while let Some((st, path)) = queue.pop_front() {
        let here = st.fingerprint();
        let mut progress = false;
        for mv in st.moves(s) {
            let mut next = st.clone();
            let mut p = path.clone();
            p.push(mv);
            if let Err(v) = next.apply(s, mv) {
                return MsgReport {
                    states: seen.len() as u64,
                    complete: false,
                    violation: Some((v, p)),
                };
            }
            let f = next.fingerprint();
            progress |= f != here;
            if seen.insert(f) {
                if seen.len() as u64 >= max_states {
                    return MsgReport {
                        states: seen.len() as u64,
                        complete: false,
                        violation: None,
                    };
                }
                queue.push_back((next, p));
            }
        }
        if !progress && st.work_left() {
            return MsgReport {
                states: seen.len() as u64,
                complete: false,
                violation: Some(("stuck: work left and no move changes anything".into(), path)),
            };
        }
    }
    MsgReport {
        states: seen.len() as u64,
        complete: true,
        violation: None,
    }
}

/// A random schedule of `s` for up to `steps` moves (it ends early once every send returned);
/// the violation, if any, with the step it happened at.
pub fn random_run(
    s: &MsgScenario,
    slip: Option<Slip>,
    seed: u64,
    steps: u64,
) -> Result<u64, (u64, String)> {
    random_walk(s, slip, seed, steps).0
}

/// [`random_run`], with the state it ended in.
fn random_walk(
    s: &MsgScenario,
    slip: Option<Slip>,
    seed: u64,
    steps: u64,
) -> (Result<u64, (u64, String)>, MsgState) {
    let mut rng = Rng::new(seed);
    let mut st = MsgState::new(s, slip);
    // Some members are slow: a member's moves are picked in proportion to its speed.
    let speed: Vec<u64> = (0..s.members)
        .map(|_| [1, 4, 16][rng.below(3) as usize])
        .collect();
    let mut idle = 0u64;
    for step in 0..steps {
        let moves = st.moves(s);
        let owner = |mv: &Move| match *mv {
            Move::Complete(i)
            | Move::Tick(i)
            | Move::Process(i)
            | Move::Send(i)
            | Move::Die(i)
            | Move::Expire(i)
            | Move::Quit(i)
            | Move::Fail(i) => i,
        };
        let total: u64 = moves.iter().map(|m| speed[owner(m)]).sum();
        // Deaths are rare; everything else goes by its member's speed.
        let pick = loop {
            let mut at = rng.below(total);
            let mv = *moves
                .iter()
                .find(|m| {
                    let w = speed[owner(m)];
                    if at < w {
                        true
                    } else {
                        at -= w;
                        false
                    }
                })
                .expect("a move");
            let rare = matches!(
                mv,
                Move::Die(_) | Move::Quit(_) | Move::Expire(_) | Move::Fail(_)
            );
            if !rare || rng.below(200) == 0 {
                break mv;
            }
        };
        let before = st
            .members
            .iter()
            .map(|m| m.sent + m.processed.len())
            .sum::<usize>();
        if let Err(v) = st.apply(s, pick) {
            return (Err((step, v)), st);
        }
        let after = st
            .members
            .iter()
            .map(|m| m.sent + m.processed.len())
            .sum::<usize>();
        // Waiting for a dead host's holds to expire is not a lack of progress.
        let waiting_on_dead = st.model.dead().next().is_some();
        idle = if after > before || !st.work_left() || waiting_on_dead {
            0
        } else {
            idle + 1
        };
        if idle > 50_000 {
            let v = "no send or processing for 50,000 moves with work left".to_string();
            return (Err((step, v)), st);
        }
        if !st.work_left()
            && st
                .members
                .iter()
                .enumerate()
                .all(|(i, m)| m.dead || m.asked == s.sends[i].len())
        {
            return (Ok(step), st);
        }
    }
    (Ok(steps), st)
}

/// A random scenario for the simulator: 3-5 members, each sending 0-4 messages (some big),
/// one host and one process that may die.
pub fn random_scenario(seed: u64) -> MsgScenario {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let members = 3 + rng.below(3) as usize;
    let sends = (0..members)
        .map(|_| (0..rng.below(5)).map(|_| rng.below(3) == 0).collect())
        .collect();
    let die = rng.below(members as u64) as usize;
    let quit = rng.below(members as u64) as usize;
    MsgScenario {
        name: "random",
        members,
        sends,
        may_die: vec![die],
        may_quit: if quit == die { vec![] } else { vec![quit] },
        faults: rng.below(20) as u32,
    }
}
