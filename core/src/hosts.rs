//! What one host knows of the others in a lockspace: a table fed by every successful renewal's
//! read of the whole lockspace (algorithms.md §5; sanlock 3.8.5 lockspace.c
//! `check_other_leases`, `get_host_flag`).
//!
//! Other hosts' timestamps are their own clocks, never compared with ours: a host is alive when
//! its (owner_id, owner_generation, timestamp) *changes* between our scans, and the times kept
//! here are our own readings of when we saw that.

use std::time::Duration;

use crate::ids::{Generation, HostId, MessageSeq};
use crate::ondisk::bitmap::HOSTID_BITMAP_OFFSET;
use crate::ondisk::leader::DELTA_DISK_MAGIC;
use crate::ondisk::{Geometry, HostBitmap, HostEvent, MailboxBlock, Name, RawLeader};
use crate::time::Time;
use crate::timeouts::Timeouts;

/// What we last saw of one host_id's delta lease, and when.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostStatus {
    /// Our time of the first scan.
    pub first_check: Time,
    /// Our time of the latest scan.
    pub last_check: Time,
    /// Our time of the latest scan in which (owner_id, owner_generation, timestamp) changed;
    /// `None` until a change after the first scan... or at the first scan itself.
    pub last_live: Option<Time>,
    /// Our time when we last acted on a request bit from this host.
    pub last_req: Option<Time>,
    /// The slot's owner.
    pub owner_id: u64,
    /// The owner's generation.
    pub owner_generation: Generation,
    /// The slot's timestamp (the owner's clock; 0 = free).
    pub timestamp: u64,
    /// The owner's io_timeout.
    pub io_timeout: u16,
    /// The owner's host name.
    pub owner_name: Name,
    /// Scans in which the slot had a wrong magic or lockspace name.
    pub lease_bad: u32,
    /// (owner_id, owner_generation, timestamp) as our latest renewal scan left them.
    pub renewal_view: Option<(u64, Generation, u64)>,
    /// The slot changed between our latest two renewal scans: "seen renewing at the last
    /// check", the question sanlock's paxos wait asks of its monitor, whose only scans are the
    /// renewals (paxos_lease.c, "optimize paxos wait"). Peeks leave it alone: a peek that saw
    /// nothing new half way between renewals must not make a live owner look silent.
    pub changed_at_renewal: bool,
}

impl HostStatus {
    /// How long our own scans have seen this slot unchanged: from the scan at which it last
    /// changed (or the first) to our latest scan. A gap in our own reads (a daemon stopped, a
    /// disk lost) is not the other host's silence.
    pub fn silence_seen(&self) -> Duration {
        self.last_check
            .saturating_since(self.last_live.unwrap_or(self.first_check))
    }
}

/// Which read of the lockspace a scan looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScanKind {
    /// A renewal's read, as every sanlock scan is.
    Renewal,
    /// A read half way between renewals ([`crate::delta::DeltaLease::set_peek`]).
    Peek,
}

/// A host's state as get_hosts reports it (SANLK_HOST_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HostState {
    /// Seen once, not yet seen changing (1).
    Unknown,
    /// Its delta lease is free (2).
    Free,
    /// Renewing (3).
    Live,
    /// Has not renewed for 8N (4).
    Fail,
    /// Has not renewed for 8N + 60: its watchdog has reset it (5).
    Dead,
}

impl HostState {
    /// The SANLK_HOST_* number.
    pub const fn value(self) -> u32 {
        match self {
            HostState::Unknown => 1,
            HostState::Free => 2,
            HostState::Live => 3,
            HostState::Fail => 4,
            HostState::Dead => 5,
        }
    }

    /// Its name in `sanlock client show`.
    pub const fn name(self) -> &'static str {
        match self {
            HostState::Unknown => "unknown",
            HostState::Free => "free",
            HostState::Live => "live",
            HostState::Fail => "fail",
            HostState::Dead => "dead",
        }
    }
}

