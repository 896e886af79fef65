//! The run directory and the pid file whose lock makes the daemon a single instance
//! (sanlock 3.8.5 lockfile.c; wire.md §1.2 step 8).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{fcntl_lock, FlockOperation};

/// Why the daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    /// Another daemon holds the lock on `sanlock.pid`.
    #[error("lockfile setlk error {path}: Resource temporarily unavailable")]
    Held {
        /// The pid file.
        path: String,
    },
    /// The run directory or the pid file could not be made.
    #[error("lockfile {what} error {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Creates the run directory (0775, EEXIST fine), chowns it, and takes the write lock on
/// `sanlock.pid`, writing our pid. The returned file must stay open for the daemon's life.
/// With `nofollow` (ours, opt-in: `pid_file_nofollow = 1`) a symbolic link planted as
/// `sanlock.pid` is refused (ELOOP) rather than followed, as sanlock 3.8.5 follows it.
pub fn take(
    run_dir: &Path,
    uid: u32,
    gid: u32,
    privileged: bool,
    nofollow: bool,
) -> Result<File, LockfileError> {
    let io = |what, path: &Path| {
        let path = path.display().to_string();
        move |source| LockfileError::Io { what, path, source }
    };
    match std::fs::create_dir(run_dir) {
        Ok(()) => {
            // mkdir under umask 0002 gives 0775.
            std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o775))
                .map_err(io("chmod", run_dir))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("mkdir", run_dir)(e)),
    }
    // sanlock ignores a failed chown here (an unprivileged daemon usually cannot).
    let _ = std::os::unix::fs::chown(run_dir, Some(uid), Some(if privileged { 0 } else { gid }));
    let path = run_dir.join("sanlock.pid");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(if nofollow {
            rustix::fs::OFlags::NOFOLLOW.bits() as i32
        } else {
            0
        })
        .open(&path)
        .map_err(io("open", &path))?;
    // A POSIX write lock (F_SETLK), as sanlock takes: neither kind of daemon starts beside
    // the other on one run directory. It is the process's: it goes when the process does.
    if fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        return Err(LockfileError::Held {
            path: path.display().to_string(),
        });
    }
    file.set_len(0).map_err(io("truncate", &path))?;
    writeln!(file, "{}", std::process::id()).map_err(io("write", &path))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_dir_is_made_0775_and_the_pid_file_holds_our_pid() {
        // The conflict between two daemons is a per-process lock: tests/daemon_lifecycle.rs
        // starts a second daemon to see it.
        let dir = std::env::temp_dir().join(format!("sanlock-lockfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lock = take(&dir, 0, 0, false, false).unwrap();
        let text = std::fs::read_to_string(dir.join("sanlock.pid")).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o775);
        let pid_mode = std::fs::metadata(dir.join("sanlock.pid"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(pid_mode & 0o777, 0o644);
        drop(lock);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_planted_pid_file_link_is_followed_as_sanlock_does_unless_nofollow_is_set() {
        let dir = std::env::temp_dir().join(format!("sanlock-pidlink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("sanlock.pid")).unwrap();
        match take(&dir, 0, 0, false, true) {
            Err(LockfileError::Io {
                what: "open",
                source,
                ..
            }) => {
                assert_eq!(source.raw_os_error(), Some(40), "ELOOP: {source}");
            }
            other => panic!("followed the link: {:?}", other.map(|_| ())),
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        // The default is sanlock's: the link is followed and its target overwritten.
        let lock = take(&dir, 0, 0, false, false).unwrap();
        let text = std::fs::read_to_string(&victim).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        drop(lock);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
