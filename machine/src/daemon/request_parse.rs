//! What a request's payload is, decided without reading it: given the header and the payload
//! bytes received so far, either how many bytes the command needs in all before it can be
//! decided, or the decoded request (wire.md §1.3). The connection reads exactly what is asked
//! and no more, so a lying `length` or a short payload behaves as in sanlock 3.8.5, and the
//! fuzz target feeds this function arbitrary bytes with no socket at all.

use crate::wire::payload::{HOST_EVENT_LEN, KILLPATH_FIELD_LEN, MAX_DISKS, MAX_RESOURCES};
use crate::wire::{
    Cmd, Header, WireDisk, WireHostEvent, WireLockspace, WireOptions, WireRentry, WireResource,
    WireRindex, DISK_LEN, HEADER_LEN, LOCKSPACE_LEN, OPTIONS_LEN, RENTRY_LEN, RESOURCE_LEN,
    RINDEX_LEN,
};

use super::lvb::MAX_LVB;
use super::messages::Call;

const E2BIG: i32 = -7;
const ERANGE: i32 = -34;
/// What a refused ACQUIRE's payload is drained up to: 8 resources of 4 disks and the options.
const DRAIN_MOST: usize = 8 * (RESOURCE_LEN + 4 * DISK_LEN) + OPTIONS_LEN;

/// Where parsing stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse {
    /// The payload must reach this many bytes (always more than were given).
    Need(usize),
    /// Decided, having used this many bytes of the payload.
    Done(Parsed, usize),
}

/// A decoded request, sorted by who answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// REGISTER: no reply.
    Register,
    /// The engine answers.
    Call(Call),
    /// The connection answers the header with `rv` at once, after reading and dropping
    /// `drain` more bytes (a refused ACQUIRE drains what it sent; the others read nothing more).
    Refused { rv: i32, drain: usize },
    /// A disk-only request, run on a blocking thread.
    Disk(DiskCall),
    /// REG_EVENT for the lockspace (its host_event was read and dropped).
    RegEvent(WireLockspace),
}

/// The requests that only read or write a disk, with no lease and no engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskCall {
    /// WRITE_LOCKSPACE (io_timeout in `data2`).
    WriteLockspace(WireLockspace),
    /// READ_LOCKSPACE.
    ReadLockspace(WireLockspace),
    /// WRITE_RESOURCE (max_hosts in `data`; CLEAR in the flags).
    WriteResource { res: WireResource, clear: bool },
    /// READ_RESOURCE.
    ReadResource(WireResource),
    /// READ_RESOURCE_OWNERS.
    ReadResourceOwners(WireResource),
    /// ALIGN of the disk's path.
    Align(WireDisk),
}

/// Bytes needed beyond what was given: the total the payload must reach.
struct Short(usize);

/// The payload read in order, as the connection reads it from the socket.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let end = self.at + n;
        let got = self.bytes.get(self.at..end).ok_or(Short(end))?;
        self.at = end;
        Ok(got)
    }

    fn lockspace(&mut self) -> Result<WireLockspace, Short> {
        Ok(WireLockspace::decode(self.take(LOCKSPACE_LEN)?))
    }

    fn resource(&mut self) -> Result<WireResource, Short> {
        Ok(WireResource::decode(self.take(RESOURCE_LEN)?))
    }

    /// A resource and its num_disks disks; `Ok(None)` when num_disks is 0 or above 4
    /// (-ERANGE), and then no disk is read.
    fn resource_with_disks(&mut self) -> Result<Option<WireResource>, Short> {
        let mut res = self.resource()?;
        if res.num_disks == 0 || res.num_disks > MAX_DISKS {
            return Ok(None);
        }
        for _ in 0..res.num_disks {
            res.disks.push(WireDisk::decode(self.take(DISK_LEN)?));
        }
        Ok(Some(res))
    }

    fn host_event(&mut self) -> Result<WireHostEvent, Short> {
        Ok(WireHostEvent::decode(self.take(HOST_EVENT_LEN)?))
    }

    fn rindex(&mut self) -> Result<WireRindex, Short> {
        Ok(WireRindex::decode(self.take(RINDEX_LEN)?))
    }
}

/// Decides `cmd`'s request from `payload`, the bytes after `header` received so far.
pub fn parse_request(cmd: Cmd, header: &Header, payload: &[u8]) -> Parse {
    let mut cur = Cursor {
        bytes: payload,
        at: 0,
    };
    match decide(cmd, header, &mut cur) {
        Ok(parsed) => Parse::Done(parsed, cur.at),
        Err(Short(need)) => Parse::Need(need),
    }
}

