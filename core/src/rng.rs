//! The one source of randomness in core: a small PRNG kept in state and seeded by the caller,
//! so that a run replays exactly from its seed.

/// xorshift64* (Vigna): fast, 64 bits of state, good enough for jitter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let a: Vec<u64> = std::iter::repeat_with({
            let mut r = Rng::new(42);
            move || r.below(1000)
        })
        .take(8)
        .collect();
        let mut r = Rng::new(42);
        assert_eq!(a, (0..8).map(|_| r.below(1000)).collect::<Vec<_>>());
        assert!(a.iter().all(|&v| v < 1000));
        assert_eq!(Rng::new(7).below(0), 0);
    }
}
