//! The 32-byte `sm_header` that starts every request and reply on the daemon's socket
//! (wire.md §2.1), and the command numbers (§2.2).

/// SM_MAGIC: bytes `10 20 28 04` on the wire.
pub const SM_MAGIC: u32 = 0x0428_2010;
/// SM_PROTO: socket protocol 0.1, what every request and reply carries.
pub const SM_PROTO: u32 = 0x0000_0001;
/// The header's size on the wire.
pub const HEADER_LEN: usize = 32;
/// sanlock 3.8.5 as VERSION reports it: major<<24 | minor<<16 | patch<<8.
pub const VERSION_NUM: u32 = 0x0308_0500;

/// One header, as sent (host byte order: little-endian on every target).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Header {
    /// SM_MAGIC.
    pub magic: u32,
    /// SM_PROTO.
    pub version: u32,
    /// SM_CMD_*.
    pub cmd: u32,
    /// Per-command flags.
    pub cmd_flags: u32,
    /// 32 + payload bytes (not trusted by the daemon: §1.3).
    pub length: u32,
    /// Echoed.
    pub seq: u32,
    /// Per command in a request; the result in a reply.
    pub data: u32,
    /// Per command.
    pub data2: u32,
}

impl Header {
    /// A request as libsanlock builds it: magic, protocol 0.1, length 32 + `payload_len`.
    pub fn request(cmd: Cmd, cmd_flags: u32, data: u32, data2: u32, payload_len: usize) -> Self {
        Header {
            magic: SM_MAGIC,
            version: SM_PROTO,
            cmd: cmd as u32,
            cmd_flags,
            length: (HEADER_LEN + payload_len) as u32,
            seq: 0,
            data,
            data2,
        }
    }

    /// sanlock's standard reply ("send_result"): this header with version 1, length 32, the
    /// result in `data` and `data2` zero.
    pub fn result(&self, result: i32) -> Self {
        Header {
            version: SM_PROTO,
            length: HEADER_LEN as u32,
            data: result as u32,
            data2: 0,
            ..*self
        }
    }

    /// The result a reply carries, signed.
    pub fn rv(&self) -> i32 {
        self.data as i32
    }

    /// Decodes 32 bytes.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let word = |i: usize| u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
        Header {
            magic: word(0),
            version: word(1),
            cmd: word(2),
            cmd_flags: word(3),
            length: word(4),
            seq: word(5),
            data: word(6),
            data2: word(7),
        }
    }

    /// The 32 bytes to send.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let words = [
            self.magic,
            self.version,
            self.cmd,
            self.cmd_flags,
            self.length,
            self.seq,
            self.data,
            self.data2,
        ];
        for (i, w) in words.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Why the daemon ignores this header, if it does (§1.3): wrong magic, a protocol major
    /// above 0 on anything but VERSION, or an unknown command. None of these get a reply.
    pub fn refusal(&self) -> Option<&'static str> {
        if self.magic != SM_MAGIC {
            return Some("bad magic");
        }
        let Some(cmd) = Cmd::from_u32(self.cmd) else {
            return Some("unknown cmd");
        };
        if self.version != 0
            && cmd != Cmd::Version
            && (self.version & 0xFFFF_0000) > (SM_PROTO & 0xFFFF_0000)
        {
            return Some("unsupported protocol version");
        }
        None
    }
}

/// SM_CMD_* (wire.md §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
#[repr(u32)]
pub enum Cmd {
    Register = 1,
    AddLockspace = 2,
    RemLockspace = 3,
    Shutdown = 4,
    Status = 5,
    LogDump = 6,
    Acquire = 7,
    Release = 8,
    Inquire = 9,
    Restrict = 10,
    Request = 11,
    Align = 12,
    ExamineLockspace = 13,
    ExamineResource = 14,
    HostStatus = 15,
    InqLockspace = 16,
    Killpath = 17,
    WriteLockspace = 18,
    WriteResource = 19,
    ReadLockspace = 20,
    ReadResource = 21,
    GetLockspaces = 22,
    GetHosts = 23,
    ReadResourceOwners = 24,
    SetLvb = 25,
    GetLvb = 26,
    Convert = 27,
    Version = 28,
    ShutdownWait = 29,
    RegEvent = 30,
    EndEvent = 31,
    SetEvent = 32,
    SetConfig = 33,
    Renewal = 34,
    FormatRindex = 35,
    UpdateRindex = 36,
    LookupRindex = 37,
    CreateResource = 38,
    DeleteResource = 39,
    RebuildRindex = 40,
    /// Ours (docs/MESSAGES.md): send a host message, and wait for it if asked.
    MessageSend = 201,
    /// Ours: what became of a message sent, waiting if asked.
    MessageStatus = 202,
    /// Ours: make a host reset itself, or wait until it is dead.
    Fence = 203,
    /// Ours (`sanlock client show`): lockspaces with their hosts' names and silence, leases
    /// held, and what adds, acquires and removals are waiting for.
    Show = 204,
}

