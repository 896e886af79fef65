//! Host messages with acks, and fence (our extension; docs/MESSAGES.md). MESSAGE_SEND hands a
//! message to the host's mailbox (`sanlock_core::mailbox`) and remembers it, so a one-shot
//! client can send and wait, or ask later with MESSAGE_STATUS; FENCE sends RESET (sanlk-reset's
//! event 1) and answers once the target has acknowledged and left the lockspace, or is dead by
//! host_dead_seconds — either way it holds no lease of the lockspace then.
//!
//! A message for us is delivered to the lockspace's event listeners like any event and only
//! then acknowledged; a RESET is acted on only once its ack is on disk (the write completed),
//! so the sender learns of it before we stop: holders are killed, the watchdog is let fire and
//! the lockspace is left.

use std::time::Duration;

use sanlock_core::mailbox::MailEvent;
use sanlock_core::ondisk::{HostEvent, Name};
use sanlock_core::{Generation, HostId, MessageSeq, Time, Timeouts};

use super::engine::*;
use super::messages::{Reply, Waiter};
use crate::wire::payload::{
    MSG_ACKED, MSG_NO_ACK_SUPPORT, MSG_QUEUED, MSG_RESET, MSG_SENT, MSG_TARGET_DEAD, MSG_TIMED_OUT,
};
use crate::wire::{
    WireHostEvent, WireLockspace, WireMessageStatus, HEADER_LEN, MESSAGE_STATUS_LEN,
};

/// sanlk-reset's event asking a host to reset itself (sanlock 3.8.5 reset/sanlk_reset.h).
pub const EVENT_RESET: u64 = 1;
/// Resolved messages kept for MESSAGE_STATUS.
const KEEP_RESOLVED: usize = 256;
const ETIMEDOUT: i32 = -110;
const EHOSTDOWN: i32 = -112;
const EOPNOTSUPP: i32 = -95;

/// A message's sender and number, as an ack names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct MessageKey {
    pub from: HostId,
    pub from_generation: Generation,
    pub seq: MessageSeq,
}

/// A message we sent.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Sent {
    target: HostId,
    target_generation: Generation,
    fence: bool,
    status: u32,
    sent_at: Time,
    /// When the host stops carrying it unanswered.
    expires: Time,
    /// The result once resolved.
    resolved: Option<(i32, Time)>,
    waiters: Vec<(Waiter, Time)>,
}

impl Sent {
    fn wire(&self, seq: MessageSeq, now: Time) -> WireMessageStatus {
        let at = self.resolved.map_or(now, |(_, t)| t);
        WireMessageStatus {
            seq: u64::from(seq.0),
            status: self.status,
            elapsed_ms: at.saturating_since(self.sent_at).as_millis() as u32,
            target_generation: self.target_generation.0,
            target: self.target.get(),
        }
    }
}

fn status_reply(waiter: &Waiter, rv: i32, status: WireMessageStatus) -> Reply {
    let mut h = waiter.header.result(rv);
    h.length = (HEADER_LEN + MESSAGE_STATUS_LEN) as u32;
    let mut bytes = h.encode().to_vec();
    status.encode_into(&mut bytes);
    Reply::keep_bytes(bytes)
}

