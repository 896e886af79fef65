//! The STATUS, HOST_STATUS and RENEWAL streams (wire.md §4.24-4.25) and the resource strings
//! inquire and status print (§6.3 "Export").

use sanlock_core::ondisk::Name;
use sanlock_core::HostId;

use super::engine::{Engine, SpaceState};
use crate::wire::payload::state_kind;
use crate::wire::{export_path, Header, WireResource, WireState};

const ENOSPC: i32 = -28;

/// `ls:res:path:offset…:lver` or `…:SH`, paths escaped.
pub fn resource_string(res: &WireResource, shared: bool, lver: u64) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(res.lockspace_name.as_bytes());
    out.push(b':');
    out.extend_from_slice(res.name.as_bytes());
    for d in &res.disks {
        out.push(b':');
        out.extend_from_slice(&export_path(&d.path));
        out.extend_from_slice(format!(":{}", d.offset).as_bytes());
    }
    if shared {
        out.extend_from_slice(b":SH");
    } else {
        out.extend_from_slice(format!(":{lver}").as_bytes());
    }
    out
}

impl Engine {
    /// The whole STATUS stream: daemon, clients, lockspaces, resources; `data` 1..3 stops early.
    pub(super) fn status(&self, header: Header) -> Vec<u8> {
        let e = self;
        let mut h = header.result(0);
        h.version = crate::wire::SM_PROTO;
        let mut out = h.encode().to_vec();
        let cfg = &e.cfg;
        let now = e.now;
        let daemon_text = format!(
            "our_host_name={} use_watchdog={} high_priority={} mlock_level={} quiet_fail={} \
         debug_renew=0 debug_clients=0 debug_cmds=0xfffffffffe06ffff \
         renewal_history_size={} gid=0 uid=0 sh_retries={} max_sectors_kb_ignore=0 \
         max_sectors_kb_align=0 max_sectors_kb_num=0 max_worker_threads={} \
         write_init_io_timeout={} use_aio=1 kill_grace_seconds={} helper_pid=-1 \
         helper_kill_fd=-1 helper_full_count=0 helper_last_status=0 monotime={} \
         version_str=3.8.5 version_num=3.8.5 version_hex=03080500 smproto_hex=00000001",
            String::from_utf8_lossy(e.host_name.as_bytes()),
            u8::from(cfg.use_watchdog),
            u8::from(cfg.high_priority),
            cfg.mlock_level,
            u8::from(cfg.quiet_fail),
            cfg.renewal_history_size,
            cfg.sh_retries,
            cfg.max_worker_threads,
            cfg.write_init_io_timeout,
            cfg.kill_grace_s,
            now.secs(),
        );
        WireState {
            kind: state_kind::DAEMON,
            name: e.host_name,
            text: daemon_text.into_bytes(),
            ..WireState::default()
        }
        .encode_into(&mut out);
        if header.data == state_kind::DAEMON {
            return out;
        }
        // sanlock's first two slots are its helper process and its listener; ours has neither as
        // a client, but tools expect the lines (`p -1 helper`, `p -1 listener`).
        for (ci, name) in [(0, "helper"), (1, "listener")] {
            WireState {
                kind: state_kind::CLIENT,
                data32: u32::MAX,
                name: Name::truncated(name.as_bytes()),
                text: format!(
                    "ci={ci} fd=-1 pid=-1 flags=0 restricted=0 cmd_active=0 cmd_last=0 \
                 pid_dead=0 kill_count=0 kill_last=0 suspend=0 need_free=0"
                )
                .into_bytes(),
                ..WireState::default()
            }
            .encode_into(&mut out);
        }
        for (ci, c) in e.table.iter() {
            let ci = ci + 2;
            let text = format!(
                "ci={ci} fd=-1 pid={} flags=0 restricted={:x} cmd_active={} cmd_last={} \
             pid_dead={} kill_count={} kill_last={} suspend=0 need_free=0",
                if c.registered() { c.pid } else { -1 },
                c.restrict,
                u8::from(c.job.is_some()),
                c.cmd_last,
                u8::from(c.dead()),
                c.kill.count,
                c.kill.last.map_or(0, |t| t.secs()),
            );
            WireState {
                kind: state_kind::CLIENT,
                data32: if c.registered() {
                    c.pid as u32
                } else {
                    u32::MAX
                },
                name: c.owner_name,
                text: text.into_bytes(),
                ..WireState::default()
            }
            .encode_into(&mut out);
        }
        if header.data == state_kind::CLIENT {
            return out;
        }
        // Active list, then adding, then removing (§4.24 item 3).
        let order = [
            ("spaces", &[SpaceState::Active, SpaceState::RemPending][..]),
            ("add", &[SpaceState::Adding][..]),
            ("rem", &[SpaceState::Removing, SpaceState::Removed][..]),
        ];
        for (list, states) in order {
            for s in e.spaces.iter().filter(|s| states.contains(&s.state)) {
                let (ss, align) = s.geometry.map_or((0, 0), |g| {
                    (g.sector_size().bytes(), g.align_size().bytes())
                });
                let generation = e.host.generation(s.ls.name).map_or(0, |g| g.0);
                let text = format!(
                    "list={list} space_id={} io_timeout={} sector_size={ss} align_size={align} \
                 host_generation={generation} renew_fail={} space_dead={} killing_pids={} \
                 used_retries={} external_used={} used_by_orphans={} renewal_read_extend_sec={} \
                 set_max_sectors_kb=0 corrupt_result=0 acquire_last_result={} \
                 renewal_last_result={} acquire_last_attempt={} acquire_last_success={} \
                 renewal_last_attempt={} renewal_last_success={}",
                    s.space_id,
                    s.io_timeout,
                    u8::from(s.failed),
                    u8::from(s.failed || matches!(s.state, SpaceState::Removing)),
                    u8::from(e.table.killing(&s.ls.name)),
                    s.used_retries,
                    u8::from(s.used),
                    u8::from(s.used_by_orphans),
                    s.io_timeout,
                    s.lease_status.acquire_result,
                    s.lease_status.renewal_result,
                    s.lease_status.acquire_attempt,
                    s.lease_status.acquire_success,
                    s.lease_status.renewal_attempt,
                    s.lease_status.renewal_success,
                );
                WireState {
                    kind: state_kind::LOCKSPACE,
                    data64: s.ls.host_id,
                    name: s.ls.name,
                    text: text.into_bytes(),
                    ..WireState::default()
                }
                .encode_into(&mut out);
                let mut ls = s.ls.clone();
                ls.flags = 0;
                ls.encode_into(&mut out);
            }
        }
        if header.data == state_kind::LOCKSPACE {
            return out;
        }
        self.resource_records(&mut out);
        out
    }

