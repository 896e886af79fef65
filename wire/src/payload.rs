//! The payload structs that follow a header (wire.md §2.3), in their LP64 C layout. Decoders
//! take exactly the struct's bytes and never fail: every byte pattern is some struct, and the
//! daemon judges the values. A path with no NUL in its 1024 bytes is cut at 1023, as if the
//! last byte were NUL (sanlock forces that for killpath strings; its disks would overrun).

use sanlock_core::ondisk::Name;

/// `sanlk_disk` size.
pub const DISK_LEN: usize = 1040;
/// `sanlk_resource` size (without its disks).
pub const RESOURCE_LEN: usize = 128;
/// `sanlk_lockspace` size.
pub const LOCKSPACE_LEN: usize = 1104;
/// `sanlk_options` size.
pub const OPTIONS_LEN: usize = 56;
/// `sanlk_host` size.
pub const HOST_LEN: usize = 32;
/// `sanlk_host_event` size.
pub const HOST_EVENT_LEN: usize = 32;
/// `sanlk_state` size: text follows at this offset.
pub const STATE_LEN: usize = 80;
/// The path field's size (SANLK_PATH_LEN).
pub const PATH_LEN: usize = 1024;
/// The most disks a resource may name (SANLK_MAX_DISKS).
pub const MAX_DISKS: u32 = 4;
/// The most resources one ACQUIRE or RELEASE names (SANLK_MAX_RESOURCES).
pub const MAX_RESOURCES: u32 = 8;
/// Each of KILLPATH's two fields, the program and its arguments, NUL-padded
/// (SANLK_HELPER_PATH_LEN, SANLK_HELPER_ARGS_LEN).
pub const KILLPATH_FIELD_LEN: usize = 128;

/// SANLK_RES_LVER.
pub const RES_LVER: u32 = 0x1;
/// SANLK_RES_NUM_HOSTS.
pub const RES_NUM_HOSTS: u32 = 0x2;
/// SANLK_RES_SHARED.
pub const RES_SHARED: u32 = 0x4;
/// SANLK_RES_PERSISTENT.
pub const RES_PERSISTENT: u32 = 0x8;
/// SANLK_LSF_ADD: in GET_LOCKSPACES, being added.
pub const LSF_ADD: u32 = 0x1;
/// SANLK_LSF_REM: in GET_LOCKSPACES, being removed.
pub const LSF_REM: u32 = 0x2;
/// The sector and align bits of lockspace and resource flags (ALIGN1M..SECTOR4K).
pub const SIZE_FLAGS: u32 = 0x3f0;

/// `sanlk_disk`: a path and a byte offset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct WireDisk {
    /// Up to the first NUL (at most 1023 bytes).
    pub path: Vec<u8>,
    /// Byte offset.
    pub offset: u64,
}

impl WireDisk {
    /// Decodes a 1040-byte disk.
    pub fn decode(b: &[u8]) -> Self {
        assert_eq!(b.len(), DISK_LEN);
        let field = &b[..PATH_LEN - 1];
        let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
        WireDisk {
            path: field[..end].to_vec(),
            offset: u64_at(b, PATH_LEN),
        }
    }

    /// Appends the 1040 bytes (pads zeroed).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + DISK_LEN, 0);
        let n = self.path.len().min(PATH_LEN - 1);
        out[start..start + n].copy_from_slice(&self.path[..n]);
        out[start + PATH_LEN..start + PATH_LEN + 8].copy_from_slice(&self.offset.to_le_bytes());
    }
}

/// `sanlk_resource` and, where the command sends them, its disks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct WireResource {
    /// The lockspace name.
    pub lockspace_name: Name,
    /// The resource name.
    pub name: Name,
    /// The lease version (with RES_LVER).
    pub lver: u64,
    /// Caller data.
    pub data64: u64,
    /// num_hosts with RES_NUM_HOSTS.
    pub data32: u32,
    /// SANLK_RES_*.
    pub flags: u32,
    /// As sent; `disks` holds them when they were read.
    pub num_disks: u32,
    /// The disks that followed, if any.
    pub disks: Vec<WireDisk>,
}

