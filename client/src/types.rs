//! What calls take and give: lockspaces, resources, disks, modes, hosts, events and the flags
//! of each call, checked when they are built so that nothing unsendable reaches the socket.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sanlock_wire::payload::{RES_LVER, RES_PERSISTENT, RES_SHARED};
use sanlock_wire::{Name, WireDisk, WireHost, WireHostEvent, WireLockspace, WireResource};

use crate::error::{Error, Result};

/// A name of a lockspace or resource: at most 48 bytes (not necessarily UTF-8).
pub fn name(bytes: impl AsRef<[u8]>) -> Result<Name> {
    let bytes = bytes.as_ref();
    Name::new(bytes)
        .map_err(|e| Error::Invalid(format!("{:?}: {e}", String::from_utf8_lossy(bytes))))
}

/// A place on shared storage: a file or block device and a byte offset in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Disk {
    /// The file or device.
    pub path: PathBuf,
    /// Where the lease area starts, in bytes.
    pub offset: u64,
}

impl Disk {
    /// `path` at `offset`.
    pub fn new(path: impl Into<PathBuf>, offset: u64) -> Disk {
        Disk {
            path: path.into(),
            offset,
        }
    }

    pub(crate) fn to_wire(&self) -> Result<WireDisk> {
        let path = self.path.as_os_str().as_bytes();
        if path.len() >= sanlock_wire::payload::PATH_LEN || path.contains(&0) {
            return Err(Error::Invalid(format!(
                "disk path {} is over 1023 bytes or holds a NUL",
                self.path.display()
            )));
        }
        Ok(WireDisk {
            path: path.to_vec(),
            offset: self.offset,
        })
    }

    pub(crate) fn from_wire(disk: &WireDisk) -> Disk {
        Disk::new(Path::new(OsStr::from_bytes(&disk.path)), disk.offset)
    }
}

/// A lockspace: its name, this host's id in it and where its delta leases lie.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lockspace {
    /// The lockspace name.
    pub name: Name,
    /// This host's id (1-2000); 0 where a call needs no host id.
    pub host_id: u64,
    /// Where the lockspace's area lies.
    pub disk: Disk,
}

impl Lockspace {
    /// Lockspace `name` with `host_id` on `disk`.
    pub fn new(name: impl AsRef<[u8]>, host_id: u64, disk: Disk) -> Result<Lockspace> {
        Ok(Lockspace {
            name: self::name(name)?,
            host_id,
            disk,
        })
    }

    pub(crate) fn to_wire(&self) -> Result<WireLockspace> {
        Ok(WireLockspace {
            name: self.name,
            host_id: self.host_id,
            flags: 0,
            disk: self.disk.to_wire()?,
        })
    }

    pub(crate) fn from_wire(ls: &WireLockspace) -> Lockspace {
        Lockspace {
            name: ls.name,
            host_id: ls.host_id,
            disk: Disk::from_wire(&ls.disk),
        }
    }
}

/// How a resource lease is held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// One holder (sanlock's default).
    #[default]
    Exclusive,
    /// Any number of holders, none exclusive (SANLK_RES_SHARED).
    Shared,
}

/// A resource lease: its lockspace, name, disks (1-4) and how to hold it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Resource {
    /// The lockspace it belongs to.
    pub lockspace: Name,
    /// The resource name.
    pub name: Name,
    /// Where its lease lies (sanlock allows up to four copies).
    pub disks: Vec<Disk>,
    /// Exclusive or shared.
    pub mode: Mode,
    /// Acquire only at this lease version (SANLK_RES_LVER); inquire reports the version held.
    pub lver: Option<u64>,
    /// Kept as an orphan when its holder exits (SANLK_RES_PERSISTENT).
    pub persistent: bool,
}

impl Resource {
    /// Resource `name` of `lockspace` on `disk`, exclusive, any version.
    pub fn new(
        lockspace: impl AsRef<[u8]>,
        name: impl AsRef<[u8]>,
        disk: Disk,
    ) -> Result<Resource> {
        Ok(Resource {
            lockspace: self::name(lockspace)?,
            name: self::name(name)?,
            disks: vec![disk],
            mode: Mode::Exclusive,
            lver: None,
            persistent: false,
        })
    }