/// Something a scan found aimed at us.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Notice {
    /// A host set our bit and carries an event: deliver it to local listeners.
    Event {
        /// The sender's host_id (its slot's owner_id).
        from: u64,
        /// The sender's generation.
        from_generation: Generation,
        /// The event as carried (its generation is not compared with ours).
        event: HostEvent,
    },
    /// A host's mailbox block names us as the target of its message (our extension,
    /// [`crate::mailbox`]): reported at every change of its sector while it shows it.
    Message {
        /// The sender.
        from: HostId,
        /// The sender's generation.
        from_generation: Generation,
        /// The sender's number for it.
        seq: MessageSeq,
        /// The event it carries.
        event: HostEvent,
    },
    /// A host set our bit and the per-sender throttle allows: examine the resources we hold.
    Examine {
        /// The sender's host_id.
        from: u64,
    },
}

/// How far a ballot's reads of a resource lease must reach, from one renewal's read of the
/// whole lockspace (docs/ARCHITECTURE.md, "Reading only what a ballot needs"): the dblocks of
/// host_ids 1 ..= `hosts` while the clock is before `until`; every dblock after that.
///
/// Why it is safe: a host can write a dblock only while it holds a delta lease, and joining
/// takes a claim write, then 2 × the io_timeout found in the sector before it, then a read
/// (algorithms.md §3.2 steps 7-9). A sector our read saw never used (owner 0, timestamp 0)
/// was claimed, if at all, after our read started, so its host writes no dblock before
/// `read started + 2 × its io_timeout`. Until then a dblock of a host above `hosts` lands, if
/// at all, after our ballot read was issued: that host's own later read sees our dblock, as
/// Disk Paxos needs of one of the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadBound {
    /// The highest host_id whose delta sector was ever used (an unreadable one counts).
    pub hosts: u64,
    /// Our time until which no higher host_id can have written a dblock; `None` when one can
    /// at any time (a free sector above `hosts` says io_timeout 0, or none is free).
    pub until: Option<Time>,
}

impl ReadBound {
    /// The view of a renewal's read of the whole lockspace `area` (of `geometry`) that started
    /// at `read_started`.
    pub fn of_renewal(area: &[u8], geometry: Geometry, read_started: Time) -> ReadBound {
        // One pass over the sectors, nothing kept: this runs at every renewal. `shortest` is
        // the least io_timeout of the free sectors after the last used one.
        let mut hosts = 0;
        let mut shortest: Option<u16> = None;
        let sectors = area
            .chunks_exact(geometry.sector_size().as_usize())
            .take(usize::from(geometry.max_hosts()));
        for (i, sector) in sectors.enumerate() {
            match RawLeader::delta_use(sector) {
                // An unreadable sector (wrong magic, short) counts as used.
                None | Some((true, _)) => {
                    hosts = i + 1;
                    shortest = None;
                }
                Some((false, io_timeout)) => {
                    shortest = Some(shortest.map_or(io_timeout, |s| s.min(io_timeout)));
                }
            }
        }
        let shortest = shortest.filter(|&n| n > 0);
        // 1% under 2 × io_timeout: the joiner's clock may run a little faster than ours.
        let until =
            shortest.map(|n| read_started + Duration::from_millis(2000 * u64::from(n) * 99 / 100));
        ReadBound {
            hosts: hosts as u64,
            until,
        }
    }

    /// The host_ids whose dblocks a ballot read issued at `now` must cover: `Some(hosts)` while
    /// the bound holds.
    pub fn hosts_at(bound: Option<ReadBound>, now: Time) -> Option<u64> {
        bound
            .filter(|b| b.until.is_some_and(|until| now < until))
            .map(|b| b.hosts)
    }
}

/// The table of one lockspace, indexed by host_id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostTable {
    space_name: Name,
    our_host_id: HostId,
    geometry: Geometry,
    timeouts: Timeouts,
    set_bitmap: Duration,
    /// Shared between copies until one changes it: the simulator and the checker copy whole
    /// hosts at every step, and this is the bulk of one (2000 slots).
    slots: std::sync::Arc<Vec<Option<HostStatus>>>,
}