impl WireResource {
    /// Decodes the 128-byte struct; disks are read separately (their count is in it).
    pub fn decode(b: &[u8]) -> Self {
        assert_eq!(b.len(), RESOURCE_LEN);
        WireResource {
            lockspace_name: name_at(b, 0),
            name: name_at(b, 48),
            lver: u64_at(b, 96),
            data64: u64_at(b, 104),
            data32: u32_at(b, 112),
            flags: u32_at(b, 120),
            num_disks: u32_at(b, 124),
            disks: Vec::new(),
        }
    }

    /// Appends the struct, then its disks when `with_disks`.
    pub fn encode_into(&self, out: &mut Vec<u8>, with_disks: bool) {
        let start = out.len();
        out.resize(start + RESOURCE_LEN, 0);
        let b = &mut out[start..];
        b[..48].copy_from_slice(self.lockspace_name.field());
        b[48..96].copy_from_slice(self.name.field());
        b[96..104].copy_from_slice(&self.lver.to_le_bytes());
        b[104..112].copy_from_slice(&self.data64.to_le_bytes());
        b[112..116].copy_from_slice(&self.data32.to_le_bytes());
        b[120..124].copy_from_slice(&self.flags.to_le_bytes());
        b[124..128].copy_from_slice(&self.num_disks.to_le_bytes());
        if with_disks {
            for d in &self.disks {
                d.encode_into(out);
            }
        }
    }
}

/// `sanlk_lockspace`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct WireLockspace {
    /// The lockspace name.
    pub name: Name,
    /// Our host_id.
    pub host_id: u64,
    /// SANLK_LSF_*.
    pub flags: u32,
    /// Where its delta leases are.
    pub disk: WireDisk,
}

impl WireLockspace {
    /// Decodes 1104 bytes.
    pub fn decode(b: &[u8]) -> Self {
        assert_eq!(b.len(), LOCKSPACE_LEN);
        WireLockspace {
            name: name_at(b, 0),
            host_id: u64_at(b, 48),
            flags: u32_at(b, 56),
            disk: WireDisk::decode(&b[64..]),
        }
    }

    /// Appends 1104 bytes, padding zeroed (sanlock leaks stale bytes there; §2.3).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + 64, 0);
        out[start..start + 48].copy_from_slice(self.name.field());
        out[start + 48..start + 56].copy_from_slice(&self.host_id.to_le_bytes());
        out[start + 56..start + 60].copy_from_slice(&self.flags.to_le_bytes());
        self.disk.encode_into(out);
    }
}

/// `sanlk_options`: only the owner name is used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct WireOptions {
    /// Shown in `status` for the client.
    pub owner_name: Name,
}

impl WireOptions {
    /// Decodes 56 bytes.
    pub fn decode(b: &[u8]) -> Self {
        assert_eq!(b.len(), OPTIONS_LEN);
        WireOptions {
            owner_name: name_at(b, 0),
        }
    }

    /// Appends 56 bytes.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + OPTIONS_LEN, 0);
        out[start..start + 48].copy_from_slice(self.owner_name.field());
    }
}

/// `sanlk_host`: one host of a lockspace, or one owner of a resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WireHost {
    /// Its host_id.
    pub host_id: u64,
    /// Its generation.
    pub generation: u64,
    /// Its last renewal timestamp.
    pub timestamp: u64,
    /// Its io_timeout.
    pub io_timeout: u32,
    /// SANLK_HOST_* in the low nibble.
    pub flags: u32,
}

impl WireHost {
    /// Decodes 32 bytes.
    pub fn decode(b: &[u8]) -> Self {
        assert_eq!(b.len(), HOST_LEN);
        WireHost {
            host_id: u64_at(b, 0),
            generation: u64_at(b, 8),
            timestamp: u64_at(b, 16),
            io_timeout: u32_at(b, 24),
            flags: u32_at(b, 28),
        }
    }

    /// Appends 32 bytes.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.host_id.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.io_timeout.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
    }
}

/// `sanlk_host_event`: an event for a host (set_event), or as delivered (event_cb).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WireHostEvent {
    /// The host it is for.
    pub host_id: u64,
    /// That host's generation (0: any).
    pub generation: u64,
    /// The event number.
    pub event: u64,
    /// Its data.
    pub data: u64,
}

