//! Every call of the socket protocol as a typed value: the request to send and what to make of
//! the reply. `Client` and `AsyncClient` run the same values (the `calls!` list in `lib.rs`),
//! one over a blocking socket, the other over tokio's.

use sanlock_wire::payload::{state_kind, LSF_ADD, LSF_REM};
use sanlock_wire::{
    Cmd, Name, WireLockspace, WireMessageStatus, WireRentry, WireResource, WireRindex,
};

use crate::error::{check, Error, Result};
use crate::proto::{self, Reply, Request};
use crate::types::*;

/// A request and what its reply means.
pub(crate) struct Call<T> {
    pub(crate) request: Request,
    pub(crate) decode: Box<dyn FnOnce(Reply) -> Result<T> + Send>,
}

fn call<T>(request: Request, decode: impl FnOnce(Reply) -> Result<T> + Send + 'static) -> Call<T> {
    Call {
        request,
        decode: Box::new(decode),
    }
}

/// A call whose reply is only its result.
fn plain(cmd: Cmd, flags: u32, data: u32, data2: u32, payload: Vec<u8>) -> Call<()> {
    call(Request::new(cmd, flags, data, data2, payload), |r| {
        check(r.rv()).map(drop)
    })
}

fn lockspace(ls: &Lockspace) -> Result<Vec<u8>> {
    Ok(proto::lockspace_payload(&ls.to_wire()?))
}

fn resources(list: &[Resource]) -> Result<Vec<WireResource>> {
    list.iter().map(Resource::to_wire).collect()
}

/// A resource read back from a disk: only the disk is sent.
fn on_disk(disk: &Disk) -> Result<WireResource> {
    Ok(WireResource {
        num_disks: 1,
        disks: vec![disk.to_wire()?],
        ..WireResource::default()
    })
}

/// `pid` as the header's data2: -1 is the connection itself (a registered one).
fn target(pid: i32) -> u32 {
    pid as u32
}

pub(crate) fn version() -> Result<Call<Version>> {
    Ok(call(Request::new(Cmd::Version, 0, 0, 0, Vec::new()), |r| {
        check(r.rv())?;
        Ok(Version {
            number: r.header.data2,
            protocol: r.header.version,
        })
    }))
}

pub(crate) fn add_lockspace(ls: &Lockspace, flags: AddFlags, io_timeout: u32) -> Result<Call<()>> {
    Ok(plain(
        Cmd::AddLockspace,
        flags.0,
        io_timeout,
        0,
        lockspace(ls)?,
    ))
}

pub(crate) fn inq_lockspace(ls: &Lockspace, flags: InqFlags) -> Result<Call<()>> {
    Ok(plain(Cmd::InqLockspace, flags.0, 0, 0, lockspace(ls)?))
}

pub(crate) fn rem_lockspace(ls: &Lockspace, flags: RemFlags) -> Result<Call<()>> {
    Ok(plain(Cmd::RemLockspace, flags.0, 0, 0, lockspace(ls)?))
}

pub(crate) fn get_lockspaces() -> Result<Call<Vec<LockspaceInfo>>> {
    Ok(call(
        Request::new(Cmd::GetLockspaces, 0, 0, 0, Vec::new()),
        |r| {
            let (rv, list) = proto::lockspaces_reply(&r);
            check(rv)?;
            Ok(list
                .iter()
                .map(|ls| LockspaceInfo {
                    lockspace: Lockspace::from_wire(ls),
                    adding: ls.flags & LSF_ADD != 0,
                    removing: ls.flags & LSF_REM != 0,
                })
                .collect())
        },
    ))
}

pub(crate) fn get_hosts(name: &Name, host_id: u64) -> Result<Call<Vec<Host>>> {
    let ls = WireLockspace {
        name: *name,
        host_id,
        ..WireLockspace::default()
    };
    let req = Request::new(Cmd::GetHosts, 0, 0, 0, proto::lockspace_payload(&ls));
    Ok(call(req, |r| {
        let (rv, hosts) = proto::hosts_reply(&r);
        check(rv)?;
        Ok(hosts.iter().map(Host::from_wire).collect())
    }))
}

pub(crate) fn write_lockspace(
    ls: &Lockspace,
    max_hosts: u32,
    flags: WriteFlags,
    io_timeout: u32,
) -> Result<Call<()>> {
    Ok(plain(
        Cmd::WriteLockspace,
        flags.0,
        max_hosts,
        io_timeout,
        lockspace(ls)?,
    ))
}

