//! Host events (wire.md §4.22, algorithms.md §11): SET_EVENT puts an event and the target's
//! bit into our next renewals; REG_EVENT makes a connection a listener of a lockspace; an
//! event aimed at us in another host's renewal goes to every listener as an 80-byte event_cb.

use sanlock_core::host::SetEventFlags;
use sanlock_core::hosts::Notice;
use sanlock_core::ondisk::{HostEvent, Name};

use super::engine::*;
use super::messages::Action;
use crate::wire::WireHostEvent;

/// Listeners per lockspace (MAX_EVENT_FDS).
const MAX_EVENT_FDS: usize = 32;
/// -ENOCSI: every listener slot is taken.
const ENOCSI: i32 = -50;
/// The most host_ids any lockspace has (DEFAULT_MAX_HOSTS).
const MAX_HOST_ID: u64 = 2000;
/// The 80-byte event_cb a listener reads (wire.md §2.3, appendix A.7): the event as carried,
/// with our host_id, and the sender's host_id and generation.
pub fn event_cb(our_host_id: u64, event: HostEvent, from: u64, from_generation: u64) -> Vec<u8> {
    crate::wire::WireEventCb {
        event: WireHostEvent {
            host_id: our_host_id,
            generation: event.generation,
            event: event.event,
            data: event.data,
        },
        from_host_id: from,
        from_generation,
    }
    .encode()
}

impl Engine {
    /// REG_EVENT: listener `listener` gets this lockspace's events from now on (the shell has
    /// told us of the listeners gone before).
    pub(super) fn reg_event(&mut self, name: &Name, listener: u64) -> i32 {
        if name.is_empty() {
            return EINVAL;
        }
        let Some(s) = self.active_space(name) else {
            self.log(Level::Err, "lockspace_reg_event: lockspace not found");
            return ENOENT;
        };
        if s.listeners.len() >= MAX_EVENT_FDS {
            return ENOCSI;
        }
        s.listeners.push(listener);
        0
    }

    /// END_EVENT: listeners that ended (closed, or wrote 1) have lost their slots already (the
    /// shell said so before this call).
    pub(super) fn end_event(&mut self, name: &Name) -> i32 {
        if name.is_empty() {
            return EINVAL;
        }
        if self.active_space(name).is_none() {
            return ENOENT;
        }
        0
    }

    /// SET_EVENT (§11.1): checks in sanlock's order, then the host keeps the event.
    pub(super) fn set_event(&mut self, name: &Name, ev: WireHostEvent, flags: u32) -> i32 {
        if name.is_empty() || ev.host_id == 0 || ev.host_id > MAX_HOST_ID {
            return EINVAL;
        }
        if self.active_space(name).is_none() {
            return ENOENT;
        }
        let flags = SetEventFlags {
            cur_generation: flags & 0x1 != 0,
            clear_hostid: flags & 0x2 != 0,
            clear_event: flags & 0x4 != 0,
            replace_event: flags & 0x8 != 0,
            all_hosts: flags & 0x10 != 0,
        };
        let event = HostEvent {
            generation: ev.generation,
            event: ev.event,
            data: ev.data,
        };
        match self
            .host
            .set_event(self.now, *name, ev.host_id, event, flags)
        {
            Ok(()) => 0,
            Err(rv) => rv,
        }
    }

    /// An event for us arrived in another host's renewal: every listener gets it, with our
    /// host_id and the sender's (§11.3). A listener that cannot take it loses its slot.
    pub(super) fn deliver_event(&mut self, space_name: Name, notice: Notice) {
        let Notice::Event {
            from,
            from_generation,
            event,
        } = notice
        else {
            return;
        };
        self.deliver(space_name, from, from_generation.0, event);
    }

    /// Hands `event` from host `from` to every listener of the lockspace and logs it; false
    /// when the lockspace is not active.
    pub(super) fn deliver(
        &mut self,
        space_name: Name,
        from: u64,
        from_generation: u64,
        event: HostEvent,
    ) -> bool {
        let Some(s) = self.active_space(&space_name) else {
            return false;
        };
        let cb = event_cb(s.ls.host_id, event, from, from_generation);
        let line = format!(
            "s{} event from host {from} gen {}: {} {} {}",
            s.space_id, from_generation, event.generation, event.event, event.data
        );
        let sends: Vec<Action> = s
            .listeners
            .iter()
            .map(|&listener| Action::Event {
                listener,
                bytes: cb.clone(),
            })
            .collect();
        self.log(Level::Info, line);
        self.actions.extend(sends);
        true
    }

    /// Listeners that ended (closed, wrote 1, or could not take an event) lose their slots.
    pub(super) fn listeners_gone(&mut self, gone: &[u64]) {
        for s in &mut self.spaces {
            s.listeners.retain(|l| !gone.contains(l));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_cb_matches_the_captured_bytes() {
        // wire.md A.7: host 2 receives {2, 0, 0x11, 0x22} from host 1, generation 1.
        let ev = HostEvent {
            generation: 0,
            event: 0x11,
            data: 0x22,
        };
        let cb = event_cb(2, ev, 1, 1);
        let mut want = vec![0u8; 80];
        want[..4].copy_from_slice(&[0x10, 0x20, 0x28, 0x04]);
        want[4] = 1;
        want[8] = 1;
        want[16] = 0x50;
        want[32] = 2;
        want[48] = 0x11;
        want[56] = 0x22;
        want[64] = 1;
        want[72] = 1;
        assert_eq!(cb, want);
    }
}
