//! sanlock 3.8.5's on-disk records, byte for byte (`shared/spec/ondisk.md`).
//!
//! Every record has a raw view (all fields as read, for tools that print whatever is there) and
//! a decoded view that a lease algorithm can trust. Decoding checks magic, version, checksum,
//! geometry and ranges and names the record and offset when it refuses; encoding always writes
//! the checksum sanlock would. Multi-byte integers are little-endian on every host.
//!
//! | record | where | module |
//! | --- | --- | --- |
//! | leader_record (delta and paxos) | delta: sector N−1 of the lockspace; paxos: sector 0 | [`leader`] |
//! | host_id bitmap | byte 256 of a delta sector | [`bitmap`] |
//! | mailbox block (our extension: message out, acks) | byte 200 of a delta sector | [`mailbox`] |
//! | request_record | sector 1 of a resource | [`request`] |
//! | paxos_dblock + mode_block | sector N+1 of a resource (mode block at byte 128) | [`dblock`] |
//! | LVB | sector 2002 of a resource | [`lvb`] |
//! | message record (our extension: cluster messaging) | the LVB of an area's MESSAGE lease | [`message_lvb`] |
//! | rindex header and entries | sector 0 and on of an rindex area | [`rindex`] |

pub mod bitmap;
pub mod checksum;
pub mod dblock;
pub mod error;
pub mod geometry;
pub mod init;
pub mod leader;
pub mod lvb;
pub mod mailbox;
pub mod message_lvb;
pub mod name;
pub mod request;
pub mod rindex;

pub use bitmap::{DeltaSector, HostBitmap};
pub use checksum::sanlock_crc32c;
pub use dblock::{DblockSector, Mbal, ModeBlock, PaxosDblock, RawDblock, RawModeBlock};
pub use error::{DecodeError, Problem, RecordKind};
pub use geometry::{AlignSize, Geometry, GeometryError, SectorNr, SectorSize};
pub use init::{lockspace_init, resource_init, LockspaceInit, ResourceInit};
pub use leader::{HostEvent, LeaderKind, LeaderMagic, LeaderRecord, RawLeader};
pub use lvb::Lvb;
pub use mailbox::{Ack, MailboxBlock, Outgoing};
pub use name::{Name, NameTooLong, NAME_LEN};
pub use request::{ForceMode, RawRequest, RequestRecord};
pub use rindex::{RawRindexHeader, RindexEntry, RindexHeader};