impl HostTable {
    /// An empty table for our host in a lockspace; `set_bitmap` throttles request examines.
    pub fn new(
        space_name: Name,
        our_host_id: HostId,
        geometry: Geometry,
        timeouts: Timeouts,
        set_bitmap: Duration,
    ) -> Self {
        HostTable {
            space_name,
            our_host_id,
            geometry,
            timeouts,
            set_bitmap,
            slots: std::sync::Arc::new(vec![None; usize::from(geometry.max_hosts())]),
        }
    }

    /// Scans the whole lockspace as a renewal read it (algorithms.md §5 steps 1-4). A slot with
    /// a wrong magic or space name only counts as bad, as in sanlock. Unlike sanlock, a slot
    /// whose checksum fails is not believed either: it may show a renewal (a changed non-zero
    /// timestamp) but never a free slot, a new owner or a new generation, which would let an
    /// exclusive acquire clear a live host's shared hold (found by the simulator with a
    /// corrupted read; docs/COMPATIBILITY.md).
    /// `kind` says whether it was a renewal's read: only those move
    /// [`HostStatus::changed_at_renewal`].
    pub fn scan(&mut self, now: Time, area: &[u8], kind: ScanKind) -> Vec<Notice> {
        let notices = self.scan_slots(now, area);
        if kind == ScanKind::Renewal {
            let slots = std::sync::Arc::make_mut(&mut self.slots);
            for status in slots.iter_mut().flatten() {
                if status.last_check != now {
                    continue;
                }
                let view = (status.owner_id, status.owner_generation, status.timestamp);
                status.changed_at_renewal = status.renewal_view.is_some_and(|v| v != view);
                status.renewal_view = Some(view);
            }
        }
        notices
    }

