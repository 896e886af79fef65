//! C's number parsers, as sanlock's command line uses them. Options like `-o` and `-n` go through
//! `atoi`, host ids through `atoll`, event values through `strtoull(…, 0)`, and offsets through
//! `sscanf("%llu")`; each accepts different text, and a drop-in must accept the same.

/// `atoll`: optional leading white space, an optional sign, then decimal digits up to the first
/// other byte. No digits gives 0. Overflow wraps (C leaves it undefined).
pub fn atoll(text: &[u8]) -> i64 {
    let (negative, digits) = sign_and_rest(skip_space(text));
    let value = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i64, |acc, &b| {
            acc.wrapping_mul(10).wrapping_add(i64::from(b - b'0'))
        });
    if negative {
        value.wrapping_neg()
    } else {
        value
    }
}

/// `atoi`: `atoll` narrowed to an int.
pub fn atoi(text: &[u8]) -> i32 {
    atoll(text) as i32
}

/// `strtoull(text, NULL, 0)`: like `atoll` but the base follows the prefix (`0x` hex, `0`
/// octal, else decimal), and a minus sign negates in unsigned arithmetic.
pub fn strtoull0(text: &[u8]) -> u64 {
    let (negative, rest) = sign_and_rest(skip_space(text));
    let (radix, digits) = match rest {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => (16, &rest[2..]),
        [b'0', ..] => (8, rest),
        _ => (10, rest),
    };
    let value = digits
        .iter()
        .map_while(|&b| (b as char).to_digit(radix))
        .fold(0u64, |acc, d| {
            acc.wrapping_mul(u64::from(radix))
                .wrapping_add(u64::from(d))
        });
    if negative {
        value.wrapping_neg()
    } else {
        value
    }
}

/// `sscanf(text, "%llu")`: `None` when no digit follows the optional white space and sign.
pub fn scan_llu(text: &[u8]) -> Option<u64> {
    let (negative, digits) = sign_and_rest(skip_space(text));
    if !digits.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let value = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |acc, &b| {
            acc.wrapping_mul(10).wrapping_add(u64::from(b - b'0'))
        });
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

fn skip_space(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .unwrap_or(text.len());
    &text[start..]
}

fn sign_and_rest(text: &[u8]) -> (bool, &[u8]) {
    match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoll_stops_at_the_first_non_digit() {
        assert_eq!(atoll(b"  42abc"), 42);
        assert_eq!(atoll(b"-7"), -7);
        assert_eq!(atoll(b"+3"), 3);
        assert_eq!(atoll(b"x1"), 0);
        assert_eq!(atoll(b""), 0);
        assert_eq!(atoll(b"1:2"), 1);
    }

    #[test]
    fn strtoull_follows_the_base_prefix() {
        assert_eq!(strtoull0(b"0x1f"), 31);
        assert_eq!(strtoull0(b"017"), 15);
        assert_eq!(strtoull0(b"19"), 19);
        assert_eq!(strtoull0(b"0x"), 0);
        assert_eq!(strtoull0(b"-1"), u64::MAX);
    }

    #[test]
    fn scan_llu_needs_a_digit() {
        assert_eq!(scan_llu(b" 12x"), Some(12));
        assert_eq!(scan_llu(b"x"), None);
        assert_eq!(scan_llu(b""), None);
        assert_eq!(scan_llu(b"-"), None);
        assert_eq!(scan_llu(b"-1"), Some(u64::MAX));
    }
}
