//! Sectors written by sanlock 3.8.5 itself (core/testdata/, made by capture.sh with Debian's
//! /usr/sbin/sanlock and two C daemons as hosts 1 and 2). Each decodes to the values sanlock
//! printed for it, and re-encodes to the same bytes, so these tests pin the codec to the real
//! binary on machines where sanlock is not installed.

use sanlock_core::ondisk::rindex::RINDEX_ENTRY_SIZE;
use sanlock_core::ondisk::{
    AlignSize, DblockSector, DeltaSector, ForceMode, Geometry, HostBitmap, HostEvent, LeaderKind,
    LeaderMagic, LeaderRecord, Mbal, ModeBlock, Name, PaxosDblock, Problem, RawLeader,
    RequestRecord, RindexEntry, RindexHeader, SectorSize,
};
use sanlock_core::{Generation, HostId, Lver};

mod support;

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

fn host(n: u64) -> HostId {
    HostId::new(n).unwrap()
}

fn g512() -> Geometry {
    Geometry::legacy(SectorSize::Bytes512)
}

/// A leader alone in its sector, as sanlock writes a paxos leader: zeros after it.
fn leader_sector(leader: &LeaderRecord) -> Vec<u8> {
    let mut sector = vec![0u8; leader.sector_size().as_usize()];
    sector[..200].copy_from_slice(&leader.encode());
    sector
}

#[test]
fn direct_init_lockspace_sectors_for_every_geometry() {
    // `direct init -s LS:0:f:0 [-Z 4096 -A xM]`: the free delta leader of ondisk.md §4.3.
    let cases: [(&[u8], Geometry); 5] = [
        (golden!("delta_init_512_1m"), g512()),
        (golden!("delta_init_4k_1m"), Geometry::ALL[1]),
        (golden!("delta_init_4k_2m"), Geometry::ALL[2]),
        (golden!("delta_init_4k_4m"), Geometry::ALL[3]),
        (golden!("delta_init_4k_8m"), Geometry::ALL[4]),
    ];
    for (bytes, geometry) in cases {
        let sector = DeltaSector::decode(bytes, 0).unwrap();
        let expected = DeltaSector {
            leader: LeaderRecord::delta_init(geometry, name("LS"), 10),
            bitmap: HostBitmap::EMPTY,
            mailbox: None,
        };
        assert_eq!(sector, expected, "{geometry}");
        assert_eq!(expected.encode(), bytes, "{geometry}");
    }
}

#[test]
fn direct_init_resource_sectors_for_every_geometry() {
    // `direct init -r LS:R1:f:0 [-Z 4096 -A xM]`: leader with num_hosts = max_hosts.
    let cases: [(&[u8], Geometry); 5] = [
        (golden!("paxos_init_512_1m_leader"), g512()),
        (golden!("paxos_init_4k_1m_leader"), Geometry::ALL[1]),
        (golden!("paxos_init_4k_2m_leader"), Geometry::ALL[2]),
        (golden!("paxos_init_4k_4m_leader"), Geometry::ALL[3]),
        (golden!("paxos_init_4k_8m_leader"), Geometry::ALL[4]),
    ];
    for (bytes, geometry) in cases {
        let leader = LeaderRecord::decode(bytes, LeaderKind::Paxos, 0).unwrap();
        let expected = LeaderRecord::paxos_init(geometry, name("LS"), name("R1"), 0);
        assert_eq!(leader, expected, "{geometry}");
        assert_eq!(leader.num_hosts, u64::from(geometry.max_hosts()));
        assert_eq!(leader_sector(&expected), bytes, "{geometry}");
    }
    let request = golden!("paxos_init_512_1m_request");
    assert_eq!(
        RequestRecord::decode(request, 512).unwrap(),
        RequestRecord::INIT
    );
    assert_eq!(&RequestRecord::INIT.encode()[..], &request[..24]);
    assert!(request[24..].iter().all(|&b| b == 0));
}

