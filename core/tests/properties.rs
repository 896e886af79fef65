//! Property tests of the codec: every record round-trips, decoding arbitrary bytes never
//! panics, and a single flipped bit in a checksummed range is always rejected.

use proptest::prelude::*;

use sanlock_core::fuzzing::decode_sector;
use sanlock_core::ondisk::{
    DblockSector, DeltaSector, ForceMode, Geometry, HostBitmap, HostEvent, LeaderKind,
    LeaderRecord, Mbal, ModeBlock, Name, PaxosDblock, RequestRecord, RindexEntry, RindexHeader,
    SectorSize,
};
use sanlock_core::{Generation, HostId, Lver};

fn geometry() -> impl Strategy<Value = Geometry> {
    prop::sample::select(Geometry::ALL.to_vec())
}

fn name() -> impl Strategy<Value = Name> {
    prop::collection::vec(1u8..=255, 0..=48).prop_map(|b| Name::new(&b).unwrap())
}

fn host_id() -> impl Strategy<Value = Option<HostId>> {
    prop::option::of((1u64..=2000).prop_map(|h| HostId::new(h).unwrap()))
}

prop_compose! {
    fn delta_leader()(
        g in geometry(), space in name(), host_name in name(), owner in host_id(),
        generation in any::<u64>(), timestamp in any::<u64>(), io_timeout in any::<u16>(),
        event in any::<(u64, u64, u64)>(),
    ) -> LeaderRecord {
        let mut l = LeaderRecord::delta_init(g, space, io_timeout);
        l.resource_name = host_name;
        l.owner_id = owner;
        l.owner_generation = Generation(generation);
        l.timestamp = timestamp;
        l.set_event(HostEvent { generation: event.0, event: event.1, data: event.2 });
        l
    }
}

prop_compose! {
    fn paxos_leader()(
        g in geometry(), space in name(), res in name(), num in any::<u64>(),
        owner in host_id(), generation in any::<u64>(), lver in any::<u64>(),
        timestamp in any::<u64>(), short_hold in any::<bool>(),
        writer in any::<(u64, u64, u64)>(), clear in prop::option::of(any::<u64>()),
    ) -> LeaderRecord {
        let mut l = LeaderRecord::paxos_init(g, space, res, num);
        l.owner_id = owner;
        l.owner_generation = Generation(generation);
        l.lver = Lver(lver);
        l.timestamp = timestamp;
        if short_hold {
            l.flags |= 1;
        }
        (l.write_id, l.write_generation, l.write_timestamp) = writer;
        match clear {
            Some(now) => l.cleared(now),
            None => l,
        }
    }
}

prop_compose! {
    fn dblock()(v in any::<(u64, u64, u64, u64, u64, u64)>(), flags in any::<u32>()) -> PaxosDblock {
        PaxosDblock {
            mbal: Mbal(v.0), bal: Mbal(v.1), inp: v.2, inp2: v.3, inp3: v.4, lver: Lver(v.5), flags,
        }
    }
}

fn bitmap() -> impl Strategy<Value = HostBitmap> {
    prop::collection::vec(1u64..=2000, 0..20).prop_map(|hosts| {
        let mut b = HostBitmap::EMPTY;
        for h in hosts {
            b.set(HostId::new(h).unwrap());
        }
        b
    })
}

proptest! {
    #[test]
    fn delta_sectors_round_trip(leader in delta_leader(), bitmap in bitmap()) {
        let sector = DeltaSector { leader, bitmap, mailbox: None };
        let bytes = sector.encode();
        prop_assert_eq!(bytes.len(), leader.sector_size().as_usize());
        prop_assert_eq!(DeltaSector::decode(&bytes, 0).unwrap(), sector);
    }

    #[test]
    fn paxos_leaders_round_trip(leader in paxos_leader()) {
        let bytes = leader.encode();
        let decoded = match leader.magic {
            sanlock_core::ondisk::LeaderMagic::PaxosClear => {
                sanlock_core::ondisk::RawLeader::parse(&bytes).unwrap().verify_cleared().unwrap()
            }
            _ => LeaderRecord::decode(&bytes, LeaderKind::Paxos, 0).unwrap(),
        };
        prop_assert_eq!(decoded, leader);
    }

    #[test]
    fn dblock_sectors_round_trip(d in dblock(), shared in any::<bool>(), generation in any::<u64>(),
                                 four_k in any::<bool>()) {
        let ss = if four_k { SectorSize::Bytes4096 } else { SectorSize::Bytes512 };
        let sector = DblockSector { dblock: d, mode: ModeBlock { shared, generation: Generation(generation) } };
        let bytes = sector.encode(ss);
        prop_assert_eq!(DblockSector::decode(&bytes, 0).unwrap(), sector);
    }

    #[test]
    fn requests_and_rindex_records_round_trip(
        lver in any::<u64>(), mode in 0u32..3, g in geometry(), space in name(),
        max in any::<u32>(), rx in any::<u64>(), res_offset in any::<u64>(), entry_name in name(),
    ) {
        let req = RequestRecord { version: 0x0001_0001, lver: Lver(lver), force_mode: ForceMode::from_value(mode).unwrap() };
        prop_assert_eq!(RequestRecord::decode(&req.encode(), 0).unwrap(), req);
        let header = RindexHeader::format(g, space, max, rx);
        prop_assert_eq!(RindexHeader::decode(&header.encode(), 0).unwrap(), header);
        let entry = RindexEntry { res_offset, flags: 0, unused: 0, name: entry_name };
        prop_assert_eq!(RindexEntry::decode(&entry.encode(), 0).unwrap(), entry);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4200)) {
        decode_sector(&bytes);
    }

    #[test]
    fn decoding_mutated_valid_sectors_never_panics(leader in paxos_leader(), at in 0usize..200, byte in any::<u8>()) {
        let mut bytes = leader.encode().to_vec();
        bytes.resize(512, 0);
        bytes[at] = byte;
        decode_sector(&bytes);
    }

    #[test]
    fn one_flipped_bit_in_a_leaders_checksummed_bytes_is_rejected(
        leader in prop_oneof![delta_leader(), paxos_leader()], bit in 0usize..168 * 8,
    ) {
        let kind = match leader.magic {
            sanlock_core::ondisk::LeaderMagic::Delta => LeaderKind::Delta,
            _ => LeaderKind::Paxos,
        };
        let mut bytes = leader.encode();
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(LeaderRecord::decode(&bytes, kind, 0).is_err());
        let raw = sanlock_core::ondisk::RawLeader::parse(&bytes).unwrap();
        prop_assert_ne!(raw.checksum, raw.computed_checksum());
    }

    #[test]
    fn one_flipped_bit_in_a_dblocks_checksummed_bytes_is_rejected(d in dblock(), bit in 0usize..48 * 8) {
        let mut bytes = d.encode();
        // A dblock whose checksum happens to be 0 could turn into the "never written" form.
        prop_assume!(d.to_raw().checksum != 0);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(PaxosDblock::decode(&bytes, 0).is_err());
    }
}
