//! The LOCKSPACE, RESOURCE, RINDEX and dump-path strings of sanlock's command line, parsed as
//! sanlock 3.8.5 parses them (wire.md §6.3), quirks included: a `\` escapes the next byte, and a
//! size suffix `M` is applied by a pre-step that looks for literal colons.

use sanlock_core::ondisk::Name;

use super::cnum::{atoll, scan_llu, strtoull0};

/// The longest path sanlock keeps (SANLK_PATH_LEN), terminating NUL included.
pub const PATH_LEN: usize = 1024;
/// The most disks a resource may name (SANLK_MAX_DISKS).
pub const MAX_DISKS: usize = 4;
/// -ENXIO: a RESOURCE shorter than 3 bytes.
const ENXIO: i32 = 6;

/// Why a RESOURCE string was refused: sanlock's result number, and our words for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceError {
    /// What sanlock prints in `resource arg parse error <rv>`.
    pub rv: i32,
    /// What was wrong, for stderr.
    pub reason: String,
}

impl ResourceError {
    fn new(rv: i32, reason: impl Into<String>) -> Self {
        ResourceError {
            rv,
            reason: reason.into(),
        }
    }
}

/// `-s name:host_id:path:offset`. Missing parts are 0 or empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockspaceArg {
    /// The lockspace name, silently cut to 48 bytes.
    pub name: Name,
    /// The host id, as atoll read it.
    pub host_id: u64,
    /// The path, backslashes removed.
    pub path: Vec<u8>,
    /// Byte offset of the lockspace area.
    pub offset: u64,
}

/// One disk of a resource: where its lease area starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskArg {
    /// The path, unescaped.
    pub path: Vec<u8>,
    /// Byte offset of the lease area.
    pub offset: u64,
}

/// What a RESOURCE string says after its disks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceSuffix {
    /// Nothing: any version, exclusive.
    None,
    /// `:N`: this lease version is required (SANLK_RES_LVER).
    Lver(u64),
    /// `:SH…`: shared mode (SANLK_RES_SHARED).
    Shared,
}

/// `-r ls:res[:path:offset]…[:lver|:SH]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceArg {
    /// The lockspace name.
    pub lockspace_name: Name,
    /// The resource name.
    pub name: Name,
    /// Up to four disks.
    pub disks: Vec<DiskArg>,
    /// Version or mode.
    pub suffix: ResourceSuffix,
}

/// `-x name:path:offset[M]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RindexArg {
    /// The lockspace name.
    pub lockspace_name: Name,
    /// The path, unescaped.
    pub path: Vec<u8>,
    /// Byte offset of the rindex area.
    pub offset: u64,
}

/// `-e name[:offset[M]]` with rindex actions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RentryArg {
    /// The resource name (empty for `:offset` alone).
    pub name: Name,
    /// The lease offset.
    pub offset: u64,
}

/// `dump path[:offset[:size]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpPath {
    /// The path, unescaped.
    pub path: Vec<u8>,
    /// Where to start.
    pub offset: u64,
    /// How much to dump; 0 means "until the first chunk without a known magic".
    pub size: u64,
    /// The argument as given (`next_free` reads it its own way).
    pub raw: Vec<u8>,
}

