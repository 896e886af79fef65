//! Cluster messaging (docs/MESSAGING.md), on disk: the record a sender leaves in the LVB of a
//! messaging area's MESSAGE lease, and where the area's leases and data slots lie. An LVB is
//! raw application bytes to sanlock (ondisk.md §5.6), so a C daemon stores and returns this
//! record unchanged.
//!
//! | bytes | field |
//! | ---: | --- |
//! | 0..4 | magic "MSG1" |
//! | 4..8 | CRC-32C (sanlock's) of bytes 8 .. 40 + the inline payload |
//! | 8..16 | message number (the first message is 1) |
//! | 16..20 | sender host_id |
//! | 20..24 | low 32 bits of the sender's generation |
//! | 24..28 | payload length in bytes |
//! | 28..32 | where the payload is: 0 inline (from byte 40), 1 or 2 data slot 0 or 1 |
//! | 32..36 | CRC-32C of the payload |
//! | 36..40 | zero |
//!
//! All little-endian. An LVB never written reads as zeros: no message yet (number 0).
//!
//! The ACK lease's LVB holds a record of the same layout with no payload: the number of the
//! latest message whose round is complete (every member processed it and the sender, or the
//! next TOKEN holder, had ACK EX), and who completed it.

use super::checksum::sanlock_crc32c;
use super::geometry::Geometry;
use crate::ids::HostId;

/// "MSG1".
pub const MESSAGE_LVB_MAGIC: [u8; 4] = *b"MSG1";
/// Bytes before an inline payload.
pub const MESSAGE_LVB_HEADER: usize = 40;

/// Where a message's payload lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    /// In the LVB itself, after the header.
    Inline,
    /// In data slot 0 or 1 of the area.
    Slot(u8),
}

/// A decoded MESSAGE LVB: the latest message a sender published.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageRecord {
    /// Its number: one more than the message before it.
    pub seq: u64,
    /// Who sent it.
    pub from: HostId,
    /// Low 32 bits of the sender's generation.
    pub from_generation: u32,
    /// Payload length.
    pub len: u32,
    /// Where the payload is.
    pub place: Place,
    /// CRC-32C of the payload.
    pub payload_crc: u32,
    /// The payload when inline, else empty.
    pub inline: Vec<u8>,
}

/// Why an LVB is not a message record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageLvbError {
    /// Something else wrote this LVB.
    #[error("MESSAGE LVB magic {found:02x?} is not \"MSG1\"")]
    Magic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// Torn, corrupted or partly written.
    #[error("MESSAGE LVB checksum {found:#010x}, computed {computed:#010x}")]
    Checksum {
        /// On disk.
        found: u32,
        /// Over what was read.
        computed: u32,
    },
    /// A field out of range (sector too short for the inline payload, unknown place, host_id 0).
    #[error("MESSAGE LVB field {field} is {value}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

impl MessageRecord {
    /// The record in an LVB as read (a whole sector, or any longer prefix of one): `None` for
    /// an LVB never written (the first bytes all zero).
    pub fn decode(lvb: &[u8]) -> Result<Option<Self>, MessageLvbError> {
        if lvb.len() < MESSAGE_LVB_HEADER {
            return Err(MessageLvbError::Field {
                field: "length",
                value: lvb.len() as u64,
            });
        }
        if lvb[..MESSAGE_LVB_HEADER].iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let magic: [u8; 4] = lvb[..4].try_into().expect("4 bytes");
        if magic != MESSAGE_LVB_MAGIC {
            return Err(MessageLvbError::Magic { found: magic });
        }
        let len = u32_at(lvb, 24);
        let place = match u32_at(lvb, 28) {
            0 => Place::Inline,
            1 => Place::Slot(0),
            2 => Place::Slot(1),
            other => {
                return Err(MessageLvbError::Field {
                    field: "place",
                    value: u64::from(other),
                })
            }
        };
        let end = match place {
            Place::Inline => MESSAGE_LVB_HEADER + len as usize,
            Place::Slot(_) => MESSAGE_LVB_HEADER,
        };
        if end > lvb.len() {
            return Err(MessageLvbError::Field {
                field: "inline length",
                value: u64::from(len),
            });
        }
        let computed = sanlock_crc32c(&lvb[8..end]);
        let found = u32_at(lvb, 4);
        if found != computed {
            return Err(MessageLvbError::Checksum { found, computed });
        }
        if u32_at(lvb, 36) != 0 {
            return Err(MessageLvbError::Field {
                field: "reserved",
                value: u64::from(u32_at(lvb, 36)),
            });
        }
        let host = u32_at(lvb, 16);
        let from = HostId::new(u64::from(host)).ok_or(MessageLvbError::Field {
            field: "host_id",
            value: u64::from(host),
        })?;
        Ok(Some(MessageRecord {
            seq: u64::from_le_bytes(lvb[8..16].try_into().expect("8 bytes")),
            from,
            from_generation: u32_at(lvb, 20),
            len,
            place,
            payload_crc: u32_at(lvb, 32),
            inline: lvb[MESSAGE_LVB_HEADER..end].to_vec(),
        }))
    }

