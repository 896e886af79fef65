//! sanlock's command-line grammar (main.c `read_command_line`, wire.md §6.1). It is its own
//! thing: every option is a separate two-byte `-X`, every option but `-D` takes the next
//! argument, options apply to any action, and `-c` ends parsing. A generic parser (clap) would
//! accept spellings sanlock refuses, so this is written out.

use sanlock_core::ondisk::AlignSize;

use super::cnum::{atoi, strtoull0};
use super::locators::{
    parse_lockspace, parse_rentry, parse_resource, parse_rindex, DumpPath, LockspaceArg, RentryArg,
    ResourceArg, RindexArg,
};

/// The most `-r` options (SANLK_MAX_RESOURCES).
pub const MAX_RESOURCES: usize = 8;
/// io_timeout when none is given, and what `-o 0` means (DEFAULT_IO_TIMEOUT).
pub const DEFAULT_IO_TIMEOUT: i32 = 10;

/// The first argument's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `sanlock daemon …`.
    Daemon,
    /// `sanlock client ACTION …`, or `sanlock ACTION …`.
    Client(ClientAction),
    /// `sanlock direct ACTION …`.
    Direct(DirectAction),
}

/// `client` actions (wire.md §6.1), in sanlock's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ClientAction {
    Status,
    HostStatus,
    Renewal,
    Gets,
    LogDump,
    Shutdown,
    AddLockspace,
    InqLockspace,
    RemLockspace,
    Command,
    Acquire,
    Convert,
    Release,
    Inquire,
    Request,
    Examine,
    Align,
    Init,
    Read,
    Version,
    SetEvent,
    SetConfig,
    Format,
    Rebuild,
    Create,
    Delete,
    Lookup,
    Update,
    /// Ours (docs/MESSAGES.md): `client message`.
    Message,
    /// Ours: `client fence`.
    Fence,
}

/// `direct` actions (wire.md §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum DirectAction {
    Init,
    Dump,
    NextFree,
    ReadLeader,
    WriteLeader,
    Acquire,
    Release,
    AcquireId,
    ReleaseId,
    RenewId,
    Format,
    Rebuild,
    Lookup,
    Update,
}

/// `client` action names as sanlock spells them; `write` is an alias of `init`.
pub(crate) const CLIENT_ACTIONS: &[(&str, ClientAction)] = {
    use ClientAction::*;
    &[
        ("status", Status),
        ("host_status", HostStatus),
        ("renewal", Renewal),
        ("gets", Gets),
        ("log_dump", LogDump),
        ("shutdown", Shutdown),
        ("add_lockspace", AddLockspace),
        ("inq_lockspace", InqLockspace),
        ("rem_lockspace", RemLockspace),
        ("command", Command),
        ("acquire", Acquire),
        ("convert", Convert),
        ("release", Release),
        ("inquire", Inquire),
        ("request", Request),
        ("examine", Examine),
        ("align", Align),
        ("init", Init),
        ("write", Init),
        ("read", Read),
        ("version", Version),
        ("set_event", SetEvent),
        ("set_config", SetConfig),
        ("format", Format),
        ("rebuild", Rebuild),
        ("create", Create),
        ("delete", Delete),
        ("lookup", Lookup),
        ("update", Update),
        ("message", Message),
        ("fence", Fence),
    ]
};

/// `direct` action names as sanlock spells them.
pub(crate) const DIRECT_ACTIONS: &[(&str, DirectAction)] = {
    use DirectAction::*;
    &[
        ("init", Init),
        ("dump", Dump),
        ("next_free", NextFree),
        ("read_leader", ReadLeader),
        ("write_leader", WriteLeader),
        ("acquire", Acquire),
        ("release", Release),
        ("acquire_id", AcquireId),
        ("release_id", ReleaseId),
        ("renew_id", RenewId),
        ("format", Format),
        ("rebuild", Rebuild),
        ("lookup", Lookup),
        ("update", Update),
    ]
};

impl ClientAction {
    fn from_name(name: &[u8]) -> Option<Self> {
        CLIENT_ACTIONS
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|&(_, a)| a)
    }

    /// The name sanlock's command line uses for this action.
    pub fn name(self) -> &'static str {
        CLIENT_ACTIONS
            .iter()
            .find(|&&(_, a)| a == self)
            .map(|&(n, _)| n)
            .expect("every action is in the table")
    }

    fn is_rindex(self) -> bool {
        use ClientAction::*;
        matches!(self, Format | Rebuild | Create | Delete | Lookup | Update)
    }
}

