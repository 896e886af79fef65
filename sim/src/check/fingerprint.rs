//! 128-bit fingerprints of states: the checker remembers fingerprints, not states. Two
//! different states share one with probability about n²/2¹²⁹ for n states.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use bytes::Bytes;

/// The checker's sector size.
pub(crate) const BLOCK: usize = 4096;
/// Where the records of a sector end: sanlock's records fit in 512 bytes.
pub(crate) const RECORD: usize = 512;

/// Areas read from the checker's disk, kept for the whole exploration so that their addresses
/// stay theirs: by address, the key they were made from (equal keys, equal bytes).
#[derive(Default)]
struct Interned {
    keys: HashMap<usize, (usize, u128)>,
    by_key: HashMap<u128, Bytes>,
}

thread_local! {
    static INTERNED: RefCell<Interned> = RefCell::new(Interned::default());
}

/// Areas interned before the registry stops growing (each is 1 MiB).
const INTERN_LIMIT: usize = 4096;

/// The area made from `key`: made once by `make`, then shared; its fingerprint costs one
/// lookup instead of a pass over its bytes.
pub(crate) fn intern(key: u128, make: impl FnOnce() -> Bytes) -> Bytes {
    INTERNED.with(|i| {
        let mut i = i.borrow_mut();
        if let Some(b) = i.by_key.get(&key) {
            return b.clone();
        }
        let b = make();
        if i.by_key.len() < INTERN_LIMIT {
            i.keys.insert(b.as_ptr() as usize, (b.len(), key));
            i.by_key.insert(key, b.clone());
        }
        b
    })
}

/// How many areas are interned.
pub(crate) fn interned() -> usize {
    INTERNED.with(|i| i.borrow().by_key.len())
}

/// Drops every interned area (between explorations).
pub(crate) fn forget_interned() {
    INTERNED.with(|i| *i.borrow_mut() = Interned::default());
}

/// Two independent 64-bit multiply-rotate lanes over the bytes `Hash` feeds in.
#[derive(Clone, Copy, Debug)]
pub struct Fingerprinter {
    a: u64,
    b: u64,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Fingerprinter {
            a: 0x243F_6A88_85A3_08D3,
            b: 0x1319_8A2E_0370_7344,
        }
    }
}

impl Fingerprinter {
    /// The fingerprint of `value`.
    pub fn of<T: Hash>(value: &T) -> u128 {
        let mut f = Fingerprinter::default();
        value.hash(&mut f);
        f.finish128()
    }

    #[inline]
    fn word(&mut self, w: u64) {
        self.a = (self.a ^ w)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
        self.b = (self.b ^ w.rotate_left(17))
            .wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            .rotate_left(31);
    }

    fn words(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 56));
        }
    }

    fn finish128(&self) -> u128 {
        let mix = |mut x: u64| {
            x ^= x >> 33;
            x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
            x ^= x >> 33;
            x
        };
        (u128::from(mix(self.a ^ self.b.rotate_left(7))) << 64) | u128::from(mix(self.b))
    }
}

impl Hasher for Fingerprinter {
    fn finish(&self) -> u64 {
        self.finish128() as u64
    }

    fn write(&mut self, bytes: &[u8]) {
        if bytes.len() >= 64 * 1024 {
            let known = INTERNED.with(|i| {
                i.borrow()
                    .keys
                    .get(&(bytes.as_ptr() as usize))
                    .filter(|(len, _)| *len == bytes.len())
                    .map(|&(_, key)| key)
            });
            if let Some(key) = known {
                self.word(key as u64);
                self.word((key >> 64) as u64);
                return;
            }
        }
        if bytes.len() >= BLOCK && bytes.len() % BLOCK == 0 {
            // Sectors of the checker's disk: only the first RECORD bytes of each 4 KiB
            // sector can differ between states (the model checks it of every sector it
            // writes), so only those are hashed.
            self.word(bytes.len() as u64);
            for block in bytes.chunks_exact(BLOCK) {
                self.words(&block[..RECORD]);
            }
            return;
        }
        self.words(bytes);
    }

    fn write_u64(&mut self, n: u64) {
        self.word(n);
    }

    fn write_u32(&mut self, n: u32) {
        self.word(u64::from(n));
    }

    fn write_u8(&mut self, n: u8) {
        self.word(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.word(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_agree_and_different_ones_differ() {
        assert_eq!(
            Fingerprinter::of(&(1u64, "a")),
            Fingerprinter::of(&(1u64, "a"))
        );
        assert_ne!(
            Fingerprinter::of(&(1u64, "a")),
            Fingerprinter::of(&(2u64, "a"))
        );
        assert_ne!(
            Fingerprinter::of(&vec![0u8; 9]),
            Fingerprinter::of(&vec![0u8; 10])
        );
        let mut area = vec![0u8; 1 << 20];
        let before = Fingerprinter::of(&area);
        area[4096 * 7 + 300] = 1;
        assert_ne!(before, Fingerprinter::of(&area), "a record byte counts");
    }
}