    /// One RESOURCE record per lease holder (and orphan), each with its resource and disks.
    pub(super) fn resource_records(&self, out: &mut Vec<u8>) {
        let e = self;
        // sanlock adds resources at the head of its list: newest first.
        let mut tokens: Vec<_> = e.table.tokens.values().collect();
        // Orphans come after the held list, as sanlock sends its lists.
        tokens.sort_by_key(|t| (t.orphan, std::cmp::Reverse(t.res_id)));
        for t in tokens {
            // An orphan has no holder: one record with its last holder's pid (list=orphan).
            let orphan = t.orphan.then_some(usize::MAX);
            for &ci in t.holders.iter().chain(orphan.iter()) {
                let pid = if t.orphan {
                    t.last_pid
                } else {
                    e.client(ci).map_or(-1, |c| c.pid)
                };
                let (ss, align) = e
                    .spaces
                    .iter()
                    .find(|s| s.ls.name == t.resource.lockspace_name)
                    .and_then(|s| s.geometry)
                    .map_or((0, 0), |g| {
                        (g.sector_size().bytes(), g.align_size().bytes())
                    });
                let text = format!(
                    "list={} flags={:x} sector_size={ss} align_size={align} lver={} reused=0 \
                 res_id={} token_id={}",
                    if t.orphan { "orphan" } else { "held" },
                    if t.shared { 0x4 } else { 0 },
                    t.lver,
                    t.res_id,
                    if t.orphan { 0 } else { t.res_id },
                );
                WireState {
                    kind: state_kind::RESOURCE,
                    data32: pid as u32,
                    data64: t.lver,
                    name: t.resource.name,
                    text: text.into_bytes(),
                }
                .encode_into(out);
                let mut res = t.resource.clone();
                if t.shared {
                    res.flags |= crate::wire::payload::RES_SHARED;
                }
                res.lver = t.lver;
                res.encode_into(out, true);
            }
        }
    }

    /// HOST_STATUS: one record per host_id with a timestamp or owner (§4.25); -ENOSPC for a
    /// lockspace we do not have.
    pub(super) fn host_status(&self, header: Header, name: &Name) -> Vec<u8> {
        let e = self;
        let found = e
            .spaces
            .iter()
            .find(|s| s.ls.name == *name && s.state != SpaceState::Removed);
        let table = found.and_then(|_| e.host.hosts(*name));
        let (Some(space), Some(table)) = (found, table) else {
            return header.result(ENOSPC).encode().to_vec();
        };
        let mut h = header.result(0);
        h.version = crate::wire::SM_PROTO;
        let mut out = h.encode().to_vec();
        let max = space.geometry.map_or(2000, |g| g.max_hosts());
        for id in 1..=u64::from(max) {
            let Some(st) = table.status(HostId::new(id).expect("1..=2000")) else {
                continue;
            };
            if st.last_live.is_none() && st.owner_id == 0 {
                continue;
            }
            let text = format!(
                "last_check={} last_live={} last_req={} owner_id={} owner_generation={} \
             timestamp={} io_timeout={} owner_name={}",
                st.last_check.secs(),
                st.last_live.map_or(0, |t| t.secs()),
                st.last_req.map_or(0, |t| t.secs()),
                st.owner_id,
                st.owner_generation.0,
                st.timestamp,
                st.io_timeout,
                String::from_utf8_lossy(st.owner_name.as_bytes()),
            );
            WireState {
                kind: state_kind::HOST,
                data32: id as u32,
                data64: st.timestamp,
                name: Name::EMPTY,
                text: text.into_bytes(),
            }
            .encode_into(&mut out);
        }
        out
    }

    /// RENEWAL: the renewal history, oldest first, data2 = io_timeout (§4.25); -ENOSPC for a
    /// lockspace we do not have.
    pub(super) fn renewal(&self, header: Header, name: &Name) -> Vec<u8> {
        let e = self;
        let found = e
            .spaces
            .iter()
            .find(|s| s.ls.name == *name && s.state != SpaceState::Removed);
        let Some(space) = found else {
            return header.result(ENOSPC).encode().to_vec();
        };
        let mut h = header.result(0);
        h.data2 = space.io_timeout;
        let mut out = h.encode().to_vec();
        for r in space.history.iter() {
            WireState {
                kind: state_kind::RENEWAL,
                data64: r.timestamp,
                text: format!(
                    "timestamp={} read_ms={} write_ms={} next_timeouts={} next_errors={}",
                    r.timestamp, r.read_ms, r.write_ms, r.next_timeouts, r.next_errors
                )
                .into_bytes(),
                ..WireState::default()
            }
            .encode_into(&mut out);
        }
        out
    }
}