    /// The same resource held in `mode`.
    pub fn with_mode(mut self, mode: Mode) -> Resource {
        self.mode = mode;
        self
    }

    pub(crate) fn to_wire(&self) -> Result<WireResource> {
        if self.disks.len() > sanlock_wire::payload::MAX_DISKS as usize {
            return Err(Error::Invalid(format!(
                "resource names {} disks; at most 4",
                self.disks.len()
            )));
        }
        let mut flags = 0;
        if self.lver.is_some() {
            flags |= RES_LVER;
        }
        if self.mode == Mode::Shared {
            flags |= RES_SHARED;
        }
        if self.persistent {
            flags |= RES_PERSISTENT;
        }
        Ok(WireResource {
            lockspace_name: self.lockspace,
            name: self.name,
            lver: self.lver.unwrap_or(0),
            data64: 0,
            data32: 0,
            flags,
            num_disks: self.disks.len() as u32,
            disks: self
                .disks
                .iter()
                .map(Disk::to_wire)
                .collect::<Result<_>>()?,
        })
    }

    pub(crate) fn from_wire(res: &WireResource) -> Resource {
        Resource {
            lockspace: res.lockspace_name,
            name: res.name,
            disks: res.disks.iter().map(Disk::from_wire).collect(),
            mode: if res.flags & RES_SHARED != 0 {
                Mode::Shared
            } else {
                Mode::Exclusive
            },
            lver: (res.flags & RES_LVER != 0 || res.lver != 0).then_some(res.lver),
            persistent: res.flags & RES_PERSISTENT != 0,
        }
    }
}

/// What a lockspace member looks like to this host's daemon (SANLK_HOST_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HostState {
    /// Not yet watched long enough to say.
    Unknown,
    /// Its delta lease is free (never taken or released).
    Free,
    /// Renewing.
    Live,
    /// Not renewing for longer than its fail timeout.
    Fail,
    /// Not renewing for longer than host_dead_seconds: its leases may be taken.
    Dead,
    /// A value sanlock 3.8.5 does not define.
    Other(u32),
}

/// One host of a lockspace, as get_hosts and read_resource_owners give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Host {
    /// Its host id.
    pub host_id: u64,
    /// Its generation (incremented each time it takes its host id).
    pub generation: u64,
    /// Its delta lease's last timestamp (its own clock, seconds).
    pub timestamp: u64,
    /// Its I/O timeout in seconds.
    pub io_timeout: u32,
    /// Its state, as this daemon sees it.
    pub state: HostState,
}

impl Host {
    pub(crate) fn from_wire(h: &WireHost) -> Host {
        Host {
            host_id: h.host_id,
            generation: h.generation,
            timestamp: h.timestamp,
            io_timeout: h.io_timeout,
            state: match h.flags & 0xf {
                1 => HostState::Unknown,
                2 => HostState::Free,
                3 => HostState::Live,
                4 => HostState::Fail,
                5 => HostState::Dead,
                n => HostState::Other(n),
            },
        }
    }
}

/// An event to set on a host (`set_event`) or one received (`reg_event`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HostEvent {
    /// The target host id.
    pub host_id: u64,
    /// The target's generation; 0 with [`SetEventFlags::CUR_GENERATION`] means its current one.
    pub generation: u64,
    /// The event number (0 is no event).
    pub event: u64,
    /// Data that goes with it.
    pub data: u64,
}

impl HostEvent {
    pub(crate) fn to_wire(self) -> WireHostEvent {
        WireHostEvent {
            host_id: self.host_id,
            generation: self.generation,
            event: self.event,
            data: self.data,
        }
    }
}

/// An event delivered to a registered listener: what was set, and by which host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    /// The event as the setter gave it.
    pub event: HostEvent,
    /// The host that set it.
    pub from_host_id: u64,
    /// That host's generation.
    pub from_generation: u64,
}

impl Event {
    pub(crate) fn decode(b: &[u8]) -> Event {
        let cb = sanlock_wire::WireEventCb::decode(b);
        Event {
            event: HostEvent {
                host_id: cb.event.host_id,
                generation: cb.event.generation,
                event: cb.event.event,
                data: cb.event.data,
            },
            from_host_id: cb.from_host_id,
            from_generation: cb.from_generation,
        }
    }
}

