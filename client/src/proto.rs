//! Requests and replies as values, with no socket: what each call sends, how much of the reply
//! to read, and what the reply's bytes say. The blocking and the tokio transports both run these,
//! so the two forms of every call cannot drift apart.

use sanlock_wire::payload::{state_kind, DISK_LEN, HOST_LEN, LOCKSPACE_LEN, RESOURCE_LEN};
use sanlock_wire::{
    Cmd, Header, WireHost, WireLockspace, WireMessageStatus, WireOptions, WireRentry, WireResource,
    WireState, HEADER_LEN, MESSAGE_STATUS_LEN, RENTRY_LEN, STATE_LEN,
};

/// How much the daemon sends back for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Nothing (REGISTER, SHUTDOWN without wait).
    Nothing,
    /// A header whose `length` counts the bytes that follow (at most `max_body` are read).
    Counted {
        /// A cap on the body read, for replies whose length may claim more than is sent.
        max_body: usize,
    },
    /// A header, then records until the daemon closes (STATUS, HOST_STATUS, RENEWAL).
    Stream,
    /// A header whose `data` counts the bytes that follow (LOG_DUMP; its length stays 32).
    DataCounted,
    /// As `Counted` on success; nothing follows a failure, whatever the length says (GET_LVB
    /// with a length asked for: sanlock's header then counts bytes it does not send).
    CountedOnSuccess {
        /// As for `Counted`.
        max_body: usize,
    },
}

impl Shape {
    /// How many bytes follow `header`: Some(n), or None for "until the daemon closes". The one
    /// place both transports learn it from.
    pub fn body_len(self, header: &Header) -> Option<usize> {
        let counted = |max_body: usize| {
            (header.length as usize)
                .saturating_sub(HEADER_LEN)
                .min(max_body)
        };
        match self {
            Shape::Nothing => Some(0),
            Shape::Counted { max_body } => Some(counted(max_body)),
            Shape::CountedOnSuccess { .. } if header.rv() < 0 => Some(0),
            Shape::CountedOnSuccess { max_body } => Some(counted(max_body)),
            Shape::DataCounted => Some(header.rv().max(0) as usize),
            Shape::Stream => None,
        }
    }
}

/// One request: its header, its payload, and what reply to expect.
#[derive(Clone, Debug)]
pub struct Request {
    /// The header (its length as libsanlock sets it, quirks included).
    pub header: Header,
    /// The payload.
    pub payload: Vec<u8>,
    /// The reply's shape.
    pub shape: Shape,
}

impl Request {
    /// A request whose reply is a counted header.
    pub fn new(cmd: Cmd, cmd_flags: u32, data: u32, data2: u32, payload: Vec<u8>) -> Request {
        Request {
            header: Header::request(cmd, cmd_flags, data, data2, payload.len()),
            payload,
            shape: Shape::Counted {
                max_body: usize::MAX,
            },
        }
    }

    /// The bytes to write.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = self.header.encode().to_vec();
        out.extend_from_slice(&self.payload);
        out
    }
}

/// One reply: the header and what followed it.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// The reply header (zero for a request that gets none).
    pub header: Header,
    /// The bytes after the header.
    pub body: Vec<u8>,
}

impl Reply {
    /// The signed result.
    pub fn rv(&self) -> i32 {
        self.header.rv()
    }
}

/// Payload of one lockspace.
pub fn lockspace_payload(ls: &WireLockspace) -> Vec<u8> {
    let mut out = Vec::with_capacity(LOCKSPACE_LEN);
    ls.encode_into(&mut out);
    out
}

/// A lockspace payload naming `name` only (most lockspace calls need nothing else).
pub fn name_payload(name: &sanlock_wire::Name) -> Vec<u8> {
    lockspace_payload(&WireLockspace {
        name: *name,
        ..WireLockspace::default()
    })
}

/// Payload of one resource with its disks.
pub fn resource_payload(res: &WireResource) -> Vec<u8> {
    let mut out = Vec::new();
    res.encode_into(&mut out, true);
    out
}

/// Payload of ACQUIRE: each resource with its disks, then a zeroed `sanlk_options`.
pub fn acquire_payload(resources: &[WireResource]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in resources {
        r.encode_into(&mut out, true);
    }
    WireOptions::default().encode_into(&mut out);
    out
}

/// Payload of RELEASE and CONVERT: resources without disks.
pub fn names_payload(resources: &[WireResource]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in resources {
        r.encode_into(&mut out, false);
    }
    out
}

/// STATUS (`data` = 0, or one state kind), HOST_STATUS or RENEWAL: streamed replies. The
/// latter two send a lockspace name their header's length does not count, as libsanlock does.
pub fn stream(cmd: Cmd, data: u32, name: Option<&sanlock_wire::Name>) -> Request {
    let payload = name.map(name_payload).unwrap_or_default();
    Request {
        header: Header::request(cmd, 0, data, 0, 0),
        payload,
        shape: Shape::Stream,
    }
}