impl WireHostEvent {
    /// Decodes 32 bytes.
    pub fn decode(b: &[u8]) -> Self {
        assert_eq!(b.len(), HOST_EVENT_LEN);
        WireHostEvent {
            host_id: u64_at(b, 0),
            generation: u64_at(b, 8),
            event: u64_at(b, 16),
            data: u64_at(b, 24),
        }
    }

    /// Appends 32 bytes.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for v in [self.host_id, self.generation, self.event, self.data] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// An `event_cb` on an event connection: header, host event, from host_id, from generation.
pub const EVENT_CB_LEN: usize = crate::HEADER_LEN + HOST_EVENT_LEN + 16;

/// SM_CB_GET_EVENT: the header command of an event_cb.
pub const CB_GET_EVENT: u32 = 1;

/// The event_cb a reg_event listener reads (wire.md §2.3, appendix A.7): the event as the
/// setter gave it (host_id: the listener's host), and who set it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WireEventCb {
    /// The event.
    pub event: WireHostEvent,
    /// The host that set it.
    pub from_host_id: u64,
    /// That host's generation.
    pub from_generation: u64,
}

impl WireEventCb {
    /// Decodes 80 bytes (the header is not looked at).
    pub fn decode(b: &[u8]) -> Self {
        assert_eq!(b.len(), EVENT_CB_LEN);
        let at = crate::HEADER_LEN;
        WireEventCb {
            event: WireHostEvent::decode(&b[at..at + HOST_EVENT_LEN]),
            from_host_id: u64_at(b, at + HOST_EVENT_LEN),
            from_generation: u64_at(b, at + HOST_EVENT_LEN + 8),
        }
    }

    /// The 80 bytes, header included.
    pub fn encode(&self) -> Vec<u8> {
        let h = crate::Header {
            magic: crate::SM_MAGIC,
            version: crate::SM_PROTO,
            cmd: CB_GET_EVENT,
            length: EVENT_CB_LEN as u32,
            ..crate::Header::default()
        };
        let mut out = h.encode().to_vec();
        self.event.encode_into(&mut out);
        out.extend_from_slice(&self.from_host_id.to_le_bytes());
        out.extend_from_slice(&self.from_generation.to_le_bytes());
        out
    }
}

/// Our message status (docs/MESSAGES.md) size.
pub const MESSAGE_STATUS_LEN: usize = 32;

/// What became of a host message (our extension): the reply payload of MESSAGE_SEND,
/// MESSAGE_STATUS and FENCE, after the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WireMessageStatus {
    /// The message's number.
    pub seq: u64,
    /// Where it stands (`MSG_*`).
    pub status: u32,
    /// Milliseconds from the send to this status.
    pub elapsed_ms: u32,
    /// The target's generation the message was for.
    pub target_generation: u64,
    /// The target host_id.
    pub target: u64,
}

/// Queued behind another message of ours.
pub const MSG_QUEUED: u32 = 0;
/// On disk; no answer yet.
pub const MSG_SENT: u32 = 1;
/// The target acknowledged it.
pub const MSG_ACKED: u32 = 2;
/// The target cannot acknowledge (a C host): delivered as a plain event.
pub const MSG_NO_ACK_SUPPORT: u32 = 3;
/// The target is dead (host_dead_seconds), left the lockspace, or is another generation.
pub const MSG_TARGET_DEAD: u32 = 4;
/// No answer within the time allowed.
pub const MSG_TIMED_OUT: u32 = 5;
/// Fence: the target acknowledged RESET and left the lockspace.
pub const MSG_RESET: u32 = 6;

impl WireMessageStatus {
    /// Decodes 32 bytes.
    pub fn decode(b: &[u8]) -> Self {
        assert_eq!(b.len(), MESSAGE_STATUS_LEN);
        WireMessageStatus {
            seq: u64_at(b, 0),
            status: u32_at(b, 8),
            elapsed_ms: u32_at(b, 12),
            target_generation: u64_at(b, 16),
            target: u64_at(b, 24),
        }
    }