pub(crate) fn read_lockspace(disk: &Disk) -> Result<Call<(Lockspace, u32)>> {
    let ls = WireLockspace {
        disk: disk.to_wire()?,
        ..WireLockspace::default()
    };
    let req = Request::new(Cmd::ReadLockspace, 0, 0, 0, proto::lockspace_payload(&ls));
    Ok(call(req, |r| {
        let (rv, io_timeout, ls) = proto::lockspace_reply(&r);
        check(rv)?;
        let ls = ls.ok_or(Error::Errno(crate::error::errno::EINVAL))?;
        Ok((Lockspace::from_wire(&ls), io_timeout))
    }))
}

pub(crate) fn write_resource(
    res: &Resource,
    max_hosts: u32,
    num_hosts: u32,
    flags: WriteFlags,
) -> Result<Call<()>> {
    let payload = proto::resource_payload(&res.to_wire()?);
    Ok(plain(
        Cmd::WriteResource,
        flags.0,
        max_hosts,
        num_hosts,
        payload,
    ))
}

pub(crate) fn read_resource(disk: &Disk) -> Result<Call<Resource>> {
    let req = Request::new(
        Cmd::ReadResource,
        0,
        0,
        0,
        proto::resource_payload(&on_disk(disk)?),
    );
    let disk = disk.clone();
    Ok(call(req, move |r| {
        let (rv, res) = proto::resource_reply(&r);
        check(rv)?;
        let mut res = Resource::from_wire(&res.ok_or(Error::Errno(crate::error::errno::EINVAL))?);
        res.disks = vec![disk];
        Ok(res)
    }))
}

pub(crate) fn read_resource_owners(res: &Resource) -> Result<Call<(Resource, Vec<Host>)>> {
    let wire = res.to_wire()?;
    let req = Request::new(
        Cmd::ReadResourceOwners,
        0,
        0,
        0,
        proto::resource_payload(&wire),
    );
    let disks = res.disks.clone();
    Ok(call(req, move |r| {
        let (rv, res, hosts) = proto::owners_reply(&r);
        check(rv)?;
        let mut res = Resource::from_wire(&res.ok_or(Error::Errno(crate::error::errno::EINVAL))?);
        res.disks = disks;
        Ok((res, hosts.iter().map(Host::from_wire).collect()))
    }))
}

pub(crate) fn align(disk: &Disk) -> Result<Call<u32>> {
    let mut payload = Vec::new();
    disk.to_wire()?.encode_into(&mut payload);
    Ok(call(Request::new(Cmd::Align, 0, 0, 0, payload), |r| {
        check(r.rv()).map(|n| n as u32)
    }))
}

pub(crate) fn acquire(pid: i32, list: &[Resource], flags: AcquireFlags) -> Result<Call<()>> {
    let payload = proto::acquire_payload(&resources(list)?);
    Ok(plain(
        Cmd::Acquire,
        flags.0,
        list.len() as u32,
        target(pid),
        payload,
    ))
}

pub(crate) fn release(pid: i32, list: &[Resource], flags: ReleaseFlags) -> Result<Call<()>> {
    let payload = proto::names_payload(&resources(list)?);
    Ok(plain(
        Cmd::Release,
        flags.0,
        list.len() as u32,
        target(pid),
        payload,
    ))
}

pub(crate) fn inquire(pid: i32) -> Result<Call<Vec<Resource>>> {
    let req = Request::new(Cmd::Inquire, 0, 0, target(pid), Vec::new());
    Ok(call(req, |r| {
        let (rv, _, text) = proto::inquire_reply(&r);
        check(rv)?;
        let text = String::from_utf8_lossy(&text.unwrap_or_default()).into_owned();
        text.split(' ')
            .filter(|s| !s.is_empty())
            .map(parse_resource)
            .collect()
    }))
}

pub(crate) fn convert(pid: i32, res: &Resource, flags: ConvertFlags) -> Result<Call<()>> {
    let payload = proto::names_payload(&[res.to_wire()?]);
    Ok(plain(Cmd::Convert, flags.0, 1, target(pid), payload))
}

pub(crate) fn killpath(path: &[u8], args: &[u8], flags: KillpathFlags) -> Result<Call<()>> {
    // Each field keeps its last byte for the NUL.
    const FIELD: usize = sanlock_wire::payload::KILLPATH_FIELD_LEN;
    if path.len() >= FIELD || args.len() >= FIELD {
        return Err(Error::Invalid(
            "killpath path and args are at most 127 bytes each".into(),
        ));
    }
    let mut payload = vec![0u8; 2 * FIELD];
    payload[..path.len()].copy_from_slice(path);
    payload[FIELD..FIELD + args.len()].copy_from_slice(args);
    Ok(plain(Cmd::Killpath, flags.0, 0, target(-1), payload))
}

