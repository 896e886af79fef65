//! `sanlock client ACTION …`: each action's request and exactly what sanlock 3.8.5 prints
//! (wire.md §6.2, §6.4, appendix B). Each returns the action's result value; the caller exits
//! 0 only when it is exactly 0.

use sanlock_core::ondisk::{Name, SectorSize};

use super::locators::{export_path, ResourceArg, ResourceSuffix};
use super::options::{ClientAction, Options, DEFAULT_IO_TIMEOUT};
use super::progress::{acquire_of, wait_of, Progress};
use crate::client::{self, Connection};
use crate::wire::payload::{state_kind, RES_LVER, RES_NUM_HOSTS, RES_PERSISTENT, RES_SHARED};
use crate::wire::{
    Cmd, WireDisk, WireHostEvent, WireLockspace, WireRentry, WireResource, WireRindex, WireState,
};

/// Runs a client action, appending what it prints to `out`; returns the action's result.
pub fn run(action: ClientAction, o: &Options, out: &mut Vec<u8>) -> i32 {
    use ClientAction::*;
    let mut say = |s: String| out.extend_from_slice(s.as_bytes());
    let rv = match action {
        Status => return status(o, out),
        HostStatus => return host_status(o, out),
        Renewal => return renewal(o, out),
        Gets => return gets(o, out),
        LogDump => return log_dump(out),
        Read => return read(o, out),
        Inquire => return inquire(o, out),
        Version => return version(out),
        Shutdown => {
            say(format!("shutdown force {} wait {}\n", o.force_mode, o.wait));
            let _progress = Progress::start("shutdown".into(), wait_of("rem_lockspace", None));
            let rv = shutdown(o);
            say(format!("shutdown done {rv}\n"));
            rv
        }
        AddLockspace => {
            let t = o.io_timeout_arg;
            let label = if t == DEFAULT_IO_TIMEOUT {
                say("add_lockspace\n".into());
                "add_lockspace".to_string()
            } else {
                say(format!("add_lockspace_timeout {t}\n"));
                "add_lockspace_timeout".to_string()
            };
            let _progress = Progress::start(
                format!("add_lockspace {}", o.lockspace.name),
                wait_of("add_lockspace", Some(o.lockspace.name.to_string())),
            );
            let rv = client::add_lockspace(&lockspace(o), false, t as u32);
            say(format!("{label} done {rv}\n"));
            rv
        }
        InqLockspace => {
            say("inq_lockspace\n".into());
            let rv = client::inq_lockspace(&lockspace(o), false);
            say(format!("inq_lockspace done {rv}\n"));
            rv
        }
        RemLockspace => {
            say("rem_lockspace\n".into());
            let _progress = Progress::start(
                format!("rem_lockspace {}", o.lockspace.name),
                wait_of("rem_lockspace", Some(o.lockspace.name.to_string())),
            );
            let rv = client::rem_lockspace(&lockspace(o), false, false);
            say(format!("rem_lockspace done {rv}\n"));
            rv
        }
        Acquire => {
            say(format!("acquire pid {}\n", o.pid));
            let rv = acquire_on(None, o);
            say(format!("acquire done {rv}\n"));
            rv
        }
        Convert => {
            say(format!("convert pid {}\n", o.pid));
            let rv = match o.resources.first() {
                Some(r) => client::call(
                    Cmd::Convert,
                    0,
                    0,
                    o.pid as u32,
                    &client::names_payload(&[resource(r, o)]),
                ),
                None => -22,
            };
            say(format!("convert done {rv}\n"));
            rv
        }
        Release => {
            say(format!("release pid {}\n", o.pid));
            let rv = release(o);
            say(format!("release done {rv}\n"));
            rv
        }
        Align => {
            say("align\n".into());
            let disk = WireDisk {
                path: o.lockspace.path.clone(),
                offset: o.lockspace.offset,
            };
            let mut payload = Vec::new();
            disk.encode_into(&mut payload);
            let rv = client::call(Cmd::Align, 0, 0, 0, &payload);
            say(format!("align done {rv}\n"));
            rv
        }
        Init => {
            say("init\n".into());
            let rv = init(o);
            say(format!("init done {rv}\n"));
            rv
        }
        Command => return command(o, out),
        Request => {
            say("request\n".into());
            let rv = match o.resources.first() {
                Some(r) => {
                    let mut res = resource(r, o);
                    res.flags &= !crate::wire::payload::SIZE_FLAGS;
                    client::call(
                        Cmd::Request,
                        0,
                        o.force_mode,
                        0,
                        &client::resource_payload(&res),
                    )
                }
                None => -22,
            };
            say(format!("request done {rv}\n"));
            rv
        }
        Examine => {
            say("examine\n".into());
            // A LOCKSPACE with a path means the lockspace; otherwise the first -r.
            let rv = if !o.lockspace.path.is_empty() {
                let mut ls = lockspace(o);
                ls.flags = 0;
                client::call(
                    Cmd::ExamineLockspace,
                    0,
                    0,
                    0,
                    &client::lockspace_payload(&ls),
                )
            } else if let Some(r) = o.resources.first() {
                let mut res = resource(r, o);
                res.flags &= !crate::wire::payload::SIZE_FLAGS;
                client::call(
                    Cmd::ExamineResource,
                    0,
                    0,
                    0,
                    &client::names_payload(&[res]),
                )
            } else {
                -22
            };
            say(format!("examine done {rv}\n"));
            rv
        }
        SetEvent => {
            say(format!(
                "set_event {} {} event 0x{:x} data 0x{:x}\n",
                o.host_id, o.host_generation, o.he_event, o.he_data
            ));
            let event = WireHostEvent {
                host_id: o.host_id,
                generation: o.host_generation,
                event: o.he_event,
                data: o.he_data,
            };
            let rv = client::set_event(&o.lockspace.name, &event, 0);
            say(format!("set_event done {rv}\n"));
            rv
        }
        Message | Fence => return message_or_fence(action == Fence, o, out),
        SetConfig => {
            // -O wins over -u; neither sends 0, which the daemon refuses.
            let cmd = match (o.orphan, o.used) {
                (Some(orphan), _) => {
                    if orphan != 0 {
                        4
                    } else {
                        8
                    }
                }
                (None, Some(used)) => {
                    if used != 0 {
                        1
                    } else {
                        2
                    }
                }
                (None, None) => 0,
            };
            say(format!(
                "set_config {} {cmd}\n",
                String::from_utf8_lossy(o.lockspace.name.as_bytes())
            ));
            let rv = client::set_config(&o.lockspace.name, cmd);
            say(format!("set_config done {rv}\n"));
            rv
        }
        Format | Rebuild | Create | Delete | Lookup | Update => return rindex(action, o, out),
    };
    rv
}

