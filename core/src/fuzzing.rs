//! Entry points for fuzz targets and for the test that replays their corpus: decode any bytes
//! as every record kind without panicking, and re-encode whatever decodes to the same bytes.

use crate::ondisk::{
    DblockSector, DeltaSector, LeaderKind, LeaderRecord, ModeBlock, PaxosDblock, RawDblock,
    RawLeader, RequestRecord, RindexEntry, RindexHeader,
};

/// Decodes `data` as every on-disk record kind. Panics only when a record that decoded does
/// not re-encode to the bytes it came from: that is a codec bug.
pub fn decode_sector(data: &[u8]) {
    for kind in [LeaderKind::Delta, LeaderKind::Paxos] {
        if let Ok(leader) = LeaderRecord::decode(data, kind, 0) {
            assert_eq!(&leader.encode()[..], &data[..200], "leader round trip");
        }
    }
    if let Ok(raw) = RawLeader::parse(data) {
        assert_eq!(&raw.to_bytes()[..], &data[..200], "raw leader round trip");
        if let Ok(cleared) = raw.verify_cleared() {
            assert_eq!(
                &cleared.encode()[..],
                &data[..200],
                "cleared leader round trip"
            );
        }
    }
    if let Ok(sector) = DeltaSector::decode(data, 0) {
        let again = DeltaSector::decode(&sector.encode(), 0).expect("re-encoded delta sector");
        assert_eq!(again, sector);
    }
    if let Ok(request) = RequestRecord::decode(data, 0) {
        assert_eq!(&request.encode()[..20], &data[..20], "request round trip");
    }
    if let Ok(dblock) = PaxosDblock::decode(data, 0) {
        let raw = RawDblock::parse(data).expect("decoded, so long enough");
        if !raw.is_unwritten() {
            assert_eq!(&dblock.encode()[..], &data[..56], "dblock round trip");
        }
    }
    if let Ok(mode) = ModeBlock::decode(data, 0) {
        assert_eq!(
            &mode.encode()[..4],
            &data[..4],
            "mode block flags round trip"
        );
        assert_eq!(
            &mode.encode()[8..],
            &data[8..16],
            "mode block generation round trip"
        );
    }
    if let Ok(sector) = DblockSector::decode(data, 0) {
        let ss = crate::ondisk::SectorSize::Bytes512;
        let again = DblockSector::decode(&sector.encode(ss), 0).expect("re-encoded dblock sector");
        assert_eq!(again, sector);
    }
    if let Ok(Some(rec)) = crate::ondisk::message_lvb::MessageRecord::decode(data) {
        let bytes = rec.encode();
        assert_eq!(
            &bytes[..],
            &data[..bytes.len()],
            "message record round trip"
        );
    }
    if let Ok(header) = RindexHeader::decode(data, 0) {
        let again = RindexHeader::decode(&header.encode(), 0).expect("re-encoded header");
        assert_eq!(again, header);
    }
    if let Ok(entry) = RindexEntry::decode(data, 0) {
        assert_eq!(&entry.encode()[..], &data[..64], "rindex entry round trip");
    }
}

/// Decodes `data` as a rindex header and, when it decodes, runs the index's searches and its
/// entry update over an area made of the bytes after it (the entries the header's searches
/// reach; zeros where `data` runs out), as the daemon runs them over the area it read. Then
/// decodes `data` as an LVB sector and as the message record an LVB carries. Panics when a
/// search or an update breaks what it promises.
pub fn rindex_lvb(data: &[u8]) {
    use crate::ondisk::{Lvb, Name, SectorSize, NAME_LEN};

    if let Ok(header) = RindexHeader::decode(data, 0) {
        // Where the daemon read the header: a header naming another offset is refused.
        let header = RindexHeader {
            rx_offset: 0,
            ..header
        };
        let ss = header.geometry.sector_size().as_usize();
        let searched = header.searched();
        let len = (ss + searched as usize * 64).div_ceil(ss) * ss;
        assert!(
            len as u64 <= header.geometry.area_bytes(),
            "entries fit the area"
        );
        let mut area = vec![0u8; len];
        let from = data.get(ss..).unwrap_or_default();
        let n = from.len().min(len - ss);
        area[ss..ss + n].copy_from_slice(&from[..n]);

        if let Some(i) = header.find_free(&area) {
            assert!(i < searched && header.entry(&area, i).is_free());
        }
        let tail = data
            .get(data.len().saturating_sub(NAME_LEN)..)
            .unwrap_or_default();
        let name = Name::truncated(tail);
        if let Some(i) = header.find_name(&area, &name) {
            assert!(header.entry(&area, i).name.matches(&name));
        }
        let at = data
            .get(80..88)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        if let Some(i) = header.index_of_lease(at) {
            assert_eq!(header.lease_offset(i), at, "lease offset round trip");
        }
        let i = (at % u64::from(searched.max(1))) as u32;
        let entry = RindexEntry {
            res_offset: header.lease_offset(i),
            flags: 0,
            unused: 0,
            name,
        };
        let (offset, sector) = header.sector_with(&area, i, &entry);
        assert_eq!(sector.len(), ss, "one sector written");
        assert_eq!(offset % ss as u64, 0, "written at a sector boundary");
        assert!(offset >= ss as u64, "the header's sector is never written");
        // The sector written is the area's, with entry i's bytes replaced and no others.
        let start = offset as usize;
        let at = (header.entry_offset(i) - header.rx_offset) as usize - start;
        assert_eq!(
            &sector[at..at + 64],
            &entry.encode()[..],
            "the entry written"
        );
        assert_eq!(
            &sector[..at],
            &area[start..start + at],
            "bytes before it kept"
        );
        assert_eq!(
            &sector[at + 64..],
            &area[start + at + 64..start + ss],
            "bytes after it kept"
        );
    }

    for ss in [SectorSize::Bytes512, SectorSize::Bytes4096] {
        let sector = &data[..data.len().min(ss.as_usize())];
        let read = Lvb::from_sector(sector);
        assert_eq!(read.bytes(), sector);
        match Lvb::new(sector, ss) {
            Ok(lvb) => assert_eq!(&lvb.encode(ss)[..sector.len()], sector),
            Err(e) => panic!("a sector's bytes did not fit its sector: {e}"),
        }
    }
    if let Ok(Some(rec)) = crate::ondisk::message_lvb::MessageRecord::decode(data) {
        let bytes = rec.encode();
        let again = crate::ondisk::message_lvb::MessageRecord::decode(&bytes);
        assert_eq!(again, Ok(Some(rec)), "message record round trip");
    }
}