pub(crate) fn restrict(flags: RestrictFlags) -> Result<Call<()>> {
    Ok(plain(Cmd::Restrict, flags.0, 0, target(-1), Vec::new()))
}

pub(crate) fn request(res: &Resource, force: ForceMode, flags: RequestFlags) -> Result<Call<()>> {
    let payload = proto::resource_payload(&res.to_wire()?);
    Ok(plain(Cmd::Request, flags.0, force.0, 0, payload))
}

pub(crate) fn examine_lockspace(ls: &Lockspace) -> Result<Call<()>> {
    Ok(plain(Cmd::ExamineLockspace, 0, 0, 0, lockspace(ls)?))
}

pub(crate) fn examine_resource(res: &Resource) -> Result<Call<()>> {
    let payload = proto::names_payload(&[res.to_wire()?]);
    Ok(plain(Cmd::ExamineResource, 0, 0, 0, payload))
}

pub(crate) fn set_lvb(res: &Resource, lvb: &[u8]) -> Result<Call<()>> {
    let mut payload = proto::names_payload(&[res.to_wire()?]);
    payload.extend_from_slice(lvb);
    Ok(plain(Cmd::SetLvb, 0, 0, 0, payload))
}

pub(crate) fn get_lvb(res: &Resource, len: u32) -> Result<Call<Vec<u8>>> {
    Ok(call(proto::get_lvb(&res.to_wire()?, len), |r| {
        check(r.rv())?;
        Ok(r.body)
    }))
}

pub(crate) fn set_event(name: &Name, event: &HostEvent, flags: SetEventFlags) -> Result<Call<()>> {
    let mut payload = proto::name_payload(name);
    event.to_wire().encode_into(&mut payload);
    Ok(plain(Cmd::SetEvent, flags.0, 0, 0, payload))
}

pub(crate) fn set_config(name: &Name, cmd: ConfigCmd) -> Result<Call<()>> {
    Ok(plain(
        Cmd::SetConfig,
        0,
        cmd.0,
        0,
        proto::name_payload(name),
    ))
}

/// The records of a STATUS, HOST_STATUS or RENEWAL stream.
fn state_stream(req: Request) -> Call<Vec<StateRecord>> {
    call(req, |r| {
        check(r.rv())?;
        Ok(proto::states(&r.body)
            .iter()
            .map(|(s, extra)| StateRecord::from_wire(s, extra))
            .collect())
    })
}

pub(crate) fn status() -> Result<Call<Vec<StateRecord>>> {
    Ok(state_stream(proto::stream(Cmd::Status, 0, None)))
}

pub(crate) fn host_status(name: &Name) -> Result<Call<Vec<StateRecord>>> {
    Ok(state_stream(proto::stream(Cmd::HostStatus, 0, Some(name))))
}

pub(crate) fn renewal(name: &Name) -> Result<Call<Vec<StateRecord>>> {
    Ok(state_stream(proto::stream(Cmd::Renewal, 0, Some(name))))
}

pub(crate) fn show() -> Result<Call<Vec<StateRecord>>> {
    Ok(state_stream(proto::stream(Cmd::Show, 0, None)))
}

pub(crate) fn log_dump() -> Result<Call<Vec<u8>>> {
    let req = Request {
        shape: proto::Shape::DataCounted,
        ..Request::new(Cmd::LogDump, 0, 0, 0, Vec::new())
    };
    Ok(call(req, |r| {
        check(r.rv())?;
        let mut text = r.body;
        while text.last() == Some(&0) {
            text.pop();
        }
        Ok(text)
    }))
}

pub(crate) fn shutdown(force: bool) -> Result<Call<()>> {
    Ok(call(proto::shutdown(force, false), |_| Ok(())))
}

pub(crate) fn shutdown_wait(force: bool) -> Result<Call<()>> {
    Ok(call(proto::shutdown(force, true), |r| {
        check(r.rv()).map(drop)
    }))
}

fn rindex_payload(rx: &Rindex) -> Result<Vec<u8>> {
    let mut payload = Vec::new();
    rx.to_wire()?.encode_into(&mut payload);
    Ok(payload)
}

fn rentry_call(req: Request) -> Call<Rentry> {
    call(req, |r| {
        let (rv, entry) = proto::rentry_reply(&r);
        check(rv)?;
        let entry = entry.ok_or(Error::Errno(crate::error::errno::EINVAL))?;
        Ok(Rentry {
            name: entry.name,
            offset: entry.offset,
        })
    })
}

fn rentry(name: &Name) -> WireRentry {
    WireRentry {
        name: *name,
        ..WireRentry::default()
    }
}

