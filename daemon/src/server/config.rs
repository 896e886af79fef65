//! The daemon's settings: sanlock 3.8.5's defaults, then `/etc/sanlock/sanlock.conf`, then the
//! command line (main.c `read_config_file`, `read_command_line`; wire.md §1.2, §6.1).

use std::path::PathBuf;

use crate::cli::options::Options;

/// Where sanlock reads its configuration.
pub const CONFIG_FILE: &str = "/etc/sanlock/sanlock.conf";

/// What the daemon runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    /// `$SANLOCK_RUN_DIR` or `/run/sanlock`.
    pub run_dir: PathBuf,
    /// `SANLOCK_PRIVILEGED` unset or "1".
    pub privileged: bool,
    /// `-D`: stay in the foreground, log to stderr.
    pub foreground: bool,
    /// `-e` / `our_host_name`; empty: a fresh UUID and the node name.
    pub our_host_name: Vec<u8>,
    /// `-w` / `use_watchdog`.
    pub use_watchdog: bool,
    /// `-h` / `high_priority`.
    pub high_priority: bool,
    /// `-l` / `mlock_level`.
    pub mlock_level: i32,
    /// `-Q` / `quiet_fail`.
    pub quiet_fail: bool,
    /// `-L` / `logfile_priority` (LOG_WARNING).
    pub logfile_priority: i32,
    /// `-S` / `syslog_priority` (LOG_ERR).
    pub syslog_priority: i32,
    /// `-H` / `renewal_history_size`.
    pub renewal_history_size: usize,
    /// `-t`, at least 2.
    pub max_worker_threads: i32,
    /// `-g`, 0..=60.
    pub kill_grace_s: u64,
    /// `-b`: seconds a bitmap bit stays set; 0 means 6 × io_timeout.
    pub set_bitmap_seconds: u64,
    /// `-U` / `uname`.
    pub uname: Option<Vec<u8>>,
    /// `-G` / `gname`.
    pub gname: Option<Vec<u8>>,
    /// `sh_retries`.
    pub sh_retries: u32,
    /// `write_init_io_timeout`.
    pub write_init_io_timeout: u32,
    /// Where to write watchdog keepalives instead of `/dev/watchdog` (ours: the `watchdog_file`
    /// config key or `$SANLOCK_WATCHDOG_FILE`; tests use a plain file or a FIFO).
    pub watchdog_file: Option<PathBuf>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            run_dir: PathBuf::from("/run/sanlock"),
            privileged: true,
            foreground: false,
            our_host_name: Vec::new(),
            use_watchdog: true,
            high_priority: false,
            mlock_level: 1,
            quiet_fail: true,
            logfile_priority: 4,
            syslog_priority: 3,
            renewal_history_size: 180,
            max_worker_threads: 8,
            kill_grace_s: 40,
            set_bitmap_seconds: 0,
            uname: None,
            gname: None,
            sh_retries: 8,
            write_init_io_timeout: 60,
            watchdog_file: None,
        }
    }
}

impl DaemonConfig {
    /// The settings for `sanlock daemon` with `options` (already parsed), reading the config
    /// file and the environment.
    pub fn load(options: &Options) -> DaemonConfig {
        let mut cfg = DaemonConfig::default();
        if let Ok(text) = std::fs::read(CONFIG_FILE) {
            cfg.apply_file(&text);
        }
        cfg.run_dir = crate::client::run_dir();
        cfg.privileged = std::env::var_os("SANLOCK_PRIVILEGED").is_none_or(|v| v == "1");
        if let Some(path) = std::env::var_os("SANLOCK_WATCHDOG_FILE") {
            cfg.watchdog_file = Some(PathBuf::from(path));
        }
        cfg.apply_options(options);
        cfg
    }

