//! The mailbox block: our extension in bytes 200..256 of a host's own delta sector, between
//! the leader record (0..200) and the host bitmap (256..512). sanlock 3.8.5 writes these bytes
//! as zero when it writes its own sector and never reads them in another host's (it checks the
//! leader's checksum over bytes 0..168 and the bitmap bits only), so a C host and ours share a
//! lockspace unchanged (docs/MESSAGES.md; tests/daemon_messages.rs shows it with a C host).
//!
//! | bytes | field |
//! | ---: | --- |
//! | 200..204 | magic `0x314B4341` ("ACK1"): this host acknowledges messages |
//! | 204..208 | checksum: sanlock's CRC-32C of bytes 208..256 |
//! | 208..210 | target host_id of the message we are sending (0: none) |
//! | 210..212 | zero |
//! | 212..216 | that message's sequence number |
//! | 216..256 | four acks of 10 bytes: sender host_id (u16), the low 32 bits of the sender's generation, the message's sequence number (u32); all zero when free |
//!
//! All little-endian. A block whose magic, checksum or fields are wrong decodes as no block:
//! the host is then one that does not acknowledge (a C host, or ours before this layout).

use super::checksum::sanlock_crc32c;
use crate::ids::{Generation, HostId, MessageSeq};

/// Where the block starts in a delta sector.
pub const MAILBOX_OFFSET: usize = 200;
/// Its length: up to the bitmap.
pub const MAILBOX_LEN: usize = 56;
/// "ACK1" as little-endian bytes.
pub const MAILBOX_MAGIC: u32 = 0x314B_4341;
/// Acks a block holds at once; more senders wait for a slot (never evicting one).
pub const ACK_SLOTS: usize = 4;
const ACK_LEN: usize = 10;
const ACKS_AT: usize = 16;

/// The message a host is sending: to whom and its number. Its content is the sanlock event
/// carried by the same sector's leader (write_id, write_generation, write_timestamp).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Outgoing {
    /// The target host_id.
    pub target: HostId,
    /// The sender's number for it.
    pub seq: MessageSeq,
}

/// An acknowledgement: the receiver delivered message `seq` of sender `from` in its
/// generation `from_generation` (low 32 bits: a generation grows by one per join).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The sender's host_id.
    pub from: HostId,
    /// The low 32 bits of the sender's generation when it sent.
    pub from_generation: u32,
    /// The message's number.
    pub seq: MessageSeq,
}

impl Ack {
    /// The ack of message `seq` of `from` in `generation`.
    pub fn new(from: HostId, generation: Generation, seq: MessageSeq) -> Self {
        Ack {
            from,
            from_generation: generation.0 as u32,
            seq,
        }
    }

    /// Whether it acknowledges message `seq` of `from` in `generation`.
    pub fn matches(&self, from: HostId, generation: Generation, seq: MessageSeq) -> bool {
        *self == Ack::new(from, generation, seq)
    }
}