pub(crate) fn format_rindex(rx: &Rindex) -> Result<Call<()>> {
    Ok(plain(Cmd::FormatRindex, 0, 0, 0, rindex_payload(rx)?))
}

pub(crate) fn rebuild_rindex(rx: &Rindex) -> Result<Call<()>> {
    Ok(plain(Cmd::RebuildRindex, 0, 0, 0, rindex_payload(rx)?))
}

pub(crate) fn lookup_rindex(rx: &Rindex, name: &Name) -> Result<Call<Rentry>> {
    let req = proto::rindex_entry(Cmd::LookupRindex, 0, 0, 0, &rx.to_wire()?, &rentry(name));
    Ok(rentry_call(req))
}

pub(crate) fn create_resource(
    rx: &Rindex,
    name: &Name,
    max_hosts: u32,
    num_hosts: u32,
) -> Result<Call<Rentry>> {
    let wire = rx.to_wire()?;
    let req = proto::rindex_entry(
        Cmd::CreateResource,
        0,
        max_hosts,
        num_hosts,
        &wire,
        &rentry(name),
    );
    Ok(rentry_call(req))
}

pub(crate) fn delete_resource(rx: &Rindex, name: &Name) -> Result<Call<()>> {
    let req = proto::rindex_entry(Cmd::DeleteResource, 0, 0, 0, &rx.to_wire()?, &rentry(name));
    Ok(call(req, |r| check(r.rv()).map(drop)))
}

/// SANLK_RXUP_ADD / SANLK_RXUP_REM.
pub(crate) fn update_rindex(rx: &Rindex, entry: &Rentry, remove: bool) -> Result<Call<Rentry>> {
    let flags = if remove { 0x2_0000 } else { 0x1_0000 };
    let wire_entry = WireRentry {
        name: entry.name,
        offset: entry.offset,
        flags: 0,
    };
    let req = proto::rindex_entry(Cmd::UpdateRindex, flags, 0, 0, &rx.to_wire()?, &wire_entry);
    Ok(rentry_call(req))
}

fn message_call(req: Request) -> Call<MessageStatus> {
    call(req, |r| {
        let (rv, status) = proto::message_reply(&r);
        check(rv)?;
        Ok(MessageStatus::from_wire(&status.unwrap_or_default()))
    })
}

pub(crate) fn message_send(
    name: &Name,
    event: &HostEvent,
    wait_s: u32,
) -> Result<Call<MessageStatus>> {
    let event = event.to_wire();
    Ok(message_call(crate::raw::message_request(
        Cmd::MessageSend,
        name,
        Some(&event),
        wait_s,
        0,
    )))
}

pub(crate) fn message_status(name: &Name, seq: u32, wait_s: u32) -> Result<Call<MessageStatus>> {
    Ok(message_call(crate::raw::message_request(
        Cmd::MessageStatus,
        name,
        None,
        wait_s,
        seq,
    )))
}

pub(crate) fn fence(
    name: &Name,
    host_id: u64,
    generation: u64,
    wait_s: u32,
) -> Result<Call<MessageStatus>> {
    let event = HostEvent {
        host_id,
        generation,
        ..HostEvent::default()
    }
    .to_wire();
    Ok(message_call(crate::raw::message_request(
        Cmd::Fence,
        name,
        Some(&event),
        wait_s,
        0,
    )))
}

pub(crate) fn reg_event(name: &Name) -> Result<Call<()>> {
    let mut payload = proto::name_payload(name);
    HostEvent::default().to_wire().encode_into(&mut payload);
    Ok(plain(Cmd::RegEvent, 0, 0, 0, payload))
}

pub(crate) fn end_event(name: &Name) -> Result<Call<()>> {
    Ok(plain(Cmd::EndEvent, 0, 0, 0, proto::name_payload(name)))
}

/// The kind of a status record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateKind {
    /// The daemon itself.
    Daemon,
    /// A client connection (`data32` is its pid).
    Client,
    /// A lockspace.
    Lockspace,
    /// A resource lease.
    Resource,
    /// A host of a lockspace (`data32` its host id, `data64` its timestamp).
    Host,
    /// One renewal (`data64` its timestamp).
    Renewal,
    /// Ours, from `show`: what an add, acquire or removal waits for (`op=`, `kind=`, `left=`).
    Wait,
    /// A kind sanlock 3.8.5 does not define.
    Other(u32),
}