/// The rindex actions: the RINDEX of -x, the rentry of -e.
fn rindex(action: ClientAction, o: &Options, out: &mut Vec<u8>) -> i32 {
    let rx = rindex_arg(o);
    let entry = WireRentry {
        name: o.rentry.name,
        offset: o.rentry.offset,
        flags: 0,
    };
    // libsanlock refuses a RINDEX without a lockspace name or path before connecting.
    let incomplete = rx.lockspace_name.is_empty() || rx.disk.path.is_empty();
    let entry_call = |cmd, flags| {
        if incomplete {
            (-22, None)
        } else {
            client::rindex_entry_call(cmd, flags, 0, 0, &rx, &entry)
        }
    };
    let plain_call = |cmd| {
        if incomplete {
            -22
        } else {
            client::rindex_call(cmd, 0, &rx)
        }
    };
    let mut say = |s: String| out.extend_from_slice(s.as_bytes());
    match action {
        ClientAction::Format => {
            let rv = plain_call(Cmd::FormatRindex);
            say(format!("format done {rv}\n"));
            rv
        }
        ClientAction::Rebuild => {
            let rv = plain_call(Cmd::RebuildRindex);
            say(format!("rebuild done {rv}\n"));
            rv
        }
        ClientAction::Create => {
            let (rv, back) = entry_call(Cmd::CreateResource, 0);
            say(format!("create_resource done {rv}\n"));
            if rv == 0 {
                say(format!(
                    "offset {}\n",
                    back.map_or(entry.offset, |b| b.offset)
                ));
            }
            rv
        }
        ClientAction::Delete => {
            let (rv, _) = entry_call(Cmd::DeleteResource, 0);
            say(format!("delete_resource done {rv}\n"));
            rv
        }
        ClientAction::Lookup => {
            let (rv, back) = entry_call(Cmd::LookupRindex, 0);
            say(format!("lookup done {rv}\n"));
            if rv == 0 {
                say(lookup_line(&back.unwrap_or(entry)));
            }
            rv
        }
        _ => {
            let flags = if o.clear {
                crate::rindex::RXUP_REM
            } else {
                crate::rindex::RXUP_ADD
            };
            let (rv, _) = entry_call(Cmd::UpdateRindex, flags);
            say(format!("update done {rv}\n"));
            rv
        }
    }
}