fn refused(rv: i32) -> Parsed {
    Parsed::Refused { rv, drain: 0 }
}

fn decide(cmd: Cmd, header: &Header, cur: &mut Cursor) -> Result<Parsed, Short> {
    let call = match cmd {
        Cmd::Register => return Ok(Parsed::Register),
        Cmd::Version => Call::Version,
        Cmd::Restrict => Call::Restrict,
        Cmd::Shutdown => Call::Shutdown,
        Cmd::ShutdownWait => Call::ShutdownWait,
        Cmd::Status => Call::Status,
        Cmd::Show => Call::Show,
        Cmd::LogDump => Call::LogDump,
        Cmd::GetLockspaces => Call::GetLockspaces,
        Cmd::Inquire => Call::Inquire,
        Cmd::AddLockspace => Call::AddLockspace(cur.lockspace()?),
        Cmd::InqLockspace => Call::InqLockspace(cur.lockspace()?),
        Cmd::RemLockspace => Call::RemLockspace(cur.lockspace()?),
        Cmd::GetHosts => Call::GetHosts(cur.lockspace()?),
        Cmd::HostStatus => Call::HostStatus(cur.lockspace()?),
        Cmd::Renewal => Call::Renewal(cur.lockspace()?),
        Cmd::Acquire => {
            if header.data > MAX_RESOURCES {
                // Checked before the payload; what was sent is drained (§4.4 step 1).
                let drain = (header.length as usize)
                    .saturating_sub(HEADER_LEN)
                    .min(DRAIN_MOST);
                return Ok(Parsed::Refused { rv: E2BIG, drain });
            }
            let mut resources = Vec::new();
            for _ in 0..header.data {
                let Some(r) = cur.resource_with_disks()? else {
                    return Ok(refused(ERANGE));
                };
                resources.push(r);
            }
            let options = WireOptions::decode(cur.take(OPTIONS_LEN)?);
            Call::Acquire { resources, options }
        }
        Cmd::Release => {
            // REL_ALL reads no payload, whatever data says (§4.5).
            let count = if header.cmd_flags & 1 != 0 {
                0
            } else if header.cmd_flags & 4 != 0 {
                // REL_ORPHAN: one resource (a name, or empty for all of a lockspace).
                1
            } else if header.cmd_flags & 2 != 0 {
                2
            } else {
                header.data.min(MAX_RESOURCES)
            };
            let mut resources = Vec::new();
            for _ in 0..count {
                resources.push(cur.resource()?);
            }
            Call::Release(resources)
        }
        Cmd::Convert => Call::Convert(cur.resource()?),
        Cmd::WriteLockspace => return Ok(Parsed::Disk(DiskCall::WriteLockspace(cur.lockspace()?))),
        Cmd::ReadLockspace => return Ok(Parsed::Disk(DiskCall::ReadLockspace(cur.lockspace()?))),
        Cmd::WriteResource | Cmd::ReadResource | Cmd::ReadResourceOwners => {
            let Some(res) = cur.resource_with_disks()? else {
                return Ok(refused(ERANGE));
            };
            let disk = match cmd {
                Cmd::WriteResource => DiskCall::WriteResource {
                    res,
                    clear: header.cmd_flags & 1 != 0,
                },
                Cmd::ReadResource => DiskCall::ReadResource(res),
                _ => DiskCall::ReadResourceOwners(res),
            };
            return Ok(Parsed::Disk(disk));
        }
        Cmd::Align => {
            return Ok(Parsed::Disk(DiskCall::Align(WireDisk::decode(
                cur.take(DISK_LEN)?,
            ))))
        }
        Cmd::RegEvent => {
            let ls = cur.lockspace()?;
            // The host_event that follows is unused (§4.22).
            cur.take(HOST_EVENT_LEN)?;
            return Ok(Parsed::RegEvent(ls));
        }
        Cmd::SetEvent => {
            let ls = cur.lockspace()?;
            let event = cur.host_event()?;
            Call::SetEvent { ls, event }
        }
        Cmd::EndEvent => Call::EndEvent(cur.lockspace()?),
        Cmd::MessageSend | Cmd::Fence => {
            let ls = cur.lockspace()?;
            let event = cur.host_event()?;
            Call::Message {
                ls,
                event,
                fence: cmd == Cmd::Fence,
            }
        }
        Cmd::MessageStatus => Call::MessageStatus(cur.lockspace()?),
        Cmd::SetConfig => Call::SetConfig(cur.lockspace()?),
        Cmd::ExamineLockspace => Call::Examine {
            space: cur.lockspace()?.name,
            resource: None,
        },
        Cmd::ExamineResource => {
            let res = cur.resource()?;
            Call::Examine {
                space: res.lockspace_name,
                resource: Some(res.name),
            }
        }
        Cmd::Request => {
            let Some(res) = cur.resource_with_disks()? else {
                return Ok(refused(ERANGE));
            };
            Call::Request(res)
        }
        Cmd::Killpath => {
            let path = c_string(cur.take(KILLPATH_FIELD_LEN)?);
            let args = c_string(cur.take(KILLPATH_FIELD_LEN)?);
            Call::Killpath { path, args }
        }
        Cmd::SetLvb => {
            let res = cur.resource()?;
            let lvb_len = (header.length as usize).saturating_sub(HEADER_LEN + RESOURCE_LEN);
            if lvb_len > MAX_LVB {
                // Refused before the LVB is read (cmd_set_lvb); what follows stays unread.
                return Ok(refused(E2BIG));
            }
            let lvb = cur.take(lvb_len)?.to_vec();
            Call::SetLvb { res, lvb }
        }
        Cmd::GetLvb => Call::GetLvb(cur.resource()?),
        Cmd::FormatRindex | Cmd::RebuildRindex => Call::Rindex {
            cmd,
            rx: cur.rindex()?,
            entry: WireRentry::default(),
        },
        Cmd::UpdateRindex | Cmd::LookupRindex | Cmd::CreateResource | Cmd::DeleteResource => {
            let rx = cur.rindex()?;
            let entry = WireRentry::decode(cur.take(RENTRY_LEN)?);
            Call::Rindex { cmd, rx, entry }
        }
    };
    Ok(Parsed::Call(call))
}

