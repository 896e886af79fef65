//! What the daemon runs with: sanlock 3.8.5's defaults (main.c), as the daemon's shell fills
//! them from `/etc/sanlock/sanlock.conf` and the command line.

use std::path::PathBuf;

/// What the daemon runs with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
    /// Where to write Prometheus text metrics after each renewal (ours: the `metrics_file`
    /// config key or `$SANLOCK_METRICS_FILE`).
    pub metrics_file: Option<PathBuf>,
    /// Open the pid file without following a symbolic link (ours, opt-in:
    /// `pid_file_nofollow`; sanlock 3.8.5 follows one).
    pub pid_file_nofollow: bool,
    /// ACQUIRE, RELEASE, INQUIRE, CONVERT and KILLPATH naming another process by pid only from
    /// root or that process's own user (ours, opt-in: `pid_target_same_uid`; sanlock 3.8.5
    /// lets any client name any registered pid).
    pub pid_target_same_uid: bool,
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
            metrics_file: None,
            pid_file_nofollow: false,
            pid_target_same_uid: false,
        }
    }
}