/// `name <name or -> offset <n>`, as lookup prints its answer.
pub fn lookup_line(e: &WireRentry) -> String {
    let name = if e.name.is_empty() {
        "-".to_string()
    } else {
        String::from_utf8_lossy(e.name.as_bytes()).into_owned()
    };
    format!("name {name} offset {}\n", e.offset)
}

/// The RINDEX of -x, with the sector and align bits of -Z and -A.
pub fn rindex_arg(o: &Options) -> WireRindex {
    WireRindex {
        flags: size_flags(o),
        max_resources: 0,
        lockspace_name: o.rindex.lockspace_name,
        disk: WireDisk {
            path: o.rindex.path.clone(),
            offset: o.rindex.offset,
        },
    }
}

/// The sector/align API bits the CLI sets from -Z and -A, each on its own (a lone one makes
/// the daemon answer -1, as sanlock's does).
fn size_flags(o: &Options) -> u32 {
    let sector = SectorSize::from_bytes(o.sector_size as u64).map_or(0, |s| s.api_flag());
    sector | o.align_size.map_or(0, |a| a.api_flag())
}

fn lockspace(o: &Options) -> WireLockspace {
    WireLockspace {
        name: o.lockspace.name,
        host_id: o.lockspace.host_id,
        flags: size_flags(o),
        disk: WireDisk {
            path: o.lockspace.path.clone(),
            offset: o.lockspace.offset,
        },
    }
}

fn resource(r: &ResourceArg, o: &Options) -> WireResource {
    let mut res = WireResource {
        lockspace_name: r.lockspace_name,
        name: r.name,
        flags: size_flags(o),
        num_disks: r.disks.len() as u32,
        disks: r
            .disks
            .iter()
            .map(|d| WireDisk {
                path: d.path.clone(),
                offset: d.offset,
            })
            .collect(),
        ..WireResource::default()
    };
    match r.suffix {
        ResourceSuffix::Lver(v) => {
            res.flags |= RES_LVER;
            res.lver = v;
        }
        ResourceSuffix::Shared => res.flags |= RES_SHARED,
        ResourceSuffix::None => {}
    }
    res
}

/// ACQUIRE of every -r, on a registered connection or for -p's pid.
fn acquire_on(conn: Option<&mut Connection>, o: &Options) -> i32 {
    let resources: Vec<WireResource> = o
        .resources
        .iter()
        .map(|r| {
            let mut res = resource(r, o);
            // Size flags mean nothing to acquire; sanlock's CLI sends none.
            res.flags &= !crate::wire::payload::SIZE_FLAGS;
            if o.num_hosts != 0 {
                res.flags |= RES_NUM_HOSTS;
                res.data32 = o.num_hosts as u32;
            }
            if o.persistent != 0 {
                res.flags |= RES_PERSISTENT;
            }
            res
        })
        .collect();
    let flags = if o.orphan.unwrap_or(0) != 0 { 2 } else { 0 };
    let names: Vec<(String, String)> = o
        .resources
        .iter()
        .map(|r| (r.lockspace_name.to_string(), r.name.to_string()))
        .collect();
    let label = names
        .iter()
        .map(|(ls, r)| format!("{ls}:{r}"))
        .collect::<Vec<_>>()
        .join(" ");
    let _progress = Progress::start(format!("acquire {label}"), acquire_of(names));
    let payload = client::acquire_payload(&resources);
    let count = resources.len() as u32;
    match conn {
        Some(c) => (|| -> Result<i32, i32> {
            c.request(Cmd::Acquire, flags, count, u32::MAX, &payload)?;
            Ok(c.recv_header()?.rv())
        })()
        .unwrap_or_else(|e| e),
        None => client::call(Cmd::Acquire, flags, count, o.pid as u32, &payload),
    }
}