/// Parses `-s` as the CLI does: the `M` pre-step, then a split at the first three unescaped
/// colons (main.c `parse_arg_lockspace`, client.c `sanlock_str_to_lockspace`). sanlock refuses
/// nothing here; what it silently reads as 0 or cuts short is listed in the warnings.
pub fn parse_lockspace(arg: &[u8]) -> (LockspaceArg, Vec<String>) {
    let arg = apply_megabyte_suffix(arg, false);
    let [name, host_id, path, offset] = split_unescaped(&arg, 3);
    let mut warnings = Vec::new();
    let name = name.unwrap_or_default();
    if name.len() > sanlock_core::ondisk::NAME_LEN {
        warnings.push(format!(
            "lockspace name is {} bytes; only the first 48 are used",
            name.len()
        ));
    }
    for (field, text) in [("host_id", host_id), ("offset", offset)] {
        if let Some(text) = text.filter(|t| scan_llu(t).is_none() || !is_number(t)) {
            warnings.push(format!(
                "{field} '{}' is not a number; it is read as {} (as sanlock 3.8.5 does)",
                String::from_utf8_lossy(text),
                atoll(text)
            ));
        }
    }
    let parsed = LockspaceArg {
        name: Name::truncated(name),
        host_id: host_id.map_or(0, |t| atoll(t) as u64),
        path: path.map(import_path).unwrap_or_default(),
        offset: offset.map_or(0, |t| atoll(t) as u64),
    };
    (parsed, warnings)
}

/// Decimal digits only (what a well-formed host_id or offset is).
fn is_number(text: &[u8]) -> bool {
    !text.is_empty() && text.iter().all(u8::is_ascii_digit)
}

/// Parses `-r` as the CLI does: the `M` pre-step, then client.c `sanlock_str_to_res`.
pub fn parse_resource(arg: &[u8]) -> Result<ResourceArg, ResourceError> {
    let arg = apply_megabyte_suffix(arg, true);
    str_to_res(&arg)
}

/// Parses `-x` (main.c `parse_arg_rindex`).
pub fn parse_rindex(arg: &[u8]) -> RindexArg {
    let [name, path, offset, _] = split_unescaped(arg, 2);
    RindexArg {
        lockspace_name: Name::truncated(name.unwrap_or_default()),
        path: path.map(import_path).unwrap_or_default(),
        offset: offset.map_or(0, megabyte_number),
    }
}

/// Parses `-e` for rindex actions (main.c `parse_arg_rentry`): the first literal colon splits.
pub fn parse_rentry(arg: &[u8]) -> RentryArg {
    let (name, offset) = match arg.iter().position(|&b| b == b':') {
        Some(colon) => (&arg[..colon], Some(&arg[colon + 1..])),
        None => (arg, None),
    };
    RentryArg {
        name: Name::truncated(name),
        offset: offset.map_or(0, megabyte_number),
    }
}

/// Parses the path argument of `direct dump` and `next_free` (direct.c `direct_dump`).
pub fn parse_dump_path(arg: &[u8]) -> DumpPath {
    let [path, offset, size, _] = split_unescaped(arg, 2);
    DumpPath {
        path: import_path(path.unwrap_or_default()),
        offset: offset.map_or(0, megabyte_number),
        size: size.map_or(0, megabyte_number),
        raw: arg.to_vec(),
    }
}

/// Removes every backslash from a path, as sanlock_path_import does (so `\\` disappears
/// entirely), keeping at most 1023 bytes.
pub fn import_path(escaped: &[u8]) -> Vec<u8> {
    escaped
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .filter(|&b| b != b'\\')
        .take(PATH_LEN - 1)
        .collect()
}

pub use sanlock_machine::wire::export_path;

/// An offset or size with an optional `M` suffix: the digits before the first `M`, in MiB.
fn megabyte_number(text: &[u8]) -> u64 {
    match text.iter().position(|&b| b == b'M') {
        Some(m) => (atoll(&text[..m]) as u64).wrapping_mul(1 << 20),
        None => atoll(text) as u64,
    }
}