/// A lockspace the daemon has, with what it is doing to it (get_lockspaces).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LockspaceInfo {
    /// The lockspace.
    pub lockspace: Lockspace,
    /// Being added (SANLK_LSF_ADD).
    pub adding: bool,
    /// Being removed (SANLK_LSF_REM).
    pub removing: bool,
}

/// The daemon's version (VERSION).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// major<<24 | minor<<16 | patch<<8: 0x03080500 for 3.8.5.
    pub number: u32,
    /// The socket protocol it speaks (0x00000001).
    pub protocol: u32,
}

macro_rules! flags {
    ($($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $flag:ident = $value:literal,)* })*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name(pub u32);

        impl $name {
            /// No flag.
            pub const NONE: $name = $name(0);
            $($(#[$fdoc])* pub const $flag: $name = $name($value);)*

            /// Whether every bit of `other` is set.
            pub fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }
        }
    )*};
}

flags! {
    /// add_lockspace's flags.
    AddFlags {
        /// Answer as soon as the add has started (SANLK_ADD_ASYNC).
        ASYNC = 0x1,
    }
    /// rem_lockspace's flags.
    RemFlags {
        /// Answer as soon as the removal has started (SANLK_REM_ASYNC).
        ASYNC = 0x1,
        /// Refuse with EBUSY while any lease of the lockspace is held (SANLK_REM_UNUSED).
        UNUSED = 0x2,
    }
    /// inq_lockspace's flags.
    InqFlags {
        /// Wait while the lockspace is being added or removed (SANLK_INQ_WAIT).
        WAIT = 0x1,
    }
    /// acquire's flags.
    AcquireFlags {
        /// Keep a lock value block buffer (SANLK_ACQUIRE_LVB); needed for set/get_lvb.
        LVB = 0x1,
        /// Adopt an orphan of the same resource if there is one (SANLK_ACQUIRE_ORPHAN).
        ORPHAN = 0x2,
        /// Adopt only; never take the lease anew (SANLK_ACQUIRE_ORPHAN_ONLY).
        ORPHAN_ONLY = 0x4,
        /// Fail at once when the owner may be dead instead of waiting (SANLK_ACQUIRE_OWNER_NOWAIT).
        OWNER_NOWAIT = 0x8,
    }
    /// release's flags.
    ReleaseFlags {
        /// Release every lease of the process (SANLK_REL_ALL).
        ALL = 0x1,
        /// Rename the lease on disk to the second resource's name (SANLK_REL_RENAME).
        RENAME = 0x2,
        /// Release orphans of the resource (SANLK_REL_ORPHAN).
        ORPHAN = 0x4,
    }
    /// convert's flags.
    ConvertFlags {
        /// As for acquire (SANLK_CONVERT_OWNER_NOWAIT).
        OWNER_NOWAIT = 0x8,
    }
    /// request's flags.
    RequestFlags {
        /// Ask for the version after the lease's current one (SANLK_REQUEST_NEXT_LVER).
        NEXT_LVER = 0x1,
    }
    /// What a request makes the holder's host do (force_mode).
    ForceMode {
        /// Kill the holder with SIGKILL (SANLK_REQ_FORCE).
        FORCE = 0x1,
        /// Run the holder's killpath, else SIGTERM (SANLK_REQ_GRACEFUL).
        GRACEFUL = 0x2,
    }
    /// restrict's flags.
    RestrictFlags {
        /// Drop every later message on this connection (SANLK_RESTRICT_ALL).
        ALL = 0x1,
        /// Use SIGTERM where the daemon would use SIGKILL (SANLK_RESTRICT_SIGKILL).
        SIGKILL = 0x2,
        /// Use SIGKILL where the daemon would use SIGTERM (SANLK_RESTRICT_SIGTERM).
        SIGTERM = 0x4,
    }
    /// killpath's flags.
    KillpathFlags {
        /// Append the client's pid to the killpath's arguments (SANLK_KILLPATH_PID).
        PID = 0x1,
    }
    /// set_event's flags.
    SetEventFlags {
        /// Generation 0 means the target's current generation (SANLK_SETEV_CUR_GENERATION).
        CUR_GENERATION = 0x1,
        /// Clear the target's host bit (SANLK_SETEV_CLEAR_HOSTID).
        CLEAR_HOSTID = 0x2,
        /// Clear the event (SANLK_SETEV_CLEAR_EVENT).
        CLEAR_EVENT = 0x4,
        /// Replace an event not yet delivered (SANLK_SETEV_REPLACE_EVENT).
        REPLACE_EVENT = 0x8,
        /// Set the event on every host of the lockspace (SANLK_SETEV_ALL_HOSTS).
        ALL_HOSTS = 0x10,
    }
    /// set_config's commands.
    ConfigCmd {
        /// The lockspace is in use: rem_lockspace with UNUSED refuses (SANLK_CONFIG_USED).
        USED = 0x1,
        /// Undo USED (SANLK_CONFIG_UNUSED).
        UNUSED = 0x2,
        /// Orphans count as use (SANLK_CONFIG_USED_BY_ORPHANS).
        USED_BY_ORPHANS = 0x4,
        /// Undo USED_BY_ORPHANS (SANLK_CONFIG_UNUSED_BY_ORPHANS).
        UNUSED_BY_ORPHANS = 0x8,
    }
    /// write_lockspace's and write_resource's flags.
    WriteFlags {
        /// Write a cleared lease: later reads fail with LeaderMagic (SANLK_WRITE_CLEAR).
        CLEAR = 0x1,
    }
}

