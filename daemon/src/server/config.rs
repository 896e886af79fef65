//! The daemon's settings: sanlock 3.8.5's defaults, then `/etc/sanlock/sanlock.conf`, then the
//! command line (main.c `read_config_file`, `read_command_line`; wire.md §1.2, §6.1).

use std::path::PathBuf;

pub use sanlock_machine::daemon::config::DaemonConfig;

use crate::cli::options::Options;

/// Where sanlock reads its configuration.
pub const CONFIG_FILE: &str = "/etc/sanlock/sanlock.conf";

/// The settings for `sanlock daemon` with `options` (already parsed), reading the config
/// file and the environment.
pub fn load(options: &Options) -> DaemonConfig {
    let mut cfg = DaemonConfig::default();
    if let Ok(text) = std::fs::read(CONFIG_FILE) {
        apply_file(&mut cfg, &text);
    }
    cfg.run_dir = crate::client::run_dir();
    cfg.privileged = std::env::var_os("SANLOCK_PRIVILEGED").is_none_or(|v| v == "1");
    if let Some(path) = std::env::var_os("SANLOCK_WATCHDOG_FILE") {
        cfg.watchdog_file = Some(PathBuf::from(path));
    }
    if let Some(path) = std::env::var_os("SANLOCK_METRICS_FILE") {
        cfg.metrics_file = Some(PathBuf::from(path));
    }
    apply_options(&mut cfg, options);
    cfg
}

/// Applies `key = value` lines; `#` starts a comment line. Unknown keys are ignored, as
/// sanlock does.
pub fn apply_file(cfg: &mut DaemonConfig, text: &[u8]) {
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
            b"our_host_name" => cfg.our_host_name = value[..value.len().min(48)].to_vec(),
            b"use_watchdog" => cfg.use_watchdog = num() != 0,
            b"high_priority" => cfg.high_priority = num() != 0,
            b"mlock_level" => cfg.mlock_level = num(),
            b"quiet_fail" => cfg.quiet_fail = num() != 0,
            b"logfile_priority" => cfg.logfile_priority = num(),
            b"syslog_priority" => cfg.syslog_priority = num(),
            b"renewal_history_size" => cfg.renewal_history_size = num().max(0) as usize,
            b"uname" => cfg.uname = Some(value.to_vec()),
            b"gname" => cfg.gname = Some(value.to_vec()),
            b"sh_retries" => cfg.sh_retries = num().max(0) as u32,
            b"write_init_io_timeout" => cfg.write_init_io_timeout = num().max(0) as u32,
            b"watchdog_file" => cfg.watchdog_file = path(value),
            b"metrics_file" => cfg.metrics_file = path(value),
            b"pid_file_nofollow" => cfg.pid_file_nofollow = num() != 0,
            b"pid_target_same_uid" => cfg.pid_target_same_uid = num() != 0,
            _ => {}
        }
    }
}

/// A path setting: none when the value is empty (a key uncommented without a value).
fn path(value: &[u8]) -> Option<PathBuf> {
    (!value.is_empty()).then(|| PathBuf::from(String::from_utf8_lossy(value).into_owned()))
}

