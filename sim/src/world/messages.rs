//! Host messages and fences in the random simulator (`--messages`; docs/MESSAGES.md): every
//! 20-60 s a target is picked and every other joined host messages it at once, one of them
//! now and then fencing it instead (the others then message it again 2-8 s later, while it
//! leaves). Each daemon has an event listener; what it delivers, what
//! the disk shows and what each sender is told are checked (`crate::mail`).

use sanlock_machine::wire::payload::{MSG_ACKED, MSG_NO_ACK_SUPPORT, MSG_RESET, MSG_TARGET_DEAD};
use sanlock_machine::wire::WireMessageStatus;

use super::*;

/// The event every simulated message carries (its data is unique).
const SIM_EVENT: u64 = 3;

impl World {
    /// A burst: a target, and a message (or, one burst in four, one fence) from every other
    /// joined host.
    pub(super) fn mail_burst(&mut self) {
        if !self.faults_on {
            return;
        }
        let next = self.now + Duration::from_secs(20 + self.mail_rng.below(41));
        self.agenda.schedule(next, Ev::MailBurst);
        let joined: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].daemon.is_some() && self.nodes[n].joined)
            .collect();
        if joined.len() < 2 {
            return;
        }
        let target = joined[self.mail_rng.below(joined.len() as u64) as usize];
        let fencer = (self.mail_rng.below(4) == 0).then(|| {
            let others: Vec<usize> = joined.iter().copied().filter(|&n| n != target).collect();
            others[self.mail_rng.below(others.len() as u64) as usize]
        });
        for &n in &joined {
            if n == target || self.nodes[n].host_id == self.nodes[target].host_id {
                continue;
            }
            let at = self.now + Duration::from_millis(self.mail_rng.below(500));
            let fence = fencer == Some(n);
            self.act_at(at, n, Act::Message { target, fence });
            if fencer.is_some() && !fence {
                // The others keep messaging a host being fenced, which is leaving meanwhile.
                let later = at + Duration::from_millis(2_000 + self.mail_rng.below(6_000));
                let fence = false;
                self.act_at(later, n, Act::Message { target, fence });
            }
        }
    }

    /// Host `n` sends a message (or a fence) to host `target`, waiting until it resolves.
    pub(super) fn send_message(&mut self, n: usize, target: usize, fence: bool) {
        let space = self.space;
        let Some(engine) = self.nodes[n].daemon.as_mut() else {
            return;
        };
        let Some(from_gen) = engine.host().generation(space) else {
            return;
        };
        let Some(ci) = engine.connect(0) else {
            return;
        };
        let data = self.next_data;
        self.next_data += 1;
        let host_id = self.nodes[target].host_id.get();
        let (header, call) = requests::message(space, host_id, SIM_EVENT, data, fence);
        if fence {
            self.stats.fences[0] += 1;
        } else {
            self.stats.messages[0] += 1;
        }
        let what = if fence { "fence" } else { "message" };
        self.note(n, format!("{what} {data} to host{target}"));
        let cmd = Cmd::Message {
            ci,
            target,
            data,
            fence,
            from_gen: from_gen.0,
        };
        self.call(n, ci, 0, header, call, cmd);
    }

    /// Host `n`'s message (or fence) to `target` resolved with `rv` and the status in `bytes`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn message_answered(
        &mut self,
        n: usize,
        target: usize,
        data: u64,
        fence: bool,
        from_gen: u64,
        rv: i32,
        bytes: &[u8],
    ) {
        let Some(st) = bytes.get(32..64).map(WireMessageStatus::decode) else {
            return;
        };
        self.note(
            n,
            format!(
                "message {data} to host{target}: {} ({rv})",
                st.status_name()
            ),
        );
        if !fence {
            let i = match st.status {
                MSG_ACKED => 1,
                MSG_NO_ACK_SUPPORT => 2,
                MSG_TARGET_DEAD => 3,
                _ => 4,
            };
            self.stats.messages[i] += 1;
        } else if rv == 0 {
            self.stats.fences[1] += 1;
        }
        if rv != 0 {
            return;
        }
        let from = self.nodes[n].host_id.get();
        if st.status == MSG_ACKED && !fence {
            if let Err(v) =
                self.ledger
                    .check_acked(from, from_gen, data, st.target, st.target_generation)
            {
                return self.fail(v, vec![n, target]);
            }
        }
        if fence && matches!(st.status, MSG_RESET | MSG_TARGET_DEAD) {
            self.ledger.fenced.push((st.target, st.target_generation));
            self.check_fenced();
        }
    }

    /// REG_EVENT for host `n`'s lockspace: its listener is `n`.
    pub(super) fn reg_event(&mut self, n: usize) {
        let Some(ci) = self.nodes[n].daemon.as_mut().and_then(|d| d.connect(0)) else {
            return;
        };
        let (header, call) = requests::reg_event(self.space, n as u64);
        self.call(n, ci, 0, header, call, Cmd::RegEvent { ci });
    }

    /// Host `listener`'s daemon handed its listener an event.
    pub(super) fn event_delivered(&mut self, listener: u64, bytes: &[u8]) {
        let n = listener as usize;
        let Some(gen) = self.nodes[n]
            .daemon
            .as_ref()
            .and_then(|d| d.host().generation(self.space))
        else {
            return;
        };
        let host_id = self.nodes[n].host_id.get();
        self.ledger.delivered(host_id, gen.0, bytes);
    }

    /// A write landed on delta sector `sector`, which held `old`: no ack may have left it while
    /// its sender, alive, still waits for it.
    pub(super) fn check_acks_kept(&mut self, sector: usize, old: &[u8]) {
        let bytes = self.disk.bytes();
        let new = &bytes[sector * SECTOR..(sector + 1) * SECTOR];
        let sector_of = |h: HostId| {
            bytes
                .get(h.index() * SECTOR..(h.index() + 1) * SECTOR)
                .map(<[u8]>::to_vec)
        };
        let live = |h: HostId| {
            self.nodes.iter().any(|node| {
                node.host_id == h
                    && node.paused_until <= self.now
                    && node.daemon.as_ref().is_some_and(|d| {
                        d.host().delta_live(self.space, node.clock.local(self.now))
                    })
            })
        };
        if let Some(v) = crate::mail::ack_lost(old, new, sector_of, live) {
            self.fail(v, vec![sector]);
        }
    }

    /// No incarnation a fence reported done holds a lease.
    pub(super) fn check_fenced(&mut self) {
        for t in 0..self.nodes.len() {
            let node = &self.nodes[t];
            let generation = node
                .daemon
                .as_ref()
                .and_then(|d| d.host().generation(self.space))
                .map(|g| g.0);
            let holds = !node.holders.is_empty();
            let checked = self
                .ledger
                .check_fenced(t, node.host_id.get(), generation, holds);
            if let Err(v) = checked {
                return self.fail(v, vec![t]);
            }
        }
    }
}