#[test]
fn init_with_num_hosts_4_keeps_max_hosts() {
    // `direct init -r LS:R4:f:1M -n 4` (ondisk.md §5.7).
    let bytes = golden!("paxos_init_n4_leader");
    let leader = LeaderRecord::decode(bytes, LeaderKind::Paxos, 1 << 20).unwrap();
    assert_eq!((leader.num_hosts, leader.max_hosts), (4, 2000));
    assert_eq!(
        leader_sector(&LeaderRecord::paxos_init(g512(), name("LS"), name("R4"), 4)),
        bytes
    );
}

#[test]
fn a_cleared_lease_reads_as_does_not_exist() {
    // `direct init -r … -z 1`: CLEAR magic, write_timestamp = monotime of the clear (2212).
    let bytes = golden!("paxos_clear_leader");
    let raw = RawLeader::parse(bytes).unwrap();
    assert_eq!(raw.verify(LeaderKind::Paxos), Err(Problem::Cleared));
    let err = LeaderRecord::decode(bytes, LeaderKind::Paxos, 2 << 20).unwrap_err();
    assert_eq!(err.problem.sanlk_code(err.record), -223);
    let cleared = raw.verify_cleared().unwrap();
    assert_eq!(cleared.magic, LeaderMagic::PaxosClear);
    assert_eq!(cleared.write_timestamp, 2212);
    let ours = LeaderRecord::paxos_init(g512(), name("LS"), name("RC"), 0).cleared(2212);
    assert_eq!(leader_sector(&ours), bytes);
}

#[test]
fn live_delta_lease_of_a_c_daemon() {
    // Host 1 joined with io_timeout 1 and host name "host1"; the checksum covers 168 bytes.
    let bytes = golden!("delta_host1_live");
    let sector = DeltaSector::decode(bytes, 0).unwrap();
    let l = sector.leader;
    assert_eq!(l.owner_id, Some(host(1)));
    assert_eq!(l.owner_generation, Generation(1));
    assert_eq!(l.resource_name, name("host1"));
    assert_eq!(l.timestamp, 2240);
    assert_eq!(l.io_timeout, 1);
    assert_eq!((l.num_hosts, l.max_hosts, l.lver), (0, 1, Lver(0)));
    assert_eq!(l.event(), HostEvent::default());
    assert_eq!(sector.bitmap, HostBitmap::EMPTY);
    assert_eq!(sector.encode(), bytes);
}

#[test]
fn delta_lease_carrying_an_event_for_host_1() {
    // `client set_event -s LS -i 1 -e 77 -d 1234` on host 2 (ondisk.md §4.4): event in
    // write_generation/write_timestamp, host 1's bit at byte 256.
    let bytes = golden!("delta_host2_event");
    let sector = DeltaSector::decode(bytes, 512).unwrap();
    assert_eq!(sector.leader.owner_id, Some(host(2)));
    assert_eq!(sector.leader.resource_name, name("host2"));
    assert_eq!(
        sector.leader.event(),
        HostEvent {
            generation: 0,
            event: 77,
            data: 1234
        }
    );
    assert_eq!(sector.bitmap.hosts(2000).collect::<Vec<_>>(), vec![host(1)]);
    assert_eq!(bytes[256], 0x01);
    assert_eq!(sector.encode(), bytes);
}