/// REGISTER: no payload and no reply; the connection becomes the process's liveness.
pub fn register() -> Request {
    Request {
        shape: Shape::Nothing,
        ..Request::new(Cmd::Register, 0, 0, 0, Vec::new())
    }
}

/// SHUTDOWN (no reply) or, with `wait`, SHUTDOWN_WAIT (a reply once the daemon is going).
pub fn shutdown(force: bool, wait: bool) -> Request {
    let cmd = if wait {
        Cmd::ShutdownWait
    } else {
        Cmd::Shutdown
    };
    let mut req = Request::new(cmd, 0, u32::from(force), 0, Vec::new());
    if !wait {
        req.shape = Shape::Nothing;
    }
    req
}

/// GET_LVB of up to `len` bytes (0: one sector, the daemon's choice).
pub fn get_lvb(res: &WireResource, len: u32) -> Request {
    let mut payload = Vec::new();
    res.encode_into(&mut payload, false);
    let mut req = Request::new(Cmd::GetLvb, 0, 0, len, payload);
    let max_body = if len > 0 { len as usize } else { usize::MAX };
    req.shape = Shape::CountedOnSuccess { max_body };
    req
}

/// A rindex request carrying an entry; LOOKUP's header counts a whole resource, as
/// libsanlock's does.
pub fn rindex_entry(
    cmd: Cmd,
    cmd_flags: u32,
    data: u32,
    data2: u32,
    rx: &sanlock_wire::WireRindex,
    entry: &WireRentry,
) -> Request {
    let mut payload = Vec::new();
    rx.encode_into(&mut payload);
    entry.encode_into(&mut payload);
    let mut req = Request::new(cmd, cmd_flags, data, data2, payload);
    if cmd == Cmd::LookupRindex {
        req.header.length = (HEADER_LEN + sanlock_wire::RINDEX_LEN + RESOURCE_LEN) as u32;
    }
    req
}

/// The `n`-byte records of a counted reply (get_lockspaces, get_hosts), `count` of them at most.
fn records<T>(body: &[u8], len: usize, count: u32, decode: fn(&[u8]) -> T) -> Vec<T> {
    body.chunks_exact(len)
        .take(count as usize)
        .map(decode)
        .collect()
}

/// read_lockspace: the result, the io_timeout from disk, and the lockspace the daemon filled
/// in (only read on success, as libsanlock does).
pub fn lockspace_reply(r: &Reply) -> (i32, u32, Option<WireLockspace>) {
    let ls = (r.rv() >= 0 && r.body.len() >= LOCKSPACE_LEN)
        .then(|| WireLockspace::decode(&r.body[..LOCKSPACE_LEN]));
    (r.rv(), r.header.data2, ls)
}

/// read_resource: the result and the resource sent back (always sent).
pub fn resource_reply(r: &Reply) -> (i32, Option<WireResource>) {
    let res = (r.body.len() >= RESOURCE_LEN).then(|| WireResource::decode(&r.body[..RESOURCE_LEN]));
    (r.rv(), res)
}

/// read_resource_owners: the result, the resource and its owners.
pub fn owners_reply(r: &Reply) -> (i32, Option<WireResource>, Vec<WireHost>) {
    if r.rv() < 0 || r.body.len() < RESOURCE_LEN {
        return (r.rv(), None, Vec::new());
    }
    let hosts = records(
        &r.body[RESOURCE_LEN..],
        HOST_LEN,
        r.header.data2,
        WireHost::decode,
    );
    (
        r.rv(),
        Some(WireResource::decode(&r.body[..RESOURCE_LEN])),
        hosts,
    )
}

/// get_lockspaces: -ENOSPC still carries the lockspaces that fitted.
pub fn lockspaces_reply(r: &Reply) -> (i32, Vec<WireLockspace>) {
    if r.rv() < 0 && r.rv() != -28 {
        return (r.rv(), Vec::new());
    }
    let list = records(
        &r.body,
        LOCKSPACE_LEN,
        r.header.data2,
        WireLockspace::decode,
    );
    (r.rv(), list)
}

/// get_hosts: -ENOSPC still carries the hosts that fitted.
pub fn hosts_reply(r: &Reply) -> (i32, Vec<WireHost>) {
    if r.rv() < 0 && r.rv() != -28 {
        return (r.rv(), Vec::new());
    }
    (
        r.rv(),
        records(&r.body, HOST_LEN, r.header.data2, WireHost::decode),
    )
}

/// A rindex entry reply (libsanlock copies the entry only on success).
pub fn rentry_reply(r: &Reply) -> (i32, Option<WireRentry>) {
    let entry = (r.rv() >= 0 && r.body.len() >= RENTRY_LEN)
        .then(|| WireRentry::decode(&r.body[..RENTRY_LEN]));
    (r.rv(), entry)
}

