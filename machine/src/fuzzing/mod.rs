//! Entry points for the fuzz targets on the daemon's side and the tests that replay their
//! corpora: `wire_request`, any bytes as a request's header and payload through the
//! connection's parser ([`crate::daemon::request_parse`]) and as every payload record of the
//! socket protocol; `engine_inputs`, the engine fed any sequence of inputs.

mod engine_inputs;

pub use engine_inputs::engine_inputs;

use crate::daemon::request_parse::check_parse;
use crate::wire::payload::{
    WireDisk, WireEventCb, WireHost, WireHostEvent, WireLockspace, WireMessageStatus, WireOptions,
    WireRentry, WireResource, WireRindex, WireState, DISK_LEN, EVENT_CB_LEN, HOST_EVENT_LEN,
    HOST_LEN, LOCKSPACE_LEN, MESSAGE_STATUS_LEN, OPTIONS_LEN, RENTRY_LEN, RESOURCE_LEN, RINDEX_LEN,
    STATE_LEN,
};
use crate::wire::{Cmd, Header, HEADER_LEN};

/// The first byte picks a command (so every one is reached, ours included), the next 32 are
/// the header (magic and version made valid: a refused header never reaches the parser), the
/// rest the payload. Then every payload record is decoded from the same bytes and must
/// decode again, unchanged, from its own encoding. Panics when a property breaks.
pub fn wire_request(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    records(rest);
    let Some((head, payload)) = rest.split_first_chunk::<HEADER_LEN>() else {
        return;
    };
    let mut header = Header::decode(head);
    let cmds: Vec<Cmd> = (1..=255).filter_map(Cmd::from_u32).collect();
    header.cmd = cmds[usize::from(pick) % cmds.len()] as u32;
    header.magic = crate::wire::header::SM_MAGIC;
    header.version &= 0x00ff_ffff;
    check_parse(&header, payload);
}

/// Each record kind decoded from the start of `data`, re-encoded and decoded again.
fn records(data: &[u8]) {
    macro_rules! again {
        ($ty:ty, $len:expr, |$v:ident, $out:ident| $encode:expr) => {
            if let Some(b) = data.get(..$len) {
                let $v = <$ty>::decode(b);
                let mut $out = Vec::new();
                $encode;
                assert_eq!($out.len(), $len, stringify!($ty encodes its length));
                assert_eq!(<$ty>::decode(&$out), $v, stringify!($ty round trip));
            }
        };
    }
    again!(WireDisk, DISK_LEN, |v, out| v.encode_into(&mut out));
    again!(WireResource, RESOURCE_LEN, |v, out| v
        .encode_into(&mut out, false));
    again!(WireLockspace, LOCKSPACE_LEN, |v, out| v
        .encode_into(&mut out));
    again!(WireOptions, OPTIONS_LEN, |v, out| v.encode_into(&mut out));
    again!(WireHost, HOST_LEN, |v, out| v.encode_into(&mut out));
    again!(WireHostEvent, HOST_EVENT_LEN, |v, out| v
        .encode_into(&mut out));
    again!(WireEventCb, EVENT_CB_LEN, |v, out| out.extend(v.encode()));
    again!(WireMessageStatus, MESSAGE_STATUS_LEN, |v, out| v
        .encode_into(&mut out));
    again!(WireRindex, RINDEX_LEN, |v, out| v.encode_into(&mut out));
    again!(WireRentry, RENTRY_LEN, |v, out| v.encode_into(&mut out));
    if let Some(b) = data.get(..STATE_LEN) {
        let (state, _) = WireState::decode_head(b);
        let mut out = Vec::new();
        state.encode_into(&mut out);
        let (again, text_len) = WireState::decode_head(&out[..STATE_LEN]);
        assert_eq!(again, state, "WireState round trip");
        assert_eq!(text_len, out.len() - STATE_LEN, "WireState text length");
    }
}
