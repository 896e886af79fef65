//! sanlock's lease semantics as a table, for testing machines built on top of leases (the
//! messaging member, core/src/messenger.rs) in unit tests, the messaging simulator and its
//! checker. It keeps what such a machine relies on and nothing of how sanlock gets there:
//! SH holds share, EX excludes; an LVB read at acquire and written when an EX hold that set one
//! is converted or released; a holder that died keeps its holds until host_dead_seconds have
//! passed, and then the next acquire or convert that meets them clears them (§9.2, and a dead
//! owner's lease being taken). The paxos and delta machines that give those semantics on a
//! disk are checked on their own (core/tests, sim).

use std::collections::{BTreeMap, BTreeSet};

use crate::messenger::LeaseOp;
use crate::ondisk::message_lvb::{MessageRecord, MessagingArea, MsgLease, Place};

/// A member of the model: one process on one host.
pub type MemberId = usize;

/// -EAGAIN: another live holder is in the way.
pub const EAGAIN: i32 = -11;
/// -ENOENT: not held.
pub const ENOENT: i32 = -2;
/// -EEXIST: already held by this member.
pub const EEXIST: i32 = -17;
/// -EINVAL: set_lvb without an EX hold.
pub const EINVAL: i32 = -22;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Hold {
    shared: bool,
    lvb_read: Vec<u8>,
    lvb_set: Option<Vec<u8>>,
}

/// Every lease of one messaging area, and its disk.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseModel {
    area: MessagingArea,
    holds: BTreeMap<(MsgLease, MemberId), Hold>,
    lvb: BTreeMap<MsgLease, Vec<u8>>,
    dead: BTreeSet<MemberId>,
    expired: BTreeSet<MemberId>,
    slots: BTreeMap<u64, Vec<u8>>,
}

/// A rule of the protocol broken on the model's disk.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ModelViolation {
    /// A payload write landed on the data slot the published message names.
    #[error("member {member} wrote data slot {slot} while the published message {seq} lies there")]
    SlotOverwritten {
        /// The writer.
        member: MemberId,
        /// The slot.
        slot: u8,
        /// The published message.
        seq: u64,
    },
}

impl LeaseModel {
    /// A fresh area: no holders, LVBs and slots all zero.
    pub fn new(area: MessagingArea) -> Self {
        LeaseModel {
            area,
            holds: BTreeMap::new(),
            lvb: BTreeMap::new(),
            dead: BTreeSet::new(),
            expired: BTreeSet::new(),
            slots: BTreeMap::new(),
        }
    }

    /// Runs a lease call of `member`; the result a daemon would give.
    pub fn lease(
        &mut self,
        member: MemberId,
        lease: MsgLease,
        op: &LeaseOp,
    ) -> Result<Vec<u8>, i32> {
        let key = (lease, member);
        match op {
            LeaseOp::Acquire { shared } => {
                if self.holds.contains_key(&key) {
                    return Err(EEXIST);
                }
                self.clear_expired(lease);
                if self.in_the_way(lease, member, *shared) {
                    return Err(EAGAIN);
                }
                let lvb_read = self.lvb.get(&lease).cloned().unwrap_or_default();
                self.holds.insert(
                    key,
                    Hold {
                        shared: *shared,
                        lvb_read,
                        lvb_set: None,
                    },
                );
                Ok(Vec::new())
            }
            LeaseOp::Convert { shared } => {
                let Some(hold) = self.holds.get(&key).cloned() else {
                    return Err(ENOENT);
                };
                if *shared {
                    if !hold.shared {
                        if let Some(v) = hold.lvb_set {
                            self.lvb.insert(lease, v);
                        }
                    }
                    let h = self.holds.get_mut(&key).expect("held");
                    h.shared = true;
                    h.lvb_set = None;
                    return Ok(Vec::new());
                }
                self.clear_expired(lease);
                if self.in_the_way(lease, member, false) {
                    return Err(EAGAIN);
                }
                self.holds.get_mut(&key).expect("held").shared = false;
                Ok(Vec::new())
            }
            LeaseOp::Release => {
                let Some(hold) = self.holds.remove(&key) else {
                    return Err(ENOENT);
                };
                if let (false, Some(v)) = (hold.shared, hold.lvb_set) {
                    self.lvb.insert(lease, v);
                }
                Ok(Vec::new())
            }
            LeaseOp::SetLvb(bytes) => match self.holds.get_mut(&key) {
                Some(h) if !h.shared => {
                    h.lvb_set = Some(bytes.clone());
                    Ok(Vec::new())
                }
                Some(_) => Err(EINVAL),
                None => Err(ENOENT),
            },
            LeaseOp::GetLvb => match self.holds.get(&key) {
                Some(h) => {
                    let mut v = h.lvb_read.clone();
                    v.resize(self.area.geometry.sector_size().as_usize(), 0);
                    Ok(v)
                }
                None => Err(ENOENT),
            },
        }
    }

    /// A read of the area's disk: the MESSAGE LVB sector or a data slot.
    pub fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        let lvb_of = MsgLease::ALL
            .into_iter()
            .find(|&l| self.area.lvb_offset(l) == offset);
        let mut v = if let Some(lease) = lvb_of {
            self.lvb.get(&lease).cloned().unwrap_or_default()
        } else {
            self.slots.get(&offset).cloned().unwrap_or_default()
        };
        v.resize(len, 0);
        v
    }

    /// A write landing on the area's disk (data slots only); refused as a violation when it
    /// lands on the slot of the published message.
    pub fn write(
        &mut self,
        member: MemberId,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<(), ModelViolation> {
        if let Some(rec) = self.published() {
            if let Place::Slot(slot) = rec.place {
                if self.area.slot_offset(slot) == offset {
                    return Err(ModelViolation::SlotOverwritten {
                        member,
                        slot,
                        seq: rec.seq,
                    });
                }
            }
        }
        self.slots.insert(offset, data);
        Ok(())
    }

    /// The message record in MESSAGE's LVB on disk.
    pub fn published(&self) -> Option<MessageRecord> {
        let lvb = self.read(
            self.area.message_lvb_offset(),
            self.area.geometry.sector_size().as_usize(),
        );
        MessageRecord::decode(&lvb).ok().flatten()
    }

    /// The member's host died: its holds stay until [`LeaseModel::expire`].
    pub fn crash(&mut self, member: MemberId) {
        self.dead.insert(member);
    }

    /// host_dead_seconds have passed since `member` died (or its process died and its daemon
    /// released what it held): the next acquire or convert that meets its holds clears them.
    pub fn expire(&mut self, member: MemberId) {
        self.dead.insert(member);
        self.expired.insert(member);
    }

    /// Whether `member` holds `lease` (and in which mode: true for SH).
    pub fn holds(&self, member: MemberId, lease: MsgLease) -> Option<bool> {
        self.holds.get(&(lease, member)).map(|h| h.shared)
    }

    /// Members whose holds an expire would clear.
    pub fn dead(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.dead.difference(&self.expired).copied()
    }

    fn clear_expired(&mut self, lease: MsgLease) {
        self.holds
            .retain(|(l, m), _| *l != lease || !self.expired.contains(m));
    }

    fn in_the_way(&self, lease: MsgLease, member: MemberId, shared: bool) -> bool {
        self.holds
            .iter()
            .any(|((l, m), h)| *l == lease && *m != member && (!shared || !h.shared))
    }
}
