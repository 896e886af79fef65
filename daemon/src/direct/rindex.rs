//! `direct format | rebuild | lookup | update -x RINDEX`: the resource index without a daemon
//! (direct.c `direct_rindex_*`): no lockspace, no `rindex_lease`, the header read as 4096
//! bytes.

use crate::cli::client_actions::{lookup_line, rindex_arg};
use crate::cli::options::{DirectAction, Options};
use crate::rindex;
use crate::wire::WireRentry;

/// Runs one of the four actions, printing `<action> done <rv>` (and lookup's answer).
pub fn run(action: DirectAction, options: &Options, out: &mut Vec<u8>) -> i32 {
    let rx = rindex_arg(options);
    let want = WireRentry {
        name: options.rentry.name,
        offset: options.rentry.offset,
        flags: 0,
    };
    let with_header = |f: &dyn Fn(&sanlock_backends::disk::Disk, &_) -> (i32, WireRentry)| {
        match rindex::open(&rx).and_then(|d| Ok((rindex::read_header(&d, &rx, None)?, d))) {
            Ok((header, disk)) => f(&disk, &header),
            Err(rv) => (rv, WireRentry::default()),
        }
    };
    let (label, rv, answer) = match action {
        DirectAction::Format => ("format", rindex::format(&rx), None),
        DirectAction::Rebuild => {
            let (rv, _) =
                with_header(&|d, h| (rindex::rebuild_locked(d, h), WireRentry::default()));
            ("rebuild", rv, None)
        }
        DirectAction::Lookup => {
            let (rv, back) = with_header(&|d, h| rindex::lookup(d, h, &want));
            ("lookup", rv, Some(back))
        }
        _ => {
            let flags = if options.clear {
                rindex::RXUP_REM
            } else {
                rindex::RXUP_ADD
            };
            let (rv, _) = with_header(&|d, h| rindex::update(d, h, &want, flags));
            ("update", rv, None)
        }
    };
    out.extend_from_slice(format!("{label} done {rv}\n").as_bytes());
    if let (0, Some(back)) = (rv, answer) {
        out.extend_from_slice(lookup_line(&back).as_bytes());
    }
    rv
}
