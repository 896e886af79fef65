//! SHOW (ours, `sanlock client show`): one stream with what status, gets -h 1, host_status and
//! inquire give, seen at one instant, plus what sanlock gives nowhere: each host's silence
//! (seconds since we last saw its delta lease change) and what each add, acquire and removal
//! is waiting for, with the seconds left. Records are sanlock's `sanlk_state` with key=value
//! text; a name that ends a text is its last field, so spaces in it survive.

use sanlock_core::ondisk::Name;
use sanlock_core::waits::Wait;
use sanlock_core::{HostId, Time};

use super::engine::{Engine, SpaceState};
use crate::wire::payload::state_kind;
use crate::wire::{Header, WireState};

/// Seconds from `now` to `until`, rounded up; 0 once passed.
fn seconds_left(now: Time, until: Time) -> u64 {
    let d = until.saturating_since(now);
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `kind=… left=…` and the wait's own fields.
fn wait_text(now: Time, wait: &Wait) -> String {
    let kind = match wait {
        Wait::HostIdHolder { .. } => "host_id_holder".to_string(),
        Wait::HostIdSettle { .. } => "host_id_settle".to_string(),
        Wait::OwnerDead {
            owner, generation, ..
        } => format!(
            "owner_dead owner_id={owner} owner_generation={}",
            generation.0
        ),
        Wait::Backoff { .. } => "backoff".to_string(),
        Wait::Io { .. } => "io".to_string(),
    };
    format!("kind={kind} left={}", seconds_left(now, wait.until()))
}

impl Engine {
    /// The SHOW stream: DAEMON (`now`), then per lockspace its LOCKSPACE record and its HOST
    /// records, then RESOURCE records as STATUS sends them, then WAIT records.
    pub(super) fn show(&self, header: Header) -> Vec<u8> {
        let now = self.now;
        let mut h = header.result(0);
        h.version = crate::wire::SM_PROTO;
        let mut out = h.encode().to_vec();
        let record = |out: &mut Vec<u8>, kind, data32, data64, name: Name, text: String| {
            WireState {
                kind,
                data32,
                data64,
                name,
                text: text.into_bytes(),
            }
            .encode_into(out)
        };
        record(
            &mut out,
            state_kind::DAEMON,
            0,
            now.secs(),
            self.host_name,
            format!("now={}", now.secs()),
        );
        for s in &self.spaces {
            let state = match s.state {
                SpaceState::Adding => "adding",
                SpaceState::Active | SpaceState::RemPending if s.failed => "failing",
                SpaceState::Active | SpaceState::RemPending => "joined",
                SpaceState::Removing | SpaceState::Removed => "removing",
            };
            let renewal = self
                .host
                .last_renewal(s.ls.name)
                .map_or("-".to_string(), |t| {
                    now.saturating_since(t).as_secs().to_string()
                });
            let generation = self.host.generation(s.ls.name).map_or(0, |g| g.0);
            record(
                &mut out,
                state_kind::LOCKSPACE,
                0,
                s.ls.host_id,
                s.ls.name,
                format!(
                    "state={state} host_id={} generation={generation} io_timeout={} \
                     since_renewal={renewal} path_offset={} path={}",
                    s.ls.host_id,
                    s.io_timeout,
                    s.ls.disk.offset,
                    String::from_utf8_lossy(&s.ls.disk.path),
                ),
            );
            // As in STATUS, the lockspace itself follows its record.
            let mut ls = s.ls.clone();
            ls.flags = 0;
            ls.encode_into(&mut out);
            let Some(table) = self.host.hosts(s.ls.name) else {
                continue;
            };
            let max = s.geometry.map_or(2000, |g| g.max_hosts());
            for id in 1..=u64::from(max) {
                let host = HostId::new(id).expect("1..=2000");
                let Some(st) = table.status(host) else {
                    continue;
                };
                if st.timestamp == 0 && st.owner_id == 0 {
                    continue;
                }
                let state = table.state(host, now).map_or("unknown", |s| s.name());
                let silence = st.last_live.map_or("-".to_string(), |t| {
                    now.saturating_since(t).as_secs().to_string()
                });
                record(
                    &mut out,
                    state_kind::HOST,
                    id as u32,
                    st.timestamp,
                    s.ls.name,
                    format!(
                        "generation={} timestamp={} io_timeout={} state={state} \
                         since_renewal={silence} owner_name={}",
                        st.owner_generation.0,
                        st.timestamp,
                        st.io_timeout,
                        String::from_utf8_lossy(st.owner_name.as_bytes()),
                    ),
                );
            }
        }
        self.resource_records(&mut out);
        let mut wait_record = |name: Name, text: String| {
            record(&mut out, state_kind::WAIT, 0, 0, name, text);
        };
        for s in &self.spaces {
            let name = s.ls.name;
            match s.state {
                SpaceState::Adding => {
                    if let Some(wait) = self.host.space_wait(name) {
                        wait_record(name, format!("op=add_lockspace {}", wait_text(now, &wait)));
                    }
                }
                SpaceState::Removing => {
                    let holders = self
                        .table
                        .tokens
                        .values()
                        .filter(|t| t.resource.lockspace_name == name && !t.orphan)
                        .flat_map(|t| t.holders.iter())
                        .count();
                    wait_record(
                        name,
                        format!("op=rem_lockspace kind=holders count={holders}"),
                    );
                }
                _ => {}
            }
        }
        for (ls, res, wait) in self.host.resource_waits() {
            let text = format!(
                "op=acquire {} lockspace={}",
                wait_text(now, &wait),
                String::from_utf8_lossy(ls.as_bytes())
            );
            wait_record(res, text);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn seconds_left_round_up_and_stop_at_zero() {
        let t = |ms| Time::new(Duration::from_millis(ms));
        assert_eq!(seconds_left(t(1000), t(3500)), 3);
        assert_eq!(seconds_left(t(1000), t(3000)), 2);
        assert_eq!(seconds_left(t(5000), t(3000)), 0);
    }
}