    fn scan_slots(&mut self, now: Time, area: &[u8]) -> Vec<Notice> {
        let ss = self.geometry.sector_size().as_usize();
        let mut notices = Vec::new();
        let slots = std::sync::Arc::make_mut(&mut self.slots);
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(sector) = area.get(i * ss..(i + 1) * ss) else {
                break;
            };
            // The usual case, an unchanged sector seen before: nothing to parse.
            if let Some(st) = slot.as_mut().filter(|st| st.first_check != now) {
                let (owner, generation) = (st.owner_id, st.owner_generation.0);
                if RawLeader::delta_unchanged(
                    sector,
                    &self.space_name,
                    owner,
                    generation,
                    st.timestamp,
                ) {
                    st.last_check = now;
                    continue;
                }
            }
            let Ok(raw) = RawLeader::parse(sector) else {
                break;
            };
            let bad = raw.magic != DELTA_DISK_MAGIC || !raw.space_name.matches(&self.space_name);
            // The checksum matters only for a record that would change what we believe.
            let same = slot.as_ref().is_some_and(|st| {
                raw.owner_id == st.owner_id
                    && raw.owner_generation == st.owner_generation.0
                    && raw.timestamp == st.timestamp
            });
            let unverified = !bad && !same && raw.checksum != raw.computed_checksum();
            if unverified && slot.is_none() {
                continue;
            }
            let status = slot.get_or_insert_with(|| HostStatus {
                first_check: now,
                last_check: now,
                last_live: None,
                last_req: None,
                owner_id: raw.owner_id,
                owner_generation: Generation(raw.owner_generation),
                timestamp: raw.timestamp,
                io_timeout: raw.io_timeout,
                owner_name: raw.resource_name,
                lease_bad: 0,
                renewal_view: None,
                changed_at_renewal: false,
            });
            status.last_check = now;
            if unverified {
                status.lease_bad += 1;
                if raw.timestamp != 0 && raw.timestamp != status.timestamp {
                    status.timestamp = raw.timestamp;
                    status.last_live = Some(now);
                }
                continue;
            }
            if bad {
                // Keep following the timestamp so a renewing host is not declared dead.
                status.lease_bad += 1;
                if raw.timestamp != status.timestamp {
                    status.timestamp = raw.timestamp;
                    status.last_live = Some(now);
                }
                continue;
            }
            let unchanged = raw.owner_id == status.owner_id
                && raw.owner_generation == status.owner_generation.0
                && raw.timestamp == status.timestamp;
            if unchanged && status.first_check != now {
                continue;
            }
            if !unchanged {
                status.owner_id = raw.owner_id;
                status.owner_generation = Generation(raw.owner_generation);
                status.timestamp = raw.timestamp;
                status.io_timeout = raw.io_timeout;
                status.owner_name = raw.resource_name;
                status.last_live = Some(now);
            }
            if i == self.our_host_id.index() {
                continue;
            }
            // Our extension: a message to us in the sender's mailbox block is reported as a
            // message (delivered once, acknowledged), not as a plain event.
            let message = MailboxBlock::decode(sector)
                .and_then(|b| b.outgoing)
                .filter(|out| out.target == self.our_host_id && raw.write_generation != 0);
            if let (Some(out), Some(from)) = (message, HostId::new(raw.owner_id)) {
                notices.push(Notice::Message {
                    from,
                    from_generation: Generation(raw.owner_generation),
                    seq: out.seq,
                    event: HostEvent {
                        generation: raw.write_id,
                        event: raw.write_generation,
                        data: raw.write_timestamp,
                    },
                });
            }
            let mut bits = [0u8; 256];
            bits.copy_from_slice(&sector[HOSTID_BITMAP_OFFSET..HOSTID_BITMAP_OFFSET + 256]);
            if !HostBitmap::from_bytes(bits).test(self.our_host_id) {
                continue;
            }
            if raw.write_generation != 0 && message.is_none() {
                notices.push(Notice::Event {
                    from: raw.owner_id,
                    from_generation: Generation(raw.owner_generation),
                    event: HostEvent {
                        generation: raw.write_id,
                        event: raw.write_generation,
                        data: raw.write_timestamp,
                    },
                });
            }
            let throttled = status
                .last_req
                .is_some_and(|last| now.saturating_since(last) < self.set_bitmap);
            if !throttled {
                status.last_req = Some(now);
                notices.push(Notice::Examine { from: raw.owner_id });
            }
        }
        notices
    }

    /// What we know of `host`, if it was ever scanned.
    pub fn status(&self, host: HostId) -> Option<&HostStatus> {
        self.slots.get(host.index()).and_then(Option::as_ref)
    }

    /// Whether any scan has happened (get_hosts fails with -EAGAIN before).
    pub fn scanned(&self) -> bool {
        self.slots.iter().any(Option::is_some)
    }

    /// Whether our own scans have seen `host` silent for its host_dead_seconds: from the scan
    /// at which it last changed (or the first) to our latest scan. Unlike [`Self::state`],
    /// which counts up to `now`, a gap in our own reads (a disk we lost) is not its silence.
    /// A free slot is free, not dead.
    pub fn seen_dead(&self, host: HostId) -> bool {
        let Some(s) = self.status(host).filter(|s| s.timestamp != 0) else {
            return false;
        };
        s.silence_seen() > self.timeouts.of_other(u64::from(s.io_timeout)).host_dead()
    }

    /// `host`'s state now (lockspace.c `get_host_flag`), judged with its own io_timeout.
    pub fn state(&self, host: HostId, now: Time) -> Option<HostState> {
        let s = self.status(host)?;
        let t = self.timeouts.of_other(u64::from(s.io_timeout));
        let last = s.last_live.unwrap_or(s.first_check);
        let age = now.saturating_since(last);
        Some(if s.timestamp == 0 {
            HostState::Free
        } else if s.owner_id == self.our_host_id.get() {
            HostState::Live
        } else if age <= t.id_renewal_fail() && s.last_live.is_none_or(|l| l == s.first_check) {
            HostState::Unknown
        } else if age <= t.id_renewal_fail() {
            HostState::Live
        } else if age > t.host_dead() {
            HostState::Dead
        } else {
            HostState::Fail
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ondisk::{lockspace_init, DeltaSector, SectorSize};

    fn host(n: u64) -> HostId {
        HostId::new(n).unwrap()
    }

    fn area() -> Vec<u8> {
        let init = lockspace_init(
            Geometry::legacy(SectorSize::Bytes512),
            Name::new(b"LS").unwrap(),
            10,
        );
        let mut bytes = init.area;
        bytes[..512].copy_from_slice(&init.commit_sector);
        bytes
    }

    fn renew(area: &mut [u8], h: u64, timestamp: u64, bitmap: HostBitmap, event: HostEvent) {
        let at = (h as usize - 1) * 512;
        let mut s = DeltaSector::decode(&area[at..at + 512], at as u64).unwrap();
        s.leader.owner_id = Some(host(h));
        s.leader.owner_generation = Generation(1);
        s.leader.timestamp = timestamp;
        s.leader.set_event(event);
        s.bitmap = bitmap;
        area[at..at + 512].copy_from_slice(&s.encode());
    }

    fn g() -> Geometry {
        Geometry::legacy(SectorSize::Bytes512)
    }

    #[test]
    fn a_ballot_reads_through_the_highest_host_id_ever_used_for_2n_of_the_free_sectors() {
        let mut a = area();
        renew(&mut a, 1, 500, HostBitmap::EMPTY, HostEvent::default());
        renew(&mut a, 3, 0, HostBitmap::EMPTY, HostEvent::default()); // released: still used
        let r = Time::from_secs(1000);
        let bound = ReadBound::of_renewal(&a, g(), r);
        // The free sectors carry the lockspace's io_timeout 10: a joiner waits 20 s.
        assert_eq!(bound.hosts, 3);
        assert_eq!(bound.until, Some(r + Duration::from_millis(19_800)));
        assert_eq!(
            ReadBound::hosts_at(Some(bound), r + Duration::from_secs(19)),
            Some(3)
        );
        assert_eq!(
            ReadBound::hosts_at(Some(bound), r + Duration::from_millis(19_800)),
            None
        );
        assert_eq!(ReadBound::hosts_at(None, r), None);
        // A free sector above with a shorter io_timeout shortens the bound.
        let at = 9 * 512;
        let mut s = DeltaSector::decode(&a[at..at + 512], at as u64).unwrap();
        s.leader.io_timeout = 1;
        a[at..at + 512].copy_from_slice(&s.encode());
        let bound = ReadBound::of_renewal(&a, g(), r);
        assert_eq!(
            (bound.hosts, bound.until),
            (3, Some(r + Duration::from_millis(1_980)))
        );
        // One that says 0 (a joiner would use its own, unknown): no bound.
        s.leader.io_timeout = 0;
        a[at..at + 512].copy_from_slice(&s.encode());
        let bound = ReadBound::of_renewal(&a, g(), r);
        assert_eq!((bound.hosts, bound.until), (3, None));
        assert_eq!(ReadBound::hosts_at(Some(bound), r), None);
        // A sector that is no delta leader counts as used; the last one used: no bound.
        let mut b = area();
        b[5 * 512..6 * 512].fill(0xA5);
        assert_eq!(ReadBound::of_renewal(&b, g(), r).hosts, 6);
        b[1999 * 512..2000 * 512].fill(0);
        let bound = ReadBound::of_renewal(&b, g(), r);
        assert_eq!((bound.hosts, bound.until), (2000, None));
    }

    fn table() -> HostTable {
        HostTable::new(
            Name::new(b"LS").unwrap(),
            host(1),
            Geometry::legacy(SectorSize::Bytes512),
            Timeouts::new(10),
            Duration::from_secs(60),
        )
    }

    fn t(s: u64) -> Time {
        Time::from_secs(s)
    }

    #[test]
    fn a_host_is_unknown_until_seen_changing_then_live_fail_dead_by_its_silence() {
        // algorithms.md §5 state table with N = 10: fail after 80 s, dead after 140 s.
        let mut a = area();
        let mut tab = table();
        renew(&mut a, 2, 500, HostBitmap::EMPTY, HostEvent::default());
        tab.scan(t(1000), &a, ScanKind::Renewal);
        assert_eq!(tab.state(host(2), t(1000)), Some(HostState::Unknown));
        assert_eq!(tab.state(host(3), t(1000)), Some(HostState::Free));
        renew(&mut a, 2, 520, HostBitmap::EMPTY, HostEvent::default());
        tab.scan(t(1020), &a, ScanKind::Renewal);
        assert_eq!(tab.state(host(2), t(1020)), Some(HostState::Live));
        assert_eq!(tab.state(host(2), t(1100)), Some(HostState::Live));
        assert_eq!(tab.state(host(2), t(1101)), Some(HostState::Fail));
        assert_eq!(tab.state(host(2), t(1160)), Some(HostState::Fail));
        assert_eq!(tab.state(host(2), t(1161)), Some(HostState::Dead));
        // Scans that see no change keep last_live where it was.
        tab.scan(t(1150), &a, ScanKind::Renewal);
        assert_eq!(tab.status(host(2)).unwrap().last_live, Some(t(1020)));
        assert_eq!(tab.status(host(2)).unwrap().last_check, t(1150));
    }

    /// Host 2's slot as our renewal scans at 1000 and 1020 saw it: written at 500, then 520.
    fn host2_renewed_at_1000_and_1020() -> (Vec<u8>, HostTable) {
        let mut a = area();
        let mut tab = table();
        renew(&mut a, 2, 500, HostBitmap::EMPTY, HostEvent::default());
        tab.scan(t(1000), &a, ScanKind::Renewal);
        renew(&mut a, 2, 520, HostBitmap::EMPTY, HostEvent::default());
        tab.scan(t(1020), &a, ScanKind::Renewal);
        (a, tab)
    }

    #[test]
    fn only_silence_between_our_own_scans_makes_a_host_seen_dead() {
        // N = 10: host_dead 140 s. Our reads stopping is not the other host's silence.
        let (a, mut tab) = host2_renewed_at_1000_and_1020();
        assert_eq!(tab.state(host(2), t(1200)), Some(HostState::Dead));
        assert!(!tab.seen_dead(host(2)), "no scan of ours since 1020");
        tab.scan(t(1160), &a, ScanKind::Renewal);
        assert!(!tab.seen_dead(host(2)), "140 s of silence seen, not more");
        tab.scan(t(1161), &a, ScanKind::Peek);
        assert!(tab.seen_dead(host(2)));
        assert!(!tab.seen_dead(host(7)), "a free slot is free, not dead");
    }

    #[test]
    fn peeks_between_renewals_never_make_a_renewing_host_look_silent() {
        // paxos_lease.c "optimize paxos wait": the owner is alive at once when the monitor saw
        // it change at its last check; sanlock's monitor scans at each renewal only. A peek
        // half way that sees nothing new (or sees the change first) must not answer "no", or
        // an acquire waits for the owner's next renewal instead of failing -243 (issue 15).
        let mut a = area();
        let mut tab = table();
        let seen = |tab: &HostTable| tab.status(host(2)).unwrap().changed_at_renewal;
        renew(&mut a, 2, 500, HostBitmap::EMPTY, HostEvent::default());
        tab.scan(t(1000), &a, ScanKind::Renewal);
        assert!(!seen(&tab), "a first scan has nothing to compare with");
        renew(&mut a, 2, 520, HostBitmap::EMPTY, HostEvent::default());
        tab.scan(t(1020), &a, ScanKind::Renewal);
        assert!(seen(&tab));
        tab.scan(t(1030), &a, ScanKind::Peek);
        assert!(seen(&tab), "a peek that saw nothing new changes nothing");
        assert_eq!(tab.status(host(2)).unwrap().last_check, t(1030));
        renew(&mut a, 2, 540, HostBitmap::EMPTY, HostEvent::default());
        tab.scan(t(1035), &a, ScanKind::Peek);
        tab.scan(t(1040), &a, ScanKind::Renewal);
        assert!(
            seen(&tab),
            "the renewal compares with the last renewal, not the peek"
        );
        tab.scan(t(1060), &a, ScanKind::Renewal);
        assert!(!seen(&tab), "a whole renewal interval without a change");
    }

    #[test]
    fn a_slot_with_a_bad_checksum_never_shows_a_free_slot_or_a_new_owner() {
        // Found by the simulator: a read that zeroed a live host's timestamp made it FREE,
        // and an exclusive acquire then cleared that host's shared hold.
        let (a, mut tab) = host2_renewed_at_1000_and_1020();
        assert_eq!(tab.state(host(2), t(1020)), Some(HostState::Live));
        let at = 512 + 152;
        let mut bad = a.clone();
        bad[at..at + 8].fill(0);
        tab.scan(t(1030), &bad, ScanKind::Renewal);
        assert_eq!(tab.state(host(2), t(1030)), Some(HostState::Live));
        assert_eq!(tab.status(host(2)).unwrap().timestamp, 520);
        assert_eq!(tab.status(host(2)).unwrap().lease_bad, 1);
        // A bad record with a new non-zero timestamp still counts as a renewal.
        let mut moved = a.clone();
        moved[at..at + 8].copy_from_slice(&540u64.to_le_bytes());
        tab.scan(t(1040), &moved, ScanKind::Renewal);
        assert_eq!(tab.status(host(2)).unwrap().last_live, Some(t(1040)));
        // A slot first seen with a bad checksum is not in the table at all.
        let mut fresh = table();
        fresh.scan(t(1000), &bad, ScanKind::Renewal);
        assert!(fresh.status(host(2)).is_none());
        assert_eq!(fresh.state(host(3), t(1000)), Some(HostState::Free));
    }

    #[test]
    fn our_bit_with_an_event_is_delivered_on_each_change_and_examines_are_throttled() {
        // §5 step 4 and §11.3: event per sender renewal; examine at most once per 60 s.
        let mut a = area();
        let mut tab = table();
        let mut bits = HostBitmap::EMPTY;
        bits.set(host(1));
        let ev = HostEvent {
            generation: 1,
            event: 77,
            data: 1234,
        };
        renew(&mut a, 2, 100, bits, ev);
        let first = tab.scan(t(10), &a, ScanKind::Renewal);
        assert_eq!(
            first,
            vec![
                Notice::Event {
                    from: 2,
                    from_generation: Generation(1),
                    event: ev
                },
                Notice::Examine { from: 2 }
            ]
        );
        assert!(
            tab.scan(t(12), &a, ScanKind::Renewal).is_empty(),
            "unchanged: nothing again"
        );
        renew(&mut a, 2, 120, bits, ev);
        assert_eq!(
            tab.scan(t(30), &a, ScanKind::Renewal).len(),
            1,
            "event again, examine throttled"
        );
        renew(&mut a, 2, 180, bits, ev);
        assert_eq!(
            tab.scan(t(70), &a, ScanKind::Renewal).len(),
            2,
            "60 s later the examine is allowed"
        );
    }

    #[test]
    fn a_slot_with_a_bad_magic_still_follows_its_timestamp() {
        let mut a = area();
        let mut tab = table();
        renew(&mut a, 2, 100, HostBitmap::EMPTY, HostEvent::default());
        tab.scan(t(10), &a, ScanKind::Renewal);
        a[512] ^= 0xff; // break host 2's magic
        a[512 + 152] = 0x99; // and change its timestamp
        tab.scan(t(30), &a, ScanKind::Renewal);
        let s = tab.status(host(2)).unwrap();
        assert_eq!((s.lease_bad, s.last_live), (1, Some(t(30))));
        assert_eq!(s.owner_id, 2, "owner fields are not taken from a bad slot");
    }
}