impl Cmd {
    /// The command with this number: sanlock 3.8.5's (1-40) or one of our extensions
    /// (201-203, docs/MESSAGES.md; 204, `client show`).
    pub fn from_u32(n: u32) -> Option<Cmd> {
        use Cmd::*;
        const ALL: [Cmd; 40] = [
            Register,
            AddLockspace,
            RemLockspace,
            Shutdown,
            Status,
            LogDump,
            Acquire,
            Release,
            Inquire,
            Restrict,
            Request,
            Align,
            ExamineLockspace,
            ExamineResource,
            HostStatus,
            InqLockspace,
            Killpath,
            WriteLockspace,
            WriteResource,
            ReadLockspace,
            ReadResource,
            GetLockspaces,
            GetHosts,
            ReadResourceOwners,
            SetLvb,
            GetLvb,
            Convert,
            Version,
            ShutdownWait,
            RegEvent,
            EndEvent,
            SetEvent,
            SetConfig,
            Renewal,
            FormatRindex,
            UpdateRindex,
            LookupRindex,
            CreateResource,
            DeleteResource,
            RebuildRindex,
        ];
        match n {
            201 => return Some(MessageSend),
            202 => return Some(MessageStatus),
            203 => return Some(Fence),
            204 => return Some(Show),
            _ => {}
        }
        let i = usize::try_from(n).ok()?.checked_sub(1)?;
        ALL.get(i).copied()
    }

    /// The owner name sanlock gives a connection running this command in `status` (§4.24).
    pub fn client_name(self) -> &'static str {
        match self {
            Cmd::Status => "status",
            Cmd::HostStatus => "host_status",
            Cmd::Renewal => "renewal",
            Cmd::LogDump => "log_dump",
            Cmd::GetLockspaces => "get_lockspaces",
            Cmd::GetHosts => "get_hosts",
            Cmd::RegEvent => "reg_event",
            Cmd::EndEvent => "end_event",
            Cmd::SetConfig => "set_config",
            Cmd::Shutdown | Cmd::ShutdownWait => "shutdown",
            Cmd::AddLockspace => "add_lockspace",
            Cmd::InqLockspace => "inq_lockspace",
            Cmd::RemLockspace => "rem_lockspace",
            Cmd::MessageSend | Cmd::MessageStatus => "message",
            Cmd::Fence => "fence",
            Cmd::Show => "show",
            _ => "cmd",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_header_matches_the_captured_bytes() {
        // wire.md A.1: python's register() sends cmd 1, length 32, nothing else.
        let bytes = Header::request(Cmd::Register, 0, 0, 0, 0).encode();
        assert_eq!(
            bytes,
            [
                0x10, 0x20, 0x28, 0x04, 0x01, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn acquire_header_matches_the_captured_bytes() {
        // wire.md A.3: length 1256 = 32+128+1040+56, data 1, data2 -1.
        let h = Header::request(Cmd::Acquire, 0, 1, u32::MAX, 128 + 1040 + 56);
        let bytes = h.encode();
        assert_eq!(&bytes[16..20], &[0xe8, 0x04, 0, 0]);
        assert_eq!(&bytes[24..32], &[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(Header::decode(&bytes), h);
    }

    #[test]
    fn standard_reply_echoes_seq_and_flags_and_zeroes_data2() {
        // wire.md §2.1: seq 0xabcd, data 7, data2 9 came back with data = result, data2 = 0.
        let mut h = Header::request(Cmd::InqLockspace, 3, 7, 9, 1104);
        h.seq = 0xabcd;
        let r = h.result(-2);
        assert_eq!((r.seq, r.cmd_flags, r.length, r.data2), (0xabcd, 3, 32, 0));
        assert_eq!(r.rv(), -2);
    }

    #[test]
    fn headers_the_daemon_ignores() {
        // wire.md §1.3: bad magic, unknown cmd, major > 0 (but VERSION is always answered).
        let ok = Header::request(Cmd::Status, 0, 0, 0, 0);
        assert_eq!(ok.refusal(), None);
        assert!(Header { magic: 1, ..ok }.refusal().is_some());
        assert!(Header { cmd: 41, ..ok }.refusal().is_some());
        assert!(Header { cmd: 0, ..ok }.refusal().is_some());
        assert!(Header {
            version: 0x0001_0001,
            ..ok
        }
        .refusal()
        .is_some());
        let version = Header::request(Cmd::Version, 0, 0, 0, 0);
        assert_eq!(
            Header {
                version: 0x0005_0000,
                ..version
            }
            .refusal(),
            None
        );
        // A minor difference, and version 0, are accepted.
        assert_eq!(Header { version: 7, ..ok }.refusal(), None);
        assert_eq!(Header { version: 0, ..ok }.refusal(), None);
    }

    #[test]
    fn every_command_number_round_trips() {
        for n in 1..=40 {
            assert_eq!(Cmd::from_u32(n).unwrap() as u32, n);
        }
        assert_eq!(Cmd::from_u32(41), None);
        // Our extensions, far from sanlock's numbers.
        for n in 201..=204 {
            assert_eq!(Cmd::from_u32(n).unwrap() as u32, n);
        }
        assert_eq!(Cmd::from_u32(200), None);
        assert_eq!(Cmd::from_u32(205), None);
    }
}
