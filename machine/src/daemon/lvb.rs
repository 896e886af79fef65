//! The lock value block (wire.md §4.23): a sector-sized buffer kept with a lease acquired with
//! ACQUIRE_LVB, read from disk at acquire, changed by SET_LVB and written back at release.

use sanlock_core::ondisk::Lvb;

use super::engine::*;
use crate::wire::{Header, WireResource, HEADER_LEN};

/// -E2BIG: the value is longer than the lease's sector.
const E2BIG: i32 = -7;
/// The largest sector, and so the largest LVB (SET_LVB longer than this is refused before
/// its value is read: `request_parse`).
pub(super) const MAX_LVB: usize = 4096;

impl Engine {
    /// SET_LVB: overwrites the start of the buffer (the rest keeps its bytes, as sanlock's
    /// copy does); the whole sector goes to disk at release.
    pub(super) fn set_lvb(&mut self, res: &WireResource, value: &[u8]) -> i32 {
        let key = (res.lockspace_name, res.name);
        let Some(t) = self.table.tokens.get_mut(&key) else {
            return ENOENT;
        };
        let Some(buf) = t.lvb.as_mut() else {
            return EINVAL;
        };
        if value.len() > buf.len() {
            return E2BIG;
        }
        buf[..value.len()].copy_from_slice(value);
        let ss = sanlock_core::ondisk::SectorSize::from_bytes(buf.len() as u64)
            .expect("the buffer is one sector");
        let lvb = Lvb::new(buf, ss).expect("the buffer is one sector");
        self.lvb_to_write.insert(key, lvb);
        0
    }

    /// GET_LVB: the reply carries `data2` bytes of the buffer, or one sector for 0.
    pub(super) fn get_lvb(&self, header: Header, res: &WireResource) -> Vec<u8> {
        let key = (res.lockspace_name, res.name);
        let asked = header.data2 as usize;
        let (rv, bytes) = match self.table.tokens.get(&key) {
            // More than the largest sector: 3.8.5 copies past its buffer (and would try to
            // allocate what a client asks); ours refuses.
            _ if asked > MAX_LVB => (E2BIG, None),
            None => (ENOENT, None),
            Some(t) => match &t.lvb {
                None => (EINVAL, None),
                Some(buf) => {
                    let len = if asked == 0 { buf.len() } else { asked };
                    let mut out = buf.clone();
                    out.resize(len, 0);
                    (0, Some(out))
                }
            },
        };
        // On an error the length still counts what was asked for, with nothing after it.
        let len = bytes.as_ref().map_or(asked.min(MAX_LVB), Vec::len);
        let mut h = header.result(rv);
        h.length = (HEADER_LEN + len) as u32;
        let mut out = h.encode().to_vec();
        if let Some(b) = bytes {
            out.extend_from_slice(&b);
        }
        out
    }
}