fn release(o: &Options) -> i32 {
    let mut resources: Vec<WireResource> = o.resources.iter().map(|r| resource(r, o)).collect();
    if o.orphan.unwrap_or(0) != 0 && resources.is_empty() && !o.lockspace.name.is_empty() {
        // `-O 1 -s NAME`: every orphan of the lockspace (a resource with only its name).
        resources.push(WireResource {
            lockspace_name: o.lockspace.name,
            ..WireResource::default()
        });
    }
    let mut flags = 0;
    if o.all != 0 {
        flags |= 1;
    }
    if o.orphan.unwrap_or(0) != 0 {
        flags |= 4;
    }
    client::call(
        Cmd::Release,
        flags,
        resources.len() as u32,
        o.pid as u32,
        &client::names_payload(&resources),
    )
}

fn shutdown(o: &Options) -> i32 {
    let run = || -> Result<i32, i32> {
        let mut c = Connection::open()?;
        if o.wait != 0 {
            c.request(Cmd::ShutdownWait, 0, o.force_mode, 0, &[])?;
            Ok(c.recv_header()?.rv())
        } else {
            c.request(Cmd::Shutdown, 0, o.force_mode, 0, &[])?;
            Ok(0)
        }
    };
    run().unwrap_or_else(|e| e)
}

fn init(o: &Options) -> i32 {
    if let Some(r) = o.resources.first() {
        let res = resource(r, o);
        let flags = if o.clear { 1 } else { 0 };
        // sanlock's CLI passes -m where the daemon reads num_hosts (§4.19).
        client::write_resource(&res, o.max_hosts as u32, o.num_hosts as u32, flags)
    } else {
        client::write_lockspace(&lockspace(o), o.io_timeout_arg as u32)
    }
}

fn read(o: &Options, out: &mut Vec<u8>) -> i32 {
    let mut say = |s: &[u8]| out.extend_from_slice(s);
    if let Some(r) = o.resources.first() {
        let res = resource(r, o);
        let (rv, back, owners) = if o.get_hosts != 0 {
            client::read_resource_owners(&res)
        } else {
            let (rv, back) = client::read_resource(&res);
            (rv, back, Vec::new())
        };
        let Some(back) = read_result(rv, back, &mut say) else {
            return rv;
        };
        let mut line = b"r ".to_vec();
        let shared = back.flags & RES_SHARED != 0;
        let shown = WireResource {
            disks: res.disks.clone(),
            ..back.clone()
        };
        line.extend(sanlock_machine::daemon::resource_string(
            &shown, shared, back.lver,
        ));
        line.push(b'\n');
        say(&line);
        if o.debug {
            let (ss, align) = sizes_from_flags(back.flags);
            say(format!("sector_size {ss}\nalign_size {align}\n").as_bytes());
        }
        for h in owners {
            if h.timestamp != 0 {
                say(format!(
                    "h {} gen {} timestamp {}\n",
                    h.host_id, h.generation, h.timestamp
                )
                .as_bytes());
            } else {
                say(format!("h {} gen {}\n", h.host_id, h.generation).as_bytes());
            }
        }
        return 0;
    }
    let ls = lockspace(o);
    let (rv, io_timeout, back) = client::read_lockspace(&ls);
    let Some(back) = read_result(rv, back, &mut say) else {
        return rv;
    };
    let mut line = b"s ".to_vec();
    line.extend_from_slice(back.name.as_bytes());
    line.extend_from_slice(format!(":{}:", back.host_id).as_bytes());
    line.extend_from_slice(&back.disk.path);
    line.extend_from_slice(format!(":{}\n", back.disk.offset).as_bytes());
    say(&line);
    if o.debug {
        let (ss, align) = sizes_from_flags(back.flags);
        say(format!("io_timeout {io_timeout}\nsector_size {ss}\nalign_size {align}\n").as_bytes());
    }
    0
}

/// What a read sent back when it succeeded; else `read error <rv>` is said.
fn read_result<T>(rv: i32, back: Option<T>, say: &mut impl FnMut(&[u8])) -> Option<T> {
    match (rv, back) {
        (0, Some(back)) => Some(back),
        _ => {
            say(format!("read error {rv}\n").as_bytes());
            None
        }
    }
}