impl Engine {
    /// MESSAGE_SEND / FENCE: checks, sends, and answers now (no wait asked) or when the
    /// message resolves or the wait ends.
    pub(super) fn message_send(
        &mut self,
        ls: &WireLockspace,
        ev: WireHostEvent,
        fence: bool,
        waiter: Waiter,
    ) {
        let now = self.now;
        // Seconds to wait: 0 answers at once, u32::MAX waits until the message resolves.
        let until_resolved = waiter.header.data == u32::MAX;
        let wait = Duration::from_secs(u64::from(waiter.header.data));
        let name = ls.name;
        let Some(io_timeout) = self.active_space(&name).map(|s| s.io_timeout) else {
            return self.answer(waiter, ENOENT);
        };
        let Some(target) = HostId::new(ev.host_id) else {
            return self.answer(waiter, EINVAL);
        };
        let status = self
            .host
            .hosts(name)
            .and_then(|t| t.status(target).cloned());
        let target_generation = match (ev.generation, &status) {
            (0, Some(st)) => st.owner_generation,
            (g, _) => Generation(g),
        };
        let event = HostEvent {
            generation: target_generation.0,
            event: if fence { EVENT_RESET } else { ev.event },
            data: if fence { 0 } else { ev.data },
        };
        let seq = if fence && self.target_gone(name, target, target_generation) {
            // Nothing to reset: it holds no lease of the lockspace already.
            None
        } else {
            match self.host.send_message(now, name, ev.host_id, event) {
                Ok(seq) => Some(seq),
                Err(rv) => return self.answer(waiter, rv),
            }
        };
        // How long it is carried: the wait asked, else 8N. A fence: until the target is surely
        // dead by its own io_timeout, counted from when its watchdog fires (it may renew until
        // then, its holders unkillable), and two more renewal intervals.
        let their = status.map_or(u64::from(io_timeout), |s| u64::from(s.io_timeout));
        let ours = Timeouts::new(u64::from(io_timeout));
        let life = if fence {
            ours.of_other(their).host_dead() + crate::watchdog::FIRE_TIMEOUT + 2 * ours.id_renewal()
        } else {
            ours.id_renewal_fail()
        };
        let life = if wait.is_zero() || until_resolved {
            life
        } else {
            wait
        };
        let Some(seq) = seq else {
            let st = WireMessageStatus {
                seq: 0,
                status: MSG_TARGET_DEAD,
                elapsed_ms: 0,
                target_generation: target_generation.0,
                target: target.get(),
            };
            let reply = status_reply(&waiter, 0, st);
            return self.send_reply(waiter, reply);
        };
        let line = format!(
            "{} {} to host {} gen {} in {}",
            if fence { "fence" } else { "message" },
            seq,
            target,
            target_generation,
            String::from_utf8_lossy(name.as_bytes())
        );
        self.log(Level::Info, line);
        let mut sent = Sent {
            target,
            target_generation,
            fence,
            status: MSG_QUEUED,
            sent_at: now,
            expires: now + life,
            resolved: None,
            waiters: Vec::new(),
        };
        if wait.is_zero() {
            let reply = status_reply(&waiter, 0, sent.wire(seq, now));
            self.send_reply(waiter, reply);
        } else {
            sent.waiters.push((waiter, now + life));
        }
        self.sent.insert((name, seq), sent);
    }

    /// MESSAGE_STATUS: the message's status now, or when it resolves within the wait.
    pub(super) fn message_status(&mut self, ls: &WireLockspace, waiter: Waiter) {
        let now = self.now;
        let seq = MessageSeq(waiter.header.data2);
        let until_resolved = waiter.header.data == u32::MAX;
        let wait = Duration::from_secs(u64::from(waiter.header.data));
        let Some(sent) = self.sent.get_mut(&(ls.name, seq)) else {
            return self.answer(waiter, ENOENT);
        };
        let deadline = if until_resolved {
            sent.expires
        } else {
            now + wait
        };
        match sent.resolved {
            Some((rv, _)) => {
                let reply = status_reply(&waiter, rv, sent.wire(seq, now));
                self.send_reply(waiter, reply);
            }
            None if wait.is_zero() => {
                let reply = status_reply(&waiter, 0, sent.wire(seq, now));
                self.send_reply(waiter, reply);
            }
            None => sent.waiters.push((waiter, deadline)),
        }
    }

    /// What the host's mailbox reports.
    pub(super) fn mail_event(&mut self, space: Name, event: MailEvent) {
        match event {
            MailEvent::Received {
                from,
                from_generation,
                seq,
                event,
            } => {
                // Delivered first, then acknowledged: an ack says the listeners have it.
                if !self.deliver(space, from.get(), from_generation.0, event) {
                    return;
                }
                if event.event == EVENT_RESET {
                    let key = MessageKey {
                        from,
                        from_generation,
                        seq,
                    };
                    self.resets.push((space, key));
                }
                self.host
                    .ack_message(self.now, space, from, from_generation, seq);
            }
            MailEvent::AckWritten {
                from,
                from_generation,
                seq,
            } => {
                let key = MessageKey {
                    from,
                    from_generation,
                    seq,
                };
                let Some(i) = self.resets.iter().position(|r| *r == (space, key)) else {
                    return;
                };
                self.resets.remove(i);
                self.reset(space, key);
            }
            MailEvent::Sent { seq } => {
                if let Some(s) = self.sent.get_mut(&(space, seq)) {
                    if s.status == MSG_QUEUED {
                        s.status = MSG_SENT;
                    }
                }
            }
            MailEvent::Acked {
                seq,
                target_generation,
            } => {
                let Some(s) = self.sent.get_mut(&(space, seq)) else {
                    return;
                };
                s.status = MSG_ACKED;
                // Sent for any generation: the one that acknowledged.
                if s.target_generation.0 == 0 {
                    s.target_generation = target_generation;
                }
                if !s.fence {
                    self.resolve(space, seq, MSG_ACKED, 0);
                }
            }
            MailEvent::NoAckSupport { seq } => {
                let Some(s) = self.sent.get_mut(&(space, seq)) else {
                    return;
                };
                s.status = MSG_NO_ACK_SUPPORT;
                if !s.fence {
                    self.resolve(space, seq, MSG_NO_ACK_SUPPORT, EOPNOTSUPP);
                }
            }
        }
    }