/// The decoded block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MailboxBlock {
    /// The message under way, if any.
    pub outgoing: Option<Outgoing>,
    /// The acks on disk, in their slots.
    pub acks: [Option<Ack>; ACK_SLOTS],
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl MailboxBlock {
    /// The block in a delta sector, or `None` when the sector has none (or a damaged one).
    pub fn decode(sector: &[u8]) -> Option<Self> {
        let b = sector.get(MAILBOX_OFFSET..MAILBOX_OFFSET + MAILBOX_LEN)?;
        if u32_at(b, 0) != MAILBOX_MAGIC || u32_at(b, 4) != sanlock_crc32c(&b[8..]) {
            return None;
        }
        if u16_at(b, 10) != 0 {
            return None;
        }
        let target = u16_at(b, 8);
        let seq = MessageSeq(u32_at(b, 12));
        let outgoing = match (target, seq.0) {
            (0, 0) => None,
            (t, s) if s != 0 => Some(Outgoing {
                target: HostId::new(u64::from(t))?,
                seq,
            }),
            _ => return None,
        };
        let mut acks = [None; ACK_SLOTS];
        for (i, slot) in acks.iter_mut().enumerate() {
            let e = &b[ACKS_AT + i * ACK_LEN..ACKS_AT + (i + 1) * ACK_LEN];
            if e.iter().all(|&x| x == 0) {
                continue;
            }
            let seq = MessageSeq(u32_at(e, 6));
            if seq.0 == 0 {
                return None;
            }
            *slot = Some(Ack {
                from: HostId::new(u64::from(u16_at(e, 0)))?,
                from_generation: u32_at(e, 2),
                seq,
            });
        }
        Some(MailboxBlock { outgoing, acks })
    }

    /// Writes the block into a delta sector (which must be at least 256 bytes).
    pub fn encode_into(&self, sector: &mut [u8]) {
        let b = &mut sector[MAILBOX_OFFSET..MAILBOX_OFFSET + MAILBOX_LEN];
        b.fill(0);
        b[0..4].copy_from_slice(&MAILBOX_MAGIC.to_le_bytes());
        if let Some(out) = self.outgoing {
            b[8..10].copy_from_slice(&(out.target.get() as u16).to_le_bytes());
            b[12..16].copy_from_slice(&out.seq.0.to_le_bytes());
        }
        for (i, ack) in self.acks.iter().enumerate() {
            let Some(ack) = ack else { continue };
            let e = &mut b[ACKS_AT + i * ACK_LEN..ACKS_AT + (i + 1) * ACK_LEN];
            e[0..2].copy_from_slice(&(ack.from.get() as u16).to_le_bytes());
            e[2..6].copy_from_slice(&ack.from_generation.to_le_bytes());
            e[6..10].copy_from_slice(&ack.seq.0.to_le_bytes());
        }
        let sum = sanlock_crc32c(&b[8..]);
        b[4..8].copy_from_slice(&sum.to_le_bytes());
    }

    /// Whether some slot acknowledges message `seq` of `from` in `generation`.
    pub fn acknowledges(&self, from: HostId, generation: Generation, seq: MessageSeq) -> bool {
        self.acks
            .iter()
            .flatten()
            .any(|a| a.matches(from, generation, seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(n: u64) -> HostId {
        HostId::new(n).unwrap()
    }

    #[test]
    fn golden_bytes_of_a_block_with_a_message_and_two_acks() {
        // docs/MESSAGES.md's example: host sends #7 to host 3; acks for host 1 gen 2 #5 and
        // host 2 gen 0x1_0000_0004 #9 (only the low 32 bits of a generation are kept).
        let block = MailboxBlock {
            outgoing: Some(Outgoing {
                target: host(3),
                seq: MessageSeq(7),
            }),
            acks: [
                Some(Ack::new(host(1), Generation(2), MessageSeq(5))),
                None,
                Some(Ack::new(host(2), Generation(0x1_0000_0004), MessageSeq(9))),
                None,
            ],
        };
        let mut sector = [0u8; 512];
        block.encode_into(&mut sector);
        let mut want = [0u8; 56];
        want[0..4].copy_from_slice(b"ACK1");
        want[8] = 3;
        want[12] = 7;
        want[16..26].copy_from_slice(&[1, 0, 2, 0, 0, 0, 5, 0, 0, 0]);
        want[36..46].copy_from_slice(&[2, 0, 4, 0, 0, 0, 9, 0, 0, 0]);
        let sum = sanlock_crc32c(&want[8..]);
        want[4..8].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(&sector[200..256], &want[..]);
        assert_eq!(
            &sector[200..208],
            &[0x41, 0x43, 0x4b, 0x31, 0x4f, 0x07, 0xa9, 0xbd]
        );
        assert!(sector[..200].iter().chain(&sector[256..]).all(|&b| b == 0));
        assert_eq!(MailboxBlock::decode(&sector), Some(block));
        assert!(block.acknowledges(host(2), Generation(4), MessageSeq(9)));
        assert!(!block.acknowledges(host(2), Generation(4), MessageSeq(8)));
    }

    #[test]
    fn an_empty_block_is_the_marker_alone() {
        let mut sector = [0u8; 512];
        MailboxBlock::default().encode_into(&mut sector);
        assert_eq!(&sector[200..204], b"ACK1");
        assert_eq!(MailboxBlock::decode(&sector), Some(MailboxBlock::default()));
    }

    #[test]
    fn zeros_a_wrong_checksum_or_bad_fields_are_no_block() {
        // What a C host writes there: zeros.
        assert_eq!(MailboxBlock::decode(&[0u8; 512]), None);
        let mut sector = [0u8; 512];
        MailboxBlock::default().encode_into(&mut sector);
        let mut bad = sector;
        bad[230] ^= 1;
        assert_eq!(MailboxBlock::decode(&bad), None, "checksum");
        // A target without a number, reseal so only the field is wrong.
        let mut bad = sector;
        bad[208] = 3;
        let sum = sanlock_crc32c(&bad[208..256]);
        bad[204..208].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(MailboxBlock::decode(&bad), None, "target without seq");
        // An ack from host 2001.
        let mut bad = sector;
        bad[216..218].copy_from_slice(&2001u16.to_le_bytes());
        bad[222] = 1;
        let sum = sanlock_crc32c(&bad[208..256]);
        bad[204..208].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(MailboxBlock::decode(&bad), None, "host_id out of range");
        assert_eq!(MailboxBlock::decode(&sector[..255]), None, "short");
    }
}