    /// Appends 32 bytes.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.status.to_le_bytes());
        out.extend_from_slice(&self.elapsed_ms.to_le_bytes());
        out.extend_from_slice(&self.target_generation.to_le_bytes());
        out.extend_from_slice(&self.target.to_le_bytes());
    }

    /// The status's name, as the CLI prints it.
    pub fn status_name(&self) -> &'static str {
        match self.status {
            MSG_QUEUED => "queued",
            MSG_SENT => "sent",
            MSG_ACKED => "acked",
            MSG_NO_ACK_SUPPORT => "no ack support",
            MSG_TARGET_DEAD => "target dead",
            MSG_TIMED_OUT => "timed out",
            MSG_RESET => "reset",
            _ => "unknown",
        }
    }
}

/// `sanlk_rindex` size.
pub const RINDEX_LEN: usize = 1104;
/// `sanlk_rentry` size.
pub const RENTRY_LEN: usize = 64;

/// `sanlk_rindex`: where a resource index is, and its geometry flags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct WireRindex {
    /// SANLK_RIF_* (the align and sector bits of SANLK_RES_*).
    pub flags: u32,
    /// max_resources (0: the default).
    pub max_resources: u32,
    /// The lockspace it indexes.
    pub lockspace_name: Name,
    /// Its disk and byte offset.
    pub disk: WireDisk,
}

impl WireRindex {
    /// Decodes 1104 bytes.
    pub fn decode(b: &[u8]) -> Self {
        assert_eq!(b.len(), RINDEX_LEN);
        WireRindex {
            flags: u32_at(b, 0),
            max_resources: u32_at(b, 4),
            lockspace_name: name_at(b, 16),
            disk: WireDisk::decode(&b[64..64 + DISK_LEN]),
        }
    }

    /// Appends 1104 bytes.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.max_resources.to_le_bytes());
        out.extend_from_slice(&[0u8; 8]);
        out.extend_from_slice(self.lockspace_name.field());
        self.disk.encode_into(out);
    }
}

/// `sanlk_rentry`: one entry of a resource index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WireRentry {
    /// The resource name (empty: none).
    pub name: Name,
    /// The lease's byte offset.
    pub offset: u64,
    /// Flags (unused by 3.8.5).
    pub flags: u32,
}

impl WireRentry {
    /// Decodes 64 bytes.
    pub fn decode(b: &[u8]) -> Self {
        assert_eq!(b.len(), RENTRY_LEN);
        WireRentry {
            name: name_at(b, 0),
            offset: u64_at(b, 48),
            flags: u32_at(b, 56),
        }
    }

    /// Appends 64 bytes.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.name.field());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
    }
}

/// `sanlk_state` and its text: one record of a STATUS, HOST_STATUS or RENEWAL stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct WireState {
    /// SANLK_STATE_* (DAEMON 1 … RENEWAL 6).
    pub kind: u32,
    /// Per kind: pid, host_id.
    pub data32: u32,
    /// Per kind: host_id, lver, timestamp.
    pub data64: u64,
    /// Per kind: host name, owner name, lockspace or resource name.
    pub name: Name,
    /// `key=value` pairs, without the NUL.
    pub text: Vec<u8>,
}

/// The state record kinds.
pub mod state_kind {
    /// The daemon.
    pub const DAEMON: u32 = 1;
    /// A client connection.
    pub const CLIENT: u32 = 2;
    /// A lockspace (a `sanlk_lockspace` follows).
    pub const LOCKSPACE: u32 = 3;
    /// A resource (a `sanlk_resource` and its disks follow).
    pub const RESOURCE: u32 = 4;
    /// A host of a lockspace.
    pub const HOST: u32 = 5;
    /// A renewal record.
    pub const RENEWAL: u32 = 6;
    /// Ours, in SHOW replies: something an add, acquire or removal is waiting for.
    pub const WAIT: u32 = 7;
}

impl WireState {
    /// Decodes the 80-byte part; returns it and the text length to read next (with its NUL).
    pub fn decode_head(b: &[u8]) -> (Self, usize) {
        assert_eq!(b.len(), STATE_LEN);
        let state = WireState {
            kind: u32_at(b, 0),
            data32: u32_at(b, 8),
            data64: u64_at(b, 16),
            name: name_at(b, 24),
            text: Vec::new(),
        };
        (state, u32_at(b, 72) as usize)
    }