fn sizes_from_flags(flags: u32) -> (u32, u64) {
    use sanlock_core::ondisk::AlignSize;
    (
        SectorSize::from_api_flags(flags).map_or(0, |s| s.bytes()),
        AlignSize::from_api_flags(flags).map_or(0, |a| a.bytes()),
    )
}

fn inquire(o: &Options, out: &mut Vec<u8>) -> i32 {
    out.extend_from_slice(format!("inquire pid {}\n", o.pid).as_bytes());
    let run = || -> Result<(i32, u32, Option<Vec<u8>>), i32> {
        let mut c = Connection::open()?;
        c.request(Cmd::Inquire, 0, 0, o.pid as u32, &[])?;
        let h = c.recv_header()?;
        let text = if h.length as usize > crate::wire::HEADER_LEN {
            let mut t = c.recv_exact(h.length as usize - crate::wire::HEADER_LEN)?;
            if t.last() == Some(&0) {
                t.pop();
            }
            Some(t)
        } else {
            None
        };
        Ok((h.rv(), h.data2, text))
    };
    let (rv, count, text) = run().unwrap_or_else(|e| (e, 0, None));
    out.extend_from_slice(format!("inquire done {rv} res_count {count}\n").as_bytes());
    if rv < 0 {
        return rv;
    }
    match text {
        None => out.extend_from_slice(b"\"(null)\"\n"),
        Some(t) => {
            out.push(b'"');
            out.extend_from_slice(&t);
            out.extend_from_slice(b"\"\n");
            if o.debug {
                out.extend_from_slice(
                    format!("\nstate_to_args done 0 res_count {count}\n").as_bytes(),
                );
                for part in t.split(|&b| b == b' ') {
                    out.push(b'"');
                    out.extend_from_slice(part);
                    out.extend_from_slice(b"\"\n");
                }
                out.extend_from_slice(b"\nargs_to_state done 0\n");
                out.push(b'"');
                out.extend_from_slice(&t);
                out.extend_from_slice(b"\"\n");
            }
        }
    }
    rv
}

fn version(out: &mut Vec<u8>) -> i32 {
    let (rv, v, proto) = client::version();
    if rv < 0 {
        out.extend_from_slice(format!("daemon version error {rv}\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "client version 3.8.5 (0x03080500)\ndaemon version {}.{}.{} (0x{v:08x})\n\
             client socket protocol 0.1\ndaemon socket protocol {}.{}\n",
            v >> 24,
            (v >> 16) & 0xff,
            (v >> 8) & 0xff,
            proto >> 16,
            proto & 0xffff
        )
        .as_bytes(),
    );
    // `client version` always exits 0 (wire.md §6.2).
    0
}

fn log_dump(out: &mut Vec<u8>) -> i32 {
    let run = || -> Result<(i32, Vec<u8>), i32> {
        let mut c = Connection::open()?;
        c.request(Cmd::LogDump, 0, 0, 0, &[])?;
        let h = c.recv_header()?;
        let n = h.rv().max(0) as usize;
        let text = c.recv_exact(n).unwrap_or_default();
        Ok((h.rv(), text))
    };
    match run() {
        Ok((rv, text)) => {
            out.extend_from_slice(&text);
            out.push(b'\n');
            // The result is the byte count, so the exit is 1 even on success (§6.2).
            rv
        }
        Err(rv) => rv,
    }
}

/// Reads a whole status-type stream; (header result, records).
/// A stream's records, each with the struct that follows it.
type Records = Vec<(WireState, Vec<u8>)>;

/// A status record's line, its pid (clients and resources) and its lockspace name.
type StatusLine<'a> = (Vec<u8>, &'a WireState, Option<i64>, Option<Name>);

fn stream(cmd: Cmd, data: u32, name: Option<&Name>) -> Result<(i32, u32, Records), i32> {
    let mut c = Connection::open()?;
    let payload = name.map(|n| {
        client::lockspace_payload(&WireLockspace {
            name: *n,
            ..WireLockspace::default()
        })
    });
    // HOST_STATUS and RENEWAL say length 32 although a lockspace follows (§4.25).
    let header = crate::wire::Header::request(cmd, 0, data, 0, 0);
    c.send(header, payload.as_deref().unwrap_or(&[]))?;
    let h = c.recv_header()?;
    Ok((h.rv(), h.data2, c.recv_states()))
}