    /// RESET, its ack on disk: stop every holder at once, let the watchdog fire, leave.
    fn reset(&mut self, space: Name, key: MessageKey) {
        let now = self.now;
        let Some(i) = self.spaces.iter().position(|s| {
            s.ls.name == space && matches!(s.state, SpaceState::Active | SpaceState::RemPending)
        }) else {
            return;
        };
        let line = format!(
            "s{} reset requested by host {} gen {} (message {}): acknowledged; stopping holders, watchdog reset, leaving the lockspace",
            self.spaces[i].space_id, key.from, key.from_generation, key.seq
        );
        self.log(Level::Err, line);
        let order = self.watchdog.fire(space, now);
        self.order_watchdog(order);
        self.spaces[i].state = SpaceState::Removing;
        self.host.leave(now, space);
    }

    /// Whether `target` in `generation` holds nothing in the lockspace any more: our scans
    /// saw its delta lease free or taken by another generation, or saw it silent for
    /// host_dead_seconds. Silence counts between our own scans, and only while our lease is
    /// live: a host whose own reads stopped would otherwise take everyone for dead (found by
    /// the simulator: a fencer losing its disk returned success on a live target).
    fn target_gone(&self, space: Name, target: HostId, generation: Generation) -> bool {
        let Some(table) = self.host.hosts(space) else {
            return false;
        };
        let Some(st) = table.status(target) else {
            return false;
        };
        st.timestamp == 0
            || (generation.0 != 0 && st.owner_generation != generation)
            || (table.seen_dead(target) && self.host.delta_live(space, self.now))
    }

    /// The once-a-second look at messages under way: targets gone, fences done, waits over.
    pub(super) fn messages_check(&mut self, now: Time) {
        // RESETs whose lockspace went before their ack was written will never be acted on.
        let host = &self.host;
        self.resets
            .retain(|(space, _)| host.hosts(*space).is_some());
        let open: Vec<(Name, MessageSeq)> = self
            .sent
            .iter()
            .filter(|(_, s)| s.resolved.is_none())
            .map(|(k, _)| *k)
            .collect();
        for (space, seq) in open {
            let s = &self.sent[&(space, seq)];
            let (target, generation, fence, status) =
                (s.target, s.target_generation, s.fence, s.status);
            let alive_space = self.host.hosts(space).is_some();
            if !alive_space {
                self.resolve(space, seq, MSG_TIMED_OUT, ENOENT);
            } else if self.target_gone(space, target, generation) {
                let (st, rv) = match (fence, status) {
                    (true, MSG_ACKED) => (MSG_RESET, 0),
                    (true, _) => (MSG_TARGET_DEAD, 0),
                    (false, _) => (MSG_TARGET_DEAD, EHOSTDOWN),
                };
                self.resolve(space, seq, st, rv);
            } else if now >= self.sent[&(space, seq)].expires {
                self.resolve(space, seq, MSG_TIMED_OUT, ETIMEDOUT);
            }
        }
        // Waits that end before their message resolves.
        let mut replies = Vec::new();
        for ((_, seq), s) in self.sent.iter_mut() {
            let status = s.wire(*seq, now);
            let (over, keep): (Vec<_>, Vec<_>) = s.waiters.drain(..).partition(|(_, t)| now >= *t);
            s.waiters = keep;
            for (w, _) in over {
                let mut st = status;
                st.status = MSG_TIMED_OUT;
                replies.push((w, st));
            }
        }
        for (w, st) in replies {
            let reply = status_reply(&w, ETIMEDOUT, st);
            self.send_reply(w, reply);
        }
    }

    /// Message `seq` is resolved: its waiters get `rv` and the status; the host stops carrying
    /// it; the oldest resolved ones beyond [`KEEP_RESOLVED`] are forgotten.
    fn resolve(&mut self, space: Name, seq: MessageSeq, status: u32, rv: i32) {
        let now = self.now;
        let Some(s) = self.sent.get_mut(&(space, seq)) else {
            return;
        };
        s.status = status;
        s.resolved = Some((rv, now));
        let wire = s.wire(seq, now);
        let waiters = std::mem::take(&mut s.waiters);
        let line = format!(
            "message {seq} to host {} resolved: {} ({rv})",
            s.target,
            wire.status_name()
        );
        if !matches!(status, MSG_ACKED | MSG_NO_ACK_SUPPORT) {
            self.host.cancel_message(now, space, seq);
        }
        self.log(Level::Info, line);
        for (w, _) in waiters {
            let reply = status_reply(&w, rv, wire);
            self.send_reply(w, reply);
        }
        let resolved: Vec<_> = self
            .sent
            .iter()
            .filter_map(|(k, s)| s.resolved.map(|(_, t)| (t, *k)))
            .collect();
        if resolved.len() > KEEP_RESOLVED {
            let mut resolved = resolved;
            resolved.sort();
            for (_, k) in &resolved[..resolved.len() - KEEP_RESOLVED] {
                self.sent.remove(k);
            }
        }
    }
}