impl DirectAction {
    fn from_name(name: &[u8]) -> Option<Self> {
        DIRECT_ACTIONS
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|&(_, a)| a)
    }

    /// The name sanlock's command line uses for this action.
    pub fn name(self) -> &'static str {
        DIRECT_ACTIONS
            .iter()
            .find(|&&(_, a)| a == self)
            .map(|&(n, _)| n)
            .expect("every action is in the table")
    }

    fn is_rindex(self) -> bool {
        use DirectAction::*;
        matches!(self, Format | Rebuild | Lookup | Update)
    }
}

/// Every option sanlock's command line sets, with sanlock's defaults (main.c `main`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // one field per option; wire.md §6.1 has the table
pub struct Options {
    pub debug: bool,
    pub quiet_fail: i32,
    pub debug_renew: i32,
    pub renewal_history_size: i32,
    pub logfile_priority: Option<i32>,
    pub syslog_priority: Option<i32>,
    pub file_path: Option<Vec<u8>>,
    pub all: i32,
    pub use_aio: i32,
    pub max_worker_threads: i32,
    pub use_watchdog: i32,
    pub wait: i32,
    /// `-w` was given (`client message` and `fence` wait until resolved without it).
    pub wait_given: bool,
    /// `-m` as a message number (`client message`).
    pub message_event: u64,
    pub get_hosts: i32,
    pub high_priority: i32,
    pub mlock_level: i32,
    pub sort_arg: Option<u8>,
    pub io_timeout_arg: i32,
    pub set_bitmap_seconds: i32,
    pub num_hosts: i32,
    pub max_hosts: i32,
    pub pid: i32,
    pub he_data: u64,
    pub our_host_name: Vec<u8>,
    pub he_event: u64,
    pub rentry: RentryArg,
    pub host_id: u64,
    pub kill_grace_seconds: Option<i32>,
    pub host_generation: u64,
    pub force_mode: u32,
    pub lockspace: LockspaceArg,
    pub resources: Vec<ResourceArg>,
    pub uname: Option<Vec<u8>>,
    pub gname: Option<Vec<u8>>,
    pub orphan: Option<i32>,
    pub persistent: i32,
    pub used: Option<i32>,
    pub rindex: RindexArg,
    pub clear: bool,
    pub command: Vec<Vec<u8>>,
    pub align_size: Option<AlignSize>,
    pub sector_size: i32,
    pub dump_path: Option<DumpPath>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            debug: false,
            quiet_fail: 1,
            debug_renew: 0,
            renewal_history_size: 180,
            logfile_priority: None,
            syslog_priority: None,
            file_path: None,
            all: 0,
            use_aio: 1,
            max_worker_threads: 8,
            use_watchdog: 1,
            wait: 0,
            wait_given: false,
            message_event: 0,
            get_hosts: 0,
            high_priority: 0,
            mlock_level: 1,
            sort_arg: None,
            io_timeout_arg: DEFAULT_IO_TIMEOUT,
            set_bitmap_seconds: 0,
            num_hosts: 0,
            max_hosts: 0,
            pid: -1,
            he_data: 0,
            our_host_name: Vec::new(),
            he_event: 0,
            rentry: RentryArg::default(),
            host_id: 0,
            kill_grace_seconds: None,
            host_generation: 0,
            force_mode: 0,
            lockspace: LockspaceArg::default(),
            resources: Vec::new(),
            uname: None,
            gname: None,
            orphan: None,
            persistent: 0,
            used: None,
            rindex: RindexArg::default(),
            clear: false,
            command: Vec::new(),
            align_size: None,
            sector_size: 0,
            dump_path: None,
        }
    }
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// What to do.
    pub mode: Mode,
    /// With which options.
    pub options: Options,
    /// Lines printed while parsing (`resource arg parse error …`), which sanlock prints on
    /// stdout before the action's own output.
    pub notes: Vec<Vec<u8>>,
    /// What was wrong with a LOCKSPACE or RESOURCE string, in words, for stderr.
    pub warnings: Vec<String>,
}

/// Parsing stopped the program: print `stdout` and exit with `code`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// What to print on stdout.
    pub stdout: Vec<u8>,
    /// The process exit status.
    pub code: i32,
    /// Print the usage text before `stdout`.
    pub usage: bool,
}

impl Exit {
    fn usage(code: i32) -> Self {
        Exit {
            stdout: Vec::new(),
            code,
            usage: true,
        }
    }

    fn say(text: impl AsRef<[u8]>) -> Self {
        Exit {
            stdout: text.as_ref().to_vec(),
            code: 1,
            usage: false,
        }
    }
}

/// The version sanlock-rs answers with: the sanlock release it is a drop-in for.
pub const SANLOCK_VERSION: &str = "3.8.5";