fn status(o: &Options, out: &mut Vec<u8>) -> i32 {
    let (rv, _, records) = match stream(Cmd::Status, 0, None) {
        Ok(r) => r,
        Err(rv) => return rv,
    };
    let lines: Vec<StatusLine> = records
        .iter()
        .map(|(s, extra)| status_line(s, extra))
        .collect();
    // The order to print in; `None` is the `-` line before what no group claimed.
    let order: Vec<Option<usize>> = match o.sort_arg {
        Some(b'p') | Some(b's') => sorted(&lines, o.sort_arg == Some(b'p')),
        _ => (0..lines.len()).map(Some).collect(),
    };
    for i in order {
        let Some(i) = i else {
            out.extend_from_slice(b"-\n");
            continue;
        };
        let (line, s, ..) = &lines[i];
        out.extend_from_slice(line);
        out.push(b'\n');
        if o.debug {
            indented(out, &s.text);
        }
    }
    rv
}

/// `status -o p` (by pid) or `-o s` (by lockspace), wire.md §6.4: the daemon and the pid -1
/// clients first, then each group's head with its resources, then `-` and the rest.
fn sorted(lines: &[StatusLine], by_pid: bool) -> Vec<Option<usize>> {
    let mut used = vec![false; lines.len()];
    let mut order = Vec::new();
    for (i, (_, s, pid, _)) in lines.iter().enumerate() {
        let first = s.kind == state_kind::DAEMON
            || (s.kind == state_kind::CLIENT && *pid == Some(-1))
            || (by_pid && s.kind == state_kind::LOCKSPACE)
            || (!by_pid && s.kind == state_kind::CLIENT);
        if first {
            order.push(Some(i));
            used[i] = true;
        }
    }
    for (i, (_, s, key, name)) in lines.iter().enumerate() {
        let group = if by_pid {
            s.kind == state_kind::CLIENT && *key != Some(-1)
        } else {
            s.kind == state_kind::LOCKSPACE
        };
        if !group || used[i] {
            continue;
        }
        order.push(Some(i));
        used[i] = true;
        for (j, (_, r, rpid, rls)) in lines.iter().enumerate() {
            let belongs =
                r.kind == state_kind::RESOURCE && if by_pid { rpid == key } else { rls == name };
            if belongs && !used[j] {
                order.push(Some(j));
                used[j] = true;
            }
        }
    }
    let rest: Vec<usize> = (0..lines.len()).filter(|&i| !used[i]).collect();
    if !rest.is_empty() {
        order.push(None);
        order.extend(rest.into_iter().map(Some));
    }
    order
}

/// A state string with each `key=value` on its own line, indented 4 spaces (`-D`).
fn indented(out: &mut Vec<u8>, text: &[u8]) {
    for piece in text.split(|&b| b == b' ') {
        out.extend_from_slice(b"    ");
        out.extend_from_slice(piece);
        out.push(b'\n');
    }
}

/// The line of one status record (see [`StatusLine`]).
fn status_line<'a>(s: &'a WireState, extra: &[u8]) -> StatusLine<'a> {
    let list = text_value(&s.text, b"list=");
    let mut line = Vec::new();
    match s.kind {
        state_kind::DAEMON => {
            line.extend_from_slice(b"daemon ");
            line.extend_from_slice(s.name.as_bytes());
            (line, s, None, None)
        }
        state_kind::CLIENT => {
            line.extend_from_slice(format!("p {} ", s.data32 as i32).as_bytes());
            line.extend_from_slice(s.name.as_bytes());
            (line, s, Some(i64::from(s.data32 as i32)), None)
        }
        state_kind::LOCKSPACE if extra.len() == crate::wire::LOCKSPACE_LEN => {
            let ls = WireLockspace::decode(extra);
            line.extend_from_slice(b"s ");
            line.extend_from_slice(ls.name.as_bytes());
            line.extend_from_slice(format!(":{}:", ls.host_id).as_bytes());
            line.extend(export_path(&ls.disk.path));
            line.extend_from_slice(format!(":{}", ls.disk.offset).as_bytes());
            match list.as_deref() {
                Some(b"add") => line.extend_from_slice(b" ADD"),
                Some(b"rem") => line.extend_from_slice(b" REM"),
                _ => {}
            }
            (line, s, None, Some(ls.name))
        }
        state_kind::RESOURCE if extra.len() >= crate::wire::RESOURCE_LEN => {
            let mut res = WireResource::decode(&extra[..crate::wire::RESOURCE_LEN]);
            res.disks = extra[crate::wire::RESOURCE_LEN..]
                .chunks_exact(crate::wire::DISK_LEN)
                .map(WireDisk::decode)
                .collect();
            line.extend_from_slice(b"r ");
            let shared = res.flags & RES_SHARED != 0;
            line.extend(sanlock_machine::daemon::resource_string(
                &res, shared, s.data64,
            ));
            // The pid is printed unsigned here (§6.4).
            line.extend_from_slice(format!(" p {}", s.data32).as_bytes());
            match list.as_deref() {
                Some(b"add") => line.extend_from_slice(b" ADD"),
                Some(b"rem") => line.extend_from_slice(b" REM"),
                Some(b"orphan") => line.extend_from_slice(b" ORPHAN"),
                _ => {}
            }
            (
                line,
                s,
                Some(i64::from(s.data32 as i32)),
                Some(res.lockspace_name),
            )
        }
        _ => (line, s, None, None),
    }
}