/// The command line wins over the file. `Options` does not record which options were
/// given, so a value equal to sanlock's default leaves the file's setting in place.
fn apply_options(cfg: &mut DaemonConfig, o: &Options) {
    let d = Options::default();
    cfg.foreground = o.debug;
    if !o.our_host_name.is_empty() {
        cfg.our_host_name = o.our_host_name[..o.our_host_name.len().min(48)].to_vec();
    }
    if o.use_watchdog != d.use_watchdog {
        cfg.use_watchdog = o.use_watchdog != 0;
    }
    if o.high_priority != d.high_priority {
        cfg.high_priority = o.high_priority != 0;
    }
    if o.mlock_level != d.mlock_level {
        cfg.mlock_level = o.mlock_level;
    }
    if o.quiet_fail != d.quiet_fail {
        cfg.quiet_fail = o.quiet_fail != 0;
    }
    if let Some(p) = o.logfile_priority {
        cfg.logfile_priority = p;
    }
    if let Some(p) = o.syslog_priority {
        cfg.syslog_priority = p;
    }
    if o.renewal_history_size != d.renewal_history_size {
        cfg.renewal_history_size = o.renewal_history_size.max(0) as usize;
    }
    cfg.max_worker_threads = o.max_worker_threads.max(2);
    if let Some(g) = o.kill_grace_seconds {
        // sanlock accepts only 0..=60 and keeps the default otherwise.
        if (0..=60).contains(&g) {
            cfg.kill_grace_s = g as u64;
        }
    }
    cfg.set_bitmap_seconds = o.set_bitmap_seconds.max(0) as u64;
    if o.uname.is_some() {
        cfg.uname.clone_from(&o.uname);
    }
    if o.gname.is_some() {
        cfg.gname.clone_from(&o.gname);
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
        apply_file(
            &mut cfg,
            b"# comment\nour_host_name = h1\nuse_watchdog=0\n  mlock_level = 0\nbogus=1\nsh_retries=3\n",
        );
        assert_eq!(cfg.our_host_name, b"h1");
        assert!(!cfg.use_watchdog);
        assert_eq!(cfg.mlock_level, 0);
        assert_eq!(cfg.sh_retries, 3);
    }

    /// The keys the daemon reads, each with a value other than its default.
    const KEYS: [(&str, &str); 16] = [
        ("our_host_name", "h9"),
        ("use_watchdog", "0"),
        ("high_priority", "1"),
        ("mlock_level", "2"),
        ("quiet_fail", "0"),
        ("logfile_priority", "7"),
        ("syslog_priority", "-1"),
        ("renewal_history_size", "9"),
        ("uname", "u9"),
        ("gname", "g9"),
        ("sh_retries", "2"),
        ("write_init_io_timeout", "5"),
        ("watchdog_file", "/tmp/wd"),
        ("metrics_file", "/tmp/m.prom"),
        ("pid_file_nofollow", "1"),
        ("pid_target_same_uid", "1"),
    ];

    #[test]
    fn the_packaged_config_file_lists_every_key_the_daemon_reads_at_its_default() {
        let text = include_str!("../../../packaging/sanlock.conf");
        let listed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter_map(|l| l.split_once(" ="))
            .map(|(k, _)| k)
            .filter(|k| !k.contains(' '))
            .collect();
        let keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        assert_eq!(listed, keys);
        // Uncommented as installed, the file's values are the defaults.
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| keys.iter().any(|k| l.starts_with(&format!("{k} ="))))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut cfg = DaemonConfig::default();
        apply_file(&mut cfg, uncommented.as_bytes());
        let paths_and_names_unset = DaemonConfig {
            uname: None,
            gname: None,
            ..cfg.clone()
        };
        assert_eq!(paths_and_names_unset, DaemonConfig::default());
        assert_eq!(cfg.uname.as_deref(), Some(&b"sanlock"[..]));
        // And each key is one the daemon reads.
        for (key, value) in KEYS {
            let mut cfg = DaemonConfig::default();
            apply_file(&mut cfg, format!("{key} = {value}\n").as_bytes());
            assert_ne!(cfg, DaemonConfig::default(), "{key} is not read");
        }
    }

    #[test]
    fn the_command_line_overrides_the_file_and_grace_is_bounded() {
        let mut cfg = DaemonConfig::default();
        apply_file(&mut cfg, b"use_watchdog=0\n");
        apply_options(&mut cfg, &Options::default());
        assert!(
            !cfg.use_watchdog,
            "an option left at its default keeps the file's value"
        );
        apply_file(&mut cfg, b"use_watchdog=1\n");
        let o = Options {
            use_watchdog: 0,
            kill_grace_seconds: Some(61),
            ..Options::default()
        };
        apply_options(&mut cfg, &o);
        assert!(!cfg.use_watchdog);
        assert_eq!(cfg.kill_grace_s, 40);
        let o = Options {
            kill_grace_seconds: Some(5),
            ..Options::default()
        };
        apply_options(&mut cfg, &o);
        assert_eq!(cfg.kill_grace_s, 5);
    }
}