    /// The bytes to hand to set_lvb: header and inline payload, no padding.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; MESSAGE_LVB_HEADER];
        b[..4].copy_from_slice(&MESSAGE_LVB_MAGIC);
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..20].copy_from_slice(&(self.from.get() as u32).to_le_bytes());
        b[20..24].copy_from_slice(&self.from_generation.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        let place: u32 = match self.place {
            Place::Inline => 0,
            Place::Slot(s) => 1 + u32::from(s),
        };
        b[28..32].copy_from_slice(&place.to_le_bytes());
        b[32..36].copy_from_slice(&self.payload_crc.to_le_bytes());
        if self.place == Place::Inline {
            b.extend_from_slice(&self.inline);
        }
        let crc = sanlock_crc32c(&b[8..]);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// One of the area's three leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MsgLease {
    /// One sender at a time: held EX for a whole send.
    Token,
    /// Carries the message in its LVB: EX to write, SH to read.
    Message,
    /// Every member holds it SH; a sender's EX means every member has processed.
    Ack,
}

impl MsgLease {
    /// All three, in the area's order.
    pub const ALL: [MsgLease; 3] = [MsgLease::Token, MsgLease::Message, MsgLease::Ack];

    /// The resource name `sanlock msg init` gives it.
    pub fn resource_name(self) -> &'static str {
        match self {
            MsgLease::Token => "msg_token",
            MsgLease::Message => "msg_message",
            MsgLease::Ack => "msg_ack",
        }
    }
}

/// A messaging area: TOKEN, MESSAGE and ACK leases one lease-size apart, then one lease-size
/// of data split into two slots, at `offset` of one disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessagingArea {
    /// Where TOKEN starts (a multiple of the lease size).
    pub offset: u64,
    /// The leases' geometry.
    pub geometry: Geometry,
}

/// A geometry whose LVB sector lies outside its lease (4K sectors below 8M alignment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a messaging area needs the LVB inside each lease; {0} puts it outside")]
pub struct LvbOutsideLease(pub Geometry);

impl MessagingArea {
    /// The area at `offset` with `geometry`.
    pub fn new(offset: u64, geometry: Geometry) -> Result<Self, LvbOutsideLease> {
        if !geometry.lvb_inside_area() {
            return Err(LvbOutsideLease(geometry));
        }
        Ok(MessagingArea { offset, geometry })
    }

    /// One lease's size.
    pub fn lease_len(&self) -> u64 {
        self.geometry.area_bytes()
    }

    /// Where `lease` starts.
    pub fn lease_offset(&self, lease: MsgLease) -> u64 {
        let i = match lease {
            MsgLease::Token => 0,
            MsgLease::Message => 1,
            MsgLease::Ack => 2,
        };
        self.offset + i * self.lease_len()
    }

    /// The MESSAGE lease's LVB sector.
    pub fn message_lvb_offset(&self) -> u64 {
        self.lvb_offset(MsgLease::Message)
    }

    /// A lease's LVB sector (MESSAGE: the latest message; ACK: the latest completed round).
    pub fn lvb_offset(&self, lease: MsgLease) -> u64 {
        self.lease_offset(lease) + self.geometry.sector_offset(self.geometry.lvb_sector())
    }

    /// Where data slot `slot` (0 or 1) starts.
    pub fn slot_offset(&self, slot: u8) -> u64 {
        self.offset + 3 * self.lease_len() + u64::from(slot) * self.slot_len()
    }

    /// A data slot's size: the largest payload it holds.
    pub fn slot_len(&self) -> u64 {
        self.lease_len() / 2
    }

