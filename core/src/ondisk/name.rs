//! 48-byte name fields (NAME_ID_SIZE): lockspace, resource and host names.

use std::fmt;

/// The size of every on-disk name field.
pub const NAME_LEN: usize = 48;

/// A name field as stored: 48 bytes, NUL-padded, with no terminating NUL when all 48 are used.
///
/// Names are byte strings, not UTF-8: sanlock copies whatever the caller gave.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name([u8; NAME_LEN]);

/// A name longer than the 48 bytes a field holds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("name is {0} bytes long; at most 48 fit")]
pub struct NameTooLong(pub usize);

impl Name {
    /// The empty name (all zero).
    pub const EMPTY: Name = Name([0; NAME_LEN]);

    /// Use for a name from the user or the wire: at most 48 bytes, padded with NULs.
    /// A NUL inside `bytes` ends the name, as it would in C.
    pub fn new(bytes: &[u8]) -> Result<Self, NameTooLong> {
        if bytes.len() > NAME_LEN {
            return Err(NameTooLong(bytes.len()));
        }
        Ok(Name::truncated(bytes))
    }

    /// Copies at most 48 bytes, cutting a longer name silently, as the CLI does for the
    /// lockspace name of `-s` (wire.md §6.3).
    pub fn truncated(bytes: &[u8]) -> Self {
        let mut field = [0u8; NAME_LEN];
        let bytes = &bytes[..bytes.len().min(NAME_LEN)];
        // A bounded string copy stops at the first NUL and zero-fills the rest.
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        field[..end].copy_from_slice(&bytes[..end]);
        Name(field)
    }

    /// The field exactly as read from disk, bytes after a NUL included.
    pub const fn from_field(field: [u8; NAME_LEN]) -> Self {
        Name(field)
    }

    /// The 48 bytes to write.
    pub const fn field(&self) -> &[u8; NAME_LEN] {
        &self.0
    }

    /// The name's bytes: up to the first NUL, or all 48.
    pub fn as_bytes(&self) -> &[u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        &self.0[..end]
    }

    /// Whether the name is empty (first byte NUL).
    pub fn is_empty(&self) -> bool {
        self.0[0] == 0
    }

    /// sanlock's name comparison: a bounded string compare over at most 48 bytes, so bytes after
    /// a NUL do not count (ondisk.md §0).
    pub fn matches(&self, other: &Name) -> bool {
        // Equal fields (the usual case: both zero-padded) match without finding their ends.
        self.0 == other.0 || self.as_bytes() == other.as_bytes()
    }
}

impl Default for Name {
    fn default() -> Self {
        Name::EMPTY
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_48_byte_name_has_no_terminating_nul() {
        // ondisk.md §0: "a 48-byte name has no terminating NUL".
        let long = [b'a'; 48];
        let name = Name::new(&long).unwrap();
        assert_eq!(name.field(), &long);
        assert_eq!(name.as_bytes().len(), 48);
        assert_eq!(Name::new(&[b'a'; 49]), Err(NameTooLong(49)));
    }

    #[test]
    fn short_names_are_nul_padded() {
        let name = Name::new(b"LS").unwrap();
        assert_eq!(&name.field()[..3], b"LS\0");
        assert!(name.field()[2..].iter().all(|&b| b == 0));
    }

    #[test]
    fn comparison_stops_at_the_first_nul() {
        // strncmp(a, b, 48) ignores what follows a NUL.
        let mut field = [0u8; 48];
        field[..2].copy_from_slice(b"LS");
        field[10] = b'x';
        let odd = Name::from_field(field);
        assert!(odd.matches(&Name::new(b"LS").unwrap()));
        assert_ne!(odd, Name::new(b"LS").unwrap());
    }

    #[test]
    fn truncated_cuts_silently_and_stops_at_nul() {
        assert_eq!(Name::truncated(&[b'x'; 60]).as_bytes(), &[b'x'; 48]);
        assert_eq!(Name::truncated(b"ab\0cd").as_bytes(), b"ab");
    }
}