/// Parses one resource as inquire reports it: `LOCKSPACE:NAME:PATH:OFFSET[:PATH:OFFSET…]:LVER`
/// or `…:SH`, where `\` escapes a colon or space in a path.
pub fn parse_resource(text: &str) -> Result<Resource> {
    let mut fields = Vec::new();
    let mut field = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => field.extend(bytes.next()),
            b':' => fields.push(std::mem::take(&mut field)),
            _ => field.push(b),
        }
    }
    fields.push(field);
    let bad = || {
        Error::Invalid(format!(
            "resource {text:?} is not LOCKSPACE:NAME:PATH:OFFSET…:LVER"
        ))
    };
    if fields.len() < 5 || fields.len() % 2 == 0 {
        return Err(bad());
    }
    let number = |f: &[u8]| -> Result<u64> {
        std::str::from_utf8(f)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let last = fields.len() - 1;
    let disks = fields[2..last]
        .chunks(2)
        .map(|pair| {
            Ok(Disk::new(
                Path::new(OsStr::from_bytes(&pair[0])),
                number(&pair[1])?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let (mode, lver) = if fields[last] == b"SH" {
        (Mode::Shared, None)
    } else {
        (Mode::Exclusive, Some(number(&fields[last])?))
    };
    Ok(Resource {
        lockspace: name(&fields[0])?,
        name: name(&fields[1])?,
        disks,
        mode,
        lver,
        persistent: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inquire_strings_parse_with_escapes_modes_and_several_disks() {
        let r = parse_resource("ls:res:/var/tmp/a\\:b:1048576:7").unwrap();
        assert_eq!(r.lockspace, name("ls").unwrap());
        assert_eq!(r.disks, vec![Disk::new("/var/tmp/a:b", 1048576)]);
        assert_eq!((r.mode, r.lver), (Mode::Exclusive, Some(7)));
        let r = parse_resource("ls:res:/d1:0:/d\\ 2:512:SH").unwrap();
        assert_eq!(r.disks.len(), 2);
        assert_eq!(r.disks[1].path, PathBuf::from("/d 2"));
        assert_eq!((r.mode, r.lver), (Mode::Shared, None));
        assert!(parse_resource("ls:res:/d1:0").is_err());
        assert!(parse_resource("ls:res:/d1:x:1").is_err());
    }

    #[test]
    fn a_resource_becomes_sanlocks_flags_and_back() {
        let mut r = Resource::new("ls", "r", Disk::new("/d", 0))
            .unwrap()
            .with_mode(Mode::Shared);
        r.persistent = true;
        let w = r.to_wire().unwrap();
        assert_eq!(w.flags, RES_SHARED | RES_PERSISTENT);
        assert_eq!(Resource::from_wire(&w), r);
        r.disks = vec![Disk::new("/d", 0); 5];
        assert!(matches!(r.to_wire(), Err(Error::Invalid(_))));
        assert!(name([b'x'; 49]).is_err());
    }
}