/// A host message's reply (ours): the result and the message's status when there is one.
pub fn message_reply(r: &Reply) -> (i32, Option<WireMessageStatus>) {
    let status = (r.body.len() >= MESSAGE_STATUS_LEN)
        .then(|| WireMessageStatus::decode(&r.body[..MESSAGE_STATUS_LEN]));
    (r.rv(), status)
}

/// INQUIRE: the result, the lease count and the state string (None when the reply had none).
pub fn inquire_reply(r: &Reply) -> (i32, u32, Option<Vec<u8>>) {
    let text = (r.header.length as usize > HEADER_LEN).then(|| {
        let mut t = r.body.clone();
        if t.last() == Some(&0) {
            t.pop();
        }
        t
    });
    (r.rv(), r.header.data2, text)
}

/// The records of a STATUS, HOST_STATUS or RENEWAL stream, each with the lockspace or
/// resource (and its disks) that follows it; a record cut short ends the list.
pub fn states(mut body: &[u8]) -> Vec<(WireState, Vec<u8>)> {
    let mut out = Vec::new();
    let take = |body: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        let (head, rest) = body.split_at_checked(n)?;
        *body = rest;
        Some(head.to_vec())
    };
    while let Some(head) = take(&mut body, STATE_LEN) {
        let (mut state, str_len) = WireState::decode_head(&head);
        let Some(mut text) = take(&mut body, str_len) else {
            break;
        };
        if text.last() == Some(&0) {
            text.pop();
        }
        state.text = text;
        let extra = match state.kind {
            state_kind::LOCKSPACE => take(&mut body, LOCKSPACE_LEN).unwrap_or_default(),
            state_kind::RESOURCE => {
                let Some(mut res) = take(&mut body, RESOURCE_LEN) else {
                    break;
                };
                let r = WireResource::decode(&res);
                let disks = (r.num_disks.min(4) as usize) * DISK_LEN;
                res.extend(take(&mut body, disks).unwrap_or_default());
                res
            }
            _ => Vec::new(),
        };
        out.push((state, extra));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quirky_headers_are_libsanlocks() {
        // wire.md §3: HOST_STATUS's length does not count its lockspace.
        let name = sanlock_wire::Name::new(b"ls").unwrap();
        let r = stream(Cmd::HostStatus, 0, Some(&name));
        assert_eq!(r.header.length, 32);
        assert_eq!(r.payload.len(), LOCKSPACE_LEN);
        // LOOKUP_RINDEX counts a rindex and a whole resource though a rentry follows.
        let r = rindex_entry(
            Cmd::LookupRindex,
            0,
            0,
            0,
            &Default::default(),
            &Default::default(),
        );
        assert_eq!(r.header.length, 32 + 1104 + 128);
        assert_eq!(r.payload.len(), 1104 + 64);
        assert_eq!(shutdown(false, false).shape, Shape::Nothing);
    }

    #[test]
    fn how_much_follows_a_reply_header() {
        let reply = |rv: i32, length: u32| Header {
            length,
            ..Header::request(Cmd::GetLvb, 0, 0, 0, 0).result(rv)
        };
        let lvb = get_lvb(&WireResource::default(), 16).shape;
        assert_eq!(lvb.body_len(&reply(0, 48)), Some(16));
        // A failed GET_LVB's length counts bytes sanlock does not send.
        assert_eq!(lvb.body_len(&reply(-2, 48)), Some(0));
        let counted = Request::new(Cmd::ReadResource, 0, 0, 0, Vec::new()).shape;
        assert_eq!(counted.body_len(&reply(-2, 160)), Some(128));
        // LOG_DUMP: `data` counts the text; the length stays 32.
        assert_eq!(Shape::DataCounted.body_len(&reply(500, 32)), Some(500));
        assert_eq!(Shape::Stream.body_len(&reply(0, 32)), None);
    }

    #[test]
    fn a_stream_cut_short_keeps_the_whole_records() {
        let mut body = Vec::new();
        for n in 0..3 {
            WireState {
                kind: state_kind::CLIENT,
                data32: n,
                text: b"cmd=x".to_vec(),
                ..WireState::default()
            }
            .encode_into(&mut body);
        }
        body.truncate(body.len() - 3);
        let got = states(&body);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0.data32, 1);
        assert_eq!(got[1].0.text, b"cmd=x");
    }

    #[test]
    fn enospc_still_carries_the_records_that_fitted() {
        let mut body = Vec::new();
        WireHost {
            host_id: 4,
            ..WireHost::default()
        }
        .encode_into(&mut body);
        let mut header = Header::request(Cmd::GetHosts, 0, 0, 0, 0).result(-28);
        header.data2 = 1;
        let (rv, hosts) = hosts_reply(&Reply { header, body });
        assert_eq!((rv, hosts.len(), hosts[0].host_id), (-28, 1, 4));
    }
}