fn text_value(text: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    text.split(|&b| b == b' ')
        .find_map(|kv| kv.strip_prefix(key).map(<[u8]>::to_vec))
}

fn host_lines(o: &Options, name: &Name, out: &mut Vec<u8>) -> i32 {
    let (rv, _, records) = match stream(Cmd::HostStatus, 0, Some(name)) {
        Ok(r) => r,
        Err(rv) => return rv,
    };
    for (s, _) in &records {
        out.extend_from_slice(format!("{} timestamp {}\n", s.data32, s.data64).as_bytes());
        if o.debug {
            indented(out, &s.text);
        }
    }
    rv
}

fn host_status(o: &Options, out: &mut Vec<u8>) -> i32 {
    if !o.lockspace.name.is_empty() {
        return host_lines(o, &o.lockspace.name, out);
    }
    let (_, _, records) = match stream(Cmd::Status, state_kind::LOCKSPACE, None) {
        Ok(r) => r,
        Err(rv) => return rv,
    };
    for (s, _) in records
        .iter()
        .filter(|(s, _)| s.kind == state_kind::LOCKSPACE)
    {
        out.extend_from_slice(b"lockspace ");
        out.extend_from_slice(s.name.as_bytes());
        out.push(b'\n');
        host_lines(o, &s.name, out);
    }
    0
}

fn renewal(o: &Options, out: &mut Vec<u8>) -> i32 {
    if o.lockspace.name.is_empty() {
        return 1;
    }
    let (rv, _, records) = match stream(Cmd::Renewal, 0, Some(&o.lockspace.name)) {
        Ok(r) => r,
        Err(rv) => return rv,
    };
    for (s, _) in &records {
        out.extend_from_slice(&s.text);
        out.push(b'\n');
    }
    rv
}

fn gets(o: &Options, out: &mut Vec<u8>) -> i32 {
    let (rv, list) = client::get_lockspaces();
    if rv < 0 && rv != -28 {
        out.extend_from_slice(format!("gets error {rv}\n").as_bytes());
        return rv;
    }
    for ls in &list {
        let flags = match ls.flags {
            f if f & crate::wire::payload::LSF_ADD != 0 => "ADD ",
            f if f & crate::wire::payload::LSF_REM != 0 => "REM ",
            _ => "",
        };
        out.extend_from_slice(b"s ");
        out.extend_from_slice(ls.name.as_bytes());
        out.extend_from_slice(format!(":{}:", ls.host_id).as_bytes());
        out.extend_from_slice(&ls.disk.path);
        out.extend_from_slice(format!(":{} {flags}\n", ls.disk.offset).as_bytes());
        if o.get_hosts != 0 {
            let (hrv, hosts) = client::get_hosts(&ls.name, 0);
            if hrv == -11 {
                out.extend_from_slice(b"hosts not ready\n");
            } else if hrv < 0 {
                out.extend_from_slice(format!("hosts error {hrv}\n").as_bytes());
            }
            for h in hosts {
                let state = match h.flags & 0xf {
                    1 => "UNKNOWN",
                    2 => "FREE",
                    3 => "LIVE",
                    4 => "FAIL",
                    5 => "DEAD",
                    _ => "ERROR",
                };
                out.extend_from_slice(
                    format!(
                        "h {} gen {} timestamp {} {state}\n",
                        h.host_id, h.generation, h.timestamp
                    )
                    .as_bytes(),
                );
            }
        }
    }
    rv
}