/// One record of `status`, `host_status` or `renewal`: what `sanlock client status -D` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRecord {
    /// What it describes.
    pub kind: StateKind,
    /// Per kind: a pid, a host id.
    pub data32: u32,
    /// Per kind: a host id, a lease version, a timestamp.
    pub data64: u64,
    /// Per kind: the host name, the client's name, the lockspace or resource name.
    pub name: Name,
    /// `key=value` pairs, space separated.
    pub text: String,
    /// The lockspace a Lockspace record carries.
    pub lockspace: Option<Lockspace>,
    /// The resource a Resource record carries.
    pub resource: Option<Resource>,
}

impl StateRecord {
    fn from_wire(s: &sanlock_wire::WireState, extra: &[u8]) -> StateRecord {
        use sanlock_wire::payload::{LOCKSPACE_LEN, RESOURCE_LEN};
        let kind = match s.kind {
            state_kind::DAEMON => StateKind::Daemon,
            state_kind::CLIENT => StateKind::Client,
            state_kind::LOCKSPACE => StateKind::Lockspace,
            state_kind::RESOURCE => StateKind::Resource,
            state_kind::HOST => StateKind::Host,
            state_kind::RENEWAL => StateKind::Renewal,
            state_kind::WAIT => StateKind::Wait,
            n => StateKind::Other(n),
        };
        let lockspace = (kind == StateKind::Lockspace && extra.len() >= LOCKSPACE_LEN)
            .then(|| Lockspace::from_wire(&WireLockspace::decode(&extra[..LOCKSPACE_LEN])));
        let resource = (kind == StateKind::Resource && extra.len() >= RESOURCE_LEN).then(|| {
            let mut r = WireResource::decode(&extra[..RESOURCE_LEN]);
            r.disks = extra[RESOURCE_LEN..]
                .chunks_exact(sanlock_wire::DISK_LEN)
                .map(sanlock_wire::WireDisk::decode)
                .collect();
            Resource::from_wire(&r)
        });
        StateRecord {
            kind,
            data32: s.data32,
            data64: s.data64,
            name: s.name,
            text: String::from_utf8_lossy(&s.text).into_owned(),
            lockspace,
            resource,
        }
    }

    /// The value of `key` in the text, if the record has it. A value runs to the next space,
    /// except the text's last field (a name there may hold spaces), which runs to the end.
    pub fn get(&self, key: &str) -> Option<&str> {
        let mut rest = self.text.as_str();
        loop {
            let (field, next) = match rest.find(' ') {
                Some(at) => (&rest[..at], Some(&rest[at + 1..])),
                None => (rest, None),
            };
            if let Some(value) = field.strip_prefix(key).and_then(|v| v.strip_prefix('=')) {
                let last = next.is_none_or(|n| !n.contains('='));
                return Some(if last { &rest[key.len() + 1..] } else { value });
            }
            rest = next?;
        }
    }
}

/// A resource index (`sanlock direct format -x`): where it lies and for which lockspace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rindex {
    /// The lockspace whose resources it indexes.
    pub lockspace: Name,
    /// Where the index lies.
    pub disk: Disk,
    /// How many resources it may hold (0: as many as fit).
    pub max_resources: u32,
}

impl Rindex {
    fn to_wire(&self) -> Result<WireRindex> {
        Ok(WireRindex {
            flags: 0,
            max_resources: self.max_resources,
            lockspace_name: self.lockspace,
            disk: self.disk.to_wire()?,
        })
    }
}

/// One entry of a resource index: a resource name and its lease's offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rentry {
    /// The resource name.
    pub name: Name,
    /// Its lease's offset on the index's disk.
    pub offset: u64,
}

/// What became of a host message or fence (our extension, docs/MESSAGES.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MessageStatus {
    /// The message's number.
    pub seq: u64,
    /// queued, sent, acked, no ack support, target dead, timed out, reset.
    pub status: &'static str,
    /// Milliseconds since it was sent.
    pub elapsed_ms: u32,
    /// The target host id.
    pub target: u64,
    /// The target's generation.
    pub target_generation: u64,
}

impl MessageStatus {
    fn from_wire(s: &WireMessageStatus) -> MessageStatus {
        MessageStatus {
            seq: s.seq,
            status: s.status_name(),
            elapsed_ms: s.elapsed_ms,
            target: s.target,
            target_generation: s.target_generation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_last_field_keeps_its_spaces() {
        let r = StateRecord {
            kind: StateKind::Host,
            data32: 2,
            data64: 0,
            name: Name::EMPTY,
            text: "generation=3 state=live owner_name=host two".to_string(),
            lockspace: None,
            resource: None,
        };
        assert_eq!(r.get("generation"), Some("3"));
        assert_eq!(r.get("state"), Some("live"));
        assert_eq!(r.get("owner_name"), Some("host two"));
        assert_eq!(r.get("name"), None);
    }
}