/// The CLI's `M` pre-step on `-s` and `-r` (main.c): if there are three *literal* colons and an
/// `M` anywhere after the third, the digits between the third colon and that `M` become the
/// offset in MiB. `-s` drops everything after; `-r` keeps what follows a fourth literal colon.
/// It ignores escapes, so an escaped colon in the path shifts it (wire.md §6.3).
fn apply_megabyte_suffix(arg: &[u8], keep_tail: bool) -> Vec<u8> {
    let colons: Vec<usize> = arg
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b':')
        .map(|(i, _)| i)
        .take(4)
        .collect();
    let Some(&colon3) = colons.get(2) else {
        return arg.to_vec();
    };
    let after = &arg[colon3 + 1..];
    let Some(m) = after.iter().position(|&b| b == b'M') else {
        return arg.to_vec();
    };
    let megabytes = atoll(&after[..m]) as u64;
    let mut out = arg[..colon3].to_vec();
    out.push(b':');
    out.extend_from_slice(megabytes.wrapping_mul(1 << 20).to_string().as_bytes());
    if keep_tail {
        if let Some(&colon4) = colons.get(3) {
            out.extend_from_slice(&arg[colon4..]);
        }
    }
    out
}

/// Splits at the first `n` (at most 3) unescaped colons, a backslash escaping the next byte,
/// as sanlock_str_to_lockspace does; the last part runs to the end. Parts past the last colon
/// found are `None`.
fn split_unescaped(arg: &[u8], n: usize) -> [Option<&[u8]>; 4] {
    debug_assert!(n <= 3);
    let mut parts: [Option<&[u8]>; 4] = [None; 4];
    let mut start = 0;
    let mut found = 0;
    let mut i = 0;
    while i < arg.len() && found < n {
        match arg[i] {
            b'\\' => i += 1,
            b':' => {
                parts[found] = Some(&arg[start..i]);
                start = i + 1;
                found += 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts[found] = Some(&arg[start.min(arg.len())..]);
    parts
}

/// client.c `sanlock_str_to_res`.
fn str_to_res(s: &[u8]) -> Result<ResourceArg, ResourceError> {
    const FORM: &str = "expected lockspace:resource:path:offset[:path:offset]...[:lver|:SH]";
    if s.len() < 3 {
        return Err(ResourceError::new(-ENXIO, format!("too short; {FORM}")));
    }
    let mut colons = 0usize;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 1,
            b':' => colons += 1,
            _ => {}
        }
        i += 1;
    }
    if colons == 0 || colons == 2 {
        return Err(ResourceError::new(
            -1,
            format!("{colons} separating colons; {FORM}"),
        ));
    }
    let num_disks = (colons - 1) / 2;
    let have_lver = (colons - 1) % 2 == 1;
    if num_disks > MAX_DISKS {
        return Err(ResourceError::new(
            -2,
            format!("{num_disks} disks; at most {MAX_DISKS}"),
        ));
    }

    let mut res = ResourceArg {
        lockspace_name: Name::EMPTY,
        name: Name::EMPTY,
        disks: Vec::with_capacity(num_disks),
        suffix: ResourceSuffix::None,
    };
    let mut pending_path: Option<Vec<u8>> = None;
    let mut sub: Vec<u8> = Vec::new();
    let mut sub_count = 0usize;
    let mut i = 0;
    while i <= s.len() {
        if i < s.len() && s[i] == b'\\' {
            if i == s.len() - 1 {
                return Err(ResourceError::new(-1, "ends with a lone backslash"));
            }
            if sub.len() >= PATH_LEN {
                return Err(ResourceError::new(
                    -1,
                    format!("a field is longer than {PATH_LEN} bytes"),
                ));
            }
            i += 1;
            sub.push(s[i]);
            i += 1;
            continue;
        }
        if i < s.len() && s[i] != b':' {
            if sub.len() >= PATH_LEN {
                return Err(ResourceError::new(
                    -1,
                    format!("a field is longer than {PATH_LEN} bytes"),
                ));
            }
            sub.push(s[i]);
            i += 1;
            continue;
        }
        // A field ends at a colon or at the end of the string. C's strlen stops at a NUL.
        let field = &sub[..sub.iter().position(|&b| b == 0).unwrap_or(sub.len())];
        if sub_count < 2 && field.len() > sanlock_core::ondisk::NAME_LEN {
            let what = if sub_count == 0 {
                "lockspace"
            } else {
                "resource"
            };
            return Err(ResourceError::new(
                -1,
                format!("{what} name is {} bytes; at most 48", field.len()),
            ));
        }
        if sub_count >= 2 && field.is_empty() {
            return Err(ResourceError::new(
                -1,
                format!("field {} is empty; {FORM}", sub_count + 1),
            ));
        }
        if sub_count >= 2 && field.len() > PATH_LEN - 1 {
            return Err(ResourceError::new(
                -1,
                format!("a path is longer than {} bytes", PATH_LEN - 1),
            ));
        }
        match sub_count {
            0 => res.lockspace_name = Name::truncated(field),
            1 => res.name = Name::truncated(field),
            n if n % 2 == 0 => {
                if have_lver && res.disks.len() == num_disks {
                    res.suffix = if field.starts_with(b"SH") {
                        ResourceSuffix::Shared
                    } else {
                        ResourceSuffix::Lver(strtoull0(field))
                    };
                } else {
                    pending_path = Some(field.to_vec());
                }
            }
            _ => {
                let offset = scan_llu(field).ok_or_else(|| {
                    ResourceError::new(
                        -1,
                        format!(
                            "offset '{}' is not a number",
                            String::from_utf8_lossy(field)
                        ),
                    )
                })?;
                let path = pending_path.take().unwrap_or_default();
                res.disks.push(DiskArg { path, offset });
            }
        }
        sub_count += 1;
        sub.clear();
        i += 1;
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(s: &str) -> Result<ResourceArg, i32> {
        parse_resource(s.as_bytes()).map_err(|e| e.rv)
    }

    #[test]
    fn lockspace_parts_and_escapes() {
        // wire.md §6.3: split at unescaped colons, path unescaped, atoll numbers.
        let (ls, warnings) = parse_lockspace(br"LS:2:/a\:b/f:4096");
        assert!(warnings.is_empty());
        assert_eq!(ls.name.as_bytes(), b"LS");
        assert_eq!(ls.host_id, 2);
        assert_eq!(ls.path, b"/a:b/f");
        assert_eq!(ls.offset, 4096);
        let (bare, warnings) = parse_lockspace(b"NAME");
        assert!(warnings.is_empty());
        assert_eq!(bare.name.as_bytes(), b"NAME");
        assert_eq!((bare.host_id, bare.path.len(), bare.offset), (0, 0, 0));
    }

    #[test]
    fn lockspace_name_is_cut_to_48_silently() {
        let (ls, warnings) = parse_lockspace(format!("{}:1:/p:0", "n".repeat(60)).as_bytes());
        assert_eq!(ls.name.as_bytes().len(), 48);
        assert_eq!(
            warnings,
            vec!["lockspace name is 60 bytes; only the first 48 are used"]
        );
    }

    #[test]
    fn lockspace_offset_takes_an_m_suffix() {
        assert_eq!(parse_lockspace(b"LS:1:/p:3M").0.offset, 3 << 20);
        assert_eq!(parse_lockspace(b"LS:1:/p:3M:junk").0.offset, 3 << 20);
    }

    #[test]
    fn resource_forms() {
        // wire.md §6.3: one colon → no disks; odd (colons − 1) → an lver or SH at the end.
        let r = res("LS:R").unwrap();
        assert!(r.disks.is_empty());
        let r = res("LS:R:/p:1M").unwrap();
        assert_eq!(
            r.disks,
            vec![DiskArg {
                path: b"/p".to_vec(),
                offset: 1 << 20
            }]
        );
        assert_eq!(res("LS:R:/p:0:7").unwrap().suffix, ResourceSuffix::Lver(7));
        assert_eq!(
            res("LS:R:/p:0:0x10").unwrap().suffix,
            ResourceSuffix::Lver(16)
        );
        assert_eq!(
            res("LS:R:/p:0:SHARED").unwrap().suffix,
            ResourceSuffix::Shared
        );
        assert_eq!(res("LS:R:/p:0:/q:512").unwrap().disks.len(), 2);
    }

    #[test]
    fn malformed_lockspace_numbers_are_read_as_sanlock_reads_them_with_a_warning() {
        let (ls, warnings) = parse_lockspace(b"LS:abc:/p:12x");
        assert_eq!((ls.host_id, ls.offset), (0, 12));
        assert_eq!(
            warnings,
            vec![
                "host_id 'abc' is not a number; it is read as 0 (as sanlock 3.8.5 does)",
                "offset '12x' is not a number; it is read as 12 (as sanlock 3.8.5 does)",
            ]
        );
    }

    #[test]
    fn resource_errors_say_what_was_wrong() {
        let reason = |s: &str| parse_resource(s.as_bytes()).unwrap_err().reason;
        assert_eq!(reason("LS:R:/p:x"), "offset 'x' is not a number");
        assert!(reason("LS:R:/p").starts_with("2 separating colons; expected"));
        assert!(reason("LS:R::0").starts_with("field 3 is empty"));
        assert_eq!(
            reason(&format!("LS:{}:/p:0", "r".repeat(49))),
            "resource name is 49 bytes; at most 48"
        );
    }

    #[test]
    fn resource_errors_match_sanlock() {
        // Values seen from /usr/sbin/sanlock: `resource arg parse error <rv>`.
        assert_eq!(res("ab"), Err(-6));
        assert_eq!(res("LSR"), Err(-1));
        assert_eq!(res("LS:R:/p"), Err(-1));
        assert_eq!(res("LS:R:/p:x"), Err(-1));
        assert_eq!(res("LS:R::0"), Err(-1));
        assert_eq!(res("LS:R:/a:0:/b:0:/c:0:/d:0:/e:0"), Err(-2));
        assert_eq!(res(&format!("LS:{}:/p:0", "r".repeat(49))), Err(-1));
        assert!(res(&format!("LS:{}:/p:0", "r".repeat(48))).is_ok());
    }

    #[test]
    fn escaped_colon_in_a_resource_path_meets_the_m_prestep() {
        // wire.md §6.3: `init -r 'LS:R:/a\:b/f:1M'` fails in 3.8.5 (-2, ENOENT) while `…:0`
        // works: the pre-step takes the escaped colon as the third, leaving path "/a:0".
        let mangled = res(r"LS:R:/a\:b/f:1M").unwrap();
        assert_eq!(
            mangled.disks,
            vec![DiskArg {
                path: b"/a:0".to_vec(),
                offset: 1
            }]
        );
        let r = res(r"LS:R:/a\:b/f:0").unwrap();
        assert_eq!(r.disks[0].path, b"/a:b/f");
    }

    #[test]
    fn dump_path_and_rindex_take_m_suffixes() {
        let d = parse_dump_path(br"/x\:y/f:2M:8M");
        assert_eq!(
            (d.path.as_slice(), d.offset, d.size),
            (&b"/x:y/f"[..], 2 << 20, 8 << 20)
        );
        let d = parse_dump_path(b"/f");
        assert_eq!((d.offset, d.size), (0, 0));
        let x = parse_rindex(b"LS:/dev/x:1M");
        assert_eq!(
            (x.lockspace_name.as_bytes(), x.offset),
            (&b"LS"[..], 1 << 20)
        );
        let e = parse_rentry(b":3M");
        assert!(e.name.is_empty());
        assert_eq!(e.offset, 3 << 20);
    }

    #[test]
    fn export_escapes_colons_and_spaces_once() {
        assert_eq!(export_path(b"/d:c d/f"), br"/d\:c\ d/f".to_vec());
        assert_eq!(export_path(br"/a\:b"), br"/a\:b".to_vec());
        assert_eq!(import_path(br"/a\\b"), b"/ab".to_vec());
    }
}
