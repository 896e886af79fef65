//! What the simulator and the checker check of host messages and fence (docs/MESSAGES.md),
//! from outside the daemons: what each daemon delivered to its event listener, what the disk
//! shows, and what each sender was told.
//!
//! - an ack is reported only for a message the receiver delivered, in the generation the
//!   message was for ([`Ledger::check_acked`]);
//! - no ack leaves a receiver's sector while its sender, alive, still shows that message
//!   ([`ack_lost`], at every write that lands on a delta sector);
//! - once a fence has returned success, the fenced incarnation holds no lease
//!   ([`Ledger::fenced`], checked by the caller after every step).

use std::collections::BTreeSet;

use sanlock_core::ondisk::{MailboxBlock, RawLeader};
use sanlock_core::HostId;

/// A delivery seen at a listener: receiver host_id and generation, sender host_id and
/// generation, the event's data (the simulator makes each message's data unique).
pub type Delivery = (u64, u64, u64, u64, u64);

/// What the daemons delivered and whom a fence reported fenced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ledger {
    delivered: BTreeSet<Delivery>,
    /// (host_id, generation) of each incarnation a fence reported done.
    pub fenced: Vec<(u64, u64)>,
}

/// An event_cb a listener read (wire.md A.7): (our host_id, event generation, event, data,
/// from host_id, from generation).
pub fn decode_event_cb(bytes: &[u8]) -> Option<(u64, u64, u64, u64, u64, u64)> {
    let word = |i: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(i..i + 8)?.try_into().ok()?))
    };
    Some((
        word(32)?,
        word(40)?,
        word(48)?,
        word(56)?,
        word(64)?,
        word(72)?,
    ))
}

impl Ledger {
    /// Receiver `host_id` in `generation` handed `event_cb` to its listener.
    pub fn delivered(&mut self, host_id: u64, generation: u64, event_cb: &[u8]) {
        if let Some((_, _, _, data, from, from_gen)) = decode_event_cb(event_cb) {
            self.delivered
                .insert((host_id, generation, from, from_gen, data));
        }
    }

    /// A sender (`from`, `from_generation`) was told its message with `data` to `target` in
    /// `target_generation` was acknowledged.
    pub fn check_acked(
        &self,
        from: u64,
        from_generation: u64,
        data: u64,
        target: u64,
        target_generation: u64,
    ) -> Result<(), String> {
        let d = (target, target_generation, from, from_generation, data);
        if self.delivered.contains(&d) {
            return Ok(());
        }
        Err(format!(
            "host_id {from} was told host_id {target} (gen {target_generation}) acknowledged its \
             message {data}, which that host never delivered"
        ))
    }
}

impl Ledger {
    /// Host `index` (host_id `host_id`, in `generation` if joined) holds leases (`holds`):
    /// a violation if a fence reported that incarnation done.
    pub fn check_fenced(
        &self,
        index: usize,
        host_id: u64,
        generation: Option<u64>,
        holds: bool,
    ) -> Result<(), String> {
        match self
            .fenced
            .iter()
            .find(|&&f| Some(f) == generation.map(|g| (host_id, g)))
        {
            Some((_, gen)) if holds => Err(format!(
                "host{index} (host_id {host_id} gen {gen}) holds a lease after a fence of it \
                 returned success"
            )),
            _ => Ok(()),
        }
    }
}

/// A write replaced `old` with `new` in the delta sector of some host: an ack present before
/// and gone now, whose sender (by `sector_of`) still shows that message to this host in the
/// same generation, alive (`sender_live`), is an ack lost while its sender waits.
pub fn ack_lost(
    old: &[u8],
    new: &[u8],
    sector_of: impl Fn(HostId) -> Option<Vec<u8>>,
    sender_live: impl Fn(HostId) -> bool,
) -> Option<String> {
    let (Ok(o), Ok(n)) = (RawLeader::parse(old), RawLeader::parse(new)) else {
        return None;
    };
    if o.owner_id != n.owner_id || o.owner_generation != n.owner_generation || o.owner_id == 0 {
        return None; // a new incarnation starts with no acks
    }
    let receiver = HostId::new(n.owner_id)?;
    let before = MailboxBlock::decode(old)?;
    let after = MailboxBlock::decode(new).unwrap_or_default();
    for ack in before.acks.iter().flatten() {
        if after.acks.contains(&Some(*ack)) {
            continue;
        }
        let Some(sender) = sector_of(ack.from) else {
            continue;
        };
        let Ok(raw) = RawLeader::parse(&sender) else {
            continue;
        };
        let shows = MailboxBlock::decode(&sender)
            .and_then(|b| b.outgoing)
            .is_some_and(|out| out.target == receiver && out.seq == ack.seq);
        if shows
            && raw.timestamp != 0
            && raw.owner_generation as u32 == ack.from_generation
            && sender_live(ack.from)
        {
            return Some(format!(
                "host_id {receiver} dropped its ack of message {} of host_id {} while that \
                 host still waits for it",
                ack.seq, ack.from
            ));
        }
    }
    None
}