    /// Appends the 80 bytes and the text with its NUL (str_len counts the NUL).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + STATE_LEN, 0);
        let b = &mut out[start..];
        b[0..4].copy_from_slice(&self.kind.to_le_bytes());
        b[8..12].copy_from_slice(&self.data32.to_le_bytes());
        b[16..24].copy_from_slice(&self.data64.to_le_bytes());
        b[24..72].copy_from_slice(self.name.field());
        let str_len = self.text.len() as u32 + 1;
        b[72..76].copy_from_slice(&str_len.to_le_bytes());
        out.extend_from_slice(&self.text);
        out.push(0);
    }
}

fn name_at(b: &[u8], at: usize) -> Name {
    Name::from_field(b[at..at + 48].try_into().expect("48 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_cb_decodes_to_what_was_encoded() {
        let cb = WireEventCb {
            event: WireHostEvent {
                host_id: 2,
                generation: 3,
                event: 0x11,
                data: 0x22,
            },
            from_host_id: 1,
            from_generation: 4,
        };
        let bytes = cb.encode();
        assert_eq!(bytes.len(), 80);
        assert_eq!(&bytes[8..12], &CB_GET_EVENT.to_le_bytes());
        assert_eq!(WireEventCb::decode(&bytes), cb);
    }

    fn name(s: &str) -> Name {
        Name::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn lockspace_layout_matches_the_captured_add_lockspace() {
        // wire.md A.2: name "vls", host_id 1 at 0x30, path at 0x40, offset at 0x440.
        let ls = WireLockspace {
            name: name("vls"),
            host_id: 1,
            flags: 0,
            disk: WireDisk {
                path: b"/var/tmp/slv/ls".to_vec(),
                offset: 0,
            },
        };
        let mut out = Vec::new();
        ls.encode_into(&mut out);
        assert_eq!(out.len(), 1104);
        assert_eq!(&out[..4], b"vls\0");
        assert_eq!(out[0x30], 1);
        assert_eq!(&out[0x40..0x50], b"/var/tmp/slv/ls\0");
        assert_eq!(WireLockspace::decode(&out), ls);
    }

    #[test]
    fn resource_layout_matches_the_captured_acquire() {
        // wire.md A.3: name at 0x30, num_disks at 0x7c, then the disk's path.
        let res = WireResource {
            lockspace_name: name("vls"),
            name: name("vres"),
            num_disks: 1,
            disks: vec![WireDisk {
                path: b"/var/tmp/slv/res".to_vec(),
                offset: 1_048_576,
            }],
            ..WireResource::default()
        };
        let mut out = Vec::new();
        res.encode_into(&mut out, true);
        assert_eq!(out.len(), 128 + 1040);
        assert_eq!(&out[0x30..0x35], b"vres\0");
        assert_eq!(out[0x7c], 1);
        assert_eq!(&out[128 + 1024..128 + 1032], &1_048_576u64.to_le_bytes());
        let back = WireResource::decode(&out[..128]);
        assert_eq!(back.num_disks, 1);
        assert_eq!(WireDisk::decode(&out[128..]), res.disks[0]);
    }

    #[test]
    fn a_48_byte_name_needs_no_nul_and_a_path_without_nul_is_cut() {
        let mut b = vec![b'x'; RESOURCE_LEN];
        b[96..].fill(0);
        let r = WireResource::decode(&b);
        assert_eq!(r.lockspace_name.as_bytes().len(), 48);
        assert_eq!(r.name.as_bytes().len(), 48);
        let d = WireDisk::decode(&[b'p'; DISK_LEN]);
        assert_eq!(d.path.len(), 1023);
    }

    #[test]
    fn state_text_follows_at_80_with_its_nul_counted() {
        // wire.md §2.3: sizeof is 80 and str_len counts the terminating NUL.
        let s = WireState {
            kind: state_kind::CLIENT,
            data32: 42,
            data64: 0,
            name: name("helper"),
            text: b"ci=0 fd=3".to_vec(),
        };
        let mut out = Vec::new();
        s.encode_into(&mut out);
        assert_eq!(out.len(), 80 + 10);
        let (head, len) = WireState::decode_head(&out[..80]);
        assert_eq!(len, 10);
        assert_eq!((head.kind, head.data32, head.name), (2, 42, name("helper")));
        assert_eq!(&out[80..], b"ci=0 fd=3\0");
    }
}
