//! Host messages and fence in the checker (docs/MESSAGES.md): a host other than host0 sends
//! host0 a message or a fence and waits until it resolves; each daemon's event listener shows
//! what it delivered. Checked as in the random simulator (`crate::mail`): an ack only for a
//! message host0 delivered in that generation; no ack dropped while its sender still waits;
//! no lease held by an incarnation a fence reported done.

use sanlock_machine::wire::payload::{MSG_ACKED, MSG_RESET, MSG_TARGET_DEAD};
use sanlock_machine::wire::WireMessageStatus;

use super::daemon::Cmd;
use super::*;

/// The event every checker message carries (its data names the sender and how many it sent).
const CHECK_EVENT: u64 = 3;

impl Model {
    /// Whether the scenario sends messages at all.
    pub(super) fn mail(&self) -> bool {
        (0..self.hosts).any(|h| self.scenario.messages[h] + self.scenario.fences[h] > 0)
    }

    /// REG_EVENT on a connection of its own; the listener is the host's index.
    pub(super) fn reg_event(&self, s: &mut State, h: usize) -> Result<(), Violation> {
        let Some(ci) = s.hosts[h].daemon.as_mut().and_then(|d| d.connect(0)) else {
            return Ok(());
        };
        let (header, call) = requests::reg_event(self.space, h as u64);
        self.call(s, h, ci, header, call, Cmd::RegEvent { ci })
    }

    /// Host `h` messages (or fences) host0, waiting until it resolves.
    pub(super) fn send_message(
        &self,
        s: &mut State,
        h: usize,
        fence: bool,
    ) -> Result<(), Violation> {
        let Some(engine) = s.hosts[h].daemon.as_mut() else {
            return Ok(());
        };
        let Some(from_gen) = engine.host().generation(self.space) else {
            return Ok(());
        };
        let Some(ci) = engine.connect(0) else {
            return Ok(());
        };
        let hs = &s.hosts[h];
        let data =
            ((h as u64) << 16) | u64::from(hs.messages_left) << 8 | u64::from(hs.fences_left);
        let host_id = self.scenario.host_id(0);
        let (header, call) = requests::message(self.space, host_id, CHECK_EVENT, data, fence);
        let cmd = Cmd::Message {
            ci,
            data,
            fence,
            from_gen: from_gen.0,
        };
        self.call(s, h, ci, header, call, cmd)
    }

    /// Host `h`'s message or fence resolved with `rv` and the status in `bytes`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn message_answered(
        &self,
        s: &mut State,
        h: usize,
        data: u64,
        fence: bool,
        from_gen: u64,
        rv: i32,
        bytes: &[u8],
    ) -> Result<(), Violation> {
        let Some(st) = bytes.get(32..64).map(WireMessageStatus::decode) else {
            return Ok(());
        };
        if rv != 0 {
            return Ok(());
        }
        let from = self.scenario.host_id(h);
        if !fence && st.status == MSG_ACKED {
            s.ledger
                .check_acked(from, from_gen, data, st.target, st.target_generation)?;
        }
        if fence && matches!(st.status, MSG_RESET | MSG_TARGET_DEAD) {
            s.ledger.fenced.push((st.target, st.target_generation));
            self.check_fenced(s)?;
        }
        Ok(())
    }

    /// Host `h`'s daemon handed its listener an event.
    pub(super) fn event_delivered(&self, s: &mut State, h: usize, bytes: &[u8]) {
        let gen = s.hosts[h]
            .daemon
            .as_ref()
            .and_then(|d| d.host().generation(self.space));
        if let Some(gen) = gen {
            let host_id = self.scenario.host_id(h);
            s.ledger.delivered(host_id, gen.0, bytes);
        }
    }

    /// A write replaced delta sector `old` with `new`: no ack dropped while its sender waits.
    pub(super) fn check_acks_kept(
        &self,
        s: &State,
        old: &[u8],
        new: &[u8],
    ) -> Result<(), Violation> {
        let sector_of =
            |id: HostId| Some(self.read(&s.disk, id.index() as u64 * SECTOR as u64, SECTOR));
        let live = |id: HostId| {
            (0..self.hosts).any(|o| {
                self.scenario.host_id(o) == id.get()
                    && s.hosts[o]
                        .daemon
                        .as_ref()
                        .is_some_and(|d| d.host().delta_live(self.space, self.local(o, s.now_ms)))
            })
        };
        match crate::mail::ack_lost(old, new, sector_of, live) {
            Some(v) => Err(v),
            None => Ok(()),
        }
    }

    /// No incarnation a fence reported done holds the lease.
    pub(super) fn check_fenced(&self, s: &State) -> Result<(), Violation> {
        for (h, hs) in s.hosts.iter().enumerate() {
            let generation = hs
                .daemon
                .as_ref()
                .and_then(|d| d.host().generation(self.space))
                .map(|g| g.0);
            let holds = hs.alive && hs.holding.is_some();
            s.ledger
                .check_fenced(h, self.scenario.host_id(h), generation, holds)?;
        }
        Ok(())
    }
}
