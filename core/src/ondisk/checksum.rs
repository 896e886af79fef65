//! sanlock's CRC: CRC-32C with the register seeded to 0xFFFFFFFE and no final inversion
//! (ondisk.md §2; sanlock 3.8.5 crc32c.c, paxos_lease.c `leader_checksum`).

/// Checksum `data` the way sanlock does. Call it on the little-endian bytes of a record's
/// checksummed prefix (168 bytes of a leader, 48 of a dblock).
pub fn sanlock_crc32c(data: &[u8]) -> u32 {
    // The crc32c crate inverts the register on entry and exit. Entering with 1 leaves the
    // register at !1 = 0xFFFFFFFE, sanlock's seed; inverting the result undoes the final XOR.
    !crc32c::crc32c_append(1, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_differs_from_standard_crc32c() {
        // ondisk.md §2.1: sanlock's check value, not the standard 0xE3069283.
        assert_eq!(sanlock_crc32c(b"123456789"), 0xE8C7_BB34);
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn zero_prefixes_match_values_seen_on_disk() {
        // ondisk.md §2.3: a zeroed dblock and a zeroed leader prefix.
        assert_eq!(sanlock_crc32c(&[0u8; 48]), 0xCB5A_D842);
        assert_eq!(sanlock_crc32c(&[0u8; 168]), 0x7E11_FBD1);
    }

    #[test]
    fn empty_input_is_the_seed() {
        // No bytes processed leaves the register at its seed.
        assert_eq!(sanlock_crc32c(&[]), 0xFFFF_FFFE);
    }
}
