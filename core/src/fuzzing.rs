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