/// Parses `argv` (program name first) the way sanlock 3.8.5 does. `Err` means the program ends
/// here with the given output, as for `help`, `version` or a malformed option.
pub fn parse(argv: &[Vec<u8>]) -> Result<CommandLine, Exit> {
    let arg = |i: usize| argv.get(i).map(Vec::as_slice);
    let first = arg(1);
    if matches!(first, None | Some(b"help" | b"--help" | b"-h")) {
        return Err(Exit::usage(0));
    }
    if first == Some(b"version") {
        return Err(Exit {
            stdout: format!("{SANLOCK_VERSION}\n").into_bytes(),
            code: 0,
            usage: false,
        });
    }
    if matches!(first, Some(b"--version" | b"-V")) {
        let mut text = argv[0].clone();
        text.extend_from_slice(
            format!(
                " {SANLOCK_VERSION} (sanlock-rs {})\n",
                env!("CARGO_PKG_VERSION")
            )
            .as_bytes(),
        );
        return Err(Exit {
            stdout: text,
            code: 0,
            usage: false,
        });
    }

    let (mode, mut i) = match first {
        Some(b"daemon") => (Mode::Daemon, 2),
        Some(kind @ (b"direct" | b"client")) => {
            let Some(action) = arg(2) else {
                return Err(Exit::usage(1));
            };
            let mode = if kind == b"direct" {
                DirectAction::from_name(action)
                    .map(Mode::Direct)
                    .ok_or_else(|| Exit::say(quoted_unknown("direct", action)))?
            } else {
                ClientAction::from_name(action)
                    .map(Mode::Client)
                    .ok_or_else(|| Exit::say(quoted_unknown("client", action)))?
            };
            (mode, 3)
        }
        Some(action) => {
            let mode = ClientAction::from_name(action)
                .map(Mode::Client)
                .ok_or_else(|| Exit::say(quoted_unknown("client", action)))?;
            (mode, 2)
        }
        None => unreachable!("handled as help above"),
    };

    let mut options = Options::default();
    let mut notes = Vec::new();
    let mut warnings = Vec::new();

    if matches!(
        mode,
        Mode::Direct(DirectAction::Dump | DirectAction::NextFree)
    ) {
        // The one positional argument; sanlock exits 1 silently without it.
        let Some(path) = arg(i) else {
            return Err(Exit::say(""));
        };
        options.dump_path = Some(super::locators::parse_dump_path(path));
        i += 1;
    }

    let rindex_action = match mode {
        Mode::Client(a) => a.is_rindex(),
        Mode::Direct(a) => a.is_rindex(),
        Mode::Daemon => false,
    };

    while i < argv.len() {
        let p = &argv[i];
        if p.len() != 2 || p[0] != b'-' {
            let mut text = b"unknown option ".to_vec();
            text.extend_from_slice(p);
            text.extend_from_slice(b"\nspace required before option value\n");
            return Err(Exit::say(text));
        }
        let opt = p[1];
        i += 1;
        if opt == b'D' {
            options.debug = true;
            continue;
        }
        let Some(value) = arg(i) else {
            let mut text = b"option '".to_vec();
            text.push(opt);
            text.extend_from_slice(b"' requires arg\n");
            return Err(Exit::say(text));
        };
        let o = &mut options;
        match opt {
            b'Q' => o.quiet_fail = atoi(value),
            b'R' => o.debug_renew = atoi(value),
            b'H' => o.renewal_history_size = atoi(value),
            b'L' => o.logfile_priority = Some(atoi(value)),
            b'S' => o.syslog_priority = Some(atoi(value)),
            b'F' => o.file_path = Some(value.to_vec()),
            b'a' => {
                o.all = atoi(value);
                o.use_aio = i32::from(atoi(value) != 0);
            }
            b't' => o.max_worker_threads = atoi(value).max(2),
            b'w' => {
                o.use_watchdog = atoi(value);
                o.wait = atoi(value);
                o.wait_given = true;
            }
            b'h' => {
                if matches!(mode, Mode::Client(ClientAction::Gets | ClientAction::Read)) {
                    o.get_hosts = atoi(value);
                } else {
                    o.high_priority = atoi(value);
                }
            }
            b'l' => o.mlock_level = atoi(value),
            b'o' => {
                if mode == Mode::Client(ClientAction::Status) {
                    o.sort_arg = Some(value.first().copied().unwrap_or(0));
                } else {
                    o.io_timeout_arg = match atoi(value) {
                        0 => DEFAULT_IO_TIMEOUT,
                        t => t,
                    };
                }
            }
            b'b' => o.set_bitmap_seconds = atoi(value),
            b'n' => o.num_hosts = atoi(value),
            b'm' => {
                o.max_hosts = atoi(value);
                o.message_event = strtoull0(value);
            }
            b'p' => o.pid = atoi(value),
            b'd' => o.he_data = strtoull0(value),
            b'e' => {
                if rindex_action {
                    o.rentry = parse_rentry(value);
                } else {
                    o.our_host_name = value.iter().copied().take(48).collect();
                    o.he_event = strtoull0(value);
                }
            }
            b'i' => o.host_id = strtoull0(value),
            b'g' => {
                if mode == Mode::Daemon {
                    let sec = atoi(value);
                    if (0..=60).contains(&sec) {
                        o.kill_grace_seconds = Some(sec);
                    }
                } else {
                    o.host_generation = strtoull0(value);
                }
            }
            b'f' => o.force_mode = strtoull0(value) as u32,
            b's' => {
                let (lockspace, problems) = parse_lockspace(value);
                o.lockspace = lockspace;
                let text = String::from_utf8_lossy(value);
                warnings.extend(
                    problems
                        .into_iter()
                        .map(|p| format!("LOCKSPACE '{text}': {p}")),
                );
            }
            b'r' => {
                if o.resources.len() >= MAX_RESOURCES {
                    notes.push(format!("resource args over max {MAX_RESOURCES}\n").into_bytes());
                } else {
                    match parse_resource(value) {
                        Ok(res) => o.resources.push(res),
                        // sanlock's format string ends in "\n", and log_tool adds another.
                        Err(e) => {
                            notes.push(
                                format!("resource arg parse error {}\n\n", e.rv).into_bytes(),
                            );
                            warnings.push(format!(
                                "RESOURCE '{}' is malformed: {}; it is ignored",
                                String::from_utf8_lossy(value),
                                e.reason
                            ));
                        }
                    }
                }
            }
            b'U' => o.uname = Some(value.to_vec()),
            b'G' => o.gname = Some(value.to_vec()),
            b'O' => o.orphan = Some(atoi(value)),
            b'P' => o.persistent = atoi(value),
            b'u' => o.used = Some(atoi(value)),
            b'x' => o.rindex = parse_rindex(value),
            b'z' => o.clear = true,
            b'c' => {
                // The rest of argv is the program and its arguments.
                o.command = argv[i..].to_vec();
                break;
            }
            b'A' => {
                if let Some(align) = AlignSize::ALL
                    .into_iter()
                    .find(|a| a.label().as_bytes() == value)
                {
                    o.align_size = Some(align);
                }
            }
            b'Z' => o.sector_size = atoi(value),
            other => {
                let mut text = b"unknown option: ".to_vec();
                text.push(other);
                text.push(b'\n');
                return Err(Exit::say(text));
            }
        }
        i += 1;
    }

    check_sizes(&options, &notes)?;

    Ok(CommandLine {
        mode,
        options,
        notes,
        warnings,
    })
}