/// `client command -r RES… -c prog args`: register, acquire on the registered connection,
/// then exec the program with the connection kept open across the exec (its liveness).
fn command(o: &Options, out: &mut Vec<u8>) -> i32 {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let mut conn = match Connection::open() {
        Ok(c) => c,
        Err(rv) => {
            out.extend_from_slice(format!("register\nregister done {rv}\n").as_bytes());
            return rv;
        }
    };
    if let Err(rv) = conn.request(Cmd::Register, 0, 0, 0, &[]) {
        out.extend_from_slice(format!("register\nregister done {rv}\n").as_bytes());
        return rv;
    }
    let stream = conn.into_stream();
    let fd = stream.as_raw_fd();
    out.extend_from_slice(format!("register\nregister done {fd}\nacquire fd {fd}\n").as_bytes());
    let mut conn = Connection::from_stream(stream);
    let rv = acquire_on(Some(&mut conn), o);
    out.extend_from_slice(format!("acquire done {rv}\n").as_bytes());
    if rv < 0 {
        return rv;
    }
    if o.command.is_empty() {
        // sanlock sleeps forever without -c; so does this process, holding its leases.
        let _ = std::io::stdout().write_all(out);
        let _ = std::io::stdout().flush();
        out.clear();
        loop {
            std::thread::park();
        }
    }
    // Keep the registered connection across exec: it is the new program's liveness.
    let stream = conn.into_stream();
    let _ = rustix::io::fcntl_setfd(&stream, rustix::io::FdFlags::empty());
    // sanlock's buffered stdout is lost at exec when it is not a tty; ours is printed first.
    let _ = std::io::stdout().write_all(out);
    let _ = std::io::stdout().flush();
    out.clear();
    let err = exec(&o.command);
    std::mem::forget(stream);
    eprintln!("sanlock: cannot run the command: {err}");
    -1
}

fn exec(argv: &[Vec<u8>]) -> std::io::Error {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let program = std::ffi::OsStr::from_bytes(&argv[0]);
    std::process::Command::new(program)
        .args(argv[1..].iter().map(|a| std::ffi::OsStr::from_bytes(a)))
        .exec()
}

/// `client message` and `client fence` (ours, docs/MESSAGES.md): what was asked, what became
/// of it, and the result. Without `-w` they wait until the message resolves.
fn message_or_fence(fence: bool, o: &Options, out: &mut Vec<u8>) -> i32 {
    let mut say = |s: String| out.extend_from_slice(s.as_bytes());
    let what = if fence { "fence" } else { "message" };
    if !client::supports_messages(std::time::Duration::from_secs(5)) {
        // A sanlock 3.8.5 daemon never answers a command it does not know: say so, not hang.
        eprintln!(
            "{what}: the daemon at {} does not answer host-message commands (sanlock 3.8.5?)",
            client::socket_path().display()
        );
        say(format!("{what} done -95\n"));
        return -95;
    }
    let wait = if o.wait_given {
        o.wait.max(0) as u32
    } else {
        u32::MAX
    };
    let (what, (rv, status)) = if fence {
        say(format!("fence {} {}\n", o.host_id, o.host_generation));
        let r = client::fence(&o.lockspace.name, o.host_id, o.host_generation, wait);
        ("fence", r)
    } else {
        say(format!(
            "message {} {} event 0x{:x} data 0x{:x}\n",
            o.host_id, o.host_generation, o.message_event, o.he_data
        ));
        let event = WireHostEvent {
            host_id: o.host_id,
            generation: o.host_generation,
            event: o.message_event,
            data: o.he_data,
        };
        ("message", client::message(&o.lockspace.name, &event, wait))
    };
    if let Some(st) = status {
        say(format!(
            "{what} {} to host {} gen {}: {} after {} ms\n",
            st.seq,
            st.target,
            st.target_generation,
            st.status_name(),
            st.elapsed_ms
        ));
    }
    say(format!("{what} done {rv}\n"));
    rv
}