#[test]
fn exclusive_hold_then_graceful_request_then_release() {
    // Host 1 held R0 at lver 1; host 2 asked for lver 2 GRACEFUL; host 1 stopped its holder
    // and released: leader timestamp 0, dblock RELEASED, request record left in place.
    let held = LeaderRecord::decode(golden!("paxos_ex_leader"), LeaderKind::Paxos, 0).unwrap();
    assert_eq!(held.owner_id, Some(host(1)));
    assert_eq!((held.lver, held.timestamp), (Lver(1), 2235));
    assert_eq!(
        (held.write_id, held.write_generation, held.write_timestamp),
        (1, 1, 2235)
    );
    assert!(!held.short_hold());
    assert_eq!(leader_sector(&held), golden!("paxos_ex_leader"));

    let dblock = DblockSector::decode(golden!("paxos_ex_dblock_host1"), 1024).unwrap();
    let ballot = PaxosDblock {
        mbal: Mbal(1),
        bal: Mbal(1),
        inp: 1,
        inp2: 1,
        inp3: 2235,
        lver: Lver(1),
        flags: 0,
    };
    assert_eq!(dblock.dblock, ballot);
    assert_eq!(dblock.mode, ModeBlock::default());
    assert_eq!(
        dblock.encode(SectorSize::Bytes512),
        golden!("paxos_ex_dblock_host1")
    );

    let released =
        LeaderRecord::decode(golden!("paxos_released_leader"), LeaderKind::Paxos, 0).unwrap();
    assert_eq!(released.timestamp, 0);
    assert_eq!(released.owner_id, Some(host(1)), "the last owner is kept");
    assert_eq!(released.write_timestamp, 2243);
    let rel_dblock = DblockSector::decode(golden!("paxos_released_dblock_host1"), 1024).unwrap();
    assert!(rel_dblock.dblock.released());
    assert_eq!(
        rel_dblock.dblock.to_raw().checksum,
        ballot.to_raw().checksum
    );

    let request = RequestRecord::decode(golden!("paxos_request_graceful"), 512).unwrap();
    assert_eq!(
        (request.lver, request.force_mode),
        (Lver(2), ForceMode::Graceful)
    );
    assert_eq!(
        &request.encode()[..],
        &golden!("paxos_request_graceful")[..24]
    );
}

#[test]
fn shared_holders_write_mode_blocks() {
    // Hosts 1 and 2 hold R1 shared: host 2 committed lver 2 last (mbal 2002 ≡ 2 mod 2000);
    // the leader's SHORT_HOLD is cleared and both mode blocks say SHARED, generation 1.
    let leader =
        LeaderRecord::decode(golden!("paxos_sh_leader"), LeaderKind::Paxos, 1 << 20).unwrap();
    assert_eq!(
        (leader.owner_id, leader.lver, leader.timestamp),
        (Some(host(2)), Lver(2), 0)
    );
    assert_eq!(leader.flags, AlignSize::Align1M.leader_flag());
    let host1 = DblockSector::decode(golden!("paxos_sh_dblock_host1"), 0).unwrap();
    let host2 = DblockSector::decode(golden!("paxos_sh_dblock_host2"), 0).unwrap();
    for (sector, bytes) in [
        (host1, &golden!("paxos_sh_dblock_host1")[..]),
        (host2, &golden!("paxos_sh_dblock_host2")[..]),
    ] {
        assert_eq!(
            sector.mode,
            ModeBlock {
                shared: true,
                generation: Generation(1)
            }
        );
        assert!(sector.dblock.released());
        assert_eq!(sector.encode(SectorSize::Bytes512), bytes);
    }
    assert_eq!(host2.dblock.mbal, Mbal(2002));
    assert_eq!(host2.dblock.mbal.0 % 2000, 2);
    assert_eq!((host2.dblock.inp, host2.dblock.lver), (2, Lver(2)));
}

#[test]
fn rindex_header_and_entries() {
    // `direct format -x LS:f:0`, then `direct update … -e vmlease1:2M` and `-e vmlease2:3M`.
    let header = RindexHeader::decode(golden!("rindex_header"), 0).unwrap();
    let expected = RindexHeader::format(g512(), name("LS"), 0, 0);
    assert_eq!(header, expected);
    assert_eq!(header.max_resources, 4096);
    let mut sector = vec![0u8; 512];
    sector[..80].copy_from_slice(&expected.encode());
    assert_eq!(sector, golden!("rindex_header"));

    let entries = golden!("rindex_entries");
    let decoded: Vec<RindexEntry> = entries
        .chunks_exact(RINDEX_ENTRY_SIZE)
        .map(|e| RindexEntry::decode(e, 512).unwrap())
        .collect();
    assert_eq!(decoded[0].name, name("vmlease1"));
    assert_eq!(decoded[0].res_offset, 2 << 20);
    assert_eq!(decoded[1].name, name("vmlease2"));
    assert_eq!(decoded[1].res_offset, 3 << 20);
    assert!(decoded[2..].iter().all(RindexEntry::is_free));
    let again: Vec<u8> = decoded.iter().flat_map(|e| e.encode()).collect();
    assert_eq!(again, entries);
}