/// After parsing, a `-Z`/`-A` pair must be valid; `-Z` alone passes, `-A` alone does not
/// (main.c, checked against the binary: `-A 1M` alone prints `(0/1048576)`).
fn check_sizes(options: &Options, notes: &[Vec<u8>]) -> Result<(), Exit> {
    let sector = options.sector_size;
    let align = options.align_size.map_or(0, |a| a.bytes());
    // -Z alone (any value) passes; -A needs -Z 512 with 1M, or -Z 4096.
    let valid = matches!(
        (sector, options.align_size),
        (_, None) | (512, Some(AlignSize::Align1M)) | (4096, Some(_))
    );
    if valid {
        return Ok(());
    }
    let mut text: Vec<u8> = notes.concat();
    text.extend_from_slice(
        format!(
            "Invalid sector_size/align_size combination ({sector}/{align})\n\
             Use one of: 512/1M, 4096/1M, 4096/2M, 4096/4M, 4096/8M.\n"
        )
        .as_bytes(),
    );
    Err(Exit::say(text))
}

fn quoted_unknown(kind: &str, action: &[u8]) -> Vec<u8> {
    let mut text = format!("{kind} action \"").into_bytes();
    text.extend_from_slice(action);
    text.extend_from_slice(b"\" is unknown\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &str) -> Vec<Vec<u8>> {
        std::iter::once("sanlock")
            .chain(args.split_whitespace())
            .map(|s| s.as_bytes().to_vec())
            .collect()
    }

    fn exit_text(args: &str) -> (String, i32) {
        let exit = parse(&argv(args)).unwrap_err();
        (String::from_utf8(exit.stdout).unwrap(), exit.code)
    }

    #[test]
    fn every_action_parses_from_and_prints_as_its_sanlock_name() {
        for &(name, action) in CLIENT_ACTIONS {
            assert_eq!(ClientAction::from_name(name.as_bytes()), Some(action));
            let expected = if name == "write" { "init" } else { name };
            assert_eq!(action.name(), expected);
        }
        for &(name, action) in DIRECT_ACTIONS {
            assert_eq!(DirectAction::from_name(name.as_bytes()), Some(action));
            assert_eq!(action.name(), name);
        }
    }

    #[test]
    fn help_and_version() {
        // wire.md §6.1: help exits 0; `version` prints the bare release.
        assert!(parse(&argv("")).unwrap_err().usage);
        assert_eq!(parse(&argv("help")).unwrap_err().code, 0);
        assert_eq!(exit_text("version"), ("3.8.5\n".to_string(), 0));
        let usage = parse(&argv("direct")).unwrap_err();
        assert_eq!((usage.usage, usage.code), (true, 1));
    }

    #[test]
    fn malformed_options_print_sanlocks_words() {
        // wire.md §6.1, checked against the binary.
        assert_eq!(
            exit_text("direct init -DD"),
            (
                "unknown option -DD\nspace required before option value\n".into(),
                1
            )
        );
        assert_eq!(
            exit_text("direct init foo"),
            (
                "unknown option foo\nspace required before option value\n".into(),
                1
            )
        );
        assert_eq!(
            exit_text("direct init -s"),
            ("option 's' requires arg\n".into(), 1)
        );
        assert_eq!(
            exit_text("direct init -y 1"),
            ("unknown option: y\n".into(), 1)
        );
        assert_eq!(
            exit_text("direct bogus"),
            ("direct action \"bogus\" is unknown\n".into(), 1)
        );
        assert_eq!(
            exit_text("bogus"),
            ("client action \"bogus\" is unknown\n".into(), 1)
        );
    }

    #[test]
    fn sector_and_align_pairs() {
        // -Z alone passes; -A alone and bad pairs print two lines and exit 1.
        assert!(parse(&argv("direct init -Z 4096")).is_ok());
        assert_eq!(
            exit_text("direct init -A 1M"),
            (
                "Invalid sector_size/align_size combination (0/1048576)\n\
                 Use one of: 512/1M, 4096/1M, 4096/2M, 4096/4M, 4096/8M.\n"
                    .into(),
                1
            )
        );
        assert!(parse(&argv("direct init -Z 512 -A 2M")).is_err());
        assert!(parse(&argv("direct init -Z 4096 -A 8M")).is_ok());
        // Any other -A text is ignored.
        assert!(parse(&argv("direct init -A 3M")).is_ok());
    }

    #[test]
    fn options_apply_whatever_the_action_and_c_ends_parsing() {
        let cl = parse(&argv("client status -Q 0 -o p")).unwrap();
        assert_eq!(cl.options.quiet_fail, 0);
        assert_eq!(cl.options.sort_arg, Some(b'p'));
        let cl = parse(&argv("client command -r LS:R:/p:0 -c /bin/sleep -x 5")).unwrap();
        assert_eq!(
            cl.options.command,
            vec![b"/bin/sleep".to_vec(), b"-x".to_vec(), b"5".to_vec()]
        );
        assert_eq!(
            parse(&argv("init -o 0")).unwrap().options.io_timeout_arg,
            10
        );
    }

    #[test]
    fn resource_parse_errors_are_notes_and_the_action_still_runs() {
        // wire.md §6.1: "resource arg parse error <rv>" and an empty line.
        let cl = parse(&argv("direct init -r ab")).unwrap();
        assert!(cl.options.resources.is_empty());
        assert_eq!(cl.notes, vec![b"resource arg parse error -6\n\n".to_vec()]);
        let nine = "-r LS:R:/p:0 ".repeat(9);
        let cl = parse(&argv(&format!("client acquire {nine}"))).unwrap();
        assert_eq!(cl.options.resources.len(), 8);
        assert_eq!(cl.notes, vec![b"resource args over max 8\n".to_vec()]);
    }

    #[test]
    fn dump_takes_a_positional_path() {
        let cl = parse(&argv("direct dump /x:1M -f 2")).unwrap();
        let dump = cl.options.dump_path.unwrap();
        assert_eq!((dump.path.as_slice(), dump.offset), (&b"/x"[..], 1 << 20));
        assert_eq!(cl.options.force_mode, 2);
        let exit = parse(&argv("direct dump")).unwrap_err();
        assert_eq!((exit.stdout.len(), exit.code), (0, 1));
    }
}