    /// Applies `key = value` lines; `#` starts a comment line. Unknown keys are ignored, as
    /// sanlock does.
    pub fn apply_file(&mut self, text: &[u8]) {
        for line in text.split(|&b| b == b'\n') {
            let line = trim(line);
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let Some(eq) = line.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (key, value) = (trim(&line[..eq]), trim(&line[eq + 1..]));
            let num = || crate::cli::cnum::atoi(value);
            match key {
                b"our_host_name" => self.our_host_name = value[..value.len().min(48)].to_vec(),
                b"use_watchdog" => self.use_watchdog = num() != 0,
                b"high_priority" => self.high_priority = num() != 0,
                b"mlock_level" => self.mlock_level = num(),
                b"quiet_fail" => self.quiet_fail = num() != 0,
                b"logfile_priority" => self.logfile_priority = num(),
                b"syslog_priority" => self.syslog_priority = num(),
                b"renewal_history_size" => self.renewal_history_size = num().max(0) as usize,
                b"uname" => self.uname = Some(value.to_vec()),
                b"gname" => self.gname = Some(value.to_vec()),
                b"sh_retries" => self.sh_retries = num().max(0) as u32,
                b"write_init_io_timeout" => self.write_init_io_timeout = num().max(0) as u32,
                b"watchdog_file" => {
                    self.watchdog_file =
                        Some(PathBuf::from(String::from_utf8_lossy(value).into_owned()));
                }
                _ => {}
            }
        }
    }

    /// The command line wins over the file. `Options` does not record which options were
    /// given, so a value equal to sanlock's default leaves the file's setting in place.
    fn apply_options(&mut self, o: &Options) {
        let d = Options::default();
        self.foreground = o.debug;
        if !o.our_host_name.is_empty() {
            self.our_host_name = o.our_host_name[..o.our_host_name.len().min(48)].to_vec();
        }
        if o.use_watchdog != d.use_watchdog {
            self.use_watchdog = o.use_watchdog != 0;
        }
        if o.high_priority != d.high_priority {
            self.high_priority = o.high_priority != 0;
        }
        if o.mlock_level != d.mlock_level {
            self.mlock_level = o.mlock_level;
        }
        if o.quiet_fail != d.quiet_fail {
            self.quiet_fail = o.quiet_fail != 0;
        }
        if let Some(p) = o.logfile_priority {
            self.logfile_priority = p;
        }
        if let Some(p) = o.syslog_priority {
            self.syslog_priority = p;
        }
        if o.renewal_history_size != d.renewal_history_size {
            self.renewal_history_size = o.renewal_history_size.max(0) as usize;
        }
        self.max_worker_threads = o.max_worker_threads.max(2);
        if let Some(g) = o.kill_grace_seconds {
            // sanlock accepts only 0..=60 and keeps the default otherwise.
            if (0..=60).contains(&g) {
                self.kill_grace_s = g as u64;
            }
        }
        self.set_bitmap_seconds = o.set_bitmap_seconds.max(0) as u64;
        if o.uname.is_some() {
            self.uname.clone_from(&o.uname);
        }
        if o.gname.is_some() {
            self.gname.clone_from(&o.gname);
        }
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_keys_set_what_sanlock_reads() {
        let mut cfg = DaemonConfig::default();
        cfg.apply_file(
            b"# comment\nour_host_name = h1\nuse_watchdog=0\n  mlock_level = 0\nbogus=1\nsh_retries=3\n",
        );
        assert_eq!(cfg.our_host_name, b"h1");
        assert!(!cfg.use_watchdog);
        assert_eq!(cfg.mlock_level, 0);
        assert_eq!(cfg.sh_retries, 3);
    }

    #[test]
    fn the_command_line_overrides_the_file_and_grace_is_bounded() {
        let mut cfg = DaemonConfig::default();
        cfg.apply_file(b"use_watchdog=0\n");
        cfg.apply_options(&Options::default());
        assert!(
            !cfg.use_watchdog,
            "an option left at its default keeps the file's value"
        );
        cfg.apply_file(b"use_watchdog=1\n");
        let o = Options {
            use_watchdog: 0,
            kill_grace_seconds: Some(61),
            ..Options::default()
        };
        cfg.apply_options(&o);
        assert!(!cfg.use_watchdog);
        assert_eq!(cfg.kill_grace_s, 40);
        let o = Options {
            kill_grace_seconds: Some(5),
            ..Options::default()
        };
        cfg.apply_options(&o);
        assert_eq!(cfg.kill_grace_s, 5);
    }
}