/// A NUL-padded field up to its first NUL (its last byte counts as NUL, as sanlock forces).
fn c_string(field: &[u8]) -> Vec<u8> {
    let field = &field[..field.len() - 1];
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    field[..end].to_vec()
}

/// Checks what the connection relies on, for any header and payload (the fuzz target's
/// property; panics when broken): a need is always for more than was given; a decision uses no
/// more than was given and is the same from exactly the bytes it used; and once given what it
/// needs, the parser decides or needs still more (it never goes back).
pub(crate) fn check_parse(header: &Header, payload: &[u8]) {
    let Some(cmd) = Cmd::from_u32(header.cmd) else {
        return;
    };
    let mut given = Vec::with_capacity(payload.len());
    let stepped = loop {
        match parse_request(cmd, header, &given) {
            Parse::Need(n) => {
                assert!(n > given.len(), "{cmd:?} needs {n} having {}", given.len());
                // Feed the payload's bytes, then zeros once it runs out.
                let have = given.len();
                given.extend((have..n).map(|i| payload.get(i).copied().unwrap_or(0)));
            }
            done @ Parse::Done(..) => break done,
        }
    };
    let Parse::Done(_, used) = stepped else {
        unreachable!("the loop ends decided")
    };
    assert!(
        used <= given.len(),
        "{cmd:?} used {used} of {}",
        given.len()
    );
    assert_eq!(
        parse_request(cmd, header, &given[..used]),
        stepped,
        "{cmd:?} decided differently from the bytes it used"
    );
    // The payload given whole decides as it did in steps (the bytes used are the payload's
    // own), or needs more than it holds.
    match parse_request(cmd, header, payload) {
        Parse::Need(n) => assert!(n > payload.len(), "{cmd:?} needs {n} of {}", payload.len()),
        whole => assert_eq!(whole, stepped, "{cmd:?} whole and in steps differ"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cmd: Cmd, data: u32, length: usize) -> Header {
        Header::request(cmd, 0, data, 0, length - HEADER_LEN)
    }

    #[test]
    fn an_acquire_reads_each_resource_then_its_disks_then_the_options() {
        let h = header(
            Cmd::Acquire,
            1,
            HEADER_LEN + RESOURCE_LEN + DISK_LEN + OPTIONS_LEN,
        );
        assert_eq!(
            parse_request(Cmd::Acquire, &h, &[]),
            Parse::Need(RESOURCE_LEN)
        );
        let mut res = WireResource {
            num_disks: 1,
            ..Default::default()
        };
        res.name = sanlock_core::ondisk::Name::new(b"R").unwrap();
        let mut bytes = Vec::new();
        res.encode_into(&mut bytes, false);
        assert_eq!(
            parse_request(Cmd::Acquire, &h, &bytes),
            Parse::Need(RESOURCE_LEN + DISK_LEN)
        );
        bytes.resize(RESOURCE_LEN + DISK_LEN, 0);
        assert_eq!(
            parse_request(Cmd::Acquire, &h, &bytes),
            Parse::Need(RESOURCE_LEN + DISK_LEN + OPTIONS_LEN)
        );
        bytes.resize(RESOURCE_LEN + DISK_LEN + OPTIONS_LEN + 9, 0);
        let Parse::Done(Parsed::Call(Call::Acquire { resources, .. }), used) =
            parse_request(Cmd::Acquire, &h, &bytes)
        else {
            panic!("acquire not decided");
        };
        assert_eq!(
            used,
            RESOURCE_LEN + DISK_LEN + OPTIONS_LEN,
            "the 9 extra bytes stay"
        );
        assert_eq!(resources.len(), 1);
        assert_eq!(resources[0].disks.len(), 1);
    }

    #[test]
    fn a_resource_with_no_disks_or_five_is_refused_before_any_disk_is_read() {
        for n in [0, 5] {
            let res = WireResource {
                num_disks: n,
                ..Default::default()
            };
            let mut bytes = Vec::new();
            res.encode_into(&mut bytes, false);
            let h = header(Cmd::Request, 0, HEADER_LEN + RESOURCE_LEN);
            assert_eq!(
                parse_request(Cmd::Request, &h, &bytes),
                Parse::Done(refused(ERANGE), RESOURCE_LEN)
            );
        }
    }

    #[test]
    fn an_acquire_of_nine_resources_drains_what_it_sent_up_to_the_most_sanlock_sends() {
        let h = header(Cmd::Acquire, 9, HEADER_LEN + 100);
        assert_eq!(
            parse_request(Cmd::Acquire, &h, &[]),
            Parse::Done(
                Parsed::Refused {
                    rv: E2BIG,
                    drain: 100
                },
                0
            )
        );
        let h = header(Cmd::Acquire, 9, 1 << 20);
        assert_eq!(
            parse_request(Cmd::Acquire, &h, &[]),
            Parse::Done(
                Parsed::Refused {
                    rv: E2BIG,
                    drain: DRAIN_MOST
                },
                0
            )
        );
    }

    #[test]
    fn a_set_lvb_longer_than_4096_is_refused_before_its_value_is_read() {
        let h = header(Cmd::SetLvb, 0, HEADER_LEN + RESOURCE_LEN + 4097);
        let bytes = vec![0u8; RESOURCE_LEN];
        assert_eq!(
            parse_request(Cmd::SetLvb, &h, &bytes),
            Parse::Done(refused(E2BIG), RESOURCE_LEN)
        );
        let h = header(Cmd::SetLvb, 0, HEADER_LEN + RESOURCE_LEN + 4096);
        assert_eq!(
            parse_request(Cmd::SetLvb, &h, &bytes),
            Parse::Need(RESOURCE_LEN + 4096)
        );
    }

    #[test]
    fn release_all_reads_nothing_whatever_data_says() {
        let mut h = header(Cmd::Release, 5, HEADER_LEN);
        h.cmd_flags = 1;
        assert_eq!(
            parse_request(Cmd::Release, &h, &[]),
            Parse::Done(Parsed::Call(Call::Release(Vec::new())), 0)
        );
    }

    #[test]
    fn a_killpath_field_ends_at_its_first_nul_or_its_last_byte() {
        let h = header(Cmd::Killpath, 0, HEADER_LEN + 2 * KILLPATH_FIELD_LEN);
        let mut bytes = vec![b'x'; 2 * KILLPATH_FIELD_LEN];
        bytes[3] = 0;
        let Parse::Done(Parsed::Call(Call::Killpath { path, args }), _) =
            parse_request(Cmd::Killpath, &h, &bytes)
        else {
            panic!("killpath not decided");
        };
        assert_eq!(path, b"xxx");
        assert_eq!(args.len(), KILLPATH_FIELD_LEN - 1);
    }

    #[test]
    fn every_command_keeps_the_parsers_promises_on_zeros_and_on_ones() {
        for n in 0..=255 {
            let Some(cmd) = Cmd::from_u32(n) else {
                continue;
            };
            for fill in [0u8, 1, 0xff] {
                for data in [0, 1, 4, 8, 9] {
                    let mut h = header(cmd, data, HEADER_LEN + 700);
                    h.cmd_flags = u32::from(fill);
                    check_parse(&h, &vec![fill; 5000]);
                    check_parse(&h, &[]);
                }
            }
        }
    }
}