    /// The largest payload carried inline in the LVB.
    pub fn inline_max(&self) -> usize {
        self.geometry.sector_size().as_usize() - MESSAGE_LVB_HEADER
    }

    /// Bytes to read or write for a payload of `len` in a slot: whole sectors.
    pub fn slot_io_len(&self, len: usize) -> usize {
        let ss = self.geometry.sector_size().as_usize();
        len.div_ceil(ss).max(1) * ss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(place: Place, inline: &[u8]) -> MessageRecord {
        MessageRecord {
            seq: 7,
            from: HostId::new(2).unwrap(),
            from_generation: 3,
            len: if place == Place::Inline {
                inline.len() as u32
            } else {
                100_000
            },
            place,
            payload_crc: 0xAABB_CCDD,
            inline: inline.to_vec(),
        }
    }

    #[test]
    fn golden_bytes_of_an_inline_record() {
        let b = record(Place::Inline, b"hi").encode();
        assert_eq!(b.len(), 42);
        assert_eq!(&b[..4], b"MSG1");
        assert_eq!(&b[8..16], &7u64.to_le_bytes());
        assert_eq!(&b[16..20], &[2, 0, 0, 0]);
        assert_eq!(&b[24..32], &[2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[40..], b"hi");
        assert_eq!(
            u32::from_le_bytes(b[4..8].try_into().unwrap()),
            sanlock_crc32c(&b[8..])
        );
    }

    #[test]
    fn a_record_reads_back_from_a_zero_padded_sector() {
        for r in [record(Place::Inline, b"hello"), record(Place::Slot(1), b"")] {
            let mut sector = r.encode();
            sector.resize(512, 0);
            assert_eq!(MessageRecord::decode(&sector), Ok(Some(r)));
        }
    }

    #[test]
    fn zeros_are_no_message_and_damage_is_refused() {
        assert_eq!(MessageRecord::decode(&[0u8; 512]), Ok(None));
        let mut sector = record(Place::Inline, b"hello").encode();
        sector.resize(512, 0);
        let mut torn = sector.clone();
        torn[41] ^= 1;
        assert!(matches!(
            MessageRecord::decode(&torn),
            Err(MessageLvbError::Checksum { .. })
        ));
        let mut foreign = sector.clone();
        foreign[0] = b'X';
        assert!(matches!(
            MessageRecord::decode(&foreign),
            Err(MessageLvbError::Magic { .. })
        ));
        let mut long = sector;
        long[24..28].copy_from_slice(&600u32.to_le_bytes());
        assert!(matches!(
            MessageRecord::decode(&long),
            Err(MessageLvbError::Field { .. })
        ));
    }

    #[test]
    fn records_round_trip_through_the_fuzz_entry_point_and_reserved_bytes_are_refused() {
        for r in [record(Place::Inline, b"hello"), record(Place::Slot(0), b"")] {
            let mut sector = r.encode();
            sector.resize(512, 0);
            crate::fuzzing::decode_sector(&sector);
            let mut odd = r.encode();
            odd[36] = 1;
            let crc = sanlock_crc32c(&odd[8..]);
            odd[4..8].copy_from_slice(&crc.to_le_bytes());
            assert!(matches!(
                MessageRecord::decode(&odd),
                Err(MessageLvbError::Field {
                    field: "reserved",
                    ..
                })
            ));
        }
    }

    #[test]
    fn the_area_is_three_leases_then_two_slots() {
        let a = MessagingArea::new(
            1 << 20,
            Geometry::legacy(super::super::SectorSize::Bytes512),
        )
        .unwrap();
        assert_eq!(a.lease_offset(MsgLease::Token), 1 << 20);
        assert_eq!(a.lease_offset(MsgLease::Ack), 3 << 20);
        assert_eq!(a.message_lvb_offset(), (2 << 20) + 2002 * 512);
        assert_eq!(a.slot_offset(0), 4 << 20);
        assert_eq!(a.slot_offset(1), (4 << 20) + (512 << 10));
        assert_eq!(
            a.slot_offset(1) + a.slot_len(),
            (1 << 20) + (4 << 20),
            "4 leases long"
        );
        assert_eq!(a.inline_max(), 472);
        assert_eq!(a.slot_io_len(0), 512);
        assert_eq!(a.slot_io_len(513), 1024);
    }
}
